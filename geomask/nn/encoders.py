"""Graph encoders by name: the one builder the circuit methods (MGM, MGVGA, GraphMAE on AIGs) share."""

from __future__ import annotations

from torch import nn

from geomask.errors import UsageError
from geomask.nn.deepgcn import DeepGCN
from geomask.nn.gnn import GNN_KINDS, GNNEncoder

__all__ = ["ENCODERS", "build_encoder"]

#: The encoder names :func:`build_encoder` knows.
ENCODERS = ("deepgcn", *GNN_KINDS)


def build_encoder(
    encoder: str = "deepgcn",
    hidden: int = 64,
    layers: int = 7,
    dropout: float = 0.0,
    gat_heads: int = 4,
    checkpoint_nodes: int | None = 100_000,
    num_relations: int = 1,
) -> nn.Module:
    """A graph encoder ``(x [N, H], edge_index, neighbors) -> [N, H]`` by name.

    ``num_relations`` > 1 reads ``edge_type`` (AIGs with ``not_nodes: attr``: inversion is relation 1); only
    ``deepgcn`` takes typed edges.
    """
    if encoder == "deepgcn":
        return DeepGCN(hidden, layers, dropout, checkpoint_nodes, num_relations=num_relations)
    if num_relations != 1:
        raise UsageError(f"encoder {encoder!r} reads no edge types: num_relations must be 1 (or use deepgcn)")
    if encoder in GNN_KINDS:
        return GNNEncoder(encoder, hidden, layers, dropout, gat_heads)
    raise ValueError(f"unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}")

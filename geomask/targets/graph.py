"""Node-attribute targets of graph batches (PyG ``Data`` / ``Batch``, read by attribute name).

* ``node_attribute``: a stored per-node tensor, as class ids (``int64``) or floats; e.g. the gate type
  ``node_type`` of an AIG (MGM, VGA and GraphMAE recover it).
* ``node_degree``: fan-in (``in``) or fan-out (``out``) per node as floats (MGM's Huber targets): the stored
  ``in_degree`` / ``out_degree`` when present, else counted from ``edge_index`` (row 1 = targets for ``in``,
  row 0 = sources for ``out``).

No ``torch_geometric`` import: any object with the attributes works.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.targets.registry import register_target

__all__ = ["NodeAttribute", "NodeDegree"]

ATTRIBUTE_KINDS = ("class", "float")
DIRECTIONS = ("in", "out")


def _attribute_names(batch: Any) -> list[str]:
    keys = getattr(batch, "keys", None)
    names = keys() if callable(keys) else keys
    return sorted(names) if names is not None else sorted(vars(batch))


@register_target("node_attribute")
class NodeAttribute(nn.Module):
    """A per-node attribute of a graph batch, as class ids or floats (e.g. the gate type ``node_type``).

    Args:
        attribute: the attribute's name on the batch.
        kind: ``"class"`` → ``int64`` class ids (for cross-entropy); ``"float"`` → ``float32`` (regression).

    Shapes:
        batch with ``<attribute> [N, ...]`` → ``[N, ...]``.
    """

    def __init__(self, attribute: str = "node_type", kind: str = "class") -> None:
        super().__init__()
        if kind not in ATTRIBUTE_KINDS:
            raise UsageError(f"unknown node attribute kind {kind!r}; valid: {', '.join(ATTRIBUTE_KINDS)}")
        self.attribute, self.kind = attribute, kind

    def forward(self, batch: Any) -> Tensor:
        value = getattr(batch, self.attribute, None)
        if not isinstance(value, Tensor):
            raise UsageError(
                f"the batch has no tensor attribute {self.attribute!r}; it has: {', '.join(_attribute_names(batch))}"
            )
        return value.long() if self.kind == "class" else value.float()


@register_target("node_degree")
class NodeDegree(nn.Module):
    """Fan-in or fan-out of every node as floats: the stored attribute, else counted from ``edge_index``.

    Args:
        direction: ``"in"`` (edges ending at the node, ``edge_index[1]``) or ``"out"`` (``edge_index[0]``).
        attribute: the stored attribute to prefer (default ``"<direction>_degree"``).

    Shapes:
        batch with ``edge_index [2, E]`` (and ``num_nodes``, or pass ``num_nodes``) → ``[N]`` float32.
    """

    def __init__(self, direction: str = "in", attribute: str | None = None) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise UsageError(f"unknown degree direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
        self.direction = direction
        self.attribute = attribute or f"{direction}_degree"

    def forward(self, batch: Any, num_nodes: int | None = None) -> Tensor:
        stored = getattr(batch, self.attribute, None)
        if isinstance(stored, Tensor):
            return stored.float()
        edge_index = getattr(batch, "edge_index", None)
        if not isinstance(edge_index, Tensor):
            raise UsageError(f"the batch has neither {self.attribute!r} nor an edge_index to count degrees from")
        n = int(batch.num_nodes) if num_nodes is None else int(num_nodes)
        row = edge_index[1] if self.direction == "in" else edge_index[0]
        return torch.bincount(row, minlength=n).float()

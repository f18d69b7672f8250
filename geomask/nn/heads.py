"""Light heads: a feed-forward block, a scalar regression head, and mean+max graph pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool, global_mean_pool

from geomask.nn.dropout import dropout

__all__ = ["FeedForward", "ScalarHead", "init_normal", "mean_max_pool"]


class FeedForward(nn.Module):
    """``fc2(relu(fc1(dropout(x))))`` at constant width (MGVGA's MLP; :func:`geomask.nn.dropout.dropout`).

    Shapes:
        ``[*, H]`` → ``[*, H]``.
    """

    def __init__(self, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, x: Tensor, project: Tensor | None = None) -> Tensor:
        """``[*, H]`` → ``[*, H]``; with ``project`` (``[K, H]``) → ``[*, K]``, ``project @ fc2(...)`` computed
        with ``project`` folded into ``fc2`` first (a ``[K, H]`` layer in place of ``[H, H]``: the same
        function, cheaper when K < H)."""
        x = F.relu(self.fc1(dropout(x, self.dropout, self.training)))
        if project is None:
            return self.fc2(x)
        return F.linear(x, project @ self.fc2.weight, torch.mv(project, self.fc2.bias))


class ScalarHead(nn.Module):
    """Per-node scalar regression: :class:`FeedForward` then ``Linear(H, 1)``.

    The feed-forward's ``fc2`` and the output layer are two affine maps in a row, so the forward pass
    composes them first (``v = fc2.weight^T out.weight[0]``, a ``[H]`` vector, and one scalar offset) and
    runs one matrix-vector product per node instead of an ``[N, H] x [H, H]`` GEMM and a matrix-vector
    product: the same function and parameters (gradients reach ``fc2`` through the composition), three
    fewer ``N``-row GEMMs per step (forward, and both of the backward).

    Shapes:
        ``[N, H]`` → ``[N]``.
    """

    def __init__(self, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.mlp = FeedForward(hidden, dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        mlp, w = self.mlp, self.out.weight[0]
        h = F.relu(mlp.fc1(dropout(x, mlp.dropout, self.training)))
        # fc2 then out, composed: [H] vector and a scalar offset; a matrix-vector product per node (its
        # backward is an outer product, not a K = 1 GEMM)
        v = torch.mv(mlp.fc2.weight.t(), w)
        c = torch.dot(mlp.fc2.bias, w).unsqueeze(0) + self.out.bias
        return torch.addmv(c, h, v)


def mean_max_pool(x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """Concatenated mean and max of node rows per graph.

    Shapes:
        x ``[N, H]``, batch ``[N]`` → ``[B, 2H]``.
    """
    return torch.cat([global_mean_pool(x, batch, num_graphs), global_max_pool(x, batch, num_graphs)], dim=1)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """MGVGA's initialisation of heads: ``Linear`` and ``Embedding`` weights N(0, std), biases zero."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

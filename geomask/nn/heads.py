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

    def forward(self, x: Tensor) -> Tensor:
        x = dropout(x, self.dropout, self.training)
        return self.fc2(F.relu(self.fc1(x)))


class ScalarHead(nn.Module):
    """Per-node scalar regression: :class:`FeedForward` then ``Linear(H, 1)``.

    Shapes:
        ``[N, H]`` → ``[N]``.
    """

    def __init__(self, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.mlp = FeedForward(hidden, dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        # the 1-wide output layer as a matrix-vector product: its backward is an outer product, not a K = 1 GEMM
        return torch.addmv(self.out.bias, self.mlp(x), self.out.weight[0])


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

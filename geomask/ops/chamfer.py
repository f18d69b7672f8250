"""Chamfer distance between batched point sets.

For sets :math:`X` (N points) and :math:`Y` (M points), with :math:`d(x, Y) = \\min_{y} \\lVert x - y \\rVert^2`:

.. math::
    \\mathrm{CD}_{L2}(X, Y) = \\frac{1}{N} \\sum_{x} d(x, Y) + \\frac{1}{M} \\sum_{y} d(y, X)

    \\mathrm{CD}_{L1}(X, Y) = \\frac{1}{2} \\Big( \\frac{1}{N} \\sum_{x} \\sqrt{d(x, Y)}
        + \\frac{1}{M} \\sum_{y} \\sqrt{d(y, X)} \\Big)

(the conventions of Point-MAE's ``ChamferDistanceL2`` and Point-BERT's ``ChamferDistanceL1``), averaged over
the batch.  Distances are exact pairwise differences (no ``|x|^2 + |y|^2 - 2xy`` cancellation), which suits
the small sets of point patches; the square root is taken with a small floor so its gradient stays finite.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["chamfer_distance", "nearest_sq_distances"]

_KINDS = ("l1", "l2")


def nearest_sq_distances(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distance from every point to its nearest neighbour in the other set.

    Shapes:
        x ``[B, N, D]``, y ``[B, M, D]`` → ``([B, N], [B, M])``.
    """
    if x.dim() != 3 or y.dim() != 3 or x.size(0) != y.size(0) or x.size(-1) != y.size(-1):
        raise ValueError(f"x and y must be [B, N, D] and [B, M, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    d = (x.unsqueeze(2) - y.unsqueeze(1)).pow(2).sum(-1)  # [B, N, M]
    return d.amin(dim=2), d.amin(dim=1)


def chamfer_distance(x: Tensor, y: Tensor, kind: str = "l2", eps: float = 1e-12) -> Tensor:
    """Chamfer distance, mean over the batch.

    Args:
        x: ``[B, N, D]`` predicted points.
        y: ``[B, M, D]`` target points.
        kind: ``"l2"`` (squared distances, summed directions) or ``"l1"`` (distances, averaged directions).
        eps: floor under the squared distance before the square root of ``"l1"``.

    Returns:
        scalar.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown Chamfer kind {kind!r}; valid: {', '.join(_KINDS)}")
    dx, dy = nearest_sq_distances(x, y)
    if kind == "l2":
        return dx.mean(1).mean() + dy.mean(1).mean()
    return 0.5 * (dx.clamp(min=eps).sqrt().mean(1).mean() + dy.clamp(min=eps).sqrt().mean(1).mean())

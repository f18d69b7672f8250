"""DMJD's disjoint masking: ``K`` masked views of every image, cut from one random permutation of its tokens.

DMJD (Ma et al. 2022) trains on two masked views per image at the same ratio (``mask_ratio 0.6``,
``pred_ratio 1.0``): the second view masks **every token the first one shows** and tops its budget up from
the first view's masked tokens.  So the views' *visible* sets are disjoint and their masked sets together
cover the image (every token is predicted in some view); masked sets cannot be disjoint at ratios above
``1 / K``.  Generalised to ``K`` views: one uniform permutation per image, and view ``k`` shows the tokens
of ranks ``[k V, (k + 1) V)`` with ``V = L - M`` (``disjoint="visible"``, needs ``K V <= L``).  For two views
this has DMJD's distribution (view 2's visible set is uniform among view 1's masked tokens).

``disjoint="masked"`` instead masks ranks ``[k M, (k + 1) M)`` in view ``k``: masked sets pairwise disjoint,
visible sets covering the image (needs ``K M <= L``; with ``K M = L`` the masked sets partition the image).

Views are stacked **view-major**, as DMJD's ``torch.cat([x, x])``: in a layout of ``K B`` samples, sample
``k B + b`` is view ``k`` of image ``b`` (repeat the batch with ``x.repeat(K, 1, ...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_int, check_ratio, mask_counts, resolve_generator
from geomask.masking.layout import TokenGridLayout
from geomask.masking.registry import register_masker

__all__ = ["DisjointMasker", "disjoint_masks"]

KINDS = ("visible", "masked")


@register_masker("disjoint")
class DisjointMasker(Masker):
    """DMJD disjoint masking: K views per image at one ratio, visible (or masked) sets pairwise disjoint.

    Every image draws ``[L]`` float32 keys (one ``[B, L]`` draw); the ranks of its keys are a uniform
    permutation, cut into ``K`` consecutive runs as the module docstring says.  Takes a
    :class:`~geomask.masking.layout.TokenGridLayout` of ``K B`` samples, view-major.

    Args:
        ratio: masked share of every view, exact (``M = floor(ratio L + 0.5)``); DMJD: 0.6.
        views: ``K`` >= 1.
        disjoint: ``"visible"`` (DMJD: visible sets disjoint, masked sets cover the image) or ``"masked"``.

    Shapes:
        layout ``(K B, grid)`` → ``[K B L]`` bool (True = masked); ``.view(K, B, L)`` gives view, image, token.
    """

    layouts = (TokenGridLayout,)

    def __init__(self, ratio: float = 0.6, views: int = 2, disjoint: str = "visible") -> None:
        self.ratio = check_ratio("disjoint", "ratio", ratio)
        self.views = check_int("disjoint", "views", views)
        if disjoint not in KINDS:
            raise UsageError(f"disjoint: 'disjoint' must be one of {', '.join(KINDS)}, got {disjoint!r}")
        self.disjoint = disjoint

    def mask(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        k, (rows, n) = self.views, layout.dense_shape
        if rows % k:
            raise UsageError(f"disjoint: the layout's {rows} samples are not {k} views of whole images")
        b = rows // k
        m = int(mask_counts(torch.tensor([n]), self.ratio)[0])
        run = n - m if self.disjoint == "visible" else m
        if k * run > n:
            raise UsageError(
                f"disjoint: {k} views with {run} {self.disjoint} of {n} tokens each cannot be disjoint "
                f"(ratio {self.ratio}); need views * {run} <= {n}"
            )
        keys = torch.rand(b, n, generator=generator, device=generator.device).to(layout.device)
        rank = keys.argsort(dim=1).argsort(dim=1).unsqueeze(0)  # [1, B, L]
        start = (torch.arange(k, device=layout.device) * run).view(k, 1, 1)
        in_run = (rank >= start) & (rank < start + run)  # [K, B, L]
        return (~in_run if self.disjoint == "visible" else in_run).reshape(-1)


def disjoint_masks(
    num_images: int,
    shape: int | Sequence[int],
    ratio: float = 0.6,
    views: int = 2,
    disjoint: str = "visible",
    generator: torch.Generator | None = None,
) -> Tensor:
    """``K`` disjoint masked views of every image, ``[K, B, *shape]`` bool (True = masked).

    ``DisjointMasker(ratio, views, disjoint)`` on ``TokenGridLayout(K B, shape)``, reshaped.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    gen = resolve_generator(generator)
    masker = DisjointMasker(ratio, views, disjoint)
    return masker(TokenGridLayout(views * num_images, shape, gen.device), gen).view(views, num_images, *shape)

"""BEiT block-wise masking: random rectangles of log-uniform aspect until exactly the budget, batched.

BEiT (Bao et al. 2022, ``MaskingGenerator``): while fewer than the budget ``M`` patches are masked, a block
is tried up to ``attempts`` (10) times: a target area ``a ~ U(min_block, cap)`` with ``cap = min(M - masked,
max_block)`` (Python's ``random.uniform``, so ``U(cap, min_block)`` when ``cap < min_block``), an aspect
``r = exp(U(log min_aspect, log max_aspect))`` (``max_aspect = 1 / min_aspect``: ``[0.3, 3.33]``), the
rectangle ``h = round(sqrt(a r))``, ``w = round(sqrt(a / r))`` at a uniform position; the first attempt
with ``h < H``, ``w < W`` and ``0 < new <= cap`` newly masked patches is painted.  BEiT stops a sample when
all attempts of a round fail, which can leave it short of ``M``.

Here every round draws all attempts of all samples at once (``[B, attempts]`` rectangles, their overlap
with the mask so far read from one integral image), and paints each sample's first valid rectangle with
one broadcast comparison.  **What remains a loop** is the loop over rounds: a round's acceptance reads the
mask the previous rounds painted, so rounds are sequential; each one adds at least one patch to every
sample still running, so there are at most ``M`` rounds (typically 5 to 10 for BEiT's 75 of 196).  No
Python loop runs over samples, attempts or patches.

**Exact budget** (BEiT can stop short): no accepted rectangle ever adds more than ``cap``, so no sample
exceeds ``M`` and nothing is trimmed; a sample left short is topped up, in one batched step, with unmasked
patches that touch a masked one (4-neighbours) first, then with any unmasked patch, in uniformly random order
within each group (one more ``[B, L]`` draw).  Every sample ends with exactly ``M = floor(ratio L + 0.5)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from geomask.errors import UsageError
from geomask.masking.base import Masker, check_int, check_ratio, mask_counts
from geomask.masking.layout import TokenGridLayout
from geomask.masking.registry import register_masker

__all__ = ["BEiTBlockMasker", "BlockDraws", "beit_block_mask"]


class BlockDraws(NamedTuple):
    """The rectangles of every round, ``[R, B]`` each: the painted rectangle ``(h, w, top, left)`` where
    ``accepted`` (zeros elsewhere) and the target ``area`` and ``aspect`` it was drawn from (of the round's
    first attempt where nothing was accepted)."""

    area: Tensor
    aspect: Tensor
    h: Tensor
    w: Tensor
    top: Tensor
    left: Tensor
    accepted: Tensor


def _rect_sums(mask: Tensor, top: Tensor, left: Tensor, h: Tensor, w: Tensor) -> Tensor:
    """Masked patches inside every rectangle, from one integral image: mask ``[B, H, W]``, boxes ``[B, A]``."""
    b, width = mask.size(0), mask.size(2)
    integral = F.pad(mask.long().cumsum(1).cumsum(2), (1, 0, 1, 0)).view(b, -1)

    def corner(r: Tensor, c: Tensor) -> Tensor:
        return integral.gather(1, r * (width + 1) + c)

    return corner(top + h, left + w) - corner(top, left + w) - corner(top + h, left) + corner(top, left)


def _first(values: Tensor, index: Tensor) -> Tensor:
    return values.gather(1, index[:, None]).squeeze(1)


def beit_block_mask(
    budget: Tensor,
    shape: tuple[int, int],
    generator: torch.Generator,
    min_block: int = 16,
    max_block: int | None = None,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    attempts: int = 10,
) -> tuple[Tensor, BlockDraws]:
    """BEiT block masks of exactly ``budget[b]`` patches on an ``H x W`` grid (see the module docstring).

    Random numbers, in order: every round one ``[4, B, attempts]`` float64 draw (area, log-aspect, top, left),
    then one ``[B, H W]`` float64 draw for the top-up keys.  Drawn on the generator's device, computed on
    ``budget``'s device.

    Args:
        budget: ``[B]`` int64 patches to mask per sample (``0 .. H W``).
        shape: the patch grid ``(H, W)``.
        generator: source of randomness.
        min_block: least target area of a block (BEiT: 16).
        max_block: largest target area (``None``: the budget).
        min_aspect, max_aspect: aspect (``h / w``) range, log-uniform; ``max_aspect`` defaults to ``1 / min_aspect``.
        attempts: rectangles tried per round (BEiT: 10).

    Returns:
        ``(mask [B, H, W] bool, draws)`` with the rectangles of every round (:class:`BlockDraws`).
    """
    height, width = shape
    b, dev, gdev = budget.numel(), budget.device, generator.device
    budget = budget.long()
    if b and (bool((budget < 0).any()) or bool((budget > height * width).any())):
        raise UsageError(f"beit_block: budgets must lie in [0, {height * width}], got {budget.tolist()}")
    hi_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
    log_lo, log_hi = math.log(min_aspect), math.log(hi_aspect)
    mask = torch.zeros(b, height, width, dtype=torch.bool, device=dev)
    count = torch.zeros(b, dtype=torch.long, device=dev)
    running = budget > 0
    rows = torch.arange(height, device=dev).view(1, height, 1)
    cols = torch.arange(width, device=dev).view(1, 1, width)
    draws: list[tuple[Tensor, ...]] = []
    while bool(running.any()):  # rounds: each adds >= 1 patch to every running sample
        cap = budget - count
        if max_block is not None:
            cap = cap.clamp(max=max_block)
        cap = cap.to(torch.float64)[:, None]
        u = torch.rand(4, b, attempts, generator=generator, dtype=torch.float64, device=gdev).to(dev)
        area = min_block + (cap - min_block) * u[0]
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
        h = torch.round(torch.sqrt(area * aspect)).long()
        w = torch.round(torch.sqrt(area / aspect)).long()
        fits = (h < height) & (w < width)
        h, w = h.clamp(max=height), w.clamp(max=width)
        top = torch.minimum((u[2] * (height - h + 1)).long(), height - h)
        left = torch.minimum((u[3] * (width - w + 1)).long(), width - w)
        # already masked inside every rectangle, from the integral image of the mask: [B, attempts]
        new = h * w - _rect_sums(mask, top, left, h, w)
        ok = fits & (new > 0) & (new <= cap) & running[:, None]
        accepted = ok.any(1)
        first = ok.long().argmax(1)
        h1, w1, t1, l1 = (_first(v, first) for v in (h, w, top, left))
        rect = (rows >= t1.view(-1, 1, 1)) & (rows < (t1 + h1).view(-1, 1, 1))
        rect = rect & (cols >= l1.view(-1, 1, 1)) & (cols < (l1 + w1).view(-1, 1, 1)) & accepted.view(-1, 1, 1)
        count = count + (rect & ~mask).sum((1, 2))
        mask = mask | rect
        running = running & accepted & (count < budget)
        z = torch.zeros_like(h1)
        draws.append(
            (
                _first(area, first),
                _first(aspect, first),
                *(torch.where(accepted, v, z) for v in (h1, w1, t1, l1)),
                accepted,
            )
        )
    mask = _top_up(mask, budget - count, generator)
    if draws:
        stacked = BlockDraws(*(torch.stack(col) for col in zip(*draws)))
    else:
        empty = torch.zeros(0, b, device=dev)
        stacked = BlockDraws(empty, empty, *(empty.long() for _ in range(4)), empty.bool())
    return mask, stacked


def _top_up(mask: Tensor, deficit: Tensor, generator: torch.Generator) -> Tensor:
    """Mask ``deficit[b]`` more patches: unmasked 4-neighbours of masked ones first, then the rest, random order."""
    b, height, width = mask.shape
    u = torch.rand(b, height * width, generator=generator, dtype=torch.float64, device=generator.device)
    if not bool((deficit > 0).any()):
        return mask
    m = mask.float().unsqueeze(1)
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], device=mask.device).view(1, 1, 3, 3)
    touches = (F.conv2d(m, cross, padding=1).squeeze(1) > 0).view(b, -1)
    flat = mask.view(b, -1)
    group = torch.where(flat, 2.0, torch.where(touches, 0.0, 1.0))  # masked ones sort last
    rank = torch.argsort(torch.argsort(group.double() + u.to(mask.device), dim=1), dim=1)
    return (flat | (rank < deficit[:, None])).view(b, height, width)


@register_masker("beit_block")
class BEiTBlockMasker(Masker):
    """BEiT block-wise masking: rectangles of log-uniform aspect until exactly round(ratio * H W) patches.

    See :func:`beit_block_mask` and the module docstring for the draws, the remaining loop over rounds and the
    top-up rule that makes the count exact.  Takes a :class:`~geomask.masking.layout.TokenGridLayout` with a
    2-D ``(H, W)`` grid.

    Args:
        ratio: masked share of the patches (BEiT: 75 of 196, about 0.4).
        min_block: least target area of a block in patches (BEiT: 16).
        max_block: largest target area (``None``: the remaining budget).
        min_aspect: least aspect ``h / w`` (BEiT: 0.3).
        max_aspect: largest aspect (``None``: ``1 / min_aspect``).
        attempts: rectangles tried per block (BEiT: 10).

    Shapes:
        layout ``(B, (H, W))`` → ``[B * H * W]`` bool, row-major (True = masked).
    """

    layouts = (TokenGridLayout,)

    def __init__(
        self,
        ratio: float = 0.4,
        min_block: int = 16,
        max_block: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        attempts: int = 10,
    ) -> None:
        self.ratio = check_ratio("beit_block", "ratio", ratio)
        self.min_block = check_int("beit_block", "min_block", min_block)
        self.max_block = None if max_block is None else check_int("beit_block", "max_block", max_block)
        self.attempts = check_int("beit_block", "attempts", attempts)
        lo = float(min_aspect)
        hi = 1.0 / lo if max_aspect is None and lo > 0 else max_aspect
        if not (lo > 0 and hi is not None and float(hi) >= lo):
            raise UsageError(f"beit_block: need 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}")
        self.min_aspect = lo
        self.max_aspect = None if max_aspect is None else float(max_aspect)

    def mask(self, layout: TokenGridLayout, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        if len(layout.shape) != 2:
            raise UsageError(f"beit_block: needs a 2-D (H, W) token grid, got {layout.shape}")
        budget = mask_counts(layout.counts(), self.ratio)
        mask, _ = beit_block_mask(
            budget,
            layout.shape,  # type: ignore[arg-type]
            generator,
            self.min_block,
            self.max_block,
            self.min_aspect,
            self.max_aspect,
            self.attempts,
        )
        return mask.reshape(-1)

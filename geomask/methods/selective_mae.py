"""SelectiveMAE (Wang et al. 2024, *Scaling Efficient Masked Image Modeling on Large Remote Sensing Dataset*): MAE at
85 % masking whose decoder reconstructs only a selected share of the masked patches, chosen by a semantic-richness
score, with the visible set grown by progressive semantic token selection (PSTS).

**Score.**  ``s_i`` = the mean Sobel gradient magnitude of patch ``i``, standardised over the patches of its image
(:func:`~geomask.grids.gradient.patch_gradient_energy`): textured patches score high.  The paper's code scores
patches by HOG (9 orientation bins, 8 × 8 cells); its per-patch value is the *mean of the standardised histogram*,
which is ≈ 0 for every patch, so its softmax draw is nearly uniform -- the gradient energy used here is the HOG
magnitude without the orientation binning, and it does rank patches.

**Visible set (PSTS)** of ``K = L - round(ratio · L)`` patches per image (``ratio`` = 0.85):

1. ``K₀ = ⌊K / 2⌋`` patches drawn without replacement ∝ ``softmax(s / τ)`` (the ``scored`` masker, Gumbel-top-k);
2. the other ``K - K₀`` by similarity to them: each remaining patch's key is its largest cosine similarity to a
   chosen one (patch embeddings with positions, no gradient); ``n_near`` of the *most* similar (representative)
   and ``n_far`` of the *least* similar (complementary) are added, ``n_near = round(ρ_t (K - K₀))``.  ``ρ_t``,
   the near share, is 1 until ``switch · T`` steps, then falls linearly to 0 over ``smooth · T`` steps
   (:func:`near_share`; the paper's 200 then 20 of 800 epochs: ``switch`` 0.25, ``smooth`` 0.025).  ``t`` is the
   ``step`` buffer, advanced only by :meth:`SelectiveMAE.on_train_step_end`.  The paper adds in two sub-rounds
   and ends in random expansion after its 800 epochs; here one round, no random phase.

**Reconstructed set**: ``R = round(reconstruct_ratio · L)`` of the masked patches (paper: 0.25, i.e. 49 of the
167 masked at ViT-B/16-224), drawn ∝ ``softmax(s / τ)`` among them (the ``scored`` masker again).

**Decoder**: the visible latents (and the class token) plus a mask token with its position at each of the ``R``
selected patches only -- ``1 + K + R`` tokens instead of MAE's ``1 + L`` (the paper's decoder cross-attends from
the ``R`` queries to the latents; here the same tokens in self-attention blocks).  Loss: ``norm_pix`` L2 over
the ``R`` patches (the ``loss`` section, default ``{name: l2}``):

.. math::
    \\mathcal{L} = \\frac{1}{|S|} \\sum_{i \\in S} \\frac{1}{P} \\lVert \\hat{x}_i - \\bar{x}_i \\rVert_2^2,
    \\qquad S \\subseteq M,\\ |S| = R

Any other token-grid masker replaces step 1-2 (the reconstructed share is still drawn by score).

**Pictures** (:meth:`SelectiveMAE.reconstruct_pixels`, for ``geomask eval images``): the PSTS mask, then *every*
masked patch predicted, in groups of ``R`` queries (the count the decoder trains with, each group beside the same
visible latents), mapped back to pixels with each patch's own mean and variance (``norm_pix``, MAE's visualisation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.grids.gradient import patch_gradient_energy
from geomask.grids.patches import patchify, unpatchify
from geomask.masking.base import Masker
from geomask.masking.layout import TokenGridLayout
from geomask.masking.scored import ScoredLayout, ScoredMasker
from geomask.methods.compose import loss_section, masker_section
from geomask.methods.mae import MAE, image_values
from geomask.nn.vit import MAEDecoder, ViT, attention_mask, visible_ids
from geomask.targets import NormalizedPatches

__all__ = ["SelectiveDecoder", "SelectiveMAE", "build_selective_mae", "near_share"]

_FAR = 1e6  # added to the scores of patches that must not be drawn (finite: ScoredLayout refuses inf)


def near_share(step: int, total_steps: int, switch: float = 0.25, smooth: float = 0.025) -> float:
    """PSTS's share of representative (most similar) tokens at ``step``: 1 until ``switch · T``, then linearly to 0
    over ``smooth · T`` steps (complementary tokens from then on)."""
    t = step / max(total_steps, 1)
    if smooth <= 0:
        return 1.0 if t < switch else 0.0
    return min(max(1.0 - (t - switch) / smooth, 0.0), 1.0)


class SelectiveDecoder(MAEDecoder):
    """A light decoder over the visible latents and mask tokens at the selected positions only (MAE's decoder
    with its parameters and names; only the tokens it runs on differ).

    Args:
        in_dim: encoder width; out_dim: per-patch output (``Π p_d · C``).
        dim, depth, heads, mlp_ratio: the decoder transformer.
        spatial_dims, grid, cls_token, eps: as :class:`~geomask.nn.vit.MAEDecoder`.

    Shapes:
        latent ``[B, c + K, E]``, ids_keep ``[B, K]`` (grid index of each latent token), ids_sel ``[B, R]`` (the
        patches to predict), keep_padding ``[B, K]`` / sel_padding ``[B, R]`` or ``None`` → ``[B, R, out_dim]``.
        The blocks see ``c + K + R`` tokens.
    """

    def forward(  # type: ignore[override]  # the selected positions come with the visible ones
        self,
        latent: Tensor,
        ids_keep: Tensor,
        ids_sel: Tensor,
        grid: Sequence[int],
        keep_padding: Tensor | None = None,
        sel_padding: Tensor | None = None,
    ) -> Tensor:
        h = self.embed(latent)
        pos = self.positions(grid, h.dtype, h.device)
        c = self.num_prefix
        prefix = h[:, :c] + pos[:c]
        visible = h[:, c:] + pos[c:][ids_keep]
        queries = self.mask_token.to(h.dtype) + pos[c:][ids_sel]
        x = torch.cat([prefix, visible, queries], dim=1)
        padding = None
        if keep_padding is not None or sel_padding is not None:
            kp = keep_padding if keep_padding is not None else ids_keep.new_zeros(ids_keep.shape, dtype=torch.bool)
            sp = sel_padding if sel_padding is not None else ids_sel.new_zeros(ids_sel.shape, dtype=torch.bool)
            padding = torch.cat([kp, sp], dim=1)
        attn = attention_mask(padding, c)
        for block in self.blocks:
            x = block(x, attn)
        return self.pred(self.norm(x[:, x.size(1) - ids_sel.size(1) :]))


class SelectiveMAE(MAE):
    """SelectiveMAE pretraining (module docstring).

    Args:
        encoder, loss, target, pool: as :class:`~geomask.methods.mae.MAE`.
        decoder: a :class:`SelectiveDecoder`.
        masker: ``scored`` (PSTS: its ``ratio`` is the mask ratio, ``temperature`` the draw's ``τ``, ``fraction``
            must be 1) or any token-grid masker.
        reconstruct_ratio: ``R / L``, the reconstructed patches' share of all patches.
        total_steps, switch, smooth: PSTS's schedule (:func:`near_share`).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: SelectiveDecoder,
        masker: Masker,
        loss: nn.Module,
        target: nn.Module | None,
        reconstruct_ratio: float = 0.25,
        total_steps: int = 1000,
        switch: float = 0.25,
        smooth: float = 0.025,
        pool: str = "mean",
    ):
        super().__init__(encoder, decoder, masker, loss, target, pool)  # type: ignore[arg-type]
        if not 0.0 < reconstruct_ratio <= 1.0:
            raise UsageError(f"selective_mae: reconstruct_ratio must be in (0, 1], got {reconstruct_ratio!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise UsageError(f"selective_mae: total_steps must be an integer >= 1, got {total_steps!r}")
        if not (0.0 <= switch <= 1.0 and 0.0 <= smooth <= 1.0):
            raise UsageError(f"selective_mae: switch and smooth must be in [0, 1], got {switch!r}, {smooth!r}")
        self.reconstruct_ratio, self.total_steps = float(reconstruct_ratio), total_steps
        self.switch, self.smooth = float(switch), float(smooth)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # optimiser steps taken (checkpointed)

    def temperature(self) -> float:
        return self.masker.temperature if isinstance(self.masker, ScoredMasker) else 1.0

    def scores(self, values: Tensor) -> Tensor:
        """The semantic-richness score of every patch, ``[B, L]`` (standardised gradient energy, no gradient)."""
        return patch_gradient_energy(values, self.encoder.patch)

    def _draw(self, layout: TokenGridLayout, scores: Tensor, count: int, generator: torch.Generator) -> Tensor:
        """``count`` patches per image drawn ∝ softmax(scores / τ) without replacement: ``[B, L]`` bool."""
        n = math.prod(layout.shape)
        masker = ScoredMasker(count / n, 1.0, self.temperature())
        return masker(ScoredLayout(layout, scores), generator).view(layout.num_samples, n)

    def psts_visible(self, values: Tensor, scores: Tensor, generator: torch.Generator) -> Tensor:
        """PSTS's visible patches (module docstring, steps 1-2): ``[B, L]`` bool, True = visible."""
        b = values.size(0)
        layout = TokenGridLayout(b, self.encoder.grid(values), values.device)
        n = scores.size(1)
        k = n - int(math.floor(self.masker.ratio * n + 0.5))
        k0 = max(k // 2, 1) if k else 0
        chosen = self._draw(layout, scores, k0, generator) if k0 else scores.new_zeros(scores.shape, dtype=torch.bool)
        extra = k - k0
        if extra <= 0:
            return chosen
        with torch.no_grad():
            emb = F.normalize(self.encoder.embed(values)[:, self.encoder.num_prefix :], dim=-1)
            sim = (emb @ emb.transpose(1, 2)).masked_fill(~chosen[:, None, :], -2.0).amax(-1)  # [B, L]
            order = torch.argsort(sim.masked_fill(chosen, -3.0), dim=1, descending=True, stable=True)[:, : n - k0]
        n_near = int(math.floor(near_share(int(self.step), self.total_steps, self.switch, self.smooth) * extra + 0.5))
        picked = torch.cat([order[:, :n_near], order[:, n - k0 - (extra - n_near) :]], dim=1)
        return chosen.scatter(1, picked, True)

    def draw(self, values: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """This step's ``mask [B, L]`` (True = masked) and ``selected [B, L]`` (True = masked and reconstructed)."""
        b = values.size(0)
        layout = TokenGridLayout(b, self.encoder.grid(values), values.device)
        scores = self.scores(values)
        if isinstance(self.masker, ScoredMasker):
            mask = ~self.psts_visible(values, scores, generator)
        else:
            mask = self.masker(layout, generator).view(b, -1)
        r = max(int(math.floor(self.reconstruct_ratio * scores.size(1) + 0.5)), 1)
        selected = self._draw(layout, scores - _FAR * (~mask).to(scores.dtype), r, generator) & mask
        return mask, selected

    def loss_terms(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """``loss`` (= ``reconstruction``, over the selected masked patches)."""
        x = image_values(batch, generator)
        mask, selected = self.draw(x, generator)
        p = self.encode(x, mask)
        ids_sel, sel_padding = visible_ids(~selected)  # the selected patches, in grid order
        pred = self.decoder(p.latent, p.ids_keep, ids_sel, p.grid, p.padding, sel_padding)  # type: ignore[call-arg]
        target = self.patch_targets(x)
        target = target.gather(1, ids_sel[..., None].expand(-1, -1, target.size(-1)))
        valid = torch.ones_like(ids_sel, dtype=torch.bool) if sel_padding is None else ~sel_padding
        loss = self.criterion(pred, target, valid)
        return {"loss": loss, "reconstruction": loss}

    def reconstruct(self, values: Tensor, mask: Tensor | None = None, *, noise: Tensor | None = None):
        raise UsageError("selective_mae predicts the selected patches only: use loss_terms or draw + decoder")

    @torch.no_grad()
    def reconstruct_pixels(self, batch: Any, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(masked_input, reconstruction)``, both ``[B, C, H, W]`` in the batch's pixel space (module docstring,
        *Pictures*): masked patches at 0 in the first, predicted in the second, visible patches the input's."""
        x = image_values(batch)
        mask, _ = self.draw(x, generator)
        b, n = mask.shape
        p = self.encode(x, mask)
        r = max(int(math.floor(self.reconstruct_ratio * n + 0.5)), 1)
        ids, pad = visible_ids(~mask)  # the masked patches in grid order [B, M]
        if pad is None:
            pad = torch.zeros_like(ids, dtype=torch.bool)
        groups = max(-(-ids.size(1) // r), 1)
        fill = groups * r - ids.size(1)
        ids, pad = F.pad(ids, (0, fill)), F.pad(pad, (0, fill), value=True)
        sel, sel_pad = ids.view(b * groups, r), pad.view(b * groups, r)
        rep = [None if t is None else t.repeat_interleave(groups, 0) for t in (p.latent, p.ids_keep, p.padding)]
        pred = self.decoder(rep[0], rep[1], sel, p.grid, rep[2], sel_pad if bool(sel_pad.any()) else None)
        patch = self.encoder.patch
        raw = patchify(x, patch)
        full = raw.new_zeros(b, n + 1, raw.size(-1))  # row n takes the fillers
        rows = ids.masked_fill(pad, n)[..., None].expand(-1, -1, raw.size(-1))
        full.scatter_(1, rows, pred.reshape(b, -1, pred.size(-1)))
        pred = full[:, :n]
        if self.target is not None:
            eps = float(getattr(self.target, "eps", 1e-6))
            pred = pred * (raw.var(-1, keepdim=True) + eps).sqrt() + raw.mean(-1, keepdim=True)
        m = mask[..., None]
        spatial = tuple(x.shape[2:])
        shown = unpatchify(torch.where(m, pred, raw), patch, spatial)
        return unpatchify(raw.masked_fill(m, 0.0), patch, spatial), shown

    def on_train_step_end(self, step: int) -> None:
        """Move PSTS's schedule: ``step + 1`` optimiser steps have been taken."""
        self.step.fill_(int(step) + 1)


def build_selective_mae(
    *,
    image_size: int | Sequence[int] = 224,
    patch_size: int | Sequence[int] = 16,
    in_channels: int = 3,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_ratio: float = 4.0,
    decoder_dim: int = 512,
    decoder_depth: int = 8,
    decoder_heads: int = 16,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    reconstruct_ratio: float = 0.25,
    total_steps: int = 1000,
    switch: float = 0.25,
    smooth: float = 0.025,
    norm_pix: bool = True,
    cls_token: bool = True,
    eps: float = 1e-6,
    pool: str = "mean",
) -> SelectiveMAE:
    """SelectiveMAE by keywords (ViT-B/16 at 224 with an 8-block 512-wide decoder, the paper's ``train.sh``).

    ``masker`` defaults to ``{name: scored, ratio: 0.85, temperature: 1.0}`` (PSTS at 85 % masking), ``loss`` to
    ``{name: l2}``; ``reconstruct_ratio`` (paper: 0.25) is the share of all patches the decoder predicts.
    """
    encoder = ViT(
        patch_size, in_channels, dim, depth, heads, mlp_ratio, image_size=image_size, cls_token=cls_token, eps=eps
    )
    msk = masker_section(masker, {"name": "scored", "ratio": 0.85, "fraction": 1.0, "temperature": 1.0})
    if isinstance(msk, ScoredMasker):
        if msk.fraction != 1.0:
            raise UsageError(f"method.masker: selective_mae's scored masker takes fraction 1, got {msk.fraction}")
    elif not issubclass(TokenGridLayout, tuple(msk.layouts)):
        raise UsageError(
            f"method.masker: selective_mae masks patches: give 'scored' or a token-grid masker, got {msk.name!r}"
        )
    decoder = SelectiveDecoder(
        dim,
        encoder.patch_embed.in_features,
        decoder_dim,
        decoder_depth,
        decoder_heads,
        mlp_ratio,
        spatial_dims=2,
        grid=encoder.image_grid,
        cls_token=cls_token,
        eps=eps,
    )
    crit = loss_section(loss, {"name": "l2"})
    return SelectiveMAE(
        encoder,
        decoder,
        msk,
        crit,
        NormalizedPatches(1e-6) if norm_pix else None,
        reconstruct_ratio,
        total_steps,
        switch,
        smooth,
        pool,
    )

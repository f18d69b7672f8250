"""CPCM (Liu et al., ICCV 2023): contextual masked training for weakly supervised scene segmentation.

Per step, each scene is augmented twice (views A and B) and voxelized. One sparse batch holds three copies
(scenes ``0..B-1``: A full; ``B..2B-1``: A with RegionMask; ``2B..3B-1``: B with RegionMask): the masked copies
keep every site but their masked voxels' input features are zeroed
(:class:`~geomask.masking.region.RegionMasker`). The segmentation U-Net (with a class head) runs once:

.. math::
    \\mathcal{L} = \\mathrm{CE}(A; \\text{labelled points})
      + w(t) \\Big[\\overline{\\mathrm{JS}}\\big(p_{A'} \\,\\|\\, \\mathrm{sg}(p_A)\\big)
      + \\overline{\\mathrm{JS}}\\big(p_{B'}[v] \\,\\|\\, \\mathrm{sg}(p_A)[u]\\big)_{(u, v)}\\Big]

``JS`` within the view is averaged over all voxels of A' (same rows as A); across views over the distinct
voxel pairs ``(u, v)`` of A and B holding a common point (:func:`~geomask.points.augment.voxel_pairs`).
``JS`` is the ``loss`` section (default ``{name: js}``, :class:`~geomask.losses.JSDivergence`; any registered
``loss(logits [P, K], probabilities [P, K]) -> scalar``), CE :func:`~geomask.losses.cross_entropy`; the masker
(default ``{name: region, grid: grid, ratio: mask_ratio}``) is called on a
:class:`~geomask.masking.layout.GridLayout` of the three copies.
``w(t) = w_max · exp(-5 (1 - min(t / T, 1))^2)`` is the sigmoid-shaped ramp-up (Laine & Aila), ``t`` the
number of optimiser steps taken (buffer ``num_updates``, advanced by :meth:`CPCM.on_train_step_end`, never by
``forward``). With ``masker=None`` the method is the *no-mask baseline*: the same network trained by the
cross-entropy on view A alone.  The U-Net is the method's ``encoder`` (registered as ``backbone``, so
checkpoints keep their keys).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from geomask.losses import JSDivergence, cross_entropy
from geomask.masking.base import Masker
from geomask.masking.layout import GridLayout
from geomask.masking.region import zero_masked
from geomask.methods.base import SCENE_DATA, Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.nn.sparse_unet import SparseResUNet, SparseUNetOutput, build_sparse_unet
from geomask.points.augment import GEOMETRY_WIDTH, SceneAugment, ScenePoints, to_sparse, voxel_pairs
from geomask.sparse import SparseTensor

__all__ = ["CPCM", "build_cpcm", "sigmoid_rampup"]


def sigmoid_rampup(step: int | float, length: int | float) -> float:
    """``exp(-5 (1 - min(step / length, 1))^2)``; 1 when ``length <= 0``."""
    if length <= 0:
        return 1.0
    t = min(max(float(step) / float(length), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


class CPCM(Method):
    """Weakly supervised segmentation with contextual masked training.

    Args:
        backbone: a U-Net with a class head (``out_channels = num_classes``).
        voxel_size: voxel edge in metres.
        geometry: coordinate-derived input channels appended after augmentation (``none``, ``height``,
            ``xyz``; see :func:`~geomask.points.augment.geometry_features`); ``in_channels`` counts them.
        masker: the RegionMask, or ``None`` for the no-mask baseline.
        augment: draws the views.
        consistency_weight: ``w_max``.
        rampup_steps: ``T`` of the ramp-up.
        ignore_index: label of unlabelled / unknown points.
        within, across: which consistency terms to use.
        loss: the consistency loss ``loss(logits [P, K], target probabilities [P, K]) -> scalar`` (default
            :class:`~geomask.losses.JSDivergence`, the mean JS divergence over the rows).

    Shapes:
        batch: :class:`ScenePoints` with labels ``[N]`` (``ignore_index`` except on the few labelled points)
        → ``{"loss", "ce", "js_within", "js_across", "weight"}``.
    """

    data_kinds = SCENE_DATA

    def __init__(
        self,
        backbone: SparseResUNet,
        voxel_size: float,
        masker: Masker | None,
        augment: SceneAugment,
        consistency_weight: float = 1.0,
        rampup_steps: int = 100,
        ignore_index: int = -1,
        within: bool = True,
        across: bool = True,
        geometry: str = "none",
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if backbone.head is None:
            raise ValueError("CPCM needs a U-Net with a class head (out_channels = number of classes)")
        self.backbone = backbone
        self.num_classes = backbone.out_channels
        self.voxel_size, self.masker, self.augment = float(voxel_size), masker, augment
        self.consistency_weight, self.rampup_steps = float(consistency_weight), int(rampup_steps)
        self.ignore_index, self.within, self.across = int(ignore_index), bool(within), bool(across)
        self.geometry = geometry
        self.consistency = loss if loss is not None else JSDivergence()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def encoder(self) -> SparseResUNet:
        """The segmentation U-Net (the ``backbone`` submodule: parameter names stay ``backbone.*``)."""
        return self.backbone

    def on_train_step_end(self, step: int) -> None:
        """Count optimiser step ``step`` (the consistency weight's ramp-up follows ``num_updates``)."""
        self.num_updates += 1

    def features(self, batch: ScenePoints | SparseTensor) -> Tensor | SparseUNetOutput:
        """Evaluation features: of a :class:`ScenePoints` batch, :meth:`embed` (last decoder level per point);
        of a voxelized :class:`SparseTensor`, the U-Net's output (``out``: class logits per voxel; ``levels``:
        decoder features)."""
        if isinstance(batch, SparseTensor):
            return self.backbone(batch)
        return self.embed(batch)

    @torch.no_grad()
    def predict(self, batch: ScenePoints) -> Tensor:
        """Class logits per point ``[N, K]`` (each point gets its voxel's), no augmentation."""
        x, inverse = to_sparse(batch.points, batch.feats, batch.batch, self.voxel_size, self.geometry)
        return self.backbone(x).out.feats[inverse]

    def embed(self, batch: ScenePoints) -> Tensor:
        """Last decoder level features per point, ``[N, C]``."""
        x, inverse = to_sparse(batch.points, batch.feats, batch.batch, self.voxel_size, self.geometry)
        return self.backbone(x).levels[-1].feats[inverse]

    def loss_terms(self, batch: ScenePoints, generator: torch.Generator) -> dict[str, Tensor]:
        """CE and the consistency terms (:meth:`forward`) at the ramp-up weight of step ``num_updates``."""
        if batch.labels is None:
            raise ValueError("CPCM needs labels (ignore_index on unlabelled points)")
        step = int(self.num_updates)
        nb, n = batch.num_scenes, len(batch.points)
        pa, fa = self.augment(batch.points, batch.feats, batch.batch, generator, nb)
        if self.masker is None:
            x, inverse = to_sparse(pa, fa, batch.batch, self.voxel_size, self.geometry)
        else:
            pb, fb = self.augment(batch.points, batch.feats, batch.batch, generator, nb)
            b3 = torch.cat([batch.batch, batch.batch + nb, batch.batch + 2 * nb])
            x, inverse = to_sparse(torch.cat([pa, pa, pb]), torch.cat([fa, fa, fb]), b3, self.voxel_size, self.geometry)
            hidden = self.masker(GridLayout(x.coords, 3 * nb), generator) & (x.coords[:, 0] >= nb)
            x = x.replace(zero_masked(x.feats, hidden))
        logits = self.backbone(x).out.feats
        inv_a = inverse[:n]
        lab = batch.labels
        known = lab != self.ignore_index
        ce = cross_entropy(logits[inv_a[known]], lab[known])  # 0 without labelled points
        zero = logits.new_zeros(())
        out = {"ce": ce.detach(), "js_within": zero, "js_across": zero, "weight": zero}
        if self.masker is None:
            out["loss"] = ce
            return out
        w = self.consistency_weight * sigmoid_rampup(step, self.rampup_steps)
        target = logits.softmax(-1).detach()
        is_a = x.coords[:, 0] < nb
        rows_a = is_a.nonzero().squeeze(1)
        # A and A' voxelize the same points: voxel rows of A' are those of A shifted by |A|
        js_w = self.consistency(logits[rows_a + len(rows_a)], target[rows_a]) if self.within else zero
        if self.across:
            u, v = voxel_pairs(inv_a, inverse[2 * n :])
            js_x = self.consistency(logits[v], target[u])
        else:
            js_x = zero
        out.update(js_within=js_w.detach(), js_across=js_x.detach(), weight=logits.new_tensor(w))
        out["loss"] = ce + w * (js_w + js_x)
        return out


@section_aliases(masker=("grid", "mask_ratio"))
def build_cpcm(
    *,
    num_classes: int = 20,
    backbone: str = "Res16UNet14",
    in_channels: int = 3,
    geometry: str = "none",
    stem_kernel: int = 3,
    voxel_size: float = 0.05,
    mask: bool = True,
    grid: int = 4,
    mask_ratio: float = 0.75,
    masker: Mapping | str | None = None,
    loss: Mapping | str | None = None,
    consistency_weight: float = 1.0,
    rampup_steps: int = 100,
    ignore_index: int = -1,
    within: bool = True,
    across: bool = True,
    rotate: float = 3.141592653589793,
    scale: tuple[float, float] = (0.9, 1.1),
    flip: float = 0.5,
    jitter: float = 0.005,
    color_jitter: float = 0.05,
    color_channels: int = 3,
    elastic: tuple[float, float] | None = None,
) -> CPCM:
    """CPCM (``mask=True``) or its no-mask baseline (``mask=False``, which has no masker and ignores ``masker``)
    on a registered sparse U-Net.  ``masker`` defaults to ``{name: region, grid: grid, ratio: mask_ratio}``,
    ``loss`` (the consistency term) to ``{name: js}``."""
    net = build_sparse_unet(
        backbone, in_channels + GEOMETRY_WIDTH[geometry], num_classes, dim=3, stem_kernel=stem_kernel
    )
    aug = SceneAugment(
        rotate, tuple(scale), flip, jitter, color_jitter, color_channels, None if elastic is None else tuple(elastic)
    )
    default = {"name": "region", "grid": grid, "ratio": mask_ratio}
    msk = masker_section(masker, default, layout=GridLayout) if mask else None
    crit = loss_section(loss, {"name": "js"})
    return CPCM(
        net, voxel_size, msk, aug, consistency_weight, rampup_steps, ignore_index, within, across, geometry, crit
    )

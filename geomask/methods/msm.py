"""Masked Scene Modeling (MSM; Hermosilla et al., CVPR 2025): a student reconstructs an EMA teacher's deep
features of masked voxels, at every decoder level of a sparse U-Net, across two views.

The paper's pretraining code was never released; this is our reading of its design, runnable end to end:

1. **Two views.** Each scene is augmented twice (:class:`~geomask.points.augment.SceneAugment`) and each
   view voxelized; the views are stacked as scenes ``0..B-1`` (view A) and ``B..2B-1`` (view B) of one
   sparse batch, so teacher and student each run once per step.
2. **Teacher.** An EMA copy of the U-Net sees both full views (no gradient) and gives the targets: its
   decoder features at strides 8, 4, 2, 1, normalised per row with a parameter-free LayerNorm (data2vec's
   target normalisation, which keeps the targets from collapsing to a constant).
3. **Student.** The same U-Net sees only the visible voxels (:class:`~geomask.masking.voxel.VoxelMasker`,
   ratio 0.4; cells of ``mask_cell`` voxels). Its encoder runs on the visible sites; its decoder is
   *densified bottom-up*: at every decoder level ``j`` the ``mask_hook`` moves the up-sampled and skip
   features onto the **full** view's sites of that stride (the teacher's lineage), filling sites that have
   no visible voxel with learnable mask tokens (one for the skip features of every level, one for the
   up-sampled features at the first level; later levels up-sample from already dense sites). So the
   decoder output of every level lives on the very coordinate rows of the teacher's, masked sites included.
   The op is :func:`geomask.sparse.densify.densify`, shared with SparK's decoder.
4. **Loss.** A linear predictor per level maps student features to the target width. At level ``j``
   (stride ``s``) every point gives a site pair ``(⌊a/s⌋, ⌊b/s⌋)`` between its voxels in views A and B; on
   the distinct pairs whose *student* site is masked, the student's prediction in one view is pulled to
   the teacher's target in the **other** view, both directions:

   .. math::
       \\mathcal{L} = \\sum_j \\frac{1}{|P_j|}
           \\sum_{(u, v) \\in P_j} \\ell\\big(h_j(S_j[u]), \\mathrm{LN}(T_j[v])\\big),
       \\qquad \\ell = 1 - \\cos \\;\\text{(default) or smooth-}L_1

   ``LN`` is :class:`~geomask.targets.LayerNormTarget`; ``ℓ`` the ``loss`` section, any registered loss
   ``loss(pred [P, C], target [P, C]) -> scalar`` (default ``{name: cosine, eps: 1e-6}``,
   :class:`~geomask.losses.CosineError`; ``loss: smooth_l1`` is :class:`~geomask.losses.SmoothL1`).

5. **EMA.** ``teacher ← m · teacher + (1 - m) · student`` (parameters; buffers copied): the teacher is a
   :class:`~geomask.targets.EMATeacher` (the U-Net under ``teacher.module``), updated by
   :meth:`MSM.on_train_step_end` after every optimiser step (the training engine calls it; a hand-written
   loop calls it after ``optimizer.step()``), never by ``forward``.  The buffer ``num_updates`` counts the
   steps taken.  State dicts written before the teacher was a component (keys ``teacher.*``) still load: a
   load hook renames them to ``teacher.module.*``.

The student U-Net is the method's ``encoder`` (registered as ``backbone``, so checkpoints keep their keys;
``encoder.pt`` holds it).  Features for evaluation (:meth:`MSM.features`) come from the teacher
(``embed_with="teacher"``, the default) or the student.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomask.losses import CosineError
from geomask.masking.base import Masker
from geomask.masking.layout import GridLayout
from geomask.methods.base import SCENE_DATA, Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.nn.sparse_unet import SparseResUNet, SparseUNetOutput, build_sparse_unet
from geomask.points.augment import GEOMETRY_WIDTH, SceneAugment, ScenePoints, to_sparse
from geomask.sparse import SparseTensor
from geomask.sparse.densify import densify, site_rows
from geomask.targets import EMATeacher, LayerNormTarget

__all__ = ["MSM", "build_msm", "site_rows"]


class MSM(Method):
    """Masked Scene Modeling.

    Args:
        backbone: the student U-Net (no head); the teacher is its :class:`~geomask.targets.EMATeacher`.
        voxel_size: voxel edge in metres.
        geometry: coordinate-derived input channels appended after augmentation (``none``, ``height``,
            ``xyz``; see :func:`~geomask.points.augment.geometry_features`); ``in_channels`` counts them.
        masker: chooses the hidden voxels of every view (called on a :class:`~geomask.masking.layout.GridLayout`).
        augment: draws the two views.
        momentum: EMA momentum ``m``.
        loss: the level loss ``loss(pred [P, C], target [P, C]) -> scalar`` (default
            :class:`~geomask.losses.CosineError` with ``eps=1e-6``).
        embed_with: ``"teacher"`` or ``"student"`` features for :meth:`features`.

    Shapes:
        batch: :class:`ScenePoints` with ``N`` points → ``{"loss", "level0".."level3", "masked_ratio"}``.
    """

    data_kinds = SCENE_DATA

    def __init__(
        self,
        backbone: SparseResUNet,
        voxel_size: float,
        masker: Masker,
        augment: SceneAugment,
        momentum: float = 0.99,
        loss: nn.Module | None = None,
        embed_with: str = "teacher",
        geometry: str = "none",
    ) -> None:
        super().__init__()
        if backbone.head is not None:
            raise ValueError("MSM needs a U-Net without a head (out_channels=None)")
        if embed_with not in ("teacher", "student"):
            raise ValueError(f"embed_with must be 'teacher' or 'student', got {embed_with!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.backbone = backbone
        self.teacher = EMATeacher(backbone, momentum)
        self.target = LayerNormTarget()
        self.criterion = loss if loss is not None else CosineError(eps=1e-6)
        self.voxel_size, self.masker, self.augment = float(voxel_size), masker, augment
        self.embed_with = embed_with
        self.geometry = geometry
        planes, skips = backbone.planes, [backbone.planes[0], *backbone.planes[:3]]
        dec = planes[4:]
        self.up_token = nn.Parameter(torch.zeros(planes[4]))
        self.skip_tokens = nn.ParameterList(nn.Parameter(torch.zeros(skips[3 - j])) for j in range(4))
        self.predictors = nn.ModuleList(nn.Linear(c, c) for c in dec)
        for t in (self.up_token, *self.skip_tokens):
            nn.init.normal_(t, 0.0, 0.02)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(_legacy_teacher_keys)

    @property
    def encoder(self) -> SparseResUNet:
        """The student U-Net (the ``backbone`` submodule: parameter names stay ``backbone.*``)."""
        return self.backbone

    @property
    def momentum(self) -> float:
        """The EMA momentum ``m`` (the teacher's)."""
        return self.teacher.momentum

    # ------------------------------------------------------------------ teacher
    @torch.no_grad()
    def on_train_step_end(self, step: int) -> None:
        """The EMA update of the teacher after optimiser step ``step``; counts the step in ``num_updates``."""
        self.teacher.update(self.backbone, step)
        self.num_updates += 1

    # ------------------------------------------------------------------ features
    def features(self, batch: ScenePoints | SparseTensor) -> list[Tensor] | SparseUNetOutput:
        """Evaluation features: of a :class:`ScenePoints` batch, :meth:`embed`'s per-point features of every
        decoder level; of a voxelized :class:`SparseTensor`, the evaluation network's output on it (all decoder
        levels in ``levels``; :mod:`geomask.eval.probe` reads these)."""
        if isinstance(batch, SparseTensor):
            return self._eval_net()(batch)
        return self.embed(batch)

    def _eval_net(self) -> SparseResUNet:
        return self.teacher.module if self.embed_with == "teacher" else self.backbone

    def embed(self, batch: ScenePoints) -> list[Tensor]:
        """Per-point features of every decoder level (nearest site), coarse to fine: ``[N, C_j]`` each."""
        x, inverse = to_sparse(batch.points, batch.feats, batch.batch, self.voxel_size, self.geometry)
        out = self._eval_net()(x)
        return [lv.feats[site_rows(lv, x.coords)[inverse]] for lv in out.levels]

    # ------------------------------------------------------------------ training
    def _student(self, x: SparseTensor, visible: Tensor, full_enc: list[SparseTensor]) -> tuple[list, list[Tensor]]:
        """Student decoder levels on the full sites, and which of those sites are masked, per level."""
        xs = SparseTensor(x.coords[visible], x.feats[visible])
        enc = self.backbone.encode(xs)
        masked: list[Tensor] = []

        def hook(j: int, up: SparseTensor, skip: SparseTensor) -> tuple[SparseTensor, SparseTensor]:
            full = full_enc[3 - j]
            up_f, _ = densify(up, full, self.up_token)
            skip_f, hidden = densify(skip, full, self.skip_tokens[j])
            masked.append(hidden)
            return full.replace(up_f), full.replace(skip_f)

        levels = self.backbone.decode(enc, hook)
        return levels, masked

    def loss_terms(self, batch: ScenePoints, generator: torch.Generator) -> dict[str, Tensor]:
        """The per-level losses (:meth:`forward`); the teacher is read, never updated, here."""
        nb = batch.num_scenes
        pa, fa = self.augment(batch.points, batch.feats, batch.batch, generator, nb)
        pb, fb = self.augment(batch.points, batch.feats, batch.batch, generator, nb)
        n = len(batch.points)
        pts = torch.cat([pa, pb])
        x, inverse = to_sparse(
            pts, torch.cat([fa, fb]), torch.cat([batch.batch, batch.batch + nb]), self.voxel_size, self.geometry
        )
        inv_a, inv_b = inverse[:n], inverse[n:]
        hidden = self.masker(GridLayout(x.coords, 2 * nb), generator)
        with torch.no_grad():
            t_out = self.teacher(x)
        levels, masked = self._student(x, ~hidden, t_out.encoder)
        losses: dict[str, Tensor] = {}
        total = x.feats.new_zeros(())
        for j, (s_lv, t_lv, m_j) in enumerate(zip(levels, t_out.levels, masked)):
            ra = site_rows(t_lv, x.coords[inv_a])
            rb = site_rows(t_lv, x.coords[inv_b])
            key = torch.unique(ra * len(t_lv) + rb)
            ra, rb = torch.div(key, len(t_lv), rounding_mode="floor"), key % len(t_lv)
            # student site in one view, target in the other, wherever the student site is masked
            src = torch.cat([rb[m_j[rb]], ra[m_j[ra]]])
            dst = torch.cat([ra[m_j[rb]], rb[m_j[ra]]])
            if len(src) == 0:
                lv_loss = s_lv.feats.sum() * 0.0
            else:
                lv_loss = self.criterion(self.predictors[j](s_lv.feats[src]), self.target(t_lv.feats[dst]))
            losses[f"level{j}"] = lv_loss.detach()
            total = total + lv_loss
        losses["loss"] = total / len(levels)
        losses["masked_ratio"] = hidden.float().mean().detach()
        return losses


def _legacy_teacher_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load hook: ``teacher.X`` → ``teacher.module.X`` (state dicts from before the teacher was an
    :class:`~geomask.targets.EMATeacher`), in place, so old checkpoints keep loading."""
    old, new = f"{prefix}teacher.", f"{prefix}teacher.module."
    if any(k.startswith(new) for k in state_dict):
        return
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old) :]] = state_dict.pop(key)


@section_aliases(masker=("mask_ratio", "mask_cell"))
def build_msm(
    *,
    backbone: str = "Res16UNet14",
    in_channels: int = 3,
    geometry: str = "none",
    stem_kernel: int = 3,
    voxel_size: float = 0.05,
    mask_ratio: float = 0.4,
    mask_cell: int = 8,
    masker: Mapping | str | None = None,
    momentum: float = 0.99,
    loss: Mapping | str | None = "cosine",
    embed_with: str = "teacher",
    rotate: float = 3.141592653589793,
    scale: tuple[float, float] = (0.9, 1.1),
    flip: float = 0.5,
    jitter: float = 0.005,
    color_jitter: float = 0.05,
    color_channels: int = 3,
    elastic: tuple[float, float] | None = None,
) -> MSM:
    """MSM on a registered sparse U-Net (``geomask.nn.sparse_unet.UNET_CONFIGS``).

    ``masker`` defaults to ``{name: voxel, ratio: mask_ratio, cell: mask_cell}``; ``loss`` (a name or a section)
    to ``{name: cosine, eps: 1e-6}`` (so ``loss: cosine`` and ``loss: smooth_l1`` read as before).
    """
    net = build_sparse_unet(backbone, in_channels + GEOMETRY_WIDTH[geometry], None, dim=3, stem_kernel=stem_kernel)
    aug = SceneAugment(
        rotate, tuple(scale), flip, jitter, color_jitter, color_channels, None if elastic is None else tuple(elastic)
    )
    msk = masker_section(masker, {"name": "voxel", "ratio": mask_ratio, "cell": mask_cell}, layout=GridLayout)
    crit = loss_section(loss, {"name": "cosine", "eps": 1e-6})
    return MSM(net, voxel_size, msk, aug, momentum, crit, embed_with, geometry)

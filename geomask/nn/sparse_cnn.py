"""A ResNet whose convolutions, norms and pooling are :mod:`geomask.sparse` ops (SparK's encoder, true sparsity).

The same module runs on two inputs:

* a :class:`~geomask.sparse.SparseTensor` of 2-D pixel sites (``sparse=True``, the default): on **every** site
  of a dense image it computes what the dense ResNet computes with the same weights; on the **visible** sites of a
  masked image it is SparK's encoder, skipping the masked sites' work instead of zeroing them;
* a dense ``[B, C, H, W]`` tensor (``sparse=False``, the *dense twin*: ``torch.nn.Conv2d`` / ``BatchNorm2d`` /
  ``MaxPool2d`` with torchvision's parameter names, so ``resnet18``'s state dict loads into it).
  :meth:`SparseCNN.to_dense` exports a sparse network's weights into its twin (a pretrained encoder fine-tunes as
  a dense one); :meth:`SparseCNN.load_dense_state_dict` imports dense weights.  With ``active`` the twin is
  SparK's *masked dense emulation*: every convolution's and pooling's output re-masked, BatchNorm over the
  active sites only (the reference the benchmark compares with).

A sparse convolution with stride ``s`` outputs at the parent sites ``⌊x / s⌋ · s`` and equals the dense one with
padding ``k // 2``, so the stem (7×7/2, max pool 3×3/2), the strided 3×3 convolutions and the strided 1×1
shortcuts line up with torchvision's ResNet (v1.5: stride on the 3×3 of a bottleneck).  BatchNorm is
:class:`~geomask.sparse.SparseBatchNorm`: statistics over the active sites only (SparK's ``SparseBatchNorm2d``).
Sparse weights are ``[K, C_in, C_out]`` with offsets row-major; the dense weight is
``W.permute(2, 1, 0).reshape(C_out, C_in, k, k)``.

Shapes:
    sparse: coords ``[N, 3]`` ``(b, row, col)``, feats ``[N, C]`` → one :class:`SparseTensor` per stage (fine to
    coarse, strides :attr:`SparseCNN.strides`); dense: ``[B, C, H, W]`` → ``[B, C_j, H / s_j, W / s_j]`` per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from geomask.errors import UsageError
from geomask.sparse import SparseBatchNorm, SparseConv, SparseMaxPool, SparseTensor, global_pool

__all__ = ["CNN_CONFIGS", "SparseCNN", "build_sparse_cnn", "dense_conv_weight", "sparse_conv_weight"]

Feature = SparseTensor | Tensor

# registered sizes: ResNet-18/34/50 as torchvision; ``tiny`` for CPU runs on 32 x 32 images (stride 8 at the end)
CNN_CONFIGS: dict[str, dict[str, Any]] = {
    "resnet18": {"block": "basic", "layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512)},
    "resnet34": {"block": "basic", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512)},
    "resnet50": {"block": "bottleneck", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512)},
    "tiny": {
        "block": "basic",
        "layers": (1, 1, 1, 1),
        "widths": (16, 32, 64, 128),
        "stem_width": 16,
        "stem_kernel": 3,
        "stem_stride": 1,
        "stem_pool": False,
    },
}


def dense_conv_weight(w: Tensor, kernel_size: int) -> Tensor:
    """Sparse ``[K, C_in, C_out]`` (offsets row-major) → dense ``[C_out, C_in, k, k]``."""
    return w.permute(2, 1, 0).reshape(w.size(2), w.size(1), kernel_size, kernel_size)


def sparse_conv_weight(w: Tensor) -> Tensor:
    """Dense ``[C_out, C_in, k, k]`` → sparse ``[k², C_in, C_out]``."""
    return w.reshape(w.size(0), w.size(1), -1).permute(2, 1, 0)


# ---------------------------------------------------------------------------------------------- layer helpers
def _relu(x: Feature) -> Feature:
    return x.replace(F.relu(x.feats)) if isinstance(x, SparseTensor) else F.relu(x)


def _add(a: Feature, b: Feature) -> Feature:
    return a.replace(a.feats + b.feats) if isinstance(a, SparseTensor) else a + b


def _sites(x: Tensor, active: Tensor) -> Tensor:
    """``active [B, h, w]`` (the coarsest grid) spread to ``x``'s resolution: ``[B, H, W]`` bool."""
    fh, fw = x.size(2) // active.size(1), x.size(3) // active.size(2)
    return active.repeat_interleave(fh, 1).repeat_interleave(fw, 2)


def _remask(x: Feature, active: Tensor | None) -> Feature:
    if active is None or isinstance(x, SparseTensor):
        return x
    return x * _sites(x, active).unsqueeze(1).to(x.dtype)


def _norm(bn: nn.Module, x: Feature, active: Tensor | None) -> Feature:
    """BatchNorm; in the dense emulation over the active sites only (SparK's ``SparseBatchNorm2d``)."""
    if active is None or isinstance(x, SparseTensor):
        return bn(x)
    keep = _sites(x, active)
    rows = x.permute(0, 2, 3, 1)[keep]
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
    y = F.batch_norm(rows, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, bn.momentum or 0.0, bn.eps)
    out = x.new_zeros(x.size(0), x.size(2), x.size(3), x.size(1)).index_put((keep,), y)
    return out.permute(0, 3, 1, 2)


def _layers(sparse: bool):
    def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Module:
        if sparse:
            return SparseConv(cin, cout, k, stride, bias=False, dim=2)
        return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)

    def norm(c: int) -> nn.Module:
        return SparseBatchNorm(c) if sparse else nn.BatchNorm2d(c)

    return conv, norm


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, sparse: bool) -> None:
        super().__init__()
        conv, norm = _layers(sparse)
        self.conv1, self.bn1 = conv(cin, planes, 3, stride), norm(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3), norm(planes)
        self.downsample = _shortcut(cin, planes, stride, conv, norm)

    def forward(self, x: Feature, active: Tensor | None = None) -> Feature:
        out = _relu(_norm(self.bn1, _remask(self.conv1(x), active), active))
        out = _norm(self.bn2, _remask(self.conv2(out), active), active)
        return _relu(_add(out, _apply_shortcut(self.downsample, x, active)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, sparse: bool) -> None:
        super().__init__()
        conv, norm = _layers(sparse)
        self.conv1, self.bn1 = conv(cin, planes, 1), norm(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3, stride), norm(planes)
        self.conv3, self.bn3 = conv(planes, planes * 4, 1), norm(planes * 4)
        self.downsample = _shortcut(cin, planes * 4, stride, conv, norm)

    def forward(self, x: Feature, active: Tensor | None = None) -> Feature:
        out = _relu(_norm(self.bn1, _remask(self.conv1(x), active), active))
        out = _relu(_norm(self.bn2, _remask(self.conv2(out), active), active))
        out = _norm(self.bn3, _remask(self.conv3(out), active), active)
        return _relu(_add(out, _apply_shortcut(self.downsample, x, active)))


def _shortcut(cin: int, cout: int, stride: int, conv, norm) -> nn.ModuleList | None:
    if stride == 1 and cin == cout:
        return None
    return nn.ModuleList([conv(cin, cout, 1, stride), norm(cout)])  # torchvision's downsample.0 / .1


def _apply_shortcut(down: nn.ModuleList | None, x: Feature, active: Tensor | None) -> Feature:
    if down is None:
        return x
    return _norm(down[1], _remask(down[0](x), active), active)


BLOCKS = {"basic": _Basic, "bottleneck": _Bottleneck}


class SparseCNN(nn.Module):
    """A 2-D ResNet on sparse pixel sites (or, ``sparse=False``, its dense twin).

    Args:
        in_channels: input channels ``C``.
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50).
        layers: blocks per stage.
        widths: planes per stage (output channels are ``planes · expansion``).
        stem_width: channels of the stem convolution.
        stem_kernel, stem_stride: the stem convolution (7 and 2 in ImageNet ResNets).
        stem_pool: a 3×3/2 max pool after the stem.
        sparse: :mod:`geomask.sparse` layers (``True``) or ``torch.nn`` ones (the dense twin).

    Shapes:
        see the module docstring; :attr:`strides` and :attr:`out_channels` per stage, fine to coarse.
    """

    def __init__(
        self,
        in_channels: int = 3,
        block: str = "basic",
        layers: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        stem_kernel: int = 7,
        stem_stride: int = 2,
        stem_pool: bool = True,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise UsageError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        if len(layers) != len(widths) or not layers or min(layers) < 1:
            raise UsageError(f"layers and widths need one positive entry per stage, got {layers} and {widths}")
        if stem_kernel % 2 == 0 or stem_stride not in (1, 2):
            raise UsageError(f"the stem needs an odd kernel and stride 1 or 2, got {stem_kernel} and {stem_stride}")
        self.config = {
            "in_channels": in_channels,
            "block": block,
            "layers": tuple(int(n) for n in layers),
            "widths": tuple(int(w) for w in widths),
            "stem_width": stem_width,
            "stem_kernel": stem_kernel,
            "stem_stride": stem_stride,
            "stem_pool": bool(stem_pool),
        }
        self.sparse = bool(sparse)
        self.in_channels = in_channels
        conv, norm = _layers(self.sparse)
        self.conv1, self.bn1 = conv(in_channels, stem_width, stem_kernel, stem_stride), norm(stem_width)
        if not stem_pool:
            self.maxpool = None
        else:
            self.maxpool = SparseMaxPool(3, 2, dim=2) if self.sparse else nn.MaxPool2d(3, 2, 1)
        cls = BLOCKS[block]
        stride = stem_stride * (2 if stem_pool else 1)
        cin, strides, chans = stem_width, [], []
        for i, (n, w) in enumerate(zip(layers, widths)):
            s = 1 if i == 0 else 2
            stride *= s
            blocks = [cls(cin, w, s, self.sparse)]
            cin = w * cls.expansion
            blocks += [cls(cin, w, 1, self.sparse) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.ModuleList(blocks))
            strides.append(stride)
            chans.append(cin)
        self.strides: tuple[int, ...] = tuple(strides)
        self.out_channels: tuple[int, ...] = tuple(chans)

    @property
    def num_stages(self) -> int:
        return len(self.strides)

    @property
    def downsample_ratio(self) -> int:
        """Stride of the last stage: the side of one cell of the coarsest grid, in pixels."""
        return self.strides[-1]

    def stages(self) -> list[nn.ModuleList]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward(self, x: Feature, active: Tensor | None = None) -> list[Feature]:
        """Every stage's output, fine to coarse.

        Args:
            x: a 2-D :class:`SparseTensor` (``sparse=True``) or a ``[B, C, H, W]`` tensor (the dense twin).
            active: dense twin only: ``[B, H / r, W / r]`` bool on the coarsest grid (True = visible), SparK's
                masked dense emulation (outputs zero at the masked sites).
        """
        if self.sparse:
            if not isinstance(x, SparseTensor) or x.dim != 2 or x.num_channels != self.in_channels:
                raise UsageError(f"SparseCNN takes a 2-D SparseTensor with {self.in_channels} channels, got {x!r}")
            if active is not None:
                raise UsageError("active is for the dense twin; a sparse network runs on the visible sites")
        else:
            if not isinstance(x, Tensor) or x.dim() != 4 or x.size(1) != self.in_channels:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise UsageError(f"the dense twin takes [B, {self.in_channels}, H, W], got {got}")
            r = self.downsample_ratio
            if x.size(2) % r or x.size(3) % r:
                raise UsageError(f"image sides must be multiples of the network's stride {r}, got {tuple(x.shape)}")
            if active is not None and tuple(active.shape) != (x.size(0), x.size(2) // r, x.size(3) // r):
                raise UsageError(f"active must be [B, H / {r}, W / {r}], got {tuple(active.shape)}")
        x = _relu(_norm(self.bn1, _remask(self.conv1(_remask(x, active)), active), active))
        if self.maxpool is not None:
            x = _remask(self.maxpool(x), active)
        outs: list[Feature] = []
        for stage in self.stages():
            for blk in stage:
                x = blk(x, active)
            outs.append(x)
        return outs

    def pooled(self, x: Feature) -> Tensor:
        """The last stage averaged over its (active) sites: ``[B, C_last]``."""
        last = self(x)[-1]
        return global_pool(last) if isinstance(last, SparseTensor) else last.mean((2, 3))

    # ------------------------------------------------------------------ weights between sparse and dense
    def _conv_kernels(self) -> dict[str, int]:
        kinds = (SparseConv, nn.Conv2d)
        return {f"{n}.weight": _kernel(m) for n, m in self.named_modules() if isinstance(m, kinds)}

    def dense_state_dict(self) -> dict[str, Tensor]:
        """The state dict of the dense twin (torchvision names; conv weights ``[C_out, C_in, k, k]``)."""
        sd = self.state_dict()
        if self.sparse:
            for key, k in self._conv_kernels().items():
                sd[key] = dense_conv_weight(sd[key], k).contiguous()
        return sd

    def load_dense_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> Any:
        """Load dense weights (the twin's, or torchvision's ResNet without ``fc.*``)."""
        sd = dict(state)
        if self.sparse:
            for key in self._conv_kernels():
                if key in sd:
                    sd[key] = sparse_conv_weight(sd[key]).contiguous()
        return self.load_state_dict(sd, strict=strict)

    def to_dense(self) -> SparseCNN:
        """The dense twin with these weights and BatchNorm statistics (same device, dtype, training mode)."""
        p = next(self.parameters())
        twin = SparseCNN(**self.config, sparse=False).to(device=p.device, dtype=p.dtype)
        twin.load_dense_state_dict(self.dense_state_dict())
        return twin.train(self.training)


def _kernel(m: nn.Module) -> int:
    k = m.kernel_size
    return int(k[0]) if isinstance(k, tuple) else int(k)


def build_sparse_cnn(name: str = "resnet18", in_channels: int = 3, **overrides: Any) -> SparseCNN:
    """A registered size (:data:`CNN_CONFIGS`) with keyword ``overrides`` (``widths``, ``stem_stride``, ...)."""
    if name not in CNN_CONFIGS:
        raise UsageError(f"unknown CNN {name!r} (valid: {', '.join(sorted(CNN_CONFIGS))})")
    return SparseCNN(in_channels, **{**CNN_CONFIGS[name], **overrides})

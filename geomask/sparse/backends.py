"""Optional backends behind :class:`~geomask.sparse.conv.SparseConv`: spconv and MinkowskiEngine.

geomask's own kernel (``"torch"``) is the reference; a backend runs the same layer with the same weights
where its package is installed, converting at the boundary:

* coordinates: geomask keeps strided coordinates as multiples of the stride (like MinkowskiEngine);
  spconv divides them and wants non-negative indices, so the adapter divides, shifts by an origin aligned
  to the down-sampling factor, and multiplies back;
* weights: geomask's ``[K, C_in, C_out]`` with offsets row-major → spconv's ``[C_out, *k, C_in]``;
  MinkowskiEngine's ``[K, C_in, C_out]`` with the first axis fastest (a permutation of ``K``);
* output sites: spconv's strided and transposed convolutions produce every site their window reaches
  (a superset); the adapter keeps geomask's sites (the parent / cached finer sites), in geomask's order.

spconv's CPU build runs forward only (its backward needs CUDA). Neither package is a dependency.
"""

from __future__ import annotations

import importlib.util
import math

import torch
from torch import Tensor

from geomask.sparse.tensor import SparseTensor, conv_kernel_map

__all__ = ["BACKENDS", "backend_available", "resolve_backend", "backend_conv"]

#: backend name → the module it needs (None: built in).
BACKENDS: dict[str, str | None] = {"torch": None, "spconv": "spconv", "minkowski": "MinkowskiEngine"}


def backend_available(name: str) -> bool:
    """Whether the backend's package can be imported here."""
    module = BACKENDS.get(name)
    return name in BACKENDS and (module is None or importlib.util.find_spec(module) is not None)


def resolve_backend(name: str) -> str:
    """Check a backend name (``ValueError`` if unknown, ``ImportError`` naming the package if missing)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse backend {name!r}; known: {', '.join(BACKENDS)}")
    if not backend_available(name):
        raise ImportError(f"sparse backend {name!r} needs the package {BACKENDS[name]!r}, which is not installed")
    return name


def backend_conv(name: str, x: SparseTensor, weight: Tensor, bias: Tensor | None, layer) -> SparseTensor:
    """Run ``layer``'s convolution (its settings, the given weights) through backend ``name``."""
    kmap = conv_kernel_map(x, layer.kernel_size, layer.stride, layer.dilation, layer.transposed)
    out_coords = x.cache.levels[kmap.out_stride].coords
    if name == "spconv":
        feats = _spconv(x, weight, layer, out_coords, kmap.out_stride)
    elif name == "minkowski":
        feats = _minkowski(x, weight, layer, out_coords, kmap.out_stride)
    else:
        raise ValueError(f"backend_conv needs an external backend, got {name!r}")
    if bias is not None:
        feats = feats + bias
    return SparseTensor(out_coords, feats, kmap.out_stride, x.cache)


def _rows(coords: Tensor, query: Tensor) -> Tensor:
    """Row in ``coords [M, 1+D]`` of each ``query [Q, 1+D]`` (-1 where absent), via sorted int64 keys."""
    both = torch.cat([coords, query])
    lo, span = both.min(0).values, both.max(0).values - both.min(0).values + 1
    mult = torch.ones_like(span)
    for d in range(len(span) - 2, -1, -1):
        mult[d] = mult[d + 1] * span[d + 1]
    kc, kq = ((coords - lo) * mult).sum(1), ((query - lo) * mult).sum(1)
    sk, perm = torch.sort(kc)
    pos = torch.searchsorted(sk, kq).clamp_(max=len(sk) - 1)
    return torch.where(sk[pos] == kq, perm[pos], torch.full_like(pos, -1))


def _spconv(x: SparseTensor, weight: Tensor, layer, out_coords: Tensor, out_stride) -> Tensor:
    import spconv.pytorch as spconv

    if layer.transposed and layer.kernel_size != layer.stride:
        # parity with geomask is off at a few sites for overlapping windows (kernel 3, stride 2): not resolved
        raise NotImplementedError("spconv backend: transposed convolution supports kernel_size == stride only")
    d = x.dim
    st = torch.tensor(x.stride, device=x.coords.device)
    factor = torch.tensor(layer.stride, device=st.device)
    grid = torch.div(x.coords[:, 1:], st, rounding_mode="floor")
    align = factor if not layer.transposed else torch.ones_like(factor)
    origin = torch.div(grid.min(0).values, align, rounding_mode="floor") * align - align * 2
    local = grid - origin
    shape = (local.max(0).values + 1 + 2 * factor * max(layer.kernel_size)).tolist()
    indices = torch.cat([x.coords[:, :1], local], 1).int()
    tensor = spconv.SparseConvTensor(x.feats, indices, shape, int(x.coords[:, 0].max()) + 1)
    ks, s, dl = list(layer.kernel_size), list(layer.stride), list(layer.dilation)
    pad = [(k // 2) * g if k % 2 else 0 for k, g in zip(ks, dl)]
    if all(v == 1 for v in s):
        conv = getattr(spconv, f"SubMConv{d}d")(layer.in_channels, layer.out_channels, ks, dilation=dl, bias=False)
    elif layer.transposed:
        conv = getattr(spconv, f"SparseConvTranspose{d}d")(
            layer.in_channels, layer.out_channels, ks, stride=s, padding=pad, dilation=dl, bias=False
        )
    else:
        conv = getattr(spconv, f"SparseConv{d}d")(
            layer.in_channels, layer.out_channels, ks, stride=s, padding=pad, dilation=dl, bias=False
        )
    conv = conv.to(x.feats.device, x.feats.dtype)
    w = weight.reshape(*ks, layer.in_channels, layer.out_channels).permute(d + 1, *range(d), d)
    del conv.weight
    conv.weight = w  # our parameter, so gradients (spconv: CUDA only) reach the geomask layer
    out = conv(tensor)
    # back to geomask's sites: spconv's output index × (input stride · factor) or ÷ factor, plus the origin
    out_grid = out.indices[:, 1:].long()
    if layer.transposed:
        abs_grid = out_grid + origin * factor
    else:
        abs_grid = out_grid + torch.div(origin, factor, rounding_mode="floor")
    ost = torch.tensor(out_stride, device=st.device)
    query = torch.cat([out.indices[:, :1].long(), abs_grid * ost], 1)
    rows = _rows(out_coords, query)
    keep = rows >= 0
    feats = out.features.new_zeros(len(out_coords), layer.out_channels)
    return feats.index_copy(0, rows[keep], out.features[keep])


def _minkowski(x: SparseTensor, weight: Tensor, layer, out_coords: Tensor, out_stride) -> Tensor:
    import MinkowskiEngine as ME

    d = x.dim
    ks = list(layer.kernel_size)
    # geomask: offsets row-major (last axis fastest); MinkowskiEngine: first axis fastest
    k_me = torch.arange(math.prod(ks)).reshape(*ks).permute(*range(d - 1, -1, -1)).reshape(-1)
    w = weight[k_me]
    tensor = ME.SparseTensor(x.feats, coordinates=x.coords.int(), tensor_stride=list(x.stride))
    cls = ME.MinkowskiConvolutionTranspose if layer.transposed else ME.MinkowskiConvolution
    conv = cls(
        layer.in_channels,
        layer.out_channels,
        ks,
        stride=list(layer.stride),
        dilation=list(layer.dilation),
        bias=False,
        dimension=d,
    ).to(x.feats.device, x.feats.dtype)
    del conv.kernel
    conv.kernel = w
    if layer.transposed:
        fine = ME.SparseTensor(
            x.feats.new_zeros(len(out_coords), 1),
            coordinates=out_coords.int(),
            tensor_stride=list(out_stride),
            coordinate_manager=tensor.coordinate_manager,
        )
        out = conv(tensor, fine.coordinate_map_key)
    else:
        out = conv(tensor)
    rows = _rows(out_coords, out.C.long())
    keep = rows >= 0
    feats = out.F.new_zeros(len(out_coords), layer.out_channels)
    return feats.index_copy(0, rows[keep], out.F[keep])

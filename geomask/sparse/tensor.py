"""The sparse-grid tensor: integer coordinates with the batch index first, features, a stride, a map cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geomask.sparse.kernel_map import CoordinateCache, KernelMap, as_tuple

__all__ = ["SparseTensor", "conv_kernel_map", "sparse_cat", "sparse_collate"]


class SparseTensor:
    """Features on the active sites of a batch of ``D``-dimensional integer grids.

    Coordinates follow MinkowskiEngine, spconv and torchsparse 2.1: ``[batch, x_1, ..., x_D]``; spatial
    coordinates are in input units and multiples of the tensor stride (MinkowskiEngine's convention; the
    spconv backend divides at its boundary). Layers return new tensors that share ``coords`` and the
    :class:`~geomask.sparse.kernel_map.CoordinateCache`, so kernel maps are built once per stride.

    Args:
        coords: integer site coordinates, unique per batch index.
        feats: features per site.
        stride: tensor stride, an int or ``D`` ints.
        cache: the lineage's cache; a new one when ``None``.

    Shapes:
        coords: ``[N, 1 + D]`` (``1 <= D <= 4``), stored as int64; feats: ``[N, C]``.
    """

    __slots__ = ("coords", "feats", "stride", "cache")

    def __init__(
        self,
        coords: Tensor,
        feats: Tensor,
        stride: int | Sequence[int] = 1,
        cache: CoordinateCache | None = None,
    ) -> None:
        if not isinstance(coords, Tensor) or coords.dim() != 2 or not 2 <= coords.size(1) <= 5:
            raise ValueError(f"coords must be an integer tensor [N, 1 + D] with 1 <= D <= 4, got {_shape(coords)}")
        if coords.dtype.is_floating_point or coords.dtype == torch.bool or coords.is_complex():
            raise ValueError(f"coords must be integers, got {coords.dtype}")
        if not isinstance(feats, Tensor) or feats.dim() != 2 or feats.size(0) != coords.size(0):
            raise ValueError(f"feats must be [N={coords.size(0)}, C], got {_shape(feats)}")
        self.coords = coords if coords.dtype == torch.long else coords.long()
        self.feats = feats
        self.stride = as_tuple(stride, coords.size(1) - 1, "stride")
        self.cache = CoordinateCache() if cache is None else cache
        if cache is None and any(s != 1 for s in self.stride) and len(coords):
            st = torch.tensor(self.stride, device=coords.device)
            if bool((self.coords[:, 1:] % st != 0).any()):
                raise ValueError(f"coordinates must be multiples of the tensor stride {self.stride}")

    @property
    def dim(self) -> int:
        """Spatial dimension ``D``."""
        return self.coords.size(1) - 1

    @property
    def num_channels(self) -> int:
        return self.feats.size(1)

    @property
    def batch_size(self) -> int:
        return int(self.coords[:, 0].max()) + 1 if len(self.coords) else 0

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def __len__(self) -> int:
        return self.coords.size(0)

    def __repr__(self) -> str:
        return f"SparseTensor(sites={len(self)}, channels={self.num_channels}, dim={self.dim}, stride={self.stride})"

    def replace(self, feats: Tensor) -> SparseTensor:
        """A tensor with new features on the same sites (shares coordinates, stride and cache)."""
        if feats.dim() != 2 or feats.size(0) != len(self):
            raise ValueError(f"feats must be [{len(self)}, C], got {tuple(feats.shape)}")
        return SparseTensor(self.coords, feats, self.stride, self.cache)

    def kernel_map(self, kernel_size: int | Sequence[int] = 3, dilation: int | Sequence[int] = 1) -> KernelMap:
        """The (cached) submanifold kernel map of this tensor's sites."""
        ks = as_tuple(kernel_size, self.dim, "kernel_size")
        dl = as_tuple(dilation, self.dim, "dilation")
        return self.cache.submanifold(self.coords, self.stride, ks, dl)

    def to_pyg(self, kernel_size: int | Sequence[int] = 3, dilation: int | Sequence[int] = 1):
        """The PyG view: a ``torch_geometric.data.Data`` with ``x``, ``pos`` (grid units), ``batch``,
        ``edge_index`` (source = neighbour ``u + o_k``, target = ``u``) and ``edge_type`` (offset ``k``)."""
        from torch_geometric.data import Data

        edge_index, edge_type = self.kernel_map(kernel_size, dilation).edges()
        st = torch.tensor(self.stride, device=self.coords.device)
        return Data(
            x=self.feats,
            pos=torch.div(self.coords[:, 1:], st, rounding_mode="floor"),
            batch=self.coords[:, 0],
            edge_index=edge_index,
            edge_type=edge_type,
            num_nodes=len(self),
        )

    def to_dense(self, shape: Sequence[int] | None = None, origin: Sequence[int] | None = None) -> Tensor:
        """Scatter into a dense ``[B, C, *shape]`` grid (grid units; ``origin`` defaults to the minimum site)."""
        st = torch.tensor(self.stride, device=self.coords.device)
        grid = torch.div(self.coords[:, 1:], st, rounding_mode="floor")
        lo = grid.min(0).values if origin is None else torch.tensor(list(origin), device=grid.device)
        rel = grid - lo
        size = (rel.max(0).values + 1).tolist() if shape is None else list(shape)
        if bool((rel < 0).any()) or any(int(m) >= s for m, s in zip(rel.max(0).values.tolist(), size)):
            raise ValueError(f"sites fall outside the dense shape {size} at origin {lo.tolist()}")
        out = self.feats.new_zeros(self.batch_size, *size, self.num_channels)
        out[(self.coords[:, 0], *rel.unbind(1))] = self.feats
        return out.movedim(-1, 1)

    @classmethod
    def from_dense(cls, x: Tensor, mask: Tensor | None = None) -> SparseTensor:
        """Sites of a dense ``[B, C, *spatial]`` grid (all of them, or where ``mask [B, *spatial]`` is true)."""
        if x.dim() < 3 or x.dim() > 6:
            raise ValueError(f"x must be [B, C, *spatial] with 1 to 4 spatial dims, got {tuple(x.shape)}")
        if mask is None:
            mask = torch.ones((x.size(0), *x.shape[2:]), dtype=torch.bool, device=x.device)
        coords = mask.nonzero()
        feats = x.movedim(1, -1)[mask]
        return cls(coords, feats)


def sparse_collate(coords: Sequence[Tensor], feats: Sequence[Tensor], stride: int | Sequence[int] = 1) -> SparseTensor:
    """Collate samples ``(coords_i [N_i, D], feats_i [N_i, C])`` into one tensor with batch index ``i``."""
    if len(coords) != len(feats) or not coords:
        raise ValueError(f"need as many coordinate as feature tensors (>= 1), got {len(coords)} and {len(feats)}")
    dims = {c.size(1) if c.dim() == 2 else -1 for c in coords}
    if len(dims) != 1 or -1 in dims:
        raise ValueError("every sample's coords must be [N_i, D] with the same D")
    batch = torch.repeat_interleave(
        torch.arange(len(coords), device=coords[0].device),
        torch.tensor([len(c) for c in coords], device=coords[0].device),
    )
    all_coords = torch.cat([batch.unsqueeze(1), torch.cat([c.long() for c in coords])], dim=1)
    return SparseTensor(all_coords, torch.cat(list(feats)), stride)


def sparse_cat(tensors: Sequence[SparseTensor]) -> SparseTensor:
    """Concatenate features along channels; all tensors must share the same sites (same lineage and stride)."""
    first = tensors[0]
    for t in tensors[1:]:
        if t.stride != first.stride or (t.coords is not first.coords and not torch.equal(t.coords, first.coords)):
            raise ValueError("sparse_cat needs tensors on the same sites (same coordinates and stride)")
    return first.replace(torch.cat([t.feats for t in tensors], dim=1))


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__


def conv_kernel_map(
    x: SparseTensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    transposed: bool = False,
) -> KernelMap:
    """The (cached) kernel map a convolution with these settings uses on ``x``."""
    ks = as_tuple(kernel_size, x.dim, "kernel_size")
    st = as_tuple(stride, x.dim, "stride")
    dl = as_tuple(dilation, x.dim, "dilation")
    if all(s == 1 for s in st):
        if any(k % 2 == 0 for k in ks):
            raise ValueError(f"a submanifold convolution needs odd kernel sizes, got {ks}")
        return x.cache.submanifold(x.coords, x.stride, ks, dl)
    if transposed:
        return x.cache.upsample(x.coords, x.stride, ks, st, dl)
    return x.cache.downsample(x.coords, x.stride, ks, st, dl)

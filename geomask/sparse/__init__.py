"""geomask.sparse: sparse-grid tensors, kernel maps and sparse convolution as relational message passing."""

from geomask.sparse.conv import SparseConv, conv_kernel_map, sparse_conv
from geomask.sparse.kernel_map import CoordinateCache, KernelMap, kernel_offsets
from geomask.sparse.norm import (
    SparseBatchNorm,
    SparseInstanceNorm,
    SparseLayerNorm,
    SparsePointwise,
    SparseReLU,
)
from geomask.sparse.pool import SparseAvgPool, SparseMaxPool, global_pool, sparse_pool
from geomask.sparse.tensor import SparseTensor, sparse_cat, sparse_collate

__all__ = [
    "CoordinateCache",
    "KernelMap",
    "SparseAvgPool",
    "SparseBatchNorm",
    "SparseConv",
    "SparseInstanceNorm",
    "SparseLayerNorm",
    "SparseMaxPool",
    "SparsePointwise",
    "SparseReLU",
    "SparseTensor",
    "conv_kernel_map",
    "global_pool",
    "kernel_offsets",
    "sparse_cat",
    "sparse_collate",
    "sparse_conv",
    "sparse_pool",
]

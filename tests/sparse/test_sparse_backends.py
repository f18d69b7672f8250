from __future__ import annotations

import pytest
import torch

from geomask.sparse import SparseConv, sparse_collate
from geomask.sparse.backends import backend_available, resolve_backend

CASES = [(3, 1, False), (5, 1, False), (2, 2, False), (3, 2, False), (2, 2, True), (3, 2, True)]


def _cloud() -> object:
    gen = torch.Generator().manual_seed(0)
    cs = [torch.randint(-6, 9, (150, 3), generator=gen).unique(dim=0) for _ in range(2)]
    return sparse_collate(cs, [torch.randn(len(c), 4, generator=gen) for c in cs])


def test_unknown_backend_and_missing_package():
    with pytest.raises(ValueError, match="unknown sparse backend"):
        resolve_backend("cuda-magic")
    assert resolve_backend("torch") == "torch"
    for name in ("spconv", "minkowski"):
        if not backend_available(name):
            with pytest.raises(ImportError, match="not installed"):
                SparseConv(2, 2, backend=name)


@pytest.mark.parametrize("backend", ["spconv", "minkowski"])
@pytest.mark.parametrize(("kernel", "stride", "transposed"), CASES)
def test_backend_parity_with_torch_kernel(backend, kernel, stride, transposed):
    if not backend_available(backend):
        how = " (tools/build_minkowski.sh builds it in a venv of its own)" if backend == "minkowski" else ""
        pytest.skip(f"optional backend {backend!r} is not installed{how}")
    x = _cloud()
    if transposed:
        x = SparseConv(4, 4, kernel, stride=stride)(x)  # a coarse tensor whose finer sites are cached
    ref = SparseConv(4, 3, kernel, stride=stride, transposed=transposed)
    other = SparseConv(4, 3, kernel, stride=stride, transposed=transposed, backend=backend)
    other.load_state_dict(ref.state_dict())
    if backend == "spconv" and transposed and kernel != stride:
        with pytest.raises(NotImplementedError, match="kernel_size == stride"):
            other(x)
        return
    threads = torch.get_num_threads()
    if backend == "spconv":
        torch.set_num_threads(1)  # spconv's CPU kernels lose updates at > 1 thread (traveller59/spconv#679)
    try:
        with torch.no_grad():
            a, b = ref(x), other(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a.coords, b.coords) and a.stride == b.stride
    torch.testing.assert_close(b.feats, a.feats, atol=1e-5, rtol=1e-5)

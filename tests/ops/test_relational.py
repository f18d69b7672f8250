from __future__ import annotations

import pytest
import torch

from geomask.ops.relational import RelationalIndex, relational_index, relational_matmul, relational_message_passing


def _reference(x, weight, edge_index, edge_type, num_dst):
    out = torch.zeros(num_dst, weight.size(-1), dtype=x.dtype)
    for e in range(edge_index.size(1)):
        s, d, r = (int(v) for v in (edge_index[0, e], edge_index[1, e], edge_type[e]))
        out[d] += x[s] @ weight[r]
    return out


def _at_one_and_two_threads(make_index, x, w):
    """``(out, grad_x, grad_w)`` of ``relational_matmul`` under a square-sum loss at 1 and at 2 intra-op threads;
    asserts they are bit-identical; returns both (1 thread first)."""
    results = []
    for threads in (1, 2):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            index = make_index()
            xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            out = relational_matmul(xg, wg, index)
            out.square().sum().backward()
        finally:
            torch.set_num_threads(before)
        results.append((out.detach(), xg.grad, wg.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    return results


def test_matches_per_edge_loop_and_skips_empty_relations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    edge_index = torch.randint(0, 7, (2, 20), generator=g)
    edge_type = torch.randint(0, 3, (20,), generator=g)  # relation 3 stays empty
    out = relational_message_passing(x, w, edge_index, edge_type, num_dst=9)
    assert out.shape == (9, 5)
    torch.testing.assert_close(out, _reference(x, w, edge_index, edge_type, 9))


def test_identity_relation_is_plain_matmul():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64)
    w = torch.randn(2, 2, 3, generator=g, dtype=torch.float64)
    src, dst = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    index = RelationalIndex(src, dst, (0, 3, 3), 6, 6, identity=1)
    expected = x @ w[1]
    expected[3:] += x[:3] @ w[0]
    torch.testing.assert_close(relational_matmul(x, w, index), expected)
    edge_index, edge_type = index.edges()
    assert edge_index.size(1) == 9 and int((edge_type == 1).sum()) == 6
    torch.testing.assert_close(relational_message_passing(x, w, edge_index, edge_type), expected)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    edge_index = torch.randint(0, 5, (2, 12), generator=g)
    edge_type = torch.randint(0, 2, (12,), generator=g)
    index = relational_index(edge_index, edge_type, 3, 5)
    index = RelationalIndex(index.src, index.dst, index.ptr, 5, 5, identity=2)
    assert torch.autograd.gradcheck(lambda a, b: relational_matmul(a, b, index), (x, w))
    assert torch.autograd.gradcheck(lambda a: relational_matmul(a, w.detach(), index), (x,))


def test_bad_arguments_raise_value_error():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="edge_type values"):
        relational_message_passing(x, torch.randn(2, 3, 3), torch.zeros(2, 1, dtype=torch.long), torch.tensor([2]))
    with pytest.raises(ValueError, match="weight must be"):
        relational_message_passing(x, torch.randn(2, 4, 3), torch.zeros(2, 1, dtype=torch.long), torch.tensor([0]))
    # mixed dtypes take torch's path (never the compiled kernel's one BLAS routine): torch.mm's own error
    with pytest.raises(RuntimeError, match="dtype"):
        w64 = torch.randn(2, 3, 3, dtype=torch.float64)
        relational_message_passing(x, w64, torch.zeros(2, 1, dtype=torch.long), torch.tensor([0]))


@pytest.mark.parametrize("sorted_dst", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_cpu_path_over_many_tiles_and_chunks(monkeypatch, sorted_dst, dtype):
    """Tiny tiles / chunks force the compiled CPU kernel through many of them; it must equal the per-edge sum
    (sorted destinations are tiled by destination rows, unsorted ones chunked per relation) and the autograd of
    the plain torch expression."""
    import geomask.ops.relational_kernel as rel

    monkeypatch.setattr(rel, "_MIN_ROWS", 4)
    monkeypatch.setattr(rel, "_TILE_MESSAGE_BYTES", 1)
    monkeypatch.setattr(rel, "_CHUNK_BYTES", 1)
    g = torch.Generator().manual_seed(3)
    n, e = 37, 300
    x = torch.randn(n, 6, generator=g, dtype=dtype)
    w = torch.randn(5, 6, 4, generator=g, dtype=dtype)
    edge_index = torch.randint(0, n, (2, e), generator=g)  # repeated destinations within a relation
    edge_type = torch.randint(0, 4, (e,), generator=g)  # relation 4 is the identity
    if sorted_dst:
        index = relational_index(edge_index, edge_type, 5, n)
        tiles = rel._ranges(index, 6, x.element_size())
        assert tiles.rows == 4 and len(tiles.edges) == 10 and sum(tiles.edges) == e
    else:
        order = torch.argsort(edge_type, stable=True)
        counts = torch.bincount(edge_type, minlength=5).tolist()
        ptr = [0]
        for c in counts:
            ptr.append(ptr[-1] + c)
        index = RelationalIndex(edge_index[0, order], edge_index[1, order], tuple(ptr), n, n)
        assert rel._ranges(index, 6, x.element_size()).rows == 0  # not tileable: chunks
    index = RelationalIndex(index.src, index.dst, index.ptr, n, n, identity=4)
    expected = _reference(x, w, edge_index, edge_type, n) + x @ w[4]
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(relational_matmul(x, w, index), expected, **tol)

    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    relational_matmul(xg, wg, index).square().sum().backward()
    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    ref = torch.zeros(n, 4, dtype=dtype).index_add(
        0, edge_index[1], torch.bmm(xr[edge_index[0]].unsqueeze(1), wr[edge_type]).squeeze(1)
    )
    (ref + xr @ wr[4]).square().sum().backward()
    # the gradients of a squared sum are sums of ~100 float32 products in another order than the reference's:
    # 1e-5 is below that rounding on some CPUs (seen 2.8e-5 on values ~0.6); a wrong index or weight differs by O(1)
    gtol = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(xg.grad, xr.grad, **gtol)
    torch.testing.assert_close(wg.grad, wr.grad, **gtol)


@pytest.mark.parametrize("collide", [False, True])
def test_neighbour_table_path(monkeypatch, collide):
    """A nearly full index (every destination has one edge per relation, like a convolution on a dense grid) takes
    the neighbour-table path (one gather into [rows, R * C_in], one GEMM); it must equal the per-edge sum in values
    and gradients, over many tiles and grad_w groups, with the same bits on 1 and 2 threads. An index with two
    edges of one relation into one destination cannot be a table and must still be summed right."""
    import geomask.ops.relational_kernel as rel

    monkeypatch.setattr(rel, "_TILE_BYTES", 1)  # 64-row tiles
    g = torch.Generator().manual_seed(5)
    n, num_rel = 300, 4
    src = torch.randint(0, n, (num_rel, n), generator=g)
    dst = torch.arange(n).repeat(num_rel, 1)
    if collide:
        dst[1, 1] = 0  # relation 1 sends two edges into row 0
    edge_index = torch.stack([src.reshape(-1), dst.reshape(-1)])
    edge_type = torch.arange(num_rel).repeat_interleave(n)
    index = relational_index(edge_index, edge_type, num_rel, n)
    x = torch.randn(n, 3, generator=g)
    w = torch.randn(num_rel, 3, 5, generator=g)
    assert (rel._table(index, 3, 5) is None) == collide
    results = _at_one_and_two_threads(lambda: index, x, w)
    xr, wr = x.double().requires_grad_(True), w.double().requires_grad_(True)
    ref = torch.zeros(n, 5, dtype=torch.float64).index_add(
        0, edge_index[1], torch.bmm(xr[edge_index[0]].unsqueeze(1), wr[edge_type]).squeeze(1)
    )
    ref.square().sum().backward()
    out, gx, gw = results[0]
    torch.testing.assert_close(out.double(), ref.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx.double(), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gw.double(), wr.grad, atol=1e-4, rtol=1e-4)


def test_range_runs_cut_each_tile_at_the_budget():
    """Runs of consecutive ranges stay inside their tile, hold at most ``budget`` rows unless one range alone is
    longer, and cover every range once, in order."""
    import numpy as np

    import geomask.ops.relational_kernel as rel

    lens = np.array([3, 4, 2, 9, 1, 1, 5, 2], dtype=np.int64)
    tile_ptr = np.array([0, 4, 4, 8], dtype=np.int64)  # the middle tile is empty
    runs, run_ptr = rel._group_runs(lens, tile_ptr, 6)
    assert runs.tolist() == [[0, 1], [1, 3], [3, 4], [4, 6], [6, 7], [7, 8]]
    assert run_ptr.tolist() == [0, 3, 3, 6]
    runs, run_ptr = rel._group_runs(lens, tile_ptr, 100)
    assert runs.tolist() == [[0, 4], [4, 8]] and run_ptr.tolist() == [0, 1, 1, 2]


@pytest.mark.parametrize("blas_loops", [True, False])
@pytest.mark.parametrize("group_bytes", [1, 200, 2**19])
def test_grouped_ranges_and_shared_backward_same_bits_on_any_thread_count(monkeypatch, group_bytes, blas_loops):
    """Two workers gather and scatter runs of ranges in one compiled call each (one range per run, a few, or a
    whole tile) and run grad_x tiles and grad_w relations on one queue; outputs and gradients must have the same
    bits as one thread (one range at a time, no runs) and match the float64 reference — with the tile loops
    compiled around BLAS (``blas_loops``) and with the ``torch.mm`` loop."""
    import geomask.ops.blas as blas
    import geomask.ops.relational_kernel as rel

    if blas_loops and not blas.AVAILABLE:
        pytest.skip("this torch build exports no sgemm_ / dgemm_")
    monkeypatch.setattr(blas, "AVAILABLE", blas_loops)

    monkeypatch.setattr(rel, "_MIN_ROWS", 4)
    monkeypatch.setattr(rel, "_TILE_MESSAGE_BYTES", 64)
    monkeypatch.setattr(rel, "_PARALLEL_MACS", 1)
    monkeypatch.setattr(rel, "_PARALLEL_MACS_FUSED", 1)
    monkeypatch.setattr(rel, "_GROUP_BYTES", group_bytes)
    g = torch.Generator().manual_seed(3)
    n, num_rel, e = 120, 5, 700
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_type = torch.randint(0, num_rel, (e,), generator=g)
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(num_rel, 6, 7, generator=g)
    # a fresh index per thread count: no tiles cached across counts
    results = _at_one_and_two_threads(lambda: relational_index(edge_index, edge_type, num_rel, n), x, w)
    xr, wr = x.double().requires_grad_(True), w.double().requires_grad_(True)
    ref = _reference(xr, wr, edge_index, edge_type, n)
    ref.square().sum().backward()
    out, gx, gw = results[0]
    torch.testing.assert_close(out.double(), ref.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx.double(), xr.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gw.double(), wr.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_blas_tile_loops_have_the_bits_of_the_torch_mm_loop(monkeypatch, dtype, threads):
    """The forward and both gradients of the tile loops compiled around BLAS must equal the ``torch.mm`` loop's
    bit for bit (same products, same order of sums), over many tiles, with an identity relation and repeated
    destinations."""
    import geomask.ops.blas as blas
    import geomask.ops.relational_kernel as rel

    if not blas.AVAILABLE:
        pytest.skip("this torch build exports no sgemm_ / dgemm_")
    monkeypatch.setattr(rel, "_MIN_ROWS", 8)
    monkeypatch.setattr(rel, "_TILE_MESSAGE_BYTES", 256)
    monkeypatch.setattr(rel, "_WGRAD_BYTES", 1)
    monkeypatch.setattr(rel, "_PARALLEL_MACS", 1)
    monkeypatch.setattr(rel, "_PARALLEL_MACS_FUSED", 1)
    g = torch.Generator().manual_seed(5)
    n, num_rel, e = 200, 6, 1500
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_type = torch.randint(0, num_rel - 1, (e,), generator=g)
    x = torch.randn(n, 5, generator=g, dtype=dtype)
    w = torch.randn(num_rel, 5, 9, generator=g, dtype=dtype)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(blas, "AVAILABLE", fused)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            base = relational_index(edge_index, edge_type, num_rel, n)
            index = RelationalIndex(base.src, base.dst, base.ptr, n, n, identity=num_rel - 1)
            xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            out = relational_matmul(xg, wg, index)
            (out * torch.linspace(-1, 1, 9, dtype=dtype)).sum().backward()
        finally:
            torch.set_num_threads(before)
        results.append((out.detach(), xg.grad, wg.grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    expected = _reference(x, w, edge_index, edge_type, n) + x @ w[num_rel - 1]
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(results[0][0], expected, **tol)


@pytest.mark.parametrize("blas_loops", [True, False])
def test_tiles_and_their_products_do_not_depend_on_the_thread_count(monkeypatch, blas_loops):
    """One-worker tiles would hold every row here and two-worker ones an eighth: the ranges' row counts would differ
    with the thread count, and a BLAS may give a row other bits in a call with other rows (MKL on AMD EPYC does, in
    float64 at any row count). Tiles are cut the same way for any thread count, so the bits must agree."""
    import geomask.ops.blas as blas
    import geomask.ops.relational_kernel as rel

    if blas_loops and not blas.AVAILABLE:
        pytest.skip("this torch build exports no sgemm_ / dgemm_")
    monkeypatch.setattr(blas, "AVAILABLE", blas_loops)
    monkeypatch.setattr(rel, "_MIN_ROWS", 8)
    monkeypatch.setattr(rel, "_TILE_MESSAGE_BYTES", 10**9)
    monkeypatch.setattr(rel, "_PARALLEL_MACS", 1)
    monkeypatch.setattr(rel, "_PARALLEL_MACS_FUSED", 1)
    g = torch.Generator().manual_seed(7)
    n, num_rel, e = 400, 4, 4000
    edge_index = torch.randint(0, n, (2, e), generator=g)
    edge_type = torch.randint(0, num_rel, (e,), generator=g)
    x = torch.randn(n, 16, generator=g, dtype=torch.float64)
    w = torch.randn(num_rel, 16, 16, generator=g, dtype=torch.float64)
    index = relational_index(edge_index, edge_type, num_rel, n)
    assert rel._ranges(index, 16, 8).rows == 400 // (rel._TILES_PER_WORKER * rel._TILING_WORKERS)
    _at_one_and_two_threads(lambda: relational_index(edge_index, edge_type, num_rel, n), x, w)

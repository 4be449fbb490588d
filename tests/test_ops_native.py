"""The compiled CPU select (src/topkshape/_topk_native.c) against the definition.

Rows are built to reach each of its branches: short rows (a whole-row histogram), long
rows (a sampled bracket), a sample that misses the K-th key (the whole-row fallback),
candidates that all share one bin (further radix levels), all-equal and all-zero rows,
subnormals, infinities, negative zeros, and row lengths that are not a multiple of the
AVX-512 step. Each runs with the AVX-512 bracket pass and with the portable loop.
"""

from __future__ import annotations

import ctypes
import importlib.util

import pytest
import torch

from conftest import compiled_select_missing
from test_ops_paths import sort_reference
from topkshape import ops, spatial_topk, spatial_topk_mean_replace, topk_count, topk_mask

TIES = ["keep", "exact"]
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.fixture(autouse=True)
def _compiled_select():
    if (reason := compiled_select_missing()) is not None:
        pytest.skip(reason)


@pytest.fixture(params=["avx512", "portable"])
def bracket_pass(request):
    """The float32 bracket pass with AVX-512 (where the CPU has it) or the portable loop."""
    library = ops._NATIVE_LIBRARY
    if request.param == "avx512" and not library.topk_vector_bracket(1):
        pytest.skip("this CPU has no AVX-512")
    if request.param == "portable":
        assert library.topk_vector_bracket(0) == 0
    yield request.param
    library.topk_vector_bracket(1)


def hard_rows(positions: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """(1, rows, 1, positions): one row per case the select must get right."""
    g = torch.Generator().manual_seed(seed)
    gauss = torch.randn(positions, generator=g, dtype=torch.float64)
    stride = max(1, positions // 256)
    periodic = torch.full((positions,), 0.01, dtype=torch.float64)
    periodic[stride // 2 :: stride] = 100.0  # exactly the sampled positions are large: the bracket misses
    one_bin = 1.0 + torch.rand(positions, generator=g, dtype=torch.float64) * 1e-3  # all in one top-bits bin
    one_bin *= torch.where(torch.rand(positions, generator=g) < 0.5, -1.0, 1.0).double()
    sparse = torch.zeros(positions, dtype=torch.float64)
    sparse[torch.randperm(positions, generator=g)[:3]] = torch.tensor([2.0, -3.0, 0.5], dtype=torch.float64)
    tiny = torch.finfo(dtype).smallest_normal * torch.randint(-3, 4, (positions,), generator=g).double() / 4
    special = torch.randn(positions, generator=g, dtype=torch.float64)
    special[:3] = torch.tensor([float("inf"), float("-inf"), -0.0], dtype=torch.float64)
    rows = [
        gauss,
        torch.relu(gauss),  # half zeros
        torch.randint(-3, 4, (positions,), generator=g).double(),  # ties and zeros
        periodic,
        one_bin,
        torch.full((positions,), -2.5, dtype=torch.float64),  # all equal
        torch.zeros(positions, dtype=torch.float64),
        sparse,  # fewer non-zeros than K
        tiny,  # subnormals (float16's and float32's smallest values)
        special,
        gauss * 1e30,
    ]
    return torch.stack(rows).to(dtype).reshape(1, len(rows), 1, positions)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("positions", [7, 517, 1000, 3136])
@pytest.mark.parametrize("ties", TIES)
def test_compiled_select_matches_a_sort_on_rows_built_for_each_branch(dtype, positions, ties, bracket_pass):
    x = hard_rows(positions, dtype)
    for fraction in (1 / positions, 0.05, 0.2, 0.5, (positions - 1) / positions):
        k = topk_count(fraction, positions)
        assert torch.equal(topk_mask(x, fraction, ties), sort_reference(x, k, ties)), (fraction, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_sampled_bracket_holds_the_kth_key_of_gaussian_rows_and_misses_only_when_built_to(dtype, bracket_pass):
    misses = ops._NATIVE_LIBRARY.topk_bracket_misses
    g = torch.Generator().manual_seed(2)
    before = misses()
    for shape in [(4, 64, 56, 56), (2, 32, 112, 112), (8, 64, 28, 28)]:
        x = torch.randn(shape, generator=g).to(dtype)
        for fraction in (0.01, 0.05, 0.2, 0.5):
            topk_mask(x, fraction)
            topk_mask(torch.relu(x), fraction)
    assert misses() == before  # 832 Gaussian and 832 ReLU'd rows at each K: none fell back
    positions = 3136
    rows = hard_rows(positions, dtype)  # row 3 is large exactly at the sampled positions, 1/12 of them
    topk_mask(rows[:, 3:4], 0.05)  # K < the sampled large ones: the bracket still holds it
    assert misses() == before
    topk_mask(rows[:, 3:4], 0.2)  # K > all large ones: the sample puts the K-th among them, wrongly
    assert misses() == before + 1
    topk_mask(hard_rows(400, dtype), 0.05)  # short rows are histogrammed whole: no bracket to miss
    assert misses() == before + 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_is_the_largest_key_as_in_the_numpy_path(dtype, monkeypatch):
    x = torch.randn(2, 3, 30, 30).to(dtype)
    x[0, 1, 4, 5] = float("nan")
    x[1, 2, 0, 0] = -float("nan")
    compiled = [topk_mask(x, 0.05, ties) for ties in TIES]
    assert compiled[0][0, 1, 4, 5] and compiled[1][1, 2, 0, 0]
    monkeypatch.setattr(ops, "_NATIVE", {})
    assert all(torch.equal(mask, topk_mask(x, 0.05, ties)) for mask, ties in zip(compiled, TIES))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep", ["topk", "non_topk"])
@pytest.mark.parametrize("ties", TIES)
def test_fused_forward_and_its_gradient_equal_mask_then_where(dtype, keep, ties):
    g = torch.Generator().manual_seed(11)
    x = torch.randint(-5, 6, (2, 5, 24, 24), generator=g).to(dtype).requires_grad_()
    grad = torch.randn(x.shape, generator=g).to(dtype)
    y = spatial_topk(x, 0.1, keep=keep, ties=ties)
    y.backward(grad)
    kept = topk_mask(x, 0.1, ties)
    kept = ~kept if keep == "non_topk" else kept
    assert y.dtype == dtype and y.is_contiguous()
    assert torch.equal(y, torch.where(kept, x.detach(), torch.zeros((), dtype=dtype)))
    assert torch.equal(x.grad, torch.where(kept, grad, torch.zeros((), dtype=dtype)))


def test_the_forward_is_one_compiled_pass_for_contiguous_maps_only(monkeypatch):
    calls = []
    real = ops._native_select
    monkeypatch.setattr(ops, "_native_select", lambda x, *a, **kw: calls.append(kw["with_output"]) or real(x, *a, **kw))
    x = torch.randn(2, 3, 8, 8)
    spatial_topk(x, 0.25)
    assert calls == [True]  # mask and output together; no separate mask
    calls.clear()
    spatial_topk(x.to(memory_format=torch.channels_last), 0.25)
    assert calls == [False]  # channels_last: the mask of a contiguous copy, then a where
    calls.clear()
    spatial_topk_mean_replace(x, 0.25)
    assert calls == [False]


def test_rows_split_over_threads_each_write_their_own_mask_and_output(monkeypatch):
    # Every channel has its own scale: a thread writing another range's rows shows up.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(ops, "_PARALLEL_MIN_ELEMENTS", 1)
    try:
        g = torch.Generator().manual_seed(5)
        scale = torch.logspace(-2, 2, 7).view(1, 7, 1, 1)
        x = torch.randn(3, 7, 20, 30, generator=g) * scale
        k = topk_count(0.1, 600)
        for ties in TIES:
            expected = sort_reference(x, k, ties)
            assert torch.equal(topk_mask(x, 0.1, ties), expected)
            assert torch.equal(spatial_topk(x, 0.1, ties=ties), torch.where(expected, x, 0.0))
    finally:
        torch.set_num_threads(before)


def test_out_of_memory_in_the_compiled_select_is_a_memory_error(monkeypatch):
    monkeypatch.setitem(ops._NATIVE, torch.float32, lambda *args: -1)
    with pytest.raises(MemoryError, match="selection buffers of 64 positions"):
        topk_mask(torch.randn(1, 2, 8, 8), 0.1)


def test_a_k_outside_the_positions_is_refused_not_read_out_of_bounds():
    x = torch.randn(2, 3, 4, 4)
    for k in (0, 17, -1):
        with pytest.raises(ValueError, match=f"K = {k} is outside 1..16"):
            ops._native_select(x, k, exact=False, complement=False, with_output=True)
    mask, out = ops._native_select(x, 16, False, False, False)
    assert torch.equal(mask, x != 0) and out is None  # K = H*W: every non-zero; no output asked for
    empty = torch.randn(0, 3, 4, 4)
    assert ops._native_select(empty, 0, False, False, True)[0].shape == empty.shape  # no rows: nothing to do


@pytest.mark.parametrize("shape", [(2, 3, 0, 5), (0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 1, 1)])
@pytest.mark.parametrize("keep", ["topk", "non_topk"])
@pytest.mark.parametrize("ties", TIES)
def test_empty_and_single_position_maps_pass_through_both_ways(shape, keep, ties):
    x = torch.randn(shape, requires_grad=True)
    y = spatial_topk(x, 0.2, keep=keep, ties=ties)
    y.sum().backward()
    kept = torch.ones(shape, dtype=torch.bool) if keep == "topk" else torch.zeros(shape, dtype=torch.bool)
    assert torch.equal(y, torch.where(kept, x.detach(), 0.0)) and torch.equal(x.grad, kept.float())


def test_cpu_selection_names_the_select_and_its_bracket_pass(bracket_pass):
    vector = ", AVX-512 bracket pass" if bracket_pass == "avx512" else ""
    assert ops.cpu_selection() == f"compiled radix select{vector}"
    assert ops._NATIVE_LIBRARY.topk_vector_bracket(-1) == (bracket_pass == "avx512")  # asking changed nothing


def test_without_the_extension_the_numpy_path_runs_and_says_so(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert ops._load_native() == (None, {})
    monkeypatch.undo()

    def unloadable(path):
        raise OSError(f"{path}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", unloadable)
    assert ops._load_native() == (None, {})
    monkeypatch.setattr(ops, "_NATIVE", {})
    assert ops.cpu_selection() == "numpy introselect (compiled select not built)"


def test_a_fresh_load_declares_every_function_so_that_it_selects(monkeypatch):
    library, functions = ops._load_native()
    assert set(functions) == set(DTYPES)
    assert functions[torch.float16].__name__ == functions[torch.bfloat16].__name__ == "topk_rows_u16"
    assert functions[torch.float32].__name__ == "topk_rows_u32"
    assert functions[torch.float64].__name__ == "topk_rows_u64"
    assert library.topk_vector_bracket(-1) in (0, 1) and library.topk_openmp() in (0, 1)
    assert isinstance(library.topk_bracket_misses(), int)
    monkeypatch.setattr(ops, "_NATIVE_LIBRARY", library)
    monkeypatch.setattr(ops, "_NATIVE", functions)
    x = hard_rows(600, torch.float64).expand(2, -1, -1, -1).contiguous()
    for dtype in DTYPES:
        y = x.to(dtype)
        for ties in TIES:
            expected = sort_reference(y, 60, ties)
            assert torch.equal(topk_mask(y, 0.1, ties), expected), (dtype, ties)
            assert torch.equal(spatial_topk(y, 0.1, ties=ties), torch.where(expected, y, torch.zeros((), dtype=dtype)))


@pytest.fixture
def select_calls(monkeypatch):
    """(rows, threads) of every call of the float32 compiled select."""
    calls = []
    select = ops._NATIVE[torch.float32]
    monkeypatch.setitem(ops._NATIVE, torch.float32, lambda *args: calls.append((args[3], args[-1])) or select(*args))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield calls
    torch.set_num_threads(before)


@pytest.mark.skipif(not (ops._NATIVE_LIBRARY and ops._NATIVE_LIBRARY.topk_openmp()), reason="built without OpenMP")
def test_one_call_spreads_the_rows_over_torchs_openmp_threads(select_calls):
    x = torch.randn(2, 32, 32, 32)  # 65,536 elements: the parallel threshold
    assert torch.equal(topk_mask(x, 0.1), sort_reference(x, topk_count(0.1, 1024), "keep"))
    assert select_calls == [(64, 2)]
    topk_mask(x[:, :31], 0.1)  # below the threshold: one thread
    topk_mask(torch.randn(1, 1, 300, 300), 0.1)  # one row: one thread, however large
    assert select_calls == [(64, 2), (62, 1), (1, 1)]


def test_one_libgomp_is_loaded_so_the_openmp_threads_are_torchs():
    import os

    torch_gomp = [name for name in os.listdir(os.path.join(os.path.dirname(torch.__file__), "lib")) if "gomp" in name]
    if not torch_gomp or not ops._NATIVE_LIBRARY.topk_openmp():
        pytest.skip("this torch bundles no libgomp, or the select was built without OpenMP")
    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "libgomp" in line}
    assert len(loaded) == 1 and os.path.dirname(torch.__file__) in next(iter(loaded)), loaded


def test_without_openmp_the_rows_go_to_a_thread_pool_of_our_own(select_calls, monkeypatch):
    monkeypatch.setattr(ops._NATIVE_LIBRARY, "topk_openmp", lambda: 0)
    ranges = []
    real_pool = ops._thread_pool

    class SpyPool:
        def __init__(self, pool):
            self.pool = pool

        def submit(self, work, part, lo, hi):
            ranges.append((int(lo), int(hi)))
            return self.pool.submit(work, part, lo, hi)

    monkeypatch.setattr(ops, "_thread_pool", lambda workers, pid: SpyPool(real_pool(workers, pid)))
    scale = torch.logspace(-2, 2, 5).view(1, 5, 1, 1)
    x = torch.randn(3, 5, 64, 70) * scale  # 67,200 elements, 15 rows
    for ties in TIES:
        expected = sort_reference(x, topk_count(0.1, 64 * 70), ties)
        assert torch.equal(topk_mask(x, 0.1, ties), expected)
        assert torch.equal(spatial_topk(x, 0.1, ties=ties), torch.where(expected, x, 0.0))
    assert ranges == [(0, 7), (7, 15)] * 2 * 2
    assert select_calls == [(7, 1), (8, 1)] * 4  # each range in one thread
    topk_mask(x[:1, :2], 0.1)  # below the parallel threshold: all rows in one call, no pool
    assert ranges == [(0, 7), (7, 15)] * 2 * 2 and select_calls[8:] == [(2, 1)]

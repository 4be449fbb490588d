"""Each selection path of topkshape.ops against definitions written out by hand.

The CPU path (integer keys, row blocks, a thread pool), the torch-only path (CUDA and
``torch.compile``; reached here by reporting "compiling"), ``kth_largest``, the edge
cases of Eq. 1 and Eq. 2 (K = H*W, K = 1, subnormals, zeros, fp16 sums) and the exact
error messages. Small blocks and a low parallel threshold are patched in so that tiny
tensors cover several blocks and the thread pool.
"""

from __future__ import annotations

import os

import pytest
import torch

from topkshape import TopK, TopKMeanReplace, spatial_topk, spatial_topk_mean_replace, topk_count, topk_mask
from topkshape import ops
from topkshape.errors import ConfigError

TIES = ["keep", "exact"]
T, F = True, False


@pytest.fixture(autouse=True)
def _both_cpu_selections(cpu_selection_backend):
    """Every test here runs with the compiled select and with the numpy fallback."""


def sort_reference(x: torch.Tensor, k: int, ties: str) -> torch.Tensor:
    """Eq. 1's mask from a stable descending sort of |x| per (sample, channel)."""
    n, c, h, w = x.shape
    flat = x.detach().double().abs().reshape(n * c, h * w)
    values, order = torch.sort(flat, dim=1, descending=True, stable=True)
    if ties == "exact":  # equal values stay in index order: the first k are the lowest-index ties
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order[:, :k], True)
    else:
        mask = (flat >= values[:, k - 1 : k]) & (flat > 0)
    return mask.reshape(n, c, h, w)


def tied_input(shape, seed=0, dtype=torch.float32):
    """Small integers with both signs: many ties and zeros."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, shape, generator=g).to(dtype)


@pytest.fixture
def torch_path(monkeypatch):
    """topk_mask and kth_largest as while torch.compile traces: the torch-only path."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)


@pytest.fixture
def numpy_path(monkeypatch):
    """The numpy fallback's row blocks, whichever selection the parametrised run asked for."""
    monkeypatch.setattr(ops, "_NATIVE", {})


@pytest.fixture
def threads(monkeypatch):
    """Two threads, any size parallel, and a spy on the pool: (workers, pid, [(lo, hi), ...])."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(ops, "_PARALLEL_MIN_ELEMENTS", 12)
    calls = []
    real_pool = ops._thread_pool

    class SpyPool:
        def __init__(self, pool, ranges):
            self.pool, self.ranges = pool, ranges

        def submit(self, work, part, lo, hi):
            self.ranges.append((int(lo), int(hi)))
            assert len(part) == hi - lo
            return self.pool.submit(work, part, lo, hi)

    def spy(workers, pid):
        calls.append((workers, pid, []))
        return SpyPool(real_pool(workers, pid), calls[-1][2])

    monkeypatch.setattr(ops, "_thread_pool", spy)
    yield calls
    torch.set_num_threads(before)


# --- error messages -------------------------------------------------------------------


def test_fraction_errors_say_what_is_wrong_and_name_the_value():
    with pytest.raises(ValueError) as info:
        ops.check_fraction("0.2")
    assert str(info.value) == "Top-K fraction must be a number in (0, 1], got '0.2'"
    with pytest.raises(ValueError) as info:
        ops.check_fraction(1.5)
    assert str(info.value) == "Top-K fraction must be in (0, 1], got 1.5"
    assert ops.check_fraction(1) == 1.0 and type(ops.check_fraction(1)) is float


def test_ties_error_lists_the_rules():
    with pytest.raises(ConfigError) as info:
        ops.check_ties("first")
    assert str(info.value) == ("Top-K ties must be one of keep, exact, random (keep every tied entry, exactly K in index order, "
                               "or exactly K choosing among ties at random), got 'first'")


def test_input_error_names_the_shape_or_the_type():
    with pytest.raises(ValueError) as info:
        spatial_topk(torch.zeros(2, 3, 4), 0.5)
    assert str(info.value) == "Top-K expects a 4-D (N, C, H, W) tensor, got (2, 3, 4)"
    with pytest.raises(ValueError) as info:
        topk_mask([[1.0, 2.0]], 0.5)
    assert str(info.value) == "Top-K expects a 4-D (N, C, H, W) tensor, got list"


def test_keep_error_lists_the_choices():
    with pytest.raises(ValueError) as info:
        spatial_topk(torch.zeros(1, 1, 2, 2), 0.5, keep="bottom")
    assert str(info.value) == "keep must be one of ('topk', 'non_topk'), got 'bottom'"


# --- K = H*W and K = 1 ----------------------------------------------------------------


def test_mask_at_k_equal_to_positions_is_every_non_zero_or_everything_with_exact():
    # Channel 0 has a zero, channel 1 none; a 1x1 map has K = 1 = H*W at any fraction.
    x = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]], [[1.0, 1.0], [-4.0, 0.5]]]])
    assert topk_mask(x, 1.0, "keep").dtype == topk_mask(x, 1.0, "exact").dtype == torch.bool
    assert torch.equal(topk_mask(x, 1.0, "keep"), torch.tensor([[[[F, T], [T, T]], [[T, T], [T, T]]]]))
    assert torch.equal(topk_mask(x, 1.0, "exact"), torch.ones(1, 2, 2, 2, dtype=torch.bool))
    one = torch.tensor([[[[0.0]], [[-2.0]]]])
    assert torch.equal(topk_mask(one, 0.1, "keep"), torch.tensor([[[[F]], [[T]]]]))
    assert torch.equal(topk_mask(one, 0.1, "exact"), torch.tensor([[[[T]], [[T]]]]))


def test_fraction_one_returns_x_itself_with_identity_gradient_even_at_zeros():
    x = torch.tensor([[[[0.0, 2.0], [-1.0, 0.0]]]], requires_grad=True)
    for fn in (lambda t: spatial_topk(t, 1.0), lambda t: spatial_topk(t, 1.0, ties="exact")):
        assert fn(x) is x
    layer = TopK(1.0)
    layer.record_mask = True
    assert layer(x) is x
    assert torch.equal(layer.last_mask, torch.tensor([[[[F, T], [T, F]]]]))
    revert = TopK(1.0, keep="non_topk")
    revert.record_mask = True
    assert torch.equal(revert(x), torch.zeros_like(x))


def test_mean_replace_with_k_one_is_the_single_largest_entry_itself():
    x = torch.tensor([[[[0.5, -3.0], [2.0, 1.0]], [[7.0, 1.0], [2.0, 1.0]]]])
    out = spatial_topk_mean_replace(x, 0.25)
    assert torch.equal(out, torch.tensor([[[[0.0, -3.0], [0.0, 0.0]], [[7.0, 0.0], [0.0, 0.0]]]]))


# --- zeros, subnormals, half precision --------------------------------------------------


@pytest.mark.parametrize("path", ["cpu", "torch"])
def test_the_smallest_subnormal_is_a_response_and_zero_is_not(path, monkeypatch):
    if path == "torch":
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    tiny = torch.finfo(torch.float32).smallest_normal / 2**23  # 1.4e-45, bit pattern 1
    assert tiny > 0 and torch.tensor([tiny]).view(torch.int32).item() == 1
    x = torch.tensor([[[[0.0, tiny], [0.0, -tiny]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert torch.equal(topk_mask(x, 0.75, "keep"), torch.tensor([[[[F, T], [F, T]], [[F, F], [F, F]]]]))
    # With exact, K = 3 entries: both subnormals and then the first zero.
    assert torch.equal(topk_mask(x, 0.75, "exact"), torch.tensor([[[[T, T], [F, T]], [[T, T], [T, F]]]]))


def test_fp16_mean_replace_sums_in_float32_forward_and_backward():
    # Two kept fp16 entries of 60000: their fp16 sum overflows, their mean does not.
    x = torch.tensor([[[[60000.0, 1.0], [60000.0, 2.0]]]], dtype=torch.float16, requires_grad=True)
    out = spatial_topk_mean_replace(x, 0.5)
    assert out.dtype == torch.float16
    assert torch.equal(out, torch.tensor([[[[60000.0, 0.0], [60000.0, 0.0]]]], dtype=torch.float16))
    out.backward(torch.full_like(out, 60000.0))
    assert x.grad.dtype == torch.float16
    assert torch.equal(x.grad, torch.tensor([[[[60000.0, 0.0], [60000.0, 0.0]]]], dtype=torch.float16))


# --- which path runs ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cpu_float_maps_are_selected_on_integer_keys_not_by_torch_ops(dtype, monkeypatch):
    def no_torch_path(*args):
        raise AssertionError("the torch-only path ran on the CPU")

    monkeypatch.setattr(ops, "_torch_mask", no_torch_path)
    monkeypatch.setattr(ops, "kth_largest", no_torch_path)
    x = tied_input((2, 3, 4, 5), dtype=dtype)
    for ties in TIES:
        assert torch.equal(topk_mask(x, 0.25, ties), sort_reference(x, 5, ties))


@pytest.mark.parametrize("ties", TIES)
def test_meta_tensors_get_a_meta_mask_of_the_same_shape(ties):
    # Shape inference (fake and meta tensors) must not reach numpy.
    x = torch.empty(2, 3, 4, 5, device="meta")
    mask = topk_mask(x, 0.25, ties)
    assert mask.device.type == "meta" and mask.shape == x.shape and mask.dtype == torch.bool
    assert spatial_topk(x, 0.25, ties=ties).device.type == "meta"
    assert spatial_topk_mean_replace(x, 0.25, ties=ties).device.type == "meta"
    assert ops.kth_largest(torch.empty(6, 20, device="meta"), 5).shape == (6,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("ties", TIES)
def test_torch_only_path_selects_like_the_sort_reference(dtype, ties, torch_path, monkeypatch):
    monkeypatch.setattr(ops, "_cpu_mask", lambda *a: pytest.fail("the numpy path ran while compiling"))
    monkeypatch.setattr(ops, "_kth_rows", lambda *a: pytest.fail("the numpy path ran while compiling"))
    for seed, shape in enumerate([(2, 3, 4, 5), (3, 2, 3, 3), (1, 4, 1, 7)]):
        x = tied_input(shape, seed=seed, dtype=dtype)
        k = topk_count(0.3, shape[2] * shape[3])
        assert torch.equal(topk_mask(x, 0.3, ties), sort_reference(x, k, ties)), (shape, seed)


def test_torch_only_path_on_the_hand_written_tie_example(torch_path):
    # Four entries tie at |x| = 1 (flat indices 1, 2, 3, 5) behind the single 5.
    x = torch.tensor([[[[5.0, 1.0, -1.0], [1.0, 0.5, 1.0], [0.1, 0.2, 0.0]]]])
    assert torch.equal(topk_mask(x, 2 / 9, "keep"), torch.tensor([[[[T, T, T], [T, F, T], [F, F, F]]]]))
    assert torch.equal(topk_mask(x, 4 / 9, "exact"), torch.tensor([[[[T, T, T], [T, F, F], [F, F, F]]]]))
    assert torch.equal(topk_mask(x, 8 / 9, "keep"), torch.tensor([[[[T, T, T], [T, T, T], [T, T, F]]]]))
    assert torch.equal(topk_mask(x, 8 / 9, "exact"), torch.tensor([[[[T, T, T], [T, T, T], [T, T, F]]]]))


# --- channels_last --------------------------------------------------------------------


def test_mask_has_the_memory_format_of_the_input():
    x = tied_input((2, 3, 4, 5))
    assert topk_mask(x, 0.25).is_contiguous()
    mask = topk_mask(x.to(memory_format=torch.channels_last), 0.25, "exact")
    assert mask.is_contiguous(memory_format=torch.channels_last) and not mask.is_contiguous()
    assert torch.equal(mask, sort_reference(x, 5, "exact"))


def test_a_strided_view_gets_a_contiguous_mask():
    # Neither contiguous nor channels_last: the mask is laid out plainly, not as channels_last.
    base = tied_input((2, 3, 4, 10), seed=5)
    x = base[:, :, :, ::2]
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    for ties in TIES:
        mask = topk_mask(x, 0.25, ties)
        assert mask.is_contiguous() and not mask.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(mask, sort_reference(x, 5, ties))


# --- blocks and threads ---------------------------------------------------------------


@pytest.mark.parametrize("ties", TIES)
def test_selection_in_many_small_blocks_matches_the_sort_reference(ties, monkeypatch, numpy_path):
    # 20 positions per row, blocks of 40 elements: 2 rows per block, the last block partial.
    monkeypatch.setattr(ops, "_BLOCK_ELEMENTS", 40)
    for seed, shape in enumerate([(1, 7, 4, 5), (3, 3, 5, 4), (2, 5, 1, 20)]):
        x = tied_input(shape, seed=seed)
        assert torch.equal(topk_mask(x, 0.2, ties), sort_reference(x, 4, ties)), shape
    # A row longer than a block is a block of its own.
    monkeypatch.setattr(ops, "_BLOCK_ELEMENTS", 8)
    x = tied_input((1, 3, 4, 5), seed=9)
    assert torch.equal(topk_mask(x, 0.2, ties), sort_reference(x, 4, ties))


def test_each_row_is_selected_in_exactly_one_block(monkeypatch, numpy_path):
    # 7 rows in blocks of 2 rows: 4 blocks, each compared into the mask once.
    monkeypatch.setattr(ops, "_BLOCK_ELEMENTS", 40)
    compares, partitions = [], []
    greater_equal, partition = ops.np.greater_equal, ops.np.partition
    monkeypatch.setattr(ops.np, "greater_equal", lambda *a, **kw: compares.append(len(a[0])) or greater_equal(*a, **kw))
    monkeypatch.setattr(ops.np, "partition", lambda *a, **kw: partitions.append(len(a[0])) or partition(*a, **kw))
    topk_mask(tied_input((1, 7, 4, 5)), 0.2)
    assert compares == [2, 2, 2, 1]
    ops.kth_largest(torch.randn(7, 20), 3)
    assert partitions == [2, 2, 2, 1]


@pytest.mark.parametrize("ties", TIES)
def test_rows_are_split_into_one_contiguous_range_per_thread(ties, threads, numpy_path):
    x = tied_input((1, 5, 2, 3), seed=1)  # 5 rows of 6 positions: 30 elements
    assert torch.equal(topk_mask(x, 0.5, ties), sort_reference(x, 3, ties))
    assert threads == [(2, os.getpid(), [(0, 2), (2, 5)])]
    # More rows than positions (and several blocks per thread).
    threads.clear()
    x = tied_input((2, 9, 1, 2), seed=2)
    assert torch.equal(topk_mask(x, 0.5, ties), sort_reference(x, 1, ties))
    assert threads == [(2, os.getpid(), [(0, 9), (9, 18)])]


def test_small_inputs_one_row_or_one_thread_run_without_the_pool(threads):
    rows = torch.arange(12.0).reshape(3, 4)  # exactly the (patched) parallel threshold
    assert torch.equal(ops.kth_largest(rows, 2), torch.tensor([2.0, 6.0, 10.0]))
    assert [c[2] for c in threads] == [[(0, 1), (1, 3)]]
    threads.clear()
    assert torch.equal(ops.kth_largest(torch.arange(10.0).reshape(2, 5), 1), torch.tensor([4.0, 9.0]))  # 10 < 12
    assert torch.equal(ops.kth_largest(torch.arange(20.0).reshape(1, 20), 3), torch.tensor([17.0]))  # one row
    torch.set_num_threads(1)
    assert torch.equal(ops.kth_largest(torch.arange(40.0).reshape(4, 10), 10), torch.tensor([0.0, 10.0, 20.0, 30.0]))
    assert threads == []


def test_thread_pool_is_one_per_process_with_the_asked_workers():
    pool = ops._thread_pool(3, os.getpid())
    assert pool is ops._thread_pool(3, os.getpid()) and pool is not ops._thread_pool(3, -1)
    assert pool._max_workers == 3


# --- kth_largest ----------------------------------------------------------------------


def kth_by_sort(rows, k):
    return rows.sort(dim=1, descending=True).values[:, k - 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kth_largest_is_the_kth_of_a_descending_sort_per_row(dtype, monkeypatch):
    calls = []
    real = ops._kth_rows
    monkeypatch.setattr(ops, "_kth_rows", lambda *a: calls.append(1) or real(*a))
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(-5, 6, (7, 4), generator=g).to(dtype)  # more rows than columns, ties
    for k in (1, 2, 4):
        out = ops.kth_largest(rows, k)
        assert out.dtype == dtype and torch.equal(out, kth_by_sort(rows, k))
    assert calls, "CPU float rows go through numpy's introselect"
    monkeypatch.setattr(ops, "_BLOCK_ELEMENTS", 8)  # 2 rows per block, the last one partial
    assert torch.equal(ops.kth_largest(rows, 3), kth_by_sort(rows, 3))
    monkeypatch.setattr(ops, "_BLOCK_ELEMENTS", 2)  # a row longer than a block
    assert torch.equal(ops.kth_largest(rows, 3), kth_by_sort(rows, 3))


def test_kth_largest_while_compiling_uses_torch_ops(torch_path, monkeypatch):
    monkeypatch.setattr(ops, "_kth_rows", lambda *a: pytest.fail("the numpy path ran while compiling"))
    rows = torch.tensor([[3.0, -1.0, 2.0, 2.0], [0.0, 5.0, 4.0, 6.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.equal(ops.kth_largest(rows, 2), torch.tensor([2.0, 5.0, 1.0]))
    assert torch.equal(ops.kth_largest(rows, 4), torch.tensor([-1.0, 0.0, 1.0]))


# --- the layers -----------------------------------------------------------------------


def test_layers_start_without_recording_and_without_a_mask():
    for layer in (TopK(0.2), TopKMeanReplace(0.2)):
        assert layer.record_mask is False and layer.last_mask is None
        layer(torch.ones(1, 1, 2, 2))
        assert layer.last_mask is None


def mean_replace_by_hand(x, mask):
    """Eq. 2 channel by channel: each kept place gets the mean of its channel's kept entries."""
    out = torch.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            m = mask[n, c]
            if m.any():
                out[n, c][m] = x[n, c][m].sum() / m.sum()
    return out


@pytest.mark.parametrize("ties", TIES)
def test_layers_follow_their_tie_rule_with_and_without_recording(ties):
    x = tied_input((2, 3, 4, 4), seed=4)
    mask = sort_reference(x, 4, ties)
    for make, expected in [
        (lambda: TopK(0.25, ties=ties), torch.where(mask, x, 0.0)),
        (lambda: TopK(0.25, keep="non_topk", ties=ties), torch.where(mask, 0.0, x)),
        (lambda: TopKMeanReplace(0.25, ties=ties), mean_replace_by_hand(x, mask)),
    ]:
        layer = make()
        assert torch.equal(layer(x), expected)
        layer.record_mask = True
        out = layer(x)
        assert torch.equal(layer.last_mask, mask)
        assert torch.equal(out, expected)


# --- gradients ------------------------------------------------------------------------


def test_topk_gradient_is_the_upstream_gradient_at_kept_places_and_zero_elsewhere():
    # K = 2 of 4 per channel: channel 0 keeps -3 and 2, channel 1 keeps 7 and -5.
    x = torch.tensor([[[[0.5, -3.0], [2.0, 1.0]], [[7.0, 1.0], [-5.0, 0.0]]]], requires_grad=True)
    g = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    spatial_topk(x, 0.5).backward(g)
    assert torch.equal(x.grad, torch.tensor([[[[0.0, 2.0], [3.0, 0.0]], [[5.0, 0.0], [7.0, 0.0]]]]))
    x.grad = None
    spatial_topk(x, 0.5, keep="non_topk").backward(g)
    assert torch.equal(x.grad, torch.tensor([[[[1.0, 0.0], [0.0, 4.0]], [[0.0, 6.0], [0.0, 8.0]]]]))


def test_mean_replace_gradient_is_the_mean_kept_upstream_gradient_at_kept_places():
    # Eq. 2: d out[p] / d x[q] = 1/K for kept p, q, so each kept x gets the mean kept gradient.
    x = torch.tensor([[[[0.5, -3.0], [2.0, 1.0]], [[7.0, 1.0], [-5.0, 0.0]]]], requires_grad=True)
    g = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [8.0, 8.0]]]])
    out = spatial_topk_mean_replace(x, 0.5)
    assert torch.equal(out, torch.tensor([[[[0.0, -0.5], [-0.5, 0.0]], [[1.0, 0.0], [1.0, 0.0]]]]))
    out.backward(g)
    assert torch.equal(x.grad, torch.tensor([[[[0.0, 2.5], [2.5, 0.0]], [[6.5, 0.0], [6.5, 0.0]]]]))


def test_fraction_checks_reject_booleans_zero_and_above_one():
    for bad in (True, 0, 0.0, -0.5, 1.0000001, 2):
        with pytest.raises(ValueError, match="fraction"):
            ops.check_fraction(bad)
    assert ops.check_fraction(1e-9) == 1e-9 and ops.check_fraction(1.0) == 1.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_magnitudes_one_ulp_apart_are_not_ties(dtype):
    one = torch.ones((), dtype=dtype)
    above = torch.nextafter(one, torch.full((), 2.0, dtype=dtype))
    assert above > one
    x = torch.stack([one, -above, one, one]).reshape(1, 1, 2, 2)
    for ties in TIES:
        assert torch.equal(topk_mask(x, 0.25, ties), torch.tensor([[[[F, T], [F, F]]]]))

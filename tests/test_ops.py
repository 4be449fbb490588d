"""Behaviour of the spatial Top-K operations (Eq. 1, Eq. 2, the complement)."""

from __future__ import annotations

import pytest
import torch

from topkshape import TopK, TopKMeanReplace, spatial_topk, spatial_topk_mean_replace, topk_count, topk_mask
from topkshape import ops
from topkshape.errors import ConfigError
from topkshape.reference import reference_topk, reference_topk_mean_replace

TIES = ["keep", "exact"]


@pytest.fixture(autouse=True)
def _both_cpu_selections(cpu_selection_backend):
    """Every test here runs with the compiled select and with the numpy fallback."""


def distinct_input(shape, seed=0, dtype=torch.float32):
    """Random values with distinct magnitudes (no ties, no zeros)."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    magnitudes = torch.randperm(n, generator=g).to(torch.float64) + 1.0
    signs = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    return (magnitudes * signs / n).reshape(shape).to(dtype)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 7, 5), (3, 2, 1, 1), (2, 2, 1, 9)])
@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("ties", TIES)
def test_topk_matches_paper_formulation_without_ties(shape, fraction, ties):
    x = distinct_input(shape)
    expected, _ = reference_topk(x, fraction)
    assert torch.equal(spatial_topk(x, fraction, ties=ties), expected)
    revert, _ = reference_topk(x, fraction, revert=True)
    if fraction < 1.0:
        assert torch.equal(spatial_topk(x, fraction, keep="non_topk", ties=ties), revert)
    else:
        # The paper code returns x for fraction 1 even when reverting; the complement
        # of "keep everything" is nothing, so ours is all zeros.
        assert torch.equal(spatial_topk(x, fraction, keep="non_topk", ties=ties), torch.zeros_like(x))


@pytest.mark.parametrize("ties", TIES)
def test_topk_matches_reference_on_gaussian_input_and_mean_replace_too(ties):
    torch.manual_seed(1)
    x = torch.randn(4, 16, 14, 14, dtype=torch.float64)
    for fraction in (0.05, 0.2):
        assert torch.equal(spatial_topk(x, fraction, ties=ties), reference_topk(x, fraction)[0])
        torch.testing.assert_close(
            spatial_topk_mean_replace(x, fraction, ties=ties), reference_topk_mean_replace(x, fraction)
        )


@pytest.mark.parametrize("hw,fraction,k", [(100, 0.05, 5), (3136, 0.2, 627), (10, 0.01, 1), (1, 0.5, 1), (9, 1.0, 9), (100, 0.29, 28)])
def test_k_is_floor_with_a_minimum_of_one(hw, fraction, k):
    assert topk_count(fraction, hw) == k


def test_each_channel_keeps_exactly_k_entries_without_ties():
    x = distinct_input((3, 5, 6, 7))
    mask = topk_mask(x, 0.1)
    k = topk_count(0.1, 42)
    assert (mask.sum(dim=(2, 3)) == k).all()
    # And they are the largest magnitudes of their channel.
    flat = x.abs().flatten(2)
    kept_min = torch.where(mask.flatten(2), flat, torch.inf).amin(2)
    dropped_max = torch.where(mask.flatten(2), -torch.inf, flat).amax(2)
    assert (kept_min > dropped_max).all()


def test_k_of_one_keeps_the_single_largest_magnitude_even_if_negative():
    x = torch.tensor([[[[0.5, -3.0], [2.0, 1.0]]]])
    out = spatial_topk(x, 0.25)
    assert torch.equal(out, torch.tensor([[[[0.0, -3.0], [0.0, 0.0]]]]))


def test_single_position_map_is_kept_at_any_fraction():
    x = torch.randn(2, 3, 1, 1)
    assert torch.equal(spatial_topk(x, 0.01), x)
    assert torch.equal(spatial_topk(x, 0.01, keep="non_topk"), torch.zeros_like(x))


def test_fraction_one_is_the_identity_with_identity_gradient():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    out = spatial_topk(x, 1.0)
    assert torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_ties_at_the_threshold_are_all_kept():
    # Eq. 1 uses >=: four entries tie for the 2nd-largest |x|, all four are kept.
    x = torch.tensor([[[[5.0, 1.0, -1.0], [1.0, 0.5, 1.0], [0.1, 0.2, 0.3]]]])
    mask = topk_mask(x, 2 / 9)
    expected = torch.tensor([[[[True, True, True], [True, False, True], [False, False, False]]]])
    assert torch.equal(mask, expected)


def test_exact_keeps_k_entries_taking_tied_ones_in_flat_spatial_order():
    # Four entries tie at |x| = 1 (flat indices 1, 2, 3, 5) behind the single 5.
    x = torch.tensor([[[[5.0, 1.0, -1.0], [1.0, 0.5, 1.0], [0.1, 0.2, 0.3]]]])
    T, F = True, False
    # K = 2: 5 and the first tie (index 1).
    assert torch.equal(topk_mask(x, 2 / 9, "exact"), torch.tensor([[[[T, T, F], [F, F, F], [F, F, F]]]]))
    # K = 4: 5 and the ties at indices 1, 2, 3; index 5 is dropped.
    assert torch.equal(topk_mask(x, 4 / 9, "exact"), torch.tensor([[[[T, T, T], [T, F, F], [F, F, F]]]]))
    # K = 6: all five entries >= 1, then 0.5 (no tie left to break).
    assert torch.equal(topk_mask(x, 6 / 9, "exact"), torch.tensor([[[[T, T, T], [T, T, T], [F, F, F]]]]))
    # The output and the complement follow the same mask.
    assert torch.equal(spatial_topk(x, 2 / 9, ties="exact"), torch.tensor([[[[5.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]))
    assert torch.equal(
        spatial_topk(x, 2 / 9, keep="non_topk", ties="exact"),
        torch.tensor([[[[0.0, 0.0, -1.0], [1.0, 0.5, 1.0], [0.1, 0.2, 0.3]]]]),
    )


def test_exact_resolves_ties_per_channel_and_sample_independently():
    T, F = True, False
    # (2 samples, 2 channels, 2x3), K = 2 of 6. Written out by hand, channel by channel.
    x = torch.tensor(
        [
            [[[3.0, 3.0, 3.0], [3.0, 1.0, 2.0]], [[1.0, 2.0, 4.0], [2.0, 2.0, 0.5]]],
            [[[0.0, -2.0, 0.0], [2.0, 0.0, 2.0]], [[7.0, 6.0, 5.0], [4.0, 3.0, 2.0]]],
        ]
    )
    expected = torch.tensor(
        [
            [[[T, T, F], [F, F, F]], [[F, T, T], [F, F, F]]],  # four 3s: first two; 4 then first 2
            [[[F, T, F], [T, F, F]], [[T, T, F], [F, F, F]]],  # three |2|s: first two; no tie
        ]
    )
    assert torch.equal(topk_mask(x, 2 / 6, "exact"), expected)
    keep = torch.tensor(
        [
            [[[T, T, T], [T, F, F]], [[F, T, T], [T, T, F]]],
            [[[F, T, F], [T, F, T]], [[T, T, F], [F, F, F]]],
        ]
    )
    assert torch.equal(topk_mask(x, 2 / 6, "keep"), keep)


def test_exact_fills_k_with_zeros_in_flat_order_when_few_entries_are_non_zero():
    # Two non-zero entries, K = 4: exact takes both and the first two zeros (indices 0, 1),
    # as many entries as torch.topk in the paper code; keep takes the non-zero ones only.
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 3.0
    x[0, 0, 3, 3] = -1.0
    mask = topk_mask(x, 0.25, "exact")
    expected = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    expected[0, 0, 0, 0] = expected[0, 0, 0, 1] = expected[0, 0, 1, 2] = expected[0, 0, 3, 3] = True
    assert torch.equal(mask, expected)
    # Eq. 2 with exactly K divides by K, as the paper code: (3 - 1) / 4 at the four kept places.
    out = spatial_topk_mean_replace(x, 0.25, ties="exact")
    assert torch.equal(out, expected.float() * 0.5)


def test_exact_mean_replace_averages_the_first_k_of_tied_entries():
    # K = 2: 4 and the first of the tied |-2|, |2| (index 1, value -2): mean (4 - 2) / 2 = 1.
    x = torch.tensor([[[[4.0, -2.0], [2.0, 1.0]]]])
    out = spatial_topk_mean_replace(x, 0.5, ties="exact")
    assert torch.equal(out, torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]]))
    # With keep, all three: (4 - 2 + 2) / 3.
    torch.testing.assert_close(spatial_topk_mean_replace(x, 0.5), torch.tensor([[[[4 / 3, 4 / 3], [4 / 3, 0.0]]]]))


def sort_reference_mask(x: torch.Tensor, k: int, ties: str) -> torch.Tensor:
    """Top-K mask straight from the definition, by a stable descending sort of |x| per channel."""
    n, c, h, w = x.shape
    flat = x.detach().double().abs().reshape(n * c, h * w)
    values, order = torch.sort(flat, dim=1, descending=True, stable=True)
    if ties == "exact":
        # A stable sort keeps equal values in index order: the first k are the lowest-index ties.
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask.scatter_(1, order[:, :k], True)
    else:
        mask = (flat >= values[:, k - 1 : k]) & (flat > 0)
    return mask.reshape(n, c, h, w)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("shape", [(4, 64, 32, 32), (8, 64, 32, 32), (3, 37, 32, 24)])
@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("fraction", [0.05, 0.2])
def test_threaded_cpu_selection_matches_a_sort_reference(shape, ties, fraction, two_threads, monkeypatch):
    # >= 65,536 elements and more rows than threads: the rows are split over two threads
    # (numpy: a thread pool, and for 8x64x32x32 several blocks per thread; compiled: torch's
    # OpenMP threads). Each channel gets its own scale, so a row paired with another row's
    # threshold shows up.
    calls = []
    real_pool = ops._thread_pool

    def counting_pool(workers, pid):
        calls.append(workers)
        return real_pool(workers, pid)

    monkeypatch.setattr(ops, "_thread_pool", counting_pool)
    if ops._NATIVE:
        select = ops._NATIVE[torch.float32]
        monkeypatch.setitem(ops._NATIVE, torch.float32, lambda *args: calls.append(args[-1]) or select(*args))
    g = torch.Generator().manual_seed(7)
    n, c, h, w = shape
    scale = torch.logspace(-3, 3, n * c, dtype=torch.float64)[torch.randperm(n * c, generator=g)].view(n, c, 1, 1)
    continuous = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).float()
    tied = torch.randint(-4, 5, shape, generator=g).float() * scale.float()  # many ties and zeros
    k = topk_count(fraction, h * w)
    for x in (continuous, tied):
        assert torch.equal(topk_mask(x, fraction, ties), sort_reference_mask(x, k, ties))
    assert calls == [2, 2]


def test_low_precision_and_float64_select_like_a_sort_reference():
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-6, 7, (2, 5, 9, 11), generator=g).double() / 4
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        xd = x.to(dtype)
        for ties in TIES:
            assert torch.equal(topk_mask(xd, 0.1, ties), sort_reference_mask(xd, topk_count(0.1, 99), ties)), (dtype, ties)


def test_zeros_are_never_topk_responses():
    # Only two non-zero entries but K = 4: the mask holds just those two.
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 3.0
    x[0, 0, 3, 3] = -1.0
    mask = topk_mask(x, 0.25)
    assert mask.sum() == 2 and mask[0, 0, 1, 2] and mask[0, 0, 3, 3]
    out = spatial_topk_mean_replace(x, 0.25)
    assert out[0, 0, 1, 2] == 1.0 and out[0, 0, 3, 3] == 1.0 and out.abs().sum() == 2.0


def test_gradient_is_exactly_zero_at_dropped_and_identity_at_kept_positions():
    x = distinct_input((2, 4, 5, 5)).requires_grad_()
    upstream = torch.randn(2, 4, 5, 5)
    spatial_topk(x, 0.2).backward(upstream)
    mask = topk_mask(x, 0.2)
    assert torch.equal(x.grad[mask], upstream[mask])
    assert (x.grad[~mask] == 0).all()
    x.grad = None
    spatial_topk(x, 0.2, keep="non_topk").backward(upstream)
    assert torch.equal(x.grad[~mask], upstream[~mask])
    assert (x.grad[mask] == 0).all()


def _saved_bytes(fn, x):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(x)
    return out, saved


@pytest.mark.parametrize("fn", [lambda x: spatial_topk(x, 0.1), lambda x: spatial_topk(x, 0.1, keep="non_topk")])
def test_backward_saves_only_a_boolean_mask(fn):
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    out, saved = _saved_bytes(fn, x)
    assert len(saved) == 1
    assert saved[0].dtype == torch.bool and saved[0].numel() == x.numel()
    assert saved[0].element_size() == 1


def test_mean_replace_saves_mask_and_per_channel_counts_only():
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    _, saved = _saved_bytes(lambda t: spatial_topk_mean_replace(t, 0.1), x)
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == 1 and big[0].dtype == torch.bool
    assert sum(t.numel() for t in saved if t.numel() != x.numel()) == 2 * 8


def test_mean_replace_gives_kept_positions_their_channel_mean():
    x = distinct_input((2, 3, 6, 6), dtype=torch.float64)
    out = spatial_topk_mean_replace(x, 0.25)
    mask = topk_mask(x, 0.25)
    for n in range(2):
        for c in range(3):
            m = mask[n, c]
            assert torch.allclose(out[n, c][m], x[n, c][m].mean().expand(int(m.sum())))
            assert (out[n, c][~m] == 0).all()


def test_mean_replace_gradient_passes_gradcheck_in_float64():
    x = distinct_input((2, 3, 5, 4), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_topk_mean_replace(t, 0.3), (x,), eps=1e-6, atol=1e-8)


def test_topk_gradient_passes_gradcheck_in_float64():
    x = distinct_input((2, 3, 5, 4), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_topk(t, 0.3), (x,), eps=1e-6, atol=1e-8)


def test_mean_replace_gradient_matches_autograd_through_the_paper_formulation():
    x = distinct_input((3, 4, 6, 6), dtype=torch.float64).requires_grad_()
    g = torch.randn(3, 4, 6, 6, dtype=torch.float64)
    (ours,) = torch.autograd.grad(spatial_topk_mean_replace(x, 0.2), x, g)
    (ref,) = torch.autograd.grad(reference_topk_mean_replace(x, 0.2), x, g)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("ties", TIES)
def test_dtypes_and_memory_formats_agree_with_float32_contiguous(dtype, channels_last, ties):
    x = distinct_input((2, 6, 10, 10), seed=3).to(dtype)
    ref_mask = topk_mask(x.float().contiguous(), 0.1, ties)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    out = spatial_topk(x, 0.1, ties=ties)
    assert out.dtype == dtype
    if channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last)
    # Casting to low precision can create ties at the threshold: then "keep" keeps them,
    # so every channel keeps at least K entries, all at least as large as the dropped;
    # "exact" keeps exactly K.
    mask = topk_mask(x, 0.1, ties)
    kept = mask.sum(dim=(2, 3))
    k = topk_count(0.1, 100)
    assert (kept == k).all() if ties == "exact" else (kept >= k).all()
    flat = x.detach().float().abs().flatten(2)
    kept_min = torch.where(mask.flatten(2), flat, torch.inf).amin(2)
    dropped_max = torch.where(mask.flatten(2), -torch.inf, flat).amax(2)
    assert (kept_min >= dropped_max).all()
    assert torch.equal(out.detach(), torch.where(mask, x.detach(), torch.zeros((), dtype=dtype)))
    out.float().sum().backward()
    assert torch.equal(x.grad, mask.to(dtype))
    mr = spatial_topk_mean_replace(x, 0.1, ties=ties)
    assert mr.dtype == dtype and torch.isfinite(mr.float()).all()
    if dtype == torch.float32:
        assert torch.equal(mask, ref_mask)


def test_modules_behave_the_same_in_train_and_eval_mode():
    x = torch.randn(2, 4, 8, 8)
    for layer in (TopK(0.1), TopK(0.1, keep="non_topk"), TopKMeanReplace(0.1), TopK(0.1, ties="exact")):
        a = layer.train()(x)
        b = layer.eval()(x)
        assert torch.equal(a, b)


@pytest.mark.parametrize("ties", TIES)
def test_record_mask_keeps_the_last_mask(ties):
    layer = TopK(0.25, ties=ties)
    x = torch.randint(-2, 3, (1, 2, 4, 4)).float()  # ties: the two rules give different masks
    layer(x)
    assert layer.last_mask is None
    layer.record_mask = True
    layer(x)
    assert torch.equal(layer.last_mask, sort_reference_mask(x, 4, ties))


@pytest.mark.parametrize("ties", TIES)
def test_gradient_with_ties_passes_exactly_where_the_mask_keeps(ties):
    x = torch.randint(-3, 4, (2, 3, 6, 6)).float().requires_grad_()
    upstream = torch.randn(2, 3, 6, 6)
    spatial_topk(x, 0.1, ties=ties).backward(upstream)
    mask = sort_reference_mask(x, 3, ties)
    assert torch.equal(x.grad, torch.where(mask, upstream, torch.zeros(())))


def test_exact_gradients_pass_gradcheck_in_float64():
    x = distinct_input((2, 3, 5, 4), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spatial_topk(t, 0.3, ties="exact"), (x,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda t: spatial_topk_mean_replace(t, 0.3, ties="exact"), (x,), eps=1e-6, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("ties", TIES)
def test_works_under_torch_compile_on_cpu(ties):
    torch._dynamo.reset()
    # The first Top-K sees the integer-valued input, so ties must resolve alike in the
    # traced (torch-only) path and the eager (numpy) path.
    model = torch.nn.Sequential(
        TopK(0.2, ties=ties), torch.nn.Conv2d(3, 4, 3, padding=1), TopK(0.2, ties=ties),
        torch.nn.Conv2d(4, 4, 1), TopKMeanReplace(0.3, ties=ties),
    )
    compiled = torch.compile(model, backend="inductor")
    x = torch.randint(-3, 4, (2, 3, 8, 8)).float().requires_grad_()
    eager_out = model(x)
    (eager_grad,) = torch.autograd.grad(eager_out.sum(), x)
    out = compiled(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, eager_out)
    torch.testing.assert_close(grad, eager_grad)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), "0.2", None, True])
def test_bad_fraction_raises_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="fraction"):
        TopK(bad)
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(").replace(")", r"\)")):
        spatial_topk(torch.randn(1, 1, 2, 2), bad)


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 3, 4), (1, 2, 3, 4, 5)])
def test_non_4d_input_raises_value_error_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"4-D.*" + str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")):
        spatial_topk(torch.randn(shape), 0.5)
    with pytest.raises(ValueError, match="4-D"):
        TopKMeanReplace(0.5)(torch.randn(shape))


def test_bad_keep_is_rejected():
    with pytest.raises(ValueError, match="keep"):
        TopK(0.5, keep="bottom")


@pytest.mark.parametrize("bad", ["first", "Exact", None, 1])
def test_bad_ties_is_a_one_line_config_error_naming_it(bad):
    calls = [
        lambda: TopK(0.5, ties=bad),
        lambda: TopKMeanReplace(0.5, ties=bad),
        lambda: topk_mask(torch.randn(1, 1, 2, 2), 0.5, bad),
        lambda: spatial_topk(torch.randn(1, 1, 2, 2), 0.5, ties=bad),
        lambda: spatial_topk_mean_replace(torch.randn(1, 1, 2, 2), 0.5, ties=bad),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="ties") as info:
            call()
        assert "\n" not in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("ties", TIES)
def test_cuda_matches_cpu(ties):
    for x in (distinct_input((4, 8, 16, 16)), torch.randint(-3, 4, (4, 8, 16, 16)).float()):
        for keep in ("topk", "non_topk"):
            torch.testing.assert_close(spatial_topk(x.cuda(), 0.1, keep, ties).cpu(), spatial_topk(x, 0.1, keep, ties))
        torch.testing.assert_close(
            spatial_topk_mean_replace(x.cuda(), 0.1, ties).cpu(), spatial_topk_mean_replace(x, 0.1, ties)
        )

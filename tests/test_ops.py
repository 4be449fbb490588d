"""Behaviour of the spatial Top-K operations (Eq. 1, Eq. 2, the complement)."""

from __future__ import annotations

import pytest
import torch

from topkshape import TopK, TopKMeanReplace, spatial_topk, spatial_topk_mean_replace, topk_count, topk_mask
from topkshape.reference import reference_topk, reference_topk_mean_replace


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
def test_topk_matches_paper_formulation_without_ties(shape, fraction):
    x = distinct_input(shape)
    expected, _ = reference_topk(x, fraction)
    assert torch.equal(spatial_topk(x, fraction), expected)
    revert, _ = reference_topk(x, fraction, revert=True)
    if fraction < 1.0:
        assert torch.equal(spatial_topk(x, fraction, keep="non_topk"), revert)
    else:
        # The paper code returns x for fraction 1 even when reverting; the complement
        # of "keep everything" is nothing, so ours is all zeros.
        assert torch.equal(spatial_topk(x, fraction, keep="non_topk"), torch.zeros_like(x))


def test_topk_matches_reference_on_gaussian_input_and_mean_replace_too():
    torch.manual_seed(1)
    x = torch.randn(4, 16, 14, 14, dtype=torch.float64)
    for fraction in (0.05, 0.2):
        assert torch.equal(spatial_topk(x, fraction), reference_topk(x, fraction)[0])
        torch.testing.assert_close(spatial_topk_mean_replace(x, fraction), reference_topk_mean_replace(x, fraction))


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
def test_dtypes_and_memory_formats_agree_with_float32_contiguous(dtype, channels_last):
    x = distinct_input((2, 6, 10, 10), seed=3).to(dtype)
    ref_mask = topk_mask(x.float().contiguous(), 0.1)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    out = spatial_topk(x, 0.1)
    assert out.dtype == dtype
    if channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last)
    # Casting to low precision can create ties at the threshold: then ties are kept,
    # so every channel keeps at least K entries, all at least as large as the dropped.
    mask = topk_mask(x, 0.1)
    assert (mask.sum(dim=(2, 3)) >= topk_count(0.1, 100)).all()
    flat = x.detach().float().abs().flatten(2)
    kept_min = torch.where(mask.flatten(2), flat, torch.inf).amin(2)
    dropped_max = torch.where(mask.flatten(2), -torch.inf, flat).amax(2)
    assert (kept_min >= dropped_max).all()
    assert torch.equal(out.detach(), torch.where(mask, x.detach(), torch.zeros((), dtype=dtype)))
    out.float().sum().backward()
    assert torch.equal(x.grad, mask.to(dtype))
    mr = spatial_topk_mean_replace(x, 0.1)
    assert mr.dtype == dtype and torch.isfinite(mr.float()).all()
    if dtype == torch.float32:
        assert torch.equal(mask, ref_mask)


def test_modules_behave_the_same_in_train_and_eval_mode():
    x = torch.randn(2, 4, 8, 8)
    for layer in (TopK(0.1), TopK(0.1, keep="non_topk"), TopKMeanReplace(0.1)):
        a = layer.train()(x)
        b = layer.eval()(x)
        assert torch.equal(a, b)


def test_record_mask_keeps_the_last_mask():
    layer = TopK(0.25)
    x = torch.randn(1, 2, 4, 4)
    layer(x)
    assert layer.last_mask is None
    layer.record_mask = True
    layer(x)
    assert torch.equal(layer.last_mask, topk_mask(x, 0.25))


def test_works_under_torch_compile_on_cpu():
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), TopK(0.2), torch.nn.Conv2d(4, 4, 1), TopKMeanReplace(0.3))
    compiled = torch.compile(model, backend="inductor")
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_matches_cpu():
    x = distinct_input((4, 8, 16, 16))
    for keep in ("topk", "non_topk"):
        torch.testing.assert_close(spatial_topk(x.cuda(), 0.1, keep).cpu(), spatial_topk(x, 0.1, keep))
    torch.testing.assert_close(spatial_topk_mean_replace(x.cuda(), 0.1).cpu(), spatial_topk_mean_replace(x, 0.1))

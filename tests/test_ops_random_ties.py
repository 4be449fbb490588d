"""``ties="random"``: exactly K entries, the tied ones drawn uniformly from a seeded generator."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from topkshape import TopK, TopKMeanReplace, spatial_topk, spatial_topk_mean_replace, topk_count, topk_mask


def tied_input(shape=(3, 4, 8, 8), seed=0) -> torch.Tensor:
    """Small integers: most channels have several entries tied at their K-th largest |x|."""
    return torch.randint(-3, 4, shape, generator=torch.Generator().manual_seed(seed)).float()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_random_keeps_exactly_k_every_entry_above_the_threshold_and_only_tied_ones_besides(fraction):
    x = tied_input()
    k = topk_count(fraction, 64)
    mask = topk_mask(x, fraction, "random", seeded(0))
    magnitude = x.abs().flatten(2)
    kth = magnitude.topk(k, dim=2).values[..., -1:]
    flat = mask.flatten(2)
    assert (flat.sum(2) == k).all()
    assert flat[magnitude > kth].all()  # everything above the K-th largest |x| is kept
    assert not flat[magnitude < kth].any()  # nothing below it
    # The kept tied entries are not just the first ones in index order (the exact rule's choice).
    assert not torch.equal(mask, topk_mask(x, fraction, "exact"))


def test_random_equals_exact_where_nothing_ties():
    x = torch.randn(2, 3, 8, 8, generator=seeded(1))
    torch.testing.assert_close(topk_mask(x, 0.1, "random", seeded(5)), topk_mask(x, 0.1, "exact"), rtol=0, atol=0)


def test_random_is_deterministic_per_seed_and_differs_between_seeds():
    x = tied_input()
    first, again = topk_mask(x, 0.2, "random", seeded(3)), topk_mask(x, 0.2, "random", seeded(3))
    assert torch.equal(first, again)
    others = [topk_mask(x, 0.2, "random", seeded(s)) for s in range(4, 8)]
    assert all(not torch.equal(first, other) for other in others)


def test_random_chooses_uniformly_among_the_tied_entries():
    # One row: 2 entries above the threshold, 10 tied at it, K = 5: each tied entry is kept with
    # probability 3/10, and every entry equally often.
    row = torch.zeros(1, 1, 4, 4)
    row.view(-1)[:2] = 5.0
    row.view(-1)[2:12] = 2.0
    fraction = 5 / 16
    generator = seeded(11)
    draws = 3000
    counts = torch.zeros(16)
    for _ in range(draws):
        counts += topk_mask(row, fraction, "random", generator).view(-1).float()
    assert counts[:2].tolist() == [draws, draws] and counts[12:].sum() == 0
    tied = counts[2:12]
    assert tied.sum() == 3 * draws
    # Chi-square against the uniform expectation (300 x 3 / 10 each); a positional rule fails it at once.
    p = stats.chisquare(tied.numpy(), [0.3 * draws] * 10).pvalue
    assert p > 1e-3, (tied.tolist(), p)


def test_random_fills_k_with_zeros_drawn_at_random_when_few_entries_are_non_zero():
    x = torch.zeros(1, 2, 4, 4)
    x[0, :, 0, 0] = 1.0  # one non-zero per channel, K = 4
    mask = topk_mask(x, 0.25, "random", seeded(2))
    assert (mask.flatten(2).sum(2) == 4).all() and mask[0, :, 0, 0].all()
    assert not torch.equal(mask, topk_mask(x, 0.25, "exact"))


def test_random_keeps_the_layout_of_a_channels_last_input():
    x = tied_input().contiguous(memory_format=torch.channels_last)
    mask = topk_mask(x, 0.2, "random", seeded(0))
    assert mask.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(mask, topk_mask(x.contiguous(), 0.2, "random", seeded(0)))


def test_functions_need_a_generator_for_random_ties():
    with pytest.raises(ValueError, match="generator"):
        topk_mask(tied_input(), 0.2, "random")
    with pytest.raises(ValueError, match="generator"):
        spatial_topk(tied_input(), 0.2, ties="random")


def test_topk_layers_draw_from_their_own_seeded_generator_and_reseed_repeats_the_draws():
    x = tied_input()
    layer = TopK(0.2, ties="random", tie_seed=7)
    first, second = layer(x), layer(x)
    assert not torch.equal(first, second)  # the generator advances with every call
    layer.reseed(7)
    assert torch.equal(layer(x), first) and torch.equal(layer(x), second)
    assert torch.equal(first, spatial_topk(x, 0.2, ties="random", generator=seeded(7)))
    complement = TopK(0.2, keep="non_topk", ties="random", tie_seed=7)(x)
    torch.testing.assert_close(first + complement, x, rtol=0, atol=0)
    mean_layer = TopKMeanReplace(0.2, ties="random", tie_seed=7)
    torch.testing.assert_close(mean_layer(x), spatial_topk_mean_replace(x, 0.2, "random", seeded(7)), rtol=0, atol=0)
    assert TopK(0.2, ties="exact").tie_generator is None


def test_random_gradient_passes_exactly_where_the_mask_keeps():
    x = tied_input().requires_grad_()
    layer = TopK(0.2, ties="random", tie_seed=1)
    layer.record_mask = True
    layer(x).sum().backward()
    assert torch.equal(x.grad, layer.last_mask.float())


def test_inserted_layers_draw_from_distinct_seeds_in_spec_order():
    from torch import nn

    from topkshape.models.surgery import insert_topk, topk_layers

    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.ReLU())
    insert_topk(model, ["1", "3"], fraction=0.2, ties="random", tie_seed=10)
    layers = list(topk_layers(model).values())
    x = tied_input((2, 2, 8, 8)).abs()
    for offset, layer in enumerate(layers):
        assert torch.equal(layer(x), spatial_topk(x, 0.2, ties="random", generator=seeded(10 + offset)))


def test_tie_counts_say_how_many_kept_entries_tie_order_chose():
    from topkshape.ops import tie_counts

    x = torch.zeros(1, 3, 4, 4)
    x[0, 0].view(-1)[:6] = torch.tensor([5.0, 5.0, 2.0, 2.0, -2.0, 2.0])  # K = 4: 2 above, 2 of 4 tied chosen
    x[0, 1].view(-1)[:] = torch.arange(16.0)  # distinct: no tie
    x[0, 2].view(-1)[:2] = torch.tensor([1.0, 3.0])  # 2 non-zero, K = 4: 2 of the 14 zeros chosen
    counts = tie_counts(x, 0.25)
    # Channel 0 ties at |x| = 2 (a choice that changes the output), channel 2 at 0 (one that changes
    # only mean_replace's).
    assert counts == {"channels": 3, "channels_with_ties": 2, "kept": 12, "kept_by_tie_order": 4,
                      "channels_with_nonzero_ties": 1, "kept_by_nonzero_tie_order": 2}
    assert tie_counts(torch.randn(2, 4, 8, 8, generator=seeded(0)), 0.1)["channels_with_ties"] == 0
    assert tie_counts(x, 1.0) == {"channels": 3, "channels_with_ties": 0, "kept": 48, "kept_by_tie_order": 0,
                                  "channels_with_nonzero_ties": 0, "kept_by_nonzero_tie_order": 0}

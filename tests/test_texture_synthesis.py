"""Texture synthesis and reconstruction (Figures 2, 3): inputs refused, start image, progress, scaling.

Complements tests/test_texture.py with checks derived from the definitions in
``topkshape.texture.synthesis``: the messages a user sees, the seeded starting noise in
the target's range, and L-BFGS's indifference to a constant factor on the objective.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from topkshape.texture import (
    FeatureTaps,
    gram_matrix,
    reconstruct,
    synthesis,
    synthesize_texture,
)

# Tiny problems: one torch thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


def _identity_taps() -> FeatureTaps:
    """Taps whose feature is the image itself, so losses can be worked out by hand."""
    return FeatureTaps(nn.Sequential(nn.Identity()), ["0"])


def _image(seed: int = 1, size: int = 4, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _gram_by_hand(x: torch.Tensor) -> torch.Tensor:
    c, h, w = x.shape[1:]
    flat = x.reshape(c, h * w)
    return flat @ flat.T / (c * h * w)


# --- inputs refused, with the message a user sees ------------------------------------


@pytest.mark.parametrize("shape", [(3, 4), (3, 4, 5), (1, 2, 3, 4, 5)])
def test_gram_matrix_of_anything_but_a_4d_map_names_the_shape(shape):
    with pytest.raises(ValueError, match=rf"expects a \(N, C, H, W\) feature map, got shape \({', '.join(map(str, shape))}\)"):
        gram_matrix(torch.zeros(shape))


@pytest.mark.parametrize(("image", "described"), [
    (torch.zeros(3, 4, 4), r"\(3, 4, 4\)"),
    (torch.zeros(1, 1, 4, 4), r"\(1, 1, 4, 4\)"),
    (torch.zeros(2, 3, 4, 4), r"\(2, 3, 4, 4\)"),
    (torch.zeros(1, 4, 4, 4), r"\(1, 4, 4, 4\)"),
    (np.zeros((1, 3, 4, 4)), "ndarray"),
])
@pytest.mark.parametrize("run", ["synthesize", "reconstruct"])
def test_only_one_rgb_image_is_accepted_as_target(image, described, run):
    with pytest.raises(ValueError, match=rf"expected one RGB image of shape \(1, 3, H, W\) in \[0, 1\], got {described}$"):
        if run == "synthesize":
            synthesize_texture(_identity_taps(), image, remove_topk=False, steps=1, progress=False)
        else:
            reconstruct(_identity_taps(), image, mask="topk", steps=1, progress=False)


@pytest.mark.parametrize(("steps", "max_iter"), [(0, 1), (1, 0), (-1, 20)])
def test_steps_and_lbfgs_iterations_must_be_positive(steps, max_iter):
    with pytest.raises(ValueError, match=rf"steps and max_iter must be positive integers, got {steps} and {max_iter}$"):
        synthesize_texture(_identity_taps(), _image(), remove_topk=False, steps=steps, max_iter=max_iter,
                           normalize=_unchanged, progress=False)


def test_one_step_of_one_iteration_is_allowed():
    _, history = synthesize_texture(_identity_taps(), _image(), remove_topk=False, steps=1, max_iter=1,
                                    normalize=_unchanged, progress=False)
    assert len(history) == 2


@pytest.mark.parametrize(("option", "value", "message"), [
    ("loss", "avg", r"loss must be one of \('sum', 'mean'\), got 'avg'"),
    ("bounds", "box", r"bounds must be one of \('sigmoid', 'clamp'\), got 'box'"),
])
@pytest.mark.parametrize("run", ["synthesize", "reconstruct"])
def test_an_unknown_loss_or_bounds_lists_the_choices(option, value, message, run):
    with pytest.raises(ValueError, match=message):
        if run == "synthesize":
            synthesize_texture(_identity_taps(), _image(), remove_topk=False, steps=1, progress=False, **{option: value})
        else:
            reconstruct(_identity_taps(), _image(), mask="topk", steps=1, progress=False, **{option: value})


def test_an_unknown_mask_lists_the_choices():
    with pytest.raises(ValueError, match=r"mask must be one of \('topk', 'non_topk', 'identity'\), got 'top'"):
        reconstruct(_identity_taps(), _image(), mask="top", steps=1, progress=False)


@pytest.mark.parametrize("spread", [0.0, 5e-7])
def test_a_flat_target_has_no_range_for_sigmoid_bounds_but_works_with_clamp(spread):
    flat = torch.full((1, 3, 4, 4), 0.5)
    flat[..., 0, 0] += spread
    with pytest.raises(ValueError, match=r"^a constant target image has no range for the sigmoid bounds \(use bounds='clamp'\)$"):
        synthesize_texture(_identity_taps(), flat, remove_topk=False, steps=1, normalize=_unchanged, progress=False)
    image, _ = synthesize_texture(_identity_taps(), flat, remove_topk=False, steps=1, bounds="clamp",
                                  normalize=_unchanged, progress=False)
    assert image.shape == flat.shape


def test_a_target_with_a_small_range_is_still_synthesised_with_sigmoid_bounds():
    target = torch.full((1, 3, 4, 4), 0.5)
    target[..., 0, 0] += 2e-6
    image, _ = synthesize_texture(_identity_taps(), target, remove_topk=False, steps=1, normalize=_unchanged, progress=False)
    assert image.min() >= 0.5 and image.max() <= 0.5 + 2e-6


# --- the starting image -----------------------------------------------------------


def _loss_by_hand(image: torch.Tensor, target: torch.Tensor) -> float:
    return float(((_gram_by_hand(image) - _gram_by_hand(target)) ** 2).sum())


@pytest.mark.parametrize("seed", [0, 3])
def test_sigmoid_synthesis_starts_from_seeded_uniform_noise_stretched_to_the_targets_range(seed):
    target = _image(1, lo=0.2, hi=0.6)
    lo, hi = float(target.min()), float(target.max())
    noise = lo + (hi - lo) * torch.rand(target.shape, generator=torch.Generator().manual_seed(seed))
    _, history = synthesize_texture(_identity_taps(), target, remove_topk=False, steps=1, max_iter=1, seed=seed,
                                    normalize=_unchanged, progress=False)
    # Through logit and sigmoid the noise comes back to within float error; no pixel is clamped
    # away from the range's ends unless it lies within 0.1% of them.
    assert history[0] == pytest.approx(_loss_by_hand(noise, target), rel=1e-3)


def test_clamped_synthesis_starts_from_seeded_uniform_noise_in_the_unit_range():
    target = _image(1, lo=0.2, hi=0.6)
    noise = torch.rand(target.shape, generator=torch.Generator().manual_seed(0))
    _, history = synthesize_texture(_identity_taps(), target, remove_topk=False, steps=1, max_iter=1, bounds="clamp",
                                    normalize=_unchanged, progress=False)
    assert history[0] == pytest.approx(_loss_by_hand(noise, target), rel=1e-5)


def test_reconstruction_starts_from_the_same_seeded_noise_and_history_is_the_raw_objective():
    target = _image(1, lo=0.2, hi=0.6)
    lo, hi = float(target.min()), float(target.max())
    noise = lo + (hi - lo) * torch.rand(target.shape, generator=torch.Generator().manual_seed(0))
    image, history = reconstruct(_identity_taps(), target, mask="identity", steps=2, max_iter=2, lr=1.0,
                                 normalize=_unchanged, progress=False)
    assert history[0] == pytest.approx(float(((noise - target) ** 2).sum()), rel=1e-3)
    assert history[-1] == pytest.approx(float(((image - target) ** 2).sum()), rel=1e-4)
    _, mean_history = reconstruct(_identity_taps(), target, mask="identity", steps=1, max_iter=1, loss="mean",
                                  normalize=_unchanged, progress=False)
    assert mean_history[0] == pytest.approx(history[0] / target.numel(), rel=1e-5)


# --- progress bars ------------------------------------------------------------------


@pytest.fixture
def bars(monkeypatch):
    """Records each progress bar's description and whether it may show."""
    seen = []

    def tqdm(iterable, desc, disable):
        seen.append((desc, disable, len(iterable)))
        return iterable

    monkeypatch.setattr(synthesis, "tqdm", tqdm)
    return seen


def test_progress_bars_are_named_after_the_run_and_can_be_switched_off(bars):
    target = _image()
    synthesize_texture(_identity_taps(), target, remove_topk=False, steps=2, max_iter=1, normalize=_unchanged)
    synthesize_texture(_identity_taps(), target, remove_topk=True, steps=1, max_iter=1, normalize=_unchanged, progress=False)
    reconstruct(_identity_taps(), target, mask="non_topk", steps=1, max_iter=1, normalize=_unchanged)
    # disable=None: tqdm shows the bar on a terminal only.
    assert bars == [("S w/ Top-K", None, 2), ("S w/o Top-K", True, 1), ("reconstruct (non_topk)", None, 1)]


# --- L-BFGS runs on the objective relative to its start -----------------------------


def _scaled_taps(factor: float) -> FeatureTaps:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(factor)
    return FeatureTaps(net, ["1"])


@pytest.mark.parametrize("factor", [1 / 64, 4.0])
def test_a_constant_factor_on_the_objective_changes_the_losses_but_not_the_synthesis(factor):
    target = _image(1, size=8)
    # Features scaled by a power of two scale the loss exactly, by factor^4 (Gram: factor^2).
    image, history = synthesize_texture(_scaled_taps(1.0), target, remove_topk=False, steps=1, max_iter=5,
                                        normalize=_unchanged, progress=False)
    scaled, scaled_history = synthesize_texture(_scaled_taps(factor), target, remove_topk=False, steps=1, max_iter=5,
                                                normalize=_unchanged, progress=False)
    assert scaled_history == pytest.approx([h * factor**4 for h in history], rel=1e-5)
    assert torch.allclose(scaled, image, atol=1e-6)
    assert history[-1] < history[0]


def test_a_target_matched_from_the_start_stays_put():
    """A zero objective at the start: nothing to minimise and no division by zero."""
    taps = FeatureTaps(nn.Sequential(nn.Conv2d(3, 2, 1, bias=False)), ["0"])
    with torch.no_grad():
        taps.model[0].weight.zero_()
    target = _image(1)
    image, history = synthesize_texture(taps, target, remove_topk=False, steps=2, normalize=_unchanged, progress=False)
    assert history == [0.0, 0.0, 0.0]
    assert torch.isfinite(image).all()


# --- the sigmoid bounds -------------------------------------------------------------


def test_sigmoid_bounds_map_parameters_into_the_targets_range_and_back():
    target = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64).view(1, 3, 1, 1)
    to_image, to_params = synthesis._pixel_map(target, "sigmoid")
    inside = torch.tensor([0.3, 0.5, 0.7], dtype=torch.float64)
    assert torch.allclose(to_image(to_params(inside)), inside, rtol=0, atol=1e-12)
    assert torch.allclose(to_image(torch.tensor([-1e3, 0.0, 1e3], dtype=torch.float64)),
                          torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), rtol=0, atol=1e-12)
    # The range's ends are pulled 0.1% inwards, so no parameter starts at an infinite logit.
    ends = to_params(torch.tensor([0.25, 0.75, 0.0, 1.0], dtype=torch.float64))
    assert torch.isfinite(ends).all()
    assert torch.allclose(to_image(ends), torch.tensor([0.25 + 5e-4, 0.75 - 5e-4, 0.25 + 5e-4, 0.75 - 5e-4],
                                                       dtype=torch.float64), rtol=0, atol=1e-12)


def test_clamp_bounds_use_the_pixels_themselves_as_parameters():
    target = torch.full((1, 3, 2, 2), 0.5)  # flat: fine for clamping
    to_image, to_params = synthesis._pixel_map(target, "clamp")
    x = torch.tensor([-0.5, 0.2, 1.5])
    params = to_params(x)
    assert torch.equal(params, x) and params is not x
    assert to_image(x) is x


def test_a_range_of_one_millionth_is_enough_for_sigmoid_bounds():
    target = torch.tensor([0.0, 1e-6], dtype=torch.float64)
    synthesis._pixel_map(target, "sigmoid")
    with pytest.raises(ValueError, match="no range"):
        synthesis._pixel_map(target / 2, "sigmoid")


# --- what the optimisation is asked to do ----------------------------------------------


@pytest.fixture
def optimise(monkeypatch):
    """Records what synthesize_texture and reconstruct hand to the optimiser."""
    calls = []

    def fake(taps, target, objective, **options):
        calls.append({"objective": objective, **options})
        return target, [0.0]

    monkeypatch.setattr(synthesis, "_optimise_image", fake)
    return calls


def _channel(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def _top5_percent_zeroed(values: list[float]) -> list[float]:
    """Of 100 positions, the 5 largest in magnitude set to 0 (K = 5% of H W)."""
    largest = sorted(range(len(values)), key=lambda i: -abs(values[i]))[:5]
    return [0.0 if i in largest else v for i, v in enumerate(values)]


def _gram_one_channel(values: list[float]) -> float:
    return sum(v * v for v in values) / len(values)


TARGET_VALUES = [((i * 37) % 100) / 100 - 0.3 for i in range(100)]  # distinct magnitudes
OTHER_VALUES = [((i * 53) % 100) / 150 for i in range(100)]


def test_synthesis_defaults_are_the_paper_codes(optimise):
    synthesize_texture(_identity_taps(), _image(), remove_topk=False)
    options = {key: optimise[0][key] for key in ("steps", "lr", "max_iter", "bounds", "seed", "progress", "desc")}
    assert options == {"steps": 100, "lr": 1.0, "max_iter": 20, "bounds": "sigmoid", "seed": 0, "progress": True,
                       "desc": "S w/ Top-K"}


def test_synthesis_passes_its_options_on(optimise):
    synthesize_texture(_identity_taps(), _image(), remove_topk=True, steps=3, lr=0.5, max_iter=4, bounds="clamp",
                       seed=9, progress=False)
    options = {key: optimise[0][key] for key in ("steps", "lr", "max_iter", "bounds", "seed", "progress", "desc")}
    assert options == {"steps": 3, "lr": 0.5, "max_iter": 4, "bounds": "clamp", "seed": 9, "progress": False,
                       "desc": "S w/o Top-K"}


def test_synthesis_without_topk_matches_grams_with_5_percent_removed_and_sums_by_default(optimise):
    target, other = (_channel(v).expand(1, 3, 1, 100).float() for v in (TARGET_VALUES, OTHER_VALUES))
    synthesize_texture(_identity_taps(), target, remove_topk=True, normalize=_unchanged)
    # Three equal channels: all 9 Gram entries are sum(v^2) / (3 * 100), so the summed
    # squared differences equal those of one channel's Gram value sum(v^2) / 100.
    expected = (_gram_one_channel(_top5_percent_zeroed(OTHER_VALUES)) - _gram_one_channel(_top5_percent_zeroed(TARGET_VALUES))) ** 2
    assert float(optimise[0]["objective"]({"0": other})) == pytest.approx(expected, rel=1e-5)


def test_reconstruction_defaults_are_the_paper_codes(optimise):
    reconstruct(_identity_taps(), _image(), mask="topk")
    options = {key: optimise[0][key] for key in ("steps", "lr", "max_iter", "bounds", "seed", "progress", "desc")}
    assert options == {"steps": 1, "lr": 10.0, "max_iter": 20, "bounds": "sigmoid", "seed": 0, "progress": True,
                       "desc": "reconstruct (topk)"}


def test_reconstruction_passes_its_options_on(optimise):
    reconstruct(_identity_taps(), _image(), mask="identity", steps=3, lr=0.5, max_iter=4, bounds="clamp", seed=9,
                progress=False)
    options = {key: optimise[0][key] for key in ("steps", "lr", "max_iter", "bounds", "seed", "progress", "desc")}
    assert options == {"steps": 3, "lr": 0.5, "max_iter": 4, "bounds": "clamp", "seed": 9, "progress": False,
                       "desc": "reconstruct (identity)"}


@pytest.mark.parametrize("mask", ["topk", "non_topk"])
def test_reconstruction_goals_are_the_targets_top_5_percent_or_the_rest_summed_by_default(optimise, mask):
    target = _channel(TARGET_VALUES).expand(1, 3, 1, 100).float()
    reconstruct(_identity_taps(), target, mask=mask, normalize=_unchanged)
    objective = optimise[0]["objective"]
    rest = _top5_percent_zeroed(TARGET_VALUES)
    goal = rest if mask == "non_topk" else [t - r for t, r in zip(TARGET_VALUES, rest)]
    # Distance from an all-zero image: the sum of the goal's squares, over 3 channels.
    assert float(objective({"0": torch.zeros(1, 3, 1, 100)})) == pytest.approx(3 * sum(g * g for g in goal), rel=1e-5)
    optimise.clear()
    reconstruct(_identity_taps(), target, mask=mask, normalize=_unchanged, loss="mean")
    mean = float(optimise[0]["objective"]({"0": torch.zeros(1, 3, 1, 100)}))
    assert mean == pytest.approx(sum(g * g for g in goal) / 100, rel=1e-5)


# --- the optimiser's settings and what it returns ------------------------------------


def test_lbfgs_runs_with_the_given_rate_and_iterations_a_strong_wolfe_search_and_no_early_exit(monkeypatch):
    settings = []

    class RecordingLBFGS(torch.optim.LBFGS):
        def __init__(self, params, **options):
            settings.append(options)
            super().__init__(params, **options)

    monkeypatch.setattr(torch.optim, "LBFGS", RecordingLBFGS)
    synthesize_texture(_identity_taps(), _image(), remove_topk=False, steps=1, lr=0.25, max_iter=3,
                       normalize=_unchanged, progress=False)
    assert settings == [{"lr": 0.25, "max_iter": 3, "tolerance_grad": 0.0, "tolerance_change": 0.0,
                         "line_search_fn": "strong_wolfe"}]


@pytest.mark.parametrize("bounds", ["sigmoid", "clamp"])
def test_the_result_has_the_targets_dtype(bounds):
    target = _image(1).double()
    image, history = synthesize_texture(_identity_taps(), target, remove_topk=False, steps=1, max_iter=2, bounds=bounds,
                                        normalize=_unchanged, progress=False)
    assert image.dtype == torch.float64
    noise = torch.rand(target.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    if bounds == "clamp":
        assert history[0] == pytest.approx(_loss_by_hand(noise, target), rel=1e-9)


def test_clamp_bounds_hold_pixels_in_the_unit_range_when_the_goal_lies_outside():
    target = _image(1)
    target[0, 0] = 1.5  # a red channel out of range above, a green one below
    target[0, 1] = -0.5
    image, history = reconstruct(_identity_taps(), target, mask="identity", steps=3, lr=1.0, bounds="clamp",
                                 normalize=_unchanged, progress=False)
    assert image.min() == 0.0 and image.max() == 1.0
    assert torch.allclose(image, target.clamp(0, 1), atol=1e-3)
    # What is left is the distance of the out-of-range channels to the unit range: 0.5 each.
    assert history[-1] == pytest.approx(2 * 16 * 0.5**2, rel=1e-3)

"""Figures 2, 3, 8 library: texture synthesis with/without Top-K, reconstruction, masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from topkshape.ops import TopK, topk_count, topk_mask
from topkshape.texture import (
    FeatureTaps,
    MaskRecorder,
    edge_correlation,
    gatys_vgg19,
    gram_loss,
    gram_matrix,
    load_masks,
    masked_target,
    reconstruct,
    save_mask_dynamics,
    save_panels,
    ssim,
    synthesize_texture,
    zero_topk,
)

SIZE = 32
FRACTION = 0.1
STEPS = 8


def _tiny_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
    )


@pytest.fixture
def taps() -> FeatureTaps:
    return FeatureTaps(_tiny_net(), ["1", "3", "5"])


@pytest.fixture
def target() -> torch.Tensor:
    """A smooth image with structure (upsampled coarse noise), unlike white noise."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(1, 3, 8, 8, generator=generator)
    return F.interpolate(coarse, size=SIZE, mode="bilinear", align_corners=False)


def _noise(seed: int = 2) -> torch.Tensor:
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# --- features ---------------------------------------------------------------


def test_feature_taps_rejects_unknown_layer_and_lists_valid_names():
    with pytest.raises(ValueError, match=r"'nope'.*valid names include '0'"):
        FeatureTaps(_tiny_net(), ["1", "nope"])


def test_feature_taps_freezes_model_and_survives_inplace_relu():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(4))
    model.train()
    taps = FeatureTaps(model, ["0", "1"])
    taps.train()
    assert not model.training and not model[2].training
    assert not any(p.requires_grad for p in model.parameters())
    feats = taps(_noise())
    assert (feats["0"] < 0).any(), "the conv tap was overwritten by the in-place ReLU"
    assert (feats["1"] >= 0).all()
    assert list(feats) == ["0", "1"]


def test_gatys_vgg19_uses_average_pooling_and_its_layer_names_exist():
    features, names = gatys_vgg19(weights=None)
    assert not any(isinstance(m, nn.MaxPool2d) for m in features.modules())
    for gatys_name, index in names.items():
        module = features.get_submodule(index)
        expected = nn.AvgPool2d if gatys_name.startswith("pool") else nn.ReLU
        assert isinstance(module, expected), (gatys_name, index, module)
    FeatureTaps(features, list(names.values()))  # every mapped index is a valid tap


# --- Top-K ablation -----------------------------------------------------------


def test_zero_topk_zeroes_exactly_the_topk_responses():
    feat = torch.randn(2, 5, 9, 7)  # continuous values: distinct, none zero
    removed = zero_topk(feat, FRACTION)
    mask = topk_mask(feat, FRACTION)
    k = topk_count(FRACTION, 9 * 7)
    assert torch.all(removed[mask] == 0)
    assert torch.equal(removed[~mask], feat[~mask])
    zeroed_per_channel = (removed == 0).sum(dim=(2, 3))
    assert torch.all(zeroed_per_channel == k)
    assert torch.allclose(zeroed_per_channel.float() / (9 * 7), torch.full((2, 5), k / (9 * 7)))


def test_gradient_of_ablated_gram_flows_only_through_non_topk_entries():
    feat = torch.randn(1, 3, 6, 6, requires_grad=True)
    gram_matrix(zero_topk(feat, FRACTION)).sum().backward()
    mask = topk_mask(feat, FRACTION)
    assert torch.all(feat.grad[mask] == 0)
    assert torch.all(feat.grad[~mask] != 0)


def test_gram_loss_without_topk_uses_the_ablated_features(taps, target):
    image = _noise()
    with torch.no_grad():
        pairs = zip(taps(image - 0.5).values(), taps(target - 0.5).values())
        expected = sum(
            F.mse_loss(gram_matrix(zero_topk(fi, FRACTION)), gram_matrix(zero_topk(ft, FRACTION))) for fi, ft in pairs
        )
    got = gram_loss(taps, image, target, remove_topk=True, topk_fraction=FRACTION, normalize=lambda x: x - 0.5)
    assert got == pytest.approx(float(expected), rel=1e-5)
    assert got != pytest.approx(gram_loss(taps, image, target, False, FRACTION, normalize=lambda x: x - 0.5))
    assert gram_loss(taps, target, target) == 0.0


def test_masked_targets_partition_the_activation():
    feat = torch.randn(1, 4, 8, 8)
    topk = masked_target(feat, "topk", FRACTION)
    rest = masked_target(feat, "non_topk", FRACTION)
    assert torch.equal(topk + rest, masked_target(feat, "identity", FRACTION))
    assert torch.all((topk != 0).sum(dim=(2, 3)) == topk_count(FRACTION, 64))


# --- optimisation -------------------------------------------------------------


@pytest.mark.parametrize("remove_topk", [False, True])
def test_texture_synthesis_reduces_gram_loss(taps, target, remove_topk):
    image, history = synthesize_texture(
        taps, target, remove_topk=remove_topk, topk_fraction=FRACTION, steps=STEPS, progress=False
    )
    assert len(history) == STEPS
    assert history[-1] < history[0]
    assert image.shape == target.shape and not image.requires_grad
    assert image.min() >= 0 and image.max() <= 1
    start = gram_loss(taps, _noise_like_init(target), target, remove_topk, FRACTION)
    assert gram_loss(taps, image, target, remove_topk, FRACTION) < start


def _noise_like_init(target: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.rand(target.shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mask", ["topk", "non_topk", "identity"])
def test_reconstruction_reduces_activation_loss(taps, target, mask):
    image, history = reconstruct(taps, target, mask=mask, topk_fraction=FRACTION, steps=STEPS, progress=False)
    assert len(history) == STEPS
    assert history[-1] < history[0]
    assert image.shape == target.shape


def test_reconstruction_rejects_unknown_mask(taps, target):
    with pytest.raises(ValueError, match="mask must be one of"):
        reconstruct(taps, target, mask="top", steps=1, progress=False)


def test_synthesis_is_deterministic_for_a_fixed_seed(taps, target):
    runs = [synthesize_texture(taps, target, remove_topk=True, steps=3, seed=s, progress=False) for s in (5, 5, 6)]
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])


# --- structure measures -------------------------------------------------------


def test_structure_measures_are_one_for_identical_images_and_low_for_noise(target):
    assert ssim(target, target) == pytest.approx(1.0)
    assert edge_correlation(target, target) == pytest.approx(1.0)
    assert ssim(target, _noise()) < 0.5
    assert edge_correlation(target, _noise()) < 0.5


def test_edge_correlation_of_a_constant_image_is_zero_not_nan(target):
    assert edge_correlation(target, torch.full_like(target, 0.5)) == 0.0


# --- masks over training and figures -----------------------------------------


def _topk_model() -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), TopK(FRACTION), nn.ReLU(), nn.Conv2d(6, 2, 1)]
    return nn.Sequential(*layers)


def test_mask_recorder_records_k_entries_per_channel_and_restores_train_mode(tmp_path):
    model = _topk_model()
    model.train()
    images = torch.stack([_noise(3)[0], _noise(4)[0]])
    recorder = MaskRecorder(model, "2", images, channels=[1, 4])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in (0, 10):
        mask = recorder.record(step)
        assert model.training and all(m.training for m in model.modules())
        assert not model[2].record_mask and model[2].last_mask is None
        assert mask.dtype == torch.bool and mask.shape == (2, 2, SIZE, SIZE)
        assert torch.all(mask.sum(dim=(2, 3)) == topk_count(FRACTION, SIZE * SIZE))
        optimizer.zero_grad()
        model(images).square().mean().backward()
        optimizer.step()
    assert sorted(recorder.masks) == [0, 10]
    recorder.save(tmp_path / "masks.pt")
    loaded = load_masks(tmp_path / "masks.pt")
    assert sorted(loaded) == [0, 10] and all(torch.equal(loaded[s], recorder.masks[s]) for s in loaded)


def test_mask_recorder_rejects_a_layer_that_is_not_topk():
    with pytest.raises(ValueError, match="not a TopK"):
        MaskRecorder(_topk_model(), "0", _noise(), channels=[0])


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_written(tmp_path, target):
    rows = [("target A", [("target", target), ("S w/ Top-K", _noise()), ("S w/o Top-K", _noise(3))])]
    rows.append(("target B", [("target", target[0]), ("S w/ Top-K", target[:, :1])]))
    save_panels(rows, [tmp_path / "fig2.png", tmp_path / "fig2.pdf"])
    assert _is_png(tmp_path / "fig2.png")
    assert (tmp_path / "fig2.pdf").read_bytes()[:4] == b"%PDF"

    masks = {t: torch.rand(2, 3, 8, 8) > 0.8 for t in (0, 5, 20)}
    save_mask_dynamics(masks, tmp_path / "fig8.png", title="Top-K masks", channel_labels=[4, 7, 9])
    assert _is_png(tmp_path / "fig8.png")
    assert not list(tmp_path.glob(".tmp-*"))


def test_synthesis_makes_progress_when_features_are_tiny(target):
    """L-BFGS's absolute tolerances must not stall it on small-valued Gram matrices."""
    net = _tiny_net()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.01)
    taps = FeatureTaps(net, ["1", "3", "5"])
    _, history = synthesize_texture(taps, target, remove_topk=False, steps=STEPS, progress=False)
    assert history[0] < 1e-12
    assert history[-1] < 0.5 * history[0]

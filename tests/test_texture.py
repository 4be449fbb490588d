"""Figures 2, 3, 8 library: texture synthesis with/without Top-K, reconstruction, masks."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from topkshape.errors import InputDataError
from topkshape.mask_recording import MaskRecorder, load_mask_inputs, load_masks, save_masks
from topkshape.ops import TopK, topk_count, topk_mask
from topkshape.texture import (
    FeatureTaps,
    edge_correlation,
    gatys_vgg19,
    gram_loss,
    gram_matrix,
    masked_target,
    reconstruct,
    save_mask_dynamics,
    save_panels,
    ssim,
    synthesize_texture,
    zero_topk,
)
from topkshape.texture.experiment import (
    feature_taps,
    load_targets,
    run_texture_experiments,
)

SIZE = 32
FRACTION = 0.1
STEPS = 2


# Tiny problems: one torch thread (the shared fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def _identity_taps(layers: int = 1) -> FeatureTaps:
    """Taps whose features are the input itself, so Gram matrices can be worked out by hand."""
    return FeatureTaps(nn.Sequential(*[nn.Identity() for _ in range(layers)]), [str(i) for i in range(layers)])


def _unchanged(x: torch.Tensor) -> torch.Tensor:
    return x


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


def test_random_vgg19_feature_net_is_the_same_for_a_seed_and_differs_across_seeds():
    options = {"feature_net": "vgg19", "weights": None, "layers": ["relu1_1", "pool1"], "seed": 3}
    first = feature_taps(options, None)
    again = feature_taps(options, None)
    other = feature_taps(dict(options, seed=4), None)
    assert first.layers == ["1", "4"] and len(first.model) == 5  # cut after the deepest tap, pool1
    weight = first.model[0].weight
    assert torch.equal(weight, again.model[0].weight)
    assert not torch.equal(weight, other.model[0].weight)


# --- Gram matrix and loss -------------------------------------------------------


def test_gram_matrix_is_the_channel_gram_over_c_h_w_by_explicit_loops():
    feat = torch.arange(2 * 3 * 2 * 4, dtype=torch.float64).reshape(2, 3, 2, 4).sin()
    n, c, h, w = feat.shape
    expected = torch.zeros(n, c, c, dtype=torch.float64)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += float(feat[b, i, y, x]) * float(feat[b, j, y, x])
                expected[b, i, j] = total / (c * h * w)
    got = gram_matrix(feat)
    assert got.shape == (n, c, c)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_gram_matrix_of_a_two_channel_two_pixel_map_by_hand():
    feat = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # C=2, H=1, W=2
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], divided by C*H*W = 4.
    assert torch.equal(gram_matrix(feat), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


def test_gram_loss_is_the_sum_of_squared_gram_differences_and_mean_divides_by_c_squared():
    a = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    b = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    # Gram(a) = diag(1, 0, 0) / 3, Gram(b) = diag(0, 1, 0) / 3: two entries differ by 1/3.
    one_layer = 2 * (1 / 3) ** 2
    assert gram_loss(_identity_taps(1), a, b, normalize=_unchanged, loss="sum") == pytest.approx(one_layer, rel=1e-6)
    assert gram_loss(_identity_taps(2), a, b, normalize=_unchanged, loss="sum") == pytest.approx(2 * one_layer, rel=1e-6)
    assert gram_loss(_identity_taps(1), a, b, normalize=_unchanged, loss="mean") == pytest.approx(one_layer / 9, rel=1e-6)
    assert gram_loss(_identity_taps(1), a, a, normalize=_unchanged) == 0.0


def test_gram_loss_without_topk_drops_each_channels_largest_response_first():
    a = torch.tensor([4.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4)
    b = torch.tensor([1.0, 2.0, 0.5, 0.25]).view(1, 1, 1, 4)
    # K = 1 of 4 positions at 25%: a loses its 4, b its 2. Grams are sums of squares / 4.
    gram_a, gram_b = (1 + 4 + 9) / 4, (1 + 0.25 + 0.0625) / 4
    got = gram_loss(_identity_taps(), a, b, remove_topk=True, topk_fraction=0.25, normalize=_unchanged)
    assert got == pytest.approx((gram_a - gram_b) ** 2, rel=1e-6)
    full_a, full_b = (16 + 1 + 4 + 9) / 4, (1 + 4 + 0.25 + 0.0625) / 4
    got = gram_loss(_identity_taps(), a, b, remove_topk=False, topk_fraction=0.25, normalize=_unchanged)
    assert got == pytest.approx((full_a - full_b) ** 2, rel=1e-6)


def test_gram_loss_rejects_an_unknown_reduction(taps, target):
    with pytest.raises(ValueError, match="loss must be one of"):
        gram_loss(taps, target, target, loss="avg")


# --- Top-K ablation -----------------------------------------------------------


def test_zero_topk_zeroes_exactly_the_topk_responses():
    feat = torch.randn(2, 5, 9, 7)  # continuous values: distinct, none zero
    removed = zero_topk(feat, FRACTION)
    k = topk_count(FRACTION, 9 * 7)
    largest = feat.abs().flatten(2).topk(k, dim=2).indices
    expected = feat.flatten(2).scatter(2, largest, 0.0).view_as(feat)
    assert torch.equal(removed, expected)


def test_gradient_of_ablated_gram_flows_only_through_non_topk_entries():
    feat = torch.randn(1, 3, 6, 6, requires_grad=True)
    gram_matrix(zero_topk(feat, FRACTION)).sum().backward()
    mask = topk_mask(feat, FRACTION)
    assert torch.all(feat.grad[mask] == 0)
    assert torch.all(feat.grad[~mask] != 0)


def test_masked_targets_partition_the_activation():
    feat = torch.randn(1, 4, 8, 8)
    topk = masked_target(feat, "topk", FRACTION)
    rest = masked_target(feat, "non_topk", FRACTION)
    assert torch.equal(topk + rest, feat)
    assert torch.equal(masked_target(feat, "identity", FRACTION), feat)
    assert torch.all((topk != 0).sum(dim=(2, 3)) == topk_count(FRACTION, 64))


# --- optimisation -------------------------------------------------------------


@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_texture_synthesis_reduces_the_gram_loss_a_hundredfold(taps, target, loss):
    image, history = synthesize_texture(
        taps, target, remove_topk=False, steps=STEPS, max_iter=20, loss=loss, progress=False
    )
    assert len(history) == STEPS + 1
    assert history[0] / history[-1] >= 100, history
    assert image.shape == target.shape and not image.requires_grad
    # The history's last value is the returned image's loss, scored independently.
    assert gram_loss(taps, image, target, loss=loss) == pytest.approx(history[-1], rel=1e-4)


def test_synthesis_without_topk_reduces_its_own_objective(taps, target):
    image, history = synthesize_texture(taps, target, remove_topk=True, topk_fraction=FRACTION, steps=1, progress=False)
    assert history[0] / history[-1] >= 10, history
    assert gram_loss(taps, image, target, remove_topk=True, topk_fraction=FRACTION) == pytest.approx(history[-1], rel=1e-4)


def test_more_lbfgs_iterations_per_step_go_further(taps, target):
    _, one = synthesize_texture(taps, target, remove_topk=False, steps=1, max_iter=1, progress=False)
    _, twenty = synthesize_texture(taps, target, remove_topk=False, steps=1, max_iter=20, progress=False)
    assert one[0] == twenty[0]
    assert twenty[-1] < 0.1 * one[-1]


def test_sigmoid_bounds_keep_pixels_in_the_targets_range_and_clamp_in_unit_range(taps):
    narrow = 0.3 + 0.4 * _noise(7)  # values in [0.3, 0.7]
    image, _ = synthesize_texture(taps, narrow, remove_topk=False, steps=1, bounds="sigmoid", progress=False)
    assert image.min() >= narrow.min() and image.max() <= narrow.max()
    image, _ = synthesize_texture(taps, narrow, remove_topk=False, steps=1, bounds="clamp", progress=False)
    assert image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("mask", ["topk", "non_topk", "identity"])
def test_reconstruction_reduces_activation_loss(taps, target, mask):
    image, history = reconstruct(taps, target, mask=mask, topk_fraction=FRACTION, steps=2, lr=1.0, progress=False)
    assert len(history) == 3
    assert history[-1] < 0.5 * history[0]
    assert image.shape == target.shape


def test_reconstruction_rejects_unknown_mask(taps, target):
    with pytest.raises(ValueError, match="mask must be one of"):
        reconstruct(taps, target, mask="top", steps=1, progress=False)


def test_synthesis_is_deterministic_for_a_fixed_seed(taps, target):
    runs = [synthesize_texture(taps, target, remove_topk=True, steps=1, max_iter=3, seed=s, progress=False) for s in (5, 5, 6)]
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])


def test_synthesis_makes_progress_when_features_are_tiny(target):
    """Tolerances are off: small-valued Gram matrices must not stop L-BFGS early."""
    net = _tiny_net()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.01)
    taps = FeatureTaps(net, ["1", "3", "5"])
    _, history = synthesize_texture(taps, target, remove_topk=False, steps=1, progress=False)
    assert history[0] < 1e-9
    assert history[-1] < 0.01 * history[0]


# --- structure measures -------------------------------------------------------


def test_structure_measures_are_one_for_identical_images_and_low_for_noise(target):
    assert ssim(target, target) == pytest.approx(1.0)
    assert edge_correlation(target, target) == pytest.approx(1.0)
    assert ssim(target, _noise()) < 0.5
    assert edge_correlation(target, _noise()) < 0.5


def test_ssim_of_two_flat_images_follows_wang_et_al():
    a, b = torch.full((1, 3, 16, 16), 0.2), torch.full((1, 3, 16, 16), 0.6)
    # Flat images: no variance, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = 0.01^2.
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-6)


def test_edge_correlation_of_a_constant_image_is_zero_not_nan(target):
    assert edge_correlation(target, torch.full_like(target, 0.5)) == 0.0


def test_edge_correlation_sees_a_moved_edge():
    left, right = torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16)
    left[..., :4] = 1.0
    right[..., :12] = 1.0
    assert edge_correlation(left, left) == pytest.approx(1.0)
    assert edge_correlation(left, right) < 0.0  # the edges sit at different columns


# --- target images ------------------------------------------------------------


def _write_quarter_red_image(path) -> None:
    """20 x 10 pixels: the left quarter red, the rest blue."""
    image = Image.new("RGB", (20, 10), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 5, 10))
    image.save(path)


def test_stretched_targets_keep_the_whole_image_and_cropped_ones_the_centre(tmp_path):
    _write_quarter_red_image(tmp_path / "a.png")
    [(name, stretched)] = load_targets(tmp_path, 1, 8, resize="stretch")
    [(_, cropped)] = load_targets(tmp_path, 1, 8, resize="center_crop")
    assert name == "a" and stretched.shape == cropped.shape == (1, 3, 8, 8)
    assert stretched[0, 0, :, 0].min() > 0.8  # the red quarter is still there
    assert cropped[0, 0].max() < 0.2  # the crop kept only blue


def test_targets_are_chosen_by_name_and_a_missing_name_is_one_error(tmp_path):
    for name in ("c", "a", "b"):
        _write_quarter_red_image(tmp_path / f"{name}.png")
    assert [n for n, _ in load_targets(tmp_path, 2, 8)] == ["a", "b"]
    assert [n for n, _ in load_targets(tmp_path, 2, 8, names=["c"])] == ["c"]
    with pytest.raises(InputDataError, match=r"\['zz'\]"):
        load_targets(tmp_path, 2, 8, names=["zz"])


def test_texture_experiment_writes_csv_with_start_and_final_losses_and_figures(tmp_path):
    images = tmp_path / "targets"
    images.mkdir()
    _write_quarter_red_image(images / "a.png")
    options = {
        "feature_net": "vgg19", "weights": None, "layers": ["relu1_1", "pool1"], "num_targets": 1,
        "target_names": None, "image_size": 16, "target_resize": "stretch", "topk_fraction": 0.05,
        "steps": 1, "max_iter": 3, "lr": 1.0, "loss": "sum", "bounds": "sigmoid",
        "reconstruction_steps": 1, "reconstruction_lr": 10.0, "seed": 0,
    }
    out = {key: tmp_path / name for key, name in (
        ("csv", "t.csv"), ("synthesis_png", "s.png"), ("synthesis_pdf", "s.pdf"),
        ("reconstruction_png", "r.png"), ("reconstruction_pdf", "r.pdf"))}
    table = run_texture_experiments(options, None, images, out, device="cpu")
    assert len(table) == 5
    assert (table["objective_reduction"] == table["objective_start"] / table["objective_final"]).all()
    assert (table["objective_final"] < table["objective_start"]).all()
    assert all(_is_png(out[key]) for key in ("synthesis_png", "reconstruction_png"))


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
    assert not torch.equal(recorder.masks[0], recorder.masks[10]), "training moved the masks"
    recorder.save(tmp_path / "masks.pt")
    loaded = load_masks(tmp_path / "masks.pt")
    assert sorted(loaded) == [0, 10] and all(torch.equal(loaded[s], recorder.masks[s]) for s in loaded)
    assert torch.equal(load_mask_inputs(tmp_path / "masks.pt"), images)  # Figure 8 shows what the masks are of


def test_figure_8_shows_each_recorded_input_beside_its_masks_and_no_column_for_latents(tmp_path):
    from topkshape.texture import experiment

    masks = {0: torch.zeros(2, 1, 4, 4, dtype=torch.bool), 5: torch.ones(2, 1, 4, 4, dtype=torch.bool)}
    drawn = {}
    for name, inputs in (("images", 3 * torch.randn(2, 3, 8, 8)), ("latents", torch.randn(2, 16)), ("none", None)):
        save_masks(masks, tmp_path / f"{name}.pt", inputs=inputs)
        with mock.patch.object(experiment, "save_mask_dynamics") as save:
            experiment.render_mask_dynamics(tmp_path / f"{name}.pt", [tmp_path / f"{name}.png"], title="t")
        drawn[name] = save.call_args.kwargs["inputs"]
    assert drawn["latents"] is None and drawn["none"] is None
    shown = drawn["images"]
    assert shown.shape == (2, 3, 8, 8) and float(shown.min()) == 0.0 and float(shown.max()) == pytest.approx(1.0)
    # A masks file of masks alone (written before the inputs were kept) still loads.
    torch.save(dict(masks), tmp_path / "old.pt")
    assert sorted(load_masks(tmp_path / "old.pt")) == [0, 5] and load_mask_inputs(tmp_path / "old.pt") is None


def test_a_generators_images_are_kept_at_each_recording_and_drawn_above_its_masks(tmp_path):
    from topkshape.mask_recording import load_mask_outputs
    from topkshape.texture import experiment

    class TwoSizes(nn.Module):  # returns [full size, small size] as FastGAN's generator does
        def __init__(self):
            super().__init__()
            self.net = _topk_model()

        def forward(self, x):
            y = self.net(x)
            return [y, y[:, :, ::2, ::2]]

    def as_pixels(images):  # what the recorder keeps: the caller's function of the first output
        return (images * 40 + 128).clamp(0, 255).to(torch.uint8)

    model = TwoSizes()
    inputs = torch.stack([_noise(3)[0], _noise(4)[0]])
    recorder = MaskRecorder(model, "net.2", inputs, channels=[0], keep_outputs=as_pixels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in (0, 10):
        recorder.record(step)
        model.eval()
        with torch.no_grad():
            expected = as_pixels(model(inputs)[0])
        model.train()
        assert torch.equal(recorder.outputs[step], expected)  # the full-size image of that moment, not the small one
        optimizer.zero_grad()
        model(inputs)[0].square().mean().backward()
        optimizer.step()
    assert not torch.equal(recorder.outputs[0], recorder.outputs[10])
    recorder.save(tmp_path / "masks.pt")
    saved = load_mask_outputs(tmp_path / "masks.pt")
    assert sorted(saved) == [0, 10] and all(torch.equal(saved[s], recorder.outputs[s]) for s in saved)
    with mock.patch.object(experiment, "save_mask_dynamics") as save:
        experiment.render_mask_dynamics(tmp_path / "masks.pt", [tmp_path / "f.png"], title="t", time_unit="iteration")
    drawn = save.call_args.kwargs["outputs"]
    for step in (0, 10):  # uint8 pixels shown in [0, 1]
        assert torch.equal(drawn[step], saved[step].float() / 255)
    # A recorder without keep_outputs writes none, and a file without them loads as None.
    plain = MaskRecorder(_topk_model(), "2", inputs, channels=[0])
    plain.record(0)
    plain.save(tmp_path / "plain.pt")
    assert load_mask_outputs(tmp_path / "plain.pt") is None and plain.outputs == {}


def test_the_gans_figure_8_keeps_small_uint8_images_as_its_samples_are_saved():
    from topkshape.gan.train import figure_thumbnail

    big = torch.full((2, 3, 256, 256), 0.5)
    big[1] = -2.0  # beyond [-1, 1]: clamped
    small = figure_thumbnail(big)
    assert small.dtype == torch.uint8 and small.shape == (2, 3, 64, 64)
    assert torch.all(small[0] == 191) and torch.all(small[1] == 0)  # (0.5 + 1) * 127.5 = 191.25; -1 -> 0
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(3, 64, 64)[None]  # 128 px, 2 px squares
    assert torch.all(figure_thumbnail(checker) == 128)  # area averaging to 64 px: 0 -> 127.5, rounded to even
    assert figure_thumbnail(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)  # small images stay as they are


def test_mask_recorder_rejects_a_layer_that_is_not_topk():
    with pytest.raises(ValueError, match="not a TopK"):
        MaskRecorder(_topk_model(), "0", _noise(), channels=[0])


def test_load_masks_rejects_a_file_without_masks_in_one_line(tmp_path):
    torch.save([1, 2, 3], tmp_path / "masks.pt")
    with pytest.raises(InputDataError, match="does not hold a dict of masks"):
        load_masks(tmp_path / "masks.pt")
    save_masks({3: torch.ones(1, 1, 2, 2, dtype=torch.bool)}, tmp_path / "ok.pt")
    assert list(load_masks(tmp_path / "ok.pt")) == [3]


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_written_and_draw_each_panel_and_mask_where_it_belongs(tmp_path, target, monkeypatch):
    from topkshape.texture import figures

    drawn = []
    real_save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, paths: drawn.append(fig) or real_save(fig, paths))
    rows = [("target A", [("target", target), ("S w/ Top-K", _noise()), ("S w/o Top-K", _noise(3))])]
    rows.append(("target B", [("target", target[0]), ("S w/ Top-K", target[:, :1])]))
    save_panels(rows, [tmp_path / "fig2.png", tmp_path / "fig2.pdf"])
    assert _is_png(tmp_path / "fig2.png")
    assert (tmp_path / "fig2.pdf").read_bytes()[:4] == b"%PDF"
    axes = drawn[0].axes
    assert len(axes) == 6 and not axes[5].axison  # 2 rows x 3 columns, row B's third panel empty
    assert [ax.get_title() for ax in axes[:5]] == ["target", "S w/ Top-K", "S w/o Top-K", "target", "S w/ Top-K"]
    assert axes[0].get_ylabel() == "target A" and axes[3].get_ylabel() == "target B"
    np.testing.assert_allclose(axes[0].images[0].get_array(), target[0].permute(1, 2, 0).numpy(), atol=1e-6)
    np.testing.assert_allclose(axes[4].images[0].get_array(), target[0, 0].numpy(), atol=1e-6)  # one channel: grey

    masks = {t: torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(t)) > 0.8 for t in (0, 5, 20)}
    save_mask_dynamics(masks, tmp_path / "fig8.png", title="Top-K masks", channel_labels=[4, 7, 9])
    assert _is_png(tmp_path / "fig8.png")
    grid = drawn[1].axes
    assert len(grid) == 6 * 3  # (image, channel) rows x times
    assert [ax.get_title() for ax in grid[:3]] == ["epoch 0", "epoch 5", "epoch 20"]
    assert grid[3 * 4].get_ylabel() == "image 2\nchannel 7"
    for row in range(6):
        for col, t in enumerate((0, 5, 20)):
            shown = grid[row * 3 + col].images[0].get_array()
            np.testing.assert_array_equal(shown, masks[t][row // 3, row % 3].float().numpy())
    assert not list(tmp_path.glob(".tmp-*"))

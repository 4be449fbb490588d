"""FastGAN as the paper's code runs it: LPIPS reconstruction loss, tanh placement, rollback on
stalled FID, and the paper evaluator's sampling (generator mode, pixel range, best of samplings)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from topkshape.checkpoint import load_torch_file
from topkshape.errors import ConfigError
from topkshape.gan.fastgan import Generator
from topkshape.gan.sampling import generate_samples, generated_pixels, real_pixels
from topkshape.gan.settings import GanSettings, RollbackSettings
from topkshape.gan.train import _reconstruction_loss, train_fastgan

TINY = GanSettings(im_size=64, nz=16, ngf=8, ndf=8, batch_size=4, iterations=3, checkpoint_every=1, log_every=1,
                   eval_every=1, noise_injection=False, seed=3,
                   rollback=RollbackSettings(enabled=True, patience=2, eps_g=0.01))
# FIDs by call: a best, two worse (the second rolls back to iteration 1), a new best, a worse one.
FIDS = [10.0, 11.0, 12.0, 9.0, 9.5]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


# ---------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def random_vgg_home(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A TORCH_HOME whose hub cache holds random VGG-16 weights under torchvision's file name."""
    from torchvision.models import VGG16_Weights

    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    # Only the convolutional part matters to LPIPS; random tensors in the full state dict's layout.
    state = {f"features.{i}.{kind}": torch.randn(shape) * 0.05 for i, cin, cout in _VGG16_CONVS
             for kind, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,)))}
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / Path(VGG16_Weights.IMAGENET1K_V1.url).name)
    return home, state


_VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
                (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]


def test_lpips_runs_offline_on_torchvision_weights_and_is_zero_only_for_identical_images(random_vgg_home, monkeypatch, no_downloads):
    pytest.importorskip("lpips")
    from topkshape.gan.perceptual import LpipsVgg

    home, state = random_vgg_home
    monkeypatch.setenv("TORCH_HOME", str(home))
    lpips_vgg = LpipsVgg()
    first_conv = lpips_vgg.net.net.slice1[0]
    assert torch.equal(first_conv.weight, state["features.0.weight"])  # the backbone is the file's
    last_conv = getattr(lpips_vgg.net.net.slice5, "28")  # children keep torchvision's indices as names
    assert torch.equal(last_conv.weight, state["features.28.weight"])
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        same, different = lpips_vgg(a, a), lpips_vgg(a, b)
    assert same.shape == (2,) and torch.all(same == 0)
    assert torch.all(different > 0)
    lpips_vgg.train()
    assert not lpips_vgg.training and not any(p.requires_grad for p in lpips_vgg.parameters())


def test_lpips_without_the_vgg_weights_offline_is_a_one_line_config_error(tmp_path, monkeypatch, no_downloads):
    pytest.importorskip("lpips")
    from topkshape.gan.perceptual import LpipsVgg

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="vgg16-397923af.pth") as error:
        LpipsVgg()
    assert "\n" not in str(error.value) and "recon_loss: l1" in str(error.value)


class _MeanAbsolute(torch.nn.Module):
    """A stand-in perceptual distance: the mean absolute difference of each pair."""

    def forward(self, a, b):
        return (a - b).abs().flatten(1).mean(1)


def test_perceptual_reconstruction_loss_sums_one_distance_per_image_over_batch_and_decoders():
    # Each real image is one grey level, so every target (whole image, any quadrant) is that level;
    # each reconstruction is off by its image's offset: distance per image = |offset|.
    levels, offsets = torch.tensor([-0.5, 0.25]), torch.tensor([0.1, -0.3])
    real = levels.view(2, 1, 1, 1).expand(2, 3, 64, 64).clone()
    reconstruction = (levels + offsets).view(2, 1, 1, 1).expand(2, 3, 128, 128).clone()
    total = _reconstruction_loss((reconstruction,) * 3, real, 1, "lpips", _MeanAbsolute())
    assert total.item() == pytest.approx(3 * (0.1 + 0.3))
    with pytest.raises(ValueError, match="LPIPS"):
        _reconstruction_loss((reconstruction,) * 3, real, 1, "lpips", None)


# ---------------------------------------------------------------- tanh


@pytest.mark.parametrize(("im_size", "squashed"), [(64, False), (256, False), (1024, True)])
def test_generator_output_has_tanh_only_at_1024_px_as_fastgan(im_size, squashed):
    torch.manual_seed(0)
    generator = Generator(ngf=2, nz=8, im_size=im_size)
    seen = []
    generator.to_big.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        big = generator(torch.randn(1, 8))[0]
    expected = torch.tanh(seen[0]) if squashed else seen[0]
    assert torch.equal(big, expected)


# ---------------------------------------------------------------- rollback


class _Scripted:
    """A fake FID: ``FIDS[call]``; records each call's iteration and EMA weights; can fail at one call."""

    def __init__(self, first_call: int = 0, fail_at: int | None = None) -> None:
        self.call, self.fail_at = first_call, fail_at
        self.iterations: list[int] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def __call__(self, generator_ema, iteration: int) -> float:
        if self.call == self.fail_at:
            raise KeyboardInterrupt("killed during evaluation")
        self.iterations.append(iteration)
        self.weights.append({k: v.clone() for k, v in generator_ema.state_dict().items()})
        torch.rand(1000)  # an evaluator that draws random numbers must not change training
        fid = FIDS[self.call]
        self.call += 1
        return fid


@pytest.fixture(scope="module")
def rollback_run(images, tmp_path_factory) -> tuple[Path, _Scripted]:
    out = tmp_path_factory.mktemp("rollback")
    scorer = _Scripted()
    summary = train_fastgan(images, out, TINY, device="cpu", progress=False, evaluate=scorer)
    assert summary["rollbacks"] == 1 and summary["steps"] == 5 and summary["best_fid"] == 9.0
    return out, scorer


def test_stalled_fid_rolls_back_to_the_best_iteration_and_goes_on(rollback_run):
    out, scorer = rollback_run
    assert scorer.iterations == [1, 2, 3, 2, 3]  # after the third score training resumes from iteration 1
    with open(out / "evaluations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["step"]), int(r["iteration"]), float(r["fid"]), float(r["best_fid"])) for r in rows] == [
        (1, 1, 10.0, 10.0), (2, 2, 11.0, 10.0), (3, 3, 12.0, 10.0), (4, 2, 9.0, 9.0), (5, 3, 9.5, 9.0)]
    assert [r["rolled_back_to"] for r in rows] == ["", "", "1", "", ""]
    best = load_torch_file(out / "generator_ema_best.pt", "best EMA generator")["generator"]
    assert all(torch.equal(best[k], scorer.weights[3][k]) for k in best)  # the EMA scored 9.0
    with open(out / "losses.csv") as handle:
        assert [(int(r["iteration"]), int(r["step"])) for r in csv.DictReader(handle)] == [(1, 1), (2, 2), (3, 3), (2, 4), (3, 5)]


@pytest.fixture(scope="module")
def killed_after_rollback(images, tmp_path_factory) -> Path:
    """A run stopped in its fourth evaluation: its last checkpoint is the one written right after the rollback."""
    out = tmp_path_factory.mktemp("killed_rollback")
    with pytest.raises(KeyboardInterrupt):
        train_fastgan(images, out, TINY, device="cpu", progress=False, evaluate=_Scripted(fail_at=3))
    return out


def test_rollback_restores_the_best_state_and_perturbs_the_generator_within_eps(killed_after_rollback):
    state = load_torch_file(killed_after_rollback / "checkpoint.pt", "training checkpoint")
    best = state["scores"]["best"]
    assert (state["iteration"], state["step"], best["iteration"], best["fid"]) == (1, 3, 1, 10.0)
    assert state["scores"]["rollbacks"] == 1 and state["scores"]["stalled"] == 0
    for name in ("discriminator", "generator_ema"):  # eps_d = 0: restored exactly
        assert all(torch.equal(state[name][k], best[name][k]) for k in best[name])
    assert state["optimizer_g"]["state"].keys() == best["optimizer_g"]["state"].keys()
    assert all(torch.equal(state["optimizer_g"]["state"][i]["exp_avg"], best["optimizer_g"]["state"][i]["exp_avg"])
               for i in best["optimizer_g"]["state"])
    generator = Generator(ngf=8, nz=16, im_size=64, noise_injection=False)
    parameters = {name for name, _ in generator.named_parameters()}
    differences = torch.cat([(state["generator"][k] - best["generator"][k]).flatten() for k in parameters])
    buffers = [k for k in best["generator"] if k not in parameters]
    assert buffers and all(torch.equal(state["generator"][k], best["generator"][k]) for k in buffers)  # only parameters move
    assert differences.abs().max() <= TINY.rollback.eps_g
    assert differences.abs().max() > 0.9 * TINY.rollback.eps_g  # uniform on [-eps, eps): many draws reach near eps
    assert abs(differences.mean()) < 0.05 * TINY.rollback.eps_g


def test_a_run_killed_after_a_rollback_resumes_to_the_same_weights(images, rollback_run, killed_after_rollback, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(killed_after_rollback, out)
    scorer = _Scripted(first_call=3)
    train_fastgan(images, out, TINY, device="cpu", progress=False, evaluate=scorer)
    assert scorer.iterations == [2, 3]
    expected = load_torch_file(rollback_run[0] / "generator_ema.pt", "EMA")["generator"]
    resumed = load_torch_file(out / "generator_ema.pt", "EMA")["generator"]
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    assert (out / "evaluations.csv").read_text() == (rollback_run[0] / "evaluations.csv").read_text()


def test_rollback_without_an_evaluator_is_a_config_error(images, tmp_path):
    with pytest.raises(ConfigError, match="evaluate"):
        train_fastgan(images, tmp_path, TINY, device="cpu", progress=False)


def test_rollback_settings_come_from_a_config_mapping_and_survive_a_round_trip():
    settings = GanSettings.from_params({"rollback": {"enabled": True, "patience": 10, "eps_g": 1e-4}, "recon_loss": "lpips"})
    assert settings.rollback == RollbackSettings(enabled=True, patience=10, eps_g=1e-4, eps_d=0.0)
    assert GanSettings(**dataclasses.asdict(settings)) == settings
    for bad in ({"patience": 0}, {"eps_g": -1.0}, {"enabled": "yes"}, {"eps": 1e-4}):
        with pytest.raises(ConfigError, match="rollback"):
            GanSettings(rollback=bad)


# ---------------------------------------------------------------- sampling for FID


def test_half_pixel_range_is_the_paper_evaluators_double_conversion():
    # fake: x = (g + 1) / 2, then 255 * (clamp(x, -1, 1) / 2 + 0.5), truncated
    # (8 px wide: the evaluator's nearest resize to 512 px and back is then the identity, as at 64..512 px)
    generated = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0, -2.0, 0.5, -0.5]).view(1, 1, 1, 8).expand(1, 3, 1, 8)
    assert generated_pixels(generated, "half")[0, 0, 0].tolist() == [0, 127, 191, 255, 255, 63, 223, 159]
    assert generated_pixels(generated, "full")[0, 0, 0].tolist() == [0, 0, 128, 255, 255, 0, 191, 64]
    # real: 255 * (v / 255 / 2 + 0.5), truncated
    real = np.array([[[0, 100, 255]]], dtype=np.uint8)
    assert real_pixels(real, "half").tolist() == [[[127, 177, 255]]]
    assert real_pixels(real, "full").tolist() == real.tolist()


def _pixels(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_train_mode_sampling_normalises_each_batch_and_leaves_the_generator_as_it_was(tmp_path):
    torch.manual_seed(0)
    generator = Generator(ngf=8, nz=16, im_size=64, noise_injection=False).eval()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    runs = {}
    for mode in ("eval", "train"):
        for batch in (2, 4):
            folder = generate_samples(generator, 4, tmp_path / f"{mode}{batch}", seed=1, batch_size=batch, device="cpu", generator_mode=mode)
            runs[mode, batch] = _pixels(folder)
    def gap(a, b):
        return np.abs(a.astype(int) - b.astype(int))

    assert gap(runs["eval", 2], runs["eval", 4]).max() <= 1  # running statistics: batching is irrelevant (up to rounding)
    assert gap(runs["train", 2], runs["train", 4]).mean() > 1  # batch statistics: it matters
    assert gap(runs["train", 4], runs["eval", 4]).mean() > 1
    assert not generator.training
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())


def test_fid_evaluator_returns_the_best_of_its_samplings_in_the_configured_pixel_range(images, monkeypatch):
    from topkshape.gan import fidelity
    from topkshape.gan.rollback import fid_evaluator

    calls = []

    def fake_fid_kid(generated, real, **kwargs):
        calls.append((len(list(Path(generated).glob("*.png"))), int(_pixels(Path(real)).min()), kwargs["kid_subset_size"]))
        return {"fid": [5.0, 3.0, 4.0][len(calls) - 1]}

    monkeypatch.setattr(fidelity, "fid_kid", fake_fid_kid)
    options = {"samples": 6, "samplings": 3, "sample_batch_size": 3, "generator_mode": "train", "pixel_range": "half",
               "kid_subset_size": 5, "feature_extractor": "inception-v3-compat", "feature_extractor_weights_path": None}
    evaluate = fid_evaluator(images, options, im_size=64, resize="stretch", device="cpu")
    generator = Generator(ngf=8, nz=16, im_size=64, noise_injection=False)
    assert evaluate(generator, 1000) == 3.0
    assert calls == [(6, 127, 5)] * 3  # 6 images each time; the random reals' zeros now read 127
    with pytest.raises(ConfigError, match="samplings"):
        fid_evaluator(images, {k: v for k, v in options.items() if k != "samplings"}, im_size=64, resize="stretch")


@pytest.mark.parametrize(("config", "recon_loss", "rollback", "iterations"), [
    ("config/paper.yaml", "lpips", True, 100_000),
    ("config.yaml", "l1", False, None),
])
def test_the_configs_gan_sections_build_settings_with_the_paper_protocol_where_stated(config, recon_loss, rollback, iterations):
    import yaml

    path = Path(__file__).resolve().parents[1] / config
    gan = yaml.safe_load(path.read_text())["gan"]
    train_params = {k: v for k, v in gan.items() if k not in ("seeds", "fewshot_sets", "eval", "topk_fraction")}  # as rules/gan.smk
    settings = GanSettings.from_params(train_params, seed=0)
    assert settings.recon_loss == recon_loss and settings.rollback.enabled == rollback
    if iterations is not None:
        assert settings.iterations == iterations
        assert (settings.rollback.patience, settings.rollback.eps_g, settings.topk_ties) == (10, 1e-4, "exact")
        assert (gan["eval"]["samplings"], gan["eval"]["sample_batch_size"], gan["eval"]["generator_mode"], gan["eval"]["pixel_range"]) == (
            3, 8, "train", "half")

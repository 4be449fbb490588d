"""Few-shot synthesis (Table 2): FastGAN shapes, DiffAugment, resumable training, FID/KID."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from topkshape.checkpoint import load_torch_file
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.diffaug import diff_augment
from topkshape.gan.fastgan import Discriminator, Generator
from topkshape.gan.fidelity import fid_kid, prepare_real_images, register_classifier_extractor, save_random_inception_weights
from topkshape.gan.train import GanSettings, generate_samples, load_generator, train_fastgan
from topkshape.ops import TopK

TINY = GanSettings(
    im_size=64, nz=16, ngf=8, ndf=8, batch_size=4, iterations=4, checkpoint_every=2, log_every=2, snapshot_every=2, topk_fraction=0.05, seed=5
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def few_shot_images(tmp_path_factory) -> Path:
    """16 images of mixed sizes and formats in nested folders: blobs on noise."""
    root = tmp_path_factory.mktemp("few_shot")
    rng = np.random.default_rng(0)
    for i in range(16):
        h, w = (72, 80) if i % 2 else (90, 64)
        yy, xx = np.mgrid[:h, :w]
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < (0.2 * min(h, w)) ** 2)[..., None]
        color = rng.integers(0, 256, 3)
        pixels = np.where(blob, color, rng.integers(0, 256, (h, w, 3))).astype(np.uint8)
        folder = root / ("a" if i < 8 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 3 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def topk_run(few_shot_images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("topk_run")
    train_fastgan(few_shot_images, out, TINY, device="cpu", progress=False)
    return out


def _ema_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_torch_file(out / "generator_ema.pt", "EMA generator")["generator"]


@pytest.mark.parametrize("topk_fraction", [None, 0.05])
def test_generator_and_discriminator_shapes_at_64_px(topk_fraction):
    torch.manual_seed(0)
    generator = Generator(ngf=8, nz=16, im_size=64, topk_fraction=topk_fraction)
    discriminator = Discriminator(ndf=8, im_size=64)
    big, small = generator(torch.randn(3, 16))
    assert big.shape == (3, 3, 64, 64) and small.shape == (3, 3, 128, 128)
    assert not generator.output_tanh  # FastGAN applies tanh only at 1024 px
    logits = discriminator([big, small], "fake")
    assert logits.dim() == 1 and logits.shape[0] == 3 * 2 * 25  # two 5x5 patch maps per image
    logits_real, reconstructions, part = discriminator(big, "real", part=2)
    assert logits_real.shape == logits.shape and part == 2
    assert [tuple(r.shape) for r in reconstructions] == [(3, 3, 128, 128)] * 3
    assert discriminator(big, "real")[2] in range(4)


@pytest.mark.parametrize("im_size", [64, 256])
def test_small_size_64_puts_the_second_output_small_path_and_decoders_at_64_px(im_size):
    torch.manual_seed(0)
    generator = Generator(ngf=4, nz=16, im_size=im_size, small_size=64)
    discriminator = Discriminator(ndf=4, im_size=im_size, small_size=64)
    big, small = generator(torch.randn(2, 16))
    assert big.shape == (2, 3, im_size, im_size) and small.shape == (2, 3, 64, 64)
    if im_size == 64:
        assert small is big  # no resize: the second output is the image itself
    logits, reconstructions, _ = discriminator(big, "real", part=1)
    assert logits.shape == (2 * 2 * 25,)  # the small path still ends at 8x8: 5x5 patch logits
    assert [tuple(r.shape) for r in reconstructions] == [(2, 3, 64, 64)] * 3
    assert discriminator([big, small], "fake").shape == logits.shape
    # Fewer layers, not just smaller inputs: the 128 px small path has one down-block and each decoder one up-block more.
    full = Discriminator(ndf=4, im_size=im_size)
    assert len(discriminator.down_from_small) == len(full.down_from_small) - 1
    assert len(discriminator.decoder_big.main) == len(full.decoder_big.main) - 1


def test_small_size_outside_64_and_128_is_refused():
    with pytest.raises(ValueError, match="small_size"):
        Discriminator(ndf=4, im_size=64, small_size=32)
    with pytest.raises(ConfigError, match="small_size"):
        GanSettings(im_size=64, small_size=256)


def test_training_and_loading_keep_small_size(few_shot_images, tmp_path):
    settings = dataclasses.replace(TINY, topk_fraction=None, small_size=64)
    train_fastgan(few_shot_images, tmp_path / "run", settings, device="cpu", progress=False)
    generator = load_generator(tmp_path / "run" / "generator_ema.pt")
    assert generator.small_size == 64 and generator(torch.randn(2, 16))[1].shape == (2, 3, 64, 64)


def test_topk_sits_at_the_32x32_map_and_only_in_the_topk_variant():
    assert not any(isinstance(m, TopK) for m in Generator(ngf=8, nz=16, im_size=64).modules())
    generator = Generator(ngf=8, nz=16, im_size=64, topk_fraction=0.05)
    layers = [m for m in generator.modules() if isinstance(m, TopK)]
    assert len(layers) == 1 and layers[0].fraction == 0.05
    layers[0].record_mask = True
    seen = []
    layers[0].register_forward_hook(lambda module, inputs, output: seen.append(tuple(inputs[0].shape)))
    generator(torch.randn(2, 16))
    assert seen == [(2, 16, 32, 32)]  # nfc[32] = 2 * ngf channels
    kept = layers[0].last_mask.sum(dim=(2, 3))
    assert int(kept.max()) == 51  # 5% of 1024 positions, as in the paper


def test_generator_rejects_a_topk_resolution_it_does_not_have():
    with pytest.raises(ValueError, match="topk_resolution"):
        Generator(ngf=8, nz=16, im_size=64, topk_fraction=0.05, topk_resolution=128)
    with pytest.raises(ConfigError, match="topk_resolution"):
        GanSettings(im_size=64, topk_fraction=0.05, topk_resolution=128)


@pytest.mark.parametrize("im_size", [128, 256])
def test_both_networks_work_at_larger_sizes(im_size):
    big, small = Generator(ngf=4, nz=16, im_size=im_size, topk_fraction=0.15)(torch.randn(2, 16))
    assert big.shape == (2, 3, im_size, im_size) and small.shape == (2, 3, 128, 128)
    discriminator = Discriminator(ndf=4, im_size=im_size)
    logits, reconstructions, _ = discriminator(big, "real")
    assert logits.shape == (2 * 2 * 25,)
    assert all(r.shape == (2, 3, 128, 128) for r in reconstructions)


def test_diff_augment_keeps_shape_is_differentiable_and_seeded():
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    again = diff_augment(x.detach(), "color,translation,cutout", generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.detach(), again)
    assert torch.equal(diff_augment(x.detach(), ""), x.detach())
    with pytest.raises(ConfigError, match="rotate"):
        diff_augment(x, "color,rotate")


def test_translation_moves_content_and_fills_with_zeros():
    x = torch.ones(64, 1, 16, 16)
    shifted = diff_augment(x, "translation", generator=torch.Generator().manual_seed(0))
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}
    assert (shifted == 0).any()  # some of 64 images were shifted
    assert (shifted.sum(dim=(1, 2, 3)) >= 14 * 14).all()  # by at most 2 px each way


@pytest.mark.parametrize("topk_fraction", [None, 0.05])
def test_a_few_iterations_train_and_write_losses_and_the_ema_generator(few_shot_images, topk_run, tmp_path, topk_fraction):
    if topk_fraction is None:
        out = tmp_path / "baseline"
        summary = train_fastgan(few_shot_images, out, dataclasses.replace(TINY, topk_fraction=None), device="cpu", progress=False)
        assert summary["images"] == 16
    else:
        out = topk_run
    with open(out / "losses.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss_d", "loss_g", "recon", "images_per_s"))
    generator = load_generator(out / "generator_ema.pt")
    assert any(isinstance(m, TopK) for m in generator.modules()) == (topk_fraction is not None)
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["generator_ema_0000002.pt", "generator_ema_0000004.pt"]
    final = load_generator(out / "snapshots" / snapshots[-1]).state_dict()
    assert all(torch.equal(final[k], v) for k, v in generator.state_dict().items())
    assert generator(torch.randn(2, 16))[0].shape == (2, 3, 64, 64)


# Trains in a process of its own, as the workflow's job does; one thread, as the fixtures here
# (float sums depend on the thread count).
_TRAIN = """
import json, logging, sys
from topkshape.gan.train import GanSettings, train_fastgan
logging.basicConfig(level=logging.INFO)
train_fastgan(sys.argv[1], sys.argv[2], GanSettings(**json.loads(sys.argv[3])), device="cpu", progress=False, threads=1)
"""


def _train_command(images: Path, out: Path, settings: GanSettings) -> list[str]:
    return [sys.executable, "-c", _TRAIN, str(images), str(out), json.dumps(dataclasses.asdict(settings))]


@pytest.fixture(scope="module")
def killed_run(few_shot_images, tmp_path_factory) -> Path:
    """A training process SIGKILLed as soon as its first checkpoint (iteration 2 of 4) appeared."""
    out = tmp_path_factory.mktemp("killed")
    process = subprocess.Popen(_train_command(few_shot_images, out, TINY), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (out / "generator_ema.pt").exists() and not (out / "losses.csv").exists()
    return out


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights_and_losses(few_shot_images, topk_run, killed_run, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(killed_run, out)
    rerun = subprocess.run(_train_command(few_shot_images, out, TINY), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stderr and "at iteration 2" in rerun.stderr
    expected, resumed = _ema_weights(topk_run), _ema_weights(out)
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    losses = [np.loadtxt(o / "losses.csv", delimiter=",", skiprows=1)[:, :4] for o in (topk_run, out)]
    np.testing.assert_array_equal(*losses)


def test_a_checkpoint_of_other_settings_is_not_resumed_and_training_starts_over(few_shot_images, killed_run, tmp_path, caplog):
    other = dataclasses.replace(TINY, iterations=2, checkpoint_every=1)
    work = tmp_path / "other"
    shutil.copytree(killed_run, work)
    with caplog.at_level(logging.INFO):
        train_fastgan(few_shot_images, work, other, device="cpu", progress=False)
    assert "resuming from" not in caplog.text
    train_fastgan(few_shot_images, tmp_path / "fresh", other, device="cpu", progress=False)
    fresh, started_over = _ema_weights(tmp_path / "fresh"), _ema_weights(work)
    assert all(torch.equal(fresh[k], started_over[k]) for k in fresh)


def test_a_run_started_over_keeps_no_snapshot_of_the_earlier_run(few_shot_images, topk_run, tmp_path):
    """selection: best picks among snapshots: one of a longer earlier run must not be a candidate."""
    work = tmp_path / "again"
    shutil.copytree(topk_run, work)
    assert sorted(p.name for p in (work / "snapshots").iterdir()) == ["generator_ema_0000002.pt", "generator_ema_0000004.pt"]
    train_fastgan(few_shot_images, work, dataclasses.replace(TINY, iterations=2), device="cpu", progress=False)
    assert sorted(p.name for p in (work / "snapshots").iterdir()) == ["generator_ema_0000002.pt"]


def test_selection_best_scores_the_final_generator_once_when_it_is_the_last_snapshot(topk_run, tmp_path):
    from topkshape.gan.evaluate import _candidates

    assert [p.name for p in _candidates(topk_run, "best")] == ["generator_ema_0000002.pt", "generator_ema_0000004.pt"]
    assert [p.name for p in _candidates(topk_run, "final")] == ["generator_ema.pt"]
    changed = tmp_path / "changed"
    shutil.copytree(topk_run, changed)
    state = torch.load(changed / "generator_ema.pt", weights_only=True)
    first = next(iter(state["generator"]))
    state["generator"][first] = state["generator"][first] + 1
    torch.save(state, changed / "generator_ema.pt")
    assert [p.name for p in _candidates(changed, "best")][-1] == "generator_ema.pt"


def test_missing_or_empty_image_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputDataError, match="not found"):
        train_fastgan(tmp_path / "nope", tmp_path / "out", TINY, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="no PNG or JPEG"):
        train_fastgan(tmp_path / "empty", tmp_path / "out", TINY, progress=False)


def test_generate_samples_writes_n_pngs_repeatable_from_the_seed(topk_run, tmp_path):
    first = generate_samples(topk_run / "generator_ema.pt", 7, tmp_path / "a", seed=3, batch_size=3, device="cpu")
    files = sorted(first.iterdir())
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(7)]
    image = np.asarray(Image.open(files[0]))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    generate_samples(load_generator(topk_run / "generator_ema.pt"), 7, tmp_path / "b", seed=3, batch_size=3, device="cpu")
    assert all(np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "b" / f.name))) for f in files)


# Each image costs the random Inception ~0.5 s on 2 CPU cores.
SAMPLES = 12


@pytest.fixture(scope="module")
def sample_folders(topk_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    generate_samples(topk_run / "generator_ema.pt", SAMPLES, root / "generated", seed=0, device="cpu")
    generate_samples(topk_run / "generator_ema.pt", SAMPLES, root / "other", seed=1, device="cpu")
    return root


def frechet_distance_terms(features1: np.ndarray, features2: np.ndarray) -> tuple[float, float]:
    """FID's two terms, written out here: ``|mu1 - mu2|^2`` and ``Tr(S1 + S2 - 2 (S1 S2)^1/2)`` (Heusel et al., 2017).

    With the centred features scaled as ``A = (F1 - mu1) / sqrt(n1 - 1)`` (likewise ``B``), ``S1 = A'A`` and
    ``S2 = B'B``; the non-zero eigenvalues of ``S1 S2`` are those of ``(AB')(AB')'``, so ``Tr (S1 S2)^1/2`` is the
    sum of the singular values of the small ``AB'``. In float64, exact for the rank-deficient covariances of a few
    images in 2048 dimensions (where ``scipy.linalg.sqrtm`` of the 2048 x 2048 product takes about a minute), and
    a route of its own, not torch-fidelity's eigenvalues of ``S1 S2``.
    """
    f1, f2 = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    a = (f1 - f1.mean(axis=0)) / math.sqrt(len(f1) - 1)
    b = (f2 - f2.mean(axis=0)) / math.sqrt(len(f2) - 1)
    diff = f1.mean(axis=0) - f2.mean(axis=0)
    trace = (a * a).sum() + (b * b).sum() - 2 * np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff @ diff), float(trace)


def test_the_tests_frechet_distance_is_the_textbook_formula():
    import scipy.linalg

    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(7, 3)), rng.normal(1.0, 2.0, size=(5, 3)) @ rng.normal(size=(3, 3))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    textbook = np.sum((f1.mean(0) - f2.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert sum(frechet_distance_terms(f1, f2)) == pytest.approx(textbook, rel=1e-10)


def _png_pixels(folder: Path) -> torch.Tensor:
    """The folder's images as torch-fidelity gets them: uint8 (N, 3, H, W), in sorted name order."""
    return torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in sorted(folder.glob("*.png"))])


@pytest.mark.slow
def test_fid_with_local_inception_weights_is_zero_for_a_folder_against_itself_and_positive_against_real_images(
        few_shot_images, topk_run, tmp_path, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    generated = generate_samples(topk_run / "generator_ema.pt", 4, tmp_path / "generated", seed=0, device="cpu")
    real = tmp_path / "real"
    real.mkdir()
    for path in sorted(prepare_real_images(few_shot_images, tmp_path / "prepared", 64).iterdir())[:4]:
        shutil.copy(path, real / path.name)
    weights = str(save_random_inception_weights(tmp_path / "inception.pt"))
    # What torch-fidelity's Inception is given and what it returns: the images fed, and their 2048-d pool features.
    seen: list[tuple[torch.Tensor, np.ndarray]] = []
    forward = FeatureExtractorInceptionV3.forward

    def recording_forward(self, x):
        out = forward(self, x)
        seen.append((x.detach().clone(), out[self.features_list.index("2048")].detach().double().numpy()))
        return out

    monkeypatch.setattr(FeatureExtractorInceptionV3, "forward", recording_forward)
    options = dict(kid_subset_size=3, feature_extractor_weights_path=weights, cuda=False, save_cpu_ram=True)
    same = fid_kid(generated, generated, **options)
    other = fid_kid(generated, real, **options)
    # Each folder's images went in whole, in one batch: generated twice, then generated and real.
    fed = [x for x, _ in seen]
    expected_inputs = [_png_pixels(generated), _png_pixels(generated), _png_pixels(generated), _png_pixels(real)]
    assert len(fed) == 4 and all(torch.equal(x, e) for x, e in zip(fed, expected_inputs))
    # The returned FID is the Frechet distance of those features, computed here in float64 by another route.
    means, traces = frechet_distance_terms(seen[2][1], seen[3][1])
    assert other["fid"] == pytest.approx(means + traces, rel=1e-6)
    assert traces > 1e-3 * (means + traces)  # the covariance term weighs in: leaving it out would fail the line above
    # Same features on both sides: equal means and covariances S, so FID = |mu - mu|^2 + Tr(2S - 2(S S)^1/2) = 0.
    assert sum(frechet_distance_terms(seen[0][1], seen[1][1])) == pytest.approx(0.0, abs=1e-9 * other["fid"])
    assert other["fid"] > 1.0
    assert abs(same["fid"]) < 1e-3 * other["fid"]
    assert set(other) == {"fid", "kid", "kid_std", "kid_x1e3"}
    assert all(math.isfinite(v) for v in other.values()) and other["kid_x1e3"] == pytest.approx(other["kid"] * 1000)


def test_kid_subset_larger_than_a_folder_is_a_config_error(sample_folders):
    with pytest.raises(ConfigError, match=f"at most {SAMPLES}"):
        fid_kid(sample_folders / "generated", sample_folders / "other", kid_subset_size=SAMPLES + 1, cuda=False)


def test_prepare_real_images_writes_same_size_pngs(few_shot_images, tmp_path):
    out = prepare_real_images(few_shot_images, tmp_path / "real", 64)
    files = sorted(out.iterdir())
    assert len(files) == 16 and all(f.suffix == ".png" for f in files)
    assert {Image.open(f).size for f in files} == {(64, 64)}
    with pytest.raises(InputDataError, match="differ in size"):
        fid_kid(few_shot_images / "a", out, kid_subset_size=2, cuda=False)


def test_registered_classifier_extractor_gives_fid_and_kid(sample_folders, few_shot_images, tmp_path):
    from topkshape.classify.train import TrainSettings, build_classifier

    settings = TrainSettings(arch="resnet18_cifar", variant="topk", topk_fraction=0.2, image_size=32, width=4)
    torch.manual_seed(0)
    model = build_classifier(settings, 3)
    path = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "classes": ["a", "b", "c"], "settings": dataclasses.asdict(settings)}, path)
    name = f"test-classifier-{tmp_path.name}"
    cls = register_classifier_extractor(name, path)
    assert register_classifier_extractor(name, path) is cls
    with pytest.raises(ConfigError, match="already registered"):
        register_classifier_extractor(name, tmp_path / "another.pt")
    extractor = cls(name, ["penultimate", "logits"])
    penultimate, logits = extractor(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert penultimate.shape == (2, 32) and logits.shape == (2, 3)  # width 4 * 8 channels, 3 classes

    # Generated against real images (two samplings of one generator are too alike: an FID of ~1e-11).
    real = prepare_real_images(few_shot_images, tmp_path / "real", 64)
    result = fid_kid(sample_folders / "generated", real, kid_subset_size=10,
                     feature_extractor=name, cuda=False, save_cpu_ram=True)
    assert all(math.isfinite(v) for v in result.values())
    # The same FID from features taken here: the classifier's evaluation transform (shorter side to
    # round(32 * 256 / 224) = 37 px, bilinear with antialias, centre crop 32, ImageNet normalisation), then
    # layer4's output averaged over its positions, the Top-K layer of the model as trained in place.
    from torchvision.transforms import functional as TF

    pooled = []
    hook = model.layer4.register_forward_hook(lambda module, inputs, output: pooled.append(output.mean(dim=(2, 3))))
    features = []
    with torch.no_grad():
        for folder in (sample_folders / "generated", real):
            x = TF.center_crop(TF.resize(_png_pixels(folder).float() / 255, 37, antialias=True), 32)
            model.eval()(TF.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
            features.append(pooled.pop().double().numpy())
    hook.remove()
    assert [f.shape for f in features] == [(SAMPLES, 32), (16, 32)]
    means, traces = frechet_distance_terms(*features)
    assert means + traces > 1e-6  # far from zero at the comparison's precision
    assert result["fid"] == pytest.approx(means + traces, rel=1e-6)
    assert traces > 1e-3 * (means + traces)


def test_generator_topk_masks_are_recorded_at_each_checkpoint(tmp_path):
    from topkshape.data.synthetic import write_fewshot_set
    from topkshape.gan.train import GanSettings, train_fastgan
    from topkshape.texture.figures import load_masks

    write_fewshot_set(tmp_path / "imgs", "star", count=8, image_size=64, progress=False)
    settings = GanSettings(im_size=64, ngf=8, ndf=8, nz=16, batch_size=4, iterations=4, checkpoint_every=2, log_every=2, topk_fraction=0.05)
    train_fastgan(tmp_path / "imgs", tmp_path / "run", settings, progress=False, threads=1, mask_latents=2, mask_channels=(0, 1))
    masks = load_masks(tmp_path / "run" / "masks.pt")
    assert sorted(masks) == [0, 2, 4]
    assert masks[4].shape[:2] == (2, 2) and masks[4].shape[2:] == (32, 32)
    assert (masks[4].sum(dim=(2, 3)) <= 51 + 2).all()  # 5% of 32x32, ties aside
    # Figure 8 shows, above each time's masks, the image the generator made from the same latent at that time.
    from topkshape.gan.train import load_generator
    from topkshape.mask_recording import load_mask_outputs

    outputs = load_mask_outputs(tmp_path / "run" / "masks.pt")
    assert sorted(outputs) == [0, 2, 4] and all(o.dtype == torch.uint8 and o.shape == (2, 3, 64, 64) for o in outputs.values())
    initial = load_generator(tmp_path / "run" / "generator_init.pt").eval()
    latents = torch.randn(2, settings.nz, generator=torch.Generator().manual_seed(settings.seed + 7919))
    with torch.no_grad():
        expected = ((initial(latents)[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(outputs[0], expected)  # step 0: the initial generator's images of the recorded latents
    assert not torch.equal(outputs[0], outputs[4])

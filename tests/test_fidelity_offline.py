"""FID and KID (Table 2) library, checked offline against their definitions.

torch-fidelity's Inception is never downloaded here: ``fid_kid`` runs with a registered
extractor whose features are two pixel means, so FID and KID follow by hand from
Heusel et al. (2017) and Binkowski et al. (2018); the classifier extractor runs on
stand-in models whose features are known.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from PIL import Image
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from topkshape.errors import ConfigError, InputDataError
from topkshape.gan import fidelity
from topkshape.gan.fidelity import (
    ClassifierFeatureExtractor,
    fid_kid,
    prepare_real_images,
    register_classifier_extractor,
    sample_files,
    save_random_inception_weights,
)
from topkshape.gan.images import square_image
from topkshape.ops import TopK, TopKMeanReplace

MEANS = "test-red-green-means"


class _RedGreenMeans(FeatureExtractorBase):
    """Features of an image: its mean red and mean green value, in [0, 1]."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("means",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "means"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 4, 4, dtype=torch.uint8)

    def forward(self, x):
        return (x.double().mean(dim=(2, 3))[:, :2] / 255,)


if MEANS not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(MEANS, _RedGreenMeans)


def _solid_images(folder: Path, colours: list[tuple[int, int, int]], size: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, colour in enumerate(colours):
        Image.new("RGB", (size, size), colour).save(folder / f"{index:02d}.png")
    return folder


GENERATED_RED = [0, 51, 102]  # green 0
REAL_RED = [102, 153, 255]  # green 255


@pytest.fixture
def folders(tmp_path):
    generated = _solid_images(tmp_path / "generated", [(r, 0, 0) for r in GENERATED_RED])
    real = _solid_images(tmp_path / "real", [(r, 255, 0) for r in REAL_RED])
    return generated, real


def _features(reds, green):
    return [(r / 255, green) for r in reds]


def _kid_by_hand(x, y):
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3 (Binkowski et al., Eq. 4)."""
    m, d = len(x), len(x[0])

    def k(a, b):
        return (sum(p * q for p, q in zip(a, b)) / d + 1) ** 3

    within = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j)
    within += sum(k(a, b) for i, a in enumerate(y) for j, b in enumerate(y) if i != j)
    across = sum(k(a, b) for a, b in product(x, y))
    return within / (m * (m - 1)) - 2 * across / (m * m)


# --- fid_kid against the definitions ---------------------------------------------


def test_fid_of_two_sets_is_the_frechet_distance_of_their_gaussians(folders, capfd):
    generated, real = folders
    result = fid_kid(generated, real, kid_subset_size=3, feature_extractor=MEANS, cuda=False, save_cpu_ram=True)
    # Green is constant in each set, so both covariances are diag(var_red, 0) and
    # Tr(S1 + S2 - 2 (S1 S2)^1/2) = (sd1 - sd2)^2 for the red standard deviations.
    red_g, red_r = [r / 255 for r in GENERATED_RED], [r / 255 for r in REAL_RED]
    means = (statistics.mean(red_g) - statistics.mean(red_r)) ** 2 + (0.0 - 1.0) ** 2
    spreads = (statistics.stdev(red_g) - statistics.stdev(red_r)) ** 2
    assert result["fid"] == pytest.approx(means + spreads, rel=1e-6)
    assert capfd.readouterr().err == ""  # torch-fidelity runs quietly


def test_kid_with_subsets_of_every_image_is_the_unbiased_mmd_and_has_no_spread(folders):
    generated, real = folders
    result = fid_kid(generated, real, kid_subset_size=3, feature_extractor=MEANS, cuda=False, save_cpu_ram=True)
    expected = _kid_by_hand(_features(GENERATED_RED, 0.0), _features(REAL_RED, 1.0))
    assert expected > 0
    assert result["kid"] == pytest.approx(expected, rel=1e-6)
    assert result["kid_x1e3"] == pytest.approx(1000 * expected, rel=1e-6)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-9)  # every subset holds all three images
    assert set(result) == {"fid", "kid", "kid_std", "kid_x1e3"}


def test_fid_of_a_folder_against_itself_is_zero(folders):
    generated, _ = folders
    result = fid_kid(generated, generated, kid_subset_size=2, feature_extractor=MEANS, cuda=False, save_cpu_ram=True)
    assert result["fid"] == pytest.approx(0.0, abs=1e-9)
    assert result["kid_std"] > 0  # subsets of 2 of 3 images differ


# --- what fid_kid passes to torch-fidelity -------------------------------------


@pytest.fixture
def spy(monkeypatch):
    """Records calculate_metrics' arguments instead of computing."""
    calls = []

    def calculate_metrics(**kwargs):
        calls.append(kwargs)
        return {torch_fidelity.KEY_METRIC_FID: 1.0, torch_fidelity.KEY_METRIC_KID_MEAN: 2.0, torch_fidelity.KEY_METRIC_KID_STD: 3.0}

    monkeypatch.setattr(torch_fidelity, "calculate_metrics", calculate_metrics)
    return calls


@pytest.mark.parametrize(("cuda", "available", "expected"), [(None, True, True), (None, False, False), (0, True, False), (1, False, True)])
def test_cuda_none_means_the_gpu_when_there_is_one_and_otherwise_as_given(folders, spy, monkeypatch, cuda, available, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    fid_kid(*folders, kid_subset_size=2, cuda=cuda)
    assert spy[0]["cuda"] is expected


@pytest.mark.parametrize("save_cpu_ram", [True, False])
def test_fid_kid_passes_its_folders_and_options_to_one_torch_fidelity_call(folders, spy, tmp_path, save_cpu_ram):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"x")
    result = fid_kid(*folders, kid_subset_size=3, feature_extractor="some-net", feature_extractor_weights_path=weights,
                     cuda=False, save_cpu_ram=save_cpu_ram)
    assert spy == [dict(input1=str(folders[0]), input2=str(folders[1]), fid=True, kid=True, kid_subset_size=3,
                        feature_extractor="some-net", feature_extractor_weights_path=str(weights), cuda=False,
                        save_cpu_ram=save_cpu_ram, verbose=False, cache=False)]
    assert result == {"fid": 1.0, "kid": 2.0, "kid_std": 3.0, "kid_x1e3": 2000.0}
    fid_kid(*folders, kid_subset_size=2)
    assert spy[1]["feature_extractor"] is None and spy[1]["feature_extractor_weights_path"] is None
    assert spy[1]["save_cpu_ram"] is True  # a few images: read in the main process, no DataLoader workers


def test_save_cpu_ram_left_unset_uses_workers_only_for_large_folders(folders, spy, monkeypatch):
    import topkshape.gan.fidelity as fidelity

    monkeypatch.setattr(fidelity, "FEW_IMAGES", 1)
    fid_kid(*folders, kid_subset_size=2)
    assert spy[0]["save_cpu_ram"] is False


# --- inputs fid_kid refuses ------------------------------------------------------


def test_sample_files_are_the_folders_own_pngs_and_jpegs_sorted(tmp_path):
    for name in ("b.png", "a.jpg", "c.jpeg", "d.txt", "e.gif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.png").write_bytes(b"")
    assert [Path(p).name for p in sample_files(tmp_path)] == ["a.jpg", "b.png", "c.jpeg"]
    with pytest.raises(InputDataError, match="image folder not found: .*nope"):
        sample_files(tmp_path / "nope")


def test_a_folder_without_images_is_named_in_the_error(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match=f"no PNG or JPEG images directly in {empty}"):
        fid_kid(empty, folders[1], kid_subset_size=2, cuda=False)
    with pytest.raises(InputDataError, match=f"no PNG or JPEG images directly in {empty}"):
        fid_kid(folders[0], empty, kid_subset_size=2, cuda=False)


@pytest.mark.parametrize("which", [0, 1])
def test_images_of_two_sizes_in_either_folder_are_an_input_error(folders, which):
    Image.new("RGB", (5, 6), (0, 0, 0)).save(folders[which] / "99.png")
    with pytest.raises(InputDataError) as error:
        fid_kid(*folders, kid_subset_size=2, cuda=False)
    assert str(error.value) == (f"images in {folders[which]} differ in size ([(4, 4), (5, 6)]); torch-fidelity batches them, "
                                "so write same-size copies with prepare_real_images()")


@pytest.mark.parametrize("size", [1, 0, 2.0, True, "3"])
def test_kid_subset_size_must_be_an_integer_of_at_least_two(folders, size):
    with pytest.raises(ConfigError, match=f"kid_subset_size must be an integer >= 2, got {size!r}"):
        fid_kid(*folders, kid_subset_size=size, cuda=False)


def test_kid_subset_size_of_two_and_of_the_smaller_folder_are_accepted(folders, spy):
    Image.new("RGB", (4, 4)).save(folders[1] / "10.png")  # 3 generated, 4 real
    fid_kid(*folders, kid_subset_size=2, cuda=False)
    fid_kid(*folders, kid_subset_size=3, cuda=False)
    assert [call["kid_subset_size"] for call in spy] == [2, 3]


def test_kid_subset_size_above_the_smaller_folder_names_both_counts(folders, spy):
    generated, real = folders
    Image.new("RGB", (4, 4)).save(real / "10.png")
    message = f"kid_subset_size 4 exceeds the image count (3 generated in {generated}, 4 real in {real}); set it to at most 3"
    with pytest.raises(ConfigError) as error:
        fid_kid(generated, real, kid_subset_size=4, cuda=False)
    assert str(error.value) == message
    with pytest.raises(ConfigError, match="set it to at most 3"):
        fid_kid(real, generated, kid_subset_size=4, cuda=False)
    assert spy == []


def test_missing_feature_extractor_weights_are_an_input_error(folders, tmp_path, spy):
    with pytest.raises(InputDataError, match=f"feature extractor weights not found: {tmp_path / 'nope.pt'}"):
        fid_kid(*folders, kid_subset_size=2, feature_extractor_weights_path=str(tmp_path / "nope.pt"), cuda=False)
    with pytest.raises(InputDataError, match="weights not found"):
        fid_kid(*folders, kid_subset_size=2, feature_extractor_weights_path=tmp_path, cuda=False)  # a folder
    assert spy == []


# --- real images ---------------------------------------------------------------


def test_prepare_real_images_numbers_the_images_and_resizes_them_as_asked(tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    wide = Image.new("RGB", (20, 10), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 5, 10))  # the left quarter red
    wide.save(source / "wide.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(source / "sub" / "green.png")
    cropped = prepare_real_images(source, tmp_path / "cropped", 8)
    stretched = prepare_real_images(source, tmp_path / "stretched", 8, resize="stretch")
    assert cropped == tmp_path / "cropped"
    names = sorted(p.name for p in cropped.iterdir())
    assert names == sorted(p.name for p in stretched.iterdir())
    assert len(names) == 2 and {n[:6] for n in names} == {"00000_", "00001_"}
    assert {n[6:] for n in names} == {"wide.png", "green.png"}
    wide_name = next(n for n in names if n.endswith("wide.png"))
    for folder, red_seen in ((cropped, False), (stretched, True)):
        with Image.open(folder / wide_name) as image:
            assert image.size == (8, 8)
            assert (image.getpixel((0, 4))[0] > 200) is red_seen


# --- the classifier as a feature extractor -----------------------------------------

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class _PooledResNetLike(nn.Module):
    """A ``layer4`` whose map the head flattens (as the CIFAR ResNet does); records its input."""

    def __init__(self):
        super().__init__()
        self.layer4 = nn.Conv2d(3, 2, 1)
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        self.seen = x
        return self.head(F.adaptive_avg_pool2d(self.layer4(x), 4).flatten(1))


def _extractor(monkeypatch, model, image_size=224, features=("penultimate", "logits")):
    monkeypatch.setattr(fidelity, "_load_classifier", lambda path: model)
    cls = type("Extractor", (ClassifierFeatureExtractor,), {"model_path": "stand-in.pt", "image_size": image_size})
    return cls("stand-in", list(features))


def _normalised(x):
    return (x - IMAGENET_MEAN) / IMAGENET_STD


def test_an_image_at_the_resize_size_is_only_centre_cropped_and_normalised(monkeypatch):
    torch.manual_seed(0)
    model = _PooledResNetLike()
    extractor = _extractor(monkeypatch, model)
    x = torch.randint(0, 256, (2, 3, 256, 300), dtype=torch.uint8)
    penultimate, logits = extractor(x)
    # 224 px models: resize the short side to round(224 * 256 / 224) = 256, crop 224 from the middle.
    expected = _normalised(x.float()[..., 16:240, 38:262] / 255)
    assert torch.allclose(model.seen, expected, atol=1e-5)
    assert torch.allclose(penultimate, model.layer4(expected).mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(logits, model(expected), atol=1e-5)
    assert penultimate.shape == (2, 2) and logits.shape == (2, 3)
    assert penultimate.dtype == logits.dtype == torch.float32


@pytest.mark.parametrize(("shape", "resized", "image_size"), [((512, 600), (256, 300), 224), ((12, 20), (16, 27), 14)])
def test_the_short_side_is_resized_with_antialiasing_before_the_centre_crop(monkeypatch, shape, resized, image_size):
    torch.manual_seed(0)
    model = _PooledResNetLike()
    extractor = _extractor(monkeypatch, model, image_size=image_size)
    x = torch.randint(0, 256, (1, 3, *shape), dtype=torch.uint8)
    extractor(x)
    scaled = F.interpolate(x.float() / 255, size=resized, mode="bilinear", align_corners=False, antialias=True)
    top, left = (resized[0] - image_size) // 2, (resized[1] - image_size) // 2
    expected = _normalised(scaled[..., top:top + image_size, left:left + image_size])
    assert model.seen.shape == (1, 3, image_size, image_size)
    assert torch.allclose(model.seen, expected, atol=1e-5)


def test_features_come_in_the_order_asked_and_the_model_is_frozen(monkeypatch):
    model = _PooledResNetLike().train()
    extractor = _extractor(monkeypatch, model, features=("logits", "penultimate"))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    # The normalisation constants are not state: the extractor saves and loads as its model does.
    assert list(extractor.state_dict()) == [f"model.{key}" for key in model.state_dict()]
    logits, penultimate = extractor(torch.zeros(1, 3, 256, 256, dtype=torch.uint8))
    assert logits.shape == (1, 3) and penultimate.shape == (1, 2)
    (only,) = _extractor(monkeypatch, model, features=("logits",))(torch.zeros(1, 3, 256, 256, dtype=torch.uint8))
    assert only.shape == (1, 3)


def test_without_layer4_the_features_are_the_last_linear_layers_input(monkeypatch):
    model = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 4))
    extractor = _extractor(monkeypatch, model, image_size=14)
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    penultimate, logits = extractor(x)
    inputs = _normalised(x.float()[..., 1:15, 1:15] / 255)
    assert torch.allclose(penultimate, model[:6](inputs), atol=1e-5)
    assert torch.allclose(logits, model(inputs), atol=1e-5)


def test_a_model_without_layer4_or_linear_head_is_an_input_error(monkeypatch):
    with pytest.raises(InputDataError, match="stand-in.pt: no layer4 and no nn.Linear head"):
        _extractor(monkeypatch, nn.Sequential(nn.Conv2d(3, 2, 1)))


@pytest.mark.parametrize(("x", "described"), [
    (torch.zeros(1, 3, 8, 8), "torch.float32 (1, 3, 8, 8)"),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), "torch.uint8 (3, 8, 8)"),
    (torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "torch.uint8 (1, 1, 8, 8)"),
    ([[0]], "<class 'list'> ()"),
])
def test_anything_but_uint8_rgb_batches_is_refused_naming_what_came(monkeypatch, x, described):
    extractor = _extractor(monkeypatch, _PooledResNetLike())
    with pytest.raises(ValueError) as error:
        extractor(x)
    assert str(error.value) == f"expected uint8 images (N, 3, H, W), got {described}"


def test_the_extractor_describes_itself_to_torch_fidelity():
    assert ClassifierFeatureExtractor.get_provided_features_list() == ("penultimate", "logits")
    assert ClassifierFeatureExtractor.get_default_feature_layer_for_metric("isc") == "logits"
    for metric in ("fid", "kid", "prc"):
        assert ClassifierFeatureExtractor.get_default_feature_layer_for_metric(metric) == "penultimate"
    assert ClassifierFeatureExtractor.can_be_compiled() is False
    cls = type("Sized", (ClassifierFeatureExtractor,), {"image_size": 40})
    dummy = cls.get_dummy_input_for_compile()
    assert dummy.shape == (1, 3, 40, 40) and dummy.dtype == torch.uint8 and not dummy.any()


# --- registering a trained classifier -----------------------------------------------


def _save_classifier(path: Path, **changes) -> Path:
    from topkshape.classify.train import TrainSettings, build_classifier

    settings = TrainSettings(arch="resnet18_cifar", image_size=32, width=4, **changes)
    torch.manual_seed(0)
    model = build_classifier(settings, 3)
    state = dataclasses.asdict(settings)
    torch.save({"model": model.state_dict(), "classes": ["a", "b", "c"], "settings": state}, path)
    return path


def _topk_layers(extractor_cls):
    model = extractor_cls("x", ["penultimate"]).model
    return [m for m in model.modules() if isinstance(m, (TopK, TopKMeanReplace))]


@pytest.mark.parametrize(("variant", "kind", "ties"), [("topk", TopK, "exact"), ("topk_mean_rpl", TopKMeanReplace, "keep")])
def test_a_registered_classifier_runs_with_topk_as_it_was_trained(tmp_path, variant, kind, ties):
    path = _save_classifier(tmp_path / "model.pt", variant=variant, topk_fraction=0.3, ties=ties)
    cls = register_classifier_extractor(f"test-{variant}-{tmp_path.name}", path)
    layers = _topk_layers(cls)
    assert layers and all(type(m) is kind and m.fraction == 0.3 and m.ties == ties for m in layers)


def test_a_baseline_classifier_is_registered_without_topk(tmp_path):
    path = _save_classifier(tmp_path / "model.pt", variant="baseline")
    assert _topk_layers(register_classifier_extractor(f"test-baseline-{tmp_path.name}", path)) == []


def test_an_older_model_file_without_a_tie_rule_keeps_ties(tmp_path):
    path = _save_classifier(tmp_path / "model.pt", variant="topk", ties="exact")
    state = torch.load(path, weights_only=True)
    del state["settings"]["ties"]
    torch.save(state, path)
    layers = _topk_layers(register_classifier_extractor(f"test-old-{tmp_path.name}", path))
    assert layers and all(m.ties == "keep" for m in layers)


def test_registration_names_a_class_for_the_resolved_file_and_its_image_size(tmp_path, monkeypatch):
    _save_classifier(tmp_path / "model.pt", variant="topk")
    monkeypatch.chdir(tmp_path)
    name = f"test-resolved-{tmp_path.name}"
    cls = register_classifier_extractor(name, "model.pt")
    assert FEATURE_EXTRACTORS_REGISTRY[name] is cls
    assert cls.model_path == str(tmp_path.resolve() / "model.pt")
    assert cls.image_size == 32 and type(cls.image_size) is int
    assert cls.__name__ == f"ClassifierFeatureExtractor_{name}" and cls.__module__ == "topkshape.gan.fidelity"
    assert issubclass(cls, ClassifierFeatureExtractor)
    assert register_classifier_extractor(name, tmp_path / "sub" / ".." / "model.pt") is cls  # the same file


def test_a_taken_extractor_name_is_a_config_error_naming_its_owner(tmp_path):
    first = _save_classifier(tmp_path / "model.pt", variant="baseline")
    name = f"test-taken-{tmp_path.name}"
    register_classifier_extractor(name, first)
    with pytest.raises(ConfigError, match=rf"feature extractor '{name}' is already registered \(for {first.resolve()}\); choose another name"):
        register_classifier_extractor(name, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"'inception-v3-compat' is already registered \(for torch-fidelity\)"):
        register_classifier_extractor("inception-v3-compat", first)


# --- random Inception weights for offline tests ---------------------------------------


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    folder, workdir = tmp_path_factory.mktemp("inception"), tmp_path_factory.mktemp("cwd")
    before = torch.random.get_rng_state()
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        first = save_random_inception_weights(folder / "a.pt")  # the default seed, 0
    finally:
        os.chdir(cwd)
    after = torch.random.get_rng_state()
    again = save_random_inception_weights(folder / "b.pt", seed=0)
    other = save_random_inception_weights(folder / "c.pt", seed=1)
    return {"paths": (first, again, other), "rng_kept": torch.equal(before, after), "folder": folder,
            "left_in_cwd": list(workdir.iterdir())}


def test_random_inception_weights_follow_the_seed_are_he_normal_and_leave_global_state_alone(inception_weights):
    """One test, so that every check runs for each mutant of the function its fixture calls."""
    first, again, other = (torch.load(p, weights_only=True, mmap=True) for p in inception_weights["paths"])
    assert inception_weights["paths"][0] == inception_weights["folder"] / "a.pt"
    assert inception_weights["rng_kept"]
    assert inception_weights["left_in_cwd"] == []  # its scratch file went into a temporary folder
    assert list(first) == list(again)
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.weight"):  # mapped: read lazily
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["Conv2d_1a_3x3.conv.weight"], other["Conv2d_1a_3x3.conv.weight"])
    weights = first
    convs = [k for k, v in weights.items() if k.endswith("conv.weight") and v.dim() == 4]
    assert len(convs) > 90  # the keys of torch-fidelity's inception-v3-compat, which test_gan loads
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight"):
        w = weights[key]
        fan_in = w[0].numel()
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
        assert abs(w.mean().item()) < 0.1 * math.sqrt(2 / fan_in)
    fc = weights["fc.weight"]
    assert fc.std().item() == pytest.approx(1 / math.sqrt(fc.shape[1]), rel=0.02)
    assert abs(fc.mean().item()) < 0.02 / math.sqrt(fc.shape[1])
    assert not weights["fc.bias"].any()


def test_prepare_real_images_resamples_with_the_filter_asked_for(tmp_path):
    # A 2-px checkerboard scaled 20 -> 8 px: PIL's bilinear and bicubic filters give different pixels,
    # and the written copy must be the one the training loader makes with the same filter.
    source = tmp_path / "src"
    source.mkdir()
    board = np.kron((np.indices((10, 10)).sum(axis=0) % 2) * 255, np.ones((2, 2))).astype(np.uint8)
    Image.fromarray(np.stack([board] * 3, axis=-1)).save(source / "board.png")
    written = {}
    for resample in ("bilinear", "bicubic"):
        folder = prepare_real_images(source, tmp_path / resample, 8, resample=resample)
        with Image.open(folder / "00000_board.png") as image:
            written[resample] = np.asarray(image)
        np.testing.assert_array_equal(written[resample], np.asarray(square_image(source / "board.png", 8, "center_crop", resample)))
    assert not np.array_equal(written["bilinear"], written["bicubic"])

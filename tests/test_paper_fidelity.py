"""Differences from the paper's code that are now config values, each set to the paper's in config/paper.yaml:
GPU precision of Table 1, the FastGAN resize filter, and ImageNet's original training images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import yaml
from PIL import Image

from topkshape.classify.train import TrainSettings, autocast_dtype
from topkshape.config import validate_config
from topkshape.errors import ConfigError
from topkshape.gan.fidelity import prepare_real_images
from topkshape.gan.images import square_image
from topkshape.gan.settings import GanSettings
from workflow_support import ROOT

PAPER = {**yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), "imagenet_root": "/data/ILSVRC2012"}


def test_the_paper_config_takes_the_paper_codes_values():
    paper = validate_config(PAPER, check_paths=False)
    assert paper["train"]["precision"] == "fp32"
    assert paper["gan"]["resample"] == "bilinear"
    assert paper["gan"]["small_size"] == 128  # FastGAN's small path; the default's 64 is a toy-only shortcut
    assert paper["data"]["imagenet"]["resize_short_side"] is None


def test_precision_sets_the_autocast_dtype_on_a_gpu_and_never_on_the_cpu():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype("fp32", cuda) is None
    assert autocast_dtype("bf16", cuda) is torch.bfloat16
    assert autocast_dtype("bf16", cpu) is None and autocast_dtype("fp32", cpu) is None
    with pytest.raises(ConfigError, match="precision must be one of"):
        autocast_dtype("fp16", cuda)
    with pytest.raises(ConfigError, match="precision must be one of"):
        TrainSettings(precision="fp16")


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(path)
    return path


def test_bilinear_stretch_is_pixel_for_pixel_the_paper_codes_resize(photo):
    """The paper's FastGAN code: transforms.Resize((256, 256)) on a PIL image (bilinear, antialiased)."""
    with Image.open(photo) as image:
        reference = np.asarray(T.Resize((64, 64))(image.convert("RGB")))
    ours = np.asarray(square_image(photo, 64, "stretch", "bilinear"))
    assert np.array_equal(ours, reference)
    assert not np.array_equal(np.asarray(square_image(photo, 64, "stretch", "bicubic")), reference)
    with pytest.raises(ConfigError, match="resample must be one of"):
        square_image(photo, 64, "stretch", "lanczos")
    with pytest.raises(ConfigError, match="resample must be one of"):
        GanSettings(resample="nearest")


def test_fid_reals_are_resized_with_the_runs_filter(photo, tmp_path):
    out = prepare_real_images(photo.parent, tmp_path / "reals", 64, "stretch", "bilinear")
    (written,) = sorted(out.glob("*.png"))
    assert np.array_equal(np.asarray(Image.open(written)), np.asarray(square_image(photo, 64, "stretch", "bilinear")))


def test_figure_5_shows_the_configured_k_even_where_another_k_has_more_shape_bias():
    """model-vs-human's plotting fixes AlexNet at 10% and VGG16 at 5%; unlisted models keep the highest above chance."""
    import pandas as pd

    from topkshape.report.shape_bias import _chosen_rows

    rows = []
    for model in ("alexnet", "vgg16"):
        rows.append({"model": model, "mode": "plain", "K_percent": float("nan"), "shape_bias": 0.3, "not_above_chance": False,
                     "decision_maker": f"{model}-plain"})
        for k, bias in ((5.0, 0.40), (10.0, 0.45), (20.0, 0.60)):
            rows.append({"model": model, "mode": "topk", "K_percent": k, "shape_bias": bias, "not_above_chance": False,
                         "decision_maker": f"{model}-topk-{k:g}"})
    table = pd.DataFrame(rows)
    fixed = {row["decision_maker"] for row in _chosen_rows(table, {"alexnet": 0.1, "vgg16": 0.05})}
    assert fixed == {"alexnet-plain", "alexnet-topk-10", "vgg16-plain", "vgg16-topk-5"}
    free = {row["decision_maker"] for row in _chosen_rows(table, {"alexnet": 0.1})}
    assert free == {"alexnet-plain", "alexnet-topk-10", "vgg16-plain", "vgg16-topk-20"}

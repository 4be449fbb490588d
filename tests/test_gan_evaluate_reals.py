"""FID/KID compare the generator with the real images as its training saw them (its own resize mode)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from topkshape.errors import InputDataError
from topkshape.gan.evaluate import prepare_run_reals
from topkshape.gan.train import GENERATOR_EMA, GanSettings, build_generator


def write_run(run_dir, resize):
    settings = GanSettings(im_size=64, ngf=4, nz=8, resize=resize)
    run_dir.mkdir(parents=True)
    torch.save({"generator": build_generator(settings).state_dict(), "settings": dataclasses.asdict(settings)},
               run_dir / GENERATOR_EMA)
    return run_dir


@pytest.fixture
def wide_reals(tmp_path):
    """Non-square reals, 60 x 20: a red, a green and a blue band of 20 px side by side."""
    folder = tmp_path / "real" / "train" / "cls"
    folder.mkdir(parents=True)
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20, 0] = pixels[:, 20:40, 1] = pixels[:, 40:, 2] = 255
    for i in range(2):
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return tmp_path / "real"


def band_colours(folder):
    """The dominant channel at the left edge, the centre and the right edge of each prepared image."""
    colours = []
    for path in sorted(folder.glob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB")).astype(int)
        assert image.shape == (64, 64, 3)
        colours.append([int(np.argmax(image[32, x])) for x in (1, 32, 62)])
    return colours


def test_a_stretch_run_is_scored_against_stretched_reals(tmp_path, wide_reals):
    run = write_run(tmp_path / "run_stretch", "stretch")
    # Stretched, all three bands stay in the picture: red left, green centre, blue right.
    assert band_colours(prepare_run_reals(run, wide_reals, tmp_path / "prepared")) == [[0, 1, 2]] * 2


def test_a_center_crop_run_is_scored_against_centre_crops(tmp_path, wide_reals):
    run = write_run(tmp_path / "run_crop", "center_crop")
    # 60 x 20 scaled to 192 x 64, centre 64 px: only the green band remains.
    assert band_colours(prepare_run_reals(run, wide_reals, tmp_path / "prepared")) == [[1, 1, 1]] * 2


def test_a_generator_file_without_settings_is_refused_in_one_line(tmp_path, wide_reals):
    run = tmp_path / "bad"
    run.mkdir()
    torch.save({"generator": {}}, run / GENERATOR_EMA)
    with pytest.raises(InputDataError, match=GENERATOR_EMA):
        prepare_run_reals(run, wide_reals, tmp_path / "prepared")

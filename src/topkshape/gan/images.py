"""The few-shot training images: found, read and squared the same way for training and for FID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.settings import RESAMPLE_MODES, RESIZE_MODES

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def find_images(image_dir: str | Path) -> list[Path]:
    """PNG and JPEG files under ``image_dir`` (recursively), sorted; InputDataError if none."""
    root = Path(image_dir)
    if not root.is_dir():
        raise InputDataError(f"image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise InputDataError(f"no PNG or JPEG images under {root}")
    return paths


RESAMPLE_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def square_image(path: str | Path, size: int, resize: str = "center_crop", resample: str = "bicubic") -> Image.Image:
    """RGB image of ``size`` x ``size``: shorter side scaled then centre-cropped, or stretched.

    ``resample``: PIL's filter, ``"bilinear"`` (torchvision's ``Resize`` on a PIL image: the
    paper code's ``transforms.Resize((256, 256))``) or ``"bicubic"``.
    """
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if resample not in RESAMPLE_MODES:
        raise ConfigError(f"resample must be one of {RESAMPLE_MODES}, got {resample!r}")
    method = RESAMPLE_FILTERS[resample]
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except OSError as error:
        raise InputDataError(f"cannot read image {path}: {error}") from None
    if resize == "stretch":
        return image.resize((size, size), method)
    width, height = image.size
    scale = size / min(width, height)
    scaled = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), method)
    left = (scaled.width - size) // 2
    top = (scaled.height - size) // 2
    return scaled.crop((left, top, left + size, top + size))


def load_training_images(image_dir: str | Path, size: int, resize: str = "center_crop", resample: str = "bicubic") -> Tensor:
    """All images under ``image_dir`` as one uint8 ``(N, 3, size, size)`` tensor (few-shot sets are small)."""
    arrays = [np.asarray(square_image(p, size, resize, resample)) for p in find_images(image_dir)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

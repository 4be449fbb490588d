"""A miniature ILSVRC2012 folder in the layout the paper config reads (``train/<wnid>/``, ``val/<wnid>/``).

Real photographs where we have them for a WNID (e.g. the paper's few-shot sets, which are
ImageNet training images), generated pictures otherwise: a smooth random colour field with a
filled ellipse, different per class and image, as JPEG of ImageNet-like size.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = (320, 256)  # width, height: not square, so resizing and cropping are exercised


def generated_image(wnid: str, index: int, size: tuple[int, int] = IMAGE_SIZE) -> Image.Image:
    """A reproducible picture for (``wnid``, ``index``): low-frequency colour noise and one ellipse."""
    rng = np.random.default_rng(zlib.crc32(f"{wnid}/{index}".encode()))
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    w, h = size
    x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
    draw.ellipse((x0, y0, x0 + w // 3, y0 + h // 3), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def write_imagenet_tree(
    root: str | Path,
    wnids: Sequence[str],
    *,
    train_per_class: int,
    val_per_class: int,
    photos: Mapping[str, Sequence[Path]] | None = None,
) -> Path:
    """Write ``root/train/<wnid>/<wnid>_<i>.JPEG`` and ``root/val/<wnid>/ILSVRC2012_val_<wnid>_<i>.JPEG``.

    ``photos[wnid]``: real images of that class, copied byte for byte before generated ones
    fill up the count. An existing tree is replaced.
    """
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    photos = photos or {}
    for wnid in wnids:
        real = list(photos.get(wnid, ()))
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for index in range(count):
                name = f"{wnid}_{index}.JPEG" if split == "train" else f"ILSVRC2012_val_{wnid}_{index}.JPEG"
                if real:
                    shutil.copyfile(real.pop(0), folder / name)
                else:
                    generated_image(wnid, index + (0 if split == "train" else 10_000)).save(folder / name, quality=90)
    return root

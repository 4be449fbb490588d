"""Stylise an ImageFolder into a new ImageFolder with the same classes and labels.

Used to build stylised evaluation sets (in the spirit of Stylized-ImageNet, Geirhos et
al. 2019): the content keeps its label, the texture comes from a style image, so a
classifier that still answers correctly relies on shape.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from topkshape.atomic import atomic_directory
from topkshape.errors import ConfigError, InputDataError
from topkshape.stylize.adain import AdaINStylizer

# torchvision's ImageFolder extensions, so we stylise exactly the images it would read.
CONTENT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
STYLE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CSV_NAME = "styles.csv"
CSV_COLUMNS = ["image", "label", "style", "texture_label"]
MANIFEST_NAME = "manifest.json"


def list_style_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted jpg/jpeg/png files directly in ``folder``; sorting makes the style choice reproducible."""
    root = Path(folder)
    if not root.is_dir():
        raise InputDataError(f"style folder not found: {root}")
    found = sorted(
        p for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in STYLE_EXTENSIONS
    )
    if not found:
        raise InputDataError(f"no style images (jpg, jpeg, png) in {root}")
    return found


def _list_content(src: Path) -> list[tuple[str, Path]]:
    """(class name, image path) in sorted order; classes and files as ImageFolder finds them."""
    if not src.is_dir():
        raise InputDataError(f"image folder not found: {src}")
    classes = sorted(d.name for d in src.iterdir() if d.is_dir() and not d.name.startswith("."))
    items: list[tuple[str, Path]] = []
    for label in classes:
        files = sorted(
            p for p in (src / label).rglob("*")
            if p.is_file() and p.suffix.lower() in CONTENT_EXTENSIONS
        )
        if not files:
            # ImageFolder refuses such a class; dropping it would shift every later label index.
            raise InputDataError(f"class folder {src / label} has no images")
        items += [(label, p) for p in files]
    if not items:
        raise InputDataError(f"no class folders with images in {src}")
    return items


def _read_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputDataError(f"cannot read image {path}: {e}") from None


def prepare_image(img: Image.Image, size: int | None, crop: bool = False) -> Image.Image:
    """pytorch-AdaIN's ``test_transform``: shorter side to ``size`` (bilinear), then a centre crop if asked.

    Content and style are each prepared with their own size (``content_size``/``style_size``
    there), independently of each other. ``None`` keeps the image as it is.
    """
    if size is None:
        return img
    return TF.center_crop(TF.resize(img, size), size) if crop else TF.resize(img, size)


def _to_tensor(img: Image.Image) -> Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)


def _to_image(x: Tensor) -> Image.Image:
    arr = x.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def _output_path(src: Path, label: str, image: Path) -> Path:
    return Path(label) / image.relative_to(src / label).with_suffix(".png")


def _check_paths(src: Path, out: Path) -> None:
    """Refuse layouts where replacing ``out`` would delete the source or nest in it."""
    s, o = src.resolve(), out.resolve()
    if s == o or o in s.parents:
        raise ConfigError(f"out_dir {out} would replace the source folder {src}")
    if s in o.parents:
        raise ConfigError(f"out_dir {out} is inside the source folder {src}; it would become a class")


def stylize_image_folder(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    style_images: Sequence[str | os.PathLike],
    stylizer: AdaINStylizer,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    size: int | None = 256,
    style_size: int | None = 512,
    crop: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Stylise every image of ``src_dir`` into ``out_dir`` (PNG, same classes) and return the CSV rows.

    Content images are prepared with ``size`` and style images with ``style_size`` (shorter
    side, then a centre crop if ``crop``), each on its own, as pytorch-AdaIN's ``test.py`` does
    with ``content_size``/``style_size`` (512 there by default); a style is never stretched
    to the content's shape. Each image gets one style drawn from ``seed`` over the sorted style
    list, so two runs assign identically. ``out_dir`` appears only when complete, with
    ``styles.csv`` and a ``manifest.json`` (settings, style and output hashes). ``stylizer`` is
    moved to ``device``.
    """
    src, out = Path(src_dir), Path(out_dir)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    for name, value in (("size", size), ("style_size", style_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be a positive integer or None, got {value}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    _check_paths(src, out)
    items = _list_content(src)
    styles = sorted(Path(p) for p in style_images)
    if not styles:
        raise InputDataError("no style images given")
    names = [p.name for p in styles]
    if len(set(names)) != len(names):
        raise InputDataError("style image file names must be unique: styles.csv records only the name")
    style_pil = [prepare_image(_read_rgb(p), style_size, crop) for p in styles]  # fail on a bad style before any work
    choice = np.random.default_rng(seed).integers(0, len(styles), size=len(items))

    stylizer = stylizer.to(device).eval()
    with torch.inference_mode():
        style_features = [stylizer.encoder(_to_tensor(img).unsqueeze(0).to(device)) for img in style_pil]
    rows: list[dict[str, str]] = []
    outputs: dict[str, str] = {}
    with atomic_directory(out) as tmp, tqdm(
        total=len(items), unit="img", desc="stylize", disable=None if progress else True
    ) as bar:
        for start in range(0, len(items), batch_size):
            batch = [
                (label, path, int(choice[i]), prepare_image(_read_rgb(path), size, crop))
                for i, (label, path) in enumerate(items[start:start + batch_size], start)
            ]
            # One forward per (content size, style): contents of a size stack, a style's features broadcast.
            groups: dict[tuple[int, int, int], list[int]] = {}
            for j, (_, _, k, img) in enumerate(batch):
                groups.setdefault((*img.size, k), []).append(j)
            results: dict[int, Image.Image] = {}
            for (w, h, k), idx in groups.items():
                content = torch.stack([_to_tensor(batch[j][3]) for j in idx]).to(device)
                with torch.inference_mode():
                    stylized = stylizer.transfer(content, style_features[k], alpha=alpha)
                # Ceil-mode pooling pads bottom/right, so the top-left crop is aligned with the input.
                stylized = stylized[:, :, :h, :w]
                for j, x in zip(idx, stylized):
                    results[j] = _to_image(x)
            for j, (label, path, k, _) in enumerate(batch):
                rel = _output_path(src, label, path)
                if (tmp / rel).exists():
                    raise InputDataError(f"{path} and another image both map to {out / rel}")
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                results[j].save(tmp / rel, format="PNG")
                outputs[rel.as_posix()] = hashlib.sha256((tmp / rel).read_bytes()).hexdigest()
                rows.append({"image": rel.as_posix(), "label": label, "style": names[k], "texture_label": ""})
            bar.update(len(batch))
        table = pd.DataFrame(rows, columns=CSV_COLUMNS)
        table.to_csv(tmp / CSV_NAME, index=False)
        manifest = {
            "method": "adain",
            "settings": {"alpha": alpha, "seed": seed, "content_size": size, "style_size": style_size, "crop": crop},
            "styles": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in styles},
            "files": outputs,
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return table

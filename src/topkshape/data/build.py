"""Build each dataset of the workflow from the configuration: one entry per rule.

The data source (``synthetic`` or ``imagenet``) and the stylization method
(``texture_swap`` or ``adain``) are config values; both branches write the same
layout, so everything downstream runs unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from topkshape.atomic import atomic_directory
from topkshape.data.shapes import TEXTURES, render_texture
from topkshape.data.synthetic import write_cue_conflict_set, write_fewshot_set, write_shape_subset


def make_subset(config: dict[str, Any], name: str, out_dir: str | Path, *, threads: int = 1, progress: bool = True) -> None:
    """Subset ``name`` (train/ and val/) from generated shapes or from ImageNet."""
    data = config["data"]
    classes = data["subsets"][name]
    if data["source"] == "synthetic":
        syn = data["synthetic"]
        write_shape_subset(
            out_dir,
            classes,
            image_size=syn["image_size"],
            train_per_class=syn["train_per_class"],
            val_per_class=syn["val_per_class"],
            texture_correlation=syn["texture_correlation"],
            seed=syn["seed"] + _stable_offset(name),
            threads=threads,
            progress=progress,
        )
    else:
        _extract(config, classes, out_dir, ("train", "val"), data["imagenet"]["max_train_per_class"], threads, progress)


def make_fewshot(config: dict[str, Any], name: str, out_dir: str | Path, *, threads: int = 1, progress: bool = True) -> None:
    """Few-shot synthesis set ``name``: ``fewshot_images`` training images of one class."""
    data = config["data"]
    cls = data["fewshot"][name]
    if data["source"] == "synthetic":
        write_fewshot_set(
            out_dir,
            cls,
            count=data["fewshot_images"],
            image_size=data["synthetic"]["image_size"],
            seed=data["synthetic"]["seed"],
            threads=threads,
            progress=progress,
        )
    else:
        _extract(config, [cls], out_dir, ("train",), data["fewshot_images"], threads, progress)


def _extract(config: dict[str, Any], wnids: list[str], out_dir, splits: tuple[str, ...], max_per_class: int | None, threads: int, progress: bool) -> None:
    """ImageNet extraction with the configured resizing, JPEG quality and corrupt-file policy."""
    from topkshape.data.imagenet import extract_subset

    opts = config["data"]["imagenet"]
    extract_subset(
        config["imagenet_root"],
        wnids,
        out_dir,
        splits=splits,
        max_per_class=max_per_class,
        seed=opts["seed"],
        resize_short_side=opts["resize_short_side"],
        jpeg_quality=opts["jpeg_quality"],
        on_corrupt=opts["on_corrupt"],
        threads=threads,
        progress=progress,
    )


def make_builtin_styles(config: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``num_styles`` generated full-frame texture images: AdaIN styles that need no download."""
    opts = config["stylize"]
    rng = np.random.default_rng(opts["seed"])
    count = opts["num_styles"]
    picks = rng.choice(len(TEXTURES), size=count, replace=count > len(TEXTURES))
    written = []
    with atomic_directory(out_dir) as tmp:
        for i, index in enumerate(picks):
            texture = list(TEXTURES)[index]
            name = f"style_{i:02d}_{texture}.png"
            render_texture(texture, opts["image_size"], int(rng.integers(2**31))).save(tmp / name)
            written.append(Path(out_dir) / name)
    return written


def make_stylized(
    config: dict[str, Any],
    name: str,
    subset_dir: str | Path,
    out_dir: str | Path,
    *,
    style_dir: str | Path | None = None,
    encoder_path: str | Path | None = None,
    decoder_path: str | Path | None = None,
    threads: int = 1,
    progress: bool = True,
) -> None:
    """The stylized evaluation set of subset ``name``: ``<class>/<image>`` + ``styles.csv``."""
    opts = config["stylize"]
    classes = config["data"]["subsets"][name]
    if opts["method"] == "texture_swap":
        write_cue_conflict_set(
            out_dir,
            classes,
            image_size=config["data"]["synthetic"]["image_size"],
            per_class=opts["per_class"],
            seed=opts["seed"] + _stable_offset(name),
            threads=threads,
            progress=progress,
        )
        return
    import torch

    from topkshape.stylize.adain import AdaINStylizer
    from topkshape.stylize.folder import list_style_images, stylize_image_folder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    stylizer = AdaINStylizer.from_files(encoder_path, decoder_path, device=device)
    stylize_image_folder(
        Path(subset_dir) / "val",
        out_dir,
        list_style_images(style_dir),
        stylizer,
        alpha=opts["alpha"],
        seed=opts["seed"],
        size=opts["image_size"],
        device=device,
        progress=progress,
    )


def _stable_offset(name: str) -> int:
    """Different subsets get different images from the same base seed."""
    return sum(ord(ch) * 131**i for i, ch in enumerate(name)) % 100_003

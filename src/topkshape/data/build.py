"""Build each dataset of the workflow: one entry per rule, taking exactly the values that rule passes.

The data source (``synthetic`` or ``imagenet``), the paper's published few-shot sets and the
stylization method (``texture_swap`` or ``adain``) are config values; every branch writes the
same layout (``train/<class>/``, ``val/<class>/``, a manifest), so everything downstream runs
unchanged. Each function takes its values explicitly, never the whole config, so the rule's
declared ``params`` are all a job depends on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from topkshape.atomic import atomic_directory
from topkshape.data.shapes import TEXTURES, render_texture
from topkshape.data.synthetic import (
    write_cue_conflict_set,
    write_fewshot_set,
    write_shape_subset,
)
from topkshape.errors import ConfigError, InputDataError

FOLDER_MANIFEST = "manifest.json"


def make_subset(name: str, classes: Sequence[str], out_dir: str | Path, *, source: str, options: Mapping[str, Any],
                imagenet_root: str | None = None, threads: int = 1, progress: bool = True) -> None:
    """Subset ``name`` (train/ and val/) of ``classes`` from generated shapes or from ImageNet.

    ``options`` is ``data.synthetic`` or ``data.imagenet``, whichever ``source`` names.
    """
    if source == "synthetic":
        write_shape_subset(
            out_dir,
            classes,
            image_size=options["image_size"],
            train_per_class=options["train_per_class"],
            val_per_class=options["val_per_class"],
            diagnostic_per_class=options["diagnostic_per_class"],
            texture_correlation=options["texture_correlation"],
            texture_colours=options["texture_colours"],
            home_textures=options.get("home_textures"),
            seed=options["seed"] + _stable_offset(name),
            threads=threads,
            progress=progress,
        )
    elif source == "imagenet":
        _extract(imagenet_root, classes, out_dir, ("train", "val"), options["max_train_per_class"], options, threads, progress)
    else:
        raise ConfigError(f"data.source must be synthetic or imagenet, got {source!r}")


def make_fewshot(name: str, cls: str | None, out_dir: str | Path, *, source: str | None, count: int | None,
                 options: Mapping[str, Any] | None, imagenet_root: str | None = None,
                 paper_folder: str | Path | None = None, paper_images: int | None = None, threads: int = 1,
                 progress: bool = True) -> None:
    """Few-shot synthesis set ``name``: ``count`` training images of class ``cls``.

    With ``paper_folder`` (a verified part of the paper's published data) the paper's set is
    used whole, as the paper trained on it (or its first ``paper_images`` in name order), and
    ``source``/``count``/``options`` do not apply.
    """
    if paper_folder is not None:
        copy_paper_fewshot(paper_folder, out_dir, max_images=paper_images)
    elif source == "synthetic":
        write_fewshot_set(
            out_dir,
            cls,
            count=count,
            image_size=options["image_size"],
            home_textures=options.get("home_textures"),
            seed=options["seed"],
            threads=threads,
            progress=progress,
        )
    elif source == "imagenet":
        _extract(imagenet_root, [cls], out_dir, ("train",), count, options, threads, progress)
    else:
        raise ConfigError(f"data.source must be synthetic or imagenet, got {source!r}")


def copy_paper_fewshot(paper_folder: str | Path, out_dir: str | Path, *, max_images: int | None = None) -> Path:
    """Copy a fetched paper few-shot part to ``out_dir/train/<set>/`` with its ``manifest.json``.

    The images are copied byte for byte (no re-encoding), so they stay the pinned files.
    ``max_images``: only the first that many in name order (None: the whole set).
    """
    source = Path(paper_folder)
    record_path = source / FOLDER_MANIFEST
    if not record_path.is_file():
        raise InputDataError(f"{source} is not a fetched paper data folder (no {FOLDER_MANIFEST})")
    record = json.loads(record_path.read_text())
    label = Path(record["folder"]).name
    with atomic_directory(out_dir) as tmp:
        target = tmp / "train" / label
        target.mkdir(parents=True)
        chosen = sorted(record["files"])[:max_images] if max_images is not None else list(record["files"])
        for rel in chosen:
            shutil.copyfile(source / rel, target / rel)
        files = {f"train/{label}/{rel}": record["files"][rel] for rel in chosen}
        manifest = {"source": "paper_data", "repository": record["repository"], "commit": record["commit"],
                    "folder": record["folder"], "files": files}
        (tmp / FOLDER_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        (tmp / "classes.csv").write_text(f"index,name\n0,{label}\n")
    return Path(out_dir)


def _extract(imagenet_root: str | None, wnids: Sequence[str], out_dir: str | Path, splits: tuple[str, ...],
             max_per_class: int | None, options: Mapping[str, Any], threads: int, progress: bool) -> None:
    """ImageNet extraction with the configured resizing, JPEG quality and corrupt-file policy."""
    from topkshape.data.imagenet import extract_subset

    if not imagenet_root:
        raise ConfigError("config key 'imagenet_root': required when data.source is imagenet (the ILSVRC2012 folder)")
    extract_subset(
        imagenet_root,
        list(wnids),
        out_dir,
        splits=splits,
        max_per_class=max_per_class,
        seed=options["seed"],
        resize_short_side=options["resize_short_side"],
        jpeg_quality=options["jpeg_quality"],
        on_corrupt=options["on_corrupt"],
        threads=threads,
        progress=progress,
    )


def make_builtin_styles(out_dir: str | Path, *, count: int, image_size: int, seed: int) -> list[Path]:
    """``count`` generated full-frame texture images of ``image_size`` px: AdaIN styles that need no download."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(TEXTURES), size=count, replace=count > len(TEXTURES))
    written = []
    with atomic_directory(out_dir) as tmp:
        for i, index in enumerate(picks):
            texture = list(TEXTURES)[index]
            name = f"style_{i:02d}_{texture}.png"
            render_texture(texture, image_size, int(rng.integers(2**31))).save(tmp / name)
            written.append(Path(out_dir) / name)
    return written


def make_stylized(
    name: str,
    classes: Sequence[str],
    subset_dir: str | Path,
    out_dir: str | Path,
    *,
    options: Mapping[str, Any],
    image_size: int | None = None,
    home_textures: Mapping[str, str] | None = None,
    style_dir: str | Path | None = None,
    encoder_path: str | Path | None = None,
    decoder_path: str | Path | None = None,
    threads: int = 1,
    progress: bool = True,
) -> None:
    """The stylized evaluation set of subset ``name``: ``<class>/<image>``, ``styles.csv``, ``manifest.json``.

    ``options`` is the ``stylize`` config section. ``texture_swap`` renders the cue-conflict
    set at ``image_size`` in the ``home_textures`` (``data.synthetic``'s); ``adain`` stylizes ``subset_dir/val``
    with the style images of ``style_dir`` and the given weights.
    """
    method = options["method"]
    if method == "texture_swap":
        if image_size is None:
            raise ConfigError("texture_swap needs the image size of the generated data (data.synthetic.image_size)")
        write_cue_conflict_set(
            out_dir,
            classes,
            image_size=image_size,
            per_class=options["per_class"],
            home_textures=home_textures,
            seed=options["seed"] + _stable_offset(name),
            threads=threads,
            progress=progress,
        )
        return
    if method != "adain":
        raise ConfigError(f"stylize.method must be texture_swap or adain, got {method!r}")
    if style_dir is None or encoder_path is None or decoder_path is None:
        raise ConfigError("stylize.method adain needs a style folder and the encoder and decoder weights")
    import torch

    from topkshape.stylize.adain import AdaINStylizer
    from topkshape.stylize.folder import list_style_images, stylize_image_folder

    torch.set_num_threads(threads)  # the rule's threads, not every core of the node
    device = "cuda" if torch.cuda.is_available() else "cpu"
    stylizer = AdaINStylizer.from_files(encoder_path, decoder_path, device=device)
    stylize_image_folder(
        Path(subset_dir) / "val",
        out_dir,
        list_style_images(style_dir),
        stylizer,
        alpha=options["alpha"],
        seed=options["seed"],
        size=options["image_size"] or None,
        style_size=options["style_size"] or None,
        crop=options["crop"],
        device=device,
        progress=progress,
    )


def _stable_offset(name: str) -> int:
    """Different subsets get different images from the same base seed."""
    return sum(ord(ch) * 131**i for i, ch in enumerate(name)) % 100_003

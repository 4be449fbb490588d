"""Common corruptions (Hendrycks & Dietterich 2019, ImageNet-C) of a validation set, and a model's accuracy on them.

The corruptions are the ``imagecorruptions`` package's (its maintained fork ``imagecorruptions-imaug``,
which runs on NumPy 2 and current scikit-image; the same 15 functions and severities). Each image is
corrupted at its stored size, seeded per (corruption, severity, image), so the set is the same on every
run and in any order: every corruption draws from NumPy's global generator, and two of them
(``impulse_noise``, ``glass_blur``) take an explicit seed besides.

Layout: ``<out>/<corruption>/<severity>/<class>/<image>.png`` and a ``manifest.json`` (settings and the
SHA-1 of every file, the set's identity for later jobs).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from topkshape.atomic import atomic_directory
from topkshape.errors import ConfigError, InputDataError

COMMON_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
"""ImageNet-C's 15 test corruptions, in its order (noise, blur, weather, digital)."""
SEVERITIES = (1, 2, 3, 4, 5)
_SEEDED = {"impulse_noise", "glass_blur"}  # these take a seed argument (they draw from their own generators)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".JPEG", ".bmp"}


def check_corruptions(names: Sequence[str], severities: Sequence[int]) -> None:
    """One line naming the first unknown corruption or severity."""
    for name in names:
        if name not in COMMON_CORRUPTIONS:
            raise ConfigError(f"unknown corruption {name!r}; choose from {list(COMMON_CORRUPTIONS)}")
    for severity in severities:
        if severity not in SEVERITIES:
            raise ConfigError(f"corruption severity must be one of {list(SEVERITIES)}, got {severity!r}")


def corruption_seed(seed: int, name: str, severity: int, image: str) -> int:
    """A per-image seed from stable hashes (independent of order and process), below 2**32 as NumPy's legacy seeding needs."""
    words = [seed, zlib.crc32(name.encode()), severity, zlib.crc32(image.encode())]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def corrupt_image(image: Image.Image, name: str, severity: int, seed: int) -> Image.Image:
    """``image`` (RGB) with corruption ``name`` at ``severity``, seeded."""
    from imagecorruptions import corrupt

    np.random.seed(seed)
    extra: dict[str, Any] = {"seed": seed} if name in _SEEDED else {}
    array = corrupt(np.asarray(image.convert("RGB")), severity=severity, corruption_name=name, **extra)
    return Image.fromarray(np.asarray(array, dtype=np.uint8))


def _images(folder: Path, classes: Sequence[str]) -> list[tuple[str, Path]]:
    found = []
    for cls in classes:
        class_dir = folder / cls
        if not class_dir.is_dir():
            raise InputDataError(f"{folder}: no folder for class {cls!r}")
        found += [(cls, p) for p in sorted(class_dir.iterdir()) if p.suffix in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not found:
        raise InputDataError(f"{folder}: no images to corrupt")
    return found


def write_corrupted_sets(
    val_dir: str | Path,
    out_dir: str | Path,
    classes: Sequence[str],
    *,
    corruptions: Sequence[str] = COMMON_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    per_class: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Corrupt the first ``per_class`` images of each class of ``val_dir`` (all with None) by every
    corruption at every severity; returns the manifest. The folder is complete or absent."""
    check_corruptions(corruptions, severities)
    val_dir, out_dir = Path(val_dir), Path(out_dir)
    by_class: dict[str, list[Path]] = {}
    for cls, path in _images(val_dir, classes):
        by_class.setdefault(cls, []).append(path)
    chosen = [(cls, path) for cls in classes for path in by_class.get(cls, [])[:per_class]]
    jobs = [(name, severity, cls, path) for name in corruptions for severity in severities for cls, path in chosen]
    files: dict[str, str] = {}
    with atomic_directory(out_dir) as tmp:
        decoded: dict[Path, Image.Image] = {}
        for name, severity, cls, path in tqdm(jobs, desc=f"corrupt {val_dir.parent.name}", disable=None if progress else True, leave=False):
            if path not in decoded:
                decoded[path] = Image.open(path).convert("RGB")
            rel = f"{name}/{severity}/{cls}/{path.stem}.png"
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            corrupt_image(decoded[path], name, severity, corruption_seed(seed, name, severity, f"{cls}/{path.name}")).save(target, compress_level=1)
            files[rel] = hashlib.sha1(target.read_bytes()).hexdigest()
        manifest = {
            "method": "imagecorruptions",
            "settings": {"classes": list(classes), "corruptions": list(corruptions), "severities": list(severities),
                         "per_class": per_class, "seed": seed},
            "sources": {f"{cls}/{path.name}": hashlib.sha1(path.read_bytes()).hexdigest() for cls, path in chosen},
            "files": files,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        pd.DataFrame({"index": range(len(classes)), "name": sorted(classes)}).to_csv(tmp / "classes.csv", index=False)
    return manifest


def corruption_accuracies(model, classes: Sequence[str], corrupted_dir: str | Path, image_size: int, *,
                          batch_size: int = 64, device: str | None = None) -> pd.DataFrame:
    """Accuracy of ``model`` on every (corruption, severity) of a :func:`write_corrupted_sets` folder,
    through the clean set's evaluation transform: columns corruption, severity, correct, images, accuracy."""
    import torch
    from torch.utils.data import DataLoader

    from topkshape.classify.data import LabelledImageFolder, eval_transform
    from topkshape.classify.evaluate import predict

    corrupted_dir = Path(corrupted_dir)
    record_path = corrupted_dir / "manifest.json"
    if not record_path.is_file():
        raise InputDataError(f"{corrupted_dir} is not a corrupted set (no manifest.json)")
    settings = json.loads(record_path.read_text())["settings"]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev)
    rows = []
    for name in settings["corruptions"]:
        for severity in settings["severities"]:
            dataset = LabelledImageFolder(corrupted_dir / name / str(severity), list(classes), eval_transform(image_size))
            pred, target = predict(model, DataLoader(dataset, batch_size=batch_size, shuffle=False), dev)
            correct = int((pred == target).sum())
            rows.append({"corruption": name, "severity": int(severity), "correct": correct, "images": len(target),
                         "accuracy": correct / len(target)})
    return pd.DataFrame(rows)


def evaluate_trained_models(subset: str, runs: Sequence[dict[str, Any]], model_paths: Sequence[str | Path],
                            corrupted_dir: str | Path, out_csv: str | Path, *, batch_size: int = 64,
                            threads: int | None = None) -> pd.DataFrame:
    """Each Table 1 model (``runs[i]``: its variant and seed; ``model_paths[i]``: its ``model.pt``), loaded
    as trained, on every corrupted set of ``subset``: one CSV of Table 1b's ``COLUMNS``."""
    import torch

    from topkshape.atomic import atomic_file
    from topkshape.classify.trained import load_as_trained

    if len(runs) != len(model_paths):
        raise ValueError(f"{len(runs)} runs but {len(model_paths)} model files")
    if threads:
        torch.set_num_threads(threads)
    frames = []
    for run, path in zip(runs, model_paths):
        model, classes = load_as_trained(path)
        frame = corruption_accuracies(model, classes, corrupted_dir, model.image_size, batch_size=batch_size)
        frames.append(frame.assign(subset=subset, variant=run["variant"], seed=int(run["seed"])))
    table = pd.concat(frames, ignore_index=True)[["subset", "variant", "seed", "corruption", "severity", "correct", "images", "accuracy"]]
    with atomic_file(Path(out_csv)) as tmp:
        table.to_csv(tmp, index=False)
    return table

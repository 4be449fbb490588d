"""Class subsets of a user's ILSVRC2012 copy, for the paper's ImageNet-subset experiments.

ImageNet cannot be downloaded for the user, so this reads the folder they already have:
``root/train/<wnid>/*.JPEG`` and a validation split either as ``root/val/<wnid>/`` folders
or as the flat Kaggle layout (``root/val/*.JPEG`` labelled by ``LOC_val_solution.csv``).
The subset is written resized, re-encoded and checksummed, in the layout torchvision's
``ImageFolder`` reads, all inside one atomic folder so a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
import sys
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile
from tqdm import tqdm

from topkshape.atomic import atomic_directory
from topkshape.errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
ON_CORRUPT = ("skip", "stop")
IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})
VAL_SOLUTION = "LOC_val_solution.csv"
MANIFEST_COLUMNS = ("path", "source", "wnid", "split", "sha1", "status", "error")


# --- finding the images -------------------------------------------------------------------


def find_imagenet_images(
    root: str | os.PathLike, wnids: Iterable[str], splits: Sequence[str] = SPLITS
) -> dict[tuple[str, str], list[Path]]:
    """Map each ``(split, wnid)`` to its sorted image paths under the ILSVRC2012 ``root``.

    Raises ``InputDataError`` naming the folder when the root, ``train/``, a class folder
    or the validation labels are missing, or a requested class has no images.
    """
    wnid_list = _check_wnids(wnids)
    split_list = _check_splits(splits)
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise InputDataError(f"ImageNet root not found: {root_path}")
    found: dict[tuple[str, str], list[Path]] = {}
    for split in split_list:
        if split == "train":
            train_dir = root_path / "train"
            if not train_dir.is_dir():
                raise InputDataError(f"ImageNet train folder not found: {train_dir}")
            per_class = {wnid: _class_folder_images(train_dir, wnid) for wnid in wnid_list}
        else:
            per_class = _find_val_images(root_path, wnid_list)
        for wnid in wnid_list:
            found[(split, wnid)] = per_class[wnid]
    return found


def _list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; hidden entries (macOS ``._*`` forks, ``.ipynb_checkpoints``) are skipped."""
    with os.scandir(folder) as entries:
        return sorted(
            Path(entry.path)
            for entry in entries
            if entry.is_file()
            and not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
        )


def _class_folder_images(split_dir: Path, wnid: str) -> list[Path]:
    folder = split_dir / wnid
    if not folder.is_dir():
        # The official train archive holds one tar per class; a common slip is to not unpack them.
        tar = split_dir / f"{wnid}.tar"
        hint = f" (found {tar.name}: extract it first)" if tar.is_file() else ""
        raise InputDataError(f"WNID {wnid} not found in {split_dir}{hint}")
    images = _list_images(folder)
    if not images:
        raise InputDataError(f"no images for WNID {wnid} in {folder}")
    return images


def _find_val_images(root: Path, wnids: Sequence[str]) -> dict[str, list[Path]]:
    """Validation images per class, from ``val/<wnid>/`` folders or the flat Kaggle layout."""
    val_dir = root / "val"
    if not val_dir.is_dir():
        raise InputDataError(f"ImageNet val folder not found: {val_dir}")
    with os.scandir(val_dir) as entries:
        # Hidden folders (.ipynb_checkpoints, .git) are not classes: they must not make a flat val/ look foldered.
        has_class_folders = any(entry.is_dir() and not entry.name.startswith(".") for entry in entries)
    if has_class_folders:
        return {wnid: _class_folder_images(val_dir, wnid) for wnid in wnids}

    flat_images = _list_images(val_dir)
    solution = next((p for p in (root / VAL_SOLUTION, val_dir / VAL_SOLUTION) if p.is_file()), None)
    if not flat_images or solution is None:
        raise InputDataError(
            f"ImageNet val folder is in neither layout (val/<wnid>/ folders, or images with "
            f"{VAL_SOLUTION} in the root or in val/): {val_dir}"
        )
    labels = read_val_labels(solution)
    per_class: dict[str, list[Path]] = {wnid: [] for wnid in wnids}
    for path in flat_images:  # sorted, so each class list stays sorted
        wnid = labels.get(path.stem)
        if wnid in per_class:
            per_class[wnid].append(path)
    for wnid, paths in per_class.items():
        if not paths:
            raise InputDataError(f"no images for WNID {wnid} in {val_dir} (labels from {solution})")
    return per_class


def read_val_labels(solution_csv: str | os.PathLike) -> dict[str, str]:
    """Map image stem to WNID from a Kaggle ``LOC_val_solution.csv``.

    Each ``PredictionString`` holds boxes as ``wnid x1 y1 x2 y2`` groups, all of the image's
    class, so the first token is the label.
    """
    path = Path(solution_csv)
    labels: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise InputDataError(f"expected header ImageId,PredictionString in {path}")
        for row in reader:
            tokens = (row["PredictionString"] or "").split()
            if not tokens:
                raise InputDataError(f"no label on line {reader.line_num} of {path}")
            labels[(row["ImageId"] or "").strip()] = tokens[0]
    return labels


# --- choosing and converting --------------------------------------------------------------


def choose_images(paths: Sequence[Path], max_per_class: int | None, seed: int, key: str) -> list[Path]:
    """Pick ``max_per_class`` of ``paths`` reproducibly (all of them when ``None`` or too few).

    Paths are sorted, ``max_per_class`` indices drawn without replacement, then sorted again.
    The generator is seeded with ``(seed, crc32(key))`` (``key`` is ``"split/wnid"``) so a
    class's pick does not change when other classes are added to or removed from the list.
    """
    ordered = sorted(paths)
    if max_per_class is None or max_per_class >= len(ordered):
        return ordered
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    picked = rng.choice(len(ordered), size=max_per_class, replace=False)
    return [ordered[i] for i in sorted(picked.tolist())]


def resize_to_short_side(image: Image.Image, short_side: int) -> Image.Image:
    """Resize so the shorter side is ``short_side`` (up or down), keeping the aspect ratio.

    Pillow's bicubic resize filters over the whole footprint, so downscaling is antialiased.
    """
    width, height = image.size
    if width <= height:
        size = (short_side, max(1, round(height * short_side / width)))
    else:
        size = (max(1, round(width * short_side / height)), short_side)
    return image.resize(size, Image.Resampling.BICUBIC)


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Make PIL fail on cut-off files for the run, whatever other code set the process-wide flag."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _convert_image(source: Path, dest: Path, short_side: int | None, jpeg_quality: int) -> tuple[str, str]:
    """Decode ``source`` fully, write it resized to ``dest``; return ``(sha1, error)``.

    ``short_side=None`` writes the original bytes instead (still fully decoded first, so a
    corrupt file is caught the same way): the paper code trains on ImageNet's own JPEGs.
    A non-empty error means the source is unreadable and nothing was written.
    """
    try:
        with Image.open(source) as image:
            image.load()
            rgb = image.convert("RGB")
    except Exception as exc:  # PIL plugins raise OSError, SyntaxError, ValueError...: all mean unreadable
        return "", " ".join(f"{type(exc).__name__}: {exc}".split())
    if short_side is None:
        data = source.read_bytes()
    else:
        buffer = io.BytesIO()
        resize_to_short_side(rgb, short_side).save(buffer, format="JPEG", quality=jpeg_quality)
        data = buffer.getvalue()
    dest.write_bytes(data)
    return hashlib.sha1(data).hexdigest(), ""


# --- the subset -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    split: str
    wnid: str
    source: Path
    path: str  # relative to out_dir, with "/" separators


def extract_subset(
    root: str | os.PathLike,
    wnids: Iterable[str],
    out_dir: str | os.PathLike,
    *,
    splits: Sequence[str] = SPLITS,
    max_per_class: int | None = None,
    seed: int = 0,
    resize_short_side: int | None = 256,
    jpeg_quality: int = 90,
    on_corrupt: str = "skip",
    threads: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the ``wnids`` classes of ImageNet to ``out_dir/<split>/<wnid>/<stem>.JPEG``.

    Every image is decoded fully (so corrupt and truncated files are caught), converted to RGB,
    resized to short side ``resize_short_side`` and saved as JPEG; with ``resize_short_side=None``
    the original file's bytes are written instead (the paper code's training images). ``out_dir`` also gets
    ``manifest.csv`` (one row per source image, with the written file's SHA-1) and
    ``classes.csv`` (``index,name``, the name being the WNID, in ``ImageFolder`` class order). Corrupt images are skipped
    with a warning (``on_corrupt="skip"``) or stop the run (``"stop"``); either way ``out_dir``
    is complete or absent. Returns ``{"out_dir", "classes", "counts", "skipped"}``.
    """
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError(f"on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}")
    if max_per_class is not None:
        _check_int("max_per_class", max_per_class, 1)
    _check_int("seed", seed, 0)
    if resize_short_side is not None:
        _check_int("resize_short_side", resize_short_side, 1)
    _check_int("jpeg_quality", jpeg_quality, 1, 100)
    _check_int("threads", threads, 1)
    wnid_list = _check_wnids(wnids)
    split_list = _check_splits(splits)
    root_path, out_path = Path(root).expanduser().absolute(), Path(out_dir).expanduser().absolute()
    if out_path.resolve() == root_path.resolve() or out_path.resolve() in root_path.resolve().parents:
        # The atomic rename replaces out_dir wholesale: it must never be the data it reads.
        raise ConfigError(f"out_dir {out_path} would replace the ImageNet root {root_path}")

    found = find_imagenet_images(root_path, wnid_list, split_list)
    jobs = _plan_jobs(found, max_per_class, seed)
    with atomic_directory(out_path) as tmp, _strict_decoding():
        for split, wnid in found:
            (tmp / split / wnid).mkdir(parents=True)
        results = _run_jobs(jobs, tmp, resize_short_side, jpeg_quality, on_corrupt, threads, progress)
        _require_every_class(jobs, results)
        rows = [
            {
                "path": job.path if not error else "",
                "source": str(job.source),
                "wnid": job.wnid,
                "split": job.split,
                "sha1": sha1,
                "status": "corrupt" if error else "ok",
                "error": error,
            }
            for job, (sha1, error) in zip(jobs, results)
        ]
        _write_csv(tmp / "manifest.csv", MANIFEST_COLUMNS, rows)
        _write_csv(tmp / "classes.csv", ("index", "name"), [{"index": i, "name": w} for i, w in enumerate(wnid_list)])

    counts = Counter(job.split for job, (_, error) in zip(jobs, results) if not error)
    skipped = sum(1 for _, error in results if error)
    logger.info("wrote %d images (%d corrupt skipped) to %s", sum(counts.values()), skipped, out_path)
    if skipped:
        # The log holds one line per image; the console gets the count and where they are listed.
        print(f"topkshape: skipped {skipped} corrupt image(s) for {out_path.name}; "
              f"listed with status 'corrupt' in {out_path / 'manifest.csv'}", file=sys.stderr)
    return {
        "out_dir": str(out_path),
        "classes": wnid_list,
        "counts": {split: counts.get(split, 0) for split in split_list},
        "skipped": skipped,
    }


def _plan_jobs(found: dict[tuple[str, str], list[Path]], max_per_class: int | None, seed: int) -> list[_Job]:
    jobs: list[_Job] = []
    for (split, wnid), paths in found.items():
        chosen = choose_images(paths, max_per_class, seed, f"{split}/{wnid}")
        if max_per_class is not None and len(chosen) < max_per_class:
            logger.warning("only %d images for WNID %s in %s, fewer than %d", len(chosen), wnid, split, max_per_class)
        by_name: dict[str, Path] = {}
        for source in chosen:
            name = f"{source.stem}.JPEG"
            if name in by_name:
                raise InputDataError(
                    f"{by_name[name].name} and {source.name} would both be written as {name}: {source.parent}"
                )
            by_name[name] = source
            jobs.append(_Job(split, wnid, source, f"{split}/{wnid}/{name}"))
    return jobs


def _run_jobs(
    jobs: Sequence[_Job],
    out: Path,
    short_side: int | None,
    jpeg_quality: int,
    on_corrupt: str,
    threads: int,
    progress: bool,
) -> list[tuple[str, str]]:
    """Convert all jobs on ``threads`` threads (PIL releases the GIL while coding images)."""
    results: list[tuple[str, str]] = [("", "")] * len(jobs)
    pool = ThreadPoolExecutor(max_workers=threads)
    bar = tqdm(total=len(jobs), disable=None if progress else True, unit="img", desc="ImageNet subset")
    try:
        futures = {
            pool.submit(_convert_image, job.source, out / job.path, short_side, jpeg_quality): index
            for index, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            index = futures[future]
            sha1, error = future.result()
            if error:
                if on_corrupt == "stop":
                    raise InputDataError(f"corrupt image {jobs[index].source}: {error}")
                logger.warning("skipping corrupt image %s: %s", jobs[index].source, error)
            results[index] = (sha1, error)
            bar.update()
    finally:
        # Wait for running conversions so none writes into the folder after it is removed.
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return results


def _require_every_class(jobs: Sequence[_Job], results: Sequence[tuple[str, str]]) -> None:
    readable = Counter((job.split, job.wnid) for job, (_, error) in zip(jobs, results) if not error)
    for job in jobs:
        if readable[(job.split, job.wnid)] == 0:
            raise InputDataError(f"no readable images for WNID {job.wnid} in {job.source.parent} (all corrupt)")


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


# --- argument checks --------------------------------------------------------------------------


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds}, got {value}")


def _check_wnids(wnids: Iterable[str]) -> list[str]:
    """Sorted WNIDs: the order ``ImageFolder`` gives class indices in."""
    if isinstance(wnids, (str, bytes)):
        raise ConfigError(f"wnids must be a list of WNIDs, not one string: {wnids!r}")
    wnid_list = list(wnids)
    if not wnid_list:
        raise ConfigError("wnids is empty: give at least one WNID")
    for wnid in wnid_list:
        # Each WNID becomes a folder name; a path separator or ".." would escape out_dir.
        if not isinstance(wnid, str) or wnid in ("", ".", "..") or os.path.basename(wnid) != wnid or "/" in wnid:
            raise ConfigError(f"not a WNID folder name: {wnid!r}")
    duplicates = sorted(w for w, n in Counter(wnid_list).items() if n > 1)
    if duplicates:
        raise ConfigError(f"WNIDs listed twice: {', '.join(duplicates)}")
    return sorted(wnid_list)


def _check_splits(splits: Sequence[str]) -> tuple[str, ...]:
    if isinstance(splits, (str, bytes)):
        raise ConfigError(f"splits must be a list such as ['train', 'val'], not one string: {splits!r}")
    split_list = tuple(splits)
    if not split_list or len(set(split_list)) != len(split_list) or not set(split_list) <= set(SPLITS):
        raise ConfigError(f"splits must be distinct values from {', '.join(SPLITS)}, got {list(split_list)}")
    return split_list

"""Obtain the benchmark's files: the cue-conflict stimuli archive and the human raw decisions."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from topkshape.atomic import atomic_directory
from topkshape.download import download_file
from topkshape.errors import InputDataError

HUMAN_FILES = tuple(f"cue-conflict_subject-{i:02d}_session_1.csv" for i in range(1, 11))


def _image_root(folder: Path) -> Path:
    """The folder whose sub-folders hold the category images (archives nest it)."""
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if any(child.is_dir() and any(child.glob("*.png")) for child in candidate.iterdir()):
            return candidate
    raise InputDataError(f"no <category>/*.png images found in {folder}")


def fetch_cue_conflict(url: str, sha256: str | None, out_dir: str | Path) -> Path:
    """Download the stimuli archive (tar or zip), verify it, unpack ``<category>/*.png`` to ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = download_file(url, Path(tmp) / Path(url).name, sha256)
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(unpacked)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(unpacked, filter="data")
        else:
            raise InputDataError(f"{url}: neither a tar nor a zip archive")
        return copy_image_folder(_image_root(unpacked), out_dir)


def copy_image_folder(source: str | Path, out_dir: str | Path) -> Path:
    """Copy ``<category>/*.png`` from a local folder into ``out_dir`` (complete or absent)."""
    root = _image_root(Path(source)) if Path(source).is_dir() else None
    if root is None:
        raise InputDataError(f"cue-conflict folder not found: {source}")
    with atomic_directory(out_dir) as tmp:
        for category in sorted(p for p in root.iterdir() if p.is_dir()):
            shutil.copytree(category, tmp / category.name)
    return Path(out_dir)


def fetch_human_decisions(base_url: str, out_dir: str | Path, names: Sequence[str] = HUMAN_FILES) -> list[Path]:
    """The ten observers' raw cue-conflict decisions (model-vs-human raw-data/cue-conflict/)."""
    with atomic_directory(out_dir) as tmp:
        for name in names:
            download_file(f"{base_url.rstrip('/')}/{name}", tmp / name, None, progress=False)
    return [Path(out_dir) / name for name in names]

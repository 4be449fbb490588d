"""Obtain the benchmark's files: the cue-conflict stimuli archive and the human raw decisions.

The ten observers' files are pinned by SHA-256 (``data/human_decisions_sha256.json``, taken at
model-vs-human commit 79ed7cd1); the stimuli archive is pinned by config. The paper config takes
the stimuli from the paper's own repository instead, file by file (``topkshape.paper_data``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from topkshape.atomic import atomic_directory
from topkshape.download import as_url, download_file, unpack_archive
from topkshape.errors import InputDataError

HUMAN_FILES = tuple(f"cue-conflict_subject-{i:02d}_session_1.csv" for i in range(1, 11))
HUMAN_MANIFEST = "human_decisions_sha256.json"


@lru_cache(maxsize=1)
def human_decision_hashes() -> dict[str, str]:
    """File name -> SHA-256 of the ten observers' raw decisions, shipped in the package."""
    return json.loads(resources.files("topkshape.data").joinpath(HUMAN_MANIFEST).read_text())["files"]


def _image_root(folder: Path) -> Path:
    """The folder whose sub-folders hold the category images (archives nest it)."""
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if any(child.is_dir() and any(child.glob("*.png")) for child in candidate.iterdir()):
            return candidate
    raise InputDataError(f"no <category>/*.png images found in {folder}")


def fetch_cue_conflict(url: str, sha256: str | None, out_dir: str | Path, *, require_pinned: bool = False) -> Path:
    """Download the stimuli archive (tar or zip), verify it, unpack ``<category>/*.png`` to ``out_dir``.

    ``require_pinned`` (config ``downloads.require_pinned``) refuses the archive when ``sha256`` is None.
    """
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as unpacked:
        archive = download_file(url, Path(tmp) / Path(url).name, sha256, require_pinned=require_pinned,
                                pin_key="shape_bias.cue_conflict.sha256")
        unpack_archive(archive, unpacked, url)
        return copy_image_folder(_image_root(Path(unpacked)), out_dir)


def copy_image_folder(source: str | Path, out_dir: str | Path) -> Path:
    """Copy ``<category>/*.png`` from a local folder into ``out_dir`` (complete or absent)."""
    root = _image_root(Path(source)) if Path(source).is_dir() else None
    if root is None:
        raise InputDataError(f"cue-conflict folder not found: {source}")
    with atomic_directory(out_dir) as tmp:
        for category in sorted(p for p in root.iterdir() if p.is_dir()):
            shutil.copytree(category, tmp / category.name)
    return Path(out_dir)


def fetch_human_decisions(base_url: str, out_dir: str | Path, names: Sequence[str] = HUMAN_FILES, *,
                          hashes: Mapping[str, str] | None = None, require_pinned: bool = False) -> list[Path]:
    """The ten observers' raw cue-conflict decisions (model-vs-human raw-data/cue-conflict/).

    Each file is checked against ``hashes`` (default: the pinned ones shipped in the package);
    a name without a pin is logged with its actual hash, or refused with ``require_pinned``.
    ``out_dir`` is complete or absent.
    """
    pins = human_decision_hashes() if hashes is None else hashes
    with atomic_directory(out_dir) as tmp:
        for name in names:
            download_file(f"{as_url(base_url).rstrip('/')}/{name}", tmp / name, pins.get(name), progress=False,
                          require_pinned=require_pinned, pin_key=f"{HUMAN_MANIFEST} ({name})")
    return [Path(out_dir) / name for name in names]

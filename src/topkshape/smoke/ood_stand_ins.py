"""Stand-ins for model-vs-human's OOD dataset archives: the real archives' layout and image names, generated pixels.

The smoke run cannot download the 17 archives (several GB, no published hashes), but the human observers'
raw decisions it serves are the real files, and the analyses pair a model's trials with a human's by image
name. So each stand-in holds one generated image for every image the humans saw, named as the toolbox names
its model images: ``<dataset>/dnn/session-1/<n>_<x>_dnn_<condition>_<category>_...`` (the subject field of the
human's name replaced by ``dnn``), or ``<dataset>/<category>/<image>`` for the datasets the toolbox reads by
folder (edge, silhouette, cue-conflict). The archive is byte-reproducible (sorted members, zero times), so its
pin does not change from one smoke run to the next.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError
from topkshape.robustness.consistency import short_image_name

FOLDER_LAYOUT = ("edge", "silhouette", "cue-conflict")
"""Datasets the toolbox reads as ``<category>/<image>`` (ImageNetInfoMapping); the others by session folder."""


def stand_in_members(dataset: str, human_dir: str | Path) -> list[str]:
    """The archive paths (under ``<dataset>/``) of one image per image the humans saw, sorted."""
    files = sorted(Path(human_dir).glob("*subject-*.csv"))  # cue-conflict's folder holds models' files too
    if not files:
        raise InputDataError(f"no human raw-decision files in {human_dir}")
    frame = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    frame.columns = [c.lower() for c in frame.columns]
    frame = frame.assign(image_id=frame["imagename"].map(short_image_name)).drop_duplicates("image_id")
    members = []
    for row in frame.itertuples():
        if dataset in FOLDER_LAYOUT:
            members.append(f"{dataset}/{row.category}/{row.image_id}")
        else:
            parts = str(row.imagename).split("_")
            members.append(f"{dataset}/dnn/session-1/{'_'.join([*parts[:2], 'dnn', *parts[3:]])}")
    return sorted(members)


def write_stand_in_archive(dataset: str, human_dir: str | Path, archive: str | Path, *, size: int = 32, seed: int = 0) -> Path:
    """``archive`` (.tar.gz): a seeded noise image of ``size`` px for each member of :func:`stand_in_members`."""
    rng = np.random.default_rng(seed)
    with atomic_file(archive) as tmp, open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as tar:
        for member in stand_in_members(dataset, human_dir):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = buffer.tell(), 0, 0o644
            buffer.seek(0)
            tar.addfile(info, buffer)
    return Path(archive)

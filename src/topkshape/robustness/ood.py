"""Model-vs-human's out-of-distribution benchmark: its 17 datasets, a model's decisions on them, and the
analyses against the human observers with bootstrap intervals.

The datasets are the toolbox's release archives (``<name>.tar.gz`` of release v0.1, one per dataset),
unpacked as the toolbox lays them out: ``<name>/dnn/session-<n>/<image>`` where an image's name holds its
condition and category (``0001_cl_dnn_cr_oven_40_n04111531_14126.png``: condition ``cr``, category ``oven``;
the toolbox's ``InfoMappingWithSessions``), or, for cue-conflict, edge and silhouette, ``<name>/<category>/<image>``
with no condition (``ImageNetInfoMapping``). A model's decisions are written in the toolbox's raw-data format
(subj, session, trial, rt, object_response, category, condition, imagename), so that the same analyses read
models and humans.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from topkshape.atomic import atomic_directory, atomic_file
from topkshape.download import download_file, unpack_archive
from topkshape.errors import InputDataError
from topkshape.models.zoo import STIMULUS_SIZE
from topkshape.robustness.ood_datasets import HUMAN_BASE_URL, human_files
from topkshape.shape_bias.atlas import AtlasEntry, load_entry
from topkshape.shape_bias.evaluate import Stimuli, decode_stimulus, model_decisions, with_inference_topk
from topkshape.shape_bias.tags import tag_setting

RELEASE_URL = "https://github.com/bethgelab/model-vs-human/releases/download/v0.1/{name}.tar.gz"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".JPEG"}
RAW_COLUMNS = ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]


@dataclass(frozen=True)
class Trial:
    """One image of a dataset and what its name (or folder) says about it."""

    path: Path
    session: int
    condition: str
    category: str


def _dataset_root(folder: Path) -> Path:
    """The folder holding ``dnn/`` (sessions) or the category folders (archives nest it)."""
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (candidate / "dnn").is_dir():
            return candidate
        if any(child.is_dir() and any(f.suffix in IMAGE_SUFFIXES for f in child.iterdir()) for child in candidate.iterdir()):
            return candidate
    raise InputDataError(f"no dnn/session-<n>/ or <category>/ images found in {folder}")


def list_trials(folder: str | Path) -> list[Trial]:
    """Every image of an unpacked dataset with its session, condition and category, in name order."""
    root = _dataset_root(Path(folder))
    trials = []
    if (root / "dnn").is_dir():
        for session_dir in sorted((root / "dnn").iterdir()):
            if not session_dir.is_dir() or not session_dir.name.startswith("session-"):
                continue
            for path in sorted(session_dir.iterdir()):
                if path.suffix not in IMAGE_SUFFIXES:
                    continue
                parts = path.name.split("_")
                if len(parts) < 6:
                    raise InputDataError(f"{path}: not a model-vs-human image name (<n>_<x>_<y>_<condition>_<category>_...)")
                trials.append(Trial(path, int(session_dir.name.removeprefix("session-")), parts[3], parts[4]))
    else:
        for category_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            trials += [Trial(path, 1, "NaN", category_dir.name) for path in sorted(category_dir.iterdir()) if path.suffix in IMAGE_SUFFIXES]
    if not trials:
        raise InputDataError(f"no images in {root}")
    return trials


def fetch_ood_dataset(url: str, sha256: str | None, out_dir: str | Path, *, require_pinned: bool = False,
                      pin_key: str = "robustness.ood.sha256") -> Path:
    """Download a dataset archive (tar or zip), verify it, and copy its dataset folder to ``out_dir``
    (complete or absent)."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as unpacked:
        archive = download_file(url, Path(tmp) / Path(url).name, sha256, require_pinned=require_pinned, pin_key=pin_key)
        unpack_archive(archive, unpacked, url)
        root = _dataset_root(Path(unpacked))
        list_trials(root)  # refuse an archive whose layout the evaluation cannot read, before keeping it
        with atomic_directory(out_dir) as target:
            shutil.copytree(root, target, dirs_exist_ok=True)
    return Path(out_dir)


def fetch_human_raw_data(dataset: str, out_dir: str | Path, *, base_url: str = HUMAN_BASE_URL, require_pinned: bool = False) -> list[Path]:
    """The human observers' raw decisions on ``dataset`` from ``base_url/<dataset>/``, each file checked
    against its pinned SHA-256; ``out_dir`` is complete or absent."""
    from topkshape.shape_bias.fetch import fetch_human_decisions

    files = human_files(dataset)
    return fetch_human_decisions(f"{base_url.rstrip('/')}/{dataset}", out_dir, sorted(files), hashes=files, require_pinned=require_pinned)


def read_raw_data(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Raw-decision CSVs together, columns lower-cased and conditions as text (as the toolbox reads them)."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        frame.columns = [c.lower() for c in frame.columns]
        frames.append(frame)
    if not frames:
        raise InputDataError("no raw-decision files to read")
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(condition=frame["condition"].astype(str))


def select_trials(trials: Sequence[Trial], per_class: int | None) -> list[Trial]:
    """The first ``per_class`` trials (name order) of each condition and category; all of them when None."""
    if per_class is None:
        return list(trials)
    taken: dict[tuple[str, str], int] = {}
    kept = []
    for trial in trials:
        key = (trial.condition, trial.category)
        if taken.get(key, 0) < per_class:
            taken[key] = taken.get(key, 0) + 1
            kept.append(trial)
    return kept


def trial_stimuli(trials: Sequence[Trial], image_size: int) -> Stimuli:
    """The trials' images decoded as the shape-bias stimuli are (unresized at the input size, else the toolbox's resize)."""
    decoded = [decode_stimulus(t.path, image_size) for t in trials]
    return Stimuli([(t.path, t.category) for t in trials], torch.stack([pixels for pixels, _ in decoded]), sum(r for _, r in decoded))


def raw_frame(trials: Sequence[Trial], responses: Sequence[str], subject: str) -> pd.DataFrame:
    """One decision maker's rows in the toolbox's raw-data format, in ``trials``' order."""
    return pd.DataFrame({"subj": subject, "session": [t.session for t in trials], "trial": np.arange(1, len(trials) + 1),
                         "rt": np.nan, "object_response": list(responses), "category": [t.category for t in trials],
                         "condition": [t.condition for t in trials], "imagename": [t.path.name for t in trials]}, columns=RAW_COLUMNS)


def model_raw_decisions(model: nn.Module, trials: Sequence[Trial], subject: str, *, image_size: int,
                        preprocess: Callable[[Tensor], Tensor], batch_size: int = 32, device: str | None = None) -> pd.DataFrame:
    """A 1000-class ImageNet classifier's decisions on ``trials`` through the 16-class mapping, in the
    toolbox's raw-data format."""
    responses = model_decisions(model, trial_stimuli(trials, image_size), batch_size=batch_size, device=device, progress=False,
                                preprocess=preprocess)
    return raw_frame(trials, responses, subject)


def entry_raw_decisions(entry: AtlasEntry, tags: Sequence[str], dataset: str | Path, *, batch_size: int = 32, ties: str | None = None,
                        tie_seed: int = 0, device: str | None = None, weights_file: str | Path | None = None,
                        images_per_class: int | None = None) -> dict[str, pd.DataFrame]:
    """An atlas entry's decisions on an OOD dataset for each setting of ``tags`` (``none``: without Top-K;
    ``topk10``: Top-K at 10% at the entry's placement), subject ``<entry>-<tag>``; of each condition and
    category only the first ``images_per_class`` images when given."""
    loaded, positions = load_entry(entry, weights_file)
    trials = select_trials(list_trials(dataset), images_per_class)
    stimuli = trial_stimuli(trials, STIMULUS_SIZE)
    frames = {}
    for tag in tags:
        fraction, mode = tag_setting(tag)
        model = with_inference_topk(loaded.model, positions, fraction, mode, ties=ties, tie_seed=tie_seed)
        responses = model_decisions(model, stimuli, batch_size=batch_size, device=device, progress=False, preprocess=loaded.preprocessing)
        frames[tag] = raw_frame(trials, responses, f"{entry.name}-{tag}")
    return frames


def write_entry_raw_decisions(entry: AtlasEntry, tags: Sequence[str], dataset: str | Path, out_csv: str | Path, *, threads: int = 1,
                              **options) -> pd.DataFrame:
    """:func:`entry_raw_decisions` of every setting as one CSV (the settings' subjects one after another)."""
    torch.set_num_threads(threads)
    frame = pd.concat(entry_raw_decisions(entry, tags, dataset, **options).values(), ignore_index=True)
    with atomic_file(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame

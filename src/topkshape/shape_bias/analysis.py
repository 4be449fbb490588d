"""Shape bias from raw decision files, exactly as model-vs-human's ``ShapeBias`` analysis.

Per file (or pooled files): the texture category comes from the image name (last
``_`` field, extension dropped, the part after the last ``-``, digits removed); rows
whose shape category equals the texture category carry no conflict and are dropped
from the counts, but the fractions are taken over *all* rows, as the toolbox does:

    fraction_correct_shape   = #(response == shape)   / #rows
    fraction_correct_texture = #(response == texture) / #rows
    shape_bias = shape / (shape + texture)

Per category: the same on the rows of each shape category (its per-class plot).
A category with no shape and no texture decision has no shape bias (NaN).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from topkshape.errors import InputDataError

RAW_COLUMNS = ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]


def texture_category(imagename: str) -> str:
    """'0001_s5n_s01_0_bird_00_bird3-clock2.png' -> 'clock'."""
    last = str(imagename).split("_")[-1]
    stem = last.split(".")[0]
    return "".join(ch for ch in stem.split("-")[-1] if not ch.isdigit())


def read_raw_csv(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One or more raw decision files, concatenated; a missing column is an error naming the file."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputDataError(f"raw decision file not found: {path}")
        frame = pd.read_csv(path, dtype={"object_response": str, "category": str, "imagename": str})
        missing = [c for c in ("object_response", "category", "imagename") if c not in frame]
        if missing:
            raise InputDataError(f"{path}: missing column(s) {missing}; expected model-vs-human's raw format {RAW_COLUMNS}")
        frame["file"] = path.name
        frames.append(frame)
    if not frames:
        raise InputDataError("no raw decision files given")
    return pd.concat(frames, ignore_index=True)


def _fractions(frame: pd.DataFrame) -> tuple[float, float, float]:
    total = len(frame)
    if total == 0:
        return np.nan, np.nan, np.nan
    texture = frame["imagename"].map(texture_category)
    conflict = frame[frame["category"] != texture]
    conflict_texture = texture[conflict.index]
    shape = int((conflict["object_response"] == conflict["category"]).sum()) / total
    tex = int((conflict["object_response"] == conflict_texture).sum()) / total
    bias = shape / (shape + tex) if shape + tex > 0 else np.nan
    return shape, tex, bias


def shape_bias(frame: pd.DataFrame) -> dict[str, float]:
    """Overall shape bias and the two fractions of one decision maker's rows."""
    shape, texture, bias = _fractions(frame)
    return {"shape_bias": bias, "fraction_correct_shape": shape, "fraction_correct_texture": texture}


def shape_bias_per_category(frame: pd.DataFrame) -> pd.DataFrame:
    """Shape bias of each shape category (model-vs-human's per-class plot), sorted by category."""
    rows = []
    for category, group in frame.groupby("category", sort=True):
        shape, texture, bias = _fractions(group)
        rows.append({"category": category, "shape_bias": bias, "fraction_correct_shape": shape, "fraction_correct_texture": texture})
    return pd.DataFrame(rows)


def bootstrap_shape_bias(frame: pd.DataFrame, *, samples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the shape bias, resampling images (rows) with replacement."""
    rng = np.random.default_rng(seed)
    texture = frame["imagename"].map(texture_category).to_numpy()
    shape_cat = frame["category"].to_numpy()
    response = frame["object_response"].to_numpy()
    conflict = shape_cat != texture
    is_shape = (response == shape_cat) & conflict
    is_texture = (response == texture) & conflict
    n = len(frame)
    values = []
    for _ in range(samples):
        pick = rng.integers(0, n, n)
        s, t = is_shape[pick].sum(), is_texture[pick].sum()
        if s + t > 0:
            values.append(s / (s + t))
    if not values:
        return np.nan, np.nan
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)

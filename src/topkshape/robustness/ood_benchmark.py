"""Model-vs-human's benchmark numbers of one decision maker over the OOD datasets, with bootstrap intervals.

As model-vs-human's benchmark computes them (``modelvshuman/plotting/plot.py``: ``get_mean_over_datasets``,
``get_raw_benchmark_df``, ``EXCLUDE_CONDITIONS``):

* the 12 parametric datasets are analysed on their out-of-distribution conditions only (the control
  condition and those where humans score below 20% are excluded); the other 5 (sketch, stylized, edge,
  silhouette, cue-conflict) as one pool of trials, whatever condition their rows name;
* **OOD accuracy** of a dataset: the 16-class accuracy over its analysed trials pooled; over the benchmark,
  the mean over datasets;
* **accuracy difference, observed and error consistency** of a dataset: per analysed condition and human
  observer, then the mean over conditions and observers; over the benchmark, the mean over datasets.

Intervals (Klein et al., NeurIPS 2025): the trials of each condition are resampled, one draw serving the
model and every observer, and each draw goes through the same means; a dataset's draws are independent of
another's, so the benchmark mean's interval comes from the per-draw means over datasets.

A run that evaluates fewer images than the humans saw (``robustness.ood.images_per_class``, the smoke run)
compares with the humans on those images only; the tables record the trial counts.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from topkshape.errors import InputDataError
from topkshape.robustness.consistency import paired_correctness, resampled_measures, short_image_name

EXCLUDED_CONDITIONS = {
    "colour": ("cr",),
    "contrast": ("c100", "c03", "c01"),
    "high-pass": ("inf", "0.55", "0.45", "0.4"),
    "low-pass": ("0", "15", "40"),
    "phase-scrambling": ("0", "150", "180"),
    "power-equalisation": ("0",),
    "false-colour": ("True",),
    "rotation": ("0",),
    "eidolonI": ("1-10-10", "64-10-10", "128-10-10"),
    "eidolonII": ("1-3-10", "32-3-10", "64-3-10", "128-3-10"),
    "eidolonIII": ("1-0-10", "16-0-10", "32-0-10", "64-0-10", "128-0-10"),
    "uniform-noise": ("0.0", "0.6", "0.9"),
}
"""model-vs-human's excluded conditions of its 12 parametric datasets (not OOD, or humans below 20%)."""
MEASURES = ("accuracy_difference", "observed_consistency", "error_consistency")
COLUMNS = ("ood_accuracy", *MEASURES)


@dataclass(frozen=True)
class DatasetResult:
    """One decision maker on one dataset: point values, bootstrap draws (same order), trial counts."""

    point: dict[str, float]
    draws: dict[str, np.ndarray]
    trials: int
    humans: dict[str, float]


def analysed_conditions(dataset: str, humans: pd.DataFrame) -> list[str | None]:
    """The conditions the benchmark analyses (``None``: all trials as one pool)."""
    if dataset not in EXCLUDED_CONDITIONS:
        return [None]
    present = sorted(humans["condition"].astype(str).unique(), key=lambda c: (len(c), c))
    return [c for c in present if c not in EXCLUDED_CONDITIONS[dataset]]


def _trials(frame: pd.DataFrame, condition: str | None) -> pd.DataFrame:
    return frame if condition is None else frame[frame["condition"].astype(str) == condition]


def _on_images(humans: pd.DataFrame, images: set[str]) -> pd.DataFrame:
    return humans[humans["imagename"].map(short_image_name).isin(images)]


def dataset_result(dataset: str, model: pd.DataFrame, humans: pd.DataFrame, *, samples: int = 1000, seed: int = 0) -> DatasetResult:
    """``model`` (one decision maker's raw rows on ``dataset``) against the human observers' rows."""
    observers = sorted(humans["subj"].unique())
    if len(observers) < 2:
        raise InputDataError(f"{dataset}: the benchmark needs at least two human observers, found {len(observers)}")
    rng = np.random.default_rng([seed, zlib.crc32(dataset.encode())])
    correct, counts = np.zeros(samples), 0
    point_correct = 0
    measures = {key: [] for key in MEASURES}
    draws = {key: [] for key in MEASURES}
    human_rows = []
    for condition in analysed_conditions(dataset, humans):
        mine = _trials(model, condition)
        if mine.empty:
            raise InputDataError(f"{dataset}: the model has no trials of condition {condition!r}")
        theirs = _on_images(_trials(humans, condition), set(mine["imagename"].map(short_image_name)))
        pairs = [paired_correctness(mine, theirs[theirs["subj"] == h]) for h in observers]
        right_model = pairs[0][0]
        n = len(right_model)
        index = rng.integers(0, n, size=(samples, n))
        correct += right_model[index].sum(axis=1)
        counts += n
        point_correct += int(right_model.sum())
        each = [resampled_measures(a, b, np.arange(n)[None]) for a, b in pairs]
        resampled = [resampled_measures(a, b, index) for a, b in pairs]
        for key in MEASURES:
            measures[key].append(np.mean([e[key][0] for e in each]))
            draws[key].append(np.mean([r[key] for r in resampled], axis=0))
        human_rows.append(_humans_on(theirs, observers))
    point = {"ood_accuracy": point_correct / counts, **{key: float(np.mean(values)) for key, values in measures.items()}}
    all_draws = {"ood_accuracy": correct / counts, **{key: np.mean(values, axis=0) for key, values in draws.items()}}
    humans_mean = {key: float(np.mean([row[key] for row in human_rows])) for key in MEASURES}
    humans_mean["ood_accuracy"] = float(np.mean([row["ood_accuracy"] for row in human_rows]))
    return DatasetResult(point, all_draws, counts, humans_mean)


def _humans_on(trials: pd.DataFrame, observers: list[str]) -> dict[str, float]:
    """The observers' own values on one condition's trials: each against the others, then the mean."""
    right = {h: paired_correctness(trials[trials["subj"] == h], trials[trials["subj"] == observers[0]])[0] for h in observers}
    values = {key: [] for key in MEASURES}
    for h in observers:
        others = [resampled_measures(right[h], right[o], np.arange(len(right[h]))[None]) for o in observers if o != h]
        for key in MEASURES:
            values[key].append(np.mean([v[key][0] for v in others]))
    return {"ood_accuracy": float(np.mean([r.mean() for r in right.values()])), **{k: float(np.mean(v)) for k, v in values.items()}}


def benchmark_table(results: Mapping[str, DatasetResult], *, level: float = 0.95) -> pd.DataFrame:
    """One row per dataset and one (``dataset`` = ``all``) for the mean over datasets, each value with its
    percentile interval (``<value>_low``, ``<value>_high``) and the humans' own value (``human_<value>``)."""
    if not results:
        raise InputDataError("no OOD dataset results to tabulate")
    tails = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for name, result in [*results.items(), ("all", _mean_over(results))]:
        row: dict[str, object] = {"dataset": name, "trials": result.trials}
        for key in COLUMNS:
            low, high = np.nanquantile(result.draws[key], tails)
            row.update({key: result.point[key], f"{key}_low": float(low), f"{key}_high": float(high), f"human_{key}": result.humans[key]})
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_over(results: Mapping[str, DatasetResult]) -> DatasetResult:
    values = list(results.values())
    return DatasetResult({key: float(np.mean([r.point[key] for r in values])) for key in COLUMNS},
                         {key: np.mean([r.draws[key] for r in values], axis=0) for key in COLUMNS},
                         sum(r.trials for r in values),
                         {key: float(np.mean([r.humans[key] for r in values])) for key in COLUMNS})

"""Model-vs-human's out-of-distribution analyses, with bootstrap confidence intervals over trials.

Definitions as model-vs-human computes them (``modelvshuman/plotting/analyses.py``, Geirhos et al.
2018, 2020, 2021):

* **16-class accuracy**: the share of trials whose response is the category (OOD accuracy).
* **Accuracy difference**: the squared difference of two decision makers' accuracies.
* **Observed consistency**: the share of trials on which both are right or both are wrong, trials
  paired by image (the image name without its trial prefix, :func:`short_image_name`).
* **Error consistency**: Cohen's kappa of that agreement, ``(c_obs - c_exp) / (1 - c_exp)`` with
  ``c_exp = p1 p2 + (1 - p1)(1 - p2)`` from the two accuracies; 1 when ``c_obs`` is 1.

Per condition of a dataset, a decision maker's value against humans is its mean over the human
observers (a human leaves itself out); the humans' own value is the mean of each observer's mean.

Klein et al. (NeurIPS 2025) showed that many reported model-versus-human differences vanish once error
consistency gets an interval: :func:`bootstrap_pair` resamples the paired trials (one draw of trial
indices serves both decision makers) and gives percentile 95% intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from topkshape.errors import InputDataError


def short_image_name(imagename: str) -> str:
    """The image-specific part of a trial's image name: the experiment prefix (``0001_cl_s01_...``)
    dropped, ImageNet names kept with their ``n0...`` WNID (model-vs-human's ``get_short_imagename``)."""
    parts = imagename.split("_")
    if len(parts) == 1:
        return parts[0]
    head, tail = parts[-2], parts[-1]
    return f"{head}_{tail}" if head.startswith("n0") else tail


def accuracy(frame: pd.DataFrame) -> float:
    """16-class accuracy: responses equal to the category, over all trials."""
    if not len(frame):
        raise InputDataError("no trials to score")
    return float((frame["object_response"] == frame["category"]).mean())


def paired_correctness(first: pd.DataFrame, second: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Whether each decision maker was right on each trial, the trials paired by image."""
    a = first.assign(image_id=first["imagename"].map(short_image_name)).sort_values("image_id", kind="stable")
    b = second.assign(image_id=second["imagename"].map(short_image_name)).sort_values("image_id", kind="stable")
    if len(a) != len(b) or not np.array_equal(a["image_id"].to_numpy(), b["image_id"].to_numpy()):
        raise InputDataError(f"the two decision makers saw different images ({len(a)} and {len(b)} trials)")
    return (a["object_response"] == a["category"]).to_numpy(), (b["object_response"] == b["category"]).to_numpy()


def consistency_from_correctness(right_a: np.ndarray, right_b: np.ndarray) -> dict[str, float]:
    """Expected, observed and error consistency (kappa) of two aligned correctness vectors."""
    p1, p2 = float(right_a.mean()), float(right_b.mean())
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    observed = float((right_a == right_b).mean())
    kappa = 1.0 if observed == 1.0 else (observed - expected) / (1.0 - expected)
    return {"expected_consistency": expected, "observed_consistency": observed, "error_consistency": kappa}


def consistency(first: pd.DataFrame, second: pd.DataFrame) -> dict[str, float]:
    """Expected, observed and error consistency of two decision makers on the same images."""
    return consistency_from_correctness(*paired_correctness(first, second))


def accuracy_difference(first: pd.DataFrame, second: pd.DataFrame) -> float:
    """The squared difference of the two accuracies (model-vs-human's default norm)."""
    return (accuracy(first) - accuracy(second)) ** 2


def bootstrap_pair(first: pd.DataFrame, second: pd.DataFrame, *, samples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of accuracy difference, observed and error consistency over resampled trials.

    Trials are resampled in pairs (the same images for both), so the interval is the one of this
    comparison on these images, as in Klein et al. (2025).
    """
    right_a, right_b = paired_correctness(first, second)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(right_a), size=(samples, len(right_a)))
    tail = 100 * (1 - level) / 2
    bounds = resampled_measures(right_a, right_b, index)
    return {key: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))) for key, v in bounds.items()}


def resampled_measures(right_a: np.ndarray, right_b: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy difference, observed and error consistency of two aligned correctness vectors on each row
    of trial indices ``index`` (samples x trials): the bootstrap draws of one comparison."""
    a, b = right_a[index], right_b[index]
    p1, p2 = a.mean(axis=1), b.mean(axis=1)
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    observed = (a == b).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(observed == 1.0, 1.0, (observed - expected) / (1.0 - expected))
    return {"accuracy_difference": (p1 - p2) ** 2, "observed_consistency": observed, "error_consistency": kappa}


def against_humans(frame: pd.DataFrame, maker: str, humans: Sequence[str], condition: str) -> dict[str, float]:
    """``maker``'s accuracy difference, observed and error consistency on one condition, each the mean
    over the human observers (``maker`` itself left out when it is one of them)."""
    own = frame[(frame["condition"] == condition) & (frame["subj"] == maker)]
    values = []
    for human in humans:
        if human == maker:
            continue
        theirs = frame[(frame["condition"] == condition) & (frame["subj"] == human)]
        values.append({"accuracy_difference": accuracy_difference(own, theirs), **consistency(own, theirs)})
    if not values:
        raise InputDataError(f"no other human observer to compare {maker} with on condition {condition}")
    return {key: float(np.mean([v[key] for v in values])) for key in ("accuracy_difference", "observed_consistency", "error_consistency")}


def human_vs_human(frame: pd.DataFrame, humans: Sequence[str], condition: str) -> dict[str, float]:
    """The humans' own value per condition: the mean over observers of each one's mean against the others."""
    each = [against_humans(frame, human, humans, condition) for human in humans]
    return {key: float(np.mean([e[key] for e in each])) for key in each[0]}

"""Model-vs-human's OOD analyses: ours against a literal transcription of the toolbox on its human raw data
(all 17 datasets, every condition), and the paired bootstrap intervals on hand-built trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topkshape.errors import InputDataError
from topkshape.robustness.consistency import (
    bootstrap_pair,
    consistency,
    human_vs_human,
    short_image_name,
)
from conftest import needs_shared

RAW = Path(__file__).resolve().parents[2] / "shared" / "model-vs-human" / "raw-data"
DATASETS = ("colour", "contrast", "high-pass", "low-pass", "phase-scrambling", "power-equalisation", "false-colour", "rotation",
            "eidolonI", "eidolonII", "eidolonIII", "uniform-noise", "sketch", "stylized", "edge", "silhouette", "cue-conflict")


# --- a transcription of model-vs-human (helper/plotting_helper.py, plotting/analyses.py at 79ed7cd) -------------

def _toolbox_short_imagename(imagename):
    splits = imagename.split("_")
    if len(splits) > 1:
        name = splits[-2:]
        if name[0].startswith("n0"):
            name = name[0] + "_" + name[1]
        else:
            name = name[1]
    else:
        name = splits[0]
    return name


def _toolbox_read(directory: Path) -> pd.DataFrame:
    df = pd.DataFrame()
    for f in sorted(p.name for p in directory.iterdir()):
        if f.endswith(".csv") and "subject-" in f:  # the human observers only
            df2 = pd.read_csv(directory / f)
            df2.columns = [c.lower() for c in df2.columns]
            df = pd.concat([df, df2])
    df.condition = df.condition.astype(str)
    df = df.copy()
    df["image_id"] = df["imagename"].apply(_toolbox_short_imagename)
    return df


def _toolbox_error_consistency(df1, df2):
    p1 = len(df1.loc[df1.object_response == df1.category]) / len(df1)
    p2 = len(df2.loc[df2.object_response == df2.category]) / len(df2)
    expected_consistency = p1 * p2 + (1 - p1) * (1 - p2)
    df1 = df1.sort_values(by="image_id").reset_index()
    df2 = df2.sort_values(by="image_id").reset_index()
    assert df1["image_id"].equals(df2["image_id"])
    df1 = df1.copy()
    df2 = df2.copy()
    df1["is_correct"] = df1.object_response == df1.category
    df2["is_correct"] = df2.object_response == df2.category
    observed_consistency = (df1.is_correct == df2.is_correct).sum() / len(df1)
    if observed_consistency == 1.0:
        kappa = 1.0
    else:
        kappa = (observed_consistency - expected_consistency) / (1.0 - expected_consistency)
    return {"observed-consistency": observed_consistency, "error-consistency": kappa}


def _toolbox_humans(df, condition, key):
    """ErrorConsistency.get_result_df's human value: mean over observers of each one's mean over the others."""
    humans = sorted(df["subj"].unique())
    hvalues = []
    for dm1 in humans:
        values = []
        for h in humans:
            if dm1 != h:
                df1 = df.loc[(df["condition"] == condition) & (df["subj"] == dm1)]
                df2 = df.loc[(df["condition"] == condition) & (df["subj"] == h)]
                values.append(_toolbox_error_consistency(df1, df2)[key])
        hvalues.append(np.mean(values))
    return np.mean(hvalues)


@needs_shared(RAW, "model-vs-human's human raw decisions")
@pytest.mark.parametrize("dataset", DATASETS)
def test_human_vs_human_consistency_equals_model_vs_humans_on_its_raw_data(dataset):
    frame = _toolbox_read(RAW / dataset)
    humans = sorted(frame["subj"].unique())
    assert len(humans) >= 4
    for condition in sorted(frame["condition"].unique()):
        ours = human_vs_human(frame, humans, condition)
        assert ours["error_consistency"] == pytest.approx(_toolbox_humans(frame, condition, "error-consistency"), abs=1e-12)
        assert ours["observed_consistency"] == pytest.approx(_toolbox_humans(frame, condition, "observed-consistency"), abs=1e-12)


def test_short_image_names_drop_the_trial_prefix_and_keep_imagenet_wnids():
    assert short_image_name("0000_cl_s01_bw_boat_40_n02951358_5952.JPEG") == "n02951358_5952.JPEG"
    assert short_image_name("airplane1-bicycle2.png") == "airplane1-bicycle2.png"
    assert short_image_name("0001_sk_dnn_bear_sketch_7.png") == "7.png"


def _trials(correct: list[bool], order: list[int] | None = None) -> pd.DataFrame:
    rows = [{"imagename": f"{i:04d}_x_img{i}.png", "category": "cat", "object_response": "cat" if ok else "dog"}
            for i, ok in enumerate(correct)]
    frame = pd.DataFrame(rows)
    return frame.iloc[order].reset_index(drop=True) if order else frame


def test_consistency_pairs_trials_by_image_and_is_kappa_of_the_agreement():
    a = _trials([True, True, False, False])
    b = _trials([True, False, True, False], order=[3, 2, 1, 0])  # the same images in another trial order
    result = consistency(a, b)
    # p1 = p2 = 1/2: c_exp = 1/2; both right on img0, both wrong on img3: c_obs = 1/2; kappa = 0.
    assert (result["expected_consistency"], result["observed_consistency"], result["error_consistency"]) == (0.5, 0.5, 0.0)
    assert consistency(a, a)["error_consistency"] == 1.0
    with pytest.raises(InputDataError, match="saw different images"):
        consistency(a, _trials([True, True, False]))


def test_bootstrap_resamples_paired_trials_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    right = rng.random(400) < 0.7
    same = _trials(list(right))
    # Paired resampling: one decision maker against itself agrees on every resampled trial.
    assert bootstrap_pair(same, same, samples=200)["observed_consistency"] == (1.0, 1.0)
    other = _trials(list(np.where(rng.random(400) < 0.8, right, ~right)))
    interval = bootstrap_pair(same, other, samples=500, seed=3)
    point = consistency(same, other)
    for key in ("observed_consistency", "error_consistency"):
        low, high = interval[key]
        assert low < point[key] < high and high - low < 0.3
    assert bootstrap_pair(same, other, samples=500, seed=3) == interval  # seeded

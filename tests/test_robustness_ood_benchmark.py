"""Model-vs-human's benchmark numbers over OOD datasets (robustness.ood_benchmark), the smoke run's stand-in
archives, and the OOD report with shape bias against OOD accuracy."""

from __future__ import annotations

import tarfile

import numpy as np
import pandas as pd
import pytest

from conftest import needs_shared
from test_robustness_consistency import RAW, _toolbox_error_consistency, _toolbox_read
from topkshape.errors import InputDataError
from topkshape.robustness.ood import list_trials, raw_frame, select_trials
from topkshape.robustness.ood_benchmark import benchmark_table, dataset_result
from topkshape.smoke.ood_stand_ins import stand_in_members, write_stand_in_archive

# model-vs-human's EXCLUDE_CONDITIONS (modelvshuman/plotting/plot.py at 79ed7cd), typed here as the reference.
TOOLBOX_EXCLUDED = {"colour": ["cr"], "low-pass": ["0", "15", "40"], "eidolonII": ["1-3-10", "32-3-10", "64-3-10", "128-3-10"]}


def _toolbox_benchmark(model: pd.DataFrame, humans: pd.DataFrame, dataset: str) -> dict[str, float]:
    """get_mean_over_datasets' accuracy and get_raw_benchmark_df's error consistency for one dataset, as the toolbox
    computes them: accuracy over the kept conditions' trials pooled; EC per (human, condition), mean over conditions,
    then over humans."""
    if dataset in TOOLBOX_EXCLUDED:
        conditions = [c for c in humans["condition"].unique() if c not in TOOLBOX_EXCLUDED[dataset]]
        kept = model[model["condition"].isin(conditions)]
    else:
        conditions, kept = [None], model
    accuracy = (kept["object_response"] == kept["category"]).mean()
    per_human = []
    for human in sorted(humans["subj"].unique()):
        theirs = humans[humans["subj"] == human]
        values = []
        for c in conditions:
            df1 = model if c is None else model[model["condition"] == c]
            df2 = theirs if c is None else theirs[theirs["condition"] == c]
            values.append(_toolbox_error_consistency(df1, df2))
        per_human.append({key: np.mean([v[key] for v in values]) for key in ("error-consistency", "observed-consistency")})
    return {"ood_accuracy": accuracy, **{key: np.mean([h[key] for h in per_human]) for key in per_human[0]}}


@needs_shared(RAW, "model-vs-human's human raw decisions")
def test_the_benchmark_equals_model_vs_humans_definitions_on_its_raw_data():
    results, expected = {}, {}
    for dataset in ("colour", "low-pass", "eidolonII", "sketch", "edge"):
        humans = _toolbox_read(RAW / dataset)
        stand_in = sorted(humans["subj"].unique())[-1]  # one observer plays the model, against the others
        model, others = humans[humans["subj"] == stand_in].assign(subj="model"), humans[humans["subj"] != stand_in]
        results[dataset] = dataset_result(dataset, model, others, samples=300, seed=1)
        expected[dataset] = _toolbox_benchmark(model, others, dataset)
        point = results[dataset].point
        assert point["ood_accuracy"] == pytest.approx(expected[dataset]["ood_accuracy"], abs=1e-12), dataset
        assert point["error_consistency"] == pytest.approx(expected[dataset]["error-consistency"], abs=1e-12), dataset
        assert point["observed_consistency"] == pytest.approx(expected[dataset]["observed-consistency"], abs=1e-12), dataset
    assert results["colour"].trials == 640 and results["edge"].trials == 160  # colour's control condition (cr) is not analysed
    table = benchmark_table(results).set_index("dataset")
    assert table.loc["all", "error_consistency"] == pytest.approx(np.mean([e["error-consistency"] for e in expected.values()]))
    assert table.loc["all", "ood_accuracy"] == pytest.approx(np.mean([e["ood_accuracy"] for e in expected.values()]))
    for key in ("ood_accuracy", "accuracy_difference", "observed_consistency", "error_consistency"):
        assert (table[f"{key}_low"] <= table[key] + 1e-12).all() and (table[key] <= table[f"{key}_high"] + 1e-12).all(), key
    assert (table["error_consistency_high"] > table["error_consistency_low"]).all()
    # Pooled datasets resample independently: the mean's interval is narrower than the widest dataset's.
    widths = table["ood_accuracy_high"] - table["ood_accuracy_low"]
    assert widths["all"] < widths.drop("all").max()


def _frame(subject, conditions, images, right):
    return pd.DataFrame({"subj": subject, "session": 1, "trial": np.arange(len(images)) + 1, "rt": 0.5,
                         "object_response": ["cat" if r else "dog" for r in right], "category": "cat",
                         "condition": conditions, "imagename": images})


def test_a_model_that_saw_some_images_is_compared_with_the_humans_on_those_only():
    images = [f"000{i}_lp_s01_3_cat_00_n0100_{i}.png" for i in range(6)]
    humans = pd.concat([_frame("h1", "3", images, [1, 1, 0, 0, 1, 0]), _frame("h2", "3", images, [1, 0, 0, 1, 1, 1])])
    model = _frame("m", "3", [name.replace("_s01_", "_dnn_") for name in images[:3]], [1, 1, 0])
    result = dataset_result("sketch", model, humans, samples=50)
    assert result.trials == 3 and result.point["ood_accuracy"] == pytest.approx(2 / 3)
    assert result.humans["ood_accuracy"] == pytest.approx(np.mean([2 / 3, 1 / 3]))
    # On those 3 images h1 agrees with the model everywhere, h2 on 2 of 3.
    assert result.point["observed_consistency"] == pytest.approx(np.mean([1.0, 2 / 3]))
    with pytest.raises(InputDataError, match="two human observers"):
        dataset_result("sketch", model, humans[humans["subj"] == "h1"])
    with pytest.raises(InputDataError, match="no trials of condition '3'"):
        dataset_result("low-pass", model.assign(condition="5"), humans)


def test_select_trials_keeps_the_first_images_of_each_condition_and_category(tmp_path):
    from PIL import Image

    folder = tmp_path / "low-pass" / "dnn" / "session-1"
    folder.mkdir(parents=True)
    names = [f"{n:04d}_lp_dnn_{c}_{k}_10_n0000_{n}.png" for n, (c, k) in enumerate([("0", "cat"), ("0", "cat"), ("0", "dog"), ("3", "cat")] * 2)]
    for name in names:
        Image.new("RGB", (8, 8)).save(folder / name)
    trials = list_trials(tmp_path / "low-pass")
    kept = select_trials(trials, 1)
    assert [(t.condition, t.category) for t in kept] == [("0", "cat"), ("0", "dog"), ("3", "cat")]
    assert [t.path.name for t in kept] == [names[0], names[2], names[3]]
    assert len(select_trials(trials, 2)) == 6 and select_trials(trials, None) == trials


@needs_shared(RAW, "model-vs-human's human raw decisions")
@pytest.mark.parametrize("dataset", ["colour", "edge"])
def test_a_stand_in_archive_holds_every_image_the_humans_saw_under_the_toolboxs_names(dataset, tmp_path):
    archive = write_stand_in_archive(dataset, RAW / dataset, tmp_path / f"{dataset}.tar.gz")
    first = archive.read_bytes()
    assert write_stand_in_archive(dataset, RAW / dataset, tmp_path / "again.tar.gz").read_bytes() == first  # a stable pin
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    trials = list_trials(tmp_path / "unpacked" / dataset)
    humans = _toolbox_read(RAW / dataset)
    assert len(trials) == humans["image_id"].nunique() == len(stand_in_members(dataset, RAW / dataset))
    # Responses equal to one observer's: the benchmark pairs every trial and scores that observer's accuracy.
    observer = humans[humans["subj"] == sorted(humans["subj"].unique())[0]].set_index("image_id")
    from topkshape.robustness.consistency import short_image_name

    responses = [observer.loc[short_image_name(t.path.name), "object_response"] for t in trials]
    model = raw_frame(trials, responses, "stand-in")
    assert (model["category"].to_numpy() == [observer.loc[short_image_name(t.path.name), "category"] for t in trials]).all()
    if dataset == "colour":
        assert set(model["condition"]) == set(humans["condition"])
    result = dataset_result(dataset, model, humans, samples=20)
    assert result.point["observed_consistency"] > 0.5 and result.trials == (640 if dataset == "colour" else 160)


def _write_dataset(tmp_path, dataset, rng, n=20):
    images = [f"{i:04d}_x_s01_0_cat_00_n0100_{i}.png" for i in range(n)]
    folder = tmp_path / "humans" / dataset
    folder.mkdir(parents=True)
    for h in ("subject-01", "subject-02"):
        _frame(h, "0", images, rng.random(n) < 0.8).to_csv(folder / f"{dataset}_{h}_session_1.csv", index=False)
    return images, folder


def test_the_ood_report_tabulates_each_setting_and_sets_its_shape_bias_beside_its_ood_accuracy(tmp_path):
    from topkshape.report.ood import raw_path_map, write_ood_report

    rng = np.random.default_rng(0)
    raw, humans = [], {}
    for dataset, right in (("sketch", 0.9), ("edge", 0.3)):
        images, humans[dataset] = _write_dataset(tmp_path, dataset, rng)
        frames = [_frame(f"e-{tag}", "0", [i.replace("_s01_", "_dnn_") for i in images], rng.random(len(images)) < right - shift)
                  for tag, shift in (("none", 0.0), ("topk10", 0.2))]
        path = tmp_path / "raw" / "e" / f"{dataset}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(frames).to_csv(path, index=False)
        raw.append(path)
    atlas = tmp_path / "atlas.csv"
    pd.DataFrame({"model": ["e", "e", "e", "humans"], "K_percent": [np.nan, 10, 20, np.nan], "mode": [np.nan, "topk", "topk", np.nan],
                  "shape_bias": [0.3, 0.6, 0.7, 0.95], "not_above_chance": [False, False, False, False]}).to_csv(atlas, index=False)
    out = {key: tmp_path / "out" / name for key, name in (
        ("csv", "ood.csv"), ("md", "ood.md"), ("points_csv", "points.csv"), ("correlation_csv", "rho.csv"), ("correlation_md", "rho.md"),
        ("png", "f.png"), ("pdf", "f.pdf"))}
    table = write_ood_report(raw_path_map(raw), humans, atlas, out, title="t", samples=50)
    assert sorted(set(table["dataset"])) == ["all", "edge", "sketch"] and set(table["tag"]) == {"none", "topk10"}
    plain = table[(table["tag"] == "none")].set_index("dataset")
    assert plain.loc["all", "ood_accuracy"] == pytest.approx((plain.loc["edge", "ood_accuracy"] + plain.loc["sketch", "ood_accuracy"]) / 2)
    points = pd.read_csv(out["points_csv"]).set_index("tag")
    assert points.loc["none", "shape_bias"] == 0.3 and points.loc["topk10", "shape_bias"] == 0.6
    assert points.loc["topk10", "ood_accuracy"] == pytest.approx(table.set_index(["tag", "dataset"]).loc[("topk10", "all"), "ood_accuracy"])
    rho = pd.read_csv(out["correlation_csv"])
    assert list(rho["model"]) == ["e", "all"] and (rho["evidence"] == "undefined").all()  # 2 settings: no rho
    assert "| humans |" in out["md"].read_text() and out["png"].stat().st_size > 5000 and out["pdf"].is_file()
    pd.DataFrame({"model": ["e"], "K_percent": [np.nan], "mode": [np.nan], "shape_bias": [0.3], "not_above_chance": [False]}).to_csv(atlas, index=False)
    with pytest.raises(InputDataError, match="no single shape-bias row for e topk10"):
        write_ood_report(raw_path_map(raw), humans, atlas, out, title="t", samples=10)

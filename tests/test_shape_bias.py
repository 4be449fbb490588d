"""The cue-conflict shape-bias benchmark: analysis equal to model-vs-human's, decisions, evaluation, CLI."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from topkshape.errors import InputDataError
from topkshape.shape_bias import read_raw_csv, shape_bias, shape_bias_per_category, texture_category
from topkshape.shape_bias.decisions import sixteen_class_decisions, sixteen_class_indices
from topkshape.shape_bias.evaluate import evaluate_cue_conflict, list_cue_conflict_images
from topkshape.shape_bias.tags import parse_tag, sweep_tags

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAW_DIR = SHARED / "model-vs-human" / "raw-data" / "cue-conflict"
SAMPLE_DIR = SHARED / "cue-conflict-sample"
needs_raw = pytest.mark.skipif(not RAW_DIR.is_dir(), reason=f"shared model-vs-human raw data not found at {RAW_DIR}")
needs_sample = pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason=f"shared cue-conflict sample not found at {SAMPLE_DIR}")


def toolbox_reference(rows):
    """model-vs-human's ShapeBias analysis, transcribed literally with the csv module (no pandas)."""

    def texture(name):
        stem = name.split("_")[-1].split(".")[0].split("-")[-1]
        return "".join(c for c in stem if not c.isdigit())

    kept = [r for r in rows if r["category"] != texture(r["imagename"])]
    shape = sum(r["object_response"] == r["category"] for r in kept) / len(rows)
    tex = sum(r["object_response"] == texture(r["imagename"]) for r in kept) / len(rows)
    return shape, tex, (shape / (shape + tex) if shape + tex else math.nan)


@needs_raw
def test_analysis_equals_the_toolbox_on_every_shared_raw_file_overall_and_per_class():
    files = sorted(RAW_DIR.glob("*.csv"))
    assert len(files) == 45
    for path in files:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        ours = shape_bias(read_raw_csv(path))
        shape, tex, bias = toolbox_reference(rows)
        assert ours["fraction_correct_shape"] == pytest.approx(shape, abs=1e-12), path.name
        assert ours["fraction_correct_texture"] == pytest.approx(tex, abs=1e-12), path.name
        assert ours["shape_bias"] == pytest.approx(bias, abs=1e-12), path.name
        per_class = shape_bias_per_category(read_raw_csv(path)).set_index("category")
        categories = sorted({r["category"] for r in rows})
        assert list(per_class.index) == categories
        for category in categories:
            expected = toolbox_reference([r for r in rows if r["category"] == category])[2]
            got = per_class.loc[category, "shape_bias"]
            assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12), (path.name, category)


@needs_raw
def test_pooled_human_observers_are_strongly_shape_biased():
    humans = read_raw_csv(sorted(RAW_DIR.glob("cue-conflict_subject-*.csv")))
    assert humans["subj"].nunique() == 10
    assert shape_bias(humans)["shape_bias"] > 0.9


def test_texture_category_follows_the_toolbox_rule():
    assert texture_category("0001_s5n_s01_0_bird_00_bird3-clock2.png") == "clock"
    assert texture_category("airplane1-bicycle2.png") == "bicycle"
    assert texture_category("disk_00003-square.png") == "square"


def test_sixteen_class_decision_averages_probabilities_per_category():
    table = sixteen_class_indices()
    assert list(table) == sorted(table) and len(table) == 16
    assert table["airplane"] == [404] and len(table["dog"]) == 109
    probs = torch.zeros(2, 1000)
    probs[0, 404] = 0.9
    # 0.5 spread over all dog classes (mean ~0.004) loses to 0.1 on the one knife class.
    probs[1, table["dog"]] = 0.5 / len(table["dog"])
    probs[1, 499] = 0.1
    assert sixteen_class_decisions(probs) == ["airplane", "knife"]
    with pytest.raises(ValueError, match="1000"):
        sixteen_class_decisions(torch.zeros(1, 10))


def test_sweep_tags_round_trip():
    tags = sweep_tags([0.05, 0.1, 0.2], ["topk", "non_topk"])
    assert tags == ["none", "topk5", "topk10", "topk20", "non_topk5", "non_topk10", "non_topk20"]
    assert [parse_tag(t) for t in tags[:2] + tags[-1:]] == [("none", None), ("topk", 5.0), ("non_topk", 20.0)]


@needs_sample
def test_evaluation_writes_model_vs_human_raw_rows_for_the_sample_images(tmp_path):
    from topkshape.models import topk_alexnet

    torch.manual_seed(0)
    model = topk_alexnet(0.1, weights=None)
    rows = evaluate_cue_conflict(model, SAMPLE_DIR, subject="alexnet-topk10", batch_size=16, progress=False)
    assert list(rows.columns) == ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
    assert len(rows) == 32 and rows["trial"].tolist() == list(range(1, 33))
    assert set(rows["object_response"]) <= set(sixteen_class_indices())
    assert set(rows["category"]) == set(sixteen_class_indices())
    path = tmp_path / "cue-conflict_alexnet-topk10_session-1.csv"
    rows.to_csv(path, index=False)
    result = shape_bias(read_raw_csv(path))
    assert 0 <= result["fraction_correct_shape"] + result["fraction_correct_texture"] <= 1


@needs_sample
def test_zero_byte_png_in_the_cue_conflict_folder_is_named(tmp_path):
    folder = tmp_path / "cc"
    shutil.copytree(SAMPLE_DIR, folder)
    bad = folder / "cat" / "cat1-bottle1.png"
    bad.write_bytes(b"")
    from topkshape.models import topk_alexnet

    with pytest.raises(InputDataError, match=f"unreadable cue-conflict image {bad}: empty file"):
        evaluate_cue_conflict(topk_alexnet(None, weights=None), folder, subject="x", progress=False)
    with pytest.raises(InputDataError, match="not found"):
        list_cue_conflict_images(tmp_path / "missing")


@needs_raw
def test_command_line_writes_one_row_per_file_and_per_class_rows(tmp_path):
    files = [RAW_DIR / "cue-conflict_AlexNet-normal_session-1.csv", RAW_DIR / "cue-conflict_subject-01_session_1.csv"]
    out, per_class = tmp_path / "sb.csv", tmp_path / "pc.csv"
    run = subprocess.run([sys.executable, "-m", "topkshape.shape_bias", "--raw-csv", *map(str, files), "--out", str(out), "--per-class", str(per_class)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
    assert table["file"].tolist() == [f.name for f in files]
    assert table["shape_bias"].iloc[0] == pytest.approx(shape_bias(read_raw_csv(files[0]))["shape_bias"])
    classes = pd.read_csv(per_class)
    assert list(classes.columns) == ["file", "category", "shape_bias"] and len(classes) == 32
    missing = subprocess.run([sys.executable, "-m", "topkshape.shape_bias", "--raw-csv", str(tmp_path / "nope.csv"), "--out", str(out)],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [f"topkshape: raw decision file not found: {tmp_path / 'nope.csv'}"]


@needs_raw
def test_report_writes_table_with_humans_and_both_figures(tmp_path):
    from topkshape.report.shape_bias import write_shape_bias_report

    models = []
    for source, subj in (("cue-conflict_AlexNet-normal_session-1.csv", "alexnet-none"), ("cue-conflict_AlexNet-topK-10_session-1.csv", "alexnet-topk10"),
                         ("cue-conflict_AlexNet-topK-10-Revert_session-1.csv", "alexnet-non_topk10")):
        frame = pd.read_csv(RAW_DIR / source).assign(subj=subj)
        path = tmp_path / f"cue-conflict_{subj}_session-1.csv"
        frame.to_csv(path, index=False)
        models.append(path)
    out = {k: tmp_path / f"out.{k}" for k in ("csv", "md")}
    out.update({k: tmp_path / f"{k}.{k.rsplit('_', 1)[1]}" for k in ("overall_png", "overall_pdf", "per_class_png", "per_class_pdf")})
    table = write_shape_bias_report(models, sorted(RAW_DIR.glob("cue-conflict_subject-*.csv")), out, title="t", samples=200)
    assert set(table["model"]) == {"alexnet", "humans"}
    row = table[(table["mode"] == "topk") & (table.K_percent == 10)].iloc[0]
    assert row.ci_low <= row.shape_bias <= row.ci_high
    assert row.shape_bias == pytest.approx(shape_bias(read_raw_csv(RAW_DIR / "cue-conflict_AlexNet-topK-10_session-1.csv"))["shape_bias"])
    for key in ("overall_png", "overall_pdf", "per_class_png", "per_class_pdf"):
        assert out[key].stat().st_size > 1000
    assert "humans" in out["md"].read_text()

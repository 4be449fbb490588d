"""The cue-conflict shape-bias benchmark: analysis equal to model-vs-human's, decisions, evaluation, CLI."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from topkshape.errors import InputDataError
from topkshape.shape_bias import class_shape_biases, read_raw_csv, shape_bias, shape_bias_per_category, texture_category
from topkshape.shape_bias.analysis import SIXTEEN_CATEGORIES
from topkshape.shape_bias.decisions import sixteen_class_decisions, sixteen_class_indices
from topkshape.shape_bias.evaluate import evaluate_cue_conflict, list_cue_conflict_images
from topkshape.shape_bias.tags import parse_tag, sweep_tags
from conftest import needs_shared

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAW_DIR = SHARED / "model-vs-human" / "raw-data" / "cue-conflict"
SAMPLE_DIR = SHARED / "cue-conflict-sample"
needs_raw = needs_shared(RAW_DIR, "shared model-vs-human raw data")
needs_sample = needs_shared(SAMPLE_DIR, "shared cue-conflict sample")


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


def toolbox_boxplot_values(rows, subjects):
    """The values ``plot_shape_bias_boxplot`` boxes for one decision maker, transcribed literally:
    per observer a list of per-category shape biases (categories in sorted order), then, for
    several observers (humans), the mean over observers position by position."""
    lists = []
    for subject in subjects:
        mine = [r for r in rows if r["subj"] == subject]
        lists.append([toolbox_reference([r for r in mine if r["category"] == c])[2] for c in sorted({r["category"] for r in mine})])
    return [sum(values) / len(values) for values in zip(*lists)]


@needs_raw
def test_figure4_per_class_values_equal_the_toolbox_boxplot_for_every_model_file_and_the_humans():
    models = sorted(set(RAW_DIR.glob("*.csv")) - set(RAW_DIR.glob("cue-conflict_subject-*.csv")))
    assert len(models) == 35
    for path in models:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        ours = class_shape_biases(read_raw_csv(path))
        assert list(ours.index) == sorted(SIXTEEN_CATEGORIES), path.name
        assert ours.tolist() == pytest.approx(toolbox_boxplot_values(rows, [rows[0]["subj"]]), abs=1e-12), path.name
    human_files = sorted(RAW_DIR.glob("cue-conflict_subject-*.csv"))
    rows = [row for path in human_files for row in csv.DictReader(open(path, newline=""))]
    subjects = sorted({r["subj"] for r in rows})
    assert len(subjects) == 10
    ours = class_shape_biases(read_raw_csv(human_files), mean_over_subjects=True)
    expected = toolbox_boxplot_values(rows, subjects)
    assert ours.tolist() == pytest.approx(expected, abs=1e-12)
    # The mean over observers is not the pooled observers' per-class value (the statistic matters).
    pooled = class_shape_biases(read_raw_csv(human_files))
    assert max(abs(pooled - ours)) > 1e-3


@needs_raw
def test_pooled_human_observers_are_strongly_shape_biased():
    humans = read_raw_csv(sorted(RAW_DIR.glob("cue-conflict_subject-*.csv")))
    assert humans["subj"].nunique() == 10
    assert shape_bias(humans)["shape_bias"] > 0.9


HEADER = "subj,session,trial,rt,object_response,category,condition,imagename"


def write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A raw decision file from (object_response, category, imagename) triples."""
    lines = [HEADER] + [f"m,1,{i},NaN,{response},{category},NaN,{name}" for i, (response, category, name) in enumerate(rows, 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


# One shape, one texture, one other decision and one image without a cue conflict (cat on cat),
# then three dog images: two shape and one texture decision.
HAND_ROWS = [
    ("cat", "cat", "cat1-bird2.png"),      # shape decision
    ("bird", "cat", "cat1-bird2.png"),     # texture decision
    ("dog", "cat", "cat1-bird2.png"),      # neither
    ("cat", "cat", "cat1-cat2.png"),       # shape = texture: dropped from the counts, kept in #rows
    ("dog", "dog", "dog1-clock2.png"),     # shape
    ("dog", "dog", "dog1-knife3.png"),     # shape
    ("clock", "dog", "dog1-clock2.png"),   # texture
]


def test_shape_bias_of_hand_built_rows_follows_the_definition(tmp_path):
    # model-vs-human: fractions over all rows, shape=texture rows count in no numerator.
    cat = read_raw_csv(write_rows(tmp_path / "cat.csv", HAND_ROWS[:4]))
    assert shape_bias(cat) == {"shape_bias": 0.5, "fraction_correct_shape": 0.25, "fraction_correct_texture": 0.25}
    both = shape_bias(read_raw_csv(write_rows(tmp_path / "both.csv", HAND_ROWS)))
    # 3 shape and 2 texture decisions among 7 rows: 3/7, 2/7, bias 3 / (3 + 2).
    assert both["fraction_correct_shape"] == pytest.approx(3 / 7)
    assert both["fraction_correct_texture"] == pytest.approx(2 / 7)
    assert both["shape_bias"] == pytest.approx(0.6)


def test_shape_bias_per_class_of_hand_built_rows_follows_the_definition(tmp_path):
    per_class = shape_bias_per_category(read_raw_csv(write_rows(tmp_path / "both.csv", HAND_ROWS))).set_index("category")
    assert list(per_class.index) == ["cat", "dog"]
    assert per_class.loc["cat"].tolist() == pytest.approx([0.5, 0.25, 0.25])
    # dog: 2 shape, 1 texture decision of 3 rows.
    assert per_class.loc["dog"].tolist() == pytest.approx([2 / 3, 2 / 3, 1 / 3])


def test_a_category_with_only_other_decisions_has_no_shape_bias(tmp_path):
    frame = read_raw_csv(write_rows(tmp_path / "x.csv", [("dog", "cat", "cat1-bird2.png"), ("na", "cat", "cat2-bird1.png")]))
    result = shape_bias(frame)
    assert result["fraction_correct_shape"] == 0 and result["fraction_correct_texture"] == 0
    assert math.isnan(result["shape_bias"])


def test_analysis_categories_are_the_sixteen_of_the_decision_mapping():
    assert SIXTEEN_CATEGORIES == set(sixteen_class_indices())


@pytest.mark.parametrize(
    "row,column,value",
    [
        (("parrot", "parrot", "parrot1-cat2.png"), "category", "parrot"),        # not one of the 16
        (("cat", "cat", "cat1.png"), "imagename", "cat1.png"),                    # no texture part
        (("parrot", "cat", "cat1-bird2.png"), "object_response", "parrot"),      # response not a category
        (("cat", "dog", "cat1-bird2.png"), "category", "dog"),                    # name says cat
        (("cat", "cat", "cat1-parrot2.png"), "imagename", "cat1-parrot2.png"),    # texture not a category
    ],
)
def test_a_row_the_analysis_would_score_wrong_is_an_error_naming_file_line_and_value(tmp_path, row, column, value):
    path = write_rows(tmp_path / "bad.csv", HAND_ROWS[:2] + [row] + HAND_ROWS[2:])
    with pytest.raises(InputDataError) as exc:
        read_raw_csv(path)
    message = str(exc.value)
    assert message.startswith(f"{path} line 4: {column} {value!r} ") and "\n" not in message


def test_skip_invalid_drops_and_lists_the_bad_rows_and_scores_the_rest(tmp_path):
    path = write_rows(tmp_path / "mixed.csv", [("parrot", "parrot", "parrot1-cat2.png")] + HAND_ROWS[:4] + [("cat", "cat", "cat1.png")])
    frame = read_raw_csv(path, skip_invalid=True)
    assert len(frame) == 4
    assert [(p.line, p.column) for p in frame.attrs["skipped"]["mixed.csv"]] == [(2, "category"), (7, "imagename")]
    assert shape_bias(frame) == {"shape_bias": 0.5, "fraction_correct_shape": 0.25, "fraction_correct_texture": 0.25}


def test_human_session_names_and_no_response_rows_are_valid(tmp_path):
    rows = [("cat", "cat", "0001_s5n_s01_0_cat_00_cat1-bird2.png"), ("na", "cat", "0002_s5n_s01_0_cat_00_cat3-bird1.png")]
    frame = read_raw_csv(write_rows(tmp_path / "h.csv", rows))
    assert frame.attrs["skipped"] == {} and shape_bias(frame)["fraction_correct_shape"] == 0.5


def test_generated_cue_conflict_rows_are_checked_against_the_files_own_classes(tmp_path):
    # The embedded default: '<shape>_<i>-<texture>.png', decisions among the classifier's classes.
    good = [("disk", "disk", "disk_00000-square.png"), ("square", "disk", "disk_00001-square.png"),
            ("square", "square", "square_00000-disk.png"), ("ring", "square", "square_00001-disk.png")]
    with pytest.raises(InputDataError, match=r"line 5: object_response 'ring' is not one of this file's categories \['disk', 'square'\]"):
        read_raw_csv(write_rows(tmp_path / "g.csv", good))
    frame = read_raw_csv(write_rows(tmp_path / "g2.csv", good[:3]))
    # 1 shape (disk), 1 texture (square on disk) decision and 1 shape (square) of 3 rows.
    assert shape_bias(frame) == pytest.approx({"shape_bias": 2 / 3, "fraction_correct_shape": 2 / 3, "fraction_correct_texture": 1 / 3})
    with pytest.raises(InputDataError, match="category 'parrot' is not one of the"):
        read_raw_csv(write_rows(tmp_path / "g3.csv", good[:3] + [("disk", "parrot", "parrot_00000-disk.png")]))


def test_texture_category_follows_the_toolbox_rule():
    assert texture_category("0001_s5n_s01_0_bird_00_bird3-clock2.png") == "clock"
    assert texture_category("airplane1-bicycle2.png") == "bicycle"
    assert texture_category("disk_00003-square.png") == "square"
    # Only the part after the last "_" counts: a dot or a "-" before it (a folder-like prefix) is not read.
    assert texture_category("run.1_0001_s5n_s01_0_bird_00_bird3-clock2.png") == "clock"
    # No "-": the name's last part is the texture (the silhouette-style "<category><n>.png").
    assert texture_category("0001_clock2.png") == "clock"


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
    # The written file passes the row checks of the analysis (names, categories, responses).
    assert read_raw_csv(path).attrs["skipped"] == {}


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
def test_command_line_on_shared_files_equals_the_toolbox_transcription(tmp_path):
    files = [RAW_DIR / "cue-conflict_AlexNet-normal_session-1.csv", RAW_DIR / "cue-conflict_subject-01_session_1.csv"]
    out, per_class = tmp_path / "sb.csv", tmp_path / "pc.csv"
    run = subprocess.run([sys.executable, "-m", "topkshape.shape_bias", "--raw-csv", *map(str, files), "--out", str(out), "--per-class", str(per_class)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
    assert table["file"].tolist() == [f.name for f in files]
    for row, path in zip(table.itertuples(), files):
        with open(path, newline="") as fh:
            shape, tex, bias = toolbox_reference(list(csv.DictReader(fh)))
        assert (row.fraction_correct_shape, row.fraction_correct_texture, row.shape_bias) == pytest.approx((shape, tex, bias), abs=1e-9)
    classes = pd.read_csv(per_class)
    assert list(classes.columns) == ["file", "category", "shape_bias"] and len(classes) == 32


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
    out = {k: tmp_path / f"out.{k}" for k in ("csv", "md", "per_class_csv")}
    out.update({k: tmp_path / f"{k}.{k.rsplit('_', 1)[1]}" for k in ("overall_png", "overall_pdf", "per_class_png", "per_class_pdf")})
    table = write_shape_bias_report(models, sorted(RAW_DIR.glob("cue-conflict_subject-*.csv")), out, title="t", samples=200)
    assert set(table["model"]) == {"alexnet", "humans"}
    row = table[(table["mode"] == "topk") & (table.K_percent == 10)].iloc[0]
    assert row.ci_low <= row.shape_bias <= row.ci_high
    with open(RAW_DIR / "cue-conflict_AlexNet-topK-10_session-1.csv", newline="") as fh:
        assert row.shape_bias == pytest.approx(toolbox_reference(list(csv.DictReader(fh)))[2])
    for key in ("overall_png", "overall_pdf", "per_class_png", "per_class_pdf"):
        assert out[key].stat().st_size > 1000
    # Figure 4 draws the table: one row per decision maker, grouped by model (humans first), the pooled points at the
    # table's values, each box spanning that row's quartiles.
    from topkshape.report.shape_bias import figure_order, overall_figure

    figure = overall_figure(table)
    box_ax, pooled_ax = figure.axes
    ordered = figure_order(table)
    assert ordered["decision_maker"].tolist() == ["humans", "alexnet-none", "alexnet-topk10", "alexnet-non_topk10"]
    points = np.concatenate([c.get_offsets() for c in pooled_ax.collections if len(c.get_offsets()) and c.get_offsets().shape[1] == 2
                             and type(c).__name__ == "PathCollection"])
    assert sorted(map(tuple, points.round(12))) == sorted(zip(ordered["shape_bias"].round(12), np.arange(len(ordered), dtype=float)))
    boxes = sorted((patch.get_y() + 0.3, patch.get_x(), patch.get_x() + patch.get_width()) for patch in box_ax.patches)
    expected_boxes = [(float(y), r.per_class_q1, r.per_class_q3) for y, r in enumerate(ordered.itertuples())]
    np.testing.assert_allclose(np.array(boxes), np.array(expected_boxes), atol=1e-12)
    assert [t.get_text() for t in box_ax.get_yticklabels()][-1].startswith(ordered["model"].iloc[-1])
    assert "humans" in out["md"].read_text()
    # Figure 4's per-class values and their box are model-vs-human's, humans averaged over observers.
    human_files = sorted(RAW_DIR.glob("cue-conflict_subject-*.csv"))
    rows = [r for path in human_files for r in csv.DictReader(open(path, newline=""))]
    expected = toolbox_boxplot_values(rows, sorted({r["subj"] for r in rows}))
    per_class = pd.read_csv(out["per_class_csv"])
    assert per_class.loc[per_class["decision_maker"] == "humans", "shape_bias"].tolist() == pytest.approx(expected, abs=1e-12)
    humans = table[table["model"] == "humans"].iloc[0]
    assert [humans.per_class_q1, humans.per_class_median, humans.per_class_q3] == pytest.approx(list(np.percentile(expected, [25, 50, 75])))


# model-vs-human's HumanCategories (modelvshuman/helper/human_categories.py at 79ed7cd): every category's
# ImageNet indices, typed here as an independent reference of the package's table.
TOOLBOX_INDICES = {
    "airplane": [404],
    "bear": [294, 295, 296, 297],
    "bicycle": [444, 671],
    "bird": [8, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 22, 23, 24, 80, 81, 82, 83, 87, 88, 89, 90, 91, 92, 93, 94, 95,
        96, 98, 99, 100, 127, 128, 129, 130, 131, 132, 133, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
        145],
    "boat": [472, 554, 625, 814, 914],
    "bottle": [440, 720, 737, 898, 899, 901, 907],
    "car": [436, 511, 817],
    "cat": [281, 282, 283, 284, 285, 286],
    "chair": [423, 559, 765, 857],
    "clock": [409, 530, 892],
    "dog": [152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173,
        174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 193, 194,
        195, 196, 197, 198, 199, 200, 201, 202, 203, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215,
        216, 217, 218, 219, 220, 221, 222, 223, 224, 225, 226, 228, 229, 230, 231, 232, 233, 234, 235, 236,
        237, 238, 239, 240, 241, 243, 244, 245, 246, 247, 248, 249, 250, 252, 253, 254, 255, 256, 257, 259,
        261, 262, 263, 265, 266, 267, 268],
    "elephant": [385, 386],
    "keyboard": [508, 878],
    "knife": [499],
    "oven": [766],
    "truck": [555, 569, 656, 675, 717, 734, 864, 867],
}


def test_the_sixteen_class_table_is_model_vs_humans_index_for_index():
    table = sixteen_class_indices()
    assert list(table) == sorted(TOOLBOX_INDICES)  # the toolbox's (sorted) category order: the decision's argmax order
    for category, indices in TOOLBOX_INDICES.items():
        assert table[category] == indices, category
    every = [i for indices in TOOLBOX_INDICES.values() for i in indices]
    assert len(every) == len(set(every)) == 207 and all(0 <= i < 1000 for i in every)

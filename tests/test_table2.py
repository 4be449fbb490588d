"""Table 2: FID and KID runs read from metric files, mean ± std per cell, each cell under its
header, and the sample grid. Expected values are worked out by hand from the numbers written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from topkshape.report import table2

# (class, variant) -> per-seed (FID, KID x 1e3); every number distinct, so a cell from the wrong
# class, variant or metric cannot match.
RUNS = {
    ("fish", "fastgan"): [(50.0, 12.0), (54.0, 14.0), (61.0, 19.0)],
    ("fish", "fastgan_topk"): [(40.0, 6.0), (43.0, 7.5)],
    ("jeep", "fastgan"): [(70.0, 30.0), (72.0, 33.0)],
    ("jeep", "fastgan_topk"): [(35.0, 2.0), (38.0, 2.5), (44.0, 5.5)],
}
REFERENCE = {"fastgan": {"jeep": {"fid": [49.0, 1.4], "kid_x1e3": [12.0, 1.9]}},
             "fastgan_topk": {"jeep": {"fid": [38.7, 0.5]}, "fish": {"kid_x1e3": [6.9, 0.7]}}}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _cell(values: list[float]) -> str:
    return "{:.1f} ± {:.1f}".format(*_mean_sd(values))


@pytest.fixture
def metric_paths(tmp_path) -> list[Path]:
    paths = []
    for (cls, variant), runs in RUNS.items():
        for seed, (fid, kid) in enumerate(runs):
            path = tmp_path / "gan" / cls / variant / f"seed{seed + 3}" / "metrics.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"fid": fid, "kid_x1e3": kid, "kid": kid / 1000}))
            paths.append(path)
    return paths


@pytest.fixture
def written(metric_paths, tmp_path):
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"table2": REFERENCE}))
    out = {k: tmp_path / f"table2.{k}" for k in ("csv", "md", "tex", "json")}
    table = table2.write_table2(list(reversed(metric_paths)), reference, out, "Table 2 under test", "A note on the protocol.")
    return table, out


def test_load_runs_takes_class_variant_and_seed_from_the_path(metric_paths):
    runs = table2.load_runs(reversed(metric_paths))
    assert list(runs.columns) == ["class", "variant", "seed", "fid", "kid_x1e3", "fid_init"]
    assert list(runs.iloc[:, :5].itertuples(index=False, name=None))[:3] == [("fish", "fastgan", 3, 50.0, 12.0), ("fish", "fastgan", 4, 54.0, 14.0), ("fish", "fastgan", 5, 61.0, 19.0)]
    assert len(runs) == 10 and runs.iloc[-1, :5].tolist() == ["jeep", "fastgan_topk", 5, 44.0, 5.5]
    assert runs["fid_init"].isna().all()  # metrics written before the FID at initialisation was measured
    assert runs.index.tolist() == list(range(10))  # numbered in sorted order


def test_aggregate_sorts_by_class_then_variant_whatever_the_order_of_the_runs(metric_paths):
    runs = table2.load_runs(metric_paths).iloc[::-1]
    table = table2.aggregate(runs, None)
    assert list(table[["class", "variant", "metric"]].itertuples(index=False, name=None)) == [
        (cls, variant, metric) for cls in ("fish", "jeep") for variant in ("fastgan", "fastgan_topk") for metric in ("fid", "kid_x1e3")]


def test_aggregate_gives_mean_sample_std_and_paper_values_per_class_variant_metric(written):
    table, _ = written
    assert len(table) == 4 * 2

    def row(cls, variant, metric):
        hit = table[(table["class"] == cls) & (table.variant == variant) & (table.metric == metric)]
        assert len(hit) == 1
        return hit.iloc[0]

    r = row("jeep", "fastgan_topk", "fid")  # 35, 38, 44: mean 39, sample variance (16 + 1 + 25) / 2 = 21
    assert r["mean"] == pytest.approx(39.0) and r["std"] == pytest.approx(math.sqrt(21.0)) and r["n"] == 3
    assert (r.paper_mean, r.paper_std) == (38.7, 0.5)
    r = row("fish", "fastgan_topk", "kid_x1e3")  # 6, 7.5
    assert r["mean"] == pytest.approx(6.75) and r["std"] == pytest.approx(math.sqrt(1.125)) and r.paper_mean == 6.9
    assert np.isnan(row("fish", "fastgan_topk", "fid").paper_mean)
    assert np.isnan(row("fish", "fastgan", "fid").paper_std)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # no std of one value computed (numpy warns)
def test_one_seed_has_no_std_and_no_reference_file_prints_no_paper_values(tmp_path):
    path = tmp_path / "jeep" / "fastgan" / "seed0" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"fid": 12.5, "kid_x1e3": 3.3}))
    out = {k: tmp_path / f"t2.{k}" for k in ("csv", "md", "tex", "json")}
    table = table2.write_table2([path], None, out, "t", "n")
    assert table["n"].tolist() == [1, 1] and table["std"].isna().all() and table.paper_mean.isna().all()
    assert out["md"].read_text() == """# t

n

| Method | jeep FID | jeep FID (paper) | jeep KID×10³ | jeep KID×10³ (paper) |
|---|---|---|---|---|
| FastGAN | 12.5 | – | 3.3 | – |
| FastGAN w. Top-K (ours) | – | – | – | – |
"""


def test_markdown_cells_are_under_their_class_metric_and_paper_headers(written):
    _, out = written
    lines = out["md"].read_text().splitlines()
    assert lines[:4] == ["# Table 2 under test", "", "A note on the protocol.", ""]
    header = [c.strip() for c in lines[4].strip("|").split("|")]
    assert header == ["Method", "fish FID", "fish FID (paper)", "fish KID×10³", "fish KID×10³ (paper)",
                      "jeep FID", "jeep FID (paper)", "jeep KID×10³", "jeep KID×10³ (paper)"]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[6:])}
    assert list(rows) == ["FastGAN", "FastGAN w. Top-K (ours)"]
    for (cls, variant), runs in RUNS.items():
        row = dict(zip(header, rows[table2.VARIANT_LABELS[variant]]))
        assert row[f"{cls} FID"] == _cell([fid for fid, _ in runs])
        assert row[f"{cls} KID×10³"] == _cell([kid for _, kid in runs])
    topk, base = (dict(zip(header, rows[table2.VARIANT_LABELS[v]])) for v in ("fastgan_topk", "fastgan"))
    assert topk["jeep FID (paper)"] == "38.7 ± 0.5" and topk["jeep KID×10³ (paper)"] == "–"
    assert topk["fish KID×10³ (paper)"] == "6.9 ± 0.7" and topk["fish FID (paper)"] == "–"
    assert base["jeep KID×10³ (paper)"] == "12.0 ± 1.9"


def test_latex_columns_are_fid_then_kid_per_class(written):
    _, out = written
    lines = out["tex"].read_text().splitlines()
    assert lines[:4] == ["\\begin{tabular}{lcccc}", "\\toprule", "Method & fish FID & fish KID$^*$ & jeep FID & jeep KID$^*$ \\\\", "\\midrule"]
    body = [line.removesuffix(" \\\\").split(" & ") for line in lines[4:6]]
    for cells, variant in zip(body, ("fastgan", "fastgan_topk")):
        assert cells[0] == table2.VARIANT_LABELS[variant]
        expected = [_cell([r[i] for r in RUNS[cls, variant]]) for cls in ("fish", "jeep") for i in (0, 1)]
        assert cells[1:] == [c.replace("±", "$\\pm$") for c in expected]
    assert lines[6:] == ["\\bottomrule", "\\end{tabular}"]


def test_a_missing_variant_prints_dashes(metric_paths):
    only_base = [p for p in metric_paths if p.parent.parent.name == "fastgan"]
    table = table2.aggregate(table2.load_runs(only_base), None)
    md = table2.to_markdown(table, "t", "n").splitlines()
    assert md[-1] == "| FastGAN w. Top-K (ours) | – | – | – | – | – | – | – | – |"
    tex = table2.to_latex(table).splitlines()
    assert tex[5] == "FastGAN w. Top-K (ours) & -- & -- & -- & -- \\\\"


def test_markdown_ends_with_each_runs_final_fid_as_a_fraction_of_its_fid_at_initialisation(tmp_path):
    paths = []
    for variant, seed, fid, init in (("fastgan", 1, 6.0, 60.0), ("fastgan", 0, 7.5, 50.0), ("fastgan_topk", 0, 0.9, 45.0)):
        path = tmp_path / "hexagon" / variant / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"fid": fid, "kid_x1e3": 1.0, "fid_init": init}))
        paths.append(path)
    out = {k: tmp_path / f"t2.{k}" for k in ("csv", "md", "tex", "json")}
    table2.write_table2(paths, None, out, "t", "n")
    tail = out["md"].read_text().split("| FastGAN w. Top-K (ours) |")[1].splitlines()[1:]
    assert tail == ["", "Final FID ÷ FID of the same generator at initialisation, per seed (smaller: training moved further):", "",
                    "- hexagon, FastGAN: seed 0: 0.150 (50.0 → 7.5), seed 1: 0.100 (60.0 → 6.0)",
                    "- hexagon, FastGAN w. Top-K (ours): seed 0: 0.020 (45.0 → 0.9)"]


def test_progress_lines_are_sorted_by_class_and_variant_skip_unscored_runs_and_name_unknown_variants():
    runs = pd.DataFrame([("zebra", "fastgan", 0, 2.0, 1.0, 20.0), ("apple", "my_gan", 1, 3.0, 1.0, 30.0),
                         ("apple", "fastgan", 0, 1.0, 1.0, None), ("apple", "fastgan", 1, 4.0, 1.0, 40.0)],
                        columns=["class", "variant", "seed", "fid", "kid_x1e3", "fid_init"])
    assert table2.training_progress(runs).splitlines()[2:] == [
        "- apple, FastGAN: seed 1: 0.100 (40.0 → 4.0)", "- apple, my_gan: seed 1: 0.100 (30.0 → 3.0)",
        "- zebra, FastGAN: seed 0: 0.100 (20.0 → 2.0)"]


def test_the_provenance_goes_into_the_json_with_the_metrics(metric_paths, tmp_path):
    out = {k: tmp_path / f"p.{k}" for k in ("csv", "md", "tex", "json")}
    table2.write_table2(metric_paths, None, out, "t", "n", provenance={"git": {"commit": "abc123"}})
    written = json.loads(out["json"].read_text())
    assert "abc123" in json.dumps(written) and "jeep/fastgan/fid" in written


def test_runs_without_a_fid_at_initialisation_add_nothing_below_the_table(written):
    _, out = written
    assert out["md"].read_text().rstrip().splitlines()[-1].startswith("| FastGAN w. Top-K (ours) |")


def test_dvc_metrics_are_keyed_class_variant_metric(written):
    _, out = written
    metrics = json.loads(out["json"].read_text())
    assert metrics["jeep/fastgan_topk/fid"] == {"mean": 39.0, "std": round(math.sqrt(21.0), 4)}
    assert metrics["jeep/fastgan/kid_x1e3"]["mean"] == 31.5 and len(metrics) == 8


def test_sample_grid_draws_one_row_per_preview_split_into_its_samples_and_labelled_with_class_and_variant(tmp_path):
    previews = []
    # an RGB preview of two square samples; a greyscale and an RGBA preview that are no row of squares (one tile
    # each), the last in an unknown variant folder
    for cls, variant, mode, color, height in (("fish", "fastgan", "RGB", (0, 200, 30), 20), ("fish", "fastgan_topk", "L", 90, 21),
                                              ("jeep", "other", "RGBA", (20, 200, 30, 255), 24)):
        path = tmp_path / cls / variant / "seed0" / "preview.png"
        path.parent.mkdir(parents=True)
        Image.new(mode, (40, height), color).save(path)
        previews.append(path)
    fig = table2.sample_grid_figure(previews)
    axes = np.array(fig.axes).reshape(3, 2)
    assert [[len(ax.images) for ax in row] for row in axes] == [[1, 1], [1, 0], [1, 0]]
    assert [ax.get_title() for ax in axes[0]] == ["1", "2"]
    assert [row[0].get_ylabel() for row in axes] == ["fish\nFastGAN", "fish\nFastGAN w. Top-K (ours)", "jeep\nother"]
    np.testing.assert_array_equal(axes[0][1].images[0].get_array(), np.full((20, 20, 3), (0, 200, 30)))
    np.testing.assert_array_equal(axes[1][0].images[0].get_array(), np.full((21, 40, 3), 90))
    np.testing.assert_array_equal(axes[2][0].images[0].get_array(), np.full((24, 40, 3), (20, 200, 30)))
    outs = [tmp_path / "grid.png", tmp_path / "copy" / "grid.pdf"]
    table2.sample_grid(previews, outs)
    assert Image.open(outs[0]).format == "PNG" and outs[1].read_bytes()[:5] == b"%PDF-"


def _preview(root: Path, cls: str, variant: str, size: tuple[int, int]) -> Path:
    path = root / cls / variant / "seed0" / "preview.png"
    path.parent.mkdir(parents=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def test_a_preview_that_is_no_row_of_whole_squares_is_one_tile(tmp_path):
    assert [t.shape for t in table2.preview_tiles(_preview(tmp_path, "a", "fastgan", (30, 10)))] == [(10, 10, 3)] * 3
    assert [t.shape for t in table2.preview_tiles(_preview(tmp_path, "b", "fastgan", (50, 20)))] == [(20, 50, 3)]  # 2.5 squares


def test_sample_grid_size_layout_and_labels(tmp_path):
    """Two rows, 3 columns: the figure is min(5.5, 1.3 + 0.55 x 3) = 2.95 in wide and 0.45 + 0.5 x 2 = 1.45 in
    high; a row with fewer samples hides its empty axes; samples are drawn pixel for pixel."""
    previews = [_preview(tmp_path, "jeep", "fastgan", (30, 10)), _preview(tmp_path, "fish", "fastgan_topk", (12, 12))]
    fig = table2.sample_grid_figure(previews)
    assert tuple(fig.get_size_inches()) == pytest.approx((2.95, 1.45))
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    axes = np.array(fig.axes).reshape(2, 3)
    assert [[ax.axison for ax in row] for row in axes] == [[True, True, True], [True, False, False]]
    assert {ax.images[0].get_interpolation() for row in axes for ax in row if ax.images} == {"nearest"}
    label = axes[1][0].yaxis.label
    assert (label.get_text(), label.get_rotation(), label.get_ha(), label.get_va()) == ("fish\nFastGAN w. Top-K (ours)", 0.0, "right", "center")
    assert fig.get_suptitle() == "samples of each generator (first seed)"
    one_row = table2.sample_grid_figure([previews[0]])  # a single row is still a row of axes
    assert len(one_row.axes) == 3 and tuple(one_row.get_size_inches()) == pytest.approx((2.95, 0.95))
    empty = table2.sample_grid_figure([])
    assert len(empty.axes) == 1 and tuple(empty.get_size_inches()) == pytest.approx((1.85, 0.95))
    wide = table2.sample_grid_figure([_preview(tmp_path, "train", "fastgan", (120, 10))])  # 12 columns: capped at the text width
    assert tuple(wide.get_size_inches()) == pytest.approx((5.5, 0.95))

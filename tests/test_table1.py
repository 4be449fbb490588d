"""Table 1: runs read from summary files, mean ± std per cell, the cells under the right headers,
Welch's t-test, and the cue-conflict scores each run reports.

Every expected value here is worked out by hand from the numbers the test writes, never with the
code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from topkshape.classify.evaluate import cue_conflict_scores, predict
from topkshape.report import table1

# Accuracies in % per (subset, variant): one value per seed. Every number differs from every
# other, so a cell that comes from the wrong column, subset, variant or set cannot match.
CLEAN = {("S1", "baseline"): [80.0, 82.0, 84.0], ("S1", "topk"): [70.0, 71.0, 75.0], ("S1", "topk_mean_rpl"): [60.0, 62.0, 67.0],
         ("S2", "baseline"): [40.0, 44.0, 48.0], ("S2", "topk"): [30.0, 36.0], ("S2", "topk_mean_rpl"): [20.0, 21.0, 22.0]}
# Stylized: baseline has a small spread, Top-K a large one, with unequal seed counts on S2, so
# Welch's and Student's t differ.
STYLIZED = {("S1", "baseline"): [10.0, 11.0, 12.0], ("S1", "topk"): [20.0, 26.0, 35.0], ("S1", "topk_mean_rpl"): [13.0, 16.0, 17.0],
            ("S2", "baseline"): [5.0, 5.5, 7.0], ("S2", "topk"): [9.0, 19.0], ("S2", "topk_mean_rpl"): [3.0, 4.0, 8.0]}
BEST_GAIN = {"clean": 1.0, "stylized": 2.0}  # best epoch = final + this, in points
SHAPE_BIAS, TEXTURE_RATE = 0.40, 0.15  # per run, offset by the seed (below)
REFERENCE = {"baseline": {"S1": {"clean": [81.5, 0.5], "stylized": [9.5, 1.5]}},
             "topk": {"S1": {"clean": [73.5, 0.6], "stylized": [30.0, 0.8]}, "S2": {"stylized": [12.5, 0.25]}}}
# The runs are ImageNet runs on the paper configuration's classes, so the paper's values are set beside
# them (tests/test_user_traps.py: a run on other data shows none).
WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079"]
PAPER_SUBSETS = {"S1": WNIDS, "S2": WNIDS}


def _write_summaries(root: Path) -> list[Path]:
    paths = []
    for (subset, variant), accs in CLEAN.items():
        for seed, clean in enumerate(accs):
            stylized = STYLIZED[subset, variant][seed]
            path = root / "train" / subset / variant / f"seed{seed}" / "summary.json"
            path.parent.mkdir(parents=True)
            final = {"epoch": 4, "clean_acc": clean / 100, "stylized_acc": stylized / 100,
                     "shape_bias": SHAPE_BIAS + seed / 100, "texture_rate": TEXTURE_RATE + seed / 100}
            best = {"clean_acc": (clean + BEST_GAIN["clean"]) / 100, "clean_epoch": 2,
                    "stylized_acc": (stylized + BEST_GAIN["stylized"]) / 100, "stylized_epoch": 3}
            summary = {"settings": {"seed": seed + 10}, "classes": WNIDS, "final_epoch": final,
                       "best_epoch": best, "mean_images_per_s": 100.0 + seed}
            path.write_text(json.dumps(summary))
            paths.append(path)
    return paths


@pytest.fixture
def summaries(tmp_path) -> list[Path]:
    return _write_summaries(tmp_path)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1), by the textbook formula."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _cell(values: list[float]) -> str:
    return "{:.1f} ± {:.1f}".format(*_mean_sd(values))


def _markdown_block(md: str, heading_start: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header cells and rows (first cell -> all cells) of the table under a ``## `` heading."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading_start}"))
    table = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
    header, _, *rows = table
    assert all(len(row) == len(header) for row in rows), table
    return header, {row[0]: row for row in rows}


def _column(header: list[str], row: list[str], name: str, offset: int = 0) -> str:
    """The cell of ``row`` under the header ``name`` (``offset`` columns to its right)."""
    assert header.count(name) == 1, (name, header)
    return row[header.index(name) + offset]


# --- reading runs and aggregating ----------------------------------------------------------


def test_load_runs_reads_percentages_seed_and_the_subset_variant_from_the_path(summaries):
    runs = table1.load_runs(reversed(summaries))
    assert len(runs) == sum(len(v) for v in CLEAN.values())
    assert list(runs[["subset", "variant"]].drop_duplicates().itertuples(index=False, name=None)) == sorted(CLEAN)
    row = runs[(runs.subset == "S2") & (runs.variant == "topk") & (runs.seed == 11)].iloc[0]
    assert row.clean == pytest.approx(36.0) and row.stylized == pytest.approx(19.0)
    assert row.best_clean == pytest.approx(37.0) and row.best_stylized == pytest.approx(21.0)
    assert row.shape_bias == pytest.approx(41.0) and row.texture_rate == pytest.approx(16.0)
    assert row.images_per_s == 101.0
    assert runs.index.tolist() == list(range(len(runs)))  # numbered in sorted order


def test_aggregate_gives_mean_sample_std_count_and_difference_from_the_paper(summaries):
    table = table1.aggregate(table1.load_runs(summaries), REFERENCE)
    assert len(table) == 6 * 6  # 6 (subset, variant) groups x 6 metrics

    def row(subset, variant, metric):
        hit = table[(table.subset == subset) & (table.variant == variant) & (table.metric == metric)]
        assert len(hit) == 1
        return hit.iloc[0]

    r = row("S1", "topk", "stylized")  # 20, 26, 35: mean 27, sample variance (49 + 1 + 64) / 2 = 57
    assert r["mean"] == pytest.approx(27.0) and r["std"] == pytest.approx(math.sqrt(57.0)) and r["n"] == 3
    assert (r.paper_mean, r.paper_std) == (30.0, 0.8) and r.difference == pytest.approx(-3.0)
    r = row("S2", "topk", "clean")  # 30, 36: mean 33, sample sd sqrt(18)
    assert r["mean"] == pytest.approx(33.0) and r["std"] == pytest.approx(math.sqrt(18.0)) and r["n"] == 2
    assert np.isnan(r.paper_mean) and np.isnan(r.difference)  # no paper value for S2 clean
    r = row("S1", "baseline", "best_stylized")  # 12, 13, 14
    assert r["mean"] == pytest.approx(13.0) and r["std"] == pytest.approx(1.0)
    r = row("S1", "baseline", "shape_bias")  # 40, 41, 42 (%)
    assert r["mean"] == pytest.approx(41.0) and r["std"] == pytest.approx(1.0)
    assert row("S1", "topk_mean_rpl", "texture_rate")["mean"] == pytest.approx(16.0)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # nothing computed from too few runs (numpy and scipy warn)
def test_one_seed_has_no_std_and_missing_metrics_are_left_out(tmp_path):
    path = tmp_path / "S1" / "topk" / "seed0" / "summary.json"
    path.parent.mkdir(parents=True)
    final = {"epoch": 0, "clean_acc": 0.5, "stylized_acc": 0.25}  # no styles.csv: no cue-conflict scores
    best = {"clean_acc": 0.5, "clean_epoch": 0, "stylized_acc": 0.25, "stylized_epoch": 0}
    path.write_text(json.dumps({"settings": {"seed": 0}, "final_epoch": final, "best_epoch": best, "mean_images_per_s": 1.0}))
    table = table1.aggregate(table1.load_runs([path]))
    assert sorted(table.metric) == ["best_clean", "best_stylized", "clean", "stylized"]
    assert table["n"].tolist() == [1] * 4 and table["std"].isna().all() and table["paper_mean"].isna().all()
    md = table1.to_markdown(table, table1.welch_tests(table1.load_runs([path])), "t")
    header, rows = _markdown_block(md, "Final epoch")
    assert _column(header, rows[table1.VARIANT_LABELS["topk"]], "S1 stylized") == "25.0 (n=1)"
    assert "Cue-conflict" not in md


# --- the markdown and LaTeX cells sit under their headers ------------------------------------


@pytest.fixture
def written(summaries, tmp_path):
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"table1": REFERENCE}))
    out = {k: tmp_path / f"table1.{k}" for k in ("csv", "md", "tex", "json")}
    table = table1.write_table1(summaries, reference, out, "Table 1 under test", paper_subsets=PAPER_SUBSETS)
    return table, out


def test_markdown_final_epoch_cells_are_under_their_subset_set_and_paper_headers(written):
    _, out = written
    md = out["md"].read_text()
    assert md.startswith("# Table 1 under test\n")
    header, rows = _markdown_block(md, "Final epoch")
    assert header[0] == "Top-1 acc. (%)"
    assert header[1:] == ["S1 clean", "S1 clean (paper)", "Δ", "S1 stylized", "S1 stylized (paper)", "Δ",
                          "S2 clean", "S2 clean (paper)", "Δ", "S2 stylized", "S2 stylized (paper)", "Δ"]
    assert list(rows) == [table1.VARIANT_LABELS[v] for v in ("baseline", "topk", "topk_mean_rpl")]
    for (subset, variant), values in CLEAN.items():
        row = rows[table1.VARIANT_LABELS[variant]]
        assert _column(header, row, f"{subset} clean") == _cell(values)
        assert _column(header, row, f"{subset} stylized") == _cell(STYLIZED[subset, variant])
    topk = rows[table1.VARIANT_LABELS["topk"]]
    assert _column(header, topk, "S1 stylized (paper)") == "30.0 ± 0.8"
    assert _column(header, topk, "S1 stylized (paper)", 1) == "-3.0"  # 27.0 - 30.0
    assert _column(header, topk, "S1 clean (paper)", 1) == "-1.5"  # 72.0 - 73.5
    assert _column(header, topk, "S2 stylized (paper)", 1) == "+1.5"  # 14.0 - 12.5
    assert _column(header, topk, "S2 clean (paper)") == "–" and _column(header, topk, "S2 clean (paper)", 1) == "–"
    baseline = rows[table1.VARIANT_LABELS["baseline"]]
    assert _column(header, baseline, "S1 clean (paper)") == "81.5 ± 0.5" and _column(header, baseline, "S1 clean (paper)", 1) == "+0.5"


def test_markdown_best_epoch_and_cue_conflict_blocks_hold_their_own_metrics(written):
    _, out = written
    md = out["md"].read_text()
    assert "## Final epoch (main result; mean ± std over 3 seeds)" in md
    header, rows = _markdown_block(md, "Paper code's protocol")
    for (subset, variant), values in CLEAN.items():
        row = rows[table1.VARIANT_LABELS[variant]]
        assert _column(header, row, f"{subset} clean") == _cell([v + BEST_GAIN["clean"] for v in values])
        assert _column(header, row, f"{subset} stylized") == _cell([v + BEST_GAIN["stylized"] for v in STYLIZED[subset, variant]])
    header, rows = _markdown_block(md, "Cue-conflict")
    assert header[1:] == ["S1 shape bias %", "S1 texture %", "S2 shape bias %", "S2 texture %"]  # no paper columns here
    row = rows[table1.VARIANT_LABELS["topk"]]
    assert _column(header, row, "S1 shape bias %") == "41.0 ± 1.0"  # 40, 41, 42
    assert _column(header, row, "S2 shape bias %") == "40.5 ± 0.7"  # 40, 41
    assert _column(header, row, "S1 texture %") == "16.0 ± 1.0"  # 15, 16, 17


def test_latex_columns_are_subset_then_its_stylized_set_in_header_order(written):
    _, out = written
    lines = out["tex"].read_text().splitlines()
    assert lines[0] == "\\begin{tabular}{lcccc}"
    assert lines[2] == "Top-1 Acc. (\\%) & S1 & Stylized-S1 & S2 & Stylized-S2 \\\\"
    body = [line.removesuffix(" \\\\").split(" & ") for line in lines[4:7]]
    assert [cells[0] for cells in body] == ["ResNet-18", "ResNet-18 w. Top-K during training", "ResNet-18 w. Top\\_K\\_Mean\\_Rpl during training"]
    for cells, variant in zip(body, ("baseline", "topk", "topk_mean_rpl")):
        expected = [_cell(CLEAN["S1", variant]), _cell(STYLIZED["S1", variant]), _cell(CLEAN["S2", variant]), _cell(STYLIZED["S2", variant])]
        assert cells[1:] == [c.replace("±", "$\\pm$") for c in expected]
    assert lines[7:] == ["\\bottomrule", "\\end{tabular}"]


def test_csv_and_dvc_metrics_hold_the_aggregated_values(written):
    table, out = written
    metrics = json.loads(out["json"].read_text())
    assert len(metrics) == len(table)
    assert metrics["S1/topk/stylized"] == {"mean": 27.0, "std": round(math.sqrt(57.0), 4)}
    assert metrics["S2/topk/clean"]["mean"] == 33.0
    assert out["csv"].read_text().splitlines()[0] == "subset,variant,metric,mean,std,n,paper_mean,paper_std,difference"


# --- Welch's t-test -------------------------------------------------------------------------


def _welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    """t and two-sided p of Welch's test of mean(a) - mean(b) (Welch 1947; Satterthwaite df)."""
    (ma, sa), (mb, sb) = _mean_sd(a), _mean_sd(b)
    va, vb = sa**2 / len(a), sb**2 / len(b)
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, 2 * stats.t.sf(abs(t), df)


def test_welch_row_is_topk_minus_baseline_with_unequal_variances(summaries):
    tests = table1.welch_tests(table1.load_runs(summaries))
    assert list(tests.itertuples(index=False, name=None))[0][:3] == ("S1", "topk - baseline", "stylized")
    assert len(tests) == 4  # 2 subsets x 2 comparisons
    assert list(tests.columns) == ["subset", "comparison", "metric", "difference", "t", "p", "n"]
    for subset in ("S1", "S2"):
        for variant in ("topk", "topk_mean_rpl"):
            other, base = STYLIZED[subset, variant], STYLIZED[subset, "baseline"]
            row = tests[(tests.subset == subset) & (tests.comparison == f"{variant} - baseline")].iloc[0]
            t, p = _welch_by_hand(other, base)
            assert row.t == pytest.approx(t, rel=1e-9) and row.p == pytest.approx(p, rel=1e-9)
            scipy_result = stats.ttest_ind(other, base, equal_var=False)
            assert row.t == pytest.approx(scipy_result.statistic) and row.p == pytest.approx(scipy_result.pvalue)
            assert row.difference == pytest.approx(sum(other) / len(other) - sum(base) / len(base))
            assert row.n == f"{len(other)} vs {len(base)}"
    s2 = tests[(tests.subset == "S2") & (tests.comparison == "topk - baseline")].iloc[0]
    assert s2.t > 0  # Top-K (14) above the baseline (5.83): positive, not swapped
    student = stats.ttest_ind(STYLIZED["S2", "topk"], STYLIZED["S2", "baseline"], equal_var=True)
    assert abs(s2.p - student.pvalue) > 0.01 and abs(s2.t - student.statistic) > 0.5  # this data tells the two apart
    worse = tests[(tests.subset == "S2") & (tests.comparison == "topk_mean_rpl - baseline")].iloc[0]
    assert worse.t < 0 and worse.difference < 0  # 5.0 below 5.83


@pytest.mark.filterwarnings("error::RuntimeWarning")  # nothing computed from too few runs (numpy and scipy warn)
def test_welch_needs_two_runs_on_each_side_and_the_markdown_prints_its_row(summaries):
    runs = table1.load_runs(summaries)
    one_topk = runs[~((runs.variant == "topk") & (runs.seed > 10))]  # S1 and S2 Top-K with one run left
    tests = table1.welch_tests(one_topk)
    row = tests[(tests.subset == "S1") & (tests.comparison == "topk - baseline")].iloc[0]
    assert np.isnan(row.t) and np.isnan(row.p) and row.n == "1 vs 3" and row.difference == pytest.approx(20.0 - 11.0)
    md = table1.to_markdown(table1.aggregate(runs), table1.welch_tests(runs), "t")
    header, rows = _markdown_block(md, "Welch")
    assert header == ["subset", "comparison", "Δ acc.", "t", "p", "runs"]
    t, p = _welch_by_hand(STYLIZED["S2", "topk"], STYLIZED["S2", "baseline"])
    s2 = [r for r in md.splitlines() if r.startswith("| S2 | topk - baseline |")]
    assert s2 == [f"| S2 | topk - baseline | +8.2 | {t:.2f} | {p:.3g} | 2 vs 3 |"]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # nothing computed from too few runs (numpy and scipy warn)
def test_a_subset_without_a_baseline_gives_no_test_statistic(summaries):
    runs = table1.load_runs(summaries)
    tests = table1.welch_tests(runs[runs.variant != "baseline"])
    assert tests.t.isna().all() and tests.difference.isna().all() and set(tests.n) == {"3 vs 0", "2 vs 0"}


# --- cue-conflict scores of one run --------------------------------------------------------


def test_cue_conflict_scores_count_shape_and_texture_decisions_on_conflicting_images_only():
    # columns: prediction, shape class, texture class
    rows = [
        (0, 0, 1),  # shape decision
        (2, 2, 0),  # shape decision (texture class 0 is a real class)
        (1, 0, 1),  # texture decision
        (3, 0, 1),  # neither
        (0, 0, 0),  # shape = texture: left out
        (1, 1, -1),  # no texture label: left out
    ]
    p, s, t = (torch.tensor(col) for col in zip(*rows))
    scores = cue_conflict_scores(p, s, t)
    assert scores == {"shape_rate": pytest.approx(2 / 4), "texture_rate": pytest.approx(1 / 4), "shape_bias": pytest.approx(2 / 3)}


def test_cue_conflict_shape_bias_is_nan_without_shape_or_texture_decisions():
    one = cue_conflict_scores(torch.tensor([5]), torch.tensor([0]), torch.tensor([1]))
    assert one["shape_rate"] == 0 and one["texture_rate"] == 0 and math.isnan(one["shape_bias"])
    texture_only = cue_conflict_scores(torch.tensor([1]), torch.tensor([0]), torch.tensor([1]))
    assert texture_only == {"shape_rate": 0.0, "texture_rate": 1.0, "shape_bias": 0.0}
    nothing = cue_conflict_scores(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, -1]))
    assert nothing["shape_rate"] == 0 and nothing["texture_rate"] == 0 and math.isnan(nothing["shape_bias"])


class _Lookup(nn.Module):
    """Logits that pick ``x[:, 0]`` as the class in eval mode and class 0 in training mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = x[:, 0].long() if not self.training else torch.zeros(len(x), dtype=torch.long)
        return nn.functional.one_hot(target, 4).float()


def test_predict_returns_argmax_and_labels_in_loader_order_in_eval_mode():
    classes = torch.tensor([3, 1, 0, 2, 2])
    labels = torch.tensor([3, 0, 0, 1, 2])
    loader = DataLoader(TensorDataset(classes[:, None].float(), labels), batch_size=2)
    model = _Lookup().train()
    predicted, targets = predict(model, loader, torch.device("cpu"))
    assert predicted.tolist() == classes.tolist() and targets.tolist() == labels.tolist()
    assert not model.training


# --- the whole markdown and LaTeX text of a small table, written out by hand ------------------


def _small_runs(tmp_path: Path) -> list[Path]:
    """S1 only (ImageNet, the paper configuration's classes): baseline and Top-K with two seeds each, no Top-K
    mean-replace runs."""
    values = {  # clean, stylized, best clean, best stylized, shape bias, texture rate (fractions)
        "baseline": [(0.80, 0.10, 0.81, 0.12, 0.40, 0.20), (0.84, 0.14, 0.85, 0.16, 0.42, 0.20)],
        "topk": [(0.70, 0.20, 0.71, 0.22, 0.60, 0.10), (0.72, 0.30, 0.73, 0.32, 0.64, 0.12)],
    }
    paths = []
    for variant, seeds in values.items():
        for seed, (clean, stylized, best_clean, best_stylized, shape, texture) in enumerate(seeds):
            path = tmp_path / "S1" / variant / f"seed{seed}" / "summary.json"
            path.parent.mkdir(parents=True)
            final = {"epoch": 1, "clean_acc": clean, "stylized_acc": stylized, "shape_bias": shape, "texture_rate": texture}
            best = {"clean_acc": best_clean, "clean_epoch": 0, "stylized_acc": best_stylized, "stylized_epoch": 1}
            path.write_text(json.dumps({"settings": {"seed": seed}, "classes": WNIDS, "final_epoch": final, "best_epoch": best,
                                        "mean_images_per_s": 1.0}))
            paths.append(path)
    return paths


def test_markdown_of_a_small_table_is_exactly_the_hand_written_text(tmp_path):
    reference = tmp_path / "reference.yaml"
    reference.write_text(yaml.safe_dump({"table1": {"baseline": {"S1": {"clean": [81.5, 0.5]}}, "topk": {"S1": {"stylized": [30.0, 0.8]}}}}))
    out = {k: tmp_path / f"t.{k}" for k in ("csv", "md", "tex", "json")}
    table1.write_table1(_small_runs(tmp_path), reference, out, "T", paper_subsets={"S1": WNIDS})
    t, p = _welch_by_hand([20.0, 30.0], [10.0, 14.0])  # t = 13 / sqrt(50/2 + 8/2) = 2.41
    rows_dash = "| ResNet-18 w. Top_K_Mean_Rpl during training | – | – | – | – | – | – |"
    header = "| Top-1 acc. (%) | S1 clean | S1 clean (paper) | Δ | S1 stylized | S1 stylized (paper) | Δ |\n|---|---|---|---|---|---|---|"
    expected = f"""# T

## Final epoch (main result; mean ± std over 2 seeds)

{header}
| ResNet-18 | 82.0 ± 2.8 | 81.5 ± 0.5 | +0.5 | 12.0 ± 2.8 | – | – |
| ResNet-18 w. Top-K during training | 71.0 ± 1.4 | – | – | 25.0 ± 7.1 | 30.0 ± 0.8 | -5.0 |
{rows_dash}

## Paper code's protocol: best epoch per set, chosen on that set (optimistic)

{header}
| ResNet-18 | 83.0 ± 2.8 | – | – | 14.0 ± 2.8 | – | – |
| ResNet-18 w. Top-K during training | 72.0 ± 1.4 | – | – | 27.0 ± 7.1 | – | – |
{rows_dash}

## Cue-conflict decisions at the final epoch (shape bias and texture-choice rate, %)

| Top-1 acc. (%) | S1 shape bias % | S1 texture % |
|---|---|---|
| ResNet-18 | 41.0 ± 1.4 | 20.0 ± 0.0 |
| ResNet-18 w. Top-K during training | 62.0 ± 2.8 | 11.0 ± 1.4 |
| ResNet-18 w. Top_K_Mean_Rpl during training | – | – |

## Welch t-test on the stylized sets (final epoch)

| subset | comparison | Δ acc. | t | p | runs |
|---|---|---|---|---|---|
| S1 | topk - baseline | +13.0 | {t:.2f} | {p:.3g} | 2 vs 2 |
| S1 | topk_mean_rpl - baseline | – | – | – | 0 vs 2 |
"""
    assert f"{t:.2f}" == "2.41"
    assert out["md"].read_text() == expected
    assert out["tex"].read_text() == """\\begin{tabular}{lcc}
\\toprule
Top-1 Acc. (\\%) & S1 & Stylized-S1 \\\\
\\midrule
ResNet-18 & 82.0 $\\pm$ 2.8 & 12.0 $\\pm$ 2.8 \\\\
ResNet-18 w. Top-K during training & 71.0 $\\pm$ 1.4 & 25.0 $\\pm$ 7.1 \\\\
ResNet-18 w. Top\\_K\\_Mean\\_Rpl during training & -- & -- \\\\
\\bottomrule
\\end{tabular}
"""


def test_a_paper_value_without_std_shows_the_papers_three_runs_and_one_seed_shows_n_in_latex(tmp_path):
    path = tmp_path / "S1" / "topk" / "seed0" / "summary.json"
    path.parent.mkdir(parents=True)
    final = {"epoch": 0, "clean_acc": 0.5, "stylized_acc": 0.25}
    best = {"clean_acc": 0.5, "clean_epoch": 0, "stylized_acc": 0.25, "stylized_epoch": 0}
    path.write_text(json.dumps({"settings": {"seed": 0}, "final_epoch": final, "best_epoch": best, "mean_images_per_s": 1.0}))
    table = table1.aggregate(table1.load_runs([path]), {"topk": {"S1": {"clean": (70.0, float("nan"))}}})
    header, rows = _markdown_block(table1.to_markdown(table, table1.welch_tests(table1.load_runs([path])), "t"), "Final epoch")
    assert _column(header, rows[table1.VARIANT_LABELS["topk"]], "S1 clean (paper)") == "70.0 (n=3)"
    assert "ResNet-18 w. Top-K during training & 50.0 (n=1) & 25.0 (n=1) \\\\" in table1.to_latex(table).splitlines()


def test_a_table_without_runs_prints_its_headers_and_no_rows():
    empty = pd.DataFrame(columns=["subset", "variant", "metric", "mean", "std", "n", "paper_mean", "paper_std", "difference"])
    tests = pd.DataFrame(columns=["subset", "comparison", "metric", "difference", "t", "p", "n"])
    md = table1.to_markdown(empty, tests, "t")
    assert "## Final epoch (main result; mean ± std over 0 seeds)" in md
    assert not any(line.startswith("| ResNet") for line in md.splitlines())


def test_aggregate_sorts_by_subset_then_variant_whatever_the_order_of_the_runs(summaries):
    table = table1.aggregate(table1.load_runs(summaries).iloc[::-1])
    groups = list(dict.fromkeys(table[["subset", "variant"]].itertuples(index=False, name=None)))
    assert groups == sorted(CLEAN)


def test_a_run_without_shape_or_texture_decisions_still_reports_its_texture_rate(tmp_path):
    paths = []
    for seed in range(2):
        path = tmp_path / "S1" / "baseline" / f"seed{seed}" / "summary.json"
        path.parent.mkdir(parents=True)
        # shape + texture = 0: shape bias is undefined (NaN), the texture rate is 0
        final = {"epoch": 0, "clean_acc": 0.5, "stylized_acc": 0.25, "shape_bias": float("nan"), "texture_rate": 0.0}
        best = {"clean_acc": 0.5, "clean_epoch": 0, "stylized_acc": 0.25, "stylized_epoch": 0}
        path.write_text(json.dumps({"settings": {"seed": seed}, "final_epoch": final, "best_epoch": best, "mean_images_per_s": 1.0}))
        paths.append(path)
    table = table1.aggregate(table1.load_runs(paths))
    assert sorted(table.metric) == ["best_clean", "best_stylized", "clean", "stylized", "texture_rate"]
    assert table[table.metric == "texture_rate"]["mean"].tolist() == [0.0]


def _stylized_runs(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"subset": s, "variant": v, "seed": i, "stylized": x} for (s, v), xs in values.items() for i, x in enumerate(xs)])


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # scipy on the zero-spread sides
def test_welch_rows_follow_the_subset_order_and_print_tiny_p_and_zero_spread_as_numbers():
    runs = _stylized_runs({("S2", "baseline"): [10.0, 11.0, 12.0], ("S2", "topk"): [50.0, 51.0, 52.0],
                           ("S1", "baseline"): [10.0, 10.0], ("S1", "topk"): [20.0, 20.0]})
    tests = table1.welch_tests(runs)
    assert tests.subset.tolist() == ["S1", "S1", "S2", "S2"]
    empty = pd.DataFrame(columns=["subset", "variant", "metric", "mean", "std", "n", "paper_mean", "paper_std", "difference"])
    lines = table1.to_markdown(empty, tests, "t").splitlines()
    # no spread on either side: t = 10 / sqrt(0 + 0) = +inf, p = 0
    assert "| S1 | topk - baseline | +10.0 | inf | 0 | 2 vs 2 |" in lines
    t, p = _welch_by_hand([50.0, 51.0, 52.0], [10.0, 11.0, 12.0])  # t = 40 / sqrt(1/3 + 1/3) = 49.0
    assert p < 1e-4 and f"| S2 | topk - baseline | +40.0 | {t:.2f} | {p:.3g} | 3 vs 3 |" in lines
    assert "e-0" in f"{p:.3g}"


def test_table_json_carries_the_given_provenance_beside_unchanged_metrics(tmp_path):
    plain = {k: tmp_path / f"plain.{k}" for k in ("csv", "md", "tex", "json")}
    stamped = {k: tmp_path / f"stamped.{k}" for k in ("csv", "md", "tex", "json")}
    runs = _small_runs(tmp_path)
    table1.write_table1(runs, None, plain, "T")
    record = {"params": {"train": {"epochs": 3}}, "git": {"commit": "abc", "dirty": False}}
    table1.write_table1(runs, None, stamped, "T", provenance=record)
    metrics = json.loads(plain["json"].read_text())
    with_record = json.loads(stamped["json"].read_text())
    assert "provenance" not in metrics
    assert with_record.pop("provenance") == record
    assert with_record == metrics


def _binomial_tail(hits: int, trials: int, chance: float) -> float:
    return sum(math.comb(trials, k) * chance**k * (1 - chance) ** (trials - k) for k in range(hits, trials + 1))


def test_diagnostic_accuracies_are_tabulated_and_tested_against_chance_pooled_over_seeds(tmp_path):
    """Shape-only accuracies 24%, 26%, 30% of 50 images each (5 classes): 40 of 150 correct, tested
    against 1/5 one-sided; texture-only 90% each. A run without the sets adds nothing."""
    shape_only, texture_only = [0.24, 0.26, 0.30], 0.9
    paths = []
    for seed, acc in enumerate(shape_only):
        path = tmp_path / "train" / "S1" / "baseline" / f"seed{seed}" / "summary.json"
        path.parent.mkdir(parents=True)
        final = {"clean_acc": 0.9, "stylized_acc": 0.3, "shape_only_acc": acc, "texture_only_acc": texture_only}
        path.write_text(json.dumps({"settings": {"seed": seed}, "classes": list("abcde"), "final_epoch": final,
                                    "best_epoch": {"clean_acc": 0.9, "stylized_acc": 0.3}, "mean_images_per_s": 1.0,
                                    "diagnostic_images": {"shape_only": 50, "texture_only": 50}}))
        paths.append(path)
    runs = table1.load_runs(paths)
    chance = table1.chance_tests(runs).set_index("set")
    assert (chance.loc["shape_only", "hits"], chance.loc["shape_only", "trials"]) == (40, 150)
    expected = _binomial_tail(40, 150, 0.2)
    assert chance.loc["shape_only", "p"] == pytest.approx(expected, rel=1e-9)
    assert chance.loc["shape_only", "above_chance"] == (expected < 0.05)
    assert chance.loc["texture_only", "hits"] == 135 and chance.loc["texture_only", "above_chance"]
    table = table1.aggregate(runs)
    cell = table[(table.metric == "shape_only")].iloc[0]
    assert cell["mean"] == pytest.approx(100 * np.mean(shape_only)) and cell["std"] == pytest.approx(100 * np.std(shape_only, ddof=1))
    markdown = table1.to_markdown(table, table1.welch_tests(runs), "t", table1.chance_tests(runs))
    assert "| S1 | baseline | shape-only | 40 / 150 | 26.7 | 20.0 |" in markdown
    # The synthetic summaries above without the diagnostic sets: no block, no test.
    assert table1.chance_tests(table1.load_runs(_write_summaries(tmp_path / "plain"))).empty


CHANCE_COLUMNS = ["subset", "variant", "set", "hits", "trials", "accuracy", "chance", "p", "above_chance"]


def test_chance_tests_take_each_groups_own_classes_and_keep_sorted_order_whatever_the_input_order():
    """Rows given S2 before S1; one S2 run of 4 classes (1 of 5 shape-only images right, chance 1/4) and
    two S1 runs of 10 classes whose shape-only set is missing (NaN) and texture-only is 40% and 60% of 10."""
    nan = float("nan")
    runs = pd.DataFrame([
        {"subset": "S2", "variant": "topk", "classes": 4, "shape_only": 20.0, "shape_only_images": 5, "texture_only": nan, "texture_only_images": 0},
        {"subset": "S1", "variant": "baseline", "classes": 10, "shape_only": nan, "shape_only_images": 0, "texture_only": 40.0, "texture_only_images": 10},
        {"subset": "S1", "variant": "baseline", "classes": 10, "shape_only": nan, "shape_only_images": 0, "texture_only": 60.0, "texture_only_images": 10},
    ])
    chance = table1.chance_tests(runs)
    assert list(chance.columns) == CHANCE_COLUMNS
    assert chance[["subset", "variant", "set", "hits", "trials"]].values.tolist() == [["S1", "baseline", "texture_only", 10, 20],
                                                                                        ["S2", "topk", "shape_only", 1, 5]]
    s1, s2 = chance.iloc[0], chance.iloc[1]
    assert (s1["accuracy"], s1["chance"]) == (50.0, 10.0) and (s2["accuracy"], s2["chance"]) == (20.0, 25.0)
    assert s1["p"] == pytest.approx(_binomial_tail(10, 20, 0.1), rel=1e-9) and bool(s1["above_chance"])
    assert s2["p"] == pytest.approx(_binomial_tail(1, 5, 0.25), rel=1e-9) and not s2["above_chance"]  # p = 0.76


def test_a_diagnostic_accuracy_with_no_image_count_has_no_test_and_no_accuracy():
    runs = pd.DataFrame([{"subset": "S1", "variant": "baseline", "classes": 5, "shape_only": 30.0, "shape_only_images": 0}])
    row = table1.chance_tests(runs).iloc[0]
    assert (row["hits"], row["trials"]) == (0, 0)
    assert math.isnan(row["accuracy"]) and math.isnan(row["p"]) and not row["above_chance"]


def test_no_diagnostic_sets_give_an_empty_table_with_the_named_columns():
    runs = pd.DataFrame([{"subset": "S1", "variant": "baseline", "classes": 5}])
    chance = table1.chance_tests(runs)
    assert chance.empty and list(chance.columns) == CHANCE_COLUMNS


def test_summaries_without_image_counts_count_zero_images(tmp_path):
    path = tmp_path / "train" / "S1" / "baseline" / "seed0" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"settings": {"seed": 0}, "classes": ["b", "a"], "mean_images_per_s": 1.0,
                                "final_epoch": {"clean_acc": 0.5, "stylized_acc": 0.2, "shape_only_acc": 0.3},
                                "best_epoch": {"clean_acc": 0.5, "stylized_acc": 0.2}}))
    run = table1.load_runs([path]).iloc[0]
    assert (run["shape_only_images"], run["texture_only_images"]) == (0, 0)
    assert run["class_names"] == ("a", "b") and run["classes"] == 2


def test_paper_classes_are_read_from_the_paper_yaml_beside_the_reference_values(tmp_path):
    reference = tmp_path / "paper_reference.yaml"
    assert table1.paper_classes(reference) == {}  # no paper.yaml beside it
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump({"data": {"subsets": {"S1": ["n2", "n1"], "S2": ["n3"]}}}))
    assert table1.paper_classes(reference) == {"S1": ["n2", "n1"], "S2": ["n3"]}
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump({"data": {"fewshot": {"jeep": "n4"}}}))
    assert table1.paper_classes(reference) == {}
    (tmp_path / "paper.yaml").write_text("")
    assert table1.paper_classes(reference) == {}


def test_only_subsets_run_on_exactly_the_paper_classes_are_comparable():
    runs = pd.DataFrame([
        {"subset": "S1", "class_names": ("a", "b")}, {"subset": "S1", "class_names": ("a", "b")},
        {"subset": "S2", "class_names": ("c", "d")}, {"subset": "S2", "class_names": ("c", "e")},  # one run on other classes
        {"subset": "S3", "class_names": ("f",)},  # not in the paper config
    ])
    assert table1.comparable_subsets(runs, {"S1": ["b", "a"], "S2": ["d", "c"]}) == {"S1"}
    assert table1.comparable_subsets(runs.drop(columns="class_names"), {"S1": ["a", "b"]}) == set()


def test_the_note_names_the_subsets_that_get_no_paper_values():
    assert table1._not_comparable_note(["S2", "S1"]) == (
        "The paper's values (Li et al. 2023) are ImageNet's IN-S1/IN-S2 and not comparable with this run's S1, S2 "
        "(another data source or other classes): no paper column, no Δ.")


def test_write_table1_on_other_classes_gives_the_note_the_diagnostic_blocks_and_the_chance_tests_in_full(tmp_path):
    """Two S1 baseline runs on classes a-e (not the paper's): clean 90/94, stylized 30/50, best 92/96 and 34/52,
    shape-only 40%/60% and texture-only 10%/20% of 10 images each. Every number below is worked out by hand:
    std (n-1) of two values = |difference| / sqrt(2); shape-only 10 of 20 and texture-only 3 of 20 against 1/5."""
    paths = []
    for seed, (clean, stylized, shape, texture, best_clean, best_stylized) in enumerate([(0.90, 0.30, 0.40, 0.10, 0.92, 0.34),
                                                                                        (0.94, 0.50, 0.60, 0.20, 0.96, 0.52)]):
        path = tmp_path / "train" / "S1" / "baseline" / f"seed{seed}" / "summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"settings": {"seed": seed}, "classes": list("abcde"), "mean_images_per_s": 1.0,
                                    "final_epoch": {"clean_acc": clean, "stylized_acc": stylized, "shape_only_acc": shape, "texture_only_acc": texture},
                                    "best_epoch": {"clean_acc": best_clean, "stylized_acc": best_stylized},
                                    "diagnostic_images": {"shape_only": 10, "texture_only": 10}}))
        paths.append(path)
    reference = tmp_path / "paper_reference.yaml"
    reference.write_text(yaml.safe_dump({"table1": REFERENCE}))
    out = {kind: tmp_path / f"table1.{kind}" for kind in ("csv", "md", "tex", "json")}
    table1.write_table1(paths, reference, out, "Table 1", paper_subsets=PAPER_SUBSETS)
    shape_p, texture_p = _binomial_tail(10, 20, 0.2), _binomial_tail(3, 20, 0.2)
    assert shape_p < 0.05 < texture_p
    others = ["| ResNet-18 w. Top-K during training | – | – |", "| ResNet-18 w. Top_K_Mean_Rpl during training | – | – |"]
    expected = [
        "# Table 1", "",
        "## Final epoch (main result; mean ± std over 2 seeds)", "",
        "| Top-1 acc. (%) | S1 clean | S1 stylized |", "|---|---|---|", "| ResNet-18 | 92.0 ± 2.8 | 40.0 ± 14.1 |", *others, "",
        "The paper's values (Li et al. 2023) are ImageNet's IN-S1/IN-S2 and not comparable with this run's S1 (another data "
        "source or other classes): no paper column, no Δ.", "",
        "## Paper code's protocol: best epoch per set, chosen on that set (optimistic)", "",
        "| Top-1 acc. (%) | S1 clean | S1 stylized |", "|---|---|---|", "| ResNet-18 | 94.0 ± 2.8 | 43.0 ± 12.7 |", *others, "",
        "## Diagnostic sets at the final epoch: which cue was learned (accuracy %)", "",
        "| Top-1 acc. (%) | S1 shape-only | S1 texture-only |", "|---|---|---|", "| ResNet-18 | 50.0 ± 14.1 | 15.0 ± 7.1 |", *others, "",
        "## Diagnostic accuracy against chance (pooled over seeds, one-sided binomial test)", "",
        "| subset | variant | set | correct / images | acc. % | chance % | p | above chance |", "|---|---|---|---|---|---|---|---|",
        f"| S1 | baseline | shape-only | 10 / 20 | 50.0 | 20.0 | {shape_p:.3g} | yes |",
        f"| S1 | baseline | texture-only | 3 / 20 | 15.0 | 20.0 | {texture_p:.3g} | no |", "",
        "## Welch t-test on the stylized sets (final epoch)", "",
        "| subset | comparison | Δ acc. | t | p | runs |", "|---|---|---|---|---|---|",
        "| S1 | topk - baseline | – | – | – | 0 vs 2 |", "| S1 | topk_mean_rpl - baseline | – | – | – | 0 vs 2 |",
    ]
    assert out["md"].read_text() == "\n".join(expected) + "\n"

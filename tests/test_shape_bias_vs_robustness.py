"""Shape bias against corruption robustness: the points, Spearman's rho, its interval and its permutation p."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from topkshape.report.shape_bias_vs_robustness import correlations, model_points, spearman_interval, write_shape_bias_vs_robustness


def _spearman_by_hand(x, y) -> float:
    """1 - 6 sum d^2 / (n (n^2 - 1)) for data without ties."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)
    return 1 - 6 * float(((rx - ry) ** 2).sum()) / (n * (n**2 - 1))


def test_rho_equals_the_rank_formula_and_its_interval_holds_it():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=1.0, size=12)
    rho, low, high = spearman_interval(x, y, samples=500, seed=0)
    assert rho == pytest.approx(_spearman_by_hand(x, y)) and low <= rho <= high
    assert spearman_interval(x, 2 * x + 1) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))
    assert all(np.isnan(v) for v in spearman_interval(x, np.ones(12)))  # a constant side: undefined
    assert all(np.isnan(v) for v in spearman_interval(x[:2], y[:2]))


def _points(shape, robust, subset="S1"):
    return pd.DataFrame({"subset": subset, "variant": "topk", "seed": range(len(shape)), "shape_measure": "shape_bias",
                         "shape": shape, "mean_corruption_acc": robust})


@pytest.mark.slow  # ~9 s on 2 idle cores: two bootstrap and permutation analyses of 300 samples
def test_a_direction_is_named_only_where_the_interval_excludes_zero_and_the_permutation_test_agrees():
    x = np.arange(10.0)
    table = correlations(pd.concat([_points(x, x), _points(x, -x, "S2")]), samples=300).set_index("subset")
    assert table.loc["S1", "evidence"] == "positive" and table.loc["S2", "evidence"] == "negative"
    assert table.loc["S1", "p"] < 0.01 and table.loc["all", "evidence"] == "none"  # together they cancel
    # Heavy ties and few models: a high rho with a bootstrap interval above 0, but a permutation p that
    # says nothing: no evidence.
    # (the six S1 models of a 1-epoch workflow run)
    tied = correlations(_points([1.0, 0.5, 1.0, 1.0, 1.0, 0.5], [20, 13.3, 20, 20, 20, 20]), samples=300).set_index("subset")
    assert tied.loc["S1", "rho"] > 0.5 and tied.loc["S1", "ci_low"] > 0 and tied.loc["S1", "p"] > 0.05
    assert tied.loc["S1", "evidence"] == "none"


def test_points_pair_each_models_shape_measure_with_its_corruption_accuracy(tmp_path):
    rows = []
    for subset, shape_bias in (("S1", 0.25), ("S2", None)):  # S2: no texture labels (AdaIN), stylized accuracy instead
        for variant in ("baseline", "topk"):
            for seed in (0, 1):
                folder = tmp_path / "train" / subset / variant / f"seed{seed}"
                folder.mkdir(parents=True)
                final = {"shape_bias": None if shape_bias is None else shape_bias + seed / 10, "stylized_acc": 0.3 + seed / 10}
                (folder / "summary.json").write_text(json.dumps({"final_epoch": final}))
                for severity in (1, 2):
                    rows.append({"subset": subset, "variant": variant, "seed": seed, "corruption": "fog", "severity": severity,
                                 "correct": 5, "images": 10, "accuracy": 0.4 + severity / 10 + seed / 10})
    pd.DataFrame(rows).to_csv(tmp_path / "acc.csv", index=False)
    summaries = sorted(tmp_path.glob("train/*/*/*/summary.json"))
    points = model_points(summaries, [tmp_path / "acc.csv"]).set_index(["subset", "variant", "seed"])
    assert points.loc[("S1", "topk", 1), "shape"] == pytest.approx(0.35) and points.loc[("S1", "topk", 1), "shape_measure"] == "shape_bias"
    assert points.loc[("S2", "baseline", 1), "shape"] == pytest.approx(40.0) and points.loc[("S2", "baseline", 1), "shape_measure"] == "stylized_acc"
    assert points.loc[("S2", "baseline", 1), "mean_corruption_acc"] == pytest.approx(100 * (0.5 + 0.6 + 0.2) / 2)
    with pytest.raises(ValueError, match="2 Table 1 models have no corruption accuracies"):
        model_points(summaries, [_without_s2_topk(tmp_path, rows)])
    out = {"csv": tmp_path / "c.csv", "points_csv": tmp_path / "p.csv", "md": tmp_path / "t.md", "png": tmp_path / "f.png", "pdf": tmp_path / "f.pdf"}
    write_shape_bias_vs_robustness(summaries, [tmp_path / "acc.csv"], out, "title", samples=100)
    assert len(pd.read_csv(out["points_csv"])) == 8 and list(pd.read_csv(out["csv"])["subset"]) == ["S1", "S2", "all"]
    with Image.open(out["png"]) as image:
        assert min(image.size) > 200
    assert out["pdf"].read_bytes()[:5] == b"%PDF-"


def _without_s2_topk(tmp_path, rows):
    """The accuracy file without S2 topk's two models."""
    path = tmp_path / "partial.csv"
    frame = pd.DataFrame(rows)
    frame[~((frame.subset == "S2") & (frame.variant == "topk"))].to_csv(path, index=False)
    return path

"""Same commit, same config, same machine: the same Table 1, to the last digit.

Two fresh copies of the workflow run the Table 1 target from nothing. Every job's thread
count comes from the config (``train.threads``) and every random generator is seeded,
so the two tables (and every run's per-epoch metrics) must be identical; only timing
columns may differ.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from workflow_support import TINY_DEFAULT, copy_workflow, snakemake, write_config

pytestmark = pytest.mark.slow

# One subset of three classes, two seeds, all three variants: 6 tiny training jobs per copy.
SMALL = dict(TINY_DEFAULT, data__subsets={"S1": ["disk", "square", "triangle"]}, train__seeds=[0, 1],
             shape_bias__models=["trained_S1"])
TIMING = ("images_per_s", "seconds", "time")  # wall-clock measurements: allowed to differ


def _without_timing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if not any(word in c for word in TIMING)]]


def _run_table1(root: Path) -> Path:
    copy_workflow(root)
    write_config(root / "config.yaml", **SMALL)
    result = snakemake(root, "table1", "--cores", "2", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "results" / "default"


def test_two_runs_of_the_same_commit_give_identical_tables(tmp_path):
    # The two copies run side by side: a shared, busy CPU must not change any number either.
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(_run_table1, [tmp_path / "a", tmp_path / "b"])
    table_a = pd.read_csv(first / "tables" / "table1.csv")
    table_b = pd.read_csv(second / "tables" / "table1.csv")
    assert len(table_a) > 0 and table_a["n"].max() == 2
    pd.testing.assert_frame_equal(_without_timing(table_a), _without_timing(table_b), check_exact=True)
    runs = sorted(p.relative_to(first) for p in first.glob("train/*/*/seed*/metrics.csv"))
    assert len(runs) == 6
    for run in runs:
        metrics_a, metrics_b = pd.read_csv(first / run), pd.read_csv(second / run)
        assert "images_per_s" in metrics_a.columns  # the one timing column, dropped below
        pd.testing.assert_frame_equal(_without_timing(metrics_a), _without_timing(metrics_b), check_exact=True)

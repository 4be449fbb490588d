"""Table 1b: Table 1's models on common corruptions (ImageNet-C's 15 at 5 severities), mean ± std over seeds.

Per subset and variant: the mean corruption accuracy (over every corruption and severity), the mCE
relative to the baseline of the same subset, and each corruption's accuracy (mean over severities);
the accuracy of every (corruption, severity) is in ``corruption_accuracy.csv``. A Welch t-test compares
each Top-K variant's mean corruption accuracy with the baseline's, seeds as samples.

mCE follows Hendrycks & Dietterich (2019) with the subset's baseline as the reference network in place of
AlexNet: ``CE_c = sum_s E(s, c) / sum_s E_base(s, c)`` with ``E_base`` the baseline's error averaged
over its seeds, ``mCE`` the mean of ``CE_c`` over corruptions (the baseline's own seeds spread around 1). A
corruption the baseline never errs on has no CE and is left out of that mean (counted in ``mce_corruptions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topkshape.atomic import atomic_file
from topkshape.report.files import write_table_files
from topkshape.report.table1 import VARIANT_LABELS, _number, welch_tests

COLUMNS = ["subset", "variant", "seed", "corruption", "severity", "correct", "images", "accuracy"]


def load_accuracies(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every model's accuracy per (corruption, severity): the ``corruption_eval`` CSVs together."""
    frames = [pd.read_csv(path) for path in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"corruption accuracy files lack the columns {sorted(missing)}")
    return frame[COLUMNS]


def per_run(accuracies: pd.DataFrame) -> pd.DataFrame:
    """One row per (subset, variant, seed): mean corruption accuracy (%), mCE against the subset's
    baseline, the number of corruptions in that mCE, and each corruption's mean accuracy (%)."""
    errors = accuracies.assign(error=1 - accuracies["accuracy"])
    base = (errors[errors.variant == "baseline"].groupby(["subset", "corruption", "severity"])["error"].mean()
            .groupby(["subset", "corruption"]).sum())
    rows = []
    for (subset, variant, seed), group in errors.groupby(["subset", "variant", "seed"], sort=True):
        summed = group.groupby("corruption")["error"].sum()
        reference = base.get(subset)
        ce = summed / reference.reindex(summed.index) if reference is not None else summed * np.nan
        ce = ce.replace([np.inf, -np.inf], np.nan)
        by_corruption = group.groupby("corruption")["accuracy"].mean() * 100
        rows.append({"subset": subset, "variant": variant, "seed": seed,
                     "mean_corruption_acc": float(group["accuracy"].mean() * 100),
                     "mce": float(ce.mean()) if ce.notna().any() else np.nan, "mce_corruptions": int(ce.notna().sum()),
                     **{f"acc_{name}": float(value) for name, value in by_corruption.items()}})
    return pd.DataFrame(rows)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table: subset, variant, metric, mean, std (ddof 1), n."""
    metrics = ["mean_corruption_acc", "mce"] + sorted(c for c in runs.columns if c.startswith("acc_"))
    rows = []
    for (subset, variant), group in runs.groupby(["subset", "variant"], sort=True):
        for metric in metrics:
            values = group[metric].dropna()
            rows.append({"subset": subset, "variant": variant, "metric": metric, "mean": float(values.mean()) if len(values) else np.nan,
                         "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan, "n": int(len(values))})
    return pd.DataFrame(rows, columns=["subset", "variant", "metric", "mean", "std", "n"])


def tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Welch's t-test of each Top-K variant against the baseline on the mean corruption accuracy."""
    return welch_tests(runs, metric="mean_corruption_acc")


def to_markdown(table: pd.DataFrame, welch: pd.DataFrame, runs: pd.DataFrame, title: str) -> str:
    def cell(subset: str, variant: str, metric: str, spec: str) -> str:
        row = table[(table.subset == subset) & (table.variant == variant) & (table.metric == metric)]
        if row.empty or np.isnan(row["mean"].iloc[0]):
            return "–"
        mean, std = row["mean"].iloc[0], row["std"].iloc[0]
        return f"{mean:{spec}} ± {std:{spec}}" if not np.isnan(std) else f"{mean:{spec}} (n={int(row['n'].iloc[0])})"

    corruptions = sorted(c[4:] for c in runs.columns if c.startswith("acc_"))
    lines = [f"# {title}", "", "Mean ± std over seeds. Accuracy in %, mean over every corruption and severity; "
             "mCE against the baseline of the same subset (1 = as many errors as the baseline).", "",
             "| subset | variant | mean corruption accuracy | mCE | Welch p vs baseline |", "|---|---|---|---|---|"]
    for (subset, variant), _ in runs.groupby(["subset", "variant"], sort=True):
        test = welch[(welch.subset == subset) & (welch.comparison == f"{variant} - baseline")]
        p = _number(float(test["p"].iloc[0]), ".3g") if not test.empty else ""
        lines.append(f"| {subset} | {VARIANT_LABELS.get(variant, variant)} | {cell(subset, variant, 'mean_corruption_acc', '.1f')} "
                     f"| {cell(subset, variant, 'mce', '.3f')} | {p} |")
    lines += ["", "Accuracy per corruption (%, mean over its severities):", "",
              "| subset | variant | " + " | ".join(corruptions) + " |", "|---|---|" + "---|" * len(corruptions)]
    for (subset, variant), _ in runs.groupby(["subset", "variant"], sort=True):
        lines.append(f"| {subset} | {variant} | " + " | ".join(cell(subset, variant, f"acc_{c}", ".1f") for c in corruptions) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    main = table[table.metric.isin(["mean_corruption_acc", "mce"])]
    lines = ["\\begin{tabular}{llcc}", "\\toprule", "Subset & Variant & Mean corruption acc. & mCE \\\\", "\\midrule"]
    for (subset, variant), group in main.groupby(["subset", "variant"], sort=True):
        values = {row.metric: row for row in group.itertuples()}
        acc, mce = values.get("mean_corruption_acc"), values.get("mce")
        lines.append(f"{subset} & {VARIANT_LABELS.get(variant, variant).replace('_', '-')} & "
                     f"{_number(acc.mean, '.1f')} $\\pm$ {_number(acc.std, '.1f')} & {_number(mce.mean, '.3f')} $\\pm$ {_number(mce.std, '.3f')} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table1b(accuracy_paths: Iterable[str | Path], out: dict[str, str | Path], title: str,
                  *, provenance: dict[str, Any] | None = None) -> pd.DataFrame:
    """Write ``csv``, ``md``, ``tex``, ``json`` (DVC metrics) and ``accuracy_csv`` (every corruption and
    severity of every model); return the long table."""
    accuracies = load_accuracies(accuracy_paths)
    runs = per_run(accuracies)
    table = aggregate(runs)
    welch = tests(runs)
    write_table_files(table, ("subset", "variant"), to_markdown(table, welch, runs, title), to_latex(table), out, provenance=provenance)
    with atomic_file(out["accuracy_csv"]) as tmp:
        accuracies.to_csv(tmp, index=False)
    return table

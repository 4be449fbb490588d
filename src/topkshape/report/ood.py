"""Model-vs-human's OOD benchmark for the atlas entries, with and without Top-K, and shape bias against OOD accuracy.

``tables/ood_benchmark.*``: per entry, Top-K setting and dataset (and ``all``, the mean over datasets) the
OOD accuracy, accuracy difference, observed and error consistency with humans, each with its bootstrap
95% interval over trials (:mod:`topkshape.robustness.ood_benchmark`), beside the humans' own values.
``tables/shape_bias_vs_ood.*`` and ``figures/shape_bias_vs_ood.*``: each (entry, setting)'s shape bias
(the atlas table) against its OOD accuracy, Spearman's rho per entry and pooled; a direction is named only
where its interval excludes 0 and the permutation p is below 0.05.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError
from topkshape.report.shape_bias_vs_robustness import correlations, rho_cells
from topkshape.report.style import COLUMN_WIDTH, figure_legend, model_color, plt, save_figure, use_paper_style
from topkshape.robustness.ood import read_raw_data
from topkshape.robustness.ood_benchmark import COLUMNS, benchmark_table, dataset_result
from topkshape.shape_bias.tags import parse_tag

LABELS = {"ood_accuracy": "OOD accuracy", "accuracy_difference": "accuracy difference",
          "observed_consistency": "observed consistency", "error_consistency": "error consistency"}


def benchmark_rows(raw_paths: Mapping[tuple[str, str], str | Path], human_dirs: Mapping[str, str | Path], *,
                   samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``raw_paths``: (entry, dataset) -> the entry's raw decisions (every Top-K setting, subject ``<entry>-<tag>``);
    ``human_dirs``: dataset -> folder of the humans' raw-decision files. One row per entry, tag and dataset, plus ``all``."""
    humans = {dataset: read_raw_data(sorted(Path(folder).glob("*.csv"))) for dataset, folder in human_dirs.items()}
    per_maker: dict[tuple[str, str], dict] = {}
    for (entry, dataset), path in raw_paths.items():
        if dataset not in humans:
            raise InputDataError(f"no human decisions for OOD dataset {dataset!r}")
        frame = read_raw_data([path])
        for subject, rows in frame.groupby("subj", sort=True):
            tag = str(subject).removeprefix(f"{entry}-")
            per_maker.setdefault((entry, tag), {})[dataset] = dataset_result(dataset, rows, humans[dataset], samples=samples, seed=seed)
    tables = []
    for (entry, tag), results in sorted(per_maker.items()):
        mode, k = parse_tag(tag)
        table = benchmark_table({d: results[d] for d in sorted(results)})
        tables.append(table.assign(model=entry, tag=tag, mode=mode, K_percent=k))
    if not tables:
        raise InputDataError("no OOD decisions to tabulate")
    table = pd.concat(tables, ignore_index=True)
    front = ["model", "tag", "mode", "K_percent", "dataset", "trials"]
    return table[front + [c for c in table.columns if c not in front]]


def _cell(row: pd.Series, key: str) -> str:
    return f"{row[key]:.3f} [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"


def benchmark_markdown(table: pd.DataFrame, title: str) -> str:
    """The mean over datasets per entry and setting, the humans' own values, then OOD accuracy per dataset."""
    summary = table[table["dataset"] == "all"]
    lines = [f"# {title}", "",
             "model-vs-human's benchmark (its excluded conditions dropped, means over conditions, observers and datasets) "
             "with 95% bootstrap intervals over trials. Two settings differ only where their intervals do not overlap.", "",
             "| model | setting | trials | " + " | ".join(LABELS[c] for c in COLUMNS) + " |", "|---|---|---|" + "---|" * len(COLUMNS)]
    for _, row in summary.iterrows():
        lines.append(f"| {row['model']} | {row['tag']} | {row['trials']} | " + " | ".join(_cell(row, c) for c in COLUMNS) + " |")
    first = summary.iloc[0]
    lines.append("| humans | – | – | " + " | ".join(f"{first[f'human_{c}']:.3f}" for c in COLUMNS) + " |")
    datasets = [d for d in dict.fromkeys(table["dataset"]) if d != "all"]
    lines += ["", "OOD accuracy per dataset:", "", "| model | setting | " + " | ".join(datasets) + " |", "|---|---|" + "---|" * len(datasets)]
    for (model, tag), part in table.groupby(["model", "tag"], sort=False):
        values = part.set_index("dataset")["ood_accuracy"]
        lines.append(f"| {model} | {tag} | " + " | ".join(f"{values[d]:.3f}" for d in datasets) + " |")
    humans = table.drop_duplicates("dataset").set_index("dataset")["human_ood_accuracy"]
    lines.append("| humans | – | " + " | ".join(f"{humans[d]:.3f}" for d in datasets) + " |")
    return "\n".join(lines) + "\n"


def shape_bias_points(benchmark: pd.DataFrame, atlas_csv: str | Path) -> pd.DataFrame:
    """Each (entry, setting) with its shape bias from the atlas table and its OOD accuracy over all datasets."""
    atlas = pd.read_csv(atlas_csv)
    rows = []
    for _, row in benchmark[benchmark["dataset"] == "all"].iterrows():
        mine = atlas[atlas["model"] == row["model"]]
        mine = mine[mine["K_percent"].isna()] if row["mode"] == "none" else mine[(mine["mode"] == row["mode"]) & np.isclose(mine["K_percent"], row["K_percent"])]
        if len(mine) != 1:
            raise InputDataError(f"the atlas table has no single shape-bias row for {row['model']} {row['tag']}")
        rows.append({"model": row["model"], "tag": row["tag"], "shape_bias": float(mine["shape_bias"].iloc[0]),
                     "shape_bias_not_above_chance": bool(mine["not_above_chance"].iloc[0]),
                     **{key: row[key] for key in ("ood_accuracy", "ood_accuracy_low", "ood_accuracy_high")}})
    return pd.DataFrame(rows)


def correlation_markdown(table: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", "Spearman's rho between each atlas setting's shape bias and its OOD accuracy (model-vs-human's "
             "benchmark), 95% bootstrap interval over settings, two-sided permutation p; a direction is named only where the "
             "interval excludes 0 and p < 0.05 (fewer than 3 settings: undefined).", "",
             "| model | settings | rho [95% CI] | permutation p | evidence |", "|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.model} | {row.n} | {rho_cells(row)} | {row.evidence} |")
    return "\n".join(lines) + "\n"


def correlation_figure(points: pd.DataFrame, table: pd.DataFrame) -> plt.Figure:
    use_paper_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.0), layout="constrained")
    handles = []
    for model, part in points.groupby("model", sort=True):
        error = [part["ood_accuracy"] - part["ood_accuracy_low"], part["ood_accuracy_high"] - part["ood_accuracy"]]
        handles.append(ax.errorbar(part["shape_bias"], part["ood_accuracy"], yerr=error, fmt="o", color=model_color(model), label=model,
                                   markersize=4, capsize=2, linewidth=0.8))
        for _, row in part.iterrows():
            ax.annotate(row["tag"], (row["shape_bias"], row["ood_accuracy"]), xytext=(3, 3), textcoords="offset points")
    pooled = table[table["model"] == "all"].iloc[0]
    rho = "ρ undefined" if not np.isfinite(pooled["rho"]) else f"ρ = {pooled['rho']:.2f} [{pooled['ci_low']:.2f}, {pooled['ci_high']:.2f}]"
    ax.set_title(f"{int(pooled['n'])} settings: {rho}")
    ax.set_xlabel("shape bias (cue-conflict)")
    ax.set_ylabel("OOD accuracy (95% CI)")
    ax.margins(x=0.2, y=0.1)  # room for the setting labels inside the axes
    figure_legend(fig, handles)
    return fig


def write_ood_report(raw_paths: Mapping[tuple[str, str], str | Path], human_dirs: Mapping[str, str | Path], atlas_csv: str | Path,
                     out: Mapping[str, str | Path], *, title: str, samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``csv``/``md`` (the benchmark), ``points_csv``/``correlation_csv``/``correlation_md`` and ``png``/``pdf``
    (shape bias against OOD accuracy)."""
    table = benchmark_rows(raw_paths, human_dirs, samples=samples, seed=seed)
    points = shape_bias_points(table, atlas_csv)
    rho = correlations(points, samples=samples, seed=seed, x="shape_bias", y="ood_accuracy", group="model")
    for key, frame in (("csv", table), ("points_csv", points), ("correlation_csv", rho)):
        with atomic_file(Path(out[key])) as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_file(Path(out["md"])) as tmp:
        tmp.write_text(benchmark_markdown(table, title))
    with atomic_file(Path(out["correlation_md"])) as tmp:
        tmp.write_text(correlation_markdown(rho, f"Shape bias against OOD accuracy ({title})"))
    save_figure(correlation_figure(points, rho), [out["png"], out["pdf"]])
    return table


def raw_path_map(paths: Iterable[str | Path]) -> dict[tuple[str, str], Path]:
    """``<...>/<entry>/<dataset>.csv`` paths keyed by (entry, dataset), as rules/ood.smk writes them."""
    return {(Path(p).parent.name, Path(p).stem): Path(p) for p in paths}

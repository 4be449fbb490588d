"""Figures 4 and 5 and the shape-bias table, from raw decision files.

Each model run is one raw CSV (``subj`` = ``<model>-<tag>``, tag ``none`` or
``<mode><K%>``); human observers, when present, are pooled into one decision maker
as in model-vs-human's per-class plot.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from topkshape.atomic import atomic_file  # noqa: E402
from topkshape.shape_bias.tags import parse_tag  # noqa: E402
from topkshape.shape_bias.analysis import bootstrap_shape_bias, read_raw_csv, shape_bias, shape_bias_per_category  # noqa: E402

HUMANS = "humans"


def decision_makers(model_csvs: Iterable[str | Path], human_csvs: Iterable[str | Path] = ()) -> dict[str, pd.DataFrame]:
    """Name -> raw rows; model names come from the files' ``subj`` column."""
    makers: dict[str, pd.DataFrame] = {}
    for path in model_csvs:
        frame = read_raw_csv(path)
        makers[str(frame["subj"].iloc[0])] = frame
    human_csvs = list(human_csvs)
    if human_csvs:
        makers[HUMANS] = read_raw_csv(human_csvs)
    return makers


def shape_bias_table(makers: dict[str, pd.DataFrame], *, samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    rows = []
    for name, frame in makers.items():
        model, _, tag = name.rpartition("-") if name != HUMANS else (HUMANS, "", "none")
        mode, k = parse_tag(tag)
        low, high = bootstrap_shape_bias(frame, samples=samples, seed=seed)
        result = shape_bias(frame)
        rows.append(
            {
                "decision_maker": name,
                "model": model,
                "K_percent": k,
                "mode": mode,
                "shape_bias": result["shape_bias"],
                "ci_low": low,
                "ci_high": high,
                "fraction_correct_shape": result["fraction_correct_shape"],
                "fraction_correct_texture": result["fraction_correct_texture"],
                "accuracy_on_shape": float((frame["object_response"] == frame["category"]).mean()),
                "images": len(frame) if name != HUMANS else int(frame["imagename"].nunique()),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(["model", "mode", "K_percent"], na_position="first", ignore_index=True)


def table_markdown(table: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", "Shape bias = shape / (shape + texture decisions), 95% bootstrap CI over images.", ""]
    lines += ["| model | K | mode | shape bias [95% CI] | frac. shape | frac. texture | acc. on shape | images |", "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        k = "–" if pd.isna(r.K_percent) else f"{r.K_percent:g}%"
        lines.append(
            f"| {r.model} | {k} | {r.mode} | {r.shape_bias:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
            f"{r.fraction_correct_shape:.3f} | {r.fraction_correct_texture:.3f} | {r.accuracy_on_shape:.3f} | {r.images} |"
        )
    return "\n".join(lines) + "\n"


def _label(row) -> str:
    """Legend text of a table row (a mapping with model, K_percent, mode)."""
    if row["model"] == HUMANS:
        return "humans"
    if pd.isna(row["K_percent"]):
        return f"{row['model']}"
    return f"{row['model']} {'Top-K' if row['mode'] == 'topk' else 'non-Top-K'} {row['K_percent']:g}%"


def _rows(table: pd.DataFrame) -> list[dict]:
    return table.to_dict("records")


def plot_overall(table: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    """Fig. 4 style: shape bias of every decision maker, sorted, with bootstrap CIs."""
    data = table.assign(label=[_label(r) for r in _rows(table)]).sort_values("shape_bias")
    colors = ["tab:red" if m == HUMANS else ("tab:gray" if pd.isna(k) else ("tab:blue" if mode == "topk" else "tab:orange"))
              for m, k, mode in zip(data["model"], data["K_percent"], data["mode"])]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(data) + 1.5))
    y = np.arange(len(data))
    ax.errorbar(data["shape_bias"], y, xerr=[data["shape_bias"] - data["ci_low"], data["ci_high"] - data["shape_bias"]], fmt="none", ecolor="lightgray", zorder=1)
    ax.scatter(data["shape_bias"], y, c=colors, zorder=2)
    ax.set_yticks(y, data["label"], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias (fraction of shape decisions among shape + texture decisions)")
    ax.set_title("Cue-conflict shape bias: Top-K (blue), non-Top-K (orange), plain (gray), humans (red)", fontsize=9)
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)


def _chosen_rows(table: pd.DataFrame) -> list[dict]:
    """Each model's plain run and its Top-K run of highest shape bias (the paper plots the best K), and humans."""
    chosen = []
    for model, group in table.groupby("model", sort=True):
        if model == HUMANS:
            chosen += _rows(group.head(1))
            continue
        chosen += _rows(group[group["K_percent"].isna()])
        chosen += _rows(group[group["mode"] == "topk"].sort_values("shape_bias", ascending=False).head(1))
    return chosen


def plot_per_class(makers: dict[str, pd.DataFrame], table: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    """Fig. 5 style: per-category shape bias, one marker per decision maker, averages as lines.

    Decision makers judged on different category sets (the default's two subsets) get
    a panel each.
    """
    panels: dict[tuple[str, ...], list[dict]] = {}
    for row in _chosen_rows(table):
        categories = tuple(sorted(makers[row["decision_maker"]]["category"].unique()))
        panels.setdefault(categories, []).append(row)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), squeeze=False)
    for ax, (categories, rows) in zip(axes[0], panels.items()):
        markers = iter(["o", "s", "^", "v", "P", "X", "*", "<", ">"] * 4)
        for row in rows:
            per_class = shape_bias_per_category(makers[row["decision_maker"]]).set_index("category").reindex(categories)
            is_human = row["model"] == HUMANS
            points = ax.scatter(per_class["shape_bias"], np.arange(len(categories)), marker="D" if is_human else next(markers),
                                label=_label(row), color="tab:red" if is_human else None, zorder=3)
            ax.axvline(row["shape_bias"], color=points.get_facecolor()[0], linewidth=1, alpha=0.7)
        ax.set_yticks(np.arange(len(categories)), categories)
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of shape decisions (shape bias) per shape category")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="y", linestyle=":", alpha=0.4)
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)


def write_shape_bias_report(model_csvs, human_csvs, out: dict[str, str | Path], *, title: str, samples: int = 1000) -> pd.DataFrame:
    makers = decision_makers(model_csvs, human_csvs)
    table = shape_bias_table(makers, samples=samples)
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out["md"]) as tmp:
        tmp.write_text(table_markdown(table, title))
    plot_overall(table, [out["overall_png"], out["overall_pdf"]])
    plot_per_class(makers, table, [out["per_class_png"], out["per_class_pdf"]])
    return table

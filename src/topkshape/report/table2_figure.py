"""Figure of Table 2: FID and KID x 10^3 per few-shot class and variant, bars with the seeds as points.

Bars are the mean over seeds with ± sd error bars (lower is better for both metrics); each seed is a
black point, and the paper's value (``config/paper_reference.yaml``, where the class is one of the
paper's) a black cross beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from topkshape.report.style import (
    TEXT_WIDTH,
    VARIANT_LABELS,
    figure_legend,
    plt,
    save_figure,
    sns,
    use_paper_style,
    variant_palette,
)
from topkshape.report.table2 import METRICS


def fid_kid_figure(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per metric; ``runs`` from ``table2.load_runs``, ``table`` (paper values) from ``table2.aggregate``."""
    use_paper_style()
    variants = [v for v in ("fastgan", "fastgan_topk") if v in set(runs["variant"])]
    variants += sorted(set(runs["variant"]) - set(variants))
    classes = sorted(runs["class"].unique())
    long = runs.melt(id_vars=["class", "variant", "seed"], value_vars=list(METRICS), var_name="metric", value_name="value")
    palette = variant_palette(variants)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(min(TEXT_WIDTH, 1.6 + 1.0 * len(classes) * len(METRICS)), 2.6),
                             squeeze=False, layout="constrained")
    for ax, (metric, label) in zip(axes[0], METRICS.items()):
        part = long[long["metric"] == metric]
        sns.barplot(data=part, x="class", y="value", hue="variant", order=classes, hue_order=variants, palette=palette,
                    errorbar="sd", saturation=1, capsize=0.15, err_kws={"linewidth": 0.8}, alpha=0.85, legend=False, ax=ax)
        sns.stripplot(data=part, x="class", y="value", hue="variant", order=classes, hue_order=variants, dodge=True,
                      palette={v: "black" for v in variants}, size=2.5, jitter=0.08, legend=False, ax=ax)
        if table is not None:
            _paper_marks(ax, table[table["metric"] == metric], classes, variants)
        ax.set_xlabel("few-shot class")
        ax.set_ylabel(f"{label} (lower is better)")
        ax.set_ylim(bottom=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[v], alpha=0.85, label=VARIANT_LABELS.get(v, v)) for v in variants]
    if table is not None and table["paper_mean"].notna().any():
        handles.append(plt.Line2D([], [], marker="x", color="black", linestyle="none", markersize=4, label="paper"))
    n_seeds = runs.groupby(["class", "variant"])["seed"].nunique().max()
    # The note on the bars is the legend's title: inside the canvas, beside what it explains.
    figure_legend(fig, handles, ncol=len(handles), loc="outside upper center",
                  title=f"mean ± sd over {n_seeds} seed{'s' if n_seeds != 1 else ''}; points: seeds")
    return fig


def _paper_marks(ax, table: pd.DataFrame, classes: list[str], variants: list[str]) -> None:
    """A cross at the paper's value, at the bar of its class and variant (seaborn's dodge: width 0.8)."""
    width = 0.8 / len(variants)
    for row in table.dropna(subset=["paper_mean"]).to_dict("records"):
        if row["class"] in classes and row["variant"] in variants:
            x = classes.index(row["class"]) - 0.4 + width * (variants.index(row["variant"]) + 0.5)
            ax.plot(x, row["paper_mean"], marker="x", color="black", markersize=4, zorder=4)


def plot_fid_kid(runs: pd.DataFrame, table: pd.DataFrame | None, paths: Iterable[str | Path]) -> None:
    save_figure(fid_kid_figure(runs, table), paths)

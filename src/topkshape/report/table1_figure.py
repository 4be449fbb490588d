"""Figures of Table 1: accuracies with seed points and error bars, and training curves.

Both use Table 1's units (accuracy in %) and the variants' shared colours; their legends sit
below the panels, where they hide no bar or line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from topkshape.report.style import (
    TEXT_WIDTH,
    VARIANT_COLORS,
    figure_legend,
    plt,
    save_figure,
    sns,
    use_paper_style,
)
from topkshape.report.table1 import VARIANT_LABELS

SHORT = {"baseline": "baseline", "topk": "Top-K", "topk_mean_rpl": "Top-K mean rpl"}
# The variants' colours under their short names (the same colours as every other figure).
PALETTE = {SHORT[variant]: VARIANT_COLORS[variant] for variant in SHORT}
# Columns of a run's metrics.csv drawn as curves, with their titles; accuracies are drawn in %.
CURVES = {"train_loss": "training loss", "clean_acc": "clean accuracy (%)", "stylized_acc": "stylized accuracy (%)"}
PERCENT = ("clean_acc", "stylized_acc")


def plot_accuracies(runs: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    save_figure(accuracies_figure(runs), paths)


def _variant_handles(order: list[str], *, marker: str | None = None) -> list:
    """Legend entries of the variants: a bar swatch, or a line with ``marker`` for curves."""
    if marker is None:
        return [Patch(color=PALETTE[v], alpha=0.85, label=v) for v in order]
    return [Line2D([], [], color=PALETTE[v], marker=marker, markersize=3, label=v) for v in order]


def accuracies_figure(runs: pd.DataFrame) -> plt.Figure:
    """Per subset: clean and stylized accuracy per variant, seeds as points, mean ± std bars."""
    long = runs.melt(id_vars=["subset", "variant", "seed"], value_vars=["clean", "stylized"], var_name="set", value_name="accuracy")
    long["variant"] = long["variant"].map(SHORT)
    order = [SHORT[v] for v in VARIANT_LABELS if v in set(runs.variant)]
    subsets = sorted(long.subset.unique())
    use_paper_style()
    fig, axes = plt.subplots(1, len(subsets), figsize=(min(TEXT_WIDTH, 0.5 + 2.5 * len(subsets)), 2.6), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, subset in zip(axes[0], subsets):
        part = long[long.subset == subset]
        sns.barplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, palette=PALETTE, errorbar="sd", saturation=1,
                    alpha=0.85, ax=ax, capsize=0.15, err_kws={"linewidth": 0.8}, legend=False)
        sns.stripplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, dodge=True, palette={v: "black" for v in order}, size=2.5,
                      jitter=0.08, ax=ax, legend=False)
        ax.set_title(f"{subset}: final-epoch top-1 (n={part.seed.nunique()} seeds)")
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
    seeds = Line2D([], [], marker="o", color="black", linestyle="none", markersize=2.5, label="seed")
    figure_legend(fig, _variant_handles(order) + [seeds], ncol=len(order) + 1)
    return fig


def read_training_curves(metrics_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Long table (subset, variant, seed, epoch, metric, value) of the runs' ``metrics.csv``.

    ``epoch`` counts the epochs trained (the file's 0-based index + 1, as the mask recordings of
    Figure 8 do); accuracies are in %, as in Table 1.
    """
    frames = []
    for path in map(Path, metrics_paths):
        frame = pd.read_csv(path)
        frame["epoch"] = frame["epoch"] + 1
        frame[[c for c in PERCENT if c in frame]] *= 100
        frame["variant"] = SHORT.get(path.parent.parent.name, path.parent.parent.name)
        frame["subset"] = path.parent.parent.parent.name
        frame["seed"] = path.parent.name
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    return data.melt(id_vars=["subset", "variant", "seed", "epoch"], value_vars=[c for c in CURVES if c in data], var_name="metric")


def training_curves_figure(long: pd.DataFrame) -> plt.Figure:
    """One panel per subset (row) and metric (column): a line per variant, mean over seeds with a
    ± sd band, a marker at each evaluated epoch (the stylized set is evaluated every few epochs)."""
    use_paper_style()
    subsets, metrics = sorted(long.subset.unique()), [m for m in CURVES if m in set(long.metric)]
    order = [v for v in PALETTE if v in set(long.variant)]
    fig, axes = plt.subplots(len(subsets), len(metrics), figsize=(TEXT_WIDTH, 0.6 + 1.5 * len(subsets)), sharex=True, squeeze=False,
                             layout="constrained")
    for row, subset in enumerate(subsets):
        for ax, metric in zip(axes[row], metrics):
            part = long[(long.subset == subset) & (long.metric == metric)].dropna(subset=["value"])
            if part.empty:
                ax.text(0.5, 0.5, "not evaluated", transform=ax.transAxes, ha="center", va="center", color="0.4")
            else:
                sns.lineplot(data=part, x="epoch", y="value", hue="variant", hue_order=order, palette=PALETTE, errorbar="sd",
                             marker="o", markersize=3, markeredgewidth=0, legend=False, ax=ax)
            ax.set_title(f"{subset}: {CURVES[metric]}")
            ax.set_ylabel("")
            ax.set_xlabel("epoch" if row == len(subsets) - 1 else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure_legend(fig, _variant_handles(order, marker="o"), ncol=len(order))
    return fig


def plot_training_curves(metrics_paths: Iterable[str | Path], paths: Iterable[str | Path]) -> None:
    """Clean and stylized accuracy (%) and training loss per epoch, one line per variant (mean over seeds, band = sd)."""
    save_figure(training_curves_figure(read_training_curves(metrics_paths)), paths)

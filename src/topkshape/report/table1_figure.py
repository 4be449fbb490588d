"""Figures of Table 1: accuracies with seed points and error bars, and training curves."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from topkshape.report.style import (
    TEXT_WIDTH,
    VARIANT_COLORS,
    plt,
    save_figure,
    sns,
    use_paper_style,
)
from topkshape.report.table1 import VARIANT_LABELS

SHORT = {"baseline": "baseline", "topk": "Top-K", "topk_mean_rpl": "Top-K mean rpl"}
# The variants' colours under their short names (the same colours as every other figure).
PALETTE = {SHORT[variant]: VARIANT_COLORS[variant] for variant in SHORT}


def plot_accuracies(runs: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    save_figure(accuracies_figure(runs), paths)


def accuracies_figure(runs: pd.DataFrame) -> plt.Figure:
    """Per subset: clean and stylized accuracy per variant, seeds as points, mean ± std bars."""
    long = runs.melt(id_vars=["subset", "variant", "seed"], value_vars=["clean", "stylized"], var_name="set", value_name="accuracy")
    long["variant"] = long["variant"].map(SHORT)
    order = [SHORT[v] for v in VARIANT_LABELS if v in set(runs.variant)]
    subsets = sorted(long.subset.unique())
    use_paper_style()
    fig, axes = plt.subplots(1, len(subsets), figsize=(min(TEXT_WIDTH, 0.5 + 2.5 * len(subsets)), 2.4), sharey=True, squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        part = long[long.subset == subset]
        sns.barplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, palette=PALETTE, errorbar="sd", saturation=1,
                    alpha=0.85, ax=ax, capsize=0.15, err_kws={"linewidth": 0.8})
        sns.stripplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, dodge=True, palette={v: "black" for v in order}, size=2.5,
                      jitter=0.08, ax=ax, legend=False)
        ax.set_title(f"{subset}: final-epoch top-1 (n={part.seed.nunique()} seeds)")
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
        if ax is not axes[0][-1] and ax.get_legend():
            ax.get_legend().remove()
    legend = axes[0][-1].get_legend()
    if legend is not None:
        legend.set_title(None)
        legend.set_frame_on(False)
    fig.tight_layout()
    return fig


def plot_training_curves(metrics_paths: Iterable[str | Path], paths: Iterable[str | Path]) -> None:
    """Clean and stylized accuracy per epoch, one line per variant (mean over seeds, band = sd)."""
    frames = []
    for path in map(Path, metrics_paths):
        frame = pd.read_csv(path)
        frame["variant"] = SHORT.get(path.parent.parent.name, path.parent.parent.name)
        frame["subset"] = path.parent.parent.parent.name
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    long = data.melt(id_vars=["subset", "variant", "epoch"], value_vars=["train_loss", "clean_acc", "stylized_acc"], var_name="metric")
    use_paper_style()
    grid = sns.relplot(data=long, x="epoch", y="value", hue="variant", hue_order=[v for v in PALETTE if v in set(long.variant)],
                       palette=PALETTE, row="subset", col="metric", kind="line", errorbar="sd", height=1.6, aspect=1.2,
                       facet_kws={"sharey": False})
    grid.set_titles("{row_name}: {col_name}")
    save_figure(grid.figure, paths)

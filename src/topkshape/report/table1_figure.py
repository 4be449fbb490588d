"""Figures of Table 1: accuracies with seed points and error bars, and training curves."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from topkshape.report.table1 import VARIANT_LABELS  # noqa: E402

SHORT = {"baseline": "baseline", "topk": "Top-K", "topk_mean_rpl": "Top-K mean rpl"}


def plot_accuracies(runs: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    """Per subset: clean and stylized accuracy per variant, seeds as points, mean ± std bars."""
    long = runs.melt(id_vars=["subset", "variant", "seed"], value_vars=["clean", "stylized"], var_name="set", value_name="accuracy")
    long["variant"] = long["variant"].map(SHORT)
    order = [SHORT[v] for v in VARIANT_LABELS if v in set(runs.variant)]
    subsets = sorted(long.subset.unique())
    fig, axes = plt.subplots(1, len(subsets), figsize=(4.5 * len(subsets), 3.8), sharey=True, squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        part = long[long.subset == subset]
        sns.barplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, errorbar="sd", alpha=0.6, ax=ax, capsize=0.1)
        sns.stripplot(data=part, x="set", y="accuracy", hue="variant", hue_order=order, dodge=True, color="black", size=4, ax=ax, legend=False)
        ax.set_title(f"{subset}: final-epoch top-1 (n={part.seed.nunique()} seeds)")
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
        if ax is not axes[0][-1] and ax.get_legend():
            ax.get_legend().remove()
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)


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
    grid = sns.relplot(data=long, x="epoch", y="value", hue="variant", row="subset", col="metric", kind="line", errorbar="sd", height=2.6, aspect=1.3, facet_kws={"sharey": False})
    for path in paths:
        grid.savefig(path, dpi=150)
    plt.close(grid.figure)

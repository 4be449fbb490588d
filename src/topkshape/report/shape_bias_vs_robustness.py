"""Does shape bias buy robustness? Each Table 1 model's shape reliance against its corruption robustness.

One point per trained model (subset x variant x seed): on the x axis its shape bias on the cue-conflict set
(the fraction of shape decisions among shape-or-texture decisions) where the stylized set records each
image's texture class, else its stylized accuracy (AdaIN stylizations have no texture class: the share of
images still recognised once their texture is replaced); on the y axis its mean corruption accuracy (Table
1b). Spearman's rho per subset and pooled, with a percentile bootstrap interval over models (pairs resampled
together). Gavrikov & Keuper (CVPR 2024) found no such relation across ResNet-50s; here a rho whose interval
holds 0 is reported as no evidence either way, and with a handful of models per subset the interval is wide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from topkshape.atomic import atomic_file
from topkshape.report.style import TEXT_WIDTH, plt, save_figure, use_paper_style, variant_palette
from topkshape.report.table1b import load_accuracies, per_run

SHAPE_MEASURES = {"shape_bias": "shape bias (cue-conflict set)", "stylized_acc": "stylized accuracy (%)"}


def model_points(summary_paths: Iterable[str | Path], accuracy_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per Table 1 model: subset, variant, seed, shape_measure, shape, mean_corruption_acc."""
    rows = []
    for path in map(Path, summary_paths):
        summary = json.loads(path.read_text())
        final = summary["final_epoch"]
        seed_dir, variant_dir, subset_dir = path.parent, path.parent.parent, path.parent.parent.parent
        shape_bias = final.get("shape_bias")
        measure = "shape_bias" if shape_bias is not None and np.isfinite(shape_bias) else "stylized_acc"
        value = float(shape_bias) if measure == "shape_bias" else 100 * float(final["stylized_acc"])
        rows.append({"subset": subset_dir.name, "variant": variant_dir.name, "seed": int(seed_dir.name.removeprefix("seed")),
                     "shape_measure": measure, "shape": value})
    shapes = pd.DataFrame(rows, columns=["subset", "variant", "seed", "shape_measure", "shape"])
    robustness = per_run(load_accuracies(accuracy_paths))[["subset", "variant", "seed", "mean_corruption_acc"]]
    points = shapes.merge(robustness, on=["subset", "variant", "seed"], how="inner", validate="one_to_one")
    missing = len(shapes) - len(points)
    if missing:
        raise ValueError(f"{missing} Table 1 models have no corruption accuracies")
    return points.sort_values(["subset", "variant", "seed"], ignore_index=True)


def spearman_interval(x: np.ndarray, y: np.ndarray, *, samples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rho of the pairs and its percentile bootstrap interval (pairs resampled together).
    NaN where rho is undefined (fewer than 3 pairs, or a constant side)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), float("nan")
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(x[pick]) > 0 and np.ptp(y[pick]) > 0:
            draws.append(stats.spearmanr(x[pick], y[pick]).statistic)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2]) if draws else (np.nan, np.nan)
    return rho, float(low), float(high)


def permutation_p(x: np.ndarray, y: np.ndarray, *, samples: int = 9999, seed: int = 0) -> float:
    """Two-sided permutation p-value of Spearman's rho (pairings shuffled; exact for a few models):
    a percentile bootstrap interval alone is too narrow with so few models."""
    result = stats.permutation_test((np.asarray(x, float), np.asarray(y, float)), lambda a, b: stats.spearmanr(a, b).statistic,
                                    permutation_type="pairings", n_resamples=samples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def correlations(points: pd.DataFrame, *, samples: int = 1000, seed: int = 0, alpha: float = 0.05,
                 x: str = "shape", y: str = "mean_corruption_acc", group: str = "subset") -> pd.DataFrame:
    """Spearman's rho of columns ``x`` and ``y`` with its bootstrap interval and permutation p per ``group``
    and over all points. ``evidence`` names a direction only where the interval excludes 0 and p < ``alpha``;
    otherwise none."""
    groups = [(key, part) for key, part in points.groupby(group, sort=True)] + [("all", points)]
    rows = []
    for name, part in groups:
        x_values, y_values = part[x].to_numpy(), part[y].to_numpy()
        rho, low, high = spearman_interval(x_values, y_values, samples=samples, seed=seed)
        p = permutation_p(x_values, y_values, seed=seed) if np.isfinite(rho) else float("nan")
        if not np.isfinite(rho):
            evidence = "undefined"
        elif (low > 0 or high < 0) and p < alpha:
            evidence = "positive" if low > 0 else "negative"
        else:
            evidence = "none"
        measure = {"shape_measure": "/".join(sorted(set(part["shape_measure"])))} if "shape_measure" in part else {}
        rows.append({group: name, "n": len(part), **measure, "rho": rho, "ci_low": low, "ci_high": high, "p": p, "evidence": evidence})
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", "Spearman's rho between each Table 1 model's shape measure and its mean corruption accuracy, "
             "with a 95% percentile bootstrap interval over models and a two-sided permutation p; a direction is named only "
             "where the interval excludes 0 and p < 0.05.", "",
             "| subset | models | shape measure | rho [95% CI] | permutation p | evidence |", "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.subset} | {row.n} | {row.shape_measure} | {rho_cells(row)} | {row.evidence} |")
    return "\n".join(lines) + "\n"


def rho_cells(row) -> str:
    """A correlation row's ``rho [95% CI] | p`` markdown cells, ``–`` where rho is undefined."""
    cell = "–" if not np.isfinite(row.rho) else f"{row.rho:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
    return f"{cell} | {'–' if not np.isfinite(row.p) else f'{row.p:.3g}'}"


def figure(points: pd.DataFrame, table: pd.DataFrame) -> plt.Figure:
    use_paper_style()
    subsets = sorted(points.subset.unique())
    fig, axes = plt.subplots(1, len(subsets), figsize=(min(TEXT_WIDTH, 0.6 + 2.6 * len(subsets)), 2.4), squeeze=False)
    palette = variant_palette(sorted(points.variant.unique()))
    for ax, subset in zip(axes[0], subsets):
        part = points[points.subset == subset]
        for variant, group in part.groupby("variant", sort=True):
            ax.scatter(group["shape"], group["mean_corruption_acc"], color=palette[variant], label=variant, s=14, edgecolor="black", linewidth=0.3)
        row = table[table.subset == subset].iloc[0]
        rho = "undefined" if not np.isfinite(row.rho) else f"ρ = {row.rho:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}], p = {row.p:.2g}"
        ax.set_title(f"{subset}: {rho}")
        ax.set_xlabel(SHAPE_MEASURES[part["shape_measure"].iloc[0]])
        ax.set_ylabel("mean corruption accuracy (%)")
    axes[0][-1].legend(frameon=False, loc="best")
    fig.tight_layout()
    return fig


def write_shape_bias_vs_robustness(summary_paths: Iterable[str | Path], accuracy_paths: Iterable[str | Path], out: dict[str, str | Path],
                                   title: str, *, samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``csv`` (the correlations), ``points_csv`` (one row per model), ``md``, ``png`` and ``pdf``."""
    points = model_points(summary_paths, accuracy_paths)
    table = correlations(points, samples=samples, seed=seed)
    with atomic_file(Path(out["csv"])) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(Path(out["points_csv"])) as tmp:
        points.to_csv(tmp, index=False)
    with atomic_file(Path(out["md"])) as tmp:
        tmp.write_text(to_markdown(table, title))
    save_figure(figure(points, table), [out["png"], out["pdf"]])
    return table

"""Figures 4 and 5 and the shape-bias table, from raw decision files.

Each model run is one raw CSV (``subj`` = ``<model>-<tag>``, tag ``none`` or
``<mode><K%>``); human observers, when present, are pooled into one decision maker
as in model-vs-human's per-class plot.

A shape bias computed from chance-level decisions carries no information: a model
answering at random matches the shape and the texture label equally often, so its
shape bias sits near 0.5 whatever Top-K does. Every row therefore carries its decision
counts and accuracies and a one-sided binomial test of its shape + texture decisions on
the cue-conflict trials against chance, 2 / n_classes. Rows not above chance at
``alpha`` are flagged (``not_above_chance``), drawn hollow in the figures, and never
read as an effect in the report's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import binomtest

from topkshape.atomic import atomic_file
from topkshape.shape_bias.analysis import (
    bootstrap_shape_bias,
    read_raw_csv,
    shape_bias,
    shape_bias_per_category,
    texture_category,
)
from topkshape.shape_bias.tags import parse_tag

HUMANS = "humans"
DEFAULT_ALPHA = 0.05


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


def chance_test(frame: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA) -> dict[str, float | int | bool]:
    """Decision counts on the cue-conflict trials and a binomial test against chance.

    Trials are the rows whose shape category differs from their texture category.
    n_classes counts the categories that occur as shape or texture (16 for the Geirhos
    stimuli, a subset's classes in the embedded default). A decision maker answering at
    random, or always the same category, matches the shape or the texture label with
    probability 2 / n_classes; the test asks whether the rate is greater (one-sided).
    """
    texture = frame["imagename"].map(texture_category).to_numpy()
    shape = frame["category"].to_numpy()
    response = frame["object_response"].to_numpy()
    conflict = shape != texture
    shape_hits = int(((response == shape) & conflict).sum())
    texture_hits = int(((response == texture) & conflict).sum())
    trials = int(conflict.sum())
    n_classes = len(set(shape) | set(texture))
    chance = 2 / n_classes if n_classes > 2 else np.nan
    testable = trials > 0 and n_classes > 2
    p_value = float(binomtest(shape_hits + texture_hits, trials, chance, alternative="greater").pvalue) if testable else np.nan
    return {
        "conflict_trials": trials,
        "shape_decisions": shape_hits,
        "texture_decisions": texture_hits,
        "shape_accuracy": shape_hits / trials if trials else np.nan,
        "texture_accuracy": texture_hits / trials if trials else np.nan,
        "n_classes": n_classes,
        "chance": chance,
        "p_above_chance": p_value,
        # Untestable rows (no trials, two classes or fewer) count as not above chance too.
        "not_above_chance": not (p_value < alpha),
    }


def shape_bias_table(makers: dict[str, pd.DataFrame], *, samples: int = 1000, seed: int = 0, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """One row per decision maker: shape bias with its CI, accuracies, counts and the chance test."""
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
                **chance_test(frame, alpha=alpha),
                "alpha": alpha,
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(["model", "mode", "K_percent"], na_position="first", ignore_index=True)


def _setting_text(row) -> str:
    if row["model"] == HUMANS:
        return "humans"
    if pd.isna(row["K_percent"]):
        return "plain"
    return f"{'Top-K' if row['mode'] == 'topk' else 'non-Top-K'} {row['K_percent']:g}%"


def _bias_text(row) -> str:
    return f"{row['shape_bias']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def reading(table: pd.DataFrame) -> list[str]:
    """What the table supports, per model. Only rows above chance are ever compared."""
    lines = []
    for model, group in table.groupby("model", sort=True):
        if model == HUMANS:
            continue
        rows = group.to_dict("records")
        plain = next((r for r in rows if pd.isna(r["K_percent"])), None)
        settings = [r for r in rows if not pd.isna(r["K_percent"])]
        valid = [r for r in settings if not r["not_above_chance"]]
        dropped = [_setting_text(r) for r in settings if r["not_above_chance"]]
        text = f"- **{model}**: "
        if plain is None:
            text += "no plain run to compare with."
        elif plain["not_above_chance"]:
            text += (f"the plain model's decisions are not above chance (p = {plain['p_above_chance']:.2g}); "
                     "its shape bias carries no information and no Top-K effect is read against it.")
        elif not valid:
            text += f"plain {_bias_text(plain)}; no Top-K or non-Top-K setting is above chance, so none is compared."
        else:
            best = max(valid, key=lambda r: r["shape_bias"])
            overlap = best["ci_low"] <= plain["ci_high"] and plain["ci_low"] <= best["ci_high"]
            verdict = "the 95% CIs overlap: no clear difference" if overlap else "the 95% CIs do not overlap"
            text += f"plain {_bias_text(plain)}; highest above chance: {_setting_text(best)} {_bias_text(best)} ({verdict})."
        if dropped:
            text += f" Not above chance, not interpreted: {', '.join(dropped)}."
        lines.append(text)
    return lines


def table_markdown(table: pd.DataFrame, title: str) -> str:
    alpha = float(table["alpha"].iloc[0]) if len(table) else DEFAULT_ALPHA
    lines = [
        f"# {title}",
        "",
        (
            "Shape bias = shape / (shape + texture decisions), 95% bootstrap CI over images. Accuracies and decision "
            "counts are on the cue-conflict trials (shape category != texture category). p: one-sided binomial test of "
            f"the shape + texture decisions against chance (2 / classes). † = not above chance at alpha = {alpha:g}: "
            "that shape bias carries no information."
        ),
        "",
        "| model | K | mode | shape bias [95% CI] | shape acc. | texture acc. | shape / texture / trials | chance | p | acc. on shape | images |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        k = "–" if pd.isna(r["K_percent"]) else f"{r['K_percent']:g}%"
        flag = " †" if r["not_above_chance"] else ""
        lines.append(
            f"| {r['model']} | {k} | {r['mode']} | {_bias_text(r)}{flag} | {r['shape_accuracy']:.3f} | {r['texture_accuracy']:.3f} | "
            f"{r['shape_decisions']} / {r['texture_decisions']} / {r['conflict_trials']} | {r['chance']:.3f} | {r['p_above_chance']:.2g} | "
            f"{r['accuracy_on_shape']:.3f} | {r['images']} |"
        )
    lines += ["", "## Reading", "", *reading(table)]
    return "\n".join(lines) + "\n"


def _label(row) -> str:
    """Legend text of a table row (a mapping with model, K_percent, mode, not_above_chance)."""
    if row["model"] == HUMANS:
        text = "humans"
    elif pd.isna(row["K_percent"]):
        text = f"{row['model']}"
    else:
        text = f"{row['model']} {'Top-K' if row['mode'] == 'topk' else 'non-Top-K'} {row['K_percent']:g}%"
    return text + (" (at chance)" if row.get("not_above_chance", False) else "")


def _rows(table: pd.DataFrame) -> list[dict]:
    return table.to_dict("records")


def _color(row) -> str:
    if row["model"] == HUMANS:
        return "tab:red"
    if pd.isna(row["K_percent"]):
        return "tab:gray"
    return "tab:blue" if row["mode"] == "topk" else "tab:orange"


def overall_figure(table: pd.DataFrame) -> plt.Figure:
    """Fig. 4 style: shape bias of every decision maker, sorted, with bootstrap CIs.

    Rows not above chance are drawn hollow (their own scatter, no face colour) with
    grey labels.
    """
    data = table.sort_values("shape_bias", ignore_index=True)
    rows = _rows(data)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(data) + 1.8))
    y = np.arange(len(data))
    ax.errorbar(data["shape_bias"], y, xerr=[data["shape_bias"] - data["ci_low"], data["ci_high"] - data["shape_bias"]],
                fmt="none", ecolor="lightgray", zorder=1)
    colors = [_color(r) for r in rows]
    hollow = np.array([bool(r["not_above_chance"]) for r in rows], dtype=bool)
    ax.scatter(data["shape_bias"][~hollow], y[~hollow], c=[c for c, h in zip(colors, hollow) if not h], zorder=2)
    ax.scatter(data["shape_bias"][hollow], y[hollow], facecolors="none", edgecolors=[c for c, h in zip(colors, hollow) if h], zorder=2)
    ax.set_yticks(y, [_label(r) for r in rows], fontsize=8)
    for tick, h in zip(ax.get_yticklabels(), hollow):
        if h:
            tick.set_color("gray")
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias (fraction of shape decisions among shape + texture decisions)")
    alpha = float(data["alpha"].iloc[0]) if len(data) else DEFAULT_ALPHA
    ax.set_title("Cue-conflict shape bias: Top-K (blue), non-Top-K (orange), plain (gray), humans (red)\n"
                 f"hollow, grey label: decisions not above chance (binomial, alpha {alpha:g}); not an effect", fontsize=8)
    fig.tight_layout()
    return fig


def plot_overall(table: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    fig = overall_figure(table)
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)


def _chosen_rows(table: pd.DataFrame, fixed_k: Mapping[str, float] | None = None) -> list[dict]:
    """Each model's plain run and one Top-K run, and humans.

    The Top-K run is the one at ``fixed_k[model]`` (a fraction; model-vs-human's plotting fixes
    AlexNet at 10% and VGG16 at 5%), else the one of highest shape bias among those above chance.
    """
    fixed_k = fixed_k or {}
    chosen = []
    for model, group in table.groupby("model", sort=True):
        if model == HUMANS:
            chosen += _rows(group.head(1))
            continue
        chosen += _rows(group[group["K_percent"].isna()])
        topk = group[group["mode"] == "topk"]
        if model in fixed_k:
            chosen += _rows(topk[np.isclose(topk["K_percent"].astype(float), 100 * fixed_k[model])].head(1))
            continue
        above = topk[~topk["not_above_chance"].astype(bool)]
        chosen += _rows(above.sort_values("shape_bias", ascending=False).head(1))
    return chosen


def plot_per_class(makers: dict[str, pd.DataFrame], table: pd.DataFrame, paths: Iterable[str | Path],
                   fixed_k: Mapping[str, float] | None = None) -> None:
    """Fig. 5 style: per-category shape bias, one marker per decision maker, averages as lines.

    Decision makers judged on different category sets (the default's two subsets) get
    a panel each. A plain model not above chance is drawn hollow, its line dotted.
    """
    panels: dict[tuple[str, ...], list[dict]] = {}
    for row in _chosen_rows(table, fixed_k):
        categories = tuple(sorted(makers[row["decision_maker"]]["category"].unique()))
        panels.setdefault(categories, []).append(row)
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), squeeze=False)
    palette = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for ax, (categories, rows) in zip(axes[0], panels.items()):
        markers = iter(["o", "s", "^", "v", "P", "X", "*", "<", ">"] * 4)
        for row in rows:
            per_class = shape_bias_per_category(makers[row["decision_maker"]]).set_index("category").reindex(categories)
            is_human = row["model"] == HUMANS
            color = "tab:red" if is_human else next(palette)
            hollow = bool(row["not_above_chance"])
            ax.scatter(per_class["shape_bias"], np.arange(len(categories)), marker="D" if is_human else next(markers),
                       label=_label(row), facecolors="none" if hollow else color, edgecolors=color, zorder=3)
            ax.axvline(row["shape_bias"], color=color, linewidth=1, alpha=0.7, linestyle=":" if hollow else "-")
        ax.set_yticks(np.arange(len(categories)), categories)
        ax.set_xlim(0, 1)
        ax.set_xlabel("fraction of shape decisions (shape bias) per shape category")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="y", linestyle=":", alpha=0.4)
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)


def write_shape_bias_report(
    model_csvs, human_csvs, out: dict[str, str | Path], *, title: str, samples: int = 1000, alpha: float = DEFAULT_ALPHA,
    figure5_k: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    makers = decision_makers(model_csvs, human_csvs)
    table = shape_bias_table(makers, samples=samples, alpha=alpha)
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out["md"]) as tmp:
        tmp.write_text(table_markdown(table, title))
    plot_overall(table, [out["overall_png"], out["overall_pdf"]])
    plot_per_class(makers, table, [out["per_class_png"], out["per_class_pdf"]], figure5_k)
    return table

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

Two statistics of a decision maker's shape bias: the pooled value over all its images with a
bootstrap CI, and model-vs-human's Figure 4 statistic, the box of its 16 per-class values
(humans: per class, the mean over observers). Where the sweep counted ties, each row says how
much of an exactly-K selection tie order decides; where it ran random tie orders (the paper
config's tie spread), each exactly-K value gets the range of shape biases over those draws, and a
difference from the plain model inside that range is reported as no effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import cbook
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from scipy.stats import binomtest

from topkshape.atomic import atomic_file
from topkshape.report.style import (
    CHANCE_COLOR,
    MODE_LABELS,
    MODE_STYLES,
    TEXT_WIDTH,
    figure_legend,
    model_color,
    plt,
    save_figure,
    setting_marker,
    use_paper_style,
)
from topkshape.shape_bias.analysis import (
    bootstrap_shape_bias,
    class_shape_biases,
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


def per_class_table(makers: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table of Figure 4's boxplot values: decision maker, category, per-class shape bias."""
    parts = [class_shape_biases(frame, mean_over_subjects=name == HUMANS).rename("shape_bias").reset_index().assign(decision_maker=name)
             for name, frame in makers.items()]
    columns = ["decision_maker", "category", "shape_bias"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def box_statistics(values: pd.Series) -> dict[str, float]:
    """Median, quartiles and whisker ends of the per-class values, as matplotlib's boxplot draws
    them (``cbook.boxplot_stats``, whiskers at 1.5 IQR); classes without a shape bias are left out."""
    finite = values.dropna().to_numpy(float)
    if not len(finite):
        return dict.fromkeys(("per_class_median", "per_class_q1", "per_class_q3", "per_class_whisker_low", "per_class_whisker_high"), np.nan)
    stats = cbook.boxplot_stats(finite)[0]
    return {"per_class_median": float(stats["med"]), "per_class_q1": float(stats["q1"]), "per_class_q3": float(stats["q3"]),
            "per_class_whisker_low": float(stats["whislo"]), "per_class_whisker_high": float(stats["whishi"])}


def tie_shares(ties: pd.DataFrame | None) -> dict[str, dict[str, object]]:
    """Decision maker -> the share of kept entries that an exactly-K rule chooses by tie order
    (pooled over its Top-K positions), the share of channels with a tie, and the share per position."""
    if ties is None or ties.empty:
        return {}
    shares: dict[str, dict[str, object]] = {}
    for subject, rows in ties.groupby("subj", sort=False):
        per_position = "; ".join(f"{r['layer']} {r['kept_by_tie_order'] / max(r['kept'], 1):.1%}" for r in rows.to_dict("records"))
        shares[str(subject)] = {
            "tie_kept_share": rows["kept_by_tie_order"].sum() / max(rows["kept"].sum(), 1),
            "tie_kept_nonzero_share": rows["kept_by_nonzero_tie_order"].sum() / max(rows["kept"].sum(), 1),
            "tie_channel_share": rows["channels_with_ties"].sum() / max(rows["channels"].sum(), 1),
            "ties_per_position": per_position,
        }
    return shares


def tie_spread(spread: pd.DataFrame | None) -> dict[str, dict[str, object]]:
    """Decision maker -> its shape bias under each random tie order: draws, min, max, sd, and per
    category the min and max over draws (Figure 5's bars)."""
    if spread is None or spread.empty:
        return {}
    summary: dict[str, dict[str, object]] = {}
    for subject, rows in spread.groupby("subj", sort=False):
        draws = {seed: frame for seed, frame in rows.groupby("tie_seed", sort=True)}
        biases = np.array([shape_bias(frame)["shape_bias"] for frame in draws.values()], dtype=float)
        per_class = pd.DataFrame({seed: class_shape_biases(frame) for seed, frame in draws.items()})
        summary[str(subject)] = {
            "tie_draws": len(draws),
            "tie_spread_min": float(np.nanmin(biases)) if np.isfinite(biases).any() else np.nan,
            "tie_spread_max": float(np.nanmax(biases)) if np.isfinite(biases).any() else np.nan,
            "tie_spread_sd": float(np.nanstd(biases, ddof=1)) if np.isfinite(biases).sum() > 1 else np.nan,
            "per_class_low": per_class.min(axis=1),
            "per_class_high": per_class.max(axis=1),
        }
    return summary


SPREAD_COLUMNS = ("tie_draws", "tie_spread_min", "tie_spread_max", "tie_spread_sd")


def shape_bias_table(makers: dict[str, pd.DataFrame], *, samples: int = 1000, seed: int = 0, alpha: float = DEFAULT_ALPHA,
                     ties: pd.DataFrame | None = None, spreads: Mapping[str, Mapping[str, object]] | None = None) -> pd.DataFrame:
    """One row per decision maker: shape bias with its CI, Figure 4's per-class box, accuracies,
    counts and the chance test; with ``ties`` (the sweep's tie counts) the share of the selection
    tie order decides, with ``spreads`` (:func:`tie_spread` of random tie orders) the range of shape
    biases over them and whether the difference from the plain model lies inside it."""
    shares, spreads = tie_shares(ties), spreads or {}
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
                **box_statistics(class_shape_biases(frame, mean_over_subjects=name == HUMANS)),
                "tie_kept_share": shares.get(name, {}).get("tie_kept_share", np.nan),
                "tie_kept_nonzero_share": shares.get(name, {}).get("tie_kept_nonzero_share", np.nan),
                "tie_channel_share": shares.get(name, {}).get("tie_channel_share", np.nan),
                "ties_per_position": shares.get(name, {}).get("ties_per_position", ""),
                **{column: spreads.get(name, {}).get(column, np.nan) for column in SPREAD_COLUMNS},
            }
        )
    table = pd.DataFrame(rows)
    plain = {r["model"]: r["shape_bias"] for r in rows if pd.isna(r["K_percent"]) and r["model"] != HUMANS}
    table["effect_vs_plain"] = [r["shape_bias"] - plain.get(r["model"], np.nan) if not pd.isna(r["K_percent"]) else np.nan for r in rows]
    # NaN effects (plain rows, no plain run) are never within a spread.
    table["within_tie_spread"] = [within_tie_spread(effect, low, high)
                                  for effect, low, high in zip(table["effect_vs_plain"], table["tie_spread_min"], table["tie_spread_max"])]
    return table.sort_values(["model", "mode", "K_percent"], na_position="first", ignore_index=True)


def within_tie_spread(effect: float, low: float, high: float) -> bool:
    """Whether a difference from the plain model is no larger than the range that tie order alone
    moves the shape bias over (max - min over the random tie draws); False where no spread was drawn."""
    return bool(np.isfinite([effect, low, high]).all() and abs(effect) <= high - low)


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
            if best["within_tie_spread"]:
                text += (f" Its difference from plain ({best['effect_vs_plain']:+.3f}) is within what tie order alone moves it "
                         f"({_spread_text(best)}): not an effect.")
        tied = [_setting_text(r) for r in valid if r["within_tie_spread"]]
        if tied:
            text += f" Within the tie spread of their exactly-K value, no effect: {', '.join(tied)}."
        if dropped:
            text += f" Not above chance, not interpreted: {', '.join(dropped)}."
        lines.append(text)
    return lines


def _spread_text(row) -> str:
    return (f"{int(row['tie_draws'])} random tie orders: {row['tie_spread_min']:.3f}-{row['tie_spread_max']:.3f}"
            if row["tie_draws"] > 0 else "")


def _ties_text(row) -> str:
    if pd.isna(row["tie_kept_share"]):
        return "–"
    return f"{row['tie_kept_share']:.1%}, {row['tie_kept_nonzero_share']:.1%} non-zero ({row['tie_channel_share']:.0%} of channels)"


def table_markdown(table: pd.DataFrame, title: str) -> str:
    alpha = float(table["alpha"].iloc[0]) if len(table) else DEFAULT_ALPHA
    spread = bool((table["tie_draws"].fillna(0) > 0).any()) if len(table) else False
    lines = [
        f"# {title}",
        "",
        (
            "Shape bias = shape / (shape + texture decisions), 95% bootstrap CI over images. Per-class median [IQR]: "
            "model-vs-human's Figure 4 statistic, the box of the per-class shape biases (humans: each class's mean over "
            "observers). Accuracies and decision "
            "counts are on the cue-conflict trials (shape category != texture category). p: one-sided binomial test of "
            f"the shape + texture decisions against chance (2 / classes). † = not above chance at alpha = {alpha:g}: "
            "that shape bias carries no information. Tie order decides: the share of the entries an exactly-K rule keeps "
            "that are chosen among entries tied at the K-th largest |x|, then those tied at a non-zero |x| (a choice "
            "among zeros changes no Top-K or non-Top-K output, only mean replacement's), and the share of channels "
            "with such a tie, over every Top-K position and image."
            + (" Tie spread: the shape bias under random tie orders (exactly K, ties drawn at random); ‡ = the "
               "difference from the plain model is within that range: not an effect." if spread else "")
        ),
        "",
        "| model | K | mode | shape bias [95% CI] | per-class median [IQR] | shape acc. | texture acc. | shape / texture / trials | chance | p | "
        "acc. on shape | images | tie order decides |" + (" tie spread |" if spread else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if spread else ""),
    ]
    for r in table.to_dict("records"):
        k = "–" if pd.isna(r["K_percent"]) else f"{r['K_percent']:g}%"
        flag = " †" if r["not_above_chance"] else ""
        flag += " ‡" if r["within_tie_spread"] else ""
        box = "–" if pd.isna(r["per_class_median"]) else f"{r['per_class_median']:.3f} [{r['per_class_q1']:.3f}, {r['per_class_q3']:.3f}]"
        lines.append(
            f"| {r['model']} | {k} | {r['mode']} | {_bias_text(r)}{flag} | {box} | {r['shape_accuracy']:.3f} | {r['texture_accuracy']:.3f} | "
            f"{r['shape_decisions']} / {r['texture_decisions']} / {r['conflict_trials']} | {r['chance']:.3f} | {r['p_above_chance']:.2g} | "
            f"{r['accuracy_on_shape']:.3f} | {r['images']} | {_ties_text(r)} |"
            + (f" {_spread_text(r) or '–'} |" if spread else "")
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
    """A decision maker's colour is its model's, as in every other figure (humans: their reference colour)."""
    return model_color(row["model"])


def _mode(row) -> str:
    return "none" if pd.isna(row["K_percent"]) else row["mode"]


def figure_order(table: pd.DataFrame) -> pd.DataFrame:
    """The table's rows as Figure 4 stacks them, top to bottom: humans, then one block per model (a
    subset's trained model is a model), each its plain run, its Top-K settings by K, then non-Top-K."""
    rank = {"none": 0, "topk": 1, "non_topk": 2}
    keyed = table.assign(_humans=table["model"] != HUMANS, _mode=[rank.get(_mode(r), 3) for r in _rows(table)])
    ordered = keyed.sort_values(["_humans", "model", "_mode", "K_percent"], na_position="first", kind="stable")
    return ordered.drop(columns=["_humans", "_mode"]).reset_index(drop=True)


def _group_separators(ax, data: pd.DataFrame) -> None:
    """A thin line between two models' blocks, so that a block reads as one model."""
    models = data["model"].tolist()
    for y in range(1, len(models)):
        if models[y] != models[y - 1]:
            ax.axhline(y - 0.5, color="0.6", linewidth=0.6, zorder=0)


def _box_panel(ax, data: pd.DataFrame) -> None:
    """model-vs-human's Figure 4: a box of the per-class shape biases per decision maker (quartiles,
    median, whiskers at 1.5 IQR, no fliers), drawn from the table's own box statistics."""
    for y, row in enumerate(_rows(data)):
        if pd.isna(row["per_class_median"]):
            continue
        hollow = bool(row["not_above_chance"])
        color = CHANCE_COLOR if hollow else _color(row)
        q1, q3 = row["per_class_q1"], row["per_class_q3"]
        ax.add_patch(Rectangle((q1, y - 0.3), q3 - q1, 0.6, facecolor="none" if hollow else color, edgecolor=color,
                               alpha=0.8, zorder=2))
        ax.vlines(row["per_class_median"], y - 0.3, y + 0.3, color="black", linewidth=1.2, zorder=3)
        ax.hlines(y, row["per_class_whisker_low"], q1, color=color, linewidth=1, zorder=1)
        ax.hlines(y, q3, row["per_class_whisker_high"], color=color, linewidth=1, zorder=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias per class")
    ax.set_title("per-class box (model-vs-human)")


def _pooled_panel(ax, data: pd.DataFrame) -> None:
    """The pooled shape bias with its bootstrap CI, and the range over random tie orders where drawn."""
    rows = _rows(data)
    y = np.arange(len(data))
    ax.errorbar(data["shape_bias"], y, xerr=[data["shape_bias"] - data["ci_low"], data["ci_high"] - data["shape_bias"]],
                fmt="none", ecolor="0.6", elinewidth=0.8, zorder=1)
    drawn = data["tie_draws"].fillna(0).to_numpy(float) > 0
    if drawn.any():
        low, high = data["tie_spread_min"].to_numpy(float)[drawn], data["tie_spread_max"].to_numpy(float)[drawn]
        ax.hlines(y[drawn] - 0.3, low, high, color="black", linewidth=1.5, zorder=2,
                  label=f"range over {int(data['tie_draws'].max())} random tie orders")
    hollow = np.array([bool(r["not_above_chance"]) for r in rows], dtype=bool)
    markers = np.array([setting_marker(r["model"], _mode(r)) for r in rows])
    for marker in dict.fromkeys(markers):
        filled, empty = (markers == marker) & ~hollow, (markers == marker) & hollow
        if filled.any():
            ax.scatter(data["shape_bias"][filled], y[filled], marker=marker, c=[_color(r) for r, f in zip(rows, filled) if f], s=18, zorder=3)
        if empty.any():
            ax.scatter(data["shape_bias"][empty], y[empty], marker=marker, facecolors="none", edgecolors=CHANCE_COLOR, s=18,
                       linewidths=0.9, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias over all images")
    ax.set_title("pooled, 95% bootstrap CI")


def _overall_legend(fig: plt.Figure, data: pd.DataFrame) -> None:
    """Colour = model, marker = setting, hollow grey = not above chance: the figure's own key."""
    handles: list = [Patch(color=model_color(model), label=model) for model in dict.fromkeys(data["model"]) if model != HUMANS]
    names = {"none": "plain (no Top-K)", **MODE_LABELS}
    for model, mode in dict.fromkeys((r["model"], _mode(r)) if r["model"] == HUMANS else ("", _mode(r)) for r in _rows(data)):
        humans = model == HUMANS
        handles.append(Line2D([], [], marker=setting_marker(model, mode), color=model_color(HUMANS) if humans else "0.3",
                              linestyle="none", markersize=4, label=HUMANS if humans else names.get(mode, mode)))
    if data["not_above_chance"].astype(bool).any():
        handles.append(Line2D([], [], marker="o", markersize=4, linestyle="none", markerfacecolor="none", markeredgecolor=CHANCE_COLOR,
                              label="not above chance"))
    if (data["tie_draws"].fillna(0) > 0).any():
        handles.append(Line2D([], [], color="black", linewidth=1.5, label=f"range over {int(data['tie_draws'].max())} random tie orders"))
    figure_legend(fig, handles, ncol=4)


def overall_figure(table: pd.DataFrame) -> plt.Figure:
    """Fig. 4 style, one row per decision maker grouped by model (:func:`figure_order`): left the box
    of per-class shape biases (model-vs-human's statistic, the paper's figure), right the pooled value
    with its bootstrap CI (and, where drawn, the range over random tie orders as a black bar below it).

    Colour is the model's (as in ``shape_bias_vs_k``), the marker the setting; rows not above chance are
    drawn hollow grey with grey labels.
    """
    use_paper_style()
    data = figure_order(table)
    fig, (box_ax, pooled_ax) = plt.subplots(1, 2, sharey=True, figsize=(TEXT_WIDTH, 0.17 * len(data) + 1.5), layout="constrained")
    _box_panel(box_ax, data)
    _pooled_panel(pooled_ax, data)
    for ax in (box_ax, pooled_ax):
        _group_separators(ax, data)
    rows = _rows(data)
    box_ax.set_yticks(np.arange(len(rows)), [_label(r) for r in rows])
    box_ax.set_ylim(len(rows) - 0.5, -0.5)  # the first row on top
    for tick, row in zip(box_ax.get_yticklabels(), rows):
        if row["not_above_chance"]:
            tick.set_color("gray")
    _overall_legend(fig, data)
    return fig


def plot_overall(table: pd.DataFrame, paths: Iterable[str | Path]) -> None:
    save_figure(overall_figure(table), paths)


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


def _average_style(row) -> str:
    """Line style of a decision maker's average: Top-K solid, non-Top-K dashed, plain dotted (as against K)."""
    mode = _mode(row)
    return MODE_STYLES[mode]["linestyle"] if mode in MODE_STYLES else ("-" if row["model"] == HUMANS else ":")


def _per_class_panel(ax, makers: Mapping[str, pd.DataFrame], categories: tuple[str, ...], rows: list[dict],
                     spreads: Mapping[str, Mapping[str, object]]) -> list:
    """One panel of Figure 5; returns its legend handles."""
    handles = []
    y = np.arange(len(categories))
    for row in rows:
        per_class = shape_bias_per_category(makers[row["decision_maker"]]).set_index("category").reindex(categories)
        hollow = bool(row["not_above_chance"])
        color, marker = _color(row), setting_marker(row["model"], _mode(row))
        spread = spreads.get(row["decision_maker"])
        if spread is not None:
            low, high = spread["per_class_low"].reindex(categories), spread["per_class_high"].reindex(categories)
            ax.hlines(y, low, high, color=color, linewidth=2.5, alpha=0.35, zorder=2)
            handles.append(Line2D([], [], color=color, linewidth=2.5, alpha=0.35,
                                  label=f"{_label(row)}: range over {spread['tie_draws']} random tie orders"))
        ax.scatter(per_class["shape_bias"], y, marker=marker, facecolors="none" if hollow else color,
                   edgecolors=CHANCE_COLOR if hollow else color, s=18, zorder=3)
        ax.axvline(row["shape_bias"], color=CHANCE_COLOR if hollow else color, linewidth=1, alpha=0.8, linestyle=_average_style(row))
        handles.append(Line2D([], [], marker=marker, markersize=4, color=CHANCE_COLOR if hollow else color, linestyle=_average_style(row),
                              linewidth=1, markerfacecolor="none" if hollow else color, label=_label(row)))
    ax.set_yticks(y, categories)
    ax.set_ylim(len(categories) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias per shape category")
    return handles


def per_class_figure(makers: dict[str, pd.DataFrame], table: pd.DataFrame, fixed_k: Mapping[str, float] | None = None,
                     spreads: Mapping[str, Mapping[str, object]] | None = None) -> plt.Figure:
    """Fig. 5 style: per-category shape bias, one marker per decision maker, averages as lines.

    Decision makers judged on different category sets (the default's two subsets) get a panel each.
    Colour is the model's and the marker its setting, as in Figure 4; a decision maker not above
    chance is hollow grey. Where random tie orders were drawn (``spreads``), each category's range
    over them is a bar in the decision maker's colour through its marker.
    """
    use_paper_style()
    spreads = spreads or {}
    panels: dict[tuple[str, ...], list[dict]] = {}
    for row in _chosen_rows(table, fixed_k):
        categories = tuple(sorted(makers[row["decision_maker"]]["category"].unique()))
        panels.setdefault(categories, []).append(row)
    height = 1.6 + 0.16 * max((len(c) for c in panels), default=1)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(TEXT_WIDTH, height), squeeze=False, layout="constrained")
    handles: dict[str, Line2D] = {}
    for ax, (categories, rows) in zip(axes[0], panels.items()):
        handles.update((h.get_label(), h) for h in _per_class_panel(ax, makers, categories, rows, spreads))
    figure_legend(fig, list(handles.values()), ncol=3)
    return fig


def plot_per_class(makers: dict[str, pd.DataFrame], table: pd.DataFrame, paths: Iterable[str | Path],
                   fixed_k: Mapping[str, float] | None = None, spreads: Mapping[str, Mapping[str, object]] | None = None) -> None:
    """Figure 5 (:func:`per_class_figure`) written to each path."""
    save_figure(per_class_figure(makers, table, fixed_k, spreads), paths)


def read_tie_tables(tie_csvs: Iterable[str | Path] = (), spread_csvs: Iterable[str | Path] = ()) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The sweep's tie counts and the tie-spread decisions, each concatenated over models (None: no files)."""
    tie_csvs, spread_csvs = list(tie_csvs), list(spread_csvs)
    ties = pd.concat([pd.read_csv(path) for path in tie_csvs], ignore_index=True) if tie_csvs else None
    spread = (pd.concat([pd.read_csv(path, dtype={"object_response": str, "category": str, "imagename": str}) for path in spread_csvs],
                        ignore_index=True) if spread_csvs else None)
    return ties, spread


def write_shape_bias_report(
    model_csvs, human_csvs, out: Mapping[str, str | Path], *, title: str, samples: int = 1000, alpha: float = DEFAULT_ALPHA,
    figure5_k: Mapping[str, float] | None = None, tie_csvs: Iterable[str | Path] = (), spread_csvs: Iterable[str | Path] = (),
) -> pd.DataFrame:
    """The shape-bias table (csv, md), Figure 4's per-class values (``per_class_csv``) and the
    Figure 4/5 plots from raw decision files, with tie counts and tie spreads where given."""
    makers = decision_makers(model_csvs, human_csvs)
    ties, spread = read_tie_tables(tie_csvs, spread_csvs)
    spreads = tie_spread(spread)
    table = shape_bias_table(makers, samples=samples, alpha=alpha, ties=ties, spreads=spreads)
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out["per_class_csv"]) as tmp:
        per_class_table(makers).to_csv(tmp, index=False)
    with atomic_file(out["md"]) as tmp:
        tmp.write_text(table_markdown(table, title))
    plot_overall(table, [out["overall_png"], out["overall_pdf"]])
    plot_per_class(makers, table, [out["per_class_png"], out["per_class_pdf"]], figure5_k, spreads)
    return table

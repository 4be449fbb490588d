"""The atlas table and figure: shape bias against K for every model of ``shape_bias.atlas``.

One row per model x placement x K x mode (the plain model: K empty): the shape bias with its
bootstrap CI, the 16-class accuracy on the stimuli's shape labels, the chance test of
:func:`topkshape.report.shape_bias.chance_test` (a row at chance is flagged and never read as an
effect), the share of kept entries an exactly-K rule chooses by tie order, the resolved positions
with their Top-K kind, and the weights' SHA-256. The figure draws each model's Top-K sweep as one
line (the plain model dotted in its colour), with the humans' shape bias and CI shaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from topkshape.atomic import atomic_file
from topkshape.report.shape_bias import HUMANS, DEFAULT_ALPHA, decision_makers, read_tie_tables, shape_bias_table
from topkshape.report.style import CHANCE_COLOR, COLUMN_WIDTH, figure_legend, model_color, plt, save_figure, use_paper_style

COLUMNS = ["model", "source", "weights", "weights_sha256", "placement", "positions", "K_percent", "mode", "shape_bias", "ci_low",
           "ci_high", "accuracy_on_shape", "fraction_correct_shape", "fraction_correct_texture", "images", "p_value",
           "not_above_chance", "tie_kept_share", "tie_channel_share"]


def read_records(paths: Iterable[str | Path]) -> dict[str, dict]:
    """Entry name -> the record its atlas job wrote (model, weights, positions, preprocessing)."""
    records = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        records[record["name"]] = record
    return records


def atlas_table(table: pd.DataFrame, records: Mapping[str, Mapping]) -> pd.DataFrame:
    """The shape-bias table's rows of atlas models and humans, with what each model's record says."""
    rows = table[table["model"].isin(list(records) + [HUMANS])].copy()

    def field(key):
        return [records.get(model, {}).get(key, "") for model in rows["model"]]

    rows["source"] = field("model")
    rows["weights"] = field("weights")
    rows["weights_sha256"] = field("weights_sha256")
    rows["placement"] = field("placement")
    rows["positions"] = ["; ".join(f"{p['module']} [{p['kind']}]" for p in records[m]["positions"]) if m in records else ""
                         for m in rows["model"]]
    rows["_order"] = rows["K_percent"].notna()  # each model's plain row first, then its modes by K
    rows = rows.sort_values(["model", "_order", "mode", "K_percent"], kind="stable")
    return rows[[c for c in COLUMNS if c in rows]].reset_index(drop=True)


def atlas_markdown(table: pd.DataFrame, title: str) -> str:
    lines = [f"# Shape-bias atlas: {title}", "",
             "Shape bias [95% bootstrap CI] per model, placement, K and mode. † not above chance: no information, "
             "never read as an effect. Ties: share of kept entries an exactly-K rule chooses by tie order.", "",
             "| model | source | placement | K % | mode | shape bias | 16-class acc. | ties | positions | weights SHA-256 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        k = "plain" if pd.isna(row["K_percent"]) else f"{row['K_percent']:g}"
        bias = f"{row['shape_bias']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" + (" †" if row["not_above_chance"] else "")
        ties = "" if pd.isna(row.get("tie_kept_share", np.nan)) else f"{row['tie_kept_share']:.1%}"
        positions = str(row.get("positions") or "")
        count = len(positions.split("; ")) if positions else 0
        sha = str(row.get("weights_sha256") or "")[:12]
        lines.append(f"| {row['model']} | {row.get('source') or ''} | {row.get('placement') or ''} | {k} | "
                     f"{'' if pd.isna(row['K_percent']) else row['mode']} | {bias} | {row['accuracy_on_shape']:.3f} | {ties} | "
                     f"{count} | {sha} |")
    lines += ["", "Positions (module [Top-K kind]) per model:", ""]
    for model, positions in table.dropna(subset=["positions"]).groupby("model")["positions"].first().items():
        if positions:
            lines.append(f"- {model}: {positions}")
    return "\n".join(lines) + "\n"


def atlas_figure(table: pd.DataFrame, mode: str = "topk") -> plt.Figure:
    """Shape bias (y) against K in % (x), one line per model in ``mode``; humans shaded (their CI)."""
    use_paper_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH + 1.0, 3.0), layout="constrained")
    handles: list = []
    humans = table[table["model"] == HUMANS]
    if len(humans):
        row = humans.iloc[0]
        ax.axhspan(row["ci_low"], row["ci_high"], color="0.85", zorder=0)
        ax.axhline(row["shape_bias"], color="0.55", linewidth=1, zorder=0)
        handles.append(Patch(color="0.85", label=f"humans {row['shape_bias']:.2f} (95% CI)"))
    for model in sorted(m for m in table["model"].unique() if m != HUMANS):
        color = model_color(model)
        rows = table[table["model"] == model]
        for plain in rows[rows["K_percent"].isna()].to_dict("records"):
            ax.axhline(plain["shape_bias"], color=CHANCE_COLOR if plain["not_above_chance"] else color, linestyle=":", linewidth=1)
        part = rows[(rows["mode"] == mode) & rows["K_percent"].notna()].sort_values("K_percent")
        if part.empty:
            continue
        k, bias = part["K_percent"].to_numpy(float), part["shape_bias"].to_numpy(float)
        ax.errorbar(k, bias, yerr=[bias - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - bias], color=color,
                    linewidth=1, capsize=1.5, elinewidth=0.6, zorder=2)
        chance = part["not_above_chance"].astype(bool).to_numpy()
        ax.scatter(k[~chance], bias[~chance], color=color, s=14, zorder=3)
        ax.scatter(k[chance], bias[chance], facecolors="none", edgecolors=CHANCE_COLOR, s=14, linewidths=0.9, zorder=3)
        handles.append(Line2D([], [], color=color, marker="o", markersize=4, linewidth=1, label=model))
    handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1, label="plain model (no Top-K)"))
    if table["not_above_chance"].astype(bool).any():
        handles.append(Line2D([], [], marker="o", markersize=4, linestyle="none", markerfacecolor="none", markeredgecolor=CHANCE_COLOR,
                              label="not above chance"))
    ks = sorted(table["K_percent"].dropna().unique())
    if ks:
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"K (% of positions or patch tokens kept; {mode})")
    ax.set_ylabel("shape bias")
    figure_legend(fig, handles)
    return fig


def write_atlas(model_csvs: Iterable[str | Path], record_paths: Iterable[str | Path], out: Mapping[str, str | Path], *,
                title: str, human_csvs: Iterable[str | Path] = (), tie_csvs: Iterable[str | Path] = (), samples: int = 1000,
                alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """``tables/shape_bias_atlas.{csv,md}`` and ``figures/shape_bias_atlas.{png,pdf}`` from the atlas jobs' files."""
    makers = decision_makers(model_csvs, human_csvs)
    ties, _ = read_tie_tables(tie_csvs)
    table = atlas_table(shape_bias_table(makers, samples=samples, alpha=alpha, ties=ties), read_records(record_paths))
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out["md"]) as tmp:
        tmp.write_text(atlas_markdown(table, title))
    save_figure(atlas_figure(table), [out["png"], out["pdf"]])
    return table

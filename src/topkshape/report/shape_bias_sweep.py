"""Figure 4 as a sweep: shape bias against K per model and mode, with reference decision makers.

The input is the shape-bias table (``topkshape.report.shape_bias.shape_bias_table``: one row per
decision maker, ``K_percent`` empty for the plain model). Humans (a row of that table) and the
paper's transformers (ViT-L, CLIP: model-vs-human raw decision files, when configured) are
horizontal lines. A setting whose decisions are not above chance is drawn as a hollow grey marker:
its shape bias carries no information.

The same numbers go to a wide CSV (one row per K, one column per model and mode, the plain model
and each reference as a constant column) that ``dvc plots show`` draws with x = K.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from topkshape.atomic import atomic_file
from topkshape.report.shape_bias import HUMANS
from topkshape.report.style import (
    CHANCE_COLOR,
    COLUMN_WIDTH,
    MODE_LABELS,
    MODE_STYLES,
    REFERENCE_COLORS,
    REFERENCE_STYLES,
    figure_legend,
    model_color,
    plt,
    save_figure,
    use_paper_style,
)
from topkshape.shape_bias.analysis import read_raw_csv, shape_bias

PLAIN = "plain"


def reference_shape_bias(references: Mapping[str, str | Path] | None) -> dict[str, float]:
    """Label -> shape bias of each reference raw decision file (model-vs-human's format)."""
    return {label: float(shape_bias(read_raw_csv(path))["shape_bias"]) for label, path in (references or {}).items()}


def sweep_table(table: pd.DataFrame, references: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Wide table for ``dvc plots``: ``K_percent`` and a column ``<model> <mode>`` per swept setting.

    The plain model (``<model> plain``), humans and each reference are constant columns, so that
    they draw as horizontal lines beside the sweep.
    """
    swept = table[table["K_percent"].notna() & (table["model"] != HUMANS)]
    wide = swept.pivot_table(index="K_percent", columns=["model", "mode"], values="shape_bias", sort=True)
    wide.columns = [f"{model} {mode}" for model, mode in wide.columns]
    wide = wide.reset_index()
    for row in table[table["K_percent"].isna()].to_dict("records"):
        wide[HUMANS if row["model"] == HUMANS else f"{row['model']} {PLAIN}"] = row["shape_bias"]
    for label, value in (references or {}).items():
        wide[label] = value
    return wide


def write_sweep_csv(table: pd.DataFrame, references: Mapping[str, float] | None, path: str | Path) -> pd.DataFrame:
    wide = sweep_table(table, references)
    with atomic_file(path) as tmp:
        wide.to_csv(tmp, index=False, float_format="%.4g")
    return wide


def _reference_lines(ax, table: pd.DataFrame, references: Mapping[str, float]) -> None:
    lines = dict(references)
    humans = table[table["model"] == HUMANS]
    if len(humans):
        lines = {HUMANS: float(humans["shape_bias"].iloc[0]), **lines}
    label_y = _spread(sorted(lines.values()), gap=0.05)
    for (label, value), y in zip(sorted(lines.items(), key=lambda item: item[1]), label_y):
        color = REFERENCE_COLORS.get(label, model_color(label))
        ax.axhline(value, color=color, linestyle=REFERENCE_STYLES.get(label, "-"), linewidth=1, zorder=1)
        ax.annotate(f"{label} {value:.2f}", xy=(1, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7, color=color)


def _spread(values: list[float], gap: float) -> list[float]:
    """Label heights for sorted ``values``: each at least ``gap`` above the previous one."""
    placed: list[float] = []
    for value in values:
        placed.append(max(value, placed[-1] + gap) if placed else value)
    return placed


def shape_bias_vs_k_figure(table: pd.DataFrame, references: Mapping[str, float] | None = None) -> plt.Figure:
    """Shape bias (y) against K in % (x): a colour per model, line style and marker per mode.

    Error bars are the table's 95% bootstrap CIs; where random tie orders were drawn, a black bar
    just right of each exactly-K value spans their shape biases. The plain model is a dotted line in its colour;
    humans and ``references`` are labelled horizontal lines. Settings not above chance are hollow
    grey markers (the line still joins them, so the sweep reads in order).
    """
    use_paper_style()
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH + 1.0, 3.0), layout="constrained")
    models = sorted(m for m in table["model"].unique() if m != HUMANS)
    handles: list[Line2D] = []
    spread_drawn = 0
    for model in models:
        color = model_color(model)
        rows = table[table["model"] == model]
        plain = rows[rows["K_percent"].isna()]
        for row in plain.to_dict("records"):
            ax.axhline(row["shape_bias"], color=CHANCE_COLOR if row["not_above_chance"] else color,
                       linestyle=":", linewidth=1, zorder=1)
        for mode, style in MODE_STYLES.items():
            part = rows[rows["mode"] == mode].dropna(subset=["K_percent"]).sort_values("K_percent")
            if part.empty:
                continue
            k, bias = part["K_percent"].to_numpy(float), part["shape_bias"].to_numpy(float)
            ax.errorbar(k, bias, yerr=[bias - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - bias],
                        color=color, linestyle=style["linestyle"], linewidth=1, capsize=1.5, elinewidth=0.6, zorder=2)
            drawn = part["tie_draws"].fillna(0).to_numpy(float) > 0 if "tie_draws" in part else np.zeros(len(part), bool)
            if drawn.any():  # the range over random tie orders, just right of the exactly-K value
                ax.vlines(k[drawn] + 0.6, part["tie_spread_min"].to_numpy(float)[drawn], part["tie_spread_max"].to_numpy(float)[drawn],
                          color="black", linewidth=1.2, zorder=2)
                spread_drawn = int(part["tie_draws"].max())
            chance = part["not_above_chance"].astype(bool).to_numpy()
            ax.scatter(k[~chance], bias[~chance], marker=style["marker"], color=color, s=16, zorder=3)
            handles.append(Line2D([], [], color=color, marker=style["marker"], markersize=4, linestyle=style["linestyle"],
                                  linewidth=1, label=f"{model} {MODE_LABELS[mode]}"))
            if chance.any():
                ax.scatter(k[chance], bias[chance], marker=style["marker"], facecolors="none", edgecolors=CHANCE_COLOR,
                           s=16, linewidths=0.9, zorder=3)
    _reference_lines(ax, table, references or {})
    # Legend entries for what has no label of its own: the plain model and the chance marker.
    handles.append(Line2D([], [], color="0.3", linestyle=":", linewidth=1, label="plain model (no Top-K)"))
    if spread_drawn:
        handles.append(Line2D([], [], color="black", linewidth=1.2, label=f"range over {spread_drawn} random tie orders"))
    if table["not_above_chance"].astype(bool).any():
        handles.append(Line2D([], [], marker="o", markersize=4, linestyle="none", markerfacecolor="none",
                              markeredgecolor=CHANCE_COLOR, label="not above chance"))
    ks = sorted(table["K_percent"].dropna().unique())
    if ks:
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
    ax.set_ylim(0, 1)
    ax.set_xlabel("K (% of positions kept; non-Top-K: dropped)")
    ax.set_ylabel("shape bias")
    figure_legend(fig, handles)
    return fig


def plot_shape_bias_vs_k(table: pd.DataFrame, references: Mapping[str, float] | None, paths: Iterable[str | Path]) -> None:
    save_figure(shape_bias_vs_k_figure(table, references), paths)


def write_shape_bias_sweep(table: pd.DataFrame, reference_files: Mapping[str, str | Path] | None,
                           out: Mapping[str, str | Path]) -> pd.DataFrame:
    """The sweep CSV (``sweep_csv``) and Figure 4 against K (``vs_k_png``, ``vs_k_pdf``)."""
    references = reference_shape_bias(reference_files)
    wide = write_sweep_csv(table, references, out["sweep_csv"])
    plot_shape_bias_vs_k(table, references, [out["vs_k_png"], out["vs_k_pdf"]])
    return wide


"""Paper figures: one colour per model and variant everywhere, chance-level results hollow and grey,
reference decision makers as labelled lines, seeds as points on the bars, and files that fit the
paper's text width. Built from hand-made tables (no workflow run), so each test takes a second."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from topkshape.report import style
from topkshape.report.shape_bias_sweep import (
    shape_bias_vs_k_figure,
    sweep_table,
    write_sweep_csv,
)
from topkshape.report.table1_figure import accuracies_figure
from topkshape.report.table2_figure import fid_kid_figure


def _row(model, k, mode, bias, chance=False):
    return {"decision_maker": f"{model}-{mode}{k}", "model": model, "K_percent": k, "mode": mode, "shape_bias": bias,
            "ci_low": bias - 0.05, "ci_high": bias + 0.05, "not_above_chance": chance}


@pytest.fixture
def table() -> pd.DataFrame:
    """Two models swept at K = 10, 20 in both modes, their plain runs, and humans; two rows at chance."""
    rows = [
        _row("alexnet", np.nan, "none", 0.25),
        _row("alexnet", 10, "topk", 0.70),
        _row("alexnet", 20, "topk", 0.60),
        _row("alexnet", 10, "non_topk", 0.20),
        _row("alexnet", 20, "non_topk", 0.48, chance=True),
        _row("vgg16", np.nan, "none", 0.10),
        _row("vgg16", 10, "topk", 0.55, chance=True),
        _row("vgg16", 20, "topk", 0.35),
        _row("humans", np.nan, "none", 0.96),
    ]
    return pd.DataFrame(rows)


def test_sweep_table_has_a_row_per_k_a_column_per_model_and_mode_and_constant_reference_columns(table, tmp_path):
    wide = sweep_table(table, {"ViT-L": 0.54})
    assert wide["K_percent"].tolist() == [10, 20]
    assert wide["alexnet topk"].tolist() == [0.70, 0.60]
    assert wide["alexnet non_topk"].tolist() == [0.20, 0.48]
    assert wide["vgg16 topk"].tolist() == [0.55, 0.35]
    assert "vgg16 non_topk" not in wide
    assert wide["alexnet plain"].tolist() == [0.25, 0.25] and wide["vgg16 plain"].tolist() == [0.10, 0.10]
    assert wide["humans"].tolist() == [0.96, 0.96] and wide["ViT-L"].tolist() == [0.54, 0.54]
    written = write_sweep_csv(table, None, tmp_path / "sweep.csv")
    assert pd.read_csv(tmp_path / "sweep.csv").columns.tolist() == written.columns.tolist()
    assert "ViT-L" not in written


def _scatter_points(ax):
    """(x, y, hollow, edge colour) of every scatter point on the axes."""
    points = []
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if not len(offsets) or not hasattr(collection, "get_sizes") or type(collection).__name__ != "PathCollection":
            continue
        hollow = len(collection.get_facecolor()) == 0 or collection.get_facecolor()[0][3] == 0
        edges = collection.get_edgecolor()
        for i, (x, y) in enumerate(np.asarray(offsets)):
            colour = edges[min(i, len(edges) - 1)] if hollow else collection.get_facecolor()[min(i, len(collection.get_facecolor()) - 1)]
            points.append((float(x), round(float(y), 3), hollow, to_hex(colour)))
    return points


def test_shape_bias_vs_k_draws_chance_rows_hollow_grey_and_the_others_in_their_models_colour(table):
    fig = shape_bias_vs_k_figure(table, {"ViT-L": 0.54, "CLIP": 0.57})
    points = _scatter_points(fig.axes[0])
    hollow = sorted((x, y) for x, y, is_hollow, colour in points if is_hollow and colour == to_hex(style.CHANCE_COLOR))
    assert hollow == [(10.0, 0.55), (20.0, 0.48)]
    filled = {(x, y): colour for x, y, is_hollow, colour in points if not is_hollow}
    assert filled == {(10.0, 0.70): to_hex(style.model_color("alexnet")), (20.0, 0.60): to_hex(style.model_color("alexnet")),
                      (10.0, 0.20): to_hex(style.model_color("alexnet")), (20.0, 0.35): to_hex(style.model_color("vgg16"))}


def test_shape_bias_vs_k_has_labelled_horizontal_lines_for_humans_references_and_plain_models(table):
    ax = shape_bias_vs_k_figure(table, {"ViT-L": 0.54, "CLIP": 0.57}).axes[0]
    horizontal = {round(line.get_ydata()[0], 3): to_hex(line.get_color()) for line in ax.lines
                  if len(line.get_ydata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]}
    assert horizontal[0.96] == to_hex(style.REFERENCE_COLORS["humans"])
    assert horizontal[0.54] == to_hex(style.REFERENCE_COLORS["ViT-L"]) and horizontal[0.57] == to_hex(style.REFERENCE_COLORS["CLIP"])
    assert horizontal[0.25] == to_hex(style.model_color("alexnet")) and horizontal[0.10] == to_hex(style.model_color("vgg16"))
    labels = {text.get_text() for text in ax.texts}
    assert {"humans 0.96", "ViT-L 0.54", "CLIP 0.57"} <= labels
    # Close references get labels far enough apart to read (0.54 and 0.57 would overlap).
    heights = sorted(text.xy[1] for text in ax.texts)
    assert min(np.diff(heights)) >= 0.05 - 1e-9
    legend = [text.get_text() for text in ax.figure.legends[0].get_texts()]  # below the axes, off the data
    assert legend == ["alexnet Top-K", "alexnet non-Top-K", "vgg16 Top-K", "plain model (no Top-K)", "not above chance"]


def test_a_model_and_a_variant_have_the_same_colour_in_every_figure():
    # An unlisted model gets a spare colour from its name alone, the same in every process (no str hash(),
    # which changes with PYTHONHASHSEED), so two runs' figures agree.
    here = style.model_color("some_new_model")
    assert here in style._SPARE
    for hash_seed in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", "from topkshape.report.style import model_color; print(model_color('some_new_model'))"],
                               capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert other.stdout.strip() == here
    assert style.model_color("alexnet") != style.model_color("vgg16")
    assert style.VARIANT_COLORS["topk"] == style.VARIANT_COLORS["fastgan_topk"]  # Top-K is one colour in both tables
    assert len({style.VARIANT_COLORS[v] for v in ("baseline", "topk", "topk_mean_rpl")}) == 3
    assert style.CHANCE_COLOR not in {*style.MODEL_COLORS.values(), *style.VARIANT_COLORS.values()}


def _bars(ax) -> list[tuple[float, float, str]]:
    """(centre x, height, colour) of each bar (legend proxies left out)."""
    return sorted((round(p.get_x() + p.get_width() / 2, 3), round(p.get_height(), 3), to_hex(p.get_facecolor()))
                  for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() > 0)


def test_table2_figure_draws_mean_bars_per_variant_colour_with_each_seed_and_the_paper_value():
    runs = pd.DataFrame([
        {"class": "jeep", "variant": "fastgan", "seed": 0, "fid": 50.0, "kid_x1e3": 12.0},
        {"class": "jeep", "variant": "fastgan", "seed": 1, "fid": 54.0, "kid_x1e3": 14.0},
        {"class": "jeep", "variant": "fastgan_topk", "seed": 0, "fid": 40.0, "kid_x1e3": 6.0},
        {"class": "jeep", "variant": "fastgan_topk", "seed": 1, "fid": 44.0, "kid_x1e3": 8.0},
    ])
    table = pd.DataFrame([
        {"class": "jeep", "variant": "fastgan", "metric": "fid", "paper_mean": 49.0},
        {"class": "jeep", "variant": "fastgan_topk", "metric": "fid", "paper_mean": 38.7},
        {"class": "jeep", "variant": "fastgan", "metric": "kid_x1e3", "paper_mean": np.nan},
        {"class": "jeep", "variant": "fastgan_topk", "metric": "kid_x1e3", "paper_mean": np.nan},
    ])
    fig = fid_kid_figure(runs, table)
    fid_ax, kid_ax = fig.axes
    grey = to_hex(to_rgba(style.VARIANT_COLORS["fastgan"]))
    blue = to_hex(to_rgba(style.VARIANT_COLORS["fastgan_topk"]))
    assert [(h, c) for _, h, c in _bars(fid_ax)] == [(52.0, grey), (42.0, blue)]
    assert [(h, c) for _, h, c in _bars(kid_ax)] == [(13.0, grey), (7.0, blue)]
    seeds = sorted(round(float(y), 3) for c in fid_ax.collections for _, y in np.asarray(c.get_offsets()))
    assert seeds == [40.0, 44.0, 50.0, 54.0]
    crosses = sorted((round(float(line.get_xdata()[0]), 3), float(line.get_ydata()[0])) for line in fid_ax.lines if line.get_marker() == "x")
    bar_x = [x for x, _, _ in _bars(fid_ax)]
    assert crosses == [(bar_x[0], 49.0), (bar_x[1], 38.7)]  # each at its own variant's bar
    assert not [line for line in kid_ax.lines if line.get_marker() == "x"]


def test_table1_figure_colours_the_variants_as_every_other_figure():
    runs = pd.DataFrame([{"subset": "S1", "variant": v, "seed": s, "clean": 90.0 + s, "stylized": 10.0 + s}
                         for v in ("baseline", "topk", "topk_mean_rpl") for s in (0, 1)])
    colours = {c for _, _, c in _bars(accuracies_figure(runs).axes[0])}
    assert colours == {to_hex(style.VARIANT_COLORS[v]) for v in ("baseline", "topk", "topk_mean_rpl")}


def test_figures_fit_the_text_width_with_text_no_smaller_than_7_points(table, tmp_path):
    runs = pd.DataFrame([{"class": c, "variant": v, "seed": s, "fid": 40.0 + s, "kid_x1e3": 5.0 + s}
                         for c in ("fish", "jeep", "table", "train") for v in ("fastgan", "fastgan_topk") for s in (0, 1, 2)])
    for fig in (shape_bias_vs_k_figure(table, {"ViT-L": 0.54}), fid_kid_figure(runs)):
        fig.canvas.draw()
        # The saved file is cropped to its content: measure that, not the canvas.
        width = fig.get_tightbbox(fig.canvas.get_renderer()).width
        assert width <= style.TEXT_WIDTH + 0.05, width
        sizes = [text.get_fontsize() for text in fig.findobj(Text) if text.get_text() and text.get_visible()]
        assert sizes and min(sizes) >= 7, sorted(set(sizes))
        style.save_figure(fig, [tmp_path / "f.png", tmp_path / "f.pdf"])
        assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"

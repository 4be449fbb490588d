"""One look for every figure of the workflow: paper-size fonts, and one colour per model and variant.

Figures are drawn at the size they are printed (NeurIPS text width 5.5 in, 8 pt text), so a figure
placed in a paper needs no scaling and its labels stay readable. A model, a training variant or a
reference decision maker has the same colour in every figure; Top-K is blue wherever it appears.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import seaborn as sns

from topkshape.atomic import atomic_file

TEXT_WIDTH = 5.5  # inches, NeurIPS \textwidth
COLUMN_WIDTH = 2.7  # inches, half the text width with a gutter
PNG_DPI = 200

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "figure.titlesize": 8,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays editable and searchable
    "ps.fonttype": 42,
    # Figures drawn on a bare Figure (texture.figures, below this package) save at the same resolution.
    "savefig.dpi": PNG_DPI,
}

# seaborn's colour-blind palette, named so that each colour is chosen once.
_CB = sns.color_palette("colorblind").as_hex()
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, BROWN, PINK, GREY, YELLOW, SKY = _CB

# Training variants (Table 1) and GAN variants (Table 2): the baseline grey, Top-K blue.
VARIANT_COLORS = {
    "baseline": GREY,
    "topk": BLUE,
    "topk_mean_rpl": GREEN,
    "fastgan": GREY,
    "fastgan_topk": BLUE,
}
VARIANT_LABELS = {
    "baseline": "ResNet-18",
    "topk": "w. Top-K",
    "topk_mean_rpl": "w. mean Top-K",
    "fastgan": "FastGAN",
    "fastgan_topk": "FastGAN w. Top-K",
}

# Models swept in Figures 4-5; others get a colour from the rest of the palette by a stable hash.
MODEL_COLORS = {
    "alexnet": ORANGE,
    "vgg16": PURPLE,
    "resnet18": GREEN,
    "resnet50": BROWN,
    "trained_S1": ORANGE,
    "trained_S2": PURPLE,
}
_SPARE = [GREEN, BROWN, PINK, SKY, YELLOW, BLUE]

# Reference decision makers drawn as horizontal lines (humans and the paper's transformers).
# Dark and unsaturated, so that no reference is mistaken for a swept model.
REFERENCE_COLORS = {"humans": "#a50f15", "ViT-L": "#222222", "CLIP": "#666666"}
REFERENCE_STYLES = {"humans": "-", "ViT-L": "-.", "CLIP": (0, (4, 1.5))}

# Inference modes of the sweep: Top-K solid circles, non-Top-K dashed squares.
MODE_STYLES = {"topk": {"linestyle": "-", "marker": "o"}, "non_topk": {"linestyle": "--", "marker": "s"}}
MODE_LABELS = {"topk": "Top-K", "non_topk": "non-Top-K"}
# Where one figure shows a model's settings as points: its plain run a diamond, humans a star.
PLAIN_MARKER = "D"
HUMANS_MARKER = "*"

# A result not above chance: hollow marker with this edge colour, whatever its model.
CHANCE_COLOR = "#9a9a9a"


def model_color(model: str) -> str:
    """The model's colour, the same in every figure and every run."""
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    if model in REFERENCE_COLORS:
        return REFERENCE_COLORS[model]
    return _SPARE[zlib.crc32(model.encode()) % len(_SPARE)]


def variant_palette(variants: Iterable[str]) -> dict[str, str]:
    """seaborn ``palette=`` for the given variants."""
    return {variant: VARIANT_COLORS.get(variant, model_color(variant)) for variant in variants}


def use_paper_style() -> None:
    """White grid, colour-blind palette, 8 pt text (the paper's body is 10 pt, captions 9 pt)."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", rc=RC)


def setting_marker(model: str, mode: str) -> str:
    """Marker of one decision maker: Top-K circle, non-Top-K square, plain diamond, humans star."""
    if model == "humans":
        return HUMANS_MARKER
    return MODE_STYLES[mode]["marker"] if mode in MODE_STYLES else PLAIN_MARKER


def figure_legend(fig: plt.Figure, handles: list, *, ncol: int = 2, title: str | None = None, loc: str = "outside lower center"):
    """One legend for the whole figure, outside every axes (no entry hides data).

    Needs the figure's constrained layout, which makes room for it inside the canvas.
    """
    return fig.legend(handles=handles, loc=loc, ncol=max(1, min(ncol, len(handles))), frameon=False, title=title)


def save_figure(fig: plt.Figure, paths: Iterable[str | Path]) -> None:
    """Write ``fig`` to each path (format from the suffix: png at PNG_DPI, pdf as vectors), then close it.

    Each file appears complete or not at all (a killed job leaves no half-written figure).
    """
    for path in map(Path, paths):
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=PNG_DPI, bbox_inches="tight")
    plt.close(fig)

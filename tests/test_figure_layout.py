"""Every figure renders inside its canvas, keeps its legends off the data, and wears the shared style.

Each figure function is drawn on small hand-made inputs and checked three ways: (a) every drawn
text lies inside the figure canvas (nothing clipped when saved), (b) no legend covers a plotted
artist (line points, bars, scatter points, bands, images) or a label, (c) the text sizes and axes
colours are the ones ``report.style.use_paper_style`` sets. The checks run on purposely bad figures
too, so that a check which can no longer fail is noticed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from topkshape.report import style
from topkshape.report.shape_bias import HUMANS, overall_figure, per_class_figure, shape_bias_table, tie_spread
from topkshape.report.shape_bias_atlas import atlas_figure
from topkshape.report.shape_bias_sweep import shape_bias_vs_k_figure
from topkshape.report.table1_figure import accuracies_figure, read_training_curves, training_curves_figure
from topkshape.report.table2 import sample_grid, sample_grid_figure
from topkshape.report.table2_figure import fid_kid_figure
from topkshape.texture.figures import mask_dynamics_figure, shown_times

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1.0  # display pixels: anti-aliasing rounds an extent by a fraction of a pixel
SIZE_KEYS = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize",
             "legend.title_fontsize", "figure.titlesize")


# --- the checks -------------------------------------------------------------------------------------


@contextmanager
def _recording_texts() -> Iterator[list[Text]]:
    """The texts a draw actually renders (tick labels out of view and hidden axes left out)."""
    drawn: list[Text] = []
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)
        return original(self, renderer)

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def render(fig: Figure) -> tuple[object, list[Text]]:
    """Draw ``fig`` on an Agg canvas as saving does; return the renderer and the drawn texts."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with _recording_texts() as texts:
        fig.canvas.draw()
    return fig.canvas.get_renderer(), list(dict.fromkeys(texts))


def texts_outside_canvas(fig: Figure) -> list[str]:
    """(a) Texts whose window extent reaches past the figure canvas."""
    renderer, texts = render(fig)
    canvas = fig.bbox.padded(TOLERANCE)
    return [f"{text.get_text()!r} at {text.get_window_extent(renderer).bounds}" for text in texts
            if not _inside(text.get_window_extent(renderer), canvas)]


def overlapping_texts(fig: Figure) -> list[str]:
    """Pairs of drawn texts whose extents overlap (crowded headers, a label on a label)."""
    renderer, texts = render(fig)
    boxes = [(text.get_text(), text.get_window_extent(renderer).padded(-TOLERANCE)) for text in texts]
    return [f"{a!r} on {b!r}" for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def _inside(box: Bbox, outer: Bbox) -> bool:
    return box.x0 >= outer.x0 and box.y0 >= outer.y0 and box.x1 <= outer.x1 and box.y1 <= outer.y1


def _densified(points: np.ndarray, joined: bool) -> np.ndarray:
    """Display points of a polyline, with points along each segment where it is drawn as a line."""
    points = points[np.isfinite(points).all(axis=1)]
    if not joined or len(points) < 2:
        return points
    steps = np.linspace(0, 1, 12)[:, None, None]
    return (points[:-1] + steps * (points[1:] - points[:-1])).reshape(-1, 2)


def _point_boxes(name: str, points: np.ndarray, clip: Bbox) -> list[tuple[str, Bbox]]:
    return [(name, Bbox.from_bounds(x, y, 0, 0)) for x, y in points if clip.contains(x, y)]


def _line_extents(ax, clip: Bbox) -> list[tuple[str, Bbox]]:
    found = []
    for line in ax.lines:
        if line.get_visible():
            joined = line.get_linestyle() not in ("None", "none", "", " ")
            found += _point_boxes(f"line {line.get_label()}", _densified(line.get_transform().transform(line.get_xydata()), joined), clip)
    return found


def _collection_extents(ax, clip: Bbox) -> list[tuple[str, Bbox]]:
    found = []
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        if isinstance(collection, PathCollection):  # scatter and strip points
            offsets = np.asarray(collection.get_offsets(), dtype=float).reshape(-1, 2)
            found += _point_boxes("scatter point", collection.get_offset_transform().transform(offsets), clip)
        elif isinstance(collection, LineCollection):  # error bars, hlines, vlines
            for segment in collection.get_segments():
                found += _point_boxes("segment", _densified(collection.get_transform().transform(np.asarray(segment)), True), clip)
        else:  # bands (fill_between) and other polygons: their extent
            for path in collection.get_paths():
                vertices = collection.get_transform().transform(path.vertices)
                vertices = vertices[np.isfinite(vertices).all(axis=1)]
                if len(vertices):
                    found.append(("band", Bbox([vertices.min(axis=0), vertices.max(axis=0)])))
    return found


def data_extents(fig: Figure, renderer) -> list[tuple[str, Bbox]]:
    """(name, display extent) of every plotted artist: line points, bars and boxes, scatter points,
    segments, bands and images, each only where it lies inside its axes (outside it is clipped)."""
    extents = []
    for ax in fig.axes:
        clip = ax.bbox
        extents += _line_extents(ax, clip) + _collection_extents(ax, clip)
        extents += [("patch", patch.get_window_extent(renderer)) for patch in ax.patches
                    if patch.get_visible() and patch.get_window_extent(renderer).width * patch.get_window_extent(renderer).height > 0]
        extents += [("image", image.get_window_extent(renderer)) for image in ax.images if image.get_visible()]
    return extents


def _legends(fig: Figure) -> list:
    return [legend for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if legend is not None and legend.get_visible()]


def legends_over_data(fig: Figure) -> list[str]:
    """(b) Plotted artists, and texts other than its own, that a legend's box covers."""
    renderer, texts = render(fig)
    problems = []
    for legend in _legends(fig):
        box = legend.get_window_extent(renderer)
        problems += [f"legend over {name}" for name, extent in data_extents(fig, renderer) if box.overlaps(extent)]
        own = {*legend.get_texts(), legend.get_title()}
        problems += [f"legend over text {text.get_text()!r}" for text in texts
                     if text not in own and box.overlaps(text.get_window_extent(renderer))]
    return problems


def paper_rc() -> dict:
    """The rcParams that ``use_paper_style`` sets, text sizes in points (read without changing the caller's)."""
    with matplotlib.rc_context():
        style.use_paper_style()
        rc = dict(matplotlib.rcParams)
        rc["sizes"] = {round(FontProperties(size=rc[key]).get_size_in_points(), 2) for key in SIZE_KEYS}
        return rc


def style_problems(fig: Figure) -> list[str]:
    """(c) Text sizes and axes colours that differ from the shared style's."""
    _, texts = render(fig)
    rc = paper_rc()
    problems = [f"{text.get_text()!r} at {text.get_fontsize():g} pt" for text in texts if round(text.get_fontsize(), 2) not in rc["sizes"]]
    for ax in fig.axes:
        if to_rgba(ax.get_facecolor()) != to_rgba(rc["axes.facecolor"]):
            problems.append(f"axes face {ax.get_facecolor()}")
        problems += [f"{name} spine {spine.get_edgecolor()}" for name, spine in ax.spines.items()
                     if spine.get_visible() and to_rgba(spine.get_edgecolor()) != to_rgba(rc["axes.edgecolor"])]
    return problems


def smallest_tile_px(fig: Figure) -> float:
    """The smallest image tile's side in the saved PNG (at ``style.PNG_DPI``), in pixels."""
    renderer, _ = render(fig)
    sides = [min(image.get_window_extent(renderer).width, image.get_window_extent(renderer).height)
             for ax in fig.axes for image in ax.images]
    return min(sides) / fig.dpi * style.PNG_DPI


# --- small inputs ------------------------------------------------------------------------------------

S1 = ["airplane", "bear", "bicycle", "bird", "boat"]
S2 = ["bottle", "car", "cat", "chair", "clock"]


def _raw(subject: str, outcomes: list[str], classes: list[str]) -> pd.DataFrame:
    """Cue-conflict decisions (shape != texture) in model-vs-human's raw format, one per outcome."""
    rows = []
    for i, outcome in enumerate(outcomes):
        shape, texture, other = (classes[(i + j) % len(classes)] for j in range(3))
        response = {"shape": shape, "texture": texture, "other": other}[outcome]
        rows.append({"object_response": response, "category": shape, "imagename": f"{shape}{i}-{texture}{i}.png"})
    frame = pd.DataFrame(rows)
    return frame.assign(subj=subject, session=1, trial=np.arange(1, len(frame) + 1), rt=np.nan, condition=np.nan)


def _outcomes(shape: int, texture: int, other: int) -> list[str]:
    return ["shape"] * shape + ["texture"] * texture + ["other"] * other


def _makers() -> dict[str, pd.DataFrame]:
    """Two subsets' trained models (plain, Top-K 10/20 %, non-Top-K 10 %; one setting at chance) and humans."""
    makers = {}
    for model, classes in (("trained_S1", S1), ("trained_S2", S2)):
        for tag, counts in (("none", (20, 30, 10)), ("topk10", (40, 15, 5)), ("topk20", (30, 20, 10)), ("non_topk10", (8, 8, 44))):
            makers[f"{model}-{tag}"] = _raw(f"{model}-{tag}", _outcomes(*counts), classes)
    makers[HUMANS] = pd.concat([_raw(f"subject-0{i}", _outcomes(50, 5 + i, 5), S1) for i in (1, 2)], ignore_index=True)
    return makers


def _spreads() -> dict:
    draws = pd.concat([_raw("trained_S1-topk10", _outcomes(40 - d, 15 + d, 5), S1).assign(tie_seed=1000 * d) for d in range(2)])
    return tie_spread(draws)


def _table() -> pd.DataFrame:
    return shape_bias_table(_makers(), samples=50, spreads=_spreads())


def _accuracy_runs() -> pd.DataFrame:
    """Table 1's runs near the top of the axis, where a legend inside it would land on the bars."""
    return pd.DataFrame([{"subset": subset, "variant": variant, "seed": seed, "clean": 88.0 + seed + i, "stylized": 80.0 + seed + i}
                         for subset in ("S1", "S2") for i, variant in enumerate(("baseline", "topk", "topk_mean_rpl")) for seed in range(3)])


def _metrics_files(root: Path) -> list[Path]:
    paths = []
    for subset in ("S1", "S2"):
        for variant in ("baseline", "topk", "topk_mean_rpl"):
            for seed in (0, 1):
                path = root / subset / variant / f"seed{seed}" / "metrics.csv"
                path.parent.mkdir(parents=True)
                epochs = np.arange(6)
                stylized = np.where(epochs % 3 == 2, 0.3 + 0.05 * epochs, np.nan)  # evaluated every third epoch
                pd.DataFrame({"epoch": epochs, "train_loss": 1.6 - 0.1 * epochs - 0.02 * seed, "clean_acc": 0.2 + 0.1 * epochs,
                              "stylized_acc": stylized}).to_csv(path, index=False)
                paths.append(path)
    return paths


def _gan_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame([{"class": c, "variant": v, "seed": s, "fid": 60.0 - 10 * (v == "fastgan_topk") + s, "kid_x1e3": 9.0 + s}
                         for c in ("hexagon", "jeep") for v in ("fastgan", "fastgan_topk") for s in (0, 1, 2)])
    table = pd.DataFrame([{"class": "jeep", "variant": v, "metric": m, "paper_mean": 49.0 if m == "fid" else np.nan}
                          for v in ("fastgan", "fastgan_topk") for m in ("fid", "kid_x1e3")])
    return runs, table


def _masks(times: range) -> dict[int, torch.Tensor]:
    return {t: torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(t)) > 0.7 for t in times}


def _previews(root: Path) -> list[Path]:
    """Preview rows of 8 samples of 16 px, as gan.evaluate writes them, for 2 classes x 2 variants."""
    paths = []
    for i, (cls, variant) in enumerate((c, v) for c in ("hexagon", "jeep") for v in ("fastgan", "fastgan_topk")):
        path = root / cls / variant / "seed0" / "preview.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 8 * 16, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _styled_mask_figure(times: range, channels: list[int] | None, **options) -> Figure:
    """Figure 8 as the mask-dynamics workflow scripts draw it: the shared style set first (texture
    sits below report and cannot set it itself)."""
    style.use_paper_style()
    return mask_dynamics_figure(_masks(times), "Top-K masks during training (S1)", channels, **options)


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "shape_bias_overall": lambda tmp: overall_figure(_table()),
    "shape_bias_per_class": lambda tmp: per_class_figure(_makers(), _table(), spreads=_spreads()),
    "shape_bias_vs_k": lambda tmp: shape_bias_vs_k_figure(_table(), {"ViT-L": 0.54, "CLIP": 0.57}),
    "shape_bias_atlas": lambda tmp: atlas_figure(_table()),
    "table1": lambda tmp: accuracies_figure(_accuracy_runs()),
    "table1_training_curves": lambda tmp: training_curves_figure(read_training_curves(_metrics_files(tmp))),
    "table2": lambda tmp: fid_kid_figure(*_gan_runs()),
    "topk_mask_dynamics": lambda tmp: _styled_mask_figure(range(51), [0, 3, 7, 9], time_unit="epoch", inputs=torch.rand(2, 3, 32, 32)),
    # the GAN's channels as its script labels them: "#n", the n-th recorded (rows of two lines)
    "gan_topk_mask_dynamics": lambda tmp: _styled_mask_figure(range(0, 100_001, 1000), None, time_unit="iteration",
                                                              outputs={t: torch.rand(2, 3, 64, 64) for t in range(0, 100_001, 1000)}),
    "fewshot_samples": lambda tmp: sample_grid_figure(_previews(tmp)),
    "shape_bias_vs_ood": lambda tmp: _ood_figure(),
}


def _ood_figure() -> Figure:
    """Shape bias against OOD accuracy: two atlas entries at three settings each, as report.ood draws it."""
    from topkshape.report.ood import correlation_figure
    from topkshape.report.shape_bias_vs_robustness import correlations

    points = pd.DataFrame({"model": ["resnet50_stages"] * 3 + ["vit_b16"] * 3, "tag": ["none", "topk10", "topk20"] * 2,
                           "shape_bias": [0.22, 0.31, 0.40, 0.45, 0.52, 0.61], "ood_accuracy": [0.55, 0.53, 0.50, 0.62, 0.60, 0.57]})
    points = points.assign(ood_accuracy_low=points["ood_accuracy"] - 0.03, ood_accuracy_high=points["ood_accuracy"] + 0.03)
    table = correlations(points, samples=50, x="shape_bias", y="ood_accuracy", group="model")
    return correlation_figure(points, table)


@pytest.fixture(autouse=True)
def matplotlib_defaults():
    """Each figure starts from matplotlib's defaults: one that does not set the style shows it."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        yield
    matplotlib.pyplot.close("all")


# --- the figures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIGURES)
def test_every_text_lies_inside_the_canvas(name, tmp_path):
    assert texts_outside_canvas(FIGURES[name](tmp_path)) == []


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_overlaps_another(name, tmp_path):
    assert overlapping_texts(FIGURES[name](tmp_path)) == []


@pytest.mark.parametrize("name", FIGURES)
def test_no_legend_covers_data_or_labels(name, tmp_path):
    fig = FIGURES[name](tmp_path)
    assert legends_over_data(fig) == []


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_wears_the_shared_style(name, tmp_path):
    assert style_problems(FIGURES[name](tmp_path)) == []


def test_the_mask_dynamics_scripts_set_the_shared_style_before_drawing():
    for script in ("mask_dynamics.py", "gan_mask_dynamics.py"):
        text = (ROOT / "workflow_scripts" / script).read_text()
        assert text.index("use_paper_style()") < text.index("render_mask_dynamics("), script


def test_image_grids_show_each_tile_at_64_px_or_more_with_row_and_column_labels(tmp_path):
    grid = FIGURES["fewshot_samples"](tmp_path)
    assert smallest_tile_px(grid) >= 64
    _, texts = render(grid)
    shown = {text.get_text() for text in texts}
    assert {"hexagon\nFastGAN", "jeep\nFastGAN w. Top-K (ours)"} <= shown and {str(i) for i in range(1, 9)} <= shown
    masks = FIGURES["topk_mask_dynamics"](tmp_path)
    assert smallest_tile_px(masks) >= 64
    _, texts = render(masks)
    shown = {text.get_text() for text in texts}
    assert {"input", "image 1", "image 2", "channel 0", "channel 9", "epoch 0", "epoch 50"} <= shown


def test_mask_dynamics_label_iterations_and_recorded_channels_and_thin_out_long_runs():
    style.use_paper_style()
    fig = mask_dynamics_figure(_masks(range(0, 1001, 50)), time_unit="iteration")
    _, texts = render(fig)
    titles = [text.get_text() for text in texts if text.get_text().startswith("iteration")]
    assert titles == [f"iteration\n{t}" for t in shown_times(list(range(0, 1001, 50)), 8)]  # two lines: a tile is narrow
    assert titles[0] == "iteration\n0" and titles[-1] == "iteration\n1000" and len(titles) == 8
    assert "image 1\nchannel #1" in {text.get_text() for text in texts}  # no model indices given: the recorded order


def test_mask_dynamics_show_each_input_beside_its_masks():
    style.use_paper_style()
    inputs = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    fig = mask_dynamics_figure(_masks(range(3)), inputs=inputs, input_label="generated")
    shown = [ax for ax in fig.axes if ax.get_title() == "generated" or ax.get_ylabel() in ("image 1", "image 2")]
    assert [ax.get_ylabel() for ax in shown] == ["image 1", "image 2"] and shown[0].get_title() == "generated"
    for ax, image in zip(shown, inputs):
        np.testing.assert_allclose(ax.images[0].get_array(), image.permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="3 input images for masks of 2 images"):
        mask_dynamics_figure(_masks(range(3)), inputs=torch.rand(3, 3, 16, 16))


def test_mask_dynamics_show_the_generated_image_above_its_masks_at_each_time():
    style.use_paper_style()
    masks = _masks(range(3))
    n_images = next(iter(masks.values())).shape[0]
    outputs = {t: torch.rand(n_images, 3, 16, 16, generator=torch.Generator().manual_seed(t)) for t in range(3)}
    fig = mask_dynamics_figure(masks, time_unit="iteration", outputs=outputs)
    for i in range(n_images):
        first = [ax for ax in fig.axes if ax.get_ylabel() == f"image {i + 1}\ngenerated"]
        assert len(first) == 1
        start = first[0].get_subplotspec().rowspan.start
        row = sorted((ax for ax in fig.axes if ax.get_subplotspec().rowspan.start == start), key=lambda ax: ax.get_subplotspec().colspan.start)
        assert len(row) == 3
        for time, ax in zip(range(3), row):
            np.testing.assert_allclose(ax.images[0].get_array(), outputs[time][i].permute(1, 2, 0).numpy(), atol=1e-6)
    labels = {ax.get_ylabel() for ax in fig.axes}
    assert "channel #1" in labels and not any(label.startswith("image 1\nchannel") for label in labels)
    # Outputs missing for a shown time (a run resumed from an older checkpoint): masks only.
    fig = mask_dynamics_figure(masks, time_unit="iteration", outputs={0: outputs[0]})
    assert not any(ax.get_ylabel().endswith("generated") for ax in fig.axes)


def test_the_sample_grid_is_written_as_png_and_pdf(tmp_path):
    out = [tmp_path / "figures" / "fewshot_samples.png", tmp_path / "figures" / "fewshot_samples.pdf"]
    sample_grid(_previews(tmp_path / "runs"), out)
    assert out[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out[1].read_bytes()[:5] == b"%PDF-"
    width, height = Image.open(out[0]).size
    assert width >= 8 * 64 and height >= 4 * 64


def test_the_table2_rule_declares_the_sample_grid_pdf_and_its_script_writes_it():
    rule = (ROOT / "rules" / "gan.smk").read_text()
    assert 'samples_pdf=f"{RESULTS}/figures/fewshot_samples.pdf"' in rule
    script = (ROOT / "workflow_scripts" / "make_table2.py").read_text()
    assert re.search(r"sample_grid\(sm\.input\.previews, \[sm\.output\.samples, sm\.output\.samples_pdf\]\)", script)


# --- the checks can fail -----------------------------------------------------------------------------


def _bad_figure() -> Figure:
    """No style, a legend in the middle of a line and a bar, and a label past the canvas's right edge."""
    fig = matplotlib.pyplot.figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0.5, 0.5], label="a line through the middle")
    ax.bar([0.5], [0.9], width=0.3, label="a bar")
    ax.legend(loc="center")
    fig.text(0.98, 0.5, "a label off the canvas")
    ax.set_title("a title under")
    fig.text(0.5, ax.title.get_position()[1], "a text on the title", transform=ax.transAxes, va="baseline")
    return fig


def test_the_checks_catch_a_legend_over_data_a_label_off_the_canvas_crowded_text_and_no_style():
    fig = _bad_figure()
    assert [p for p in texts_outside_canvas(fig) if "a label off the canvas" in p]
    over = legends_over_data(fig)
    assert "legend over line a line through the middle" in over and "legend over patch" in over
    assert [p for p in style_problems(fig) if "10 pt" in p] and [p for p in style_problems(fig) if "spine" in p]
    assert [p for p in overlapping_texts(fig) if "a text on the title" in p]


def test_the_legend_check_sees_scatter_points_and_bands_under_a_legend():
    fig = matplotlib.pyplot.figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.scatter([0.5], [0.5], label="point")
    ax.fill_between([0, 1], [0.45, 0.45], [0.55, 0.55], label="band")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.legend(loc="center")
    over = legends_over_data(fig)
    assert "legend over scatter point" in over and "legend over band" in over
    ax.legend(loc="upper left")
    assert legends_over_data(fig) == []


def test_a_tile_below_64_px_is_measured_as_such():
    style.use_paper_style()
    fig = Figure(figsize=(2, 0.5))
    axes = fig.subplots(1, 8)
    for ax in axes:
        ax.imshow(np.zeros((4, 4)))
    assert smallest_tile_px(fig) < 64

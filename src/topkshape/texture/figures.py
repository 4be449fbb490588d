"""Figures 2, 3 and 8: image panels and Top-K mask dynamics over training.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state),
so they render headless and in worker threads. Every file is written atomically. This package
sits below ``report``, so it cannot import the report's style: the figures take their text sizes
and resolution from rcParams, and the workflow scripts set the shared style
(``report.style.use_paper_style``) before drawing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from topkshape.atomic import atomic_file

# Re-exported for imports written before the recorder moved to a neutral module.
from topkshape.mask_recording import MaskRecorder, load_masks  # noqa: F401

PathArg = str | os.PathLike | Sequence[str | os.PathLike]
_PANEL_INCHES = 2.0


def _paths(path_or_paths: PathArg) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        return [Path(path_or_paths)]
    paths = [Path(p) for p in path_or_paths]
    if not paths:
        raise ValueError("no output path given")
    return paths


def _save(fig: Figure, path_or_paths: PathArg) -> None:
    """Save ``fig`` to every path; the format follows the suffix (.png, .pdf, ...)."""
    for path in _paths(path_or_paths):
        fmt = path.suffix.lstrip(".").lower()
        if not fmt:
            raise ValueError(f"figure path {str(path)!r} needs a suffix such as .png or .pdf")
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=_dpi(), bbox_inches="tight")


def _dpi() -> float:
    """The style's resolution where the caller set one (``savefig.dpi``), else 150."""
    dpi = matplotlib.rcParams["savefig.dpi"]
    return 150.0 if dpi == "figure" else max(float(dpi), 150.0)


def _to_numpy_image(image: Tensor) -> np.ndarray:
    """(1, C, H, W), (C, H, W) or (H, W) tensor in [0, 1] -> (H, W[, 3]) array for imshow."""
    array = image.detach().to("cpu", torch.float32)
    if array.dim() == 4:
        if array.shape[0] != 1:
            raise ValueError(f"a panel shows one image, got a batch of shape {tuple(image.shape)}")
        array = array[0]
    if array.dim() == 3:
        array = array[0] if array.shape[0] == 1 else array.permute(1, 2, 0)
    if array.dim() != 2 and not (array.dim() == 3 and array.shape[-1] == 3):
        raise ValueError(f"cannot show a tensor of shape {tuple(image.shape)} as an image")
    return array.clamp(0.0, 1.0).numpy()


def save_panels(rows: Sequence[tuple[str, Sequence[tuple[str, Tensor]]]], path: PathArg) -> None:
    """Grid of images: one row per target, one titled panel per column (Figures 2 and 3).

    ``rows`` is ``[(row label, [(panel title, image), ...]), ...]``, e.g. the target,
    "S w/ Top-K" and "S w/o Top-K" for each target image.
    """
    if not rows:
        raise ValueError("save_panels needs at least one row")
    ncols = max(len(panels) for _, panels in rows)
    fig = Figure(figsize=(_PANEL_INCHES * ncols, _PANEL_INCHES * len(rows)))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.axis("off")
                continue
            title, image = panels[c]
            ax.imshow(_to_numpy_image(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            if c == 0 and label:
                ax.set_ylabel(label, fontsize=9)
    _save(fig, path)


def shown_times(times: Sequence[int], most: int) -> list[int]:
    """At most ``most`` of the sorted recording ``times``, evenly spaced, the first and the last always.

    A run records its masks every epoch (50 in the paper configuration) or every checkpoint (100 for
    the GAN); more columns than this would shrink each mask below readability.
    """
    times = sorted(times)
    if len(times) <= most:
        return times
    picks = np.unique(np.linspace(0, len(times) - 1, max(most, 2)).round().astype(int))
    return [times[i] for i in picks]


def _check_masks(masks: dict[int, Tensor], channel_labels: Sequence[int] | None, inputs: Tensor | None) -> tuple[int, int, list]:
    """(images, channels, channel labels) of a valid recording; raise on any mismatch."""
    if not masks:
        raise ValueError("save_mask_dynamics needs masks for at least one time")
    times = sorted(masks)
    shape = tuple(masks[times[0]].shape)
    if len(shape) != 4 or any(tuple(masks[t].shape) != shape for t in times):
        shapes = [tuple(masks[t].shape) for t in times]
        raise ValueError(f"every mask must share one (images, channels, H, W) shape, got {shapes}")
    n_images, n_channels = shape[:2]
    # Unknown model indices: "#n", the n-th recorded channel (not to be read as the model's channel n).
    labels = list(channel_labels) if channel_labels is not None else [f"#{c + 1}" for c in range(n_channels)]
    if len(labels) != n_channels:
        raise ValueError(f"{len(labels)} channel labels for {n_channels} channels")
    if inputs is not None and len(inputs) != n_images:
        raise ValueError(f"{len(inputs)} input images for masks of {n_images} images")
    return n_images, n_channels, labels


def _time_label(unit: str, time: int) -> str:
    """A column header: "epoch 5" on one line where it fits a 0.6 in tile, "iteration\\n100000" on two."""
    label = f"{unit} {time}"
    return label if len(label) <= 9 else f"{unit}\n{time}"


def _bare(ax) -> None:
    """No ticks, hence no grid lines over an image; the frame stays as the tile's border."""
    ax.set_xticks([])
    ax.set_yticks([])


def mask_dynamics_figure(
    masks: dict[int, Tensor],
    title: str = "",
    channel_labels: Sequence[int] | None = None,
    *,
    time_unit: str = "epoch",
    inputs: Tensor | None = None,
    input_label: str = "input",
    outputs: dict[int, Tensor] | None = None,
    output_label: str = "generated",
    max_times: int = 8,
) -> Figure:
    """Figure 8: Top-K masks (white = Top-K) of fixed images and channels over training.

    ``masks`` maps a training time (``time_unit``: epoch or iteration) to a bool tensor of shape
    (images, channels, H, W); rows are (image, channel) pairs, columns "<time_unit> <time>" for at
    most ``max_times`` times (:func:`shown_times`). ``channel_labels`` names the channels in the model
    (default: "#n", the n-th recorded channel). ``inputs`` (images, C, H, W) in [0, 1], when given, is a first
    column titled ``input_label``: each image beside its masks. ``outputs`` maps each time to the model's
    outputs (images, C, H, W) in [0, 1] (a generator's images, whose inputs are latent codes): when it has
    every shown time, each image's rows start with a row labelled ``output_label``, the image its masks
    below are of at that time. Text sizes come from rcParams, so a caller's style (the report's
    ``use_paper_style``) applies.
    """
    n_images, n_channels, labels = _check_masks(masks, channel_labels, inputs)
    times = shown_times(list(masks), max_times)
    if outputs is not None and not all(time in outputs and len(outputs[time]) == n_images for time in times):
        outputs = None  # a run resumed from a checkpoint without them: masks only
    first = 1 if inputs is not None else 0
    per_image = n_channels + (1 if outputs is not None else 0)
    nrows, ncols = n_images * per_image, first + len(times)
    fig = Figure(figsize=(0.6 * ncols + 0.9, 0.6 * nrows + (0.6 if title else 0.3)), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    for i in range(n_images):
        if inputs is not None:
            ax = fig.add_subplot(grid[i * per_image:(i + 1) * per_image, 0])
            ax.imshow(_to_numpy_image(inputs[i]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            _bare(ax)
            ax.set_ylabel(f"image {i + 1}")
            if i == 0:
                ax.set_title(input_label)
        if outputs is not None:
            for col, time in enumerate(times):
                ax = fig.add_subplot(grid[i * per_image, first + col])
                ax.imshow(_to_numpy_image(outputs[time][i]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
                _bare(ax)
                if i == 0:
                    ax.set_title(_time_label(time_unit, time))
                if col == 0:
                    ax.set_ylabel(f"image {i + 1}\n{output_label}", rotation=0, ha="right", va="center")
        for c in range(n_channels):
            row = i * per_image + c + (1 if outputs is not None else 0)
            for col, time in enumerate(times):
                ax = fig.add_subplot(grid[row, first + col])
                ax.imshow(masks[time][i, c].detach().to("cpu", torch.float32).numpy(), cmap="gray", vmin=0.0, vmax=1.0,
                          interpolation="nearest")
                _bare(ax)
                if row == 0:
                    ax.set_title(_time_label(time_unit, time))
                if col == 0:  # horizontal: two short lines fit a row, a rotated label runs into the next one
                    named = inputs is not None or outputs is not None  # the image is named beside or above
                    ax.set_ylabel(f"channel {labels[c]}" if named else f"image {i + 1}\nchannel {labels[c]}",
                                  rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title)
    return fig


def save_mask_dynamics(
    masks: dict[int, Tensor],
    path_or_paths: PathArg,
    title: str = "",
    channel_labels: Sequence[int] | None = None,
    **options,
) -> None:
    """Write :func:`mask_dynamics_figure` (``options``: its keyword arguments) to each path."""
    _save(mask_dynamics_figure(masks, title, channel_labels, **options), path_or_paths)

"""Figures 2, 3 and 8: image panels and Top-K mask dynamics over training.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state),
so they render headless and in worker threads. Every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

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
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")


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


def save_mask_dynamics(
    masks: dict[int, Tensor],
    path_or_paths: PathArg,
    title: str = "",
    channel_labels: Sequence[int] | None = None,
) -> None:
    """Figure 8: Top-K masks (white = Top-K) of fixed images and channels over training.

    ``masks`` maps a training time (epoch or iteration) to a bool tensor of shape
    (images, channels, H, W); rows are (image, channel) pairs, columns are times.
    ``channel_labels`` names the channels in the model (default: their index here).
    """
    if not masks:
        raise ValueError("save_mask_dynamics needs masks for at least one time")
    times = sorted(masks)
    shape = tuple(masks[times[0]].shape)
    if len(shape) != 4 or any(tuple(masks[t].shape) != shape for t in times):
        shapes = [tuple(masks[t].shape) for t in times]
        raise ValueError(f"every mask must share one (images, channels, H, W) shape, got {shapes}")
    n_images, n_channels = shape[:2]
    labels = list(channel_labels) if channel_labels is not None else list(range(n_channels))
    if len(labels) != n_channels:
        raise ValueError(f"{len(labels)} channel labels for {n_channels} channels")
    nrows = n_images * n_channels
    fig = Figure(figsize=(1.2 * len(times) + 0.8, 1.2 * nrows + (0.4 if title else 0.0)))
    axes = fig.subplots(nrows, len(times), squeeze=False)
    for col, time in enumerate(times):
        mask = masks[time].detach().to("cpu", torch.float32)
        for i in range(n_images):
            for c in range(n_channels):
                ax = axes[i * n_channels + c][col]
                ax.imshow(mask[i, c].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0 and c == 0:
                    ax.set_title(str(time), fontsize=9)
                if col == 0:
                    ax.set_ylabel(f"img {i}, ch {labels[c]}", fontsize=8)
    if title:
        fig.suptitle(title)
    _save(fig, path_or_paths)

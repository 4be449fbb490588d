"""The cue-conflict sweep job of the workflow: one model, every Top-K setting, one raw CSV each.

The model is loaded and the stimuli decoded once; each setting is a copy of the plain
model with Top-K layers inserted at the paper's positions. Writing one model-vs-human
raw CSV per setting keeps the report's inputs what they were with one job per setting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from topkshape.atomic import atomic_file
from topkshape.ops import TIE_COUNT_KEYS
from topkshape.shape_bias.analysis import RAW_COLUMNS
from topkshape.shape_bias.evaluate import (
    Stimuli,
    load_stimuli,
    model_decisions,
    paper_topk_positions,
    raw_decisions,
    topk_summary,
    with_inference_topk,
)
from topkshape.shape_bias.tags import TRAINED_PREFIX, tag_setting

logger = logging.getLogger(__name__)

TIE_COLUMNS = ["subj", "layer", *TIE_COUNT_KEYS]


class TieCounter:
    """Counts, at each Top-K layer of a model, how much of an exactly-K selection tie order decides
    (:func:`topkshape.ops.tie_counts` on every input the layer sees), summed over the calls."""

    def __init__(self, model: nn.Module) -> None:
        from topkshape.models import topk_layers
        from topkshape.ops import tie_counts

        self.counts: dict[str, dict[str, int]] = {}
        self._handles = []
        for name, layer in topk_layers(model).items():
            def hook(module: nn.Module, inputs: tuple, output: Any, name: str = name) -> None:
                found = tie_counts(inputs[0], module.fraction)
                total = self.counts.setdefault(name, dict.fromkeys(found, 0))
                for key, value in found.items():
                    total[key] += value
            self._handles.append(layer.register_forward_hook(hook))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def rows(self, subject: str) -> list[dict[str, Any]]:
        """One row per Top-K layer for the ties table: the decision maker, the layer and its counts."""
        return [{"subj": subject, "layer": name, **counts} for name, counts in self.counts.items()]

    def describe(self) -> str:
        """One phrase per layer: the share of channels with a tie, and of kept entries chosen among ties."""
        return "; ".join(
            f"{name}: {c['channels_with_ties'] / max(c['channels'], 1):.1%} of channels tie at the threshold, "
            f"{c['kept_by_tie_order'] / max(c['kept'], 1):.1%} of kept entries chosen by tie order "
            f"({c['kept_by_nonzero_tie_order'] / max(c['kept'], 1):.1%} among equal non-zero values)"
            for name, c in self.counts.items()
        ) or "no Top-K layer"


def load_plain_model(
    model_name: str, *, weights: str | None = None, image_size: int = 224, checkpoint: str | Path | None = None
) -> tuple[nn.Module, str, list[str] | None, int]:
    """(model without Top-K, its architecture, its class names or None for ImageNet, input size).

    ``trained_<subset>`` reads the Table 1 model from ``checkpoint`` (its classes and
    training size come with it); any other name is a torchvision ImageNet model.
    """
    if model_name.startswith(TRAINED_PREFIX):
        from topkshape.classify.trained import (
            load_trained_classifier,
            trained_classifier_state,
        )

        if checkpoint is None:
            raise ValueError(f"{model_name} needs its model.pt (checkpoint=)")
        state = trained_classifier_state(checkpoint)
        model, classes = load_trained_classifier(checkpoint, None, "topk", state=state)
        return model, state["settings"]["arch"], classes, int(model.image_size)
    from topkshape.models import build_model

    return build_model(model_name, fraction=None, weights=weights), model_name, None, image_size


def _load_sweep(model_name: str, images: str | Path, *, weights: str | None, image_size: int, checkpoint: str | Path | None,
                threads: int, device: str | torch.device | None, images_per_class: int | None):
    """The plain model, its classes, its paper Top-K positions, the stimuli decoded once, and the device."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    plain, arch, classes, size = load_plain_model(model_name, weights=weights, image_size=image_size, checkpoint=checkpoint)
    positions = paper_topk_positions(arch)
    stimuli = load_stimuli(images, size, threads=threads, per_class=images_per_class)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    plain, stimuli = plain.to(dev).eval(), stimuli.to(dev)
    logger.info(
        "%s (%s): %d stimuli decoded once at %d px (%d resized, the rest fed as they are); loading took %.1f s",
        model_name, arch, len(stimuli), size, stimuli.resized, time.perf_counter() - start,
    )
    return plain, classes, positions, stimuli, dev


def run_cue_conflict_sweep(
    model_name: str,
    tags: Sequence[str],
    images: str | Path,
    outputs: Sequence[str | Path],
    *,
    weights: str | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    ties: str | None = None,
    tie_seed: int = 0,
    checkpoint: str | Path | None = None,
    threads: int = 1,
    device: str | torch.device | None = None,
    images_per_class: int | None = None,
    ties_output: str | Path | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Evaluate ``model_name`` at every setting of ``tags``, writing ``outputs[i]`` for ``tags[i]``.

    ``weights``: a torchvision weights name, a state-dict file, or None (random).
    ``images_per_class``: evaluate only that many stimuli of each category (None: all).
    ``tie_seed``: with ``ties="random"``, the seed of the first Top-K position's tie draws (the
    i-th draws from ``tie_seed + i``), the same for every setting, so a setting's decisions do not
    depend on which settings ran before it.

    ``ties_output``: a CSV of how much an exactly-K rule leaves to tie order, per setting with
    Top-K layers and layer (:data:`TIE_COLUMNS`; the shape-bias table reports it).

    Returns, per tag, the Top-K layers the evaluated model actually ran (name ->
    kind, fraction, mode, ties); the same goes to the log.
    """
    if len(tags) != len(outputs):
        raise ValueError(f"{len(tags)} tags but {len(outputs)} output files")
    plain, classes, positions, stimuli, dev = _load_sweep(model_name, images, weights=weights, image_size=image_size,
                                                          checkpoint=checkpoint, threads=threads, device=device,
                                                          images_per_class=images_per_class)
    return sweep_settings(plain, positions, stimuli, model_name, tags, outputs, classes=classes, batch_size=batch_size, ties=ties,
                          tie_seed=tie_seed, device=dev, ties_output=ties_output)


def sweep_settings(
    plain: nn.Module,
    positions: Sequence[Any],
    stimuli: Stimuli,
    model_name: str,
    tags: Sequence[str],
    outputs: Sequence[str | Path],
    *,
    classes: Sequence[str] | None = None,
    batch_size: int = 32,
    ties: str | None = None,
    tie_seed: int = 0,
    device: str | torch.device | None = None,
    ties_output: str | Path | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every setting of ``tags`` on a loaded model: Top-K after ``positions`` (names or resolved
    placement candidates), decisions on ``stimuli``, one raw CSV per setting, tie counts."""
    applied: dict[str, dict[str, dict[str, Any]]] = {}
    tie_rows: list[dict[str, Any]] = []
    for tag, out in zip(tags, outputs):
        began = time.perf_counter()
        fraction, mode = tag_setting(tag)
        model = with_inference_topk(plain, positions, fraction, mode, ties=ties, tie_seed=tie_seed)
        applied[tag] = topk_summary(model)
        ties_seen = TieCounter(model)
        responses = model_decisions(model, stimuli, classes=classes, batch_size=batch_size, device=device, desc=f"{model_name}-{tag}",
                                    preprocess=preprocess)
        ties_seen.remove()
        with atomic_file(out) as tmp:
            raw_decisions(stimuli, responses, f"{model_name}-{tag}").to_csv(tmp, index=False)
        layers = ", ".join(f"{name} ({s['mode']} {s['fraction']:g}, ties {s['ties']})" for name, s in applied[tag].items()) or "none"
        logger.info("%s-%s: Top-K layers: %s; %.1f s -> %s", model_name, tag, layers, time.perf_counter() - began, out)
        if applied[tag]:
            logger.info("%s-%s: ties under an exactly-K rule: %s", model_name, tag, ties_seen.describe())
        tie_rows += ties_seen.rows(f"{model_name}-{tag}")
    if ties_output is not None:
        with atomic_file(ties_output) as tmp:
            pd.DataFrame(tie_rows, columns=TIE_COLUMNS).to_csv(tmp, index=False)
    return applied


TIE_SEED_STRIDE = 1000
"""Draw s of a tie spread seeds its i-th Top-K position with s * 1000 + i: no two draws share a seed."""


def run_tie_spread(
    model_name: str,
    tags: Sequence[str],
    images: str | Path,
    output: str | Path,
    draws: int,
    *,
    weights: str | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    checkpoint: str | Path | None = None,
    threads: int = 1,
    device: str | torch.device | None = None,
    images_per_class: int | None = None,
) -> pd.DataFrame:
    """The decisions of every Top-K setting of ``tags`` under ``draws`` random tie orders.

    Each draw keeps exactly K entries, as ``ties: exact`` does, and differs from it only in
    which of the entries tied at the threshold it keeps (``ties: random``, seed
    ``draw * TIE_SEED_STRIDE``). How far the shape bias moves between draws is the part of an
    exactly-K result that tie order decides. Writes model-vs-human's raw rows with a
    ``tie_seed`` column to ``output`` (settings without Top-K have no ties and are left out).
    """
    if draws < 1:
        raise ValueError(f"a tie spread needs at least one draw, got {draws}")
    plain, classes, positions, stimuli, dev = _load_sweep(model_name, images, weights=weights, image_size=image_size,
                                                          checkpoint=checkpoint, threads=threads, device=device,
                                                          images_per_class=images_per_class)
    settings = [(tag, fraction, mode) for tag in tags for fraction, mode in [tag_setting(tag)] if fraction is not None]
    frames = []
    for draw in range(draws):
        began = time.perf_counter()
        for tag, fraction, mode in settings:
            model = with_inference_topk(plain, positions, fraction, mode, ties="random", tie_seed=draw * TIE_SEED_STRIDE)
            responses = model_decisions(model, stimuli, classes=classes, batch_size=batch_size, device=dev,
                                        desc=f"{model_name}-{tag} tie draw {draw}")
            frames.append(raw_decisions(stimuli, responses, f"{model_name}-{tag}").assign(tie_seed=draw * TIE_SEED_STRIDE))
        logger.info("%s: tie draw %d of %d (%d settings) took %.1f s", model_name, draw + 1, draws, len(settings), time.perf_counter() - began)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*RAW_COLUMNS, "tie_seed"])
    with atomic_file(output) as tmp:
        table.to_csv(tmp, index=False)
    return table

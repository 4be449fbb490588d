"""One cue-conflict evaluation job of the workflow: a model, a Top-K tag, a raw CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from topkshape.atomic import atomic_file
from topkshape.shape_bias.evaluate import evaluate_cue_conflict, load_trained_classifier
from topkshape.shape_bias.tags import TRAINED_PREFIX, parse_tag


def run_cue_conflict_job(
    options: dict[str, Any],
    model_name: str,
    tag: str,
    images: str | Path,
    out_csv: str | Path,
    *,
    checkpoint: str | Path | None = None,
    threads: int = 1,
) -> None:
    """Evaluate ``model_name`` with Top-K as ``tag`` says and write the raw decisions."""
    import torch

    from topkshape.models import build_model

    torch.set_num_threads(threads)
    mode, percent = parse_tag(tag)
    fraction = None if percent is None else percent / 100
    mode = "topk" if mode == "none" else mode
    if model_name.startswith(TRAINED_PREFIX):
        model, classes = load_trained_classifier(checkpoint, fraction, mode)
        image_size = model.image_size
    else:
        model = build_model(model_name, fraction=fraction, mode=mode, weights=options["weights"])
        classes, image_size = None, options["image_size"]
    rows = evaluate_cue_conflict(
        model, images, subject=f"{model_name}-{tag}", classes=classes, image_size=image_size, batch_size=options["batch_size"]
    )
    with atomic_file(out_csv) as tmp:
        rows.to_csv(tmp, index=False)

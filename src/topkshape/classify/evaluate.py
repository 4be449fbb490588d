"""Accuracy on clean and stylized sets; texture-choice rate and shape bias on cue-conflict sets."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true class indices over a loader, in order."""
    model.eval()
    predictions, targets = [], []
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        predictions.append(logits.argmax(1).cpu())
        targets.append(labels)
    return torch.cat(predictions), torch.cat(targets)


CUE_CONFLICT_SCORES = ("shape_rate", "texture_rate", "shape_bias")
"""The keys of :func:`cue_conflict_scores`."""


def cue_conflict_scores(predictions: torch.Tensor, shape_labels: torch.Tensor, texture_labels: torch.Tensor) -> dict[str, float]:
    """Shape/texture decision rates and shape bias (Geirhos et al.; model-vs-human's definition).

    Images whose texture class equals the shape class are left out; shape bias is
    shape decisions / (shape + texture decisions).
    """
    conflict = (texture_labels >= 0) & (texture_labels != shape_labels)
    p, s, t = predictions[conflict], shape_labels[conflict], texture_labels[conflict]
    n = max(1, int(conflict.sum()))
    shape = float((p == s).sum()) / n
    texture = float((p == t).sum()) / n
    bias = shape / (shape + texture) if shape + texture > 0 else float("nan")
    return dict(zip(CUE_CONFLICT_SCORES, (shape, texture, bias)))

"""From a 1000-way ImageNet softmax to one of the 16 cue-conflict categories.

model-vs-human's mapping: average the probabilities of the ImageNet classes each
category covers (``data/sixteen_class_imagenet_indices.yaml``), then take the arg-max.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import torch
import yaml


@lru_cache(maxsize=1)
def sixteen_class_indices() -> dict[str, list[int]]:
    """Category -> ImageNet indices, categories in sorted order (the toolbox's order)."""
    text = resources.files("topkshape").joinpath("data/sixteen_class_imagenet_indices.yaml").read_text()
    table = yaml.safe_load(text)
    return {name: table[name] for name in sorted(table)}


def sixteen_class_probabilities(probabilities: torch.Tensor) -> torch.Tensor:
    """(N, 1000) probabilities -> (N, 16) category scores (mean over each category's classes)."""
    if probabilities.dim() != 2 or probabilities.shape[1] != 1000:
        raise ValueError(f"expected (N, 1000) ImageNet probabilities, got {tuple(probabilities.shape)}")
    columns = [probabilities[:, idx].mean(dim=1) for idx in sixteen_class_indices().values()]
    return torch.stack(columns, dim=1)


def sixteen_class_decisions(probabilities: torch.Tensor) -> list[str]:
    """The arg-max category of each row."""
    names = list(sixteen_class_indices())
    return [names[i] for i in sixteen_class_probabilities(probabilities).argmax(dim=1).tolist()]

"""Datasets and transforms of the Table 1 protocol (the paper code's, scaled by image size)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision import datasets, transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(image_size: int, crop_scale: tuple[float, float] = (0.08, 1.0)) -> transforms.Compose:
    """RandomResizedCrop (area range ``crop_scale``) + horizontal flip + ImageNet normalisation."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size, scale=tuple(crop_scale)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform(image_size: int) -> transforms.Compose:
    """Resize(256) + CenterCrop(224) at 224 px, the same ratio at other sizes."""
    return transforms.Compose(
        [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


CACHE_MODES = (None, "decoded", "transformed")


class LabelledImageFolder(datasets.ImageFolder):
    """ImageFolder whose class indices follow a given class list (so eval sets match training).

    ``cache``: ``"decoded"`` keeps each image after its first decode (random training transforms
    still run per access); ``"transformed"`` keeps each transformed sample (deterministic evaluation
    transforms only). Either gives the same tensors as no cache, without decoding every epoch again:
    for small generated sets that fit in memory (PNG decoding is a large share of a default training
    run), never for ImageNet subsets.
    """

    def __init__(self, root: str | Path, classes: list[str], transform=None, cache: str | None = None) -> None:
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
        self._wanted = list(classes)
        super().__init__(str(root), transform=transform)
        self._cache = cache
        self._stored: dict = {}
        if cache == "decoded":
            decode = self.loader
            self.loader = lambda path: self._stored[path] if path in self._stored else self._stored.setdefault(path, decode(path))

    def __getitem__(self, index: int):
        if self._cache != "transformed":
            return super().__getitem__(index)
        if index not in self._stored:
            self._stored[index] = super().__getitem__(index)
        return self._stored[index]

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        found, _ = super().find_classes(directory)
        unknown = sorted(set(found) - set(self._wanted))
        if unknown:
            raise ValueError(f"{directory} has classes not in training: {unknown}")
        return self._wanted, {name: i for i, name in enumerate(self._wanted)}


def texture_targets(dataset: LabelledImageFolder, styles_csv: str | Path) -> torch.Tensor | None:
    """Per-image texture class index from ``styles.csv`` (-1 where none), in dataset order.

    Returns None when the set records no texture classes (AdaIN-stylized sets).
    """
    table = pd.read_csv(styles_csv, keep_default_na=False, dtype=str)
    if "texture_label" not in table or (table["texture_label"] == "").all():
        return None
    by_image = dict(zip(table["image"], table["texture_label"]))
    root = Path(dataset.root)
    index = dataset.class_to_idx
    labels = [by_image.get(Path(path).relative_to(root).as_posix(), "") for path, _ in dataset.samples]
    return torch.tensor([index.get(label, -1) for label in labels])

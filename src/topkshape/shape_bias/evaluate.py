"""Run a classifier over cue-conflict images and record its decisions in model-vs-human's format.

Works on the Geirhos et al. stimuli (``<shape>/<shape><n>-<texture><m>.png``, 16
categories, decisions through the 1000 -> 16 mapping) and on the embedded default's
generated cue-conflict sets (``<shape>/<shape>_<i>-<texture>.png``, decisions among
the trained classifier's own classes). Both image names give the texture category by
the toolbox's rule, so the same analysis scores both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from topkshape.classify.data import eval_transform
from topkshape.errors import InputDataError
from topkshape.shape_bias.analysis import RAW_COLUMNS
from topkshape.shape_bias.decisions import sixteen_class_decisions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_cue_conflict_images(folder: str | Path) -> list[tuple[Path, str]]:
    """(image, shape category) pairs, sorted; the category is the image's folder name."""
    root = Path(folder)
    if not root.is_dir():
        raise InputDataError(f"cue-conflict folder not found: {root}")
    items = [
        (path, path.parent.name)
        for path in sorted(root.glob("*/*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]
    if not items:
        raise InputDataError(f"no cue-conflict images (<category>/<image>.png) in {root}")
    return items


class _Images(Dataset):
    def __init__(self, items: Sequence[tuple[Path, str]], transform) -> None:
        self.items, self.transform = list(items), transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.items[index][0]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            size = path.stat().st_size if path.exists() else 0
            reason = "empty file (0 bytes)" if size == 0 else str(err)
            raise InputDataError(f"unreadable cue-conflict image {path}: {reason}") from None


@torch.no_grad()
def evaluate_cue_conflict(
    model: nn.Module,
    folder: str | Path,
    *,
    subject: str,
    classes: Sequence[str] | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    workers: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Decisions of ``model`` on every image, as model-vs-human raw rows.

    ``classes=None``: the model is a 1000-class ImageNet classifier and decisions go
    through the 16-category mapping; otherwise decisions are ``classes[argmax]``.
    """
    items = list_cue_conflict_images(folder)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    loader = DataLoader(_Images(items, eval_transform(image_size)), batch_size=batch_size, num_workers=workers)
    responses: list[str] = []
    for images in tqdm(loader, desc=f"cue-conflict {subject}", disable=None if progress else True, leave=False):
        logits = model(images.to(dev)).float()
        if classes is None:
            responses += sixteen_class_decisions(torch.softmax(logits, dim=1).cpu())
        else:
            responses += [classes[i] for i in logits.argmax(dim=1).cpu().tolist()]
    return pd.DataFrame(
        {
            "subj": subject,
            "session": 1,
            "trial": np.arange(1, len(items) + 1),
            "rt": np.nan,
            "object_response": responses,
            "category": [category for _, category in items],
            "condition": np.nan,
            "imagename": [path.name for path, _ in items],
        },
        columns=RAW_COLUMNS,
    )


def load_trained_classifier(checkpoint: str | Path, fraction: float | None, mode: str) -> tuple[nn.Module, list[str]]:
    """A Table 1 model from its ``model.pt`` with Top-K inserted at its arch's paper positions.

    The model's ``image_size`` attribute is the resolution it was trained at.
    """
    from topkshape.models import build_model

    path = Path(checkpoint)
    if not path.is_file():
        raise InputDataError(f"trained model not found: {path}")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    settings = state["settings"]
    kwargs: dict[str, Any] = {"num_classes": len(state["classes"])}
    if settings["arch"] == "resnet18_cifar":
        kwargs.update(input_size=settings["image_size"], width=settings["width"])
    model = build_model(settings["arch"], fraction=fraction, mode=mode, **kwargs)
    # The baseline has no Top-K layers, which hold no parameters: the state dict fits either way.
    model.load_state_dict(state["model"])
    model.image_size = settings["image_size"]
    return model, list(state["classes"])

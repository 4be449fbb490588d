"""A trained Table 1 classifier, read back from its ``model.pt`` for evaluation and features.

Lives beside the trainer that writes the file, so that the cue-conflict evaluation, FID's
feature extractor and texture synthesis all depend downwards on ``classify`` and not on
each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from topkshape.checkpoint import load_torch_file
from topkshape.errors import InputDataError

_REQUIRED_SETTINGS = {"arch", "variant", "topk_fraction", "image_size"}


def trained_classifier_state(path: str | Path) -> dict[str, Any]:
    """The ``model.pt`` dict (weights, classes, settings), loaded weights-only and checked."""
    state = load_torch_file(path, "trained classifier")
    settings = state.get("settings") if isinstance(state, dict) else None
    if not isinstance(settings, dict) or not _REQUIRED_SETTINGS <= settings.keys() or "model" not in state or "classes" not in state:
        raise InputDataError(f"{path} is not a model.pt written by topkshape.classify.train")
    return state


def load_trained_classifier(
    checkpoint: str | Path, fraction: float | None, mode: str, *, ties: str | None = None, state: dict[str, Any] | None = None
) -> tuple[nn.Module, list[str]]:
    """A Table 1 model from its ``model.pt`` with Top-K inserted at its arch's paper positions.

    ``fraction=None`` gives the model without Top-K. The model's ``image_size`` attribute is
    the resolution it was trained at. ``state`` skips re-reading a file already loaded.
    """
    from topkshape.models import build_model

    state = state if state is not None else trained_classifier_state(checkpoint)
    settings = state["settings"]
    kwargs: dict[str, Any] = {"num_classes": len(state["classes"])}
    if settings["arch"] == "resnet18_cifar":
        kwargs.update(input_size=settings["image_size"], width=settings["width"])
    if ties is not None:
        kwargs["ties"] = ties
    model = build_model(settings["arch"], fraction=fraction, mode=mode, **kwargs)
    # The baseline has no Top-K layers, which hold no parameters: the state dict fits either way.
    model.load_state_dict(state["model"])
    model.image_size = settings["image_size"]
    return model, list(state["classes"])


def load_as_trained(checkpoint: str | Path) -> tuple[nn.Module, list[str]]:
    """A Table 1 model from its ``model.pt`` as it was trained: its variant's Top-K layers (fraction,
    mode, ties) in place, so that it is evaluated as Table 1 reports it. ``image_size`` as above."""
    from topkshape.classify.train import TrainSettings, build_classifier

    state = trained_classifier_state(checkpoint)
    fields = {name: value for name, value in state["settings"].items() if name in TrainSettings.__dataclass_fields__}
    settings = TrainSettings(**fields)
    model = build_classifier(settings, len(state["classes"]))
    model.load_state_dict(state["model"])
    model.image_size = settings.image_size
    return model, list(state["classes"])

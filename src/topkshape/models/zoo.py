"""Any classifier by name: torchvision, timm or a user's builder, with its weights and its preprocessing.

A model is named ``<source>:<name>``:

* ``torchvision:<name>``: any of ``torchvision.models.list_models(module=torchvision.models)``;
  a bare name (``alexnet``, ``vgg16``) means the same;
* ``timm:<name>``: any model ``timm.create_model`` builds;
* ``python:<package.module>:<function>``: a function that takes no argument and returns an
  ``nn.Module`` (the user's own network).

Weights are ``random`` (built under ``torch.manual_seed(seed)``), a local state-dict file
(``.pt``/``.pth``/``.bin`` through the weights-only loader, or ``.safetensors``; its SHA-256 is
recorded and, when pinned, checked), a torchvision weights name (``DEFAULT``,
``IMAGENET1K_V1``) or a timm pretrained tag (``pretrained``/``DEFAULT`` for timm's default tag,
or e.g. ``augreg_in21k_ft_in1k``). ``DEFAULT`` on a ``python:`` model keeps what the builder made.

Preprocessing comes from the model's own metadata: the torchvision weights' transforms (the
architecture's ``DEFAULT`` weights when the weights are random or a file), or timm's data
config; a ``python:`` model may carry a timm-style ``pretrained_cfg``, else ImageNet's
defaults. Stimuli are fed as model-vs-human feeds its 224-px datasets (no resize and no crop
at 224 px; a model of another input size gets the 224-px image resized to its size with its
own interpolation, as the toolbox's ViT and CLIP wrappers do), normalized with the model's
mean and std.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from topkshape.checkpoint import load_state_strict
from topkshape.errors import ConfigError, InputDataError
from topkshape.pretrained import is_weights_file, load_weights_file

SOURCES: tuple[str, ...] = ("torchvision", "timm", "python")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STIMULUS_SIZE = 224  # model-vs-human's 224-px datasets


@dataclass(frozen=True)
class ModelName:
    """``source:name`` of a classifier (``python:`` names are ``module:function``)."""

    source: str
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def arch(self) -> str:
        """The architecture name the paper presets know (``alexnet``), or the full name."""
        return self.name if self.source == "torchvision" else str(self)


def parse_model_name(text: str) -> ModelName:
    """``torchvision:resnet50``, ``timm:convnext_tiny``, ``python:pkg.mod:build`` or a bare torchvision name."""
    text = str(text).strip()
    source, sep, rest = text.partition(":")
    if not sep:
        source, rest = "torchvision", text
    if source not in SOURCES:
        raise ConfigError(f"model {text!r}: the source must be one of {', '.join(s + ':' for s in SOURCES)} (e.g. torchvision:resnet50)")
    if not rest:
        raise ConfigError(f"model {text!r} names no model after {source}:")
    if source == "python" and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", rest):
        raise ConfigError(f"model {text!r}: a python model is python:<package.module>:<function>")
    return ModelName(source, rest)


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its input: size, interpolation, mean and std, and where they came from."""

    input_size: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    source: str

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, pixels: Tensor) -> Tensor:
        """(N, 3, S, S) uint8 stimuli -> the model's float input (resized only when S differs)."""
        x = pixels.to(torch.float32).div(255)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            mode = InterpolationMode(self.interpolation)
            x = TF.resize(x, [self.input_size, self.input_size], interpolation=mode, antialias=True)
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        return x.sub(mean).div(std)


IMAGENET_PREPROCESSING = Preprocessing(224, "bilinear", IMAGENET_MEAN, IMAGENET_STD, 224 / 256, "ImageNet defaults")


@dataclass
class LoadedModel:
    """A built classifier with what the results must record about it."""

    name: ModelName
    model: nn.Module
    weights: str
    weights_sha256: str
    preprocessing: Preprocessing
    prefix_tokens: int

    def record(self) -> dict[str, Any]:
        return {"model": str(self.name), "weights": self.weights, "weights_sha256": self.weights_sha256,
                "prefix_tokens": self.prefix_tokens, "preprocessing": self.preprocessing.as_record()}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_sha256(model: nn.Module) -> str:
    """SHA-256 over a model's state dict (names, dtypes, shapes, bytes): the hash of weights that came by name."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def prefix_token_count(model: nn.Module) -> int:
    """Tokens before the patch tokens (class, register, distillation): timm's ``num_prefix_tokens``,
    torchvision ViT's class token, else none."""
    count = getattr(model, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count
    return 1 if isinstance(getattr(model, "class_token", None), torch.Tensor) else 0


def _timm():
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency
        raise ConfigError("timm: models need the timm package (pip install timm)") from None
    return timm


def _torchvision_builder(name: str):
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=3)
        raise ConfigError(f"unknown torchvision classifier {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return torchvision


def _build(name: ModelName, weights: str) -> nn.Module:
    """The network with the named pretrained weights, or untrained (``weights`` random or a file)."""
    named = weights not in ("random",) and not is_weights_file(weights)
    if name.source == "torchvision":
        torchvision = _torchvision_builder(name.name)
        if named:
            from topkshape.pretrained import torchvision_weights

            torchvision_weights(name.name, weights)  # an unknown name: one line naming the choices
            return torchvision.models.get_model(name.name, weights=weights)
        return torchvision.models.get_model(name.name, weights=None)
    if name.source == "timm":
        timm = _timm()
        if not timm.is_model(name.name.split(".")[0]):
            import difflib

            close = difflib.get_close_matches(name.name, timm.list_models(), n=3)
            raise ConfigError(f"unknown timm model {name.name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        if named:
            tag = "" if weights.lower() in ("pretrained", "default") else f".{weights}"
            return timm.create_model(f"{name.name}{tag}", pretrained=True)
        return timm.create_model(name.name, pretrained=False)
    module_name, function_name = name.name.split(":")
    try:
        builder = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"model python:{name.name}: cannot import it ({type(error).__name__}: {error})") from None
    model = builder()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model python:{name.name} returned a {type(model).__name__}, not an nn.Module")
    if named and weights != "DEFAULT":
        raise ConfigError(f"model python:{name.name}: weights must be random, a file or DEFAULT (as built), got {weights!r}")
    return model


def _load_file(model: nn.Module, path: str, pinned: str | None) -> str:
    """Load a state-dict file strictly into ``model``; its SHA-256 (checked against ``pinned``)."""
    if not Path(path).is_file():
        raise InputDataError(f"weights file not found: {path}")
    digest = file_sha256(path)
    if pinned and digest != pinned.lower():
        raise InputDataError(f"weights file {path} has SHA-256 {digest}, not the pinned {pinned}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            state: Any = load_file(path)
        except Exception as error:  # safetensors raises its own error types
            raise InputDataError(f"weights file {path} is unreadable ({type(error).__name__}: {str(error)[:160]})") from None
        load_state_strict(model, state, f"weights file {path}")
    else:
        load_weights_file(model, path)
    return digest


def preprocessing_of(name: ModelName, model: nn.Module, weights: str) -> Preprocessing:
    """The model's own preprocessing: its torchvision weights' transforms or timm's data config."""
    if name.source == "torchvision":
        import torchvision

        try:
            enum = torchvision.models.get_model_weights(name.name)
        except ValueError:
            return IMAGENET_PREPROCESSING
        member = enum.DEFAULT if weights in ("random", "DEFAULT") or is_weights_file(weights) else enum[weights]
        built_size = getattr(model, "image_size", None)  # torchvision ViTs are built for one input size
        if isinstance(built_size, int) and member.transforms().crop_size[0] != built_size:
            # Random or file weights in an architecture built at 224 px whose DEFAULT weights run at
            # another size (ViT-H/14's SWAG at 518): the weights published for the built size.
            member = next((m for m in enum if m.transforms().crop_size[0] == built_size), member)
        transforms = member.transforms()
        crop, resize = transforms.crop_size[0], transforms.resize_size[0]
        return Preprocessing(int(crop), transforms.interpolation.value, tuple(transforms.mean), tuple(transforms.std),
                             crop / resize, f"torchvision {name.name} {member.name} transforms")
    config = getattr(model, "pretrained_cfg", None)
    if not config and name.source == "python":
        return IMAGENET_PREPROCESSING
    data = _timm().data.resolve_model_data_config(model)
    size = data["input_size"][-1]
    return Preprocessing(int(size), str(data["interpolation"]), tuple(float(v) for v in data["mean"]),
                         tuple(float(v) for v in data["std"]), float(data.get("crop_pct", 1.0)),
                         f"timm data config of {getattr(model, 'pretrained_cfg', {}).get('architecture', name.name)}")


def load_model(name: str | ModelName, weights: str = "DEFAULT", *, seed: int = 0, sha256: str | None = None,
               metadata: str | None = None) -> LoadedModel:
    """Build ``name`` with ``weights`` (random, a file, a weights name or tag) in eval mode.

    ``metadata``: for a file that holds a torchvision model's named weights (the workflow
    downloads them to a file), the weights name whose transforms give the preprocessing.
    """
    parsed = parse_model_name(name) if isinstance(name, str) else name
    weights = str(weights) if weights is not None else "random"
    if weights.lower() in ("none", "null"):
        weights = "random"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(parsed, weights)
    if is_weights_file(weights):
        digest = _load_file(model, weights, sha256)
    else:
        if sha256:
            raise ConfigError(f"a SHA-256 pin applies to a weights file, but the weights of {parsed} are {weights!r}")
        digest = state_sha256(model)
    described = f"random (seed {seed})" if weights == "random" else weights
    if metadata:
        described = f"{metadata} ({weights})"
    return LoadedModel(parsed, model.eval(), described, digest, preprocessing_of(parsed, model, metadata or weights),
                       prefix_token_count(model))

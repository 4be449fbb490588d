"""Pretrained weight files as workflow inputs: where each comes from, how it is pinned, how it loads.

Every pretrained network of the paper run (torchvision's AlexNet, VGG16 and VGG-19, LPIPS's
VGG-16 backbone, torch-fidelity's Inception) is one file, downloaded by a workflow rule on
the submitting host (``<downloads.folder>/weights/<file>``, ``resources/weights/`` by default) and read by the jobs from that path. So
compute nodes never need the internet, a job's result depends on a file Snakemake sees,
and a mirror (``downloads.torchvision_url``, ``downloads.inception_url``) or a full SHA-256
pin (``downloads.sha256``) is a config value.

Pinning: torchvision and torch-fidelity name their files ``<name>-<sha256 prefix>.pth`` and
``torch.hub`` checks that prefix (``check_hash``); we check the same prefix, or the whole
SHA-256 when ``downloads.sha256`` names the file, which then replaces the prefix check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from topkshape.errors import ConfigError, InputDataError

if TYPE_CHECKING:
    import torch
    from torch import nn

# torch is imported by the functions that load weights, not here: the Snakefile plans with this module,
# and every `snakemake` call of a configuration without pretrained files would pay ~1.3 s for it.

TORCHVISION_URL = "https://download.pytorch.org/models"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
# torch.hub's convention: the hex run between the last '-' and the first '.' after it.
_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,64})\.")


def torchvision_weights(arch: str, name: str) -> Any:
    """torchvision's weights enum member ``name`` (``DEFAULT``, ``IMAGENET1K_V1``) of ``arch``."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError:
        raise ConfigError(f"{arch!r} is not a torchvision model with published weights") from None
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ConfigError(f"{name!r} is not a weights name of torchvision's {arch} (choose from DEFAULT, {', '.join(m.name for m in enum)})") from None


def is_weights_name(value: str | None) -> bool:
    """A torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``), not null and not a file path."""
    return bool(value) and re.fullmatch(r"[A-Z][A-Z0-9_]*", str(value)) is not None


WEIGHTS_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def is_weights_file(value: str | None) -> bool:
    """A weights value that names a file (a path or a weights-file suffix), not random or a weights name/tag."""
    return bool(value) and ("/" in str(value) or str(value).endswith(WEIGHTS_FILE_SUFFIXES) or Path(str(value)).is_file())


def torchvision_file(arch: str, name: str) -> str:
    """The file name torchvision publishes ``arch``'s ``name`` weights under (``vgg16-397923af.pth``)."""
    return torchvision_weights(arch, name).url.rsplit("/", 1)[1]


def inception_file() -> str:
    return INCEPTION_URL.rsplit("/", 1)[1]


def weights_url(file: str, downloads: Mapping[str, Any]) -> str:
    """Where ``file`` is downloaded from, after the configured mirrors."""
    if file == inception_file():
        return downloads.get("inception_url") or INCEPTION_URL
    return f"{(downloads.get('torchvision_url') or TORCHVISION_URL).rstrip('/')}/{file}"


def pinned_hash(file: str, downloads: Mapping[str, Any]) -> str | None:
    """The full SHA-256 pinned for ``file`` in ``downloads.sha256``, or None (the name's prefix pins it)."""
    return (downloads.get("sha256") or {}).get(file)


def name_prefix(file: str) -> str | None:
    """The SHA-256 prefix in a torch.hub file name, or None when it carries none."""
    match = _HASH_PREFIX.search(file)
    return match.group(1) if match else None


def load_state(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state-dict file, weights-only; one-line errors for anything else."""
    from topkshape.checkpoint import load_torch_file

    state = load_torch_file(path, what)
    if not isinstance(state, dict):
        raise InputDataError(f"{path} holds a {type(state).__name__}, not a state dict ({what})")
    return state


def load_into(model: nn.Module, path: str | os.PathLike, what: str) -> nn.Module:
    """Load a state-dict file into ``model`` strictly, with a one-line error naming the first misfit."""
    from topkshape.checkpoint import load_state_strict

    load_state_strict(model, load_state(path, what), str(path), type(model).__name__)
    return model


def load_weights_file(model: nn.Module, path: str | os.PathLike) -> None:
    """A state-dict file (or a checkpoint holding one under ``state_dict``/``model``) into ``model``,
    weights-only and strictly; one-line errors naming the file."""
    from topkshape.checkpoint import load_state_strict, load_torch_file

    state = load_torch_file(path, "weights file")
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise InputDataError(f"weights file {path} holds no state dict")
    load_state_strict(model, state, f"weights file {path}")


def with_weights(build: Callable[..., nn.Module], weights: Any, **kwargs: Any) -> nn.Module:
    """``build(weights=...)`` for a weights name or None; a file path builds untrained then loads it."""
    if isinstance(weights, (str, os.PathLike)) and not is_weights_name(str(weights)):
        return load_into(build(weights=None, **kwargs), weights, f"{getattr(build, '__name__', 'model')} weights")
    return build(weights=weights, **kwargs)


def download_weights(file: str, dest: str | os.PathLike, url: str, sha256: str | None, *, require_pinned: bool) -> Path:
    """Fetch ``file`` from ``url`` into ``dest``, checked against its full pin, else against its name's prefix."""
    from topkshape.download import download_file

    return download_file(url, dest, sha256, require_pinned=require_pinned, pin_key=f"downloads.sha256['{file}']",
                         sha256_prefix=None if sha256 else name_prefix(file))


def workflow_weight_files(config: Mapping[str, Any]) -> dict[str, str]:
    """Each pretrained file a configuration downloads: role -> file name (empty for the embedded default).

    Roles: ``shape_bias:<model>``, ``atlas:<entry name>`` (torchvision weights by name), ``texture``,
    ``lpips``, ``inception``. Only weights
    given by name are downloaded; a file path is read as it is, null means random weights.
    """
    files: dict[str, str] = {}
    sb = config["shape_bias"]
    for model in sb["models"]:
        if not model.startswith("trained_") and is_weights_name(sb.get("weights")):
            files[f"shape_bias:{model}"] = torchvision_file(model, sb["weights"])
    for entry in sb.get("atlas", []):
        source, _, name = entry["model"].partition(":")
        if source == "torchvision" and is_weights_name(entry.get("weights")):
            files[f"atlas:{entry['name']}"] = torchvision_file(name, entry["weights"])
    texture = config["texture"]
    if texture["feature_net"] == "vgg19" and is_weights_name(texture.get("weights")):
        files["texture"] = torchvision_file("vgg19", texture["weights"])
    gan = config["gan"]
    if config["data"]["fewshot"]:
        if gan.get("recon_loss") == "lpips":
            files["lpips"] = torchvision_file("vgg16", "IMAGENET1K_V1")
        evaluation = gan["eval"]
        if evaluation["feature_extractor"] == "inception-v3-compat" and not evaluation.get("feature_extractor_weights_path"):
            files["inception"] = inception_file()
    return files

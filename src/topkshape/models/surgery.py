"""Insert Top-K layers after named submodules of any ``nn.Module``.

Parameter names of the original layers are kept, so torchvision state dicts load
into a model before or after surgery alike: inside an ``nn.Sequential`` the Top-K
layer is added beside its target under the name ``"<target>_topk"``; a target that
is itself an ``nn.Sequential`` (ResNet's ``layer2``) gets it appended as ``"topk"``.
Any other target gets it as a child ``topk`` applied to its output by a forward hook,
so the target keeps its forward, its call signature and its attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from topkshape.models.layout_topk import LayoutTopK
from topkshape.ops import Ties, TopK, TopKMeanReplace, check_fraction, check_ties

Mode = Literal["topk", "non_topk", "mean_replace"]
MODES: tuple[str, ...] = ("topk", "non_topk", "mean_replace")


def make_topk_layer(fraction: float, mode: Mode = "topk", ties: Ties = "keep", tie_seed: int = 0) -> nn.Module:
    """The Top-K layer for ``mode``: Eq. 1, its complement, or Eq. 2, with tie rule ``ties``
    (``tie_seed``: the seed of its tie draws under ``ties="random"``)."""
    check_ties(ties)
    if mode == "mean_replace":
        return TopKMeanReplace(fraction, ties=ties, tie_seed=tie_seed)
    if mode in ("topk", "non_topk"):
        return TopK(fraction, keep=mode, ties=ties, tie_seed=tie_seed)
    raise ValueError(f"Top-K mode must be one of {MODES}, got {mode!r}")


def _resolve_spec(spec: Mapping[str, float] | Sequence[str], fraction: float | None) -> dict[str, float]:
    if isinstance(spec, Mapping):
        if fraction is not None:
            raise ValueError("give fractions in the spec mapping or as fraction=, not both")
        return {str(name): check_fraction(value) for name, value in spec.items()}
    if isinstance(spec, str):
        raise ValueError(f"spec must be a mapping or a list of module names, got the string {spec!r}")
    if fraction is None:
        raise ValueError("a list of module names needs fraction=")
    return {str(name): check_fraction(fraction) for name in spec}


def _split(name: str) -> tuple[str, str]:
    parent, _, child = name.rpartition(".")
    return parent, child


def insert_topk(
    model: nn.Module,
    spec: Mapping[str, float] | Sequence[str],
    *,
    fraction: float | None = None,
    mode: Mode = "topk",
    ties: Ties = "keep",
    tie_seed: int = 0,
    layouts: Mapping[str, tuple[str, int]] | None = None,
) -> nn.Module:
    """Put a Top-K layer after each named submodule; returns ``model`` (modified in place).

    ``spec`` is ``{"layer2": 0.2}`` or ``["features.2", "features.5"]`` with
    ``fraction=``. Names are those of ``model.named_modules()``; an unknown name
    raises ValueError listing the valid ones nearby. ``ties`` (``"keep"``, ``"exact"``
    or ``"random"``, see :mod:`topkshape.ops`) goes to every inserted layer; under
    ``"random"`` the i-th layer in ``spec`` order draws its ties from ``tie_seed + i``.
    ``layouts`` maps a name to the layout of that module's output and its prefix-token count,
    ``("tokens", 1)`` or ``("nhwc", 0)`` (:mod:`topkshape.models.layout_topk`); a name not in it
    is an ``(N, C, H, W)`` map.
    """
    check_ties(ties)
    targets = _resolve_spec(spec, fraction)
    layouts = dict(layouts or {})
    modules = dict(model.named_modules())
    for name in targets:
        if name not in modules or name == "":
            known = ", ".join(n for n in list(modules)[1:40])
            raise ValueError(f"no submodule named {name!r} in {type(model).__name__} (some names: {known})")
    # Work from the last target backwards so earlier insertions do not move later ones.
    for index, (name, frac) in reversed(list(enumerate(targets.items()))):
        layer = make_topk_layer(frac, mode, ties, tie_seed + index)
        layout, prefix = layouts.get(name, ("nchw", 0))
        if layout != "nchw":
            layer = LayoutTopK(layer, layout, prefix)  # type: ignore[arg-type]
        parent_name, child = _split(name)
        parent = model.get_submodule(parent_name) if parent_name else model
        target = parent.get_submodule(child)
        if isinstance(parent, nn.Sequential):
            items: list[tuple[str, nn.Module]] = []
            for key, module in parent.named_children():
                items.append((key, module))
                if key == child:
                    items.append((f"{child}_topk", layer))
            _replace_children(parent, items)
        elif isinstance(target, nn.Sequential):
            target.add_module("topk", layer)
        else:
            _attach(target, layer)
    return model


def _apply_attached_topk(module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the module's output through its attached Top-K layer (a module-level function, so
    that a deep copy of the model keeps working hooks)."""
    return module.topk(output)


def _attach(target: nn.Module, layer: nn.Module) -> None:
    """Top-K on ``target``'s output as a child ``topk`` and a forward hook: the module keeps its own
    forward and signature (a transformer block called with extra arguments, a patch embedding whose
    attributes its model reads) and its parameter names."""
    if "topk" in target._modules:
        raise ValueError(f"{type(target).__name__} already has a child named 'topk'")
    target.add_module("topk", layer)
    target.register_forward_hook(_apply_attached_topk)


def _replace_children(sequential: nn.Sequential, items: list[tuple[str, nn.Module]]) -> None:
    """Rebuild an ``nn.Sequential``'s children in a new order, keeping the same object."""
    for key in list(sequential._modules):
        del sequential._modules[key]
    for key, module in items:
        sequential.add_module(key, module)


def topk_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The Top-K layers of ``model`` by qualified name (for masks and reporting)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (TopK, TopKMeanReplace))}

"""Where Top-K goes in any model: a placement spec resolved against the model's own modules.

A spec is a comma-separated list (or a list) of items, each of which selects modules; Top-K goes
after every selected one, in ``named_modules()`` order:

* presets: ``paper`` (the paper's AlexNet and VGG16 positions, ours for ResNet-18), ``stages``
  (after each resolution stage: timm's ``feature_info`` stages where timm defines them, else the
  last module before each drop in resolution, see :func:`resolution_stages`), ``every_block``
  (the outermost modules with children inside an ``nn.Sequential``/``nn.ModuleList``, the
  residual and transformer blocks) and ``every_relu`` (every ``nn.ReLU``/``nn.ReLU6`` module);
* ``type:<ClassName>``: every module of that class;
* a glob over module names (``layer[2-3]``, ``features.*``): every placeable match;
* an exact module name: that module, which must be placeable.

What a module's output gets is read from one forward pass on a stimulus-sized input
(:func:`probe`): an ``(N, C, H, W)`` map gets spatial Top-K, an ``(N, H, W, C)`` map (a Swin stage)
the same over ``H x W`` (the square input's two equal dimensions tell the layout; where C = H = W, the
model's ``output_fmt`` decides), and ``(N, T, C)`` tokens get token Top-K over the patch tokens,
the model's prefix tokens left out where ``T`` minus them is a square patch grid. Any other
output (logits, tuples, a batch folded with heads) is not placeable.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from topkshape.errors import ConfigError

PRESETS: tuple[str, ...] = ("paper", "stages", "every_block", "every_relu")
_RELUS = (nn.ReLU, nn.ReLU6)
_GLOB = set("*?[")
PROBE_BATCH = 2


@dataclass(frozen=True)
class Candidate:
    """One module as the probe saw it: its output's shape and the Top-K kind it would get."""

    name: str
    type: str
    shape: tuple[int, ...] | None
    calls: int
    layout: str | None  # "nchw", "nhwc", "tokens", or None: not placeable
    prefix: int
    reason: str  # why not placeable (empty when it is)
    leaf: bool = True  # a module without children

    @property
    def kind(self) -> str:
        return {"nchw": "spatial", "nhwc": "spatial (channels last)", "tokens": f"token (prefix {self.prefix})"}.get(
            self.layout or "", f"none: {self.reason}")


def _is_square(count: int) -> bool:
    return count > 0 and math.isqrt(count) ** 2 == count


def output_layout(shape: tuple[int, ...], *, batch: int, prefix: int, channels_last: bool | None) -> tuple[str | None, int, str]:
    """(layout, prefix tokens, reason) for one output shape."""
    if not shape or shape[0] != batch:
        return None, 0, "its first dimension is not the batch"
    if len(shape) == 4:
        square_nchw, square_nhwc = shape[2] == shape[3], shape[1] == shape[2]
        if not square_nchw and not square_nhwc:
            return None, 0, "a 4-D output that is no square (N, C, H, W) or (N, H, W, C) map (e.g. windows of tokens)"
        if square_nchw and square_nhwc:  # C = H = W: the model's declared format decides, else channels first
            return ("nhwc" if channels_last else "nchw"), 0, ""
        return ("nchw" if square_nchw else "nhwc"), 0, ""
    if len(shape) == 3:
        tokens = shape[1]
        if prefix and _is_square(tokens - prefix):
            return "tokens", prefix, ""
        if _is_square(tokens) and tokens > 1:
            return "tokens", 0, ""
        return None, 0, f"{tokens} tokens are no square patch grid with or without {prefix} prefix tokens"
    return None, 0, f"a {len(shape)}-D output has no spatial or token axis"


def _channels_last(model: nn.Module) -> bool | None:
    fmt = getattr(model, "output_fmt", None)
    fmt = getattr(fmt, "value", fmt)
    return {"NHWC": True, "NCHW": False}.get(str(fmt)) if fmt is not None else None


@torch.no_grad()
def probe(model: nn.Module, input_size: int, prefix: int) -> list[Candidate]:
    """Every submodule with the shape of its output on a random ``input_size`` batch, in completion order."""
    seen: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    hooks = []

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            entry = seen.setdefault(name, {"shapes": [], "calls": 0})
            if not entry["calls"]:
                order.append(name)
            entry["calls"] += 1
            entry["shapes"].append(tuple(output.shape) if isinstance(output, torch.Tensor) else None)
        return hook

    types, leaves = {}, {}
    for name, module in model.named_modules():
        if name:
            types[name] = type(module).__name__
            leaves[name] = not any(True for _ in module.children())
            hooks.append(module.register_forward_hook(hook_for(name)))
    was_training = model.training
    generator = torch.Generator().manual_seed(0)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()
        model(torch.randn(PROBE_BATCH, 3, input_size, input_size, generator=generator).to(device))
    except Exception as error:  # any model's own failure: say where
        raise ConfigError(f"{type(model).__name__} fails on a {input_size}-px input ({type(error).__name__}: {str(error)[:160]})") from None
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    channels_last = _channels_last(model)
    candidates = []
    for name in order:
        shapes = seen[name]["shapes"]
        if any(shape is None for shape in shapes):
            candidates.append(Candidate(name, types[name], None, seen[name]["calls"], None, 0, "its output is not a tensor", leaves[name]))
            continue
        kinds = {output_layout(shape, batch=PROBE_BATCH, prefix=prefix, channels_last=channels_last) for shape in shapes}
        if len(kinds) > 1:
            layout, pre, reason = None, 0, "its calls give outputs of different kinds"
        else:
            layout, pre, reason = kinds.pop()
        candidates.append(Candidate(name, types[name], shapes[0], seen[name]["calls"], layout, pre, reason, leaves[name]))
    return candidates


def _resolution(candidate: Candidate) -> tuple:
    shape = candidate.shape or ()
    if candidate.layout == "tokens":
        return ("tokens", shape[1] - candidate.prefix)
    return ("map",) + ((shape[1], shape[2]) if candidate.layout == "nhwc" else (shape[2], shape[3]))


def resolution_stages(candidates: Sequence[Candidate], containers: frozenset[str] = frozenset()) -> list[str]:
    """The module that ends each run of one resolution (a map's ``H x W`` or a token count).

    Only placeable single-call modules count, and a container (a Sequential or ModuleList)
    only when its whole subtree stays at one resolution, so a container spanning a
    downsampling ends no stage; 1x1 maps are left out, so a squeeze-excitation's pooled
    vector splits no run. Inside a block (not one of the
    ``containers``, the Sequential and ModuleList names) whose output has another resolution
    than some of its parts (an Inception reduction's branches, an inverted residual's
    expansion), only the parts at the block's own resolution count. A run ends with its last
    module that has children (a block or a stage), else with its last layer: so a downsampler's
    norm, which runs at the old resolution, does not end the stage before it.
    """
    placed = [(c, _resolution(c)) for c in candidates if c.layout and c.calls == 1]
    placed = [(c, key) for c, key in placed if key[0] == "tokens" or key[1] > 1]  # a pooled 1x1 map ends nothing
    own = dict((c.name, key) for c, key in placed)
    under: dict[str, set[tuple]] = {}
    for candidate, key in placed:
        parts = candidate.name.split(".")
        for end in range(1, len(parts) + 1):
            under.setdefault(".".join(parts[:end]), set()).add(key)
    blocks = {name for name, keys in under.items() if len(keys) > 1 and name in own and name not in containers}

    def inside_other_resolution(name: str, key: tuple) -> bool:
        parts = name.split(".")
        ancestors = (".".join(parts[:end]) for end in range(1, len(parts)))
        return any(a in blocks and own[a] != key for a in ancestors)

    runs: list[list[Candidate]] = []
    current: tuple | None = None
    for candidate, key in placed:
        if (len(under[candidate.name]) != 1 and candidate.name not in blocks) or inside_other_resolution(candidate.name, key):
            continue
        if runs and key == current:
            runs[-1].append(candidate)
        else:
            runs.append([candidate])
            current = key
    stages = []
    for run in runs:
        composite = [c for c in run if not c.leaf]  # a block or a stage container, when the run has one
        stages.append((composite or run)[-1].name)
    return stages


def _timm_stages(model: nn.Module) -> list[str] | None:
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and all(isinstance(i, dict) and "module" in i for i in info):
        return [str(i["module"]) for i in info]
    get = getattr(info, "module_name", None)
    if callable(get):  # timm's FeatureInfo object
        return [str(name) for name in get()]
    return None


def _blocks(model: nn.Module) -> list[str]:
    """Outermost non-container modules with children whose parent is a Sequential or ModuleList."""
    blocks: list[str] = []
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, (nn.Sequential, nn.ModuleList)):
            continue
        for child_name, child in parent.named_children():
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, (nn.Sequential, nn.ModuleList)) or not any(True for _ in child.children()):
                continue
            if not any(name.startswith(block + ".") for block in blocks):
                blocks.append(name)
    return blocks


def _paper(arch: str | None) -> list[str]:
    from topkshape.models.builders import ALEXNET_TOPK_POSITIONS, RESNET18_TOPK_POSITIONS, VGG16_TOPK_POSITIONS

    positions = {"alexnet": ALEXNET_TOPK_POSITIONS, "vgg16": VGG16_TOPK_POSITIONS, "resnet18": RESNET18_TOPK_POSITIONS,
                 "resnet18_cifar": RESNET18_TOPK_POSITIONS}
    if arch not in positions:
        raise ConfigError(f"placement paper is defined for {', '.join(sorted(positions))} only, not {arch}; use stages, every_block, every_relu or module names")
    return list(positions[arch])


def split_spec(spec: str | Sequence[str]) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else [str(item) for item in spec]
    items = [item.strip() for item in items if item and item.strip()]
    if not items:
        raise ConfigError("an empty placement: give a preset (" + ", ".join(PRESETS) + "), module names, globs or type:<Class>")
    return items


def _closest(word: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(names), n=3, cutoff=0.5)
    return ", ".join(close) if close else ", ".join(list(names)[:3])


def resolve_placement(model: nn.Module, spec: str | Sequence[str], candidates: Sequence[Candidate], *, arch: str | None = None) -> list[Candidate]:
    """The candidates ``spec`` selects, in ``named_modules()`` order; a ConfigError in one line otherwise."""
    by_name = {c.name: c for c in candidates}
    names = [name for name, _ in model.named_modules() if name]
    chosen: set[str] = set()
    for item in split_spec(spec):
        if item in PRESETS:
            if item == "paper":
                picked = _paper(arch)
            elif item == "stages":
                containers = frozenset(n for n, m in model.named_modules() if isinstance(m, (nn.Sequential, nn.ModuleList)))
                timm_stages = [n for n in _timm_stages(model) or [] if n in by_name and by_name[n].layout]
                # timm's stages where Top-K can follow them (CrossViT's give tuples of two scales), else by resolution
                picked = timm_stages or resolution_stages(candidates, containers)
            elif item == "every_block":
                picked = _blocks(model)
            else:
                picked = [n for n, m in model.named_modules() if n and isinstance(m, _RELUS)]
            picked = [n for n in picked if n in by_name and by_name[n].layout]
            if not picked:
                raise ConfigError(f"placement {item} finds no placeable module in {type(model).__name__}; try {', '.join(p for p in PRESETS if p != item)} or module names")
        elif item.startswith("type:"):
            wanted = item[len("type:"):].rsplit(".", 1)[-1]
            picked = [n for n in names if by_name.get(n) and by_name[n].type == wanted and by_name[n].layout]
            if not picked:
                present = sorted({c.type for c in candidates if c.layout})
                raise ConfigError(f"placement {item} matches no placeable module (closest types: {_closest(wanted, present)})")
        elif _GLOB & set(item):
            matched = [n for n in names if fnmatch.fnmatchcase(n, item) and n in by_name]
            picked = [n for n in matched if by_name[n].layout]
            if matched and not picked:
                first = by_name[matched[0]]
                raise ConfigError(f"placement {item} matches {len(matched)} modules, none of which Top-K can follow ({first.name}: {first.reason})")
            if not picked:
                raise ConfigError(f"placement {item} matches no module (closest names: {_closest(item.strip('*?[]'), names)})")
        else:
            if item not in by_name:
                if item in names:
                    raise ConfigError(f"placement {item}: the module is not called in {type(model).__name__}'s forward pass")
                raise ConfigError(f"placement {item}: no such module in {type(model).__name__} (closest names: {_closest(item, names)})")
            if by_name[item].layout is None:
                raise ConfigError(f"placement {item}: Top-K cannot follow it ({by_name[item].reason}; output {by_name[item].shape})")
            picked = [item]
        chosen.update(picked)
    return [by_name[n] for n in names if n in chosen]


def format_positions(candidates: Sequence[Candidate]) -> str:
    """The table ``--list-positions`` prints: name, type, output shape, calls and Top-K kind."""
    width = max([len(c.name) for c in candidates] + [6])
    lines = [f"{'module':<{width}}  {'type':<24} {'output':<22} calls  top-k"]
    for c in candidates:
        shape = "x".join(map(str, c.shape[1:])) if c.shape else "-"
        lines.append(f"{c.name:<{width}}  {c.type[:24]:<24} {shape:<22} {c.calls:>5}  {c.kind}")
    return "\n".join(lines)

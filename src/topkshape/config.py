"""Check a workflow configuration before any job runs, with one-line errors.

Two layers: the JSON schema (``config_schema.yaml``: types, ranges, no unknown
keys, defaults) and the checks a schema cannot express (folders that must exist,
class names valid for the data source, subsets that must not overlap). Both run
after command-line overrides, so ``--config train='{seeds: []}'`` is caught too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from topkshape.data.shapes import SHAPES
from topkshape.errors import ConfigError

WNID_PATTERN = re.compile(r"^n\d{8}$")


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(resources.files("topkshape").joinpath("config_schema.yaml").read_text())


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    """Insert schema defaults for absent keys, recursively (before validation)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_config(config: Mapping[str, Any], *, check_paths: bool = True) -> dict[str, Any]:
    """Return a copy of ``config`` with defaults filled, or raise ConfigError (one line)."""
    checked = copy.deepcopy(dict(config))
    schema = load_schema()
    _fill_defaults(checked, schema)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(checked))
    if error is not None:
        message = error.message.replace("\n", " ")
        raise ConfigError(f"config key '{_where(error)}': {message}")
    for problem in _semantic_problems(checked, check_paths):
        raise ConfigError(problem)
    return checked


def _semantic_problems(config: dict[str, Any], check_paths: bool) -> Iterator[str]:
    data = config["data"]
    source = data["source"]
    if source == "imagenet":
        root = config["imagenet_root"]
        if not root:
            yield "config key 'imagenet_root': required when data.source is imagenet (the ILSVRC2012 folder)"
        elif check_paths and not Path(root, "train").is_dir():
            where = "ImageNet folder not found" if not Path(root).is_dir() else "no train/ folder in ImageNet folder"
            yield f"config key 'imagenet_root': {where}: {root}"
    seen: dict[str, str] = {}
    named = [(f"data.subsets.{n}", c) for n, cs in data["subsets"].items() for c in cs]
    named += [(f"data.fewshot.{n}", c) for n, c in data["fewshot"].items()]
    for key, cls in named:
        if source == "synthetic" and cls not in SHAPES:
            yield f"config key '{key}': unknown shape class {cls!r}; choose from {sorted(SHAPES)}"
        if source == "imagenet" and not WNID_PATTERN.match(cls):
            yield f"config key '{key}': {cls!r} is not a WNID like 'n01440764'"
        if key.startswith("data.subsets"):
            if cls in seen and seen[cls] != key:
                yield f"config key '{key}': class {cls!r} is also in {seen[cls]}; subsets must be disjoint"
            seen[cls] = key
    if source == "synthetic":
        size, train_size = data["synthetic"]["image_size"], config["train"]["image_size"]
        if train_size > size:
            yield f"config key 'train.image_size': {train_size} is larger than data.synthetic.image_size {size}"
    stylize = config["stylize"]
    if check_paths and stylize["styles"] != "builtin" and not Path(stylize["styles"]).is_dir():
        yield f"config key 'stylize.styles': style image folder not found: {stylize['styles']}"
    shape_bias = config["shape_bias"]
    for model in shape_bias["models"]:
        if model.startswith("trained_") and model[len("trained_"):] not in data["subsets"]:
            yield f"config key 'shape_bias.models': {model!r} names no subset in data.subsets"
    for part in ("cue_conflict", "humans"):
        opts = shape_bias[part]
        if opts["source"] == "folder" and not opts["path"]:
            yield f"config key 'shape_bias.{part}.path': required when shape_bias.{part}.source is folder"
        elif check_paths and opts["source"] == "folder" and not Path(opts["path"]).is_dir():
            yield f"config key 'shape_bias.{part}.path': folder not found: {opts['path']}"
    texture = config["texture"]
    if texture["feature_net"].startswith("trained_") and texture["feature_net"][len("trained_"):] not in data["subsets"]:
        yield f"config key 'texture.feature_net': {texture['feature_net']!r} names no subset in data.subsets"
    if texture["targets"] not in data["fewshot"]:
        yield f"config key 'texture.targets': {texture['targets']!r} is not a few-shot set in data.fewshot"
    subset = texture["mask_dynamics"]["subset"]
    if subset is not None and subset not in data["subsets"]:
        yield f"config key 'texture.mask_dynamics.subset': {subset!r} is not in data.subsets"
    gan = config["gan"]
    for name in gan.get("topk_fraction", {}):
        if name not in data["fewshot"]:
            yield f"config key 'gan.topk_fraction.{name}': not a few-shot set in data.fewshot"
    missing = [name for name in data["fewshot"] if name not in gan.get("topk_fraction", {})]
    if missing:
        yield f"config key 'gan.topk_fraction': no Top-K fraction for few-shot set {missing[0]!r}"
    evaluation = gan["eval"]
    if evaluation["kid_subset_size"] > min(data["fewshot_images"], evaluation["samples"]):
        yield (f"config key 'gan.eval.kid_subset_size': {evaluation['kid_subset_size']} is larger than the real "
               f"({data['fewshot_images']}) or generated ({evaluation['samples']}) image count")
    if evaluation["feature_extractor"] == "classifier" and evaluation["classifier_subset"] not in data["subsets"]:
        yield "config key 'gan.eval.classifier_subset': must name a subset when feature_extractor is classifier"
    if evaluation["selection"] == "best" and evaluation["snapshot_every"] == 0:
        yield "config key 'gan.eval.snapshot_every': selection best needs snapshots (snapshot_every > 0)"
    for part in ("encoder", "decoder"):
        path = stylize["adain"][f"{part}_path"]
        if check_paths and path and not Path(path).is_file():
            yield f"config key 'stylize.adain.{part}_path': file not found: {path}"

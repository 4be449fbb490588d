"""Check a workflow configuration before any job runs, with one-line errors.

Three layers, run after command-line overrides so ``--config train='{seeds: []}'`` is
caught too:

1. normalisation: dotted top-level keys (``train.epochs``) are nested, and strings are
   read as numbers, booleans or null where the schema expects one (PyYAML reads ``1e-3``
   as a string; Snakemake passes nested ``--config`` values as strings);
2. the JSON schema (``config_schema.yaml``: types, ranges, no unknown keys, defaults),
   after a check that every number is finite (NaN passes every ``minimum``); its messages say
   a pattern's forms in words and that a file of overrides is layered after a full config;
   then '~' in the user's paths (``USER_PATH_KEYS``) is expanded for every consumer;
3. the checks a schema cannot express: values that must fit the model they configure
   (input sizes, layer names, channel indices), counts that must not exceed others,
   folders that must exist, class names valid for the data source.

Command-line forms (``snakemake_args``): ``--config key=value`` for a top-level key,
``--config train='{epochs: 3}'`` for a nested one. Snakemake itself rejects a dotted key
(``train.epochs=3``), a missing ``--configfile`` and a target after ``--resources gpu=2`` (read
as a resource) with a traceback before the Snakefile is read, so ``snakemake_args`` checks and
rewrites a command line for a launcher.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from topkshape.data.shapes import SHAPES
from topkshape.errors import ConfigError

WNID_PATTERN = re.compile(r"^n\d{8}$")
# A folder name under data/ and results/: no separators, no leading dot, no '..'.
EXPERIMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

# Facts of the model code (tests/test_config_checks.py checks them against the built models).
# Smallest square input each architecture accepts.
MIN_INPUT_SIZE = {"alexnet": 63, "vgg16": 32, "resnet18": 16, "resnet18_cifar": 32}
# resnet18_cifar flattens its last map into the linear layer: input_size % 32 == 0.
SIZE_MULTIPLE = {"resnet18_cifar": 32}
# Channels at each architecture's first Top-K position (where training records masks).
FIRST_TOPK_LAYER = {"alexnet": "features.2", "vgg16": "features.4", "resnet18": "layer2", "resnet18_cifar": "layer2"}
# Top-level (and Sequential-index) module names; deeper names are checked on the built model.
SHALLOW_MODULES = {
    "resnet18_cifar": {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "linear"},
    "resnet18": {"conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"},
    "alexnet": {"features", "avgpool", "classifier"} | {f"features.{i}" for i in range(13)} | {f"classifier.{i}" for i in range(7)},
    "vgg16": {"features", "avgpool", "classifier"} | {f"features.{i}" for i in range(31)} | {f"classifier.{i}" for i in range(7)},
}
# Gatys layer names of the texture feature network vgg19, and its raw ``features`` indices.
GATYS_LAYERS = ("relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "pool3", "relu4_1", "pool4", "relu5_1")
VGG19_FEATURES = 37
# FastGAN generator widths per resolution, as multiples of ngf (gan/fastgan.py).
GENERATOR_WIDTHS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
_NULL_WORDS = ("null", "Null", "NULL", "~")  # YAML's spellings of null
_BOOL_WORDS = {"true": True, "false": False}


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(resources.files("topkshape").joinpath("config_schema.yaml").read_text())


def gan_sets(config: Mapping[str, Any]) -> list[str]:
    """The few-shot sets the GAN stage trains on: gan.fewshot_sets, or every set of data.fewshot when it is null.

    A list of its own because data.fewshot is a mapping, which Snakemake merges across config files: an
    overlay (the smoke run's) can add sets to it but never remove one."""
    return list(config["gan"].get("fewshot_sets") or config["data"]["fewshot"])


def first_topk_channels(arch: str, width: int) -> int:
    """Channels of the map at ``arch``'s first Top-K position (masks are recorded there)."""
    return {"alexnet": 64, "vgg16": 64, "resnet18": 128, "resnet18_cifar": 2 * width}[arch]


def generator_channels(ngf: int, resolution: int) -> int:
    """Channels of FastGAN's generator map at ``resolution`` (its Top-K map)."""
    return max(1, int(GENERATOR_WIDTHS[resolution] * ngf))


# --- normalisation ------------------------------------------------------------------------------


def nest_dotted_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 3}`` -> ``{"train": {"epochs": 3}}``, merged into what is there."""
    nested: dict[str, Any] = {key: value for key, value in config.items() if "." not in str(key)}
    for key, value in config.items():
        if "." not in str(key):
            continue
        *parents, leaf = str(key).split(".")
        node = nested
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"config key '{key}': '{'.'.join(parents[:depth + 1])}' is not a section with keys")
            node[part] = child = copy.deepcopy(child)
            node = child
        node[leaf] = value
    return nested


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type", ())
    types = {kind} if isinstance(kind, str) else set(kind)
    enum = schema.get("enum")
    if enum and all(isinstance(v, int) and not isinstance(v, bool) for v in enum):
        types.add("integer")
    return types


def _as_number(text: str, integer: bool) -> int | float | None:
    """``'3'`` -> 3 (for an integer key), ``'1e-3'`` -> 0.001; None if it is no number."""
    if integer:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError:
        return None


def coerce_to_schema(value: Any, schema: Mapping[str, Any]) -> Any:
    """Read strings as the number, boolean or null the schema expects; integral floats as int.

    Leaves anything it cannot read unchanged, so the schema names the bad value.
    """
    types = _types(schema)
    if isinstance(value, str):
        text = value.strip()
        if "null" in types and text in _NULL_WORDS:
            value = None
        elif types & {"number", "integer"}:
            number = _as_number(text, integer="number" not in types)
            value = number if number is not None else value
        elif "boolean" in types and text.lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[text.lower()]
    if isinstance(value, float) and "integer" in types and "number" not in types and value.is_integer():
        value = int(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                value[key] = coerce_to_schema(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value = [coerce_to_schema(item, schema["items"]) for item in value]
    return value


def _non_finite(value: Any, where: str = "") -> Iterator[str]:
    if isinstance(value, float) and not math.isfinite(value):
        yield f"config key '{where or '(top level)'}': {value} is not a finite number"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{where}[{index}]")


# --- validation ---------------------------------------------------------------------------------


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    """Insert schema defaults for absent keys, recursively (before validation)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
            if isinstance(instance[key], list) and isinstance(sub.get("items"), dict):
                for item in instance[key]:  # lists of objects (shape_bias.atlas): each entry's defaults
                    _fill_defaults(item, sub["items"])


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _schema_message(error: jsonschema.ValidationError, schema: Mapping[str, Any]) -> str:
    where = _where(error)
    if error.validator == "pattern" and "pattern_message" in error.schema:
        return f"config key '{where}': {error.instance!r} {error.schema['pattern_message']}"
    if error.validator == "pattern":
        return _pattern_message(error, schema)
    if error.validator == "required" and not error.absolute_path:
        return _missing_top_level_message(error)
    message = error.message.replace("\n", " ")
    if error.validator == "additionalProperties" and not error.absolute_path:
        # An unknown top-level key that is a nested one: say where it belongs and how to set it.
        sections = schema.get("properties", {})
        for key in error.instance:
            homes = [name for name, sub in sections.items() if key not in sections and key in sub.get("properties", {})]
            if homes:
                return (f"config key '{key}' is not a top-level key; it belongs in a section ({', '.join(f'{h}.{key}' for h in homes)}); "
                        f"on the command line: --config {homes[0]}='{{{key}: VALUE}}'")
    return f"config key '{where}': {message}"


def _missing_top_level_message(error: jsonschema.ValidationError) -> str:
    """A missing top-level key most often means a file of overrides given alone: ``--configfile``
    replaces the embedded config.yaml instead of adding to it."""
    missing = next((key for key in error.validator_value if key not in error.instance), error.validator_value[0])
    return (f"the config has no '{missing}' key; a file of overrides must be layered after a full config, "
            "e.g. --configfile config.yaml my.yaml")


# Character classes of the schema's patterns, in words.
_CLASS_WORDS = {"A-Za-z0-9": "letters or digits", "A-Za-z0-9_": "letters, digits or _", "A-Za-z": "a letter",
                "0-9a-f": "lowercase hex digits", "0-9": "digits", "^/": "any character but /",
                "^\\s": "any character but whitespace", "A-Za-z_": "a letter or _", "A-Za-z0-9_.": "letters, digits, _ or .",
                "A-Za-z0-9_-": "letters, digits, _ or -"}
_QUANTIFIERS = {"+": "", "*": " (or none)", "?": " (optional)"}


def _readable_run(text: str) -> str | None:
    """One alternative of a pattern (literal text and character classes) as a template in words:
    ``trained_[A-Za-z0-9]+`` -> ``trained_<subset>``; None where the pattern is more than that."""
    from topkshape.shape_bias.tags import TRAINED_PREFIX  # imported here: the launcher need not load pandas

    out: list[str] = []
    rest = text
    while rest:
        token = re.match(r"\[([^\]]+)\](\{(\d+)\}|[+*?])?|\\(.)|([^\\\[\](){}|^$+*?.])", rest)
        if token is None:
            return None
        cls, count, literal = token.group(1), token.group(3), token.group(4) or token.group(5)
        if cls is None:
            out.append(literal)
        elif cls not in _CLASS_WORDS:
            return None
        elif "".join(out) == TRAINED_PREFIX:
            out.append("<subset>")  # shape_bias.tags: trained_<subset> is the Table 1 baseline of that subset
        else:
            how_many = f"{count} " if count else ""
            out.append(f"<{how_many}{_CLASS_WORDS[cls]}{_QUANTIFIERS.get(token.group(2) or '', '')}>")
        rest = rest[token.end():]
    return "".join(out)


def readable_pattern(pattern: str) -> str | None:
    """A schema pattern as the forms it allows, e.g. ``alexnet, vgg16 or trained_<subset>``; None if too
    complex to say (nested groups, other classes): users should not have to read a regex."""
    body = pattern.removeprefix("^").removesuffix("$")
    if body.startswith("(") and body.endswith(")") and body.count("(") == 1:
        body = body[1:-1]
    forms = [_readable_run(alternative) for alternative in body.split("|")]
    if not forms or None in forms:
        return None
    return forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} or {forms[-1]}"


def _schema_at(schema: Mapping[str, Any], path: Sequence[Any]) -> Mapping[str, Any]:
    node: Any = schema
    for step in path:
        node = node.get(step, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def _described(schema: Mapping[str, Any], path: Sequence[Any]) -> str | None:
    """The description of the key at schema ``path``; an array item's or a map value's is its container's."""
    node = _schema_at(schema, path)
    if "description" in node:
        return node["description"]
    if path and path[-1] in ("items", "additionalProperties"):
        return _schema_at(schema, path[:-1]).get("description")
    return None


def _pattern_message(error: jsonschema.ValidationError, schema: Mapping[str, Any]) -> str:
    """A value that does not match its key's pattern, said as the forms the key takes, not as a regex."""
    where = _where(error)
    path = list(error.absolute_schema_path)[:-1]  # drop the 'pattern' keyword
    forms, description = readable_pattern(error.validator_value), _described(schema, path)
    if path[-1:] == ["propertyNames"] and forms:
        return f"config key '{where}': the name {error.instance!r} must look like {forms}"
    if forms and description:
        return f"config key '{where}': {error.instance!r} must look like {forms}; {description}"
    if forms or description:
        return f"config key '{where}': {error.instance!r} must look like {forms or description}"
    return f"config key '{where}': {error.instance!r} does not have the form this key takes (the pattern {error.validator_value})"


# The keys that hold a user's own file or folder (checked below): '~' in them is the home folder.
USER_PATH_KEYS = (
    "imagenet_root", "paper_data.base_url", "stylize.styles", "stylize.adain.encoder_path", "stylize.adain.decoder_path",
    "shape_bias.weights", "shape_bias.cue_conflict.path", "shape_bias.humans.path", "shape_bias.references.path",
    "texture.weights", "gan.eval.feature_extractor_weights_path",
)


def _expanded(value: Any) -> Any:
    """``~/x`` -> ``/home/me/x``; anything else (null, URLs, weights names) unchanged."""
    return os.path.expanduser(value) if isinstance(value, str) and value.startswith("~") else value


def expand_user_paths(config: dict[str, Any]) -> None:
    """Expand '~' in the user paths of a checked config, in place: neither Path nor the jobs expand it,
    so ``imagenet_root: ~/ILSVRC2012`` would otherwise be a folder named '~' in the working directory."""
    for key in USER_PATH_KEYS:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = _expanded(node[leaf])
    for entry in config.get("shape_bias", {}).get("atlas", []):
        entry["weights"] = _expanded(entry.get("weights"))


def validate_config(config: Mapping[str, Any], *, check_paths: bool = True, mask_figures: bool = True) -> dict[str, Any]:
    """Return a checked copy of ``config`` with defaults filled, or raise ConfigError (one line).

    ``mask_figures``: the Top-K mask figures (Figure 8, classifier and GAN) are targets, so
    masks must be recorded; the workflow's ``all`` always includes them.
    """
    checked = nest_dotted_keys(copy.deepcopy(dict(config)))
    schema = load_schema()
    _fill_defaults(checked, schema)
    checked = coerce_to_schema(checked, schema)
    for problem in _non_finite(checked):
        raise ConfigError(problem)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(checked))
    if error is not None:
        raise ConfigError(_schema_message(error, schema))
    expand_user_paths(checked)
    for problem in _semantic_problems(checked, check_paths, mask_figures):
        raise ConfigError(problem)
    return checked


def _semantic_problems(config: dict[str, Any], check_paths: bool, mask_figures: bool = True) -> Iterator[str]:
    if not EXPERIMENT_PATTERN.match(config["experiment"]):
        yield (f"config key 'experiment': {config['experiment']!r} is not a plain name "
               "(letters, digits, _ and -, not starting with - or .)")
    yield from _data_problems(config, check_paths)
    yield from _model_problems(config)
    yield from _count_problems(config, mask_figures)
    yield from _reference_problems(config, check_paths)
    yield from _ood_problems(config)
    if check_paths:
        yield from _offline_path_problems(config)


def _paper_fewshot_files(paper_set: str, cap: int | None) -> list[str]:
    """The files of one of the paper's few-shot sets that a run uses (its first ``cap`` in name order)."""
    from topkshape.paper_data import fewshot_part, part_files

    return sorted(f.rel_path for f in part_files(fewshot_part(paper_set)))[:cap]


def _fewshot_count(data: Mapping[str, Any], name: str) -> int:
    """Images of few-shot set ``name``: the paper's set (as capped) or ``data.fewshot_images``."""
    paper_set = data["paper_fewshot"].get(name)
    return len(_paper_fewshot_files(paper_set, data["paper_fewshot_images"])) if paper_set else data["fewshot_images"]


def _paper_target_problems(names: Sequence[str], paper_set: str, cap: int | None) -> Iterator[str]:
    """Texture targets taken from one of the paper's few-shot sets must be in it (its first ``cap`` files)."""
    stems = {Path(name).stem for name in _paper_fewshot_files(paper_set, cap)}
    missing = [name for name in names if name not in stems]
    if missing:
        where = f"the first {cap} images (data.paper_fewshot_images) of" if cap else "the images of"
        yield f"config key 'texture.target_names': {missing} are not among {where} the paper's few-shot set {paper_set!r}"


def unpinned_downloads(config: Mapping[str, Any]) -> dict[str, str]:
    """Downloads ``downloads.require_pinned`` would refuse: config key that pins it -> one-line message.

    Not part of :func:`validate_config`: the workflow asks when it plans the download's job
    (rules/common.smk ``stop_if_unpinned``), so ``snakemake -n`` stops in one line before any
    job, and a target that does not need the download is not held up by it.
    """
    if not config["downloads"]["require_pinned"]:
        return {}
    how = "(its SHA-256: sha256sum of the file, or `curl -sL URL | sha256sum`; or set downloads.require_pinned: false)"
    refused: dict[str, str] = {}
    stylize = config["stylize"]
    if stylize["method"] == "adain":
        adain = stylize["adain"]
        for part in ("encoder", "decoder"):
            if not adain[f"{part}_path"] and not adain[f"{part}_sha256"]:
                key = f"stylize.adain.{part}_sha256"
                refused[key] = (f"config key '{key}': downloads.require_pinned refuses the unpinned download {adain[f'{part}_url']}: "
                                f"set it {how}, or set stylize.adain.{part}_path to a local copy")
    shape_bias = config["shape_bias"]
    if shape_bias["cue_conflict"]["source"] == "download" and not shape_bias["cue_conflict"]["sha256"]:
        key = "shape_bias.cue_conflict.sha256"
        refused[key] = (f"config key '{key}': downloads.require_pinned refuses the unpinned download "
                        f"{shape_bias['cue_conflict']['url']}: set it {how}, or use shape_bias.cue_conflict.source paper_data")
    if shape_bias["references"]["source"] == "download":
        for label, entry in shape_bias["references"]["files"].items():
            if not entry.get("sha256"):
                key = f"shape_bias.references.files.{label}.sha256"
                refused[key] = f"config key '{key}': downloads.require_pinned refuses the unpinned download of {entry['name']}: set it {how}"
    ood = config["robustness"]["ood"]
    for name in ood["datasets"]:
        if not ood["sha256"].get(name):
            key = f"robustness.ood.sha256.{name}"
            refused[key] = (f"config key '{key}': downloads.require_pinned refuses the unpinned download "
                            f"{ood['url'].format(name=name)}: set it {how}")
    from topkshape.pretrained import name_prefix, workflow_weight_files

    for file in workflow_weight_files(config).values():
        if name_prefix(file) is None and file not in config["downloads"]["sha256"]:
            refused[f"downloads.sha256.{file}"] = (f"config key 'downloads.sha256': downloads.require_pinned refuses {file}, "
                                                   f"whose name pins no hash: add '{file}: <sha256>' {how}")
    return refused


def _offline_path_problems(config: dict[str, Any]) -> Iterator[str]:
    """Local files and folders the config names instead of a download: they must be there before any job."""
    from topkshape.pretrained import is_weights_name

    # (key, value, whether the value may instead be a torchvision weights name, which is downloaded)
    candidates = [("shape_bias.weights", config["shape_bias"]["weights"], True), ("texture.weights", config["texture"]["weights"], True),
                  ("gan.eval.feature_extractor_weights_path", config["gan"]["eval"]["feature_extractor_weights_path"], False)]
    for key, value, may_be_name in candidates:
        if value and not (may_be_name and is_weights_name(value)) and not Path(value).is_file():
            yield f"config key '{key}': file not found: {value}"
    base = config["paper_data"]["base_url"]
    if "://" not in base and not Path(base).is_dir():
        yield f"config key 'paper_data.base_url': neither a URL nor an existing folder: {base}"


def _data_problems(config: dict[str, Any], check_paths: bool) -> Iterator[str]:
    data = config["data"]
    source = data["source"]
    if source == "synthetic" and config["imagenet_root"]:
        # Most often `--config imagenet_root=...` without `--configfile config/paper.yaml`: the toy run would be planned.
        yield ("config key 'imagenet_root': it is set, but data.source is synthetic (the embedded default ignores it); "
               "add --configfile config/paper.yaml (or set data.source: imagenet)")
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
        yield from _home_texture_problems(data)
    for name in data.get("paper_fewshot") or {}:
        if name not in data["fewshot"]:
            yield (f"config key 'data.paper_fewshot.{name}': no few-shot set {name!r} in data.fewshot "
                   f"({', '.join(data['fewshot']) or 'none'})")
    stylize = config["stylize"]
    if check_paths and stylize["styles"] not in ("builtin", "paper_data") and not Path(stylize["styles"]).is_dir():
        yield f"config key 'stylize.styles': style image folder not found: {stylize['styles']}"



def _home_texture_problems(data: Mapping[str, Any]) -> Iterator[str]:
    """``data.synthetic.home_textures``: known classes and textures, and within each subset home textures
    that tell its classes apart (by pattern alone with permuted colours)."""
    from topkshape.data.shapes import TEXTURES
    from topkshape.data.synthetic import HOME_TEXTURE, home_texture_problem

    synthetic = data["synthetic"]
    overrides = synthetic["home_textures"]
    for cls, texture in overrides.items():
        if cls not in SHAPES:
            yield f"config key 'data.synthetic.home_textures.{cls}': unknown shape class {cls!r}; choose from {sorted(SHAPES)}"
        elif texture not in TEXTURES:
            yield f"config key 'data.synthetic.home_textures.{cls}': unknown texture {texture!r}; choose from {sorted(TEXTURES)}"
    homes = {**HOME_TEXTURE, **{c: t for c, t in overrides.items() if c in SHAPES and t in TEXTURES}}
    for name, classes in data["subsets"].items():
        if all(c in SHAPES for c in classes):
            problem = home_texture_problem(classes, homes, permuted=synthetic["texture_colours"] == "permuted")
            if problem:
                yield f"config key 'data.synthetic.home_textures': subset {name}: {problem}"

def _input_size_problem(key: str, arch: str, size: int) -> str | None:
    multiple = SIZE_MULTIPLE.get(arch)
    if multiple and size % multiple:
        low = max(multiple, size // multiple * multiple)
        return f"config key '{key}': {size} is not a multiple of {multiple}, which {arch} needs (e.g. {low} or {low + multiple})"
    if size < MIN_INPUT_SIZE[arch]:
        return f"config key '{key}': {size} is smaller than the {MIN_INPUT_SIZE[arch]} px {arch} needs"
    return None


def _model_problems(config: dict[str, Any]) -> Iterator[str]:
    """Values that must fit the model they configure: input sizes, layer names, channels."""
    train, texture, shape_bias = config["train"], config["texture"], config["shape_bias"]
    arch = train["arch"]
    problem = _input_size_problem("train.image_size", arch, train["image_size"])
    if problem:
        yield problem
        return  # the model cannot be built: its layers cannot be checked either
    for model in shape_bias["models"]:
        if model in MIN_INPUT_SIZE:
            problem = _input_size_problem("shape_bias.image_size", model, shape_bias["image_size"])
            if problem:
                yield f"{problem} (shape_bias.models lists {model})"
    if texture["feature_net"] == "vgg19":
        valid = set(GATYS_LAYERS) | {str(i) for i in range(VGG19_FEATURES)}
        for layer in texture["layers"]:
            if layer not in valid:
                yield (f"config key 'texture.layers': {layer!r} is not a vgg19 layer; use Gatys names "
                       f"{', '.join(GATYS_LAYERS)} or feature indices 0-{VGG19_FEATURES - 1}")
    else:
        net = texture["feature_net"]
        unknown = [layer for layer in texture["layers"] if layer not in SHALLOW_MODULES[arch]]
        if unknown:
            names = module_names(arch, train["width"], train["image_size"])
            for layer in unknown:
                if layer not in names:
                    yield (f"config key 'texture.layers': {layer!r} is not a module of {net} ({arch}); "
                           f"e.g. {', '.join(sorted(SHALLOW_MODULES[arch]))}")
        if arch == "resnet18_cifar" and texture["image_size"] != train["image_size"]:
            yield (f"config key 'texture.image_size': {texture['image_size']} differs from train.image_size "
                   f"{train['image_size']}; {net} ({arch}) only runs at the size it was trained at")
        elif arch != "resnet18_cifar":
            problem = _input_size_problem("texture.image_size", arch, texture["image_size"])
            if problem:
                yield problem
    channels = texture["mask_dynamics"]["channels"]
    width = first_topk_channels(arch, train["width"])
    for channel in channels:
        if channel >= width:
            yield (f"config key 'texture.mask_dynamics.channels': channel {channel} is beyond the {width} channels "
                   f"(0-{width - 1}) of {arch}'s first Top-K layer {FIRST_TOPK_LAYER[arch]}")
    gan = config["gan"]
    resolutions = [8 * 2**i for i in range(gan["im_size"].bit_length() - 3)]  # 8 .. im_size
    if gan["topk_resolution"] not in resolutions:
        yield f"config key 'gan.topk_resolution': must be one of {resolutions} for gan.im_size {gan['im_size']}, got {gan['topk_resolution']}"
    elif config["data"]["fewshot"]:
        gan_width = generator_channels(gan["ngf"], gan["topk_resolution"])
        for channel in channels:
            if channel >= gan_width:
                yield (f"config key 'texture.mask_dynamics.channels': channel {channel} is beyond the {gan_width} channels "
                       f"(0-{gan_width - 1}) of the GAN generator's {gan['topk_resolution']}x{gan['topk_resolution']} "
                       f"Top-K map (gan.ngf {gan['ngf']})")


@lru_cache(maxsize=16)
def module_names(arch: str, width: int, image_size: int) -> frozenset[str]:
    """Every submodule name of ``arch`` as trained (no Top-K), built on the meta device (no memory)."""
    import torch

    from topkshape.models import build_model

    kwargs: dict[str, Any] = {"num_classes": 2}
    if arch == "resnet18_cifar":
        kwargs.update(input_size=image_size, width=width)
    with torch.device("meta"):
        model = build_model(arch, fraction=None, **kwargs)
    return frozenset(name for name, _ in model.named_modules() if name)


def _count_problems(config: dict[str, Any], mask_figures: bool) -> Iterator[str]:
    """Counts that must be positive for a target, or must not exceed another count."""
    data, texture, gan = config["data"], config["texture"], config["gan"]
    masks = texture["mask_dynamics"]
    if mask_figures and masks["images"] < 1:
        yield ("config key 'texture.mask_dynamics.images': 0 records no Top-K masks, but the mask-dynamics "
               "figures are targets of the workflow; set it to 1 or more")
    if data["source"] == "synthetic":
        subset = masks["subset"] or next(iter(data["subsets"]), None)
        if subset in data["subsets"]:
            available = data["synthetic"]["val_per_class"] * len(data["subsets"][subset])
            if masks["images"] > available:
                yield (f"config key 'texture.mask_dynamics.images': {masks['images']} is more than the {available} "
                       f"validation images of subset {subset}")
    if data["fewshot"] and texture["num_targets"] > data["fewshot_images"]:
        yield (f"config key 'texture.num_targets': {texture['num_targets']} is more than the "
               f"{data['fewshot_images']} images of a few-shot set (data.fewshot_images)")
    train = config["train"]
    if train["warmup_epochs"] >= train["epochs"]:
        yield (f"config key 'train.warmup_epochs': {train['warmup_epochs']} is not below train.epochs {train['epochs']}: "
               "the warm-up would take the whole run")
    evaluation = gan["eval"]
    reals = min([_fewshot_count(data, name) for name in data["fewshot"]] or [data["fewshot_images"]])
    if evaluation["kid_subset_size"] > min(reals, evaluation["samples"]):
        yield (f"config key 'gan.eval.kid_subset_size': {evaluation['kid_subset_size']} is larger than the real "
               f"({reals}) or generated ({evaluation['samples']}) image count")
    if evaluation["selection"] == "best" and evaluation["snapshot_every"] == 0:
        yield "config key 'gan.eval.snapshot_every': selection best needs snapshots (snapshot_every > 0)"
    elif evaluation["selection"] == "best" and evaluation["snapshot_every"] > gan["iterations"]:
        yield (f"config key 'gan.eval.snapshot_every': {evaluation['snapshot_every']} is more than gan.iterations "
               f"{gan['iterations']}: selection best would have no snapshot to choose from")


def _ood_problems(config: dict[str, Any]) -> Iterator[str]:
    """The OOD benchmark evaluates the atlas's models at settings whose shape bias the atlas measures."""
    ood, shape_bias = config["robustness"]["ood"], config["shape_bias"]
    from topkshape.robustness.ood_datasets import OOD_DATASETS

    for name in ood["sha256"]:
        if name not in OOD_DATASETS:
            yield f"config key 'robustness.ood.sha256.{name}': {name!r} is not an OOD dataset; choose from {list(OOD_DATASETS)}"
    if not ood["datasets"]:
        return
    if not shape_bias["atlas"]:
        yield "config key 'robustness.ood.datasets': the OOD benchmark evaluates the shape_bias.atlas entries, and there are none"
    if len(ood["datasets"]) > 1 and "{name}" not in ood["url"]:
        yield f"config key 'robustness.ood.url': {ood['url']!r} has no {{name}}, so every dataset would download the same archive"
    if "topk" not in shape_bias["modes"]:
        yield ("config key 'robustness.ood.datasets': the OOD benchmark's Top-K settings need mode topk in shape_bias.modes, "
               "where the atlas measures their shape bias")
    if ood["fractions"] is not None:
        missing = [f for f in ood["fractions"] if not any(abs(f - g) < 1e-12 for g in shape_bias["fractions"])]
        if missing:
            yield (f"config key 'robustness.ood.fractions': {missing} are not among shape_bias.fractions "
                   f"{shape_bias['fractions']}, where the atlas measures their shape bias")


def _reference_problems(config: dict[str, Any], check_paths: bool) -> Iterator[str]:
    """Names that must refer to something configured elsewhere, and files that must exist."""
    data, stylize = config["data"], config["stylize"]
    shape_bias = config["shape_bias"]
    if stylize["method"] == "texture_swap" and data["source"] != "synthetic":
        yield "config key 'stylize.method': texture_swap renders generated shapes; with data.source imagenet use adain"
    for model in shape_bias["models"]:
        if model.startswith("trained_") and model[len("trained_"):] not in data["subsets"]:
            yield f"config key 'shape_bias.models': {model!r} names no subset in data.subsets"
        elif model.startswith("trained_") and stylize["method"] != "texture_swap":
            # AdaIN-stylized images have no texture category in their names: no shape bias to score.
            yield (f"config key 'shape_bias.models': {model!r} is scored on its subset's cue-conflict set, which only "
                   "stylize.method texture_swap writes (AdaIN images carry no texture category)")
    for model, fraction in shape_bias["figure5_k"].items():
        if model not in shape_bias["models"]:
            yield f"config key 'shape_bias.figure5_k.{model}': {model!r} is not in shape_bias.models"
        elif not any(math.isclose(fraction, f) for f in shape_bias["fractions"]):
            yield f"config key 'shape_bias.figure5_k.{model}': {fraction} is not one of shape_bias.fractions {shape_bias['fractions']}"
    from topkshape.pretrained import is_weights_file

    names = [entry["name"] for entry in shape_bias["atlas"]]
    for index, entry in enumerate(shape_bias["atlas"]):
        where = f"config key 'shape_bias.atlas[{index}]"
        if names.count(entry["name"]) > 1:
            yield f"{where}.name': {entry['name']!r} is used twice"
        if entry["name"] in shape_bias["models"]:
            yield f"{where}.name': {entry['name']!r} is also a name in shape_bias.models"
        weights = entry["weights"]
        is_file = is_weights_file(weights)
        if is_file and check_paths and not Path(weights).is_file():
            yield f"{where}.weights': file not found: {weights}"
        elif not is_file and entry["weights_sha256"]:
            yield f"{where}.weights_sha256': a pin applies to a weights file, but weights is {weights!r}"
        elif not is_file and weights != "random" and entry["model"].startswith("python:"):
            yield f"{where}.weights': a python: model takes random or a weights file, not {weights!r}"
        elif not is_file and weights != "random" and entry["model"].startswith("timm:") and config["downloads"]["require_pinned"]:
            # torchvision names are downloaded by the pretrained_weights rule and pinned by their file name's hash.
            yield (f"{where}.weights': timm's {weights!r} would download from the hub inside the job, unpinned, which "
                   f"downloads.require_pinned refuses; save the state dict to a file and give its path and weights_sha256")
    for part in ("cue_conflict", "humans", "references"):
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
    elif texture["target_names"] and texture["targets"] in data["paper_fewshot"]:
        yield from _paper_target_problems(texture["target_names"], data["paper_fewshot"][texture["targets"]], data["paper_fewshot_images"])
    subset = texture["mask_dynamics"]["subset"]
    if subset is not None and subset not in data["subsets"]:
        yield f"config key 'texture.mask_dynamics.subset': {subset!r} is not in data.subsets"
    gan = config["gan"]
    for name in gan["fewshot_sets"] or []:
        if name not in data["fewshot"]:
            yield f"config key 'gan.fewshot_sets': {name!r} is not a few-shot set in data.fewshot"
    for name in gan.get("topk_fraction", {}):
        if name not in data["fewshot"]:
            yield f"config key 'gan.topk_fraction.{name}': not a few-shot set in data.fewshot"
    missing = [name for name in gan_sets(config) if name not in gan.get("topk_fraction", {})]
    if missing:
        yield f"config key 'gan.topk_fraction': no Top-K fraction for few-shot set {missing[0]!r}"
    evaluation = gan["eval"]
    if evaluation["feature_extractor"] == "classifier" and evaluation["classifier_subset"] not in data["subsets"]:
        yield "config key 'gan.eval.classifier_subset': must name a subset when feature_extractor is classifier"
    for part in ("encoder", "decoder"):
        path = stylize["adain"][f"{part}_path"]
        if check_paths and path and not Path(path).is_file():
            yield f"config key 'stylize.adain.{part}_path': file not found: {path}"


# --- command lines --------------------------------------------------------------------------------

_CONFIG_OPTIONS = ("--config", "-C")
_CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")
# Snakemake options taking every NAME=VALUE word that follows (argparse nargs + or *): a target written
# after them (`--resources gpu=2 all`) is read as one more value, and Snakemake stops with a traceback.
_ASSIGNMENT_OPTIONS = (*_CONFIG_OPTIONS, "--resources", "--res", "--default-resources", "--default-res", "--set-threads",
                       "--set-resources", "--set-scatter", "--set-resource-scopes", "--consider-ancient", "--group-components")


def _dotted_entry(entry: str) -> str:
    """``train.epochs=3`` -> ``train={epochs: 3}``, the nested form Snakemake accepts."""
    key, sep, text = entry.partition("=")
    if not sep or "." not in key:
        return entry
    parts = key.split(".")
    if not all(re.fullmatch(r"[A-Za-z_][\w-]*", part) for part in parts):
        raise ConfigError(f"--config {entry}: {key!r} is not a config key (dotted names like train.epochs)")
    try:
        value = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        value = text
    for part in reversed(parts[1:]):
        value = {part: value}
    flow = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return f"{parts[0]}={flow}"


def snakemake_args(args: Sequence[str]) -> list[str]:
    """:func:`launcher_args`' command line alone."""
    return launcher_args(args)[0]


def launcher_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """A snakemake command line, checked, with dotted ``--config`` keys nested and targets first, and
    the targets it moved there (the launcher says so in one line).

    Raises ConfigError for a ``--configfile`` that does not exist and for a ``--config``
    entry that is not ``key=value``; both otherwise end in a Snakemake traceback before
    the Snakefile runs. A word without '=' after the values of a NAME=VALUE option
    (``--resources gpu=2 all``) is a target: it is moved before the options, where
    Snakemake reads it as one.
    """
    out: list[str] = []
    targets: list[str] = []
    option, values, moving = None, 0, False
    for arg in args:
        name, eq, inline = arg.partition("=")
        if arg.startswith("-"):
            option, values, moving = (name if name in _ASSIGNMENT_OPTIONS + _CONFIGFILE_OPTIONS else None), 0, False
            if eq and option:
                out.append(f"{name}={_check_value(option, inline)}")
                option = None  # an inline value is the option's only one
                continue
            out.append(arg)
        elif moving or option in _ASSIGNMENT_OPTIONS and values and not eq:
            targets.append(arg)  # Snakemake would read it (and each word after it) as one more NAME=VALUE
            moving = True
        elif option:
            out.append(_check_value(option, arg, values))
            values += 1
        else:
            out.append(arg)
    return targets + out, targets


def _check_value(option: str, value: str, earlier: int = 0) -> str:
    """One value of ``option``; ``earlier``: how many values it already took (a target written after
    ``--configfile`` files is read as one more file)."""
    if option in _CONFIGFILE_OPTIONS:
        if not Path(value).is_file():
            what = "is a folder, not a file" if Path(value).is_dir() else "not found"
            hint = f"; {option} reads every word after it as a file: write targets before it" if earlier and not Path(value).suffix else ""
            raise ConfigError(f"{option} {value}: config file {what}{hint}")
        return value
    if "=" not in value and option not in _CONFIG_OPTIONS:
        raise ConfigError(f"{option} {value}: expected NAME=VALUE (e.g. --resources gpu=2), with targets before the options")
    if "=" not in value:
        raise ConfigError(f"--config {value}: expected key=value (nested keys: train.epochs=3 or train='{{epochs: 3}}')")
    return _dotted_entry(value) if option in _CONFIG_OPTIONS else value

"""The configuration reference, generated from the schema so it cannot drift from what is checked.

Every key of ``config_schema.yaml`` (sections, their keys, the entries of maps such as
``data.subsets.<subset>`` and the keys of list items such as ``shape_bias.atlas[].placement``)
becomes one row: its type, default, an example and its description. The same page is written to
``config/README.md`` (beside the shipped configs) and ``docs/config.md``:

    python -m topkshape.config_reference            # rewrite both files
    python -m topkshape.config_reference --check    # exit 1 when either is not what it would write

Run from the repository root (or pass ``--root``): the defaults of keys the schema gives none are
read from ``config.yaml`` and the examples from ``config/paper.yaml``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from topkshape.config import load_schema

# Where the reference is written, relative to the repository root (both get the same text).
OUTPUTS = (Path("config") / "README.md", Path("docs") / "config.md")
DEFAULT_CONFIG = Path("config.yaml")
PAPER_CONFIG = Path("config") / "paper.yaml"

# The placeholder each map's entries are listed under (``data.subsets.<subset>``); any other map: ``<name>``.
MAP_KEY_NAMES = {
    "downloads.sha256": "file",
    "data.subsets": "subset",
    "data.fewshot": "set",
    "data.paper_fewshot": "set",
    "data.synthetic.home_textures": "class",
    "shape_bias.figure5_k": "model",
    "shape_bias.references.files": "label",
    "gan.topk_fraction": "set",
    "robustness.ood.sha256": "dataset",
}
REQUIRED = "required"
MAP_ENTRY_DEFAULT = "none (entries as written)"
GROUP_EXAMPLE = "its keys, below"
TOP_LEVEL = "top level"


@dataclass(frozen=True)
class SchemaKey:
    """One key as the walker meets it: where it is and the schema that checks it."""

    path: str
    schema: Mapping[str, Any]
    required: bool
    map_entry: bool  # an entry of an additionalProperties map: it exists only where a config writes it


@dataclass(frozen=True)
class Entry:
    """One row of the reference: markdown text per cell (escaped for the table when the page is rendered)."""

    path: str
    type: str
    default: str
    example: str
    description: str

    @property
    def section(self) -> str:
        """The top-level key the row is under (its own path's first part)."""
        return self.path.split(".")[0].split("[")[0]


# --- walking the schema -------------------------------------------------------------------------


def walk(schema: Mapping[str, Any], prefix: str = "") -> Iterator[SchemaKey]:
    """Every key under ``schema``, depth first in schema order (so the output is deterministic).

    Properties are keys; an ``additionalProperties`` schema is one key named by its placeholder;
    the keys of objects in a list are listed with ``[]`` after the list's own key.
    """
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield SchemaKey(path, sub, name in required, False)
        yield from _below(sub, path)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        parent = prefix.rstrip(".")
        path = f"{prefix}<{MAP_KEY_NAMES.get(parent, 'name')}>"
        yield SchemaKey(path, extra, False, True)
        yield from _below(extra, path)


def _below(sub: Mapping[str, Any], path: str) -> Iterator[SchemaKey]:
    """The keys inside one key's schema: its own keys, or those of the objects its list holds."""
    yield from walk(sub, f"{path}.")
    items = sub.get("items")
    if isinstance(items, Mapping):
        yield from walk(items, f"{path}[].")


def undocumented(schema: Mapping[str, Any]) -> list[str]:
    """The keys without a non-empty description: a key a reader cannot look up."""
    return [key.path for key in walk(schema) if not str(key.schema.get("description") or "").strip()]


# --- rendering values ---------------------------------------------------------------------------


def render_value(value: Any) -> str:
    """A value as YAML flow text (``[0.08, 1.0]``, ``{S1: [disk]}``, ``null``), one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # Quote a string YAML would read back as something else ("null", "1.0", "", "a: b").
        plain = value and value == value.strip() and _reads_back(value)
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{render_value(k)}: {render_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return str(value)


def _reads_back(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text and not any(c in text for c in ",[]{}#")
    except yaml.YAMLError:
        return False


_CODE_SPAN = re.compile(r"(?<!\\)(`[^`]*(?<!\\)`)")


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes escaped (a bare pipe would end the cell).

    Outside code spans ``<`` and ``*`` are escaped too: a renderer would drop ``<file>`` as an
    unknown HTML tag and read two asterisks as emphasis.
    """
    parts = _CODE_SPAN.split(" ".join(text.split()))  # odd indices: code spans, kept as written
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "\\<").replace("*", "\\*")
    return "".join(parts).replace("|", "\\|")


def _code(value: Any) -> str:
    """A value as a code span; a value holding a backtick (none does yet) as escaped text instead."""
    text = render_value(value)
    return f"`{text}`" if "`" not in text else text.replace("`", "\\`")


def _bounds(schema: Mapping[str, Any]) -> str:
    """``≥ 1``, ``> 0``, ``in (0, 1]``: the range a number must lie in, as the schema states it."""
    low, low_open = (schema["exclusiveMinimum"], True) if "exclusiveMinimum" in schema else (schema.get("minimum"), False)
    high, high_open = (schema["exclusiveMaximum"], True) if "exclusiveMaximum" in schema else (schema.get("maximum"), False)
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '≥'} {low}"
    if high is not None:
        return f" {'<' if high_open else '≤'} {high}"
    return ""


def render_type(schema: Mapping[str, Any], path: str = "") -> str:
    """The type of a key in words: ``integer ≥ 1 or null``, ``one of: keep, exact``, ``array of number``."""
    if "enum" in schema:
        return "one of: " + ", ".join(render_value(v) for v in schema["enum"])
    kinds = schema.get("type")
    if kinds is None:
        return ""
    words = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind in ("integer", "number"):
            words.append(kind + _bounds(schema))
        elif kind == "array":
            items = schema.get("items")
            if isinstance(items, Mapping) and "properties" in items:
                words.append("array of objects")
            elif isinstance(items, Mapping) and render_type(items):
                words.append(f"array of ({render_type(items)})" if "enum" in items else f"array of {render_type(items)}")
            else:
                words.append("array")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
            name = MAP_KEY_NAMES.get(path, "name")
            words.append(f"map of <{name}> to {render_type(schema['additionalProperties'], f'{path}.<{name}>') or 'any'}")
        else:
            words.append(kind)
    return " or ".join(words)


# --- the rows -----------------------------------------------------------------------------------


_MISSING = object()


def value_at(config: Any, path: str) -> Any:
    """The value a config gives ``path`` (``[]``: the first list item; ``<x>``: the first map entry), or _MISSING."""
    node = config
    for part in path.split("."):
        many = part.endswith("[]")
        part = part.removesuffix("[]")
        if part.startswith("<") and part.endswith(">"):
            if not isinstance(node, Mapping) or not node:
                return _MISSING
            node = next(iter(node.values()))
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return _MISSING
        if many:
            if not isinstance(node, list) or not node:
                return _MISSING
            node = node[0]
    return node


def _default(key: SchemaKey, default_config: Mapping[str, Any]) -> tuple[str, Any]:
    """The default cell and the value it stands for (_MISSING where a config must or may write it)."""
    if key.required:
        return REQUIRED, _MISSING
    if "default" in key.schema:
        return _code(key.schema["default"]), key.schema["default"]
    if key.map_entry:
        return MAP_ENTRY_DEFAULT, _MISSING
    shipped = value_at(default_config, key.path)
    if shipped is not _MISSING:  # no schema default: the embedded config.yaml sets it
        return f"{_code(shipped)} (config.yaml)", shipped
    return "", _MISSING


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The config the schema's defaults alone make, sections included (where a map's default holds its entries)."""
    tree: dict[str, Any] = {}
    for name, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            tree[name] = {**schema_defaults(sub), **(sub.get("default") or {})}
        elif "default" in sub:
            tree[name] = sub["default"]
    return tree


def _example(key: SchemaKey, default: Any, sources: Sequence[Mapping[str, Any]], paper_config: Mapping[str, Any]) -> str:
    """The first ``examples`` value, else what the paper config sets where it differs from the default, else the default.

    A key with neither (an entry of a map the paper config leaves empty) takes the first value ``sources`` give it.
    """
    if key.schema.get("examples"):
        return _code(key.schema["examples"][0])
    if "properties" in key.schema:  # a group of keys: each has its own row
        return GROUP_EXAMPLE
    paper = value_at(paper_config, key.path)
    if paper is not _MISSING and (default is _MISSING or paper != default):
        return _code(paper)
    if default is not _MISSING:
        return _code(default)
    for source in sources:
        value = value_at(source, key.path)
        if value is not _MISSING:
            return _code(value)
    return ""


def entries(schema: Mapping[str, Any], default_config: Mapping[str, Any], paper_config: Mapping[str, Any]) -> list[Entry]:
    """One rendered row per key of ``schema``, in schema order."""
    rows = []
    fallbacks = (default_config, schema_defaults(schema))
    for key in walk(schema):
        default_text, default = _default(key, default_config)
        rows.append(Entry(
            path=key.path,
            type=render_type(key.schema, key.path),
            default=default_text,
            example=_example(key, default, fallbacks, paper_config),
            description=" ".join(str(key.schema.get("description") or "").split()),
        ))
    return rows


# --- the page -----------------------------------------------------------------------------------


LAYERING = (
    "A run reads one configuration: `config.yaml` (the embedded default, an offline toy run) unless "
    "`--configfile` names others, which then replace it as a whole. Several files are layered in order: "
    "`snakemake --configfile config.yaml my-overrides.yaml` merges each later file over the earlier ones, "
    "nested keys updated one by one: a section in `my-overrides.yaml` changes only the keys it names, a map such as "
    "`data.subsets` gains the entries it names (an override cannot remove one), and a list is replaced whole. "
    "So a file holding only overrides, such as `config/paper-smoke.yaml` over `config/paper.yaml`, works "
    "when it is layered after a full config, not alone. `--config key=value` and `--config section='{key: value}'` "
    "override last. The merged result is checked against `src/topkshape/config_schema.yaml` before any job "
    "runs; absent keys take the defaults below."
)

COLUMNS = (
    "Columns: **default** is the schema's (a key marked *required* must be set; *(config.yaml)* marks a "
    "value only the embedded default sets; *none (entries as written)*: a map's entry exists only where a config "
    "writes it); **example** is a realistic value, the paper run's "
    "(`config/paper.yaml`) where it differs from the default. `<name>` stands for a key you choose in a map "
    "and `[]` for each item of a list."
)


def render(rows: Sequence[Entry], schema: Mapping[str, Any]) -> str:
    """The markdown page: title, layering, then one table per top-level section in schema order."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `python -m topkshape.config_reference` from `src/topkshape/config_schema.yaml`; "
        "do not edit by hand (`tests/test_config_reference.py` fails when this file is not current).",
        "",
        LAYERING,
        "",
        COLUMNS,
    ]
    sections: dict[str, list[Entry]] = {}
    top_level = {name for name, sub in schema.get("properties", {}).items() if "properties" not in sub}
    for row in rows:
        sections.setdefault(TOP_LEVEL if row.section in top_level else row.section, []).append(row)
    for section, members in sections.items():
        title = section if section == TOP_LEVEL else f"`{section}`"
        lines += ["", f"## {title}", "", "| key | type | default | example | description |", "|---|---|---|---|---|"]
        for row in members:
            cells = [f"`{row.path}`", row.type, row.default, row.example, row.description]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def build(root: Path) -> str:
    """The reference page as it should be now, from the packaged schema and the configs under ``root``."""
    schema = load_schema()
    return render(entries(schema, _load(root / DEFAULT_CONFIG), _load(root / PAPER_CONFIG)), schema)


def stale(root: Path, text: str | None = None) -> list[Path]:
    """The output files under ``root`` whose content is not ``text`` (the page as it should be)."""
    text = build(root) if text is None else text
    return [out for out in OUTPUTS if not (root / out).is_file() or (root / out).read_text() != text]


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``config/README.md`` and ``docs/config.md``; with ``--check``, only say whether they are current."""
    parser = argparse.ArgumentParser(prog="python -m topkshape.config_reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a written file is not current (writes nothing)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root (default: the working directory)")
    args = parser.parse_args(argv)
    if not (args.root / DEFAULT_CONFIG).is_file():
        print(f"topkshape: no {DEFAULT_CONFIG} in {args.root}: run from the repository root or pass --root", file=sys.stderr)
        return 2
    text = build(args.root)
    if args.check:
        old = stale(args.root, text)
        if old:
            print(f"topkshape: {', '.join(map(str, old))} not current: run python -m topkshape.config_reference", file=sys.stderr)
            return 1
        return 0
    for out in OUTPUTS:
        (args.root / out).parent.mkdir(parents=True, exist_ok=True)
        (args.root / out).write_text(text)
    print(f"topkshape: wrote {', '.join(map(str, OUTPUTS))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

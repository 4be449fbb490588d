"""The configuration reference: every schema key documented, and the written pages current.

``config/README.md`` and ``docs/config.md`` are generated from ``config_schema.yaml`` by
``python -m topkshape.config_reference``; these tests fail on a key without a description
(naming it) and on a page that is not what the generator writes now.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import yaml

from conftest import help_text
from topkshape.config import load_schema
from topkshape.config_reference import (
    MAP_KEY_NAMES,
    OUTPUTS,
    REQUIRED,
    build,
    entries,
    main,
    render,
    undocumented,
    walk,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema()
ROWS = {row.path: row for row in entries(SCHEMA, yaml.safe_load((ROOT / "config.yaml").read_text()),
                                         yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))}


def test_every_schema_key_has_a_description():
    missing = undocumented(SCHEMA)
    assert not missing, f"config keys without a description in config_schema.yaml: {', '.join(missing)}"


def test_a_key_without_a_description_is_reported():
    """The check above can fail: one undocumented key in a tiny schema is named."""
    tiny = {"type": "object", "properties": {
        "run": {"type": "object", "description": "a section", "properties": {
            "epochs": {"type": "integer", "description": "how long"},
            "lr": {"type": "number", "default": 0.1},
        }},
    }}
    assert undocumented(tiny) == ["run.lr"]


def test_the_walker_names_map_entries_and_list_items():
    tiny = {"type": "object", "required": ["jobs"], "properties": {
        "jobs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "pins": {"type": "object", "additionalProperties": {"type": "string"}},
    }}
    assert [(key.path, key.required, key.map_entry) for key in walk(tiny)] == [
        ("jobs", True, False), ("jobs[].name", False, False), ("pins", False, False), ("pins.<name>", False, True)]
    paths = {key.path for key in walk(SCHEMA)}
    assert {"shape_bias.atlas[].placement", "robustness.ood.sha256.<dataset>", "data.subsets.<subset>",
            "shape_bias.references.files.<label>.sha256"} <= paths


def test_every_map_placeholder_names_a_map_of_the_schema():
    """A renamed or removed map must not leave its placeholder behind."""
    maps = {key.path.rsplit(".<", 1)[0] for key in walk(SCHEMA) if key.map_entry}
    assert set(MAP_KEY_NAMES) <= maps


def test_every_key_has_a_type_a_default_or_required_and_an_example():
    incomplete = [f"{path} ({', '.join(cell for cell in ('type', 'default', 'example') if not getattr(row, cell))})"
                  for path, row in ROWS.items() if not (row.type and row.default and row.example)]
    assert not incomplete, f"config keys without a type, default or example: {'; '.join(incomplete)}"


def test_every_example_in_the_schema_is_a_valid_value_of_its_key():
    invalid = []
    for key in walk(SCHEMA):
        for example in key.schema.get("examples", []):
            errors = list(jsonschema.Draft202012Validator(key.schema).iter_errors(example))
            invalid += [f"{key.path}: {error.message}" for error in errors]
    assert not invalid


def test_the_written_reference_files_are_current():
    text = build(ROOT)
    for out in OUTPUTS:
        assert (ROOT / out).read_text() == text, f"{out} is not current: run python -m topkshape.config_reference"


def test_rows_show_the_schema_defaults_and_the_paper_examples():
    epochs = ROWS["train.epochs"]
    assert (epochs.type, epochs.default, epochs.example) == ("integer ≥ 1", REQUIRED, "`50`")  # required; the paper trains 50
    assert ROWS["train.lr"].default == f"`{SCHEMA['properties']['train']['properties']['lr']['default']}`" == "`0.1`"
    datasets = ROWS["robustness.ood.datasets"]
    assert datasets.default == "`[]`" and datasets.example.startswith("`[colour, contrast, high-pass")
    assert datasets.type.startswith("array of (one of: colour, contrast")
    assert ROWS["robustness.ood.sha256"].type == "map of <dataset> to string or null"
    assert ROWS["shape_bias.atlas[].placement"].default == "`stages`"
    assert ROWS["shape_bias.atlas[].name"].default == REQUIRED
    # No schema default: the embedded config.yaml's value, marked as such.
    assert ROWS["gan.topk_fraction"].default == "`{hexagon: 0.05}` (config.yaml)"


def test_the_page_has_one_table_per_section_and_escapes_pipes_and_tags():
    tiny = {"type": "object", "properties": {
        "name": {"type": "string", "description": "a | b, under <folder>/"},
        "run": {"type": "object", "default": {}, "description": "the run", "properties": {
            "mode": {"enum": ["a|b", "c"], "default": "a|b", "description": "`x|y` or *z*"},
        }},
    }}
    page = render(entries(tiny, {}, {}), tiny)
    assert page == render(entries(tiny, {}, {}), tiny)  # deterministic
    assert "## top level" in page and "## `run`" in page
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert rows[2] == "| `run.mode` | one of: a\\|b, c | `a\\|b` | `a\\|b` | `x\\|y` or \\*z\\* |"
    for row in rows:
        assert row.replace("\\|", "").count("|") == 6, row  # five cells: no pipe of a value splits one
    assert rows[0].endswith("| a \\| b, under \\<folder>/ |")


def test_check_names_the_stale_file_and_the_default_writes_both(tmp_path, capsys):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(ROOT / "config" / "paper.yaml", tmp_path / "config" / "paper.yaml")
    assert main(["--check", "--root", str(tmp_path)]) == 1  # not written yet
    capsys.readouterr()
    assert main(["--root", str(tmp_path)]) == 0
    assert all((tmp_path / out).read_text() == build(ROOT) for out in OUTPUTS)
    assert main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs" / "config.md").write_text("edited by hand\n")
    capsys.readouterr()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "docs/config.md" in err and "config/README.md" not in err


def test_help_describes_check(capsys):
    text = help_text(main, capsys)
    assert "--check" in text and "--root" in text

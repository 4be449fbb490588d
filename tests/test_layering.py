"""No library package imports one above it, not even inside a function.

Layers, lowest first. A module may import its own package and any lower layer. Imports
inside functions count too: they once hid a cycle classify -> texture -> shape_bias -> classify.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "topkshape"

LAYERS: list[set[str]] = [
    {"errors"},
    {"atomic", "gpu_slots", "reference", "provenance", "sharing", "params", "plan_checks", "sigterm"},
    {"checkpoint", "download", "ops", "workflow", "slurm_resources"},
    # Pretrained weight files (where from, how pinned, how loaded): below the models that load them.
    {"pretrained", "stage_times"},
    {"models", "paper_data", "stylize"},
    {"mask_recording", "data"},
    {"classify"},
    {"shape_bias", "texture", "gan"},
    # Robustness beside shape bias reads stimuli and decisions as the shape-bias analysis does.
    {"robustness"},
    # Config validation inspects models and data (layer names, widths, class names) and
    # runs only in the Snakefile, so it sits on top with the reports.
    {"report", "config"},
    # The paper smoke run drives the whole workflow (and checks its config): on top.
    {"__main__", "smoke"},
    # The config reference page is generated from the schema that config loads.
    {"config_reference"},
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def _top(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "topkshape" and len(parts) > 1 else None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {top for top in map(_top, found) if top}


def _package_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_package_has_a_layer():
    packages = {_package_of(p) for p in MODULES}
    assert packages <= set(LAYER_OF), f"add to LAYERS: {sorted(packages - set(LAYER_OF))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_or_lower_layers(path):
    own = _package_of(path)
    upward = sorted(
        other for other in _imports(path)
        if other != own and other in LAYER_OF and LAYER_OF[other] >= LAYER_OF[own]
    )
    assert not upward, f"{path.relative_to(PACKAGE)} ({own}) imports {upward} from its own layer or above"


def test_the_checker_sees_an_import_hidden_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from topkshape.texture.figures import MaskRecorder\n")
    assert _imports(module) == {"texture"}

"""`make mutation`: its groups cover the core modules with test files that exist, and its score counts right."""

from __future__ import annotations

import glob
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ["src/topkshape/ops.py", "src/topkshape/models/surgery.py", "src/topkshape/shape_bias/analysis.py",
        "src/topkshape/shape_bias/evaluate.py", "src/topkshape/classify/evaluate.py", "src/topkshape/report/table1.py",
        "src/topkshape/report/table2.py", "src/topkshape/texture/synthesis.py", "src/topkshape/gan/fidelity.py"]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_of_the_source_tree_is_in_a_group_or_named_as_uncovered_with_a_reason(tool):
    """Derived from the source tree: a new module outside every group fails here."""
    import tomllib

    groups = tool.mutation_groups()
    covered = {path for group in groups.values() for pattern in group["modules"] for path in glob.glob(pattern, root_dir=ROOT)}
    uncovered = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["topkshape"]["mutation"]["uncovered"]
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src" / "topkshape").rglob("*.py")}
    assert set(CORE) <= covered
    assert modules - covered - set(uncovered) == set()
    assert not set(uncovered) & covered, "a module both in a group and listed as uncovered"
    assert all(reason.strip() for reason in uncovered.values()) and set(uncovered) <= modules
    for name, group in groups.items():
        assert group["tests"], name
        assert all((ROOT / test).is_file() for test in group["tests"]), name


def test_score_counts_failures_and_crashes_as_killed_and_shows_timeouts_apart(tool):
    codes = {"m.x_a__mutmut_1": 1, "m.x_a__mutmut_2": 3, "m.x_a__mutmut_3": 36, "m.x_a__mutmut_4": 0, "m.x_a__mutmut_5": 33,
             "m.x_a__mutmut_6": None, "m.x_a__mutmut_7": 0, "m.x_a__mutmut_8": -11, "m.x_a__mutmut_9": -9}
    (row,) = tool.score_table({"src/m.py": codes}, {"m.x_a__mutmut_7": "same behaviour"})
    # killed 1, 2 (a failure, an error) and 8 (a crash); survived 4 and 5 (no test reaches 5); 3 and 9 timed
    # out (mutmut's timeout, SIGKILL): shown, not scored; 6 not run; 7 equivalent.
    assert (row["killed"], row["survived"], row["timed out"], row["not run"], row["equivalent"]) == (3, 2, 2, 1, 1)
    assert row["score"] == pytest.approx(60.0) and row["survivors"] == ["m.x_a__mutmut_4", "m.x_a__mutmut_5"]


def test_the_equivalence_list_is_verified_against_the_modules_that_ran(tool):
    found = {"src/m.py": {"m.x_a__mutmut_1": 0, "m.x_a__mutmut_2": 1, "m.x_a__mutmut_3": 36}}
    listed = {"m.x_a__mutmut_1": "survives: fine", "m.x_a__mutmut_2": "now killed", "m.x_a__mutmut_3": "now times out",
              "m.x_a__mutmut_9": "gone", "other.x_b__mutmut_1": "its module did not run"}
    problems = tool.equivalence_problems(found, listed)
    assert problems == ["m.x_a__mutmut_2: listed as equivalent, but the tests notice it (exit code 1)",
                        "m.x_a__mutmut_3: listed as equivalent, but the tests notice it (exit code 36)",
                        "m.x_a__mutmut_9: listed as equivalent, but mutmut no longer makes this mutant"]
    # A listed mutant that a test kills is scored as killed, not hidden as equivalent.
    (row,) = tool.score_table(found, listed)
    assert (row["equivalent"], row["killed"], row["timed out"]) == (1, 1, 1)


def test_an_equivalent_without_a_reason_is_refused(tool, tmp_path):
    listed = tmp_path / "equivalent.txt"
    listed.write_text("# comment\nm.a__mutmut_1  # a dropped default argument\nm.a__mutmut_2\n")
    with pytest.raises(SystemExit, match=":3: an equivalent mutant needs a reason"):
        tool.read_equivalent(listed)
    listed.write_text("m.a__mutmut_1  # a dropped default argument\n")
    assert tool.read_equivalent(listed) == {"m.a__mutmut_1": "a dropped default argument"}


def test_the_shipped_equivalents_all_give_a_reason(tool):
    assert all(reason for reason in tool.read_equivalent().values())


def _recorded_group(root: Path, group: str, run: dict, codes_by_module: dict[str, dict]) -> None:
    """A group's scratch folder as a finished run leaves it: mutmut's .meta files and our run.json."""
    import json

    for module, codes in codes_by_module.items():
        meta = root / group / "mutants" / f"{module}.meta"
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": codes}))
    (root / group / "run.json").write_text(json.dumps(run))


def test_the_scores_table_names_each_groups_own_run_and_every_group_without_one(tool, tmp_path):
    run_a = {"commit": "abc1234", "date": "2026-12-07 00:00 UTC", "machine": "AMD EPYC, 2 cores", "python": "3.11.9",
             "mutmut": "3.8.1", "seconds": 754, "max_children": 2, "modules": ["src/a.py", "src/b.py"]}
    run_c = {**run_a, "commit": "def5678", "date": "2026-12-08 09:30 UTC", "machine": "Intel Xeon, 2 cores", "seconds": 61,
             "cpu_seconds": 130, "max_children": 1, "modules": ["src/c.py"]}
    _recorded_group(tmp_path, "ga", run_a, {"src/a.py": {"a.x_f__mutmut_1": 1, "a.x_f__mutmut_2": 0, "a.x_f__mutmut_3": 36},
                                           "src/b.py": {"b.x_g__mutmut_1": 2}})
    _recorded_group(tmp_path, "gc", run_c, {"src/c.py": {"c.x_h__mutmut_1": 1, "c.x_h__mutmut_2": 0}})
    # mutmut stopped before testing any mutant (a test of the group failed in the scratch copy): said, no score.
    _recorded_group(tmp_path, "gd", {**run_c, "mutmut_exit": 1, "modules": ["src/d.py"]}, {"src/d.py": {"d.x_k__mutmut_1": None}})
    # A group whose folder has results but no run record (an interrupted run) is not scored as if it had run.
    (tmp_path / "gb" / "mutants" / "src").mkdir(parents=True)
    (tmp_path / "gb" / "mutants" / "src" / "z.py.meta").write_text('{"exit_code_by_key": {"z.x_k__mutmut_1": 1}}')
    groups = {"ga": {"modules": ["src/a.py", "src/b.py"]}, "gb": {"modules": ["src/z.py"]}, "gc": {"modules": ["src/c.py"]},
              "gd": {"modules": ["src/d.py"]}}
    recorded = tool.recorded_runs(tmp_path, groups)
    assert sorted(recorded) == ["ga", "gc", "gd"] and recorded["gc"][0]["commit"] == "def5678"
    equivalent = {"c.x_h__mutmut_2": "same behaviour"}
    runs = {name: (run, tool.score_table(found, equivalent)) for name, (run, found) in recorded.items()}
    facts = {"commit": "fff0000", "date": "2026-12-09 12:00 UTC", "machine": "x", "python": "3.11.9", "mutmut": "3.8.1"}
    tool.write_scores(runs, ["x: gone"], ["ga", "gb", "gc", "gd"], facts, tmp_path / "scores.md")
    text = (tmp_path / "scores.md").read_text()
    assert "on 2026-12-09 12:00 UTC" in text
    assert "| ga | abc1234 | 2026-12-07 00:00 UTC | AMD EPYC, 2 cores | 3.11.9, 3.8.1 | 12 min 34 s (2 workers) | – |" in text
    assert "| gc | def5678 | 2026-12-08 09:30 UTC | Intel Xeon, 2 cores | 3.11.9, 3.8.1 | 1 min 1 s (1 worker) | 2 min |" in text
    assert "| gb | – | no recorded run: no score | | | | |" in text
    assert "| gd | def5678 | 2026-12-08 09:30 UTC **mutmut exited 1: no score** | Intel Xeon, 2 cores |" in text
    assert "| gd | src/d.py | 1 | 0 | 0 | 0 | 0 | 1 | – |" in text
    assert "| ga | src/a.py | 3 | 1 | 1 | 1 | 0 | 0 | 50.0% |" in text and "| ga | src/b.py | 1 | 0 | 0 | 0 | 0 | 1 | – |" in text
    assert "| gc | src/c.py | 2 | 1 | 0 | 0 | 1 | 0 | 100.0% |" in text and "src/z.py" not in text
    assert "1 problem(s):\n- x: gone" in text
    facts = tool.run_facts()
    assert set(facts) == {"commit", "date", "machine", "python", "mutmut"} and facts["commit"]


def test_the_scratch_copy_gives_mutmuts_test_folder_the_project_files_and_the_shared_data(tool, tmp_path, monkeypatch):
    """mutmut runs the tests in <workdir>/mutants/ with only src/, tests/ and also_copy: a test reading
    config.yaml or the Snakefile beside them must find it there, and one reading ../shared must not skip."""
    import tomllib

    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "src" / "pkg" / "m.py").write_text("x = 1\n")
    (project / "tests").mkdir()
    for name in tool.PROJECT_FOLDERS:
        (project / name).mkdir()
        (project / name / "f.txt").write_text(name)
    for name in tool.PROJECT_FILES:
        (project / name).write_text(name)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "-q"\n[tool.mutmut]\nsource_paths = ["src"]\nalso_copy = ["config/"]\n')
    (tmp_path / "shared").mkdir()
    monkeypatch.setattr(tool, "ROOT", project)
    workdir = tmp_path / "build" / "g"
    tool.prepare_workdir(workdir, ["src/pkg/m.py"], ["tests/test_m.py"])
    settings = tomllib.loads((workdir / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert settings["also_copy"] == ["config/", "profiles/", "rules/", "workflow_scripts/", "docs/", *tool.PROJECT_FILES]
    assert (settings["only_mutate"], settings["pytest_add_cli_args_test_selection"]) == (["src/pkg/m.py"], ["tests/test_m.py"])
    assert all((workdir / name).is_file() for name in tool.PROJECT_FILES)
    # A test file at mutants/tests/x.py looks for parents[2] / "shared".
    assert (workdir / "mutants" / "tests" / "x.py").parents[2] / "shared" == workdir / "shared"
    assert (workdir / "shared").resolve() == (tmp_path / "shared").resolve()

"""DVC out of the box: `dvc repro` in a fresh clone, reruns after a param edit only, and sharing
results through a remote so that a colleague's clone recomputes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_support import ROOT, TINY_DEFAULT, copy_workflow, write_config

pytestmark = pytest.mark.slow

TINY = dict(
    TINY_DEFAULT,
    data__fewshot_images=10,
    gan__iterations=2,
    gan__checkpoint_every=2,
    gan__eval={"samples": 10, "kid_subset_size": 5, "feature_extractor": "classifier", "classifier_subset": "S1"},
    shape_bias__fractions=[0.1],
    texture__steps=1,
    texture__num_targets=1,
)
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
DVC = str(BIN / "dvc")
SNAKEMAKE = str(BIN / "snakemake")
GIT_USER = ["-c", "user.email=t@example.org", "-c", "user.name=t"]


def _run(cmd, cwd, env=ENV, check=True):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def _edit_config(path: Path, section: str, key: str, value) -> None:
    """Change one value of the clone's own config.yaml (not a fresh copy of the project's)."""
    config = yaml.safe_load(path.read_text())
    config[section][key] = value
    path.write_text(yaml.safe_dump(config))


def _planned(cwd, *targets) -> dict[str, int]:
    """The dry run's jobs per rule (the target rule `all` left out); empty when nothing is to be done."""
    out = _run([SNAKEMAKE, "-n", *targets, "--cores", "2"], cwd).stdout
    if "Job stats:" not in out:
        return {}
    counts = {}
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return {rule: n for rule, n in counts.items() if rule not in ("total", "all")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A git clone of the project (committed DVC repository, no `dvc init`) after one `dvc repro`."""
    base = tmp_path_factory.mktemp("dvc")
    origin = copy_workflow(base / "origin")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, origin / name)
    shutil.copytree(ROOT / ".dvc", origin / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    shutil.copytree(ROOT / "src" / "topkshape", origin / "src" / "topkshape", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(origin / "config.yaml", **TINY)
    _run(["git", "init", "-q"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", *GIT_USER, "commit", "-q", "-m", "project"], origin)
    work = base / "work"
    _run(["git", "clone", "-q", str(origin), str(work)], base)
    first = _run([DVC, "repro"], work)
    return {"base": base, "work": work, "first": first}


def test_dvc_repro_in_a_fresh_clone_builds_both_tables_and_a_second_repro_does_nothing(built):
    work = built["work"]
    tables = work / "results" / "default" / "tables"
    assert "ResNet-18 w. Top-K during training" in (tables / "table1.md").read_text()
    assert "FastGAN w. Top-K (ours)" in (tables / "table2.md").read_text()
    assert (work / "dvc.lock").is_file()
    metrics = _run([DVC, "metrics", "show", "--json"], work).stdout
    assert "S1/topk/stylized" in metrics and "hexagon/fastgan_topk/fid" in metrics
    second = _run([DVC, "repro"], work)
    assert "Running stage" not in second.stdout
    assert "up to date" in _run([DVC, "status"], work).stdout
    assert _planned(work, "all") == {}


def test_shared_results_are_pulled_into_a_colleagues_clone_and_nothing_is_recomputed(built):
    base, work = built["base"], built["work"]
    remote = base / "remote"
    _run([DVC, "remote", "add", "-d", "store", str(remote)], work)
    _run([DVC, "push"], work)
    _run(["git", "add", "-A"], work)
    _run(["git", *GIT_USER, "commit", "-q", "-m", "results"], work)

    colleague = base / "colleague"
    _run(["git", "clone", "-q", str(work), str(colleague)], base)
    assert not list(colleague.glob("results/default/train/**/model.pt")) and not (colleague / "data").exists()
    _run([DVC, "pull"], colleague)
    # Pulled files (and the clone's scripts) have new, arbitrary mtimes: without restoring them
    # Snakemake would rerun jobs whose inputs or scripts look newer than their outputs.
    assert _planned(colleague, "all") != {}
    restored = _run([sys.executable, "-m", "topkshape.sharing"], colleague)
    assert "restored the modification times" in restored.stdout
    assert _planned(colleague, "all") == {}
    assert "up to date" in _run([DVC, "status"], colleague).stdout
    repro = _run([DVC, "repro"], colleague)
    assert "Running stage" not in repro.stdout

    # One config edit reruns exactly what uses it: here the shape-bias report alone.
    _edit_config(colleague / "config.yaml", "shape_bias", "bootstrap_samples", 77)
    assert _planned(colleague, "all") == {"shape_bias_report": 1}


def test_partial_pull_of_only_the_models_names_the_missing_dvc_targets_in_one_line(built):
    base, work = built["base"], built["work"]
    if not (base / "remote").exists():
        pytest.skip("needs the push of test_shared_results_are_pulled_into_a_colleagues_clone")
    partial = base / "partial"
    _run(["git", "clone", "-q", str(work), str(partial)], base)
    _run([DVC, "pull", "results/default/train"], partial)
    _run([sys.executable, "-m", "topkshape.sharing"], partial, check=False)
    result = _run([SNAKEMAKE, "-n", "table1", "--cores", "1"], partial, check=False)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("topkshape: DVC-tracked") and "data/default/S1" in message
    named = message.split("`dvc pull ", 1)[1].split("`", 1)[0].split()
    assert ".snakemake/metadata" in named
    # Pulling what it names is enough: then nothing is planned for Table 1 but the table itself.
    _run([DVC, "pull", *named], partial)
    _run([sys.executable, "-m", "topkshape.sharing"], partial)
    assert set(_planned(partial, "table1")) <= {"table1"}  # no dataset rebuilt, no model retrained


def test_after_editing_train_epochs_dvc_repro_retrains_and_table1_changes(built):
    work = built["work"]
    table1 = work / "results" / "default" / "tables" / "table1.json"
    before = table1.read_text()
    generators = sorted((work / "results" / "default" / "gan").rglob("generator_ema.pt"))
    generator_times = [p.stat().st_mtime_ns for p in generators]
    _edit_config(work / "config.yaml", "train", "epochs", 2)
    third = _run([DVC, "repro"], work)
    assert "Running stage 'train'" in third.stdout and "Running stage 'table1'" in third.stdout
    summary = json.loads((work / "results" / "default" / "train" / "S1" / "topk" / "seed0" / "summary.json").read_text())
    assert summary["final_epoch"]["epoch"] == 1
    assert table1.read_text() != before
    assert "epochs: 2" in (work / "dvc.lock").read_text()
    # The GAN stage reruns its evaluation (the FID classifier changed) but retrains no generator.
    assert [p.stat().st_mtime_ns for p in generators] == generator_times

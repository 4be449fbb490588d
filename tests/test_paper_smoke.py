"""The paper configuration's whole DAG, offline (`make paper-smoke`): every rule runs, every output holds
what it should, DVC then rebuilds nothing, and a colleague's clone pulls it without recomputing.

One run serves every check (about 10 minutes on 2 cores): the smoke command itself, then
`dvc repro all@paper-smoke` in the same clone (Snakemake has nothing left to do, so DVC only records),
`slurm_resources` on its benchmarks, and the DVC round trip through a local remote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_support import ROOT, copy_workflow

pytestmark = pytest.mark.slow

SHARED = ROOT.parent / "shared"
PAPER_DATA = SHARED / "paper-data"
HUMAN_RAW = SHARED / "model-vs-human" / "raw-data"
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")
SNAKEMAKE = str(BIN / "snakemake")
GIT_USER = ("-c", "user.name=test", "-c", "user.email=test@example.org")
SMOKE_CONFIGS = ("config/paper.yaml", "config/paper-smoke.yaml", "build/paper-smoke/downloads.yaml")


def _shared_or_skip() -> None:
    missing = [str(p) for p in (PAPER_DATA, HUMAN_RAW) if not p.is_dir()]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"../shared is always beside the checkout in CI, but {missing} are missing")
    pytest.skip(f"../shared data not found: {missing}")


def _env() -> dict[str, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "TOPKSHAPE_PAPER_DATA": str(PAPER_DATA), "TOPKSHAPE_MODEL_VS_HUMAN": str(HUMAN_RAW),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("TOPKSHAPE_REBUILD_MISSING", None)
    return env


def _run(args, cwd: Path, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A git clone of the project after `python -m topkshape.smoke` (what `make paper-smoke` runs)."""
    _shared_or_skip()
    base = tmp_path_factory.mktemp("smoke")
    origin = copy_workflow(base / "origin")
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "Makefile"):
        shutil.copy2(ROOT / name, origin / name)
    shutil.copytree(ROOT / ".dvc", origin / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    # The DVC stages depend on the library's sources (the installed package is the checkout's).
    shutil.copytree(ROOT / "src" / "topkshape", origin / "src" / "topkshape", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    _run(["git", "init", "-q"], origin)
    _run(["git", "add", "-A"], origin)
    _run(["git", *GIT_USER, "commit", "-q", "-m", "project"], origin)
    work = base / "work"
    _run(["git", "clone", "-q", str(origin), str(work)], base)
    run = _run([sys.executable, "-m", "topkshape.smoke"], work, check=False, timeout=2400)
    yield {"base": base, "work": work, "run": run}
    shutil.rmtree(base, ignore_errors=True)  # ~16 GB at its peak: FastGAN generators at the paper's size


def test_make_paper_smoke_runs_every_rule_of_the_paper_dag_offline_and_checks_each_output(smoke):
    run = smoke["run"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "every rule of the paper DAG ran" in run.stdout
    work = smoke["work"]
    # Every download came from the 127.0.0.1 server, pinned: the logs say where from, and no
    # download was refused or left unpinned.
    overlay = yaml.safe_load((work / "build" / "paper-smoke" / "downloads.yaml").read_text())
    assert overlay["downloads"]["torchvision_url"].startswith("http://127.0.0.1:")
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log"))
    assert "unpinned download" not in logs
    # The smoke run's random weights live apart from a real run's resources/.
    assert overlay["downloads"]["folder"] == "build/paper-smoke/resources" and not (work / "resources").exists()
    weights = sorted(p.name for p in (work / "build" / "paper-smoke" / "resources" / "weights").iterdir())
    assert weights == sorted(overlay["downloads"]["sha256"])  # AlexNet, VGG16 (and LPIPS), VGG-19, Inception
    # Only counts differ from the paper config: the overlay holds nothing else.
    smoke_keys = yaml.safe_load((ROOT / "config" / "paper-smoke.yaml").read_text())
    assert set(smoke_keys) == {"experiment", "data", "train", "shape_bias", "texture", "gan", "robustness"}


def test_the_paper_smoke_run_plans_nothing_more_and_dvc_records_it_without_recomputing(smoke):
    work = smoke["work"]
    if smoke["run"].returncode != 0:
        pytest.skip("the smoke run failed (see the test above)")
    first = _run([DVC, "repro", "all@paper-smoke", "ood@paper-smoke"], work)
    assert "Running stage 'all@paper-smoke'" in first.stdout and "Running stage 'ood@paper-smoke'" in first.stdout
    assert not re.search(r"^rule (train|gan_train|cue_conflict_eval|ood_eval):", first.stdout + first.stderr, re.MULTILINE)
    tables = work / "results" / "paper-smoke" / "tables"
    assert "ResNet-18" in (tables / "table1.md").read_text() and "FID" in (tables / "table2.md").read_text()
    second = _run([DVC, "repro", "all@paper-smoke", "ood@paper-smoke"], work)
    assert "Running stage" not in second.stdout
    assert (work / "results" / "paper-smoke" / "snakemake-metadata").is_dir()


def test_slurm_resources_are_sized_from_the_smoke_runs_benchmarks(smoke):
    work = smoke["work"]
    if smoke["run"].returncode != 0:
        pytest.skip("the smoke run failed (see the first test)")
    out = work / "profiles" / "slurm-measured"
    _run([sys.executable, "-m", "topkshape.slurm_resources", "results/paper-smoke/benchmarks", "--out", str(out)], work)
    measured = yaml.safe_load((out / "config.yaml").read_text())["set-resources"]
    assert {"train", "gan_train", "gan_eval", "cue_conflict_eval", "texture_synthesis", "stylized"} <= set(measured)
    assert all(entry["runtime"] >= 1 and entry["mem_mb"] >= 1 for entry in measured.values())


def test_a_colleague_pulls_the_paper_smoke_results_and_nothing_is_recomputed(smoke):
    base, work = smoke["base"], smoke["work"]
    if not (work / "dvc.lock").is_file():
        pytest.skip("needs the dvc repro of the test above")
    remote = base / "remote"
    _run([DVC, "remote", "add", "-d", "store", str(remote)], work)
    _run([DVC, "push", "--with-deps", "ood@paper-smoke"], work)  # ood's deps hold all@paper-smoke's
    # The remote holds everything now; the pushing clone's cache (~3 GB) is not needed for the rest.
    # (A hard-linked cache would save more, but tried here the colleague's plan was then not empty:
    # DVC links byte-identical files, e.g. both variants' initial generators, to one inode, so
    # they cannot keep the different job-end times that Snakemake compares.)
    shutil.rmtree(work / ".dvc" / "cache")
    _run(["git", "add", "-A"], work)
    _run(["git", *GIT_USER, "commit", "-q", "-m", "results"], work)
    colleague = base / "colleague"
    _run(["git", "clone", "-q", str(work), str(colleague)], base)
    _run([DVC, "pull", "--with-deps", "ood@paper-smoke"], colleague)  # a bare pull: no `make pull`
    # The colleague has neither the downloads nor the miniature ImageNet: results that are pinned
    # downloads' consumers are not redone, and the overlay is rewritten by the smoke command.
    plan = _run([sys.executable, "-m", "topkshape.smoke", "--", SNAKEMAKE, "-n", "all", "--cores", "2",
                 "--configfile", *SMOKE_CONFIGS], colleague)
    assert "Nothing to be done" in plan.stdout + plan.stderr, (plan.stdout + plan.stderr)[-3000:]
    repro = _run([DVC, "repro", "all@paper-smoke", "ood@paper-smoke"], colleague)
    assert "Running stage" not in repro.stdout

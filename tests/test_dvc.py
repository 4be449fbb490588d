"""DVC out of the box: `dvc repro` in a fresh clone, reruns after a param edit only, sharing
results through a remote so that a colleague's clone recomputes nothing, `dvc plots show` of the
training curves and the K sweep, and an experiment with another Top-K fraction beside the workspace."""

from __future__ import annotations

import csv
import io
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
# `dvc exp run` commits the experiment itself: it needs an identity as much as git does.
GIT_IDENTITY = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in (("NAME", "t"), ("EMAIL", "t@example.org"))}
VARIANTS = ("baseline", "topk", "topk_mean_rpl")  # the Snakefile's VARIANTS


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
    first = _run([DVC, "repro", "all@default"], work)
    return {"base": base, "work": work, "first": first}


def _copy(work: Path, dest: Path) -> Path:
    """A copy of the built clone (git history, DVC cache, outputs with their times, Snakemake's records)
    for a test that changes it: `built` stays as `dvc repro` left it, whatever order the tests run in.
    DVC's per-process files (.dvc/tmp: locks, its state database) are left behind; the copy makes its own."""

    def process_files(folder, names):
        return ["tmp"] if Path(folder) == work / ".dvc" else []

    shutil.copytree(work, dest, symlinks=True, ignore=process_files)
    return dest


@pytest.fixture(scope="module")
def pushed(built):
    """A copy of the built clone whose results are pushed to a local remote (`dvc push`) and committed with
    the remote's address: what a colleague clones."""
    base = built["base"]
    work = _copy(built["work"], base / "pushed")
    remote = base / "remote"
    _run([DVC, "remote", "add", "-d", "store", str(remote)], work)
    _run([DVC, "push"], work)
    _run(["git", "add", "-A"], work)
    _run(["git", *GIT_USER, "commit", "-q", "-m", "results"], work)
    return {"work": work, "remote": remote}


def test_dvc_repro_in_a_fresh_clone_builds_both_tables_and_a_second_repro_does_nothing(built):
    work = built["work"]
    tables = work / "results" / "default" / "tables"
    assert "ResNet-18 w. Top-K during training" in (tables / "table1.md").read_text()
    assert "FastGAN w. Top-K (ours)" in (tables / "table2.md").read_text()
    assert (work / "dvc.lock").is_file()
    metrics = _run([DVC, "metrics", "show", "--json"], work).stdout
    assert "S1/topk/stylized" in metrics and "hexagon/fastgan_topk/fid" in metrics
    second = _run([DVC, "repro", "all@default"], work)
    assert "Running stage" not in second.stdout
    assert "up to date" in _run([DVC, "status", "--with-deps", "all@default"], work).stdout
    assert _planned(work, "all") == {}


def test_shared_results_are_pulled_into_a_colleagues_clone_and_nothing_is_recomputed(pushed, tmp_path):
    assert any(path.is_file() for path in pushed["remote"].rglob("*"))
    colleague = tmp_path / "colleague"
    _run(["git", "clone", "-q", str(pushed["work"]), str(colleague)], tmp_path)
    assert not list(colleague.glob("results/default/train/**/model.pt")) and not (colleague / "data").exists()
    # A bare `dvc pull` fetches the default's results, and exits 1 for the experiments nobody ran
    # (paper, paper-smoke: no hashes in dvc.lock); `make pull` pulls the recorded stages only.
    bare = _run([DVC, "pull"], colleague, check=False)
    assert "results/default/train/" in bare.stdout and (colleague / "results" / "default" / "snakemake-metadata").is_dir()
    # Pulled files (and the clone's scripts) have new, arbitrary mtimes: a bare `dvc pull` (not
    # `make pull`) must not make Snakemake rerun jobs whose inputs or scripts look newer than their
    # outputs. The Snakefile restores the times from the experiment's pulled job records itself.
    plan = _run([SNAKEMAKE, "-n", "all", "--cores", "2"], colleague)
    assert "results pulled by DVC got back the times their jobs ended" in plan.stderr
    assert _planned(colleague, "all") == {}
    restored = _run([sys.executable, "-m", "topkshape.sharing", "--pull"], colleague)  # `make pull`: idempotent
    assert "restored the modification times" in restored.stdout
    assert _planned(colleague, "all") == {}
    assert "up to date" in _run([DVC, "status", "--with-deps", "all@default"], colleague).stdout
    repro = _run([DVC, "repro", "all@default"], colleague)
    assert "Running stage" not in repro.stdout

    # One config edit reruns exactly what uses it: here the three reports that bootstrap (shape biases, Spearman's rho).
    _edit_config(colleague / "config.yaml", "shape_bias", "bootstrap_samples", 77)
    assert _planned(colleague, "all") == {"shape_bias_report": 1, "atlas_report": 1, "shape_bias_vs_robustness": 1}


def test_partial_pull_of_only_the_models_names_the_missing_dvc_targets_in_one_line(pushed, tmp_path):
    partial = tmp_path / "partial"
    _run(["git", "clone", "-q", str(pushed["work"]), str(partial)], tmp_path)
    _run([DVC, "pull", "results/default/train"], partial)
    _run([sys.executable, "-m", "topkshape.sharing"], partial, check=False)
    result = _run([SNAKEMAKE, "-n", "table1", "--cores", "1"], partial, check=False)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("topkshape: DVC-tracked") and "data/default/S1" in message
    named = message.split("`dvc pull ", 1)[1].split("`", 1)[0].split()
    assert "results/default/snakemake-metadata" in named
    # Pulling what it names is enough: then nothing is planned for Table 1 but the table itself.
    _run([DVC, "pull", *named], partial)
    _run([sys.executable, "-m", "topkshape.sharing"], partial)
    assert set(_planned(partial, "table1")) <= {"table1"}  # no dataset rebuilt, no model retrained


def test_after_editing_train_epochs_dvc_repro_retrains_and_table1_changes(built, tmp_path):
    work = _copy(built["work"], tmp_path / "work")
    table1 = work / "results" / "default" / "tables" / "table1.json"
    before = table1.read_text()
    generators = sorted((work / "results" / "default" / "gan").rglob("generator_ema.pt"))
    generator_times = [p.stat().st_mtime_ns for p in generators]
    _edit_config(work / "config.yaml", "train", "epochs", 2)
    third = _run([DVC, "repro", "all@default"], work)
    assert "Running stage 'train@default'" in third.stdout and "Running stage 'table1@default'" in third.stdout
    summary = json.loads((work / "results" / "default" / "train" / "S1" / "topk" / "seed0" / "summary.json").read_text())
    assert summary["final_epoch"]["epoch"] == 1
    assert table1.read_text() != before
    assert "epochs: 2" in (work / "dvc.lock").read_text()
    # The GAN stage reruns its evaluation (the FID classifier changed) but retrains no generator.
    assert [p.stat().st_mtime_ns for p in generators] == generator_times


def _plot_files(plots: list) -> dict[str, set]:
    """Data file -> the fields that dvc.yaml's top-level plots draw from it."""
    files: dict[str, set] = {}
    for plot in plots:
        if isinstance(plot, dict):
            (props,) = plot.values()
            for path, fields in (props.get("y") or {}).items():
                files.setdefault(path, set()).update([fields] if isinstance(fields, str) else fields)
    return files


def test_dvc_plots_name_every_training_run_and_sweep_column_of_the_default_config():
    """dvc.yaml lists each plotted file (DVC has no globs): the lists must match what `snakemake all` writes."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    files = _plot_files(yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"])
    results = f"results/{config['experiment']}"
    runs = {f"{results}/train/{subset}/{variant}/seed{seed}/metrics.csv" for subset in config["data"]["subsets"]
            for variant in VARIANTS for seed in config["train"]["seeds"]}
    assert {path for path in files if path.endswith("metrics.csv")} == runs
    assert all(files[path] == {"clean_acc", "stylized_acc", "train_loss"} for path in runs)
    sb = config["shape_bias"]
    columns = {f"{model} {mode}" for model in sb["models"] for mode in [*sb["modes"], "plain"]}
    assert files[f"{results}/tables/shape_bias_sweep.csv"] == columns


def test_dvc_plots_show_draws_the_training_curves_and_shape_bias_against_k(built):
    work = built["work"]
    _run([DVC, "plots", "show"], work)
    page = (work / "dvc_plots" / "index.html").read_text()
    assert "No plots were loaded" not in page
    for plot in ("training_S1_clean_acc", "training_S2_stylized_acc", "shape_bias_vs_k"):
        assert plot in page, plot
    # The data are in the page: each run's metrics file (named below the plot's common folder) and each setting.
    assert "topk_mean_rpl/seed2/metrics.csv" in page and "trained_S1 non_topk" in page
    shown = json.loads(_run([DVC, "plots", "show", "--json"], work).stdout)
    assert not shown.get("errors"), shown["errors"]
    plots = shown["data"]
    curves = plots["training_S1_clean_acc"][0]["content"]["data"]["values"]
    assert {row["filename"] for row in curves} == {f"{v}/seed{s}/metrics.csv" for v in VARIANTS for s in (0, 1, 2)}
    assert all(0 <= float(row["clean_acc"]) <= 1 for row in curves)
    sweep = plots["shape_bias_vs_k"][0]["content"]["data"]["values"]
    assert {float(row["K_percent"]) for row in sweep} == {100 * f for f in TINY["shape_bias__fractions"]}
    assert {row["field"] for row in sweep} >= {"trained_S1 topk", "trained_S2 non_topk", "trained_S2 plain"}
    images = {name for name, items in plots.items() if items[0]["type"] == "image"}
    assert images == {f"results/default/figures/{n}.png" for n in ("shape_bias_vs_k", "table1", "table2")}
    assert len(list((work / "dvc_plots" / "static").glob("*.png"))) == 3


def test_dvc_experiment_with_another_topk_fraction_is_shown_beside_the_commit(built, tmp_path):
    """`dvc exp run -S config.yaml:train.topk_fraction=0.1` (the params file is config.yaml, not DVC's
    default params.yaml) retrains through the same stages; `dvc exp show` compares it with the commit."""
    work = _copy(built["work"], tmp_path / "work")
    env = {**ENV, **GIT_IDENTITY}
    _run(["git", "add", "-A"], work)
    _run(["git", *GIT_USER, "commit", "-q", "--allow-empty", "-m", "before the experiment"], work)
    committed = yaml.safe_load((work / "config.yaml").read_text())["train"]["topk_fraction"]
    assert committed != 0.1
    run = _run([DVC, "exp", "run", "-n", "k10", "-S", "config.yaml:train.topk_fraction=0.1", "table1@default"], work, env=env)
    assert "Running stage 'train@default'" in run.stdout and "Running stage 'table1@default'" in run.stdout
    summary = json.loads((work / "results" / "default" / "train" / "S1" / "topk" / "seed0" / "summary.json").read_text())
    assert summary["settings"]["topk_fraction"] == 0.1

    rows = list(csv.DictReader(io.StringIO(_run([DVC, "exp", "show", "--csv"], work, env=env).stdout)))
    experiment = next(row for row in rows if row["Experiment"] == "k10")
    workspace = next(row for row in rows if row["rev"] == "workspace")
    commit = next(row for row in rows if row["typ"] == "baseline" and row["rev"] != "workspace")
    # A key that several experiments' params files hold is shown with its file's name.
    column = next(name for name in ("config.yaml:train.topk_fraction", "train.topk_fraction") if name in experiment)
    assert float(experiment[column]) == float(workspace[column]) == 0.1
    assert float(commit[column]) == committed
    # Each Table 1 was made from its own fraction (the metrics file records it), and its numbers are shown.
    assert float(experiment["provenance.params.train.topk_fraction"]) == 0.1
    assert float(commit["provenance.params.train.topk_fraction"]) == committed
    assert experiment["S1/topk/stylized.mean"] and commit["S1/topk/stylized.mean"]

    # The plots of both revisions side by side.
    diff = json.loads(_run([DVC, "plots", "diff", "HEAD", "--json"], work).stdout)
    assert {row["rev"] for row in diff["data"]["training_S1_clean_acc"][0]["content"]["data"]["values"]} == {"HEAD", "workspace"}

"""Failure behaviour: retries, failing jobs, killed runs that resume, outputs complete or absent, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from topkshape.checkpoint import load_torch_file, save_checkpoint
from workflow_support import ROOT, SNAKEMAKE, copy_workflow, make_fake_imagenet, snakemake, write_config

pytestmark = pytest.mark.slow

SMALL = dict(
    data__subsets={"S1": ["disk", "square", "triangle"]},
    data__synthetic__train_per_class=40,
    data__synthetic__val_per_class=4,
    data__synthetic__diagnostic_per_class=2,
    data__synthetic__image_size=32,
    stylize__per_class=4,
    train__image_size=32,
    train__epochs=4,
    train__width=4,
    train__batch_size=8,
    train__seeds=[0],
    shape_bias__models=["trained_S1"],
)


def _workflow(tmp_path, name="wf", **extra):
    work = copy_workflow(tmp_path / name)
    return work, write_config(work / "small.yaml", **{**SMALL, **extra})


def test_a_job_that_fails_once_is_retried_and_the_workflow_completes(tmp_path):
    work, config = _workflow(tmp_path)
    marker = tmp_path / "marker"
    env = {**os.environ, "TOPKSHAPE_FAIL_ONCE": f"subset:{marker}"}
    run = subprocess.run([str(SNAKEMAKE), "data/default/S1", "--cores", "1", "--configfile", str(config), "--retries", "1"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert marker.is_file() and (work / "data/default/S1/manifest.csv").is_file()


def test_a_job_that_always_fails_stops_the_workflow_naming_rule_wildcards_and_log(tmp_path):
    work, config = _workflow(tmp_path)
    env = {**os.environ, "TOPKSHAPE_FAIL_ALWAYS": "subset"}
    run = subprocess.run([str(SNAKEMAKE), "data/default/S1", "--cores", "1", "--configfile", str(config), "--retries", "1"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    err = run.stderr
    assert "Error in rule subset" in err and "subset=S1" in err and "logs/default/data/subset_S1.log" in err
    assert "topkshape error: injected failure in rule subset" in err and "Traceback" not in err
    assert not (work / "data/default/S1").exists()


@pytest.fixture(scope="module")
def uninterrupted_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    work, config = _workflow(tmp)
    run = snakemake(work, "table1", "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    return pd.read_csv(work / "results/default/tables/table1.csv")


# Snakemake alone treats SIGTERM as "finish the running jobs, then stop"; a scheduler's time
# limit or a Ctrl-C in a terminal signals the whole process group, jobs included.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_workflow_resumes_training_from_its_checkpoint_and_gives_the_same_table(tmp_path, uninterrupted_table, sig):
    work, config = _workflow(tmp_path)
    first = subprocess.Popen([str(SNAKEMAKE), "table1", "--cores", "2", "--configfile", str(config)], cwd=work,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list((work / "results/default/train").rglob("checkpoint.pt")):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, sig)
    first.wait(timeout=120)
    time.sleep(1)  # let every job process of the group go
    assert not (work / "results/default/tables/table1.csv").exists()
    if sig == signal.SIGKILL:  # a killed Snakemake cannot release its lock on the working directory
        assert snakemake(work, "table1", "--configfile", str(config), "--unlock").returncode == 0
    again = snakemake(work, "table1", "--cores", "2", "--configfile", str(config), "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-3000:]
    logs = [p.read_text() for p in (work / "logs/default/train").glob("*.log")]
    assert any("resuming from" in log and "after epoch" in log for log in logs), logs
    pd.testing.assert_frame_equal(pd.read_csv(work / "results/default/tables/table1.csv"), uninterrupted_table)


def test_killed_dataset_build_leaves_no_dataset_and_the_rerun_cleans_up(tmp_path):
    work, config = _workflow(tmp_path, data__synthetic__train_per_class=400, data__synthetic__image_size=64, train__image_size=64)
    first = subprocess.Popen([str(SNAKEMAKE), "data/default/S1", "--cores", "1", "--configfile", str(config)], cwd=work,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not list((work / "data/default").glob(".tmp-S1-*/train/*/*.png")):
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert not (work / "data/default/S1").exists()
    assert snakemake(work, "data/default/S1", "--configfile", str(config), "--unlock").returncode == 0
    again = snakemake(work, "data/default/S1", "--cores", "1", "--configfile", str(config), "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(pd.read_csv(work / "data/default/S1/manifest.csv")) == 3 * (400 + 4 + 2 * 2)  # train, val, val_shape, val_texture
    assert not list((work / "data/default").glob(".tmp-*"))


# The writer saves a 32 MB checkpoint again and again (epoch 2, 3, ...); the test SIGKILLs it as
# soon as a temporary file of a write in progress holds data. A real kill runs no cleanup code.
_ENDLESS_WRITER = """
import sys, torch
from topkshape.checkpoint import save_checkpoint
epoch = 2
while True:
    save_checkpoint({"epoch": epoch, "weights": torch.full((8_000_000,), float(epoch))}, sys.argv[1])
    epoch += 1
"""


def _kill_mid_write(path: Path, deadline_s: float = 60) -> None:
    writer = subprocess.Popen([sys.executable, "-c", _ENDLESS_WRITER, str(path)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + deadline_s
    try:
        while not any(p.stat().st_size > 0 for p in path.parent.glob(".tmp-checkpoint.pt-*") if p.exists()):
            assert writer.poll() is None, writer.stderr.read()
            assert time.time() < deadline, "the writer never started a checkpoint"
            time.sleep(0.001)
    except FileNotFoundError:  # the temporary file was renamed while we looked at it
        pass
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL


def test_a_process_killed_while_writing_a_checkpoint_leaves_a_complete_one_and_the_rerun_replaces_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1, "weights": torch.ones(3)}, path)
    for _attempt in range(5):  # until the kill lands inside a write, not between two
        _kill_mid_write(path)
        stale = list(tmp_path.glob(".tmp-checkpoint.pt-*"))
        if stale:
            break
    assert len(stale) == 1, "no kill landed inside a write in 5 attempts"
    state = load_torch_file(path, "training checkpoint")  # the file under the real name is whole
    epoch = state["epoch"]
    expected = torch.ones(3) if epoch == 1 else torch.full((8_000_000,), float(epoch))
    assert torch.equal(state["weights"], expected)

    rerun = subprocess.run([sys.executable, "-c", "import sys, torch; from topkshape.checkpoint import save_checkpoint; "
                            "save_checkpoint({'epoch': 99, 'weights': torch.arange(4)}, sys.argv[1])", str(path)],
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    state = load_torch_file(path, "training checkpoint")
    assert state["epoch"] == 99 and torch.equal(state["weights"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # the stale temporary is gone


PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["data"]


def _paper_tree(tmp_path):
    wnids = [w for ws in PAPER["subsets"].values() for w in ws]
    return make_fake_imagenet(tmp_path / "imagenet", wnids, train_per_class=2, val_per_class=1)


@pytest.mark.parametrize("damage,message", [("remove", "WNID {wnid} not found in"), ("empty", "no images for WNID {wnid}")])
def test_missing_or_empty_class_folder_fails_the_subset_job_with_one_line(tmp_path, damage, message):
    root = _paper_tree(tmp_path)
    wnid = PAPER["subsets"]["S1"][3]
    folder = root / "train" / wnid
    for f in folder.iterdir():
        f.unlink()
    if damage == "remove":
        folder.rmdir()
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "p.yaml", base="config/paper.yaml", imagenet_root=str(root), data__imagenet__resize_short_side=32)
    run = snakemake(work, "data/paper/S1", "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("topkshape error:")]
    assert len(lines) == 1 and message.format(wnid=wnid) in lines[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not (work / "data/paper/S1").exists() and not list((work / "data/paper").glob(".tmp-*"))

"""A checkpoint is resumed only when it provably belongs to the same, unfinished run."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

import topkshape.classify.train as trainer
from topkshape.classify.train import TrainSettings, train_classifier
from topkshape.data.synthetic import write_cue_conflict_set, write_shape_subset

SETTINGS = TrainSettings(arch="resnet18_cifar", variant="topk", topk_fraction=0.2, epochs=2, batch_size=8, image_size=32, width=4, seed=1)


def _data(root: Path, classes: list[str]) -> Path:
    write_shape_subset(root / "S", classes, image_size=32, train_per_class=8, val_per_class=3, progress=False)
    write_cue_conflict_set(root / "S-stylized", classes, image_size=32, per_class=3, progress=False)
    return root


def _train(data: Path, out: Path, settings: TrainSettings = SETTINGS):
    return train_classifier(data / "S" / "train", data / "S" / "val", data / "S-stylized", out, settings, threads=1, progress=False)


def _interrupted_run(data: Path, out: Path, monkeypatch) -> None:
    """Train epoch 0 of 2, then fail in epoch 1's evaluation: an unfinished checkpoint remains."""
    real_evaluate = trainer._evaluate
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("node lost")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "_evaluate", failing)
    with pytest.raises(KeyboardInterrupt):
        _train(data, out)
    monkeypatch.setattr(trainer, "_evaluate", real_evaluate)
    assert (out / "checkpoint.pt").is_file()


def test_checkpoint_of_other_data_is_not_resumed_and_training_starts_over(tmp_path, monkeypatch, caplog):
    first = _data(tmp_path / "a", ["disk", "square", "triangle"])
    out = tmp_path / "run"
    _interrupted_run(first, out, monkeypatch)
    # The subset is rebuilt with another class list; the settings are unchanged.
    second = _data(tmp_path / "b", ["disk", "square", "star"])
    with caplog.at_level(logging.INFO):
        summary = _train(second, out)
    log = caplog.text
    assert "for another run" in log and "classes" in log and "starting over" in log
    assert "resuming" not in log
    assert summary["classes"] == ["disk", "square", "star"]
    assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == [0, 1]
    # Not the old run's numbers: a fresh run on the new data gives exactly these metrics.
    _train(second, tmp_path / "fresh")
    columns = ["train_loss", "clean_acc", "stylized_acc"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv")[columns], pd.read_csv(tmp_path / "fresh" / "metrics.csv")[columns])


def test_matching_unfinished_checkpoint_resumes_after_its_epoch(tmp_path, monkeypatch, caplog):
    data = _data(tmp_path / "a", ["disk", "square", "triangle"])
    out = tmp_path / "run"
    _interrupted_run(data, out, monkeypatch)
    # Count the epochs the resumed run evaluates: epoch 0 comes from the checkpoint, only epoch 1 runs.
    real_evaluate, evaluated = trainer._evaluate, []
    monkeypatch.setattr(trainer, "_evaluate", lambda *a, **k: evaluated.append(1) or real_evaluate(*a, **k))
    with caplog.at_level(logging.INFO):
        _train(data, out)
    assert "resuming from" in caplog.text and "after epoch 0" in caplog.text
    assert len(evaluated) == 1
    # And the resumed run ends where an uninterrupted one does, every metric of both epochs.
    monkeypatch.setattr(trainer, "_evaluate", real_evaluate)
    _train(data, tmp_path / "straight")
    columns = ["epoch", "train_loss", "clean_acc", "stylized_acc"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv")[columns], pd.read_csv(tmp_path / "straight" / "metrics.csv")[columns])


def test_finished_run_leaves_no_checkpoint_so_a_forced_rerun_starts_from_scratch(tmp_path, caplog):
    data = _data(tmp_path / "a", ["disk", "square", "triangle"])
    out = tmp_path / "run"
    _train(data, out)
    assert not (out / "checkpoint.pt").exists()
    with caplog.at_level(logging.INFO):
        _train(data, out)
    assert "starting from scratch" in caplog.text and "resuming" not in caplog.text


def test_truncated_checkpoint_is_moved_aside_logged_in_one_line_and_training_succeeds(tmp_path, monkeypatch, caplog):
    data = _data(tmp_path / "a", ["disk", "square", "triangle"])
    out = tmp_path / "run"
    _interrupted_run(data, out, monkeypatch)
    blob = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(blob[: len(blob) // 3])
    with caplog.at_level(logging.INFO):
        summary = _train(data, out)
    moved = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(moved) == 1 and "\n" not in moved[0].getMessage()
    assert len(list(out.glob("checkpoint.pt.corrupt-*"))) == 1
    assert summary["final_epoch"]["epoch"] == 1 and (out / "model.pt").is_file()


def test_run_summary_records_its_params_git_state_and_environment(tmp_path):
    data = _data(tmp_path / "a", ["disk", "square", "triangle"])
    summary = train_classifier(data / "S" / "train", data / "S" / "val", data / "S-stylized", tmp_path / "run", SETTINGS,
                               threads=1, progress=False, provenance={"train": {"epochs": 2}})
    record = summary["provenance"]
    assert record["params"] == {"train": {"epochs": 2}}
    assert set(record["git"]) == {"commit", "dirty"}
    assert record["environment"]["torch"] == torch.__version__.split("+")[0] or record["environment"]["torch"].startswith(torch.__version__.split("+")[0])

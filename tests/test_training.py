"""Table 1 training: determinism, kill-and-resume, and aggregation into the table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from topkshape.classify.train import TrainSettings, train_classifier
from topkshape.data.synthetic import write_cue_conflict_set, write_shape_subset
from topkshape.errors import ConfigError, InputDataError

CLASSES = ["disk", "square", "triangle"]
SETTINGS = TrainSettings(arch="resnet18_cifar", variant="topk", topk_fraction=0.2, epochs=5, batch_size=8, image_size=32, width=4, seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_shape_subset(root / "S", CLASSES, image_size=32, train_per_class=40, val_per_class=6, progress=False)
    write_cue_conflict_set(root / "S-stylized", CLASSES, image_size=32, per_class=6, progress=False)
    return root


def _train(tiny_data, out, settings=SETTINGS):
    return train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", out, settings, threads=1, progress=False)


def _metrics(out):
    return pd.read_csv(out / "metrics.csv").drop(columns=["images_per_s"])


def _weights(out):
    return torch.load(out / "model.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    summary = _train(tiny_data, out)
    return out, summary


def test_two_runs_with_the_same_seed_give_identical_metrics_and_weights(tiny_data, reference_run, tmp_path):
    out, summary = reference_run
    _train(tiny_data, tmp_path / "again")
    pd.testing.assert_frame_equal(_metrics(out), _metrics(tmp_path / "again"))
    a, b = _weights(out), _weights(tmp_path / "again")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert summary["final_epoch"]["epoch"] == SETTINGS.epochs - 1
    assert {"clean_acc", "stylized_acc", "shape_bias", "texture_rate"} <= set(summary["final_epoch"])
    assert summary["best_epoch"]["stylized_acc"] >= summary["final_epoch"]["stylized_acc"]


def test_another_seed_gives_different_weights(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    other = TrainSettings(**{**SETTINGS.__dict__, "seed": 4, "epochs": 1})
    _train(tiny_data, tmp_path / "other", other)
    a, b = _weights(out), _weights(tmp_path / "other")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_killed_training_resumes_from_last_checkpoint_with_identical_final_weights(tiny_data, reference_run, tmp_path):
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "topkshape.classify.train", str(tiny_data / "S" / "train"), str(tiny_data / "S" / "val"),
            str(tiny_data / "S-stylized"), str(out), "--no-progress", "--threads", "1"]
    for key, value in SETTINGS.__dict__.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # mid-epoch: the next epoch has just started
    first.wait()
    assert not (out / "model.pt").exists()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and "after epoch" in done.stderr
    assert "starting from epoch 0" not in done.stderr
    reference, _ = reference_run
    a, b = _weights(reference), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(_metrics(reference), _metrics(out))


def test_a_checkpoint_of_other_settings_is_refused(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    other = TrainSettings(**{**SETTINGS.__dict__, "lr": 0.05})
    work = tmp_path / "copy"
    work.mkdir()
    (work / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes())
    with pytest.raises(InputDataError, match="other settings"):
        _train(tiny_data, work, other)


def test_bad_settings_and_missing_folders_are_one_line_errors(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="variant"):
        TrainSettings(variant="sparse")
    with pytest.raises(ConfigError, match="epochs"):
        TrainSettings(epochs=0)
    with pytest.raises(InputDataError, match="stylized images not found"):
        train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tmp_path / "nope", tmp_path / "o", SETTINGS)


def test_table1_aggregates_mean_std_and_prints_paper_values(tmp_path):
    from topkshape.report.table1 import write_table1

    summaries = []
    values = {"baseline": [50.0, 52.0], "topk": [60.0, 64.0], "topk_mean_rpl": [55.0, 55.0]}
    for variant, accs in values.items():
        for seed, acc in enumerate(accs):
            path = tmp_path / "train" / "S1" / variant / f"seed{seed}" / "summary.json"
            path.parent.mkdir(parents=True)
            final = {"epoch": 1, "clean_acc": 0.9, "stylized_acc": acc / 100, "shape_bias": 0.5, "texture_rate": 0.2}
            best = {"clean_acc": 0.95, "clean_epoch": 0, "stylized_acc": acc / 100 + 0.01, "stylized_epoch": 1}
            path.write_text(json.dumps({"settings": {"seed": seed}, "final_epoch": final, "best_epoch": best, "mean_images_per_s": 1.0}))
            summaries.append(path)
    out = {k: tmp_path / f"t.{k}" for k in ("csv", "md", "tex", "json")}
    root = Path(__file__).resolve().parents[1]
    table = write_table1(summaries, root / "config" / "paper_reference.yaml", out, "Table 1 test")
    row = table[(table.variant == "topk") & (table.metric == "stylized")].iloc[0]
    assert row["mean"] == pytest.approx(62.0) and row["std"] == pytest.approx(2.828, abs=1e-3) and row["n"] == 2
    assert row["paper_mean"] == 55.4 and row["difference"] == pytest.approx(6.6)
    md = out["md"].read_text()
    assert "62.0 ± 2.8" in md and "55.4 ± 0.8" in md and "+6.6" in md
    assert "best epoch per set" in md and "Welch" in md
    metrics = json.loads(out["json"].read_text())
    assert metrics["S1/topk/stylized"]["mean"] == pytest.approx(62.0)
    assert "\\pm" in out["tex"].read_text()


def test_topk_masks_are_recorded_before_training_and_after_every_epoch(tiny_data, tmp_path):
    from topkshape.ops import topk_count
    from topkshape.texture.figures import load_masks

    settings = TrainSettings(**{**SETTINGS.__dict__, "epochs": 2})
    train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", tmp_path / "m", settings,
                     threads=1, progress=False, mask_images=2, mask_channels=(0, 3))
    masks = load_masks(tmp_path / "m" / "masks.pt")
    assert sorted(masks) == [0, 1, 2]
    mask = masks[2]
    assert mask.dtype == torch.bool and mask.shape[:2] == (2, 2)
    k = topk_count(SETTINGS.topk_fraction, mask.shape[2] * mask.shape[3])
    # At most K entries per channel (fewer where a channel has fewer non-zero responses), ties aside.
    assert (mask.sum(dim=(2, 3)) <= k + 2).all() and mask.any()
    baseline = TrainSettings(**{**SETTINGS.__dict__, "epochs": 1, "variant": "baseline"})
    train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", tmp_path / "b", baseline,
                     threads=1, progress=False, mask_images=2)
    assert not (tmp_path / "b" / "masks.pt").exists()

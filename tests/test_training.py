"""Table 1 training: it learns, it is deterministic, and a killed run resumes to the same result."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from topkshape.checkpoint import load_torch_file
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
    return load_torch_file(out / "model.pt", "trained classifier")["model"]


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    summary = _train(tiny_data, out)
    return out, summary


def test_two_runs_with_the_same_seed_give_identical_metrics_and_weights(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    _train(tiny_data, tmp_path / "again")
    pd.testing.assert_frame_equal(_metrics(out), _metrics(tmp_path / "again"))
    a, b = _weights(out), _weights(tmp_path / "again")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cached_images_give_the_same_metrics_and_weights_without_decoding_twice(tiny_data, reference_run, tmp_path, monkeypatch):
    from torchvision.datasets import folder

    out, _ = reference_run
    opened: list[str] = []
    real_loader = folder.pil_loader  # what ImageFolder's default loader calls
    monkeypatch.setattr(folder, "pil_loader", lambda path: opened.append(path) or real_loader(path))
    train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", tmp_path / "cached", SETTINGS,
                     threads=1, progress=False, cache_images=True)
    pd.testing.assert_frame_equal(_metrics(out), _metrics(tmp_path / "cached"))
    a, b = _weights(out), _weights(tmp_path / "cached")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # 5 epochs, yet each file was decoded once (training, validation and cue-conflict images alike).
    assert len(opened) == len(set(opened)) == 3 * (40 + 6 + 6)


def test_eval_every_scores_the_stylized_and_diagnostic_sets_every_nth_and_the_last_epoch_only(tmp_path):
    from topkshape.classify.train import diagnostic_sets

    write_shape_subset(tmp_path / "S", CLASSES, image_size=32, train_per_class=8, val_per_class=2, diagnostic_per_class=2, progress=False)
    write_cue_conflict_set(tmp_path / "S-stylized", CLASSES, image_size=32, per_class=2, progress=False)
    settings = TrainSettings(arch="resnet18_cifar", variant="baseline", epochs=5, batch_size=4, image_size=32, width=4, seed=2)
    runs = {}
    for every in (1, 2):
        summary = train_classifier(tmp_path / "S" / "train", tmp_path / "S" / "val", tmp_path / "S-stylized", tmp_path / f"every{every}",
                                   settings, threads=1, progress=False, diagnostic_dirs=diagnostic_sets(tmp_path / "S"), eval_every=every)
        runs[every] = (pd.read_csv(tmp_path / f"every{every}" / "metrics.csv").drop(columns=["images_per_s"]), summary)
    full, sparse = runs[1][0], runs[2][0]
    scored = [1, 3, 4]  # epochs 2 and 4 (1-based) and the last
    for column in ("stylized_acc", "shape_bias", "shape_only_acc", "texture_only_acc"):
        assert sparse[column].notna().tolist() == [e in scored for e in range(5)], column
        pd.testing.assert_series_equal(sparse[column].iloc[scored], full[column].iloc[scored])
    pd.testing.assert_frame_equal(sparse[["train_loss", "train_acc", "clean_acc"]], full[["train_loss", "train_acc", "clean_acc"]])
    assert runs[2][1]["final_epoch"]["stylized_acc"] == runs[1][1]["final_epoch"]["stylized_acc"]
    assert runs[2][1]["best_epoch"]["stylized_epoch"] in scored


def test_a_bad_cache_mode_is_refused():
    from topkshape.classify.data import LabelledImageFolder

    with pytest.raises(ValueError, match="cache"):
        LabelledImageFolder("/nonexistent", CLASSES, cache="always")


def test_summary_reports_the_last_epoch_and_each_sets_best_epoch_from_the_metrics(reference_run):
    out, summary = reference_run
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == list(range(SETTINGS.epochs))
    final = summary["final_epoch"]
    assert final["epoch"] == SETTINGS.epochs - 1
    last = metrics.iloc[-1]
    for key in ("clean_acc", "stylized_acc", "shape_bias", "texture_rate", "train_loss"):
        assert final[key] == pytest.approx(last[key]), key
    for name in ("clean", "stylized"):
        column = metrics[f"{name}_acc"].tolist()
        best = max(column)
        assert summary["best_epoch"][f"{name}_acc"] == pytest.approx(best)
        assert summary["best_epoch"][f"{name}_epoch"] == column.index(best)  # the first epoch reaching it
    assert json.loads((out / "summary.json").read_text())["best_epoch"] == summary["best_epoch"]


def test_training_lowers_the_loss_and_moves_every_parameter_away_from_its_start(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    losses = pd.read_csv(out / "metrics.csv")["train_loss"].tolist()
    assert losses[-1] < 0.8 * losses[0], losses
    # With lr 0 SGD changes no parameter (weight decay and momentum are scaled by lr): that run's
    # parameters are the start of training, for the same seed.
    frozen = TrainSettings(**{**SETTINGS.__dict__, "lr": 0.0, "epochs": 1})
    _train(tiny_data, tmp_path / "frozen", frozen)
    start, trained = _weights(tmp_path / "frozen"), _weights(out)
    parameters = [name for name, value in start.items() if value.is_floating_point() and "running_" not in name]
    assert len(parameters) > 10
    unchanged = [name for name in parameters if torch.equal(start[name], trained[name])]
    assert unchanged == []


def test_another_seed_gives_different_weights(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    other = TrainSettings(**{**SETTINGS.__dict__, "seed": 4, "epochs": 1})
    _train(tiny_data, tmp_path / "other", other)
    a, b = _weights(out), _weights(tmp_path / "other")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def _cli_args(tiny_data, out, settings=SETTINGS):
    args = [sys.executable, "-m", "topkshape.classify.train", str(tiny_data / "S" / "train"), str(tiny_data / "S" / "val"),
            str(tiny_data / "S-stylized"), str(out), "--no-progress", "--threads", "1"]
    for key, value in settings.__dict__.items():
        args += [f"--{key.replace('_', '-')}", *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    return args


@pytest.fixture(scope="module")
def killed_run(tiny_data, tmp_path_factory):
    """A training process SIGKILLed right after its first checkpoint appeared (mid epoch 1)."""
    out = tmp_path_factory.mktemp("killed")
    first = subprocess.Popen(_cli_args(tiny_data, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert not (out / "model.pt").exists() and not (out / "metrics.csv").exists()
    return out


@pytest.mark.slow
def test_killed_training_resumes_from_last_checkpoint_with_identical_final_weights(tiny_data, reference_run, killed_run, tmp_path):
    out = tmp_path / "killed"
    shutil.copytree(killed_run, out)
    done = subprocess.run(_cli_args(tiny_data, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and "after epoch 0" in done.stderr
    reference, _ = reference_run
    a, b = _weights(reference), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(_metrics(reference), _metrics(out))


@pytest.mark.slow
def test_a_checkpoint_of_other_settings_is_not_resumed_and_training_starts_over(tiny_data, killed_run, tmp_path, caplog):
    other = TrainSettings(**{**SETTINGS.__dict__, "epochs": 2})
    work = tmp_path / "copy"
    shutil.copytree(killed_run, work)
    with caplog.at_level(logging.INFO):
        _train(tiny_data, work, other)
    assert "resuming from" not in caplog.text
    _train(tiny_data, tmp_path / "fresh", other)
    a, b = _weights(tmp_path / "fresh"), _weights(work)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(_metrics(tmp_path / "fresh"), _metrics(work))


def test_bad_settings_and_missing_folders_are_one_line_errors(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="variant"):
        TrainSettings(variant="sparse")
    with pytest.raises(ConfigError, match="epochs"):
        TrainSettings(epochs=0)
    with pytest.raises(InputDataError, match="stylized images not found"):
        train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tmp_path / "nope", tmp_path / "o", SETTINGS)


def test_topk_masks_are_recorded_before_training_and_after_every_epoch(tiny_data, tmp_path, monkeypatch):
    import numpy as np

    from topkshape.mask_recording import MaskRecorder
    from topkshape.ops import topk_count
    from topkshape.texture.figures import load_masks

    # Capture the Top-K layer's input at each recording, to recompute the mask without topkshape.ops.
    inputs: dict[int, torch.Tensor] = {}
    real_record = MaskRecorder.record

    def record(self, step):
        hook = self.layer.register_forward_pre_hook(lambda _m, args: inputs.__setitem__(step, args[0].detach().clone()))
        try:
            return real_record(self, step)
        finally:
            hook.remove()

    monkeypatch.setattr(MaskRecorder, "record", record)
    settings = TrainSettings(**{**SETTINGS.__dict__, "epochs": 2})
    assert settings.ties == "keep"
    train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", tmp_path / "m", settings,
                     threads=1, progress=False, mask_images=2, mask_channels=(0, 3))
    masks = load_masks(tmp_path / "m" / "masks.pt")
    assert sorted(masks) == [0, 1, 2]
    mask = masks[2]
    assert mask.dtype == torch.bool and mask.shape[:2] == (2, 2)
    k = topk_count(SETTINGS.topk_fraction, mask.shape[2] * mask.shape[3])
    # ties="keep": each channel keeps exactly its non-zero entries with |x| >= the K-th largest |x| (numpy sort):
    # K of them, more where entries tie at the threshold, fewer where fewer than K are non-zero.
    assert sorted(inputs) == [0, 1, 2]
    for step, recorded in masks.items():
        x = inputs[step][:, [0, 3]].numpy()
        flat = np.abs(x).reshape(x.shape[0], x.shape[1], -1)
        kth = -np.sort(-flat, axis=-1)[..., k - 1]
        expected = (flat >= kth[..., None]) & (flat != 0)
        counts = recorded.reshape(recorded.shape[0], recorded.shape[1], -1).sum(-1).numpy()
        assert (counts == expected.sum(-1)).all(), (step, counts, expected.sum(-1))
        assert np.array_equal(recorded.reshape(expected.shape).numpy(), expected)
        assert ((counts >= k) | (counts == (flat != 0).sum(-1))).all()
    assert mask.any()
    baseline = TrainSettings(**{**SETTINGS.__dict__, "epochs": 1, "variant": "baseline"})
    train_classifier(tiny_data / "S" / "train", tiny_data / "S" / "val", tiny_data / "S-stylized", tmp_path / "b", baseline,
                     threads=1, progress=False, mask_images=2)
    assert not (tmp_path / "b" / "masks.pt").exists()


def test_diagnostic_sets_are_scored_every_epoch_as_the_saved_model_scores_them(tmp_path):
    """The subset's val_shape/ and val_texture/ are found, scored each epoch, and counted in the summary;
    the final scores are what the saved weights give on those folders."""
    from topkshape.classify.data import LabelledImageFolder, eval_transform
    from topkshape.classify.evaluate import predict
    from topkshape.classify.train import build_classifier, diagnostic_sets

    write_shape_subset(tmp_path / "S", CLASSES, image_size=32, train_per_class=8, val_per_class=2, diagnostic_per_class=3, progress=False)
    write_cue_conflict_set(tmp_path / "S-stylized", CLASSES, image_size=32, per_class=2, progress=False)
    found = diagnostic_sets(tmp_path / "S")
    assert found == {"shape_only": tmp_path / "S" / "val_shape", "texture_only": tmp_path / "S" / "val_texture"}
    settings = TrainSettings(arch="resnet18_cifar", variant="baseline", epochs=2, batch_size=4, image_size=32, width=4, seed=1)
    summary = train_classifier(tmp_path / "S" / "train", tmp_path / "S" / "val", tmp_path / "S-stylized", tmp_path / "run", settings,
                               threads=1, progress=False, diagnostic_dirs=found)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["shape_only_acc"].notna().all() and metrics["texture_only_acc"].notna().all() and len(metrics) == 2
    assert summary["diagnostic_images"] == {"shape_only": 9, "texture_only": 9}
    model = build_classifier(settings, len(CLASSES))
    model.load_state_dict(_weights(tmp_path / "run"))
    for name, folder in found.items():
        data = LabelledImageFolder(folder, summary["classes"], eval_transform(32))
        pred, target = predict(model, torch.utils.data.DataLoader(data, batch_size=5), torch.device("cpu"), None)
        assert summary["final_epoch"][f"{name}_acc"] == pytest.approx(float((pred == target).float().mean()))
    assert diagnostic_sets(tmp_path / "S-stylized") == {}


def test_crop_scale_reaches_the_training_crops_and_bad_values_stop():
    from topkshape.classify.data import train_transform

    crop = train_transform(32, (0.5, 1.0)).transforms[0]
    assert tuple(crop.scale) == (0.5, 1.0)
    assert TrainSettings(crop_scale=[0.3, 1]).crop_scale == (0.3, 1.0)
    with pytest.raises(ConfigError, match="crop_scale"):
        TrainSettings(crop_scale=[0.9, 0.5])


def test_warm_up_ramps_each_steps_learning_rate_linearly_and_leaves_the_schedule_as_without_it():
    from topkshape.classify.train import _warmed_step

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.4)  # no momentum: each step moves the weight by -lr * grad
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    moves, steps_per_epoch = [], 2
    for epoch in range(4):
        for step in range(steps_per_epoch):
            before = weight.item()
            weight.grad = torch.ones(1)
            _warmed_step(optimizer, epoch * steps_per_epoch + step, warmup_steps=4)
            moves.append(before - weight.item())
        scheduler.step()
    def cosine(epoch):  # CosineAnnealingLR's closed form over 4 epochs from 0.4
        return 0.2 * (1 + math.cos(math.pi * epoch / 4))

    # The first 4 steps (epochs 0 and 1) at 1/4, 2/4, 3/4, 4/4 of the scheduled value; then the schedule.
    assert moves == pytest.approx([cosine(0) / 4, cosine(0) / 2, cosine(1) * 3 / 4, cosine(1)] + [cosine(2)] * 2 + [cosine(3)] * 2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # the schedule's own value, untouched by the warm-up
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainSettings(epochs=3, warmup_epochs=3)


def test_a_warm_up_run_differs_from_one_without_from_the_first_epoch(tiny_data, reference_run, tmp_path):
    out, _ = reference_run
    warmed = _train(tiny_data, tmp_path / "warm", dataclasses.replace(SETTINGS, warmup_epochs=1))
    assert warmed["settings"]["warmup_epochs"] == 1
    first = _metrics(out).iloc[0]
    assert first["train_loss"] != _metrics(tmp_path / "warm").iloc[0]["train_loss"]
    assert _metrics(tmp_path / "warm")["lr"].tolist() == _metrics(out)["lr"].tolist()  # the logged schedule is the cosine one

"""No file we read can run code: a crafted pickle is refused by every loading entry point.

The malicious file's ``__reduce__`` would create a marker folder when unpickled; every
entry point must fail with one line (or, for a resumable checkpoint, set it aside) and the
marker must never appear.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from topkshape.checkpoint import TRUST_ENV, load_torch_file
from topkshape.errors import TopkshapeError


class _Payload:
    """Unpickling this calls ``os.makedirs(marker)``: code execution, observable on disk."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _malicious(path: Path, marker: Path, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker), "settings": {"arch": "resnet18_cifar"}, **extra}, path)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "unpickling ran code"


def test_the_payload_really_runs_code_when_loaded_unsafely(tmp_path):
    # Guards the other tests: without this, a harmless payload would make them pass vacuously.
    marker = tmp_path / "PWNED"
    torch.load(_malicious(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.is_dir()


def _one_line_refusal(error: TopkshapeError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and str(path) in message and "regenerate" in message


def test_load_torch_file_refuses_a_malicious_file_in_one_line(tmp_path, marker):
    evil = _malicious(tmp_path / "evil.pt", marker)
    with pytest.raises(TopkshapeError) as caught:
        load_torch_file(evil, "trained classifier")
    _one_line_refusal(caught.value, evil)


def test_trained_classifier_loader_used_by_cue_conflict_and_texture_refuses_it(tmp_path, marker):
    from topkshape.classify.trained import load_trained_classifier

    evil = _malicious(tmp_path / "model.pt", marker)
    with pytest.raises(TopkshapeError) as caught:
        load_trained_classifier(evil, 0.1, "topk")
    _one_line_refusal(caught.value, evil)


def test_texture_synthesis_feature_network_refuses_it(tmp_path, marker):
    from topkshape.texture.experiment import feature_taps

    evil = _malicious(tmp_path / "model.pt", marker)
    with pytest.raises(TopkshapeError):
        feature_taps({"feature_net": "trained_S1", "layers": ["layer1"], "weights": None}, evil)


def test_fid_classifier_feature_extractor_refuses_it(tmp_path, marker):
    from topkshape.gan.fidelity import register_classifier_extractor

    evil = _malicious(tmp_path / "model.pt", marker)
    with pytest.raises(TopkshapeError):
        register_classifier_extractor("topkshape-test-evil", evil)


def test_gan_generator_loader_refuses_it(tmp_path, marker):
    from topkshape.gan.train import load_generator

    evil = _malicious(tmp_path / "generator_ema.pt", marker)
    with pytest.raises(TopkshapeError) as caught:
        load_generator(evil)
    _one_line_refusal(caught.value, evil)


def test_recorded_mask_file_loader_refuses_it(tmp_path, marker):
    from topkshape.mask_recording import load_masks

    evil = _malicious(tmp_path / "masks.pt", marker)
    with pytest.raises(TopkshapeError):
        load_masks(evil)


def test_training_resume_sets_a_malicious_checkpoint_aside_and_trains_from_scratch(tmp_path, marker):
    from topkshape.classify.train import TrainSettings, train_classifier
    from topkshape.data.synthetic import write_cue_conflict_set, write_shape_subset

    classes = ["disk", "square"]
    write_shape_subset(tmp_path / "S", classes, image_size=32, train_per_class=4, val_per_class=2, progress=False)
    write_cue_conflict_set(tmp_path / "S-stylized", classes, image_size=32, per_class=2, progress=False)
    out = tmp_path / "run"
    _malicious(out / "checkpoint.pt", marker, identity={}, epoch=0)
    settings = TrainSettings(arch="resnet18_cifar", variant="baseline", epochs=1, batch_size=4, image_size=32, width=4)
    train_classifier(tmp_path / "S" / "train", tmp_path / "S" / "val", tmp_path / "S-stylized", out, settings, threads=1, progress=False)
    assert list(out.glob("checkpoint.pt.corrupt-*")) and (out / "model.pt").is_file()


def test_gan_training_resume_sets_a_malicious_checkpoint_aside(tmp_path, marker):
    import numpy as np
    from PIL import Image

    from topkshape.gan.train import GanSettings, train_fastgan

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = tmp_path / "gan"
    _malicious(out / "checkpoint.pt", marker, identity={}, iteration=1)
    settings = GanSettings(im_size=64, ngf=4, ndf=4, nz=8, batch_size=2, iterations=1, checkpoint_every=1, log_every=1)
    train_fastgan(images, out, settings, threads=1, progress=False)
    assert list(out.glob("checkpoint.pt.corrupt-*")) and (out / "generator_ema.pt").is_file()


def test_files_of_older_versions_load_only_with_the_documented_trust_flag(tmp_path, monkeypatch):
    # A pickled numpy RNG state (what older checkpoints held) needs the unsafe loader.
    import numpy as np

    old = tmp_path / "old.pt"
    torch.save({"rng": np.random.get_state()}, old)
    with pytest.raises(TopkshapeError):
        load_torch_file(old, "training checkpoint")
    monkeypatch.setenv(TRUST_ENV, "1")
    assert "rng" in load_torch_file(old, "training checkpoint")

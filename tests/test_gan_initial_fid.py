"""The FID at initialisation: training saves the untrained generator, evaluation scores it the same way."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from topkshape.checkpoint import load_torch_file
from topkshape.data.synthetic import write_fewshot_set
from topkshape.gan.evaluate import evaluate_run
from topkshape.gan.train import GENERATOR_EMA, GENERATOR_INIT, GanSettings, Generator, train_fastgan

SETTINGS = GanSettings(im_size=64, nz=16, ngf=8, ndf=8, batch_size=4, iterations=3, checkpoint_every=3, log_every=3, seed=11)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("initial_fid")
    write_fewshot_set(root / "images", "hexagon", count=8, image_size=64, progress=False)
    train_fastgan(root / "images", root / "run", SETTINGS, device="cpu", progress=False, threads=1)
    # FID features from a small random classifier (as the default config's in-domain extractor): cheap on a CPU.
    from topkshape.classify.train import TrainSettings, build_classifier

    classifier = TrainSettings(arch="resnet18_cifar", variant="baseline", image_size=32, width=4)
    torch.manual_seed(0)
    torch.save({"model": build_classifier(classifier, 3).state_dict(), "classes": ["a", "b", "c"],
                "settings": dataclasses.asdict(classifier)}, root / "model.pt")
    return root


OPTIONS = {"feature_extractor": "classifier", "feature_extractor_weights_path": None, "selection": "final", "samples": 6,
           "kid_subset_size": 4}


def test_training_saves_the_generator_its_seed_builds_before_any_step(trained):
    saved = load_torch_file(trained / "run" / GENERATOR_INIT, "initial generator")["generator"]
    # The expectation without the package's seeding and settings-to-network code: torch's generator seeded with
    # the run's seed (11) and nothing drawn before FastGAN's generator of the run's sizes is built.
    torch.manual_seed(11)
    fresh = Generator(ngf=8, nz=16, im_size=64, small_size=SETTINGS.small_size).state_dict()
    assert saved.keys() == fresh.keys() and all(torch.equal(saved[k], fresh[k]) for k in fresh)
    final = load_torch_file(trained / "run" / GENERATOR_EMA, "EMA generator")["generator"]
    assert any(not torch.equal(final[k], fresh[k]) for k in fresh if fresh[k].is_floating_point())


def test_evaluation_reports_the_fid_at_initialisation_measured_as_the_final_fid(trained, tmp_path):
    trained_metrics = evaluate_run(trained / "run", trained / "images", OPTIONS, tmp_path / "m.json", tmp_path / "p.png",
                                   classifier=trained / "model.pt")
    # A run whose final generator is its initial one: same samples, same features, so the two FIDs agree.
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(trained / "run" / GENERATOR_INIT, untrained / GENERATOR_INIT)
    shutil.copy(trained / "run" / GENERATOR_INIT, untrained / GENERATOR_EMA)
    untrained_metrics = evaluate_run(untrained, trained / "images", OPTIONS, tmp_path / "u.json", tmp_path / "u.png",
                                     classifier=trained / "model.pt")
    assert untrained_metrics["fid_init"] == pytest.approx(untrained_metrics["fid"], rel=1e-6)
    assert untrained_metrics["kid_x1e3_init"] == pytest.approx(untrained_metrics["kid_x1e3"], rel=1e-6)
    assert trained_metrics["fid_init"] == pytest.approx(untrained_metrics["fid"], rel=1e-6)
    # Three iterations move the EMA generator little: its FID is 0.2% from the initial one's.
    assert trained_metrics["fid"] != pytest.approx(trained_metrics["fid_init"], rel=1e-4)
    assert json.loads((tmp_path / "m.json").read_text())["fid_init"] == trained_metrics["fid_init"]
    # A run whose final generator is far from its initial one: the initial generator with the BatchNorm before
    # its output layer shifted by 2, so its samples are no longer near-uniform grey (an FID ~10x the initial one's).
    # fid_init must still be the initial generator's FID, and fid the final one's.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(trained / "run" / GENERATOR_INIT, moved / GENERATOR_INIT)
    state = load_torch_file(trained / "run" / GENERATOR_INIT, "initial generator")
    state["generator"]["feat_64.2.bias"] = state["generator"]["feat_64.2.bias"] + 2.0
    torch.save(state, moved / GENERATOR_EMA)
    moved_metrics = evaluate_run(moved, trained / "images", OPTIONS, tmp_path / "v.json", tmp_path / "v.png",
                                 classifier=trained / "model.pt")
    assert moved_metrics["fid_init"] == pytest.approx(untrained_metrics["fid"], rel=1e-6)
    assert moved_metrics["kid_x1e3_init"] == pytest.approx(untrained_metrics["kid_x1e3"], rel=1e-6)
    assert moved_metrics["fid"] > 2 * moved_metrics["fid_init"]


def test_a_run_without_an_initial_generator_is_scored_without_one(trained, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(trained / "run" / GENERATOR_EMA, old / GENERATOR_EMA)
    metrics = evaluate_run(old, trained / "images", OPTIONS, tmp_path / "o.json", tmp_path / "o.png",
                           classifier=trained / "model.pt")
    assert "fid_init" not in metrics and metrics["fid"] > 0

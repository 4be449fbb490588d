"""Model-vs-human's OOD benchmark: dataset layout, download, a model's raw decisions, analyses against humans."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import needs_shared
from test_robustness_consistency import RAW
from topkshape.errors import InputDataError
from topkshape.robustness.ood import (
    RAW_COLUMNS,
    entry_raw_decisions,
    fetch_human_raw_data,
    fetch_ood_dataset,
    list_trials,
    model_raw_decisions,
    read_raw_data,
)
from topkshape.robustness.ood_datasets import OOD_DATASETS, human_files
from topkshape.shape_bias.decisions import sixteen_class_indices
from topkshape.smoke.server import serving


def _stand_in(root: Path, name: str, conditions=("0", "3"), categories=("oven", "cat"), per: int = 2, size: int = 32) -> Path:
    """A dataset laid out as the toolbox's archives: <name>/dnn/session-1/<n>_<x>_dnn_<condition>_<category>_..."""
    folder = root / name / "dnn" / "session-1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 0
    for condition in conditions:
        for category in categories:
            for k in range(per):
                n += 1
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{n:04d}_lp_dnn_{condition}_{category}_10_n0000000{k}_{n}.png")
    return root / name


def test_the_seventeen_datasets_are_model_vs_humans():
    assert len(OOD_DATASETS) == 17 and {"eidolonIII", "power-equalisation", "cue-conflict", "silhouette"} <= set(OOD_DATASETS)
    # The config's enum of robustness.ood.datasets is the same list (the schema cannot import the constant).
    from topkshape.config import load_schema

    ood = load_schema()["properties"]["robustness"]["properties"]["ood"]["properties"]
    assert ood["datasets"]["items"]["enum"] == list(OOD_DATASETS)


def test_trials_read_condition_and_category_from_names_or_folders(tmp_path):
    trials = list_trials(_stand_in(tmp_path, "low-pass"))
    assert [(t.session, t.condition, t.category) for t in trials[:3]] == [(1, "0", "oven"), (1, "0", "oven"), (1, "0", "cat")]
    assert len(trials) == 8
    flat = tmp_path / "edge" / "bear"
    flat.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(flat / "bear1.png")
    assert [(t.condition, t.category) for t in list_trials(tmp_path / "edge")] == [("NaN", "bear")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="no dnn/session-<n>/ or <category>/ images found"):
        list_trials(tmp_path / "empty")


def test_a_dataset_archive_is_downloaded_checked_and_unpacked_or_nothing_is_kept(tmp_path):
    source = _stand_in(tmp_path / "src", "low-pass")
    served = tmp_path / "served"
    served.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(source, arcname="low-pass")
    (served / "low-pass.tar.gz").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    with serving(served, 0) as base:
        out = fetch_ood_dataset(f"{base}/low-pass.tar.gz", digest, tmp_path / "data" / "low-pass")
        assert len(list_trials(out)) == 8 and (out / "dnn" / "session-1").is_dir()
        with pytest.raises(InputDataError, match="SHA-256"):
            fetch_ood_dataset(f"{base}/low-pass.tar.gz", "0" * 64, tmp_path / "data" / "other")
        with pytest.raises(Exception, match="robustness.ood.sha256"):
            fetch_ood_dataset(f"{base}/low-pass.tar.gz", None, tmp_path / "data" / "other", require_pinned=True)
    assert not (tmp_path / "data" / "other").exists()


class Always(nn.Module):
    """A 1000-class classifier whose top ImageNet class is always one of the 16-class category's."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, x):
        logits = torch.zeros(len(x), 1000)
        logits[:, self.index] = 10.0
        return logits


def test_a_models_decisions_go_through_the_sixteen_class_mapping_into_the_raw_format(tmp_path):
    trials = list_trials(_stand_in(tmp_path, "low-pass"))
    model = Always(sixteen_class_indices()["oven"][0])
    raw = model_raw_decisions(model, trials, "resnet_topk10", image_size=32, preprocess=lambda p: p.float() / 255, batch_size=3)
    assert list(raw.columns) == RAW_COLUMNS and len(raw) == 8 and set(raw["object_response"]) == {"oven"}
    assert list(raw["trial"]) == list(range(1, 9)) and list(raw["condition"]) == ["0"] * 4 + ["3"] * 4
    assert (raw["object_response"] == raw["category"]).mean() == 0.5


@needs_shared(RAW, "model-vs-human's human raw decisions")
def test_the_shipped_pins_are_the_human_files_of_every_dataset_and_the_fetch_checks_them(tmp_path):
    for dataset in OOD_DATASETS:
        on_disk = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (RAW / dataset).glob("*subject-*.csv")}
        assert human_files(dataset) == on_disk and on_disk, dataset
    assert sum(len(human_files(d)) for d in OOD_DATASETS) == 90
    served = tmp_path / "served"
    shutil.copytree(RAW / "low-pass", served / "low-pass")
    with serving(served, 0) as base:
        paths = fetch_human_raw_data("low-pass", tmp_path / "humans", base_url=base)
        frame = read_raw_data(paths)
        assert len(paths) == len(human_files("low-pass")) and frame["condition"].map(type).eq(str).all()
        tampered = served / "low-pass" / sorted(human_files("low-pass"))[0]
        tampered.write_bytes(tampered.read_bytes() + b"\n")
        with pytest.raises(InputDataError, match="SHA-256"):
            fetch_human_raw_data("low-pass", tmp_path / "again", base_url=base)
    assert not (tmp_path / "again").exists()
    with pytest.raises(InputDataError, match="unknown OOD dataset 'rain'"):
        human_files("rain")


def test_an_atlas_entry_decides_on_a_dataset_with_and_without_topk_in_the_raw_format(tmp_path):
    from topkshape.models.zoo import load_model
    from topkshape.shape_bias.atlas import AtlasEntry
    from topkshape.shape_bias.decisions import sixteen_class_decisions
    from topkshape.shape_bias.evaluate import decode_stimulus

    folder = _stand_in(tmp_path, "low-pass", per=1)
    entry = AtlasEntry(name="sq", model="torchvision:squeezenet1_1", weights="random", seed=0, placement="stages")
    frames = entry_raw_decisions(entry, ["none", "topk10"], folder, batch_size=3)
    assert list(frames) == ["none", "topk10"] and all(len(f) == 4 and list(f.columns) == RAW_COLUMNS for f in frames.values())
    assert set(frames["topk10"]["subj"]) == {"sq-topk10"} and list(frames["none"]["condition"]) == ["0", "0", "3", "3"]
    # The plain setting, computed here by hand: the same model, the toolbox's resize of each 32 px image, softmax, 16 classes.
    loaded = load_model("torchvision:squeezenet1_1", "random", seed=0)
    pixels = torch.stack([decode_stimulus(t.path, 224)[0] for t in list_trials(folder)])
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(loaded.preprocessing(pixels)).float(), dim=1)
    assert list(frames["none"]["object_response"]) == sixteen_class_decisions(probabilities)

"""The shape-bias atlas: config entries, the generated stimuli, one entry's job and the table it feeds."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from topkshape.config import validate_config
from topkshape.data.synthetic import write_sixteen_category_stimuli
from topkshape.errors import ConfigError, InputDataError
from topkshape.report.shape_bias_atlas import write_atlas
from topkshape.shape_bias.analysis import read_raw_csv, shape_bias, texture_category
from topkshape.shape_bias.atlas import AtlasEntry, atlas_entries, run_atlas_entry
from topkshape.shape_bias.decisions import sixteen_class_indices
from topkshape.shape_bias.evaluate import list_cue_conflict_images
from workflow_support import ROOT

SIXTEEN = list(sixteen_class_indices())


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas") / "stimuli"
    write_sixteen_category_stimuli(folder, SIXTEEN, per_category=1, image_size=64, seed=3, progress=False)
    return folder


def test_generated_stimuli_carry_the_16_categories_in_model_vs_humans_names(stimuli):
    items = list_cue_conflict_images(stimuli)
    assert sorted({category for _, category in items}) == sorted(SIXTEEN) and len(items) == 16
    for path, category in items:
        assert texture_category(path.name) in SIXTEEN and texture_category(path.name) != category
        with Image.open(path) as image:
            assert image.size == (64, 64)


def _config(**atlas):
    config = __import__("yaml").safe_load((ROOT / "config.yaml").read_text())
    config["shape_bias"]["atlas"] = [{"name": "net", "model": "torchvision:resnet18", **atlas}]
    return config


def test_atlas_entries_get_their_defaults_and_bad_ones_stop_in_one_line(tmp_path):
    checked = validate_config(_config())
    assert checked["shape_bias"]["atlas"] == [{"name": "net", "model": "torchvision:resnet18", "weights": "random", "seed": 0,
                                               "placement": "stages", "weights_sha256": None}]
    assert atlas_entries(checked["shape_bias"]["atlas"]) == [AtlasEntry("net", "torchvision:resnet18")]
    problems = {
        "file not found": _config(weights=str(tmp_path / "none.pt")),
        "a pin applies to a weights file": _config(weights_sha256="0" * 64),
        "a python: model takes random or a weights file": {**_config(), "shape_bias": {**_config()["shape_bias"], "atlas": [
            {"name": "net", "model": "python:my.mod:build", "weights": "DEFAULT"}]}},
    }
    for words, config in problems.items():
        with pytest.raises(ConfigError, match=words) as error:
            validate_config(config)
        assert "\n" not in str(error.value)
    twice = _config()
    twice["shape_bias"]["atlas"] *= 2
    with pytest.raises(ConfigError, match="'net' is used twice"):
        validate_config(twice)
    pinned = _config(weights="augreg_in21k")
    pinned["shape_bias"]["atlas"][0]["model"] = "timm:vit_tiny_patch16_224"
    pinned["downloads"] = {**pinned.get("downloads", {}), "require_pinned": True}
    with pytest.raises(ConfigError, match="would download from the hub inside the job, unpinned"):
        validate_config(pinned)
    with pytest.raises(ConfigError, match="shape_bias.atlas.0.model"):
        validate_config(_config(model="keras:resnet"))


def test_one_entry_runs_every_setting_records_what_it_ran_and_feeds_the_atlas_table(stimuli, tmp_path):
    torch.manual_seed(5)
    weights = tmp_path / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    entry = AtlasEntry("squeeze", "torchvision:squeezenet1_1", str(weights), placement="features.[25]", weights_sha256=digest)
    tags = ["none", "topk10", "non_topk20"]
    raws = [tmp_path / f"raw_{tag}.csv" for tag in tags]
    record = run_atlas_entry(entry, tags, stimuli, raws, record_output=tmp_path / "squeeze.json", ties_output=tmp_path / "ties.csv",
                             batch_size=8, ties="exact", device="cpu")
    assert [p["module"] for p in record["positions"]] == ["features.2", "features.5"]
    assert record["weights_sha256"] == digest and record["preprocessing"]["input_size"] == 224
    assert json.loads((tmp_path / "squeeze.json").read_text()) == json.loads(json.dumps(record))
    frames = [read_raw_csv(path) for path in raws]
    assert [f["subj"].iloc[0] for f in frames] == ["squeeze-none", "squeeze-topk10", "squeeze-non_topk20"]
    ties = pd.read_csv(tmp_path / "ties.csv")
    assert set(ties["subj"]) == {"squeeze-topk10", "squeeze-non_topk20"} and set(ties["layer"]) == {"features.2_topk", "features.5_topk"}
    out = {"csv": tmp_path / "atlas.csv", "md": tmp_path / "atlas.md", "png": tmp_path / "atlas.png", "pdf": tmp_path / "atlas.pdf"}
    table = write_atlas(raws, [tmp_path / "squeeze.json"], out, title="test", tie_csvs=[tmp_path / "ties.csv"], samples=50)
    assert table["K_percent"].isna().tolist() == [True, False, False]  # the plain row first
    assert table["shape_bias"].tolist()[0] == pytest.approx(shape_bias(frames[0])["shape_bias"], nan_ok=True)
    assert set(table["weights_sha256"]) == {digest} and set(table["placement"]) == {"features.[25]"}
    assert set(table["positions"]) == {"features.2 [spatial]; features.5 [spatial]"}
    assert table["not_above_chance"].all()  # a random network on 16 generated images: no information, and flagged
    text = out["md"].read_text()
    assert "| squeeze | torchvision:squeezenet1_1 | features.[25] | plain |" in text and text.count("†") == 1 + 3  # the legend and each row
    with Image.open(out["png"]) as image:
        assert image.size[0] > 300


def test_atlas_entries_name_what_is_wrong_in_one_line_each():
    assert atlas_entries([{"name": "a", "model": "torchvision:resnet18", "seed": None, "weights_sha256": None}]) == [
        AtlasEntry("a", "torchvision:resnet18", seed=0, weights_sha256=None)]  # a null takes the default, and the pin stays null
    problems = [
        ([{"name": "a", "model": "torchvision:resnet18", "zeta": 1, "alpha": 2}], "shape_bias.atlas[0]: unknown key(s) alpha, zeta"),
        ([{"name": "a", "model": "torchvision:resnet18"}, {"name": "9b", "model": "torchvision:resnet18"}],
         "shape_bias.atlas[1].name '9b': letters, digits and _ only, starting with a letter"),
        ([{"name": "a", "model": "torchvision:resnet18"}, {"name": "a", "model": "torchvision:vgg16"}], "shape_bias.atlas[1].name 'a' is used twice"),
        ([{"name": "a", "model": "torchvision:resnet18", "placement": "  "}], "shape_bias.atlas[0].placement is empty"),
    ]
    for entries, message in problems:
        with pytest.raises(ConfigError) as error:
            atlas_entries(entries)
        assert str(error.value) == message
    with pytest.raises(ConfigError):
        atlas_entries([{"name": "a", "model": "keras:resnet"}])


def test_one_entry_job_passes_its_settings_on_and_records_the_weights_it_read(stimuli, tmp_path, monkeypatch, caplog):
    """The job's own wiring, read at the calls; the sweep itself is tested above and in test_shape_bias_evaluate."""
    import logging

    from topkshape.shape_bias import atlas

    sweeps, threads, loads = [], [], []
    monkeypatch.setattr(atlas, "sweep_settings", lambda *args, **kwargs: sweeps.append((args[3:6], kwargs)))
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    real_load = atlas.load_stimuli
    monkeypatch.setattr(atlas, "load_stimuli", lambda *args, **kwargs: loads.append((args[1:], kwargs)) or real_load(*args, **kwargs))
    torch.manual_seed(5)
    weights = tmp_path / "squeeze.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    # As the workflow runs it: the named torchvision weights, downloaded to a file beforehand.
    entry = AtlasEntry("squeeze", "torchvision:squeezenet1_1", "IMAGENET1K_V1", placement="features.[25]")
    tags, raws = ["none", "topk10"], [tmp_path / "a.csv", tmp_path / "b.csv"]
    with caplog.at_level(logging.INFO, logger="topkshape.shape_bias.atlas"):
        record = run_atlas_entry(entry, tags, stimuli, raws, record_output=tmp_path / "r.json", weights_file=weights)
    assert threads == [1] and loads == [((224,), {"threads": 1, "per_class": None})]
    [(args, options)] = sweeps
    assert args == ("squeeze", tags, raws)
    preprocess = options.pop("preprocess")
    assert options == {"batch_size": 32, "ties": None, "tie_seed": 0, "device": torch.device("cpu"), "ties_output": None}
    assert preprocess.input_size == 224 and preprocess.as_record() == record["preprocessing"]
    assert record["weights"] == f"IMAGENET1K_V1 ({weights})" and record["weights_sha256"] == digest
    assert record["model"] == "torchvision:squeezenet1_1" and record["seed"] == 0 and record["placement"] == "features.[25]"
    assert record["positions"] == [{"module": "features.2", "kind": "spatial", "output": [64, 55, 55]},
                                   {"module": "features.5", "kind": "spatial", "output": [128, 27, 27]}]
    assert record["stimuli"] == 16
    assert record["entry"] == {"name": "squeeze", "model": "torchvision:squeezenet1_1", "weights": "IMAGENET1K_V1", "seed": 0,
                               "placement": "features.[25]", "weights_sha256": None}
    text = (tmp_path / "r.json").read_text()
    assert text.startswith('{\n  "name": "squeeze",\n  "model": ') and text.endswith("}\n") and json.loads(text) == json.loads(json.dumps(record))
    [message] = [m for m in caplog.messages if "Top-K at" in m]
    assert re.fullmatch(
        re.escape(f"squeeze (torchvision:squeezenet1_1, weights IMAGENET1K_V1 ({weights})): Top-K at 2 positions "
                  f"(features.2 [spatial], features.5 [spatial]); 16 stimuli at 224 px fed as {preprocess.source}; loading took ")
        + r"\d+\.\d s", message), message
    assert float(re.search(r"loading took (\d+\.\d) s", message)[1]) < 300  # a duration, not a clock reading
    # Its own options reach the sweep; random weights follow the entry's seed; a pin the file lacks stops the job.
    sweeps.clear()
    seeded = AtlasEntry("squeeze", "torchvision:squeezenet1_1", "random", seed=3, placement="features.[25]")
    record = run_atlas_entry(seeded, tags, stimuli, raws, record_output=tmp_path / "s.json", ties_output=tmp_path / "t.csv", batch_size=4,
                             ties="random", tie_seed=9, threads=2, device="cpu", images_per_class=1)
    assert record["weights"] == "random (seed 3)" and record["seed"] == 3 and record["stimuli"] == 16
    assert sweeps[0][1]["ties"] == "random" and sweeps[0][1]["tie_seed"] == 9 and sweeps[0][1]["batch_size"] == 4
    assert sweeps[0][1]["ties_output"] == tmp_path / "t.csv" and threads[-1] == 2 and loads[-1] == ((224,), {"threads": 2, "per_class": 1})
    with pytest.raises(InputDataError, match="not the pinned 0000"):
        run_atlas_entry(AtlasEntry("squeeze", "torchvision:squeezenet1_1", str(weights), weights_sha256="0" * 64), tags, stimuli, raws,
                        record_output=tmp_path / "u.json")
    with pytest.raises(ValueError, match=r"^2 tags but 1 output files$"):
        run_atlas_entry(entry, tags, stimuli, raws[:1], record_output=tmp_path / "v.json")


def test_an_entry_placed_paper_gets_the_papers_positions_for_its_architecture():
    from topkshape.shape_bias.atlas import load_entry
    from topkshape.shape_bias.evaluate import paper_topk_positions

    _, positions = load_entry(AtlasEntry("alex", "torchvision:alexnet", placement="paper"))
    assert [p.name for p in positions] == list(paper_topk_positions("alexnet"))

"""The data stage of the Snakemake DAG, run for real in a temporary copy of the workflow."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image
from workflow_support import (
    ROOT,
    copy_workflow,
    make_fake_imagenet,
    snakemake,
    write_config,
)

from topkshape.stylize import save_random_adain_weights
from conftest import needs_shared

SHARED_PAPER_DATA = ROOT.parent / "shared" / "paper-data"
needs_paper_data = needs_shared(SHARED_PAPER_DATA, "../shared/paper-data")

pytestmark = pytest.mark.slow

SMALL_DEFAULT = dict(
    data__synthetic__train_per_class=4,
    data__synthetic__val_per_class=2,
    data__synthetic__image_size=32,
    data__fewshot_images=3,
    gan__eval__kid_subset_size=2,
    stylize__per_class=2,
    train__image_size=32,
    texture__image_size=32,
)


def test_default_data_targets_build_offline_and_a_second_run_does_nothing(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "small.yaml", **SMALL_DEFAULT)
    run = snakemake(work, "data", "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    data = work / "data" / "default"
    for subset, classes in yaml.safe_load((ROOT / "config.yaml").read_text())["data"]["subsets"].items():
        assert sorted(p.name for p in (data / subset / "train").iterdir()) == sorted(classes)
        assert len(list((data / subset / "val").rglob("*.png"))) == 2 * len(classes)
        styles = pd.read_csv(data / f"{subset}-stylized" / "styles.csv")
        assert len(styles) == 2 * len(classes) and (styles.label != styles.texture_label).all()
    assert len(list((data / "fewshot" / "hexagon" / "train" / "hexagon").glob("*.png"))) == 3
    assert (work / "logs" / "default" / "data" / "subset_S1.log").is_file()
    again = snakemake(work, "data", "--cores", "2", "--configfile", str(config))
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


PAPER_WNIDS = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["data"]


def _fake_tree(tmp_path):
    wnids = [w for ws in PAPER_WNIDS["subsets"].values() for w in ws] + list(PAPER_WNIDS["fewshot"].values())
    return make_fake_imagenet(tmp_path / "imagenet", wnids, train_per_class=3, val_per_class=1)


def planned_jobs(stdout: str) -> dict[str, int]:
    """Rule name -> job count from the job-stats table of a dry run."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.MULTILINE) if m.group(1) != "total"}


def paper_repository_tree(root: Path) -> Path:
    """../shared/paper-data under the paper repository's paths: a local mirror for paper_data.base_url."""
    for there, here in {
        "cnns-train-top-k/style_target": "style_target",
        "few-shot-img-syn/data": "fewshot",
        "cnns-inference-top-k/model-vs-human_topK/datasets/cue-conflict": "cue-conflict",
    }.items():
        (root / there).parent.mkdir(parents=True, exist_ok=True)
        (root / there).symlink_to(SHARED_PAPER_DATA / here, target_is_directory=True)
    return root


def test_paper_config_plans_the_data_stages_from_the_published_files(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    # The AdaIN weights pinned (the shipped config stops until they are: tests/test_plan_checks.py).
    pinned = write_config(work / "pinned.yaml", base="config/paper.yaml", imagenet_root=str(root),
                          stylize__adain__encoder_sha256="a" * 64, stylize__adain__decoder_sha256="b" * 64)
    plan = snakemake(work, "data", "-n", "--cores", "8", "--configfile", str(pinned))
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = planned_jobs(plan.stdout)
    # Styles and the four few-shot sets come from the paper's repository; no generated styles.
    expected = {"subset": 2, "stylized": 2, "fewshot": 4, "adain_weights": 1, "paper_data": 5, "data": 1}
    assert counts == expected, counts
    for part in ("styles", "fewshot-jeep", "fewshot-fish", "fewshot-railway", "fewshot-table"):
        assert f"resources/paper-data/{part}" in plan.stdout


@needs_paper_data
def test_paper_data_stages_run_on_a_fake_imagenet_and_the_published_files(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    encoder, decoder = save_random_adain_weights(tmp_path / "w" / "enc.pth", tmp_path / "w" / "dec.pth")
    config = write_config(
        work / "paper_test.yaml",
        base="config/paper.yaml",
        imagenet_root=str(root),
        data__imagenet__resize_short_side=32,
        stylize__image_size=32,
        stylize__style_size=40,
        stylize__adain__encoder_path=str(encoder),
        stylize__adain__decoder_path=str(decoder),
        paper_data__base_url=str(paper_repository_tree(tmp_path / "mirror")),
    )
    run = snakemake(work, "data", "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    data = work / "data" / "paper"
    for subset, wnids in PAPER_WNIDS["subsets"].items():
        manifest = pd.read_csv(data / subset / "manifest.csv")
        assert set(manifest.wnid) == set(wnids) and (manifest.status == "ok").all()
        assert len(manifest[manifest.split == "train"]) == 3 * len(wnids)
        styles = pd.read_csv(data / f"{subset}-stylized" / "styles.csv", keep_default_na=False)
        assert len(styles) == len(wnids) and set(styles.label) == set(wnids)
        assert set(styles["style"]) <= {p.name for p in (SHARED_PAPER_DATA / "style_target").iterdir()}
        first = Image.open(data / f"{subset}-stylized" / styles.image[0])
        assert min(first.size) == 32
        record = json.loads((data / f"{subset}-stylized" / "manifest.json").read_text())
        assert record["settings"]["style_size"] == 40 and len(record["files"]) == len(wnids)
    # The paper's few-shot sets, whole and byte for byte ("train" is its railway set of COCO images).
    for name, paper_set in {"jeep": "jeep", "fish": "fish", "train": "railway", "table": "table"}.items():
        copied = sorted((data / "fewshot" / name / "train" / paper_set).iterdir())
        published = sorted((SHARED_PAPER_DATA / "fewshot" / paper_set).iterdir())
        assert [p.name for p in copied] == [p.name for p in published]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(copied, published))
        assert json.loads((data / "fewshot" / name / "manifest.json").read_text())["folder"].endswith(paper_set)
    assert len(list((data / "fewshot" / "train").rglob("*.jpg"))) == 105
    assert not (work / "resources" / "adain").exists()  # weights came from the config, nothing downloaded


def test_corrupt_jpeg_in_stop_mode_fails_the_job_naming_the_file_and_leaves_no_subset(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    wnid = PAPER_WNIDS["subsets"]["S1"][0]
    bad = root / "train" / wnid / f"{wnid}_0.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    config = write_config(
        work / "stop.yaml", base="config/paper.yaml", imagenet_root=str(root), data__imagenet__on_corrupt="stop",
        data__imagenet__resize_short_side=32,
    )
    run = snakemake(work, "data/paper/S1", "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    assert f"topkshape error: corrupt image {bad}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (work / "data" / "paper" / "S1").exists()


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"train__topk_fraction": 1.5}, "config key 'train.topk_fraction': 1.5 is greater than the maximum of 1"),
        ({"train__topk_fraction": 0}, "config key 'train.topk_fraction': 0 is less than or equal to the minimum of 0"),
        ({"train__topk_fraction": "abc"}, "config key 'train.topk_fraction': 'abc' is not of type 'number'"),
        ({"train__arch": "resnet19"}, "config key 'train.arch': 'resnet19' is not one of"),
        ({"train__epochs": -1}, "config key 'train.epochs': -1 is less than the minimum of 1"),
        ({"train__seeds": []}, "config key 'train.seeds': [] should be non-empty"),
        ({"train__epoch": 5}, "config key 'train': Additional properties are not allowed ('epoch' was unexpected)"),
        ({"data__subsets__S2": ["disk", "star"]}, "config key 'data.subsets.S2': class 'disk' is also in data.subsets.S1"),
        ({"data__source": "imagenet"}, "config key 'imagenet_root': required when data.source is imagenet"),
    ],
)
def test_bad_config_value_stops_before_any_job_with_one_line(tmp_path, changes, message):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "bad.yaml", **changes)
    run = snakemake(work, "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("topkshape:")]
    assert len(lines) == 1 and message in lines[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not (work / "data").exists() and not (work / "results").exists()


def test_command_line_override_is_checked_after_merging(tmp_path):
    # Snakemake passes --config values as strings: a list given there is caught, not used.
    work = copy_workflow(tmp_path / "wf")
    run = snakemake(work, "-n", "--config", "train={'seeds': '[-1]'}")
    assert run.returncode != 0
    assert "topkshape: config key 'train.seeds': '[-1]' is not of type 'array'" in run.stderr


def test_missing_imagenet_folder_is_named(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    missing = tmp_path / "nowhere"
    run = snakemake(work, "-n", "--configfile", "config/paper.yaml", "--config", f"imagenet_root={missing}")
    assert run.returncode != 0
    assert f"topkshape: config key 'imagenet_root': ImageNet folder not found: {missing}" in run.stderr


@pytest.fixture
def weight_server(tmp_path):
    """Random AdaIN weights served over HTTP on 127.0.0.1 (stands in for the release files)."""
    from topkshape.download import sha256_of
    from topkshape.smoke.server import serving

    folder = tmp_path / "served"
    encoder, decoder = save_random_adain_weights(folder / "vgg_normalised.pth", folder / "decoder.pth")
    with serving(folder, 0) as base:
        yield {"encoder_url": f"{base}/vgg_normalised.pth", "decoder_url": f"{base}/decoder.pth",
               "encoder_sha256": sha256_of(encoder), "decoder_sha256": sha256_of(decoder)}


def _adain_config(work, root, adain):
    return write_config(work / "dl.yaml", base="config/paper.yaml", imagenet_root=str(root),
                        **{f"stylize__adain__{k}": v for k, v in adain.items()})


def test_adain_weights_rule_downloads_and_verifies_the_pinned_sha256(tmp_path, weight_server):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    config = _adain_config(work, root, weight_server)
    run = snakemake(work, "resources/adain/vgg_normalised.pth", "--cores", "1", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    from topkshape.stylize import AdaINStylizer

    AdaINStylizer.from_files(work / "resources/adain/vgg_normalised.pth", work / "resources/adain/decoder.pth")


def test_require_pinned_refuses_the_unpinned_adain_weights_in_one_line(tmp_path, weight_server):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    unpinned = {**weight_server, "encoder_sha256": None, "decoder_sha256": None}
    config = _adain_config(work, root, unpinned)  # the paper config: downloads.require_pinned true
    run = snakemake(work, "resources/adain/decoder.pth", "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    # Refused when the job is planned, before any job runs (snakemake -n too): one line naming the key.
    assert run.stderr.strip().splitlines()[-1].startswith(
        "topkshape: config key 'stylize.adain.encoder_sha256': downloads.require_pinned refuses the unpinned download")
    assert "Traceback" not in run.stderr
    assert not (work / "resources/adain/vgg_normalised.pth").exists()
    # Switched off, the same download goes through and is logged with its actual hash.
    config = write_config(work / "off.yaml", base=str(config), downloads__require_pinned=False)
    run = snakemake(work, "resources/adain/decoder.pth", "--cores", "1", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    assert weight_server["decoder_sha256"] in (work / "logs" / "adain_weights.log").read_text()


def test_adain_weights_with_the_wrong_sha256_fail_naming_the_file_and_keep_nothing(tmp_path, weight_server):
    work = copy_workflow(tmp_path / "wf")
    root = _fake_tree(tmp_path)
    config = _adain_config(work, root, {**weight_server, "decoder_sha256": "0" * 64})
    run = snakemake(work, "resources/adain/decoder.pth", "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    assert "decoder.pth: SHA-256 is" in run.stderr and "expected " + "0" * 64 in run.stderr
    assert not (work / "resources/adain/decoder.pth").exists()


def test_editing_a_data_value_reruns_exactly_the_jobs_that_use_it(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "small.yaml", **SMALL_DEFAULT)
    run = snakemake(work, "data", "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]

    def plan_after(**changes):
        edited = write_config(work / "edited.yaml", base=str(config), **changes)
        plan = snakemake(work, "data", "-n", "--cores", "2", "--configfile", str(edited))
        assert plan.returncode == 0, plan.stderr[-3000:]
        return planned_jobs(plan.stdout)

    # The subsets' texture shortcut: both subsets, and the stylized sets built from them.
    assert plan_after(data__synthetic__texture_correlation=0.5) == {"subset": 2, "stylized": 2, "data": 1}
    # The cue-conflict sets only.
    assert plan_after(stylize__per_class=3) == {"stylized": 2, "data": 1}
    # The few-shot set only.
    assert plan_after(data__fewshot_images=4) == {"fewshot": 1, "data": 1}
    # One subset's class list: that subset and its stylized set.
    assert plan_after(data__subsets__S2=["star", "ellipse", "diamond", "crescent", "hexagon"]) == {"subset": 1, "stylized": 1, "data": 1}
    # A value no data job uses.
    assert plan_after(train__epochs=7) == {}


@needs_paper_data
def test_paper_data_rule_fails_in_one_line_on_a_tampered_file_and_keeps_nothing(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    mirror = tmp_path / "mirror" / "cnns-train-top-k" / "style_target"
    mirror.parent.mkdir(parents=True)
    shutil.copytree(SHARED_PAPER_DATA / "style_target", mirror)
    (mirror / "mondrian.jpg").write_bytes(b"not the published image")
    config = write_config(work / "tampered.yaml", base="config/paper.yaml", imagenet_root=str(_fake_tree(tmp_path)),
                          paper_data__base_url=(tmp_path / "mirror").as_uri())
    run = snakemake(work, "resources/paper-data/styles", "--cores", "1", "--configfile", str(config))
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("topkshape error:")]
    assert len(lines) == 1 and "mondrian.jpg" in lines[0] and "SHA-256" in lines[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not (work / "resources" / "paper-data" / "styles").exists()
    assert [p for p in (work / "resources").rglob("*") if not p.is_dir()] == []  # no partial file or temporary

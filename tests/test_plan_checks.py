"""What would fail hours into a run fails at `snakemake -n`, in one line: unpinned downloads the
paper config refuses, set-resources/set-threads entries naming no rule, empty SLURM partitions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from topkshape.config import unpinned_downloads, validate_config
from topkshape.plan_checks import resource_problems
from topkshape.pretrained import name_prefix, torchvision_file, workflow_weight_files
from topkshape.robustness.ood_datasets import OOD_DATASETS
from workflow_support import ROOT, copy_workflow, snakemake, write_config

PAPER = {**yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), "imagenet_root": "/data/ILSVRC2012"}
PINS = {"encoder_sha256": "a" * 64, "decoder_sha256": "b" * 64}
RULES = ("train", "gan_train", "table1", "all")


def test_a_set_resources_entry_that_names_no_rule_is_named_with_the_closest_rule():
    (problem,) = resource_problems(RULES, {"trian": {"runtime": 300}}, {})
    assert problem == "--set-resources (or the profile's set-resources:) names no rule of this workflow: 'trian' (did you mean 'train'?)"
    (problem,) = resource_problems(RULES, {}, {"gan_trian": 4})
    assert "--set-threads" in problem and "'gan_trian'" in problem and "gan_train" in problem
    assert list(resource_problems(RULES, {"train": {"runtime": 300}}, {"gan_train": 2}, ["mem_mb=8000"])) == []


@pytest.mark.parametrize("value", ["", "None", "''"])
def test_an_empty_slurm_partition_or_account_is_refused(value):
    assert ["--set-resources train:slurm_partition is empty" in p for p in resource_problems(RULES, {"train": {"slurm_partition": value}}, {})] == [True]
    (problem,) = resource_problems(RULES, {}, {}, [f"slurm_account={value}", "runtime=30"])
    assert problem.startswith("--default-resources slurm_account is empty")
    assert list(resource_problems(RULES, {"train": {"slurm_partition": "gpu"}}, {}, ["slurm_account=lab"])) == []


OOD_PINS = {name: "c" * 64 for name in OOD_DATASETS}


def test_the_shipped_paper_config_refuses_only_the_unpinned_adain_weights_and_ood_archives():
    checked = validate_config(PAPER, check_paths=False)
    ood_keys = {f"robustness.ood.sha256.{name}" for name in OOD_DATASETS}
    assert set(unpinned_downloads(checked)) == {"stylize.adain.encoder_sha256", "stylize.adain.decoder_sha256"} | ood_keys
    assert "releases/download/v0.1/colour.tar.gz" in unpinned_downloads(checked)["robustness.ood.sha256.colour"]
    adain_pinned = validate_config({**PAPER, "stylize": {**PAPER["stylize"], "adain": PINS}}, check_paths=False)
    assert set(unpinned_downloads(adain_pinned)) == ood_keys
    ood = {**PAPER["robustness"]["ood"], "sha256": OOD_PINS}
    pinned = validate_config({**PAPER, "stylize": {**PAPER["stylize"], "adain": PINS}, "robustness": {**PAPER["robustness"], "ood": ood}},
                             check_paths=False)
    assert unpinned_downloads(pinned) == {}
    assert unpinned_downloads(validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))) == {}


def test_the_paper_config_downloads_five_pretrained_files_each_pinned_by_its_name():
    files = workflow_weight_files(validate_config(PAPER, check_paths=False))
    assert files == {"shape_bias:alexnet": "alexnet-owt-7be5be79.pth", "shape_bias:vgg16": "vgg16-397923af.pth",
                     "atlas:resnet50_stages": "resnet50-11ad3fa6.pth", "texture": "vgg19-dcbb9e9d.pth",
                     "lpips": "vgg16-397923af.pth", "inception": "weights-inception-2015-12-05-6726825d.pth"}
    assert [name_prefix(f) for f in sorted(set(files.values()))] == ["7be5be79", "11ad3fa6", "397923af", "dcbb9e9d", "6726825d"]
    assert torchvision_file("vgg16", "IMAGENET1K_V1") == "vgg16-397923af.pth"
    assert workflow_weight_files(validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))) == {}


@pytest.mark.slow
def test_snakemake_n_stops_in_one_line_on_the_shipped_paper_config_and_plans_once_pinned(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    root = f"imagenet_root={tmp_path / 'imagenet'}"
    stopped = snakemake(work, "all", "-n", "--cores", "2", "--configfile", "config/paper.yaml", "--config", root)
    assert stopped.returncode == 1
    last = (stopped.stdout + stopped.stderr).strip().splitlines()[-1]
    assert last.startswith("topkshape: config key 'stylize.adain.encoder_sha256': downloads.require_pinned refuses the unpinned download https://")
    assert "Traceback" not in stopped.stderr
    # A target that needs no AdaIN weights plans.
    assert snakemake(work, "shape_bias_report", "-n", "--cores", "2", "--configfile", "config/paper.yaml", "--config", root).returncode == 0
    adain = dict(imagenet_root=str(tmp_path / "imagenet"), stylize__adain__encoder_sha256=PINS["encoder_sha256"],
                 stylize__adain__decoder_sha256=PINS["decoder_sha256"])
    # With the AdaIN weights pinned, the OOD archives (no published hashes either) stop the plan in one line.
    stopped = snakemake(work, "all", "-n", "--cores", "2", "--configfile", str(write_config(work / "adain.yaml", base="config/paper.yaml", **adain)))
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert (stopped.stdout + stopped.stderr).strip().splitlines()[-1].startswith(
        "topkshape: config key 'robustness.ood.sha256.colour': downloads.require_pinned refuses the unpinned download https://")
    pinned = write_config(work / "pinned.yaml", base="config/paper.yaml", robustness__ood__sha256=OOD_PINS, **adain)
    plan = snakemake(work, "all", "-n", "--cores", "2", "--configfile", str(pinned))
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert re.search(r"^pretrained_weights\s+5$", plan.stdout, re.MULTILINE), plan.stdout[-2000:]


@pytest.mark.slow
def test_snakemake_n_stops_on_a_misspelled_set_resources_rule_and_an_empty_partition(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    typo = snakemake(work, "all", "-n", "--cores", "2", "--set-resources", "trian:runtime=300")
    assert typo.returncode == 1
    assert (typo.stdout + typo.stderr).strip().splitlines()[-1] == (
        "topkshape: --set-resources (or the profile's set-resources:) names no rule of this workflow: 'trian' (did you mean 'train'?)")
    empty = snakemake(work, "all", "-n", "--cores", "2", "--default-resources", "slurm_partition=")
    assert empty.returncode == 1 and "slurm_partition is empty" in (empty.stdout + empty.stderr).strip().splitlines()[-1]


@pytest.mark.slow
def test_every_rule_the_shipped_slurm_profile_sizes_exists_and_its_gan_sizes_follow_the_paper_config(tmp_path):
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    work = copy_workflow(tmp_path / "wf")
    rules = set(snakemake(work, "--list-rules").stdout.split())
    assert set(profile["set-resources"]) <= rules
    paper = validate_config(PAPER, check_paths=False)["gan"]
    text = (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    # The comments derive each runtime from the paper config's counts: they must be the current ones.
    assert f"{paper['iterations']:,} iterations" in text
    assert f"{paper['iterations'] // paper['eval']['snapshot_every']} snapshots" in text
    assert profile["set-resources"]["gan_train"]["runtime"] >= 360 and profile["set-resources"]["gan_eval"]["runtime"] >= 240


@pytest.mark.parametrize("key, value", [
    ("shape_bias.weights", "/nowhere/alexnet.pth"),
    ("texture.weights", "weights/vgg19.pth"),
    ("gan.eval.feature_extractor_weights_path", "/nowhere/inception.pth"),
])
def test_a_local_weights_file_that_is_not_there_stops_before_any_job(tmp_path, key, value):
    from topkshape.errors import ConfigError

    (tmp_path / "train").mkdir()
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config["imagenet_root"] = str(tmp_path)
    section, *rest = key.split(".")
    node = config[section]
    for part in rest[:-1]:
        node = node[part]
    node[rest[-1]] = value
    with pytest.raises(ConfigError, match=f"config key '{key}': file not found: {value}"):
        validate_config(config)
    validate_config({**config, "paper_data": {"base_url": str(tmp_path)}}, check_paths=False)
    config[section] = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())[section]
    with pytest.raises(ConfigError, match="config key 'paper_data.base_url': neither a URL nor an existing folder"):
        validate_config({**config, "paper_data": {"base_url": str(tmp_path / "mirror")}})


def test_planning_the_embedded_default_imports_neither_torch_nor_scipy(tmp_path):
    """Every `snakemake` call parses the Snakefile: the default's plan once paid ~4 s of imports (torch,
    torchvision, SciPy) for nothing it used. A module the rules import at parse time must stay light."""
    work = copy_workflow(tmp_path / "wf")
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "all", "--cores", "2"], cwd=work,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "topkshape.config" in imported and "topkshape.robustness.ood_datasets" in imported  # the rules' modules were seen
    assert not imported & {"torch", "torchvision", "scipy"}, sorted(imported & {"torch", "torchvision", "scipy"})

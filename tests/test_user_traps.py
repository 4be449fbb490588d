"""Traps a new user fell into (issue #30), each now answered in one line or made to work.

1. ``--resources gpu=2 all``: Snakemake reads the target as a resource (a traceback before the
   Snakefile); the launcher moves it before the options.
2. ``--config imagenet_root=...`` without ``--configfile config/paper.yaml``: stops, not a toy run.
3. ``--configfile`` with a file of overrides only: says to layer it after a full config.
4. ``~`` in the config's user paths is the home folder.
5. A value against a schema pattern is answered with the forms the key takes, not a regex.
6. ``python -m topkshape --help`` describes the launcher.
7. Table 1 sets the paper's values beside a run only where they are comparable.
8. LICENSE and CITATION.cff.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import topkshape
from topkshape.config import USER_PATH_KEYS, load_schema, readable_pattern, snakemake_args, validate_config
from topkshape.errors import ConfigError
from topkshape.report import table1
from workflow_support import ROOT, copy_workflow, snakemake

DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
PAPER_REFERENCE = ROOT / "config" / "paper_reference.yaml"


def _launch(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "topkshape", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def _error(config: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("traps") / "w")


# --- 1. a target after --resources ---------------------------------------------------------------


@pytest.mark.slow
def test_snakemake_itself_reads_a_target_after_resources_as_a_resource(work):
    """The cause: `--resources` takes every word after it, and fails on `all` in its argument parsing."""
    run = snakemake(work, "--cores", "1", "--resources", "gpu=2", "environment", "-n")
    assert run.returncode == 1 and "dictionary update sequence element #1 has length 1" in run.stderr


def test_the_launcher_moves_targets_written_after_assignment_options_before_them():
    assert snakemake_args(["--cores", "8", "--resources", "gpu=2", "all"]) == ["all", "--cores", "8", "--resources", "gpu=2"]
    assert snakemake_args(["--resources", "gpu=2", "all", "data", "-n"]) == ["all", "data", "--resources", "gpu=2", "-n"]
    assert snakemake_args(["--config", "train.epochs=3", "all"]) == ["all", "--config", "train={epochs: 3}"]
    # Values of other options stay where they are; an inline value is the option's only one.
    assert snakemake_args(["--set-threads", "train=2", "table1", "--cores", "1"]) == ["table1", "--set-threads", "train=2", "--cores", "1"]
    assert snakemake_args(["--resources=gpu=2", "all"]) == ["--resources=gpu=2", "all"]


def test_an_assignment_option_without_a_name_value_word_is_one_line():
    with pytest.raises(ConfigError, match=r"^--resources all: expected NAME=VALUE \(e\.g\. --resources gpu=2\)"):
        snakemake_args(["--resources", "all"])
    with pytest.raises(ConfigError, match="--configfile reads every word after it as a file: write targets before it"):
        snakemake_args(["--configfile", "config.yaml", "all"])


@pytest.mark.slow
def test_the_mission_command_through_the_launcher_plans(work):
    run = _launch(work, "--cores", "8", "--resources", "gpu=2", "environment", "-n")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "environment" in run.stdout
    assert run.stderr.splitlines()[0] == ("topkshape: moved the target(s) environment before the options (snakemake would read "
                                          "them as values of the option before them)")


# --- 2. imagenet_root with the embedded (synthetic) default --------------------------------------


def test_imagenet_root_with_the_synthetic_default_stops_naming_the_paper_config(tmp_path):
    (tmp_path / "train").mkdir()
    message = _error({**DEFAULT, "imagenet_root": str(tmp_path)})
    assert message == ("config key 'imagenet_root': it is set, but data.source is synthetic (the embedded default ignores it); "
                       "add --configfile config/paper.yaml (or set data.source: imagenet)")
    validate_config({**PAPER, "imagenet_root": str(tmp_path)}, check_paths=False)  # the paper config takes it


@pytest.mark.slow
def test_snakemake_with_imagenet_root_but_no_paper_config_stops_in_one_line(work, tmp_path):
    run = snakemake(work, "environment", "-n", "--cores", "1", "--config", f"imagenet_root={tmp_path}")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("topkshape: config key 'imagenet_root': it is set, but data.source is synthetic")


# --- 3. a file of overrides given alone ----------------------------------------------------------

OVERRIDES_ALONE = ("the config has no 'experiment' key; a file of overrides must be layered after a full config, "
                   "e.g. --configfile config.yaml my.yaml")


def test_a_config_of_overrides_only_says_how_to_layer_it():
    assert _error({"train": {"epochs": 3}}) == OVERRIDES_ALONE


@pytest.mark.slow
def test_an_overrides_file_alone_is_layered_over_the_default_and_says_so(work):
    (work / "my.yaml").write_text("train: {epochs: 3}\n")
    run = snakemake(work, "table1", "-n", "--cores", "1", "--configfile", "my.yaml", "-p")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "topkshape: my.yaml name no experiment: layered over config.yaml" in run.stderr
    layered = snakemake(work, "table1", "-n", "--cores", "1", "--configfile", "config.yaml", "my.yaml")
    assert layered.returncode == 0, layered.stderr[-2000:]
    # The same plan as the explicit layering: the default's jobs, with the override's value in their params.
    assert run.stdout.count("rule train:") == layered.stdout.count("rule train:") > 0
    (work / "my.yaml").write_text("train: {epochs: 0}\n")
    bad = snakemake(work, "table1", "-n", "--cores", "1", "--configfile", "my.yaml")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("topkshape: config key 'train.epochs'")


# --- 4. '~' in user paths ------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_tilde_in_imagenet_root_is_the_home_folder_for_every_consumer(home):
    (home / "ILSVRC2012" / "train").mkdir(parents=True)
    checked = validate_config({**PAPER, "imagenet_root": "~/ILSVRC2012"})  # its train/ folder is found
    assert checked["imagenet_root"] == str(home / "ILSVRC2012")
    message = _error({**PAPER, "imagenet_root": "~/nowhere"})
    assert message.endswith(f"ImageNet folder not found: {home / 'nowhere'}")


def test_tilde_is_expanded_in_files_folders_and_atlas_weights_and_left_alone_elsewhere(home):
    for name in ("enc.pth", "dec.pth", "w.pt"):
        (home / name).write_bytes(b"")
    (home / "stimuli").mkdir()
    config = copy.deepcopy(DEFAULT)
    config["stylize"]["adain"] = {"encoder_path": "~/enc.pth", "decoder_path": "~/dec.pth"}
    config["shape_bias"]["cue_conflict"] = {"source": "folder", "path": "~/stimuli"}
    config["shape_bias"]["atlas"] = [{"name": "mine", "model": "torchvision:alexnet", "weights": "~/w.pt"}]
    checked = validate_config(config)
    assert checked["stylize"]["adain"]["encoder_path"] == str(home / "enc.pth")
    assert checked["stylize"]["adain"]["decoder_path"] == str(home / "dec.pth")
    assert checked["shape_bias"]["cue_conflict"]["path"] == str(home / "stimuli")
    assert checked["shape_bias"]["atlas"][0]["weights"] == str(home / "w.pt")
    assert checked["texture"]["weights"] == validate_config(DEFAULT)["texture"]["weights"]  # a weights name: unchanged
    assert checked["experiment"] == DEFAULT["experiment"]


def test_every_user_path_key_is_a_key_of_the_schema():
    schema = load_schema()
    for key in USER_PATH_KEYS:
        node = schema
        for part in key.split("."):
            node = node["properties"][part]
        assert "string" in ([node["type"]] if isinstance(node.get("type"), str) else node.get("type", [])), key


# --- 5. pattern errors in words ------------------------------------------------------------------


def test_a_bad_shape_bias_model_names_the_allowed_forms_not_a_regex():
    config = copy.deepcopy(DEFAULT)
    config["shape_bias"]["models"] = ["vgg19"]
    message = _error(config, check_paths=False)
    assert message.startswith("config key 'shape_bias.models.0': 'vgg19' must look like alexnet, vgg16, resnet18 or trained_<subset>; ")
    assert "^" not in message and "[A-Za-z" not in message


def test_the_named_model_forms_are_the_ones_the_schema_and_the_code_accept():
    from topkshape.shape_bias.tags import TRAINED_PREFIX

    pattern = load_schema()["properties"]["shape_bias"]["properties"]["models"]["items"]["pattern"]
    forms = readable_pattern(pattern).replace(" or ", ", ").split(", ")
    assert f"{TRAINED_PREFIX}<subset>" in forms
    for form in forms:
        config = copy.deepcopy(DEFAULT)
        config["shape_bias"]["models"] = [form.replace("<subset>", next(iter(DEFAULT["data"]["subsets"])))]
        checked = validate_config(config, check_paths=False)  # each named form passes the schema
        assert checked["shape_bias"]["models"] == config["shape_bias"]["models"]


def test_other_pattern_keys_say_their_form_or_their_description():
    config = copy.deepcopy(DEFAULT)
    config["stylize"]["adain"] = {"encoder_sha256": "abc"}
    # The form in words, then the key's description when the schema has one.
    assert _error(config, check_paths=False).startswith("config key 'stylize.adain.encoder_sha256': 'abc' must look like <64 lowercase hex digits>")
    config = copy.deepcopy(DEFAULT)
    config["shape_bias"]["atlas"] = [{"name": "x", "model": "alexnet"}]
    assert _error(config, check_paths=False) == (
        "config key 'shape_bias.atlas.0.model': 'alexnet' must look like torchvision:<name>, timm:<name> or python:<module>:<function>")


def _patterns(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        if "pattern" in node:
            yield path, node
        for key, value in node.items():
            yield from _patterns(value, (*path, key))


def test_no_pattern_of_the_schema_is_left_to_be_said_as_a_regex():
    schema = load_schema()
    for path, node in _patterns(schema):
        parent = schema
        for step in path[:-1]:
            parent = parent[step]
        said = node.get("pattern_message") or readable_pattern(node["pattern"]) or node.get("description")
        said = said or (parent.get("description") if path[-1] in ("items", "additionalProperties") else None)
        assert said, f"{'.'.join(map(str, path))}: pattern {node['pattern']} has no words"


# --- 6. the launcher's own help ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_launcher_help_describes_the_launcher_and_points_to_snakemake_help(flag):
    run = subprocess.run([sys.executable, "-m", "topkshape", flag], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.startswith("usage: python -m topkshape ")
    for words in ("--config train.epochs=3", "--configfile", "--resources gpu=2 all", "Snakemake's own options: snakemake --help"):
        assert words in run.stdout


# --- 7. the paper's values only beside a comparable run -----------------------------------------


def _runs(root: Path, classes: dict[str, list[str]]) -> list[Path]:
    """Two seeds of the baseline per subset, 80% / 84% clean, 10% / 14% stylized, on ``classes``."""
    paths = []
    for subset, names in classes.items():
        for seed, (clean, stylized) in enumerate([(0.80, 0.10), (0.84, 0.14)]):
            path = root / subset / "baseline" / f"seed{seed}" / "summary.json"
            path.parent.mkdir(parents=True)
            result = {"clean_acc": clean, "stylized_acc": stylized}
            path.write_text(json.dumps({"settings": {"seed": seed}, "classes": names, "final_epoch": result,
                                        "best_epoch": result, "mean_images_per_s": 1.0}))
            paths.append(path)
    return paths


def _table(tmp_path: Path, classes: dict[str, list[str]]) -> tuple[Any, str]:
    out = {k: tmp_path / f"table1.{k}" for k in ("csv", "md", "tex", "json")}
    table = table1.write_table1(_runs(tmp_path / "runs", classes), PAPER_REFERENCE, out, "T")
    return table, out["md"].read_text()


def test_the_synthetic_default_gets_no_paper_values_and_says_why(tmp_path):
    table, md = _table(tmp_path, DEFAULT["data"]["subsets"])
    assert table["paper_mean"].isna().all() and table["difference"].isna().all()
    assert "(paper)" not in md and "Δ |" not in md.split("## Welch")[0]
    main = md.split("## Paper code's protocol")[0]
    assert main.rstrip().splitlines()[-1] == (
        f"The paper's values (Li et al. 2023) are ImageNet's IN-S1/IN-S2 and not comparable with this run's "
        f"{', '.join(sorted(DEFAULT['data']['subsets']))} (another data source or other classes): no paper column, no Δ.")


def test_an_imagenet_run_on_the_paper_classes_gets_the_paper_values_and_others_do_not(tmp_path):
    paper = PAPER["data"]["subsets"]
    other = {"S1": paper["S1"], "S2": [*paper["S2"][:-1], "n01440764"]}  # S2 with one other class
    table, md = _table(tmp_path, other)
    s1 = table[(table.subset == "S1") & (table.metric == "clean")].iloc[0]
    assert s1.paper_mean == 87.8 and s1.difference == pytest.approx(82.0 - 87.8)
    assert table[table.subset == "S2"]["paper_mean"].isna().all()
    assert "| S1 clean | S1 clean (paper) | Δ |" in md and "| ResNet-18 | 82.0 ± 2.8 | 87.8 ± 0.5 | -5.8 |" in md
    assert "not comparable with this run's S2 (another data source or other classes)" in md


# --- 8. license and citation ---------------------------------------------------------------------


def test_license_is_mit_as_pyproject_says():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the topkshape authors" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}


def test_citation_cites_this_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["version"] == topkshape.__version__
    paper = cff["preferred-citation"]
    assert paper in cff["references"]
    assert paper["title"] == "Emergence of Shape Bias in Convolutional Neural Networks through Activation Sparsity"
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [
        ("Tianqin", "Li"), ("Ziqi", "Wen"), ("Yangfan", "Li"), ("Tai Sing", "Lee")]
    assert (paper["type"], paper["year"], paper["volume"]) == ("conference-paper", 2023, 36)
    assert paper["collection-title"] == "Advances in Neural Information Processing Systems"
    assert paper["conference"]["name"] == "NeurIPS 2023"

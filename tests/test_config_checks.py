"""Config mistakes caught before any job, each as one line naming the key (issue: bad input).

Unit checks of ``validate_config`` on the embedded default and the paper config, the
model facts those checks rely on (against the built models), command-line forms, and
a few end-to-end runs through the real Snakefile.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml

from topkshape.config import (
    FIRST_TOPK_LAYER,
    GENERATOR_WIDTHS,
    MIN_INPUT_SIZE,
    SHALLOW_MODULES,
    first_topk_channels,
    gan_sets,
    load_schema,
    module_names,
    nest_dotted_keys,
    snakemake_args,
    validate_config,
)
from topkshape.errors import ConfigError
from workflow_support import ROOT, copy_workflow, snakemake, write_config

SHIPPED_DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
PAPER = {**yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), "imagenet_root": "/data/ILSVRC2012"}


def changed(base: dict, **changes) -> dict:
    """``base`` with nested changes given as ``train__lr=...`` (a deep copy)."""
    config = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config


# The embedded default with the values the expected messages below depend on pinned.
DEFAULT = changed(
    SHIPPED_DEFAULT, train__arch="resnet18_cifar", train__width=8, train__image_size=64, data__synthetic__image_size=64,
    data__synthetic__val_per_class=40, data__fewshot_images=100, texture__image_size=64, texture__num_targets=2,
    gan__ngf=16, gan__im_size=64, gan__topk_resolution=32, gan__iterations=100, gan__eval__samples=200,
    gan__eval__kid_subset_size=50,
)
# The default with the S1 baseline (resnet18_cifar, width 8) as the texture feature network.
TRAINED = changed(DEFAULT, texture__feature_net="trained_S1", texture__layers=["layer1", "layer2", "layer3"])


def error_of(config: dict, **kwargs) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(config, check_paths=False, **kwargs)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_the_shipped_configs_pass():
    validate_config(SHIPPED_DEFAULT)
    validate_config(PAPER, check_paths=False)


# --- numbers ---------------------------------------------------------------------------------


def number_keys(schema: dict, prefix: str = "") -> list[str]:
    """Every key whose schema type is number, as a dotted path (from the schema itself)."""
    keys = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        kind = sub.get("type")
        if kind == "number" or (isinstance(kind, list) and "number" in kind):
            keys.append(path)
        keys += number_keys(sub, f"{path}.")
    return keys


NUMBER_KEYS = number_keys(load_schema())


def test_the_schema_has_the_fractions_and_learning_rates_this_file_tests():
    assert {"train.topk_fraction", "train.lr", "texture.lr", "gan.lr", "texture.topk_fraction", "stylize.alpha"} <= set(NUMBER_KEYS)


@pytest.mark.parametrize("key", NUMBER_KEYS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_infinity_in_any_number_is_named(key, bad):
    # NaN compares false with every bound, so a schema minimum/maximum lets it through.
    config = changed(DEFAULT, **{key.replace(".", "__"): bad})
    assert error_of(config) == f"config key '{key}': {bad} is not a finite number"


@pytest.mark.parametrize("where,bad", [("shape_bias.fractions[1]", [0.1, math.nan]), ("gan.topk_fraction.hexagon", math.nan)])
def test_nan_inside_lists_and_maps_is_named(where, bad):
    key = where.split("[")[0].replace(".", "__")
    assert error_of(changed(DEFAULT, **{key: bad})) == f"config key '{where}': nan is not a finite number"


def test_yaml_nan_spelling_is_caught():
    config = changed(DEFAULT, train__topk_fraction=yaml.safe_load("x: .nan")["x"])
    assert error_of(config) == "config key 'train.topk_fraction': nan is not a finite number"


def test_scientific_notation_from_yaml_is_read_as_a_number():
    # PyYAML reads 1e-3 (no dot) as the string '1e-3'.
    lr = yaml.safe_load("lr: 1e-3")["lr"]
    assert lr == "1e-3"
    checked = validate_config(changed(DEFAULT, train__lr=lr, gan__lr="2e-4", texture__lr="1E0", train__epochs="1e1"))
    assert checked["train"]["lr"] == 0.001 and checked["gan"]["lr"] == 0.0002 and checked["texture"]["lr"] == 1.0
    assert checked["train"]["epochs"] == 10 and isinstance(checked["train"]["epochs"], int)


def test_command_line_strings_are_read_as_the_schema_types():
    # Snakemake's nested --config values arrive as strings: train='{epochs: 3, seeds: [0, 1]}'.
    checked = validate_config(changed(DEFAULT, train__epochs="3", train__seeds=["0", "1"], gan__noise_injection="true",
                                      gan__im_size="128", gan__eval__classifier_subset="S1", imagenet_root="null"))
    assert checked["train"]["epochs"] == 3 and checked["train"]["seeds"] == [0, 1]
    assert checked["gan"]["noise_injection"] is True and checked["gan"]["im_size"] == 128
    assert checked["imagenet_root"] is None
    paper = validate_config(changed(PAPER, data__imagenet__max_train_per_class="null", train__seeds=["0"]), check_paths=False)
    assert paper["data"]["imagenet"]["max_train_per_class"] is None and paper["train"]["seeds"] == [0]


def test_an_integral_float_for_a_count_becomes_an_int_and_a_fraction_is_still_an_error():
    assert validate_config(changed(DEFAULT, train__epochs=3.0))["train"]["epochs"] == 3
    assert error_of(changed(DEFAULT, train__epochs=2.5)) == "config key 'train.epochs': 2.5 is not of type 'integer'"
    assert error_of(changed(DEFAULT, train__lr="fast")) == "config key 'train.lr': 'fast' is not of type 'number'"


# --- values that must fit the model ------------------------------------------------------------------


def test_image_size_not_a_multiple_of_32_for_resnet18_cifar():
    assert error_of(changed(DEFAULT, train__image_size=17, data__synthetic__image_size=64)) == (
        "config key 'train.image_size': 17 is not a multiple of 32, which resnet18_cifar needs (e.g. 32 or 64)")
    assert "232 is not a multiple of 32" in error_of(changed(PAPER, train__image_size=232))


def test_image_size_below_what_the_architecture_accepts():
    config = changed(TRAINED, train__arch="alexnet", train__image_size=32, texture__layers=["features.0"])
    assert error_of(config) == "config key 'train.image_size': 32 is smaller than the 63 px alexnet needs"
    config = changed(PAPER, shape_bias__image_size=48)
    assert error_of(config) == "config key 'shape_bias.image_size': 48 is smaller than the 63 px alexnet needs (shape_bias.models lists alexnet)"


def test_texture_layers_must_exist_in_the_configured_feature_net():
    message = error_of(changed(TRAINED, texture__layers=["layer1", "layer9"]))
    assert message.startswith("config key 'texture.layers': 'layer9' is not a module of trained_S1 (resnet18_cifar)")
    assert "layer2.1.bn9" in error_of(changed(TRAINED, texture__layers=["layer2.0.conv1", "layer2.1.bn9"]))
    validate_config(changed(TRAINED, texture__layers=["layer2.0.conv1", "layer3.0.shortcut.0"]))
    assert "'relu9_1' is not a vgg19 layer" in error_of(changed(PAPER, texture__layers=["relu1_1", "relu9_1"]))
    assert "'layer1' is not a vgg19 layer" in error_of(changed(DEFAULT, texture__feature_net="vgg19", texture__layers=["layer1"]))
    validate_config(changed(PAPER, texture__layers=["relu1_1", "pool4", "20"]), check_paths=False)


def test_trained_feature_net_layers_follow_train_arch():
    # A trained_* net is built from train.arch: a ResNet name is wrong for a VGG-16.
    config = changed(TRAINED, train__arch="vgg16", texture__layers=["layer1"])
    assert error_of(config).startswith("config key 'texture.layers': 'layer1' is not a module of trained_S1 (vgg16)")
    validate_config(changed(TRAINED, train__arch="vgg16", texture__layers=["features.4", "features.9"]))


def test_texture_image_size_must_equal_the_training_size_for_resnet18_cifar():
    # Its linear head is sized for the training resolution.
    message = error_of(changed(TRAINED, texture__image_size=96))
    assert message.startswith("config key 'texture.image_size': 96 differs from train.image_size 64")


def test_mask_channels_beyond_the_models_width():
    # Default: resnet18_cifar, width 8 -> 16 channels after layer2.
    message = error_of(changed(DEFAULT, texture__mask_dynamics__channels=[0, 100]))
    assert message == ("config key 'texture.mask_dynamics.channels': channel 100 is beyond the 16 channels (0-15) "
                       "of resnet18_cifar's first Top-K layer layer2")
    assert "channel 16 is beyond" in error_of(changed(DEFAULT, texture__mask_dynamics__channels=[16]))
    assert "channel 64 is beyond the 64 channels" in error_of(changed(PAPER, train__arch="alexnet", texture__mask_dynamics__channels=[64]))


def test_mask_channels_beyond_the_gan_generators_topk_map():
    # ngf 4 -> 2 * 4 = 8 channels at 32x32; the classifier (16 channels) would accept channel 10.
    message = error_of(changed(DEFAULT, gan__ngf=4, texture__mask_dynamics__channels=[0, 10]))
    assert message.startswith("config key 'texture.mask_dynamics.channels': channel 10 is beyond the 8 channels (0-7) of the GAN generator's 32x32")


def test_gan_topk_resolution_must_be_a_generator_map():
    assert error_of(changed(DEFAULT, gan__topk_resolution=12)) == (
        "config key 'gan.topk_resolution': must be one of [8, 16, 32, 64] for gan.im_size 64, got 12")


# --- the facts those checks use, against the model code -------------------------------------------


@pytest.mark.parametrize("arch", sorted(MIN_INPUT_SIZE))
def test_model_facts_match_the_built_models(arch):
    from topkshape.models import build_model, topk_layers

    kwargs = {"num_classes": 10, "input_size": 64, "width": 8} if arch == "resnet18_cifar" else {}
    assert SHALLOW_MODULES[arch] <= module_names(arch, 8, 64)
    with torch.device("meta"):
        model = build_model(arch, fraction=0.2, **kwargs).eval()
        first = next(iter(topk_layers(model)))
        assert first.startswith(FIRST_TOPK_LAYER[arch])
        seen = {}

        def record(_module, _inputs, output) -> None:
            seen["channels"] = output.shape[1]

        model.get_submodule(first).register_forward_hook(record)
        size = 64 if arch == "resnet18_cifar" else MIN_INPUT_SIZE[arch]
        model(torch.zeros(1, 3, size, size))
        assert seen["channels"] == first_topk_channels(arch, 8)
        if arch in ("alexnet", "vgg16"):
            with pytest.raises(RuntimeError):
                model(torch.zeros(1, 3, size - 1, size - 1))


def test_generator_widths_match_fastgan():
    from topkshape.gan import fastgan

    assert GENERATOR_WIDTHS == fastgan.GENERATOR_WIDTHS


# --- counts --------------------------------------------------------------------------------------------


def test_no_mask_images_while_the_mask_figures_are_targets():
    assert error_of(changed(DEFAULT, texture__mask_dynamics__images=0)).startswith(
        "config key 'texture.mask_dynamics.images': 0 records no Top-K masks")
    validate_config(changed(DEFAULT, texture__mask_dynamics__images=0), mask_figures=False)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"texture__mask_dynamics__images": 500}, "config key 'texture.mask_dynamics.images': 500 is more than the 200 validation images of subset S1"),
        ({"texture__num_targets": 101}, "config key 'texture.num_targets': 101 is more than the 100 images of a few-shot set"),
        ({"gan__eval__kid_subset_size": 300}, "config key 'gan.eval.kid_subset_size': 300 is larger than the real (100) or generated (200)"),
        ({"train__epochs": 6, "train__warmup_epochs": 6}, "config key 'train.warmup_epochs': 6 is not below train.epochs 6"),
        ({"gan__eval__selection": "best", "gan__eval__snapshot_every": 500},
         "config key 'gan.eval.snapshot_every': 500 is more than gan.iterations 100"),
    ],
)
def test_a_count_that_exceeds_what_it_draws_from(changes, message):
    assert error_of(changed(DEFAULT, **changes)).startswith(message)


# --- names ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "a b", ".hidden", "-x", "x.y", ""])
def test_experiment_must_be_a_plain_folder_name(name):
    message = error_of(changed(DEFAULT, experiment=name))
    assert message.startswith(f"config key 'experiment': {name!r} is not a plain name")


@pytest.mark.parametrize("name", ["default", "paper_v2", "run-3", "A1"])
def test_plain_experiment_names_pass(name):
    assert validate_config(changed(DEFAULT, experiment=name))["experiment"] == name


def test_stylize_and_shape_bias_models_must_fit_the_data_source():
    assert error_of(changed(PAPER, stylize__method="texture_swap")).startswith(
        "config key 'stylize.method': texture_swap renders generated shapes")
    assert error_of(changed(PAPER, shape_bias__models=["alexnet", "trained_S1"])).startswith(
        "config key 'shape_bias.models': 'trained_S1' is scored on its subset's cue-conflict set")


# --- command-line forms ----------------------------------------------------------------------------


def test_dotted_keys_are_nested_into_their_sections():
    config = nest_dotted_keys({"train.epochs": "3", "train.lr": "1e-3", "train": {"arch": "x"}, "experiment": "e"})
    assert config == {"train": {"arch": "x", "epochs": "3", "lr": "1e-3"}, "experiment": "e"}
    checked = validate_config({**DEFAULT, "train.epochs": "3", "gan.eval.samples": "300"})
    assert checked["train"]["epochs"] == 3 and checked["gan"]["eval"]["samples"] == 300 and "train.epochs" not in checked


def test_a_nested_key_given_at_the_top_level_names_its_sections():
    assert error_of({**DEFAULT, "epochs": 3}) == (
        "config key 'epochs' is not a top-level key; it belongs in a section (train.epochs); "
        "on the command line: --config train='{epochs: VALUE}'")


def test_snakemake_args_nest_dotted_config_keys_and_keep_the_rest():
    args = snakemake_args(["-n", "--cores", "2", "--config", "train.epochs=3", "experiment=x", "gan.eval.samples=300", "--", "all"])
    assert args == ["-n", "--cores", "2", "--config", "train={epochs: 3}", "experiment=x", "gan={eval: {samples: 300}}", "--", "all"]
    assert snakemake_args(["--config=train.lr=1e-3"]) == ["--config=train={lr: 1e-3}"]


def test_snakemake_args_name_a_missing_configfile_and_a_bad_entry(tmp_path):
    with pytest.raises(ConfigError, match=r"^--configfile nope.yaml: config file not found$"):
        snakemake_args(["--configfile", "nope.yaml"])
    with pytest.raises(ConfigError, match=r"is a folder, not a file"):
        snakemake_args([f"--configfile={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^--config epochs: expected key=value"):
        snakemake_args(["--config", "epochs"])
    good = tmp_path / "c.yaml"
    good.write_text("experiment: x\n")
    assert snakemake_args(["--configfile", str(good), "-n"]) == ["--configfile", str(good), "-n"]


# --- through the real Snakefile ---------------------------------------------------------------------


def one_topkshape_line(run) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("topkshape:")]
    assert len(lines) == 1, run.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes,message",
    [
        ({"train__topk_fraction": math.nan}, "topkshape: config key 'train.topk_fraction': nan is not a finite number"),
        ({"experiment": ".."}, "topkshape: config key 'experiment': '..' is not a plain name"),
        ({"texture__feature_net": "trained_S1", "texture__layers": ["layer9"]},
         "topkshape: config key 'texture.layers': 'layer9' is not a module of trained_S1"),
    ],
)
def test_bad_config_file_stops_the_workflow_before_any_job(tmp_path, changes, message):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "bad.yaml", **changes)
    run = snakemake(work, "-n", "--cores", "1", "--configfile", str(config))
    assert one_topkshape_line(run).startswith(message)
    assert not (work / "data").exists() and not (work / "results").exists()


@pytest.mark.slow
def test_rewritten_dotted_overrides_reach_the_checks_of_the_snakefile(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    bad = snakemake(work, "-n", *snakemake_args(["--config", "train.epochs=0"]))
    assert one_topkshape_line(bad) == "topkshape: config key 'train.epochs': 0 is less than the minimum of 1"
    good = snakemake(work, "-n", *snakemake_args(["--config", "train.lr=1e-3", "train.epochs=2"]))
    assert good.returncode == 0, good.stderr[-2000:]


@pytest.mark.slow
def test_nested_command_line_values_in_scientific_notation_are_accepted(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    run = snakemake(work, "-n", "--config", "train={lr: 1e-3}")
    assert run.returncode == 0, run.stderr[-2000:]


def test_paper_fewshot_key_without_a_fewshot_set_is_rejected_naming_it():
    import yaml

    from topkshape.config import validate_config
    from topkshape.errors import ConfigError

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    config["data"]["paper_fewshot"] = {"jeeep": "jeep"}
    with pytest.raises(ConfigError, match=r"data\.paper_fewshot\.jeeep.*no few-shot set"):
        validate_config(config, check_paths=False)


# --- the GAN stage's few-shot sets (gan.fewshot_sets) ------------------------------------------------


def test_gan_sets_are_every_fewshot_set_unless_listed_in_the_order_listed():
    two = changed(DEFAULT, data__fewshot={"hexagon": "hexagon", "star": "star"}, gan__topk_fraction={"hexagon": 0.05, "star": 0.1})
    assert gan_sets(validate_config(two, check_paths=False)) == ["hexagon", "star"]
    assert gan_sets(validate_config(changed(two, gan__fewshot_sets=["star"]), check_paths=False)) == ["star"]
    assert gan_sets(validate_config(changed(two, gan__fewshot_sets=["star", "hexagon"]), check_paths=False)) == ["star", "hexagon"]


def test_gan_sets_must_name_fewshot_sets_and_need_a_fraction_only_for_the_sets_trained():
    assert error_of(changed(DEFAULT, gan__fewshot_sets=["hexagon", "hexagn"])) == (
        "config key 'gan.fewshot_sets': 'hexagn' is not a few-shot set in data.fewshot")
    assert error_of(changed(DEFAULT, gan__fewshot_sets=[])).startswith("config key 'gan.fewshot_sets'")
    assert error_of(changed(DEFAULT, gan__fewshot_sets=["hexagon", "hexagon"])).startswith("config key 'gan.fewshot_sets'")
    two = changed(DEFAULT, data__fewshot={"hexagon": "hexagon", "star": "star"}, gan__topk_fraction={"hexagon": 0.05})
    assert error_of(two) == "config key 'gan.topk_fraction': no Top-K fraction for few-shot set 'star'"
    validate_config(changed(two, gan__fewshot_sets=["hexagon"]), check_paths=False)


# --- home textures (data.synthetic.home_textures) ------------------------------------------------------


@pytest.mark.parametrize(
    "homes,colours,message",
    [
        ({"blob": "dots"}, "class", "config key 'data.synthetic.home_textures.blob': unknown shape class 'blob'; choose from"),
        ({"disk": "velvet"}, "class", "config key 'data.synthetic.home_textures.disk': unknown texture 'velvet'; choose from"),
        ({"disk": "checkers"}, "class",
         "config key 'data.synthetic.home_textures': subset S1: 'square' wears 'checkers', the texture of 'disk' ('checkers')"),
        ({"disk": "dense_stripes", "square": "stripes"}, "permuted",
         "config key 'data.synthetic.home_textures': subset S1: 'square' wears 'stripes', the pattern of 'disk' ('dense_stripes'): "
         "a subset's home textures must differ in pattern with permuted colours"),
    ],
)
def test_home_textures_name_known_classes_and_textures_and_tell_a_subsets_classes_apart(homes, colours, message):
    config = changed(DEFAULT, data__subsets={"S1": ["disk", "square", "triangle"]}, data__synthetic__home_textures=homes,
                     data__synthetic__texture_colours=colours)
    assert error_of(config).startswith(message)


def test_one_pattern_in_two_colours_names_two_classes_only_while_colours_are_kept():
    config = changed(DEFAULT, data__subsets={"S1": ["disk", "square"], "S2": ["star", "heart"]}, data__synthetic__texture_colours="class",
                     data__synthetic__home_textures={"disk": "dense_stripes", "square": "stripes"})
    assert validate_config(config, check_paths=False)["data"]["synthetic"]["home_textures"] == {"disk": "dense_stripes", "square": "stripes"}


def test_two_subsets_may_wear_the_same_textures():
    config = changed(DEFAULT, data__subsets={"S1": ["disk", "square"], "S2": ["star", "heart"]},
                     data__synthetic__home_textures={"star": "stripes", "heart": "checkers"})
    validate_config(config, check_paths=False)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"shape_bias__atlas": []}, "config key 'robustness.ood.datasets': the OOD benchmark evaluates the shape_bias.atlas entries, and there are none"),
        ({"shape_bias__modes": ["non_topk"]}, "config key 'robustness.ood.datasets': the OOD benchmark's Top-K settings need mode topk in shape_bias.modes"),
        ({"robustness__ood__fractions": [0.1, 0.15]}, "config key 'robustness.ood.fractions': [0.15] are not among shape_bias.fractions"),
        ({"robustness__ood__url": "https://mirror.example/ood.tar.gz"}, "config key 'robustness.ood.url': 'https://mirror.example/ood.tar.gz' has no {name}"),
        ({"robustness__ood__sha256": {"rain": "a" * 64}}, "config key 'robustness.ood.sha256.rain': 'rain' is not an OOD dataset"),
    ],
)
def test_the_ood_benchmark_needs_atlas_entries_topk_settings_the_atlas_measures_and_a_url_per_dataset(changes, message):
    assert error_of(changed(PAPER, **changes)).startswith(message)
    assert validate_config(changed(PAPER, robustness__ood__datasets=[], **{k: v for k, v in changes.items() if "sha256" not in k}),
                           check_paths=False)["robustness"]["ood"]["datasets"] == []

"""Any model by name (torchvision, timm, a user's builder), its weights, its preprocessing, and the
command line on it, checked against references written here with forward hooks.

The hook references select with a stable descending sort of |x| (ties: lowest index first, the
order ``ties="exact"`` documents), written without topkshape's Top-K code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from topkshape.errors import ConfigError, InputDataError
from topkshape.models import topk_alexnet, topk_vgg16
from topkshape.models.placement import probe, resolve_placement
from topkshape.models.layout_topk import LayoutTopK
from topkshape.models.zoo import IMAGENET_PREPROCESSING, load_model, parse_model_name, prefix_token_count
from topkshape.ops import TopK
from topkshape.shape_bias import evaluate
from topkshape.shape_bias.decisions import sixteen_class_decisions, sixteen_class_indices
from topkshape.shape_bias.evaluate import load_stimuli, model_decisions, with_inference_topk
from conftest import needs_shared

STIMULI = Path(__file__).resolve().parents[2] / "shared" / "paper-data" / "cue-conflict"

SIXTEEN = list(sixteen_class_indices())


def _keep_top(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """Rows of ``values`` (..., P): exactly K = max(1, int(f * P)) largest |x| kept, lowest index first among ties."""
    count = max(1, int(fraction * values.shape[-1]))
    order = torch.sort(values.abs(), dim=-1, descending=True, stable=True).indices[..., :count]
    mask = torch.zeros_like(values, dtype=torch.bool).scatter_(-1, order, True)
    return torch.where(mask, values, torch.zeros_like(values))


def _spatial_hook(fraction: float):
    def hook(_module, _inputs, output):
        n, c, h, w = output.shape
        return _keep_top(output.reshape(n, c, h * w), fraction).reshape(n, c, h, w)
    return hook


def _token_hook(fraction: float, prefix: int):
    def hook(_module, _inputs, output):
        patches = output[:, prefix:, :].transpose(1, 2)  # (N, C, P)
        return torch.cat([output[:, :prefix, :], _keep_top(patches, fraction).transpose(1, 2)], dim=1)
    return hook


def _stimuli(root, count: int = 16, size: int = 224, seed: int = 3):
    rng = np.random.default_rng(seed)
    for index in range(count):
        shape, texture = SIXTEEN[index % 16], SIXTEEN[(index + 5) % 16]
        path = root / shape / f"{shape}{index}-{texture}{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return sorted(root.glob("*/*.png"))


def _reference_decisions(model: nn.Module, paths, mean, std, size: int, interpolation: str) -> list[str]:
    images = []
    for path in paths:
        x = TF.to_tensor(Image.open(path).convert("RGB"))
        if x.shape[-1] != size:
            x = TF.resize(x, [size, size], interpolation=InterpolationMode(interpolation), antialias=True)
        images.append(TF.normalize(x, mean, std))
    with torch.no_grad():
        return sixteen_class_decisions(torch.softmax(model.eval()(torch.stack(images)), dim=1))


# --- names, weights, preprocessing ------------------------------------------------------------


def test_model_names_parse_with_their_source_and_bad_names_fail_in_one_line():
    assert str(parse_model_name("alexnet")) == "torchvision:alexnet"
    assert parse_model_name("timm:convnext_tiny").source == "timm"
    assert parse_model_name("python:my.pkg:build").name == "my.pkg:build"
    for bad, words in (("tf:resnet50", "the source must be one of torchvision:, timm:, python:"), ("timm:", "names no model"),
                       ("python:nofunction", "python:<package.module>:<function>")):
        with pytest.raises(ConfigError, match=words):
            parse_model_name(bad)
    with pytest.raises(ConfigError, match=r"unknown torchvision classifier 'resnet5' \(did you mean resnet50"):
        load_model("torchvision:resnet5", "random")
    with pytest.raises(ConfigError, match="unknown timm model 'vit_tinny_patch16_224'"):
        load_model("timm:vit_tinny_patch16_224", "random")


def test_random_weights_follow_their_seed_and_a_file_is_pinned_by_its_sha256(tmp_path):
    first, again, other = (load_model("torchvision:squeezenet1_1", "random", seed=s) for s in (1, 1, 2))
    assert first.weights_sha256 == again.weights_sha256 != other.weights_sha256
    assert first.weights == "random (seed 1)"
    path = tmp_path / "w.pth"
    torch.save(other.model.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_model("torchvision:squeezenet1_1", str(path), sha256=digest)
    assert loaded.weights_sha256 == digest and loaded.weights == str(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), other.model.state_dict().values()))
    with pytest.raises(InputDataError, match=f"has SHA-256 {digest}, not the pinned 00ff"):
        load_model("torchvision:squeezenet1_1", str(path), sha256="00ff")
    with pytest.raises(ConfigError, match="a SHA-256 pin applies to a weights file"):
        load_model("torchvision:squeezenet1_1", "random", sha256=digest)
    with pytest.raises(InputDataError, match="does not fit this architecture"):
        load_model("torchvision:alexnet", str(path))


def test_a_safetensors_file_loads_into_a_timm_model(tmp_path):
    from safetensors.torch import save_file

    source = load_model("timm:resnet10t", "random", seed=4)
    path = tmp_path / "resnet10t.safetensors"
    save_file(source.model.state_dict(), str(path))
    loaded = load_model("timm:resnet10t", str(path))
    assert loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), source.model.state_dict().values()))


def test_preprocessing_comes_from_the_weights_metadata_or_timms_data_config():
    # torchvision: the weights' transforms (EfficientNet-B3: 300 px, bicubic; the DEFAULT's for random weights).
    effnet = load_model("torchvision:efficientnet_b3", "random").preprocessing
    transforms = torchvision.models.EfficientNet_B3_Weights.DEFAULT.transforms()
    assert (effnet.input_size, effnet.interpolation) == (transforms.crop_size[0], "bicubic") == (300, "bicubic")
    assert effnet.mean == tuple(transforms.mean) and effnet.std == tuple(transforms.std)
    assert math.isclose(effnet.crop_pct, 300 / 320)
    # timm: its data config (ViT: mean = std = 0.5, bicubic).
    vit = load_model("timm:vit_tiny_patch16_224", "random").preprocessing
    config = timm.data.resolve_model_data_config(timm.create_model("vit_tiny_patch16_224"))
    assert (vit.input_size, vit.interpolation, vit.mean, vit.std, vit.crop_pct) == (
        224, config["interpolation"], tuple(config["mean"]), tuple(config["std"]), config["crop_pct"])
    # A 224-px stimulus goes in as it is (ToTensor + Normalize); a 300-px model gets it resized with its interpolation.
    pixels = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    as_float = pixels.float() / 255
    assert torch.equal(vit(pixels), TF.normalize(as_float, vit.mean, vit.std))
    resized = TF.resize(as_float, [300, 300], interpolation=InterpolationMode.BICUBIC, antialias=True)
    assert torch.allclose(effnet(pixels), TF.normalize(resized, effnet.mean, effnet.std), atol=1e-6)


def test_a_python_builder_is_a_model_source(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def tiny():
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000))

        def not_a_model():
            return 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model("python:my_nets:tiny", "random", seed=2)
    assert isinstance(loaded.model, nn.Sequential) and loaded.preprocessing == IMAGENET_PREPROCESSING
    with pytest.raises(ConfigError, match="returned a int, not an nn.Module"):
        load_model("python:my_nets:not_a_model", "random")
    with pytest.raises(ConfigError, match="cannot import it"):
        load_model("python:my_nets:absent", "random")


def test_prefix_tokens_come_from_timm_or_torchvisions_class_token():
    registers = timm.create_model("vit_tiny_patch16_224", reg_tokens=2)
    assert prefix_token_count(registers) == 3
    assert prefix_token_count(torchvision.models.vit_b_16()) == 1
    assert prefix_token_count(torchvision.models.resnet18()) == 0


# --- token and channels-last Top-K --------------------------------------------------------------


@pytest.mark.parametrize("prefix", [0, 1, 3])
def test_token_topk_keeps_prefix_tokens_and_exactly_k_patch_tokens_lowest_index_first_among_ties(prefix):
    torch.manual_seed(prefix)
    x = torch.randn(2, prefix + 16, 5)
    x[:, prefix + 4 : prefix + 12, 1] = 2.5  # eight tied patch tokens in channel 1: K = 4 of them, the first four
    layer = LayoutTopK(TopK(0.25, ties="exact"), "tokens", prefix)
    out = layer(x)
    assert torch.equal(out[:, :prefix], x[:, :prefix])
    assert torch.equal(out[:, prefix:], _keep_top(x[:, prefix:].transpose(1, 2), 0.25).transpose(1, 2))
    assert ((out[:, prefix:] != 0).sum(dim=1) == 4).all()
    assert (out[:, prefix + 4 : prefix + 8, 1] == 2.5).all() and (out[:, prefix + 8 : prefix + 12, 1] == 0).all()


def test_channels_last_topk_selects_over_height_and_width_as_the_channels_first_layer():
    x = torch.randn(2, 6, 6, 4)
    out = LayoutTopK(TopK(0.2, ties="exact"), "nhwc")(x)
    assert torch.equal(out, TopK(0.2, ties="exact")(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def test_layout_topk_refuses_a_wrong_shape_and_a_prefix_without_patches():
    with pytest.raises(ValueError, match=r"expects \(N, T, C\)"):
        LayoutTopK(TopK(0.5), "tokens", 1)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="leave no patch token"):
        LayoutTopK(TopK(0.5), "tokens", 2)(torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match="apply to the 'tokens' layout only"):
        LayoutTopK(TopK(0.5), "nhwc", 1)


# --- the command line against hook references -------------------------------------------------


def test_cli_runs_a_timm_vit_from_a_saved_state_dict_with_token_topk_at_a_glob_and_matches_a_hook_reference(tmp_path, capsys):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    weights = tmp_path / "vit.pt"
    torch.save(model.state_dict(), weights)
    paths = _stimuli(tmp_path / "cc")
    out = tmp_path / "raw.csv"
    code = evaluate.main(["--model", "timm:vit_tiny_patch16_224", "--weights", str(weights), "--placement", "blocks.[13]",
                          "--fraction", "0.1", "--mode", "topk", "--ties", "exact", "--images", str(tmp_path / "cc"),
                          "--out", str(out), "--batch-size", "8", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "raw.csv.json").read_text())
    assert record["positions"] == [{"module": "blocks.1", "kind": "token (prefix 1)"}, {"module": "blocks.3", "kind": "token (prefix 1)"}]
    assert record["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert record["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    handles = [model.blocks[i].register_forward_hook(_token_hook(0.1, 1)) for i in (1, 3)]
    expected = _reference_decisions(model, paths, (0.5,) * 3, (0.5,) * 3, 224, "bicubic")
    for handle in handles:
        handle.remove()
    assert pd.read_csv(out)["object_response"].tolist() == expected
    assert expected != _reference_decisions(model, paths, (0.5,) * 3, (0.5,) * 3, 224, "bicubic")  # Top-K changed something


def test_cli_runs_a_torchvision_model_with_spatial_topk_at_a_pattern_and_matches_a_hook_reference(tmp_path, capsys):
    torch.manual_seed(1)
    model = torchvision.models.resnet18().eval()
    weights = tmp_path / "resnet.pth"
    torch.save(model.state_dict(), weights)
    paths = _stimuli(tmp_path / "cc", seed=5)
    out = tmp_path / "raw.csv"
    assert evaluate.main(["--model", "torchvision:resnet18", "--weights", str(weights), "--placement", "layer[2-3]",
                          "--fraction", "0.05", "--ties", "exact", "--images", str(tmp_path / "cc"), "--out", str(out)]) == 0
    assert "at 2 positions (layer2, layer3)" in capsys.readouterr().out
    handles = [getattr(model, name).register_forward_hook(_spatial_hook(0.05)) for name in ("layer2", "layer3")]
    expected = _reference_decisions(model, paths, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224, "bilinear")
    for handle in handles:
        handle.remove()
    assert pd.read_csv(out)["object_response"].tolist() == expected


def test_list_positions_prints_every_module_with_its_output_and_topk_kind(capsys):
    assert evaluate.main(["--model", "timm:vit_tiny_patch16_224", "--weights", "random", "--list-positions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line for line in lines[1:]}
    assert lines[0].split() == ["module", "type", "output", "calls", "top-k"]
    assert table["patch_embed.proj"].split()[1:] == ["Conv2d", "192x14x14", "1", "spatial"]
    assert table["patch_embed"].split()[1:] == ["PatchEmbed", "196x192", "1", "token", "(prefix", "0)"]
    assert table["blocks.0"].split()[1:] == ["Block", "197x192", "1", "token", "(prefix", "1)"]
    assert table["head"].split()[1:4] == ["Linear", "1000", "1"] and "none: a 2-D output" in table["head"]


# --- the paper's placement on the paper's stimuli -------------------------------------------------


@pytest.mark.slow
@needs_shared(STIMULI, "the paper's 1,280 cue-conflict stimuli")
@pytest.mark.parametrize("arch,builder,per_class", [("alexnet", topk_alexnet, 16), ("vgg16", topk_vgg16, 1)])
def test_placement_paper_decides_as_the_built_in_paper_models_on_the_cue_conflict_stimuli(arch, builder, per_class, tmp_path):
    """AlexNet on 256 stimuli (16 per category), VGG16 on 16 (1 per category); all 1,280 with TOPKSHAPE_REFERENCE_ALL=1."""
    per_class = None if os.environ.get("TOPKSHAPE_REFERENCE_ALL") == "1" else per_class
    stimuli = load_stimuli(STIMULI, 224, threads=2, per_class=per_class)
    torch.manual_seed(0)
    weights = tmp_path / f"{arch}.pth"
    torch.save(getattr(torchvision.models, arch)().state_dict(), weights)
    loaded = load_model(f"torchvision:{arch}", str(weights))
    positions = resolve_placement(loaded.model, "paper", probe(loaded.model, 224, 0), arch=arch)
    ours = model_decisions(with_inference_topk(loaded.model, positions, 0.1, "topk", ties="exact"), stimuli, progress=False,
                           preprocess=loaded.preprocessing)
    built_in = model_decisions(builder(0.1, weights=str(weights), ties="exact"), stimuli, progress=False)
    assert ours == built_in and len(ours) == len(stimuli)
    assert len(set(ours)) > 1  # decisions that tell models apart, not one class for every image


def test_a_torchvision_weights_name_is_handed_to_torchvision_and_a_bad_one_names_the_choices(monkeypatch):
    asked = []
    real = torchvision.models.get_model
    monkeypatch.setattr(torchvision.models, "get_model", lambda arch, weights: asked.append((arch, str(weights))) or real(arch, weights=None))
    load_model("torchvision:squeezenet1_1", "IMAGENET1K_V1")  # no download in tests: torchvision is stood in for
    assert asked == [("squeezenet1_1", "IMAGENET1K_V1")]
    with pytest.raises(ConfigError, match=r"^'NOT_A_NAME' is not a weights name of torchvision's squeezenet1_1 \(choose from DEFAULT, IMAGENET1K_V1\)$"):
        load_model("torchvision:squeezenet1_1", "NOT_A_NAME")


def test_a_detection_model_is_not_a_classifier_and_file_like_weights_are_read_as_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^unknown torchvision classifier 'fasterrcnn_resnet50_fpn'"):
        load_model("torchvision:fasterrcnn_resnet50_fpn", "random")
    torch.manual_seed(0)
    saved = torchvision.models.squeezenet1_1(weights=None)
    monkeypatch.chdir(tmp_path)
    torch.save(saved.state_dict(), "squeeze.pt")  # a file in the working folder, by bare name
    loaded = load_model("torchvision:squeezenet1_1", "squeeze.pt").model
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), saved.state_dict().values()))
    for weights in ("absent.pt", "absent.pth", "absent.bin", "sub/absent"):  # names that look like files, absent
        with pytest.raises(InputDataError, match=f"^weights file not found: {weights}$"):
            load_model("torchvision:squeezenet1_1", weights)

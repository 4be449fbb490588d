"""Placement specs: presets, globs, types and names resolved against a model's modules, and their errors."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from topkshape.errors import ConfigError
from topkshape.models import ALEXNET_TOPK_POSITIONS, RESNET18_TOPK_POSITIONS, VGG16_TOPK_POSITIONS
from topkshape.models.placement import Candidate, output_layout, probe, resolution_stages, resolve_placement
from topkshape.models.zoo import load_model


def _resolved(name: str, spec: str, size: int | None = None) -> list[Candidate]:
    loaded = load_model(name, "random")
    candidates = probe(loaded.model, size or loaded.preprocessing.input_size, loaded.prefix_tokens)
    return resolve_placement(loaded.model, spec, candidates, arch=loaded.name.arch)


def _names(name: str, spec: str, size: int | None = None) -> list[str]:
    return [c.name for c in _resolved(name, spec, size)]


def test_paper_is_the_papers_positions_for_alexnet_vgg16_and_ours_for_resnet18():
    assert _names("torchvision:alexnet", "paper") == list(ALEXNET_TOPK_POSITIONS)
    assert _names("vgg16", "paper", 64) == list(VGG16_TOPK_POSITIONS)
    assert _names("resnet18", "paper", 64) == list(RESNET18_TOPK_POSITIONS)
    with pytest.raises(ConfigError, match="placement paper is defined for alexnet, resnet18, resnet18_cifar, vgg16 only, not resnet50"):
        _names("resnet50", "paper", 64)


def test_stages_end_each_resolution_of_a_cnn_and_follow_timms_feature_info():
    assert _names("resnet18", "stages", 64) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    # An inverted residual's expansion conv runs at the old resolution but starts the next stage.
    assert _names("efficientnet_b0", "stages", 64) == ["features.1", "features.2.1", "features.3.1", "features.5", "features.8"]
    # An Inception reduction block's branches at the old resolution end no stage.
    assert _names("inception_v3", "stages", 299)[-3:] == ["Mixed_5d", "Mixed_6e", "Mixed_7c"]
    # timm: its feature_info (Swin: four NHWC stages, channels-last Top-K).
    swin = _resolved("timm:swin_tiny_patch4_window7_224", "stages")
    assert [(c.name, c.layout) for c in swin] == [(f"layers.{i}", "nhwc") for i in range(4)]


def test_every_block_takes_the_outermost_blocks_and_every_relu_the_relu_modules():
    assert _names("resnet18", "every_block", 64) == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    vit = _resolved("torchvision:vit_b_16", "every_block")
    assert [c.name for c in vit] == [f"encoder.layers.encoder_layer_{i}" for i in range(12)]
    assert {(c.layout, c.prefix) for c in vit} == {("tokens", 1)}
    relus = _resolved("resnet18", "every_relu", 64)
    assert [c.name for c in relus][:2] == ["relu", "layer1.0.relu"] and len(relus) == 9
    assert relus[1].calls == 2  # BasicBlock calls its ReLU twice: Top-K follows both calls
    with pytest.raises(ConfigError, match="placement every_block finds no placeable module in VGG"):
        _names("vgg16", "every_block", 64)
    with pytest.raises(ConfigError, match="placement every_relu finds no placeable module in VisionTransformer"):
        _names("timm:vit_tiny_patch16_224", "every_relu")


@pytest.mark.slow  # ~9 s on 2 idle cores: builds VGG16 five times and ResNet-18 twice
def test_globs_types_and_names_combine_in_model_order():
    assert _names("resnet18", "layer[2-3]", 64) == ["layer2", "layer3"]
    mixed = _names("resnet18", "layer4, type:BasicBlock, maxpool", 64)
    assert mixed == ["maxpool"] + [f"layer{i}.{j}" for i in range(1, 4) for j in range(2)] + ["layer4", "layer4.0", "layer4.1"]
    assert _names("vgg16", "features.1[0-2]", 64) == ["features.10", "features.11", "features.12"]
    assert len(_names("vgg16", "features.2*", 64)) == 11  # features.2 and features.20 to features.29
    assert _names("vgg16", "type:nn.MaxPool2d", 64) == list(VGG16_TOPK_POSITIONS)
    # A glob never selects what Top-K cannot follow (the classifier's (N, C) outputs).
    assert _names("vgg16", "*pool", 64) == ["avgpool"]  # a glob over the whole name: VGG's max-pools are features.N
    with pytest.raises(ConfigError, match=r"placement classifier.\[0-9\] matches 7 modules, none of which Top-K can follow "
                                          r"\(classifier.0: a 2-D output has no spatial or token axis\)"):
        _names("vgg16", "classifier.[0-9]", 64)


@pytest.mark.parametrize("spec,message", [
    ("layr2", r"placement layr2: no such module in ResNet \(closest names: layer2"),
    ("layer9*", r"placement layer9\* matches no module \(closest names: layer"),
    ("type:BasicBlok", r"placement type:BasicBlok matches no placeable module \(closest types: BasicBlock"),
    ("fc", r"placement fc: Top-K cannot follow it \(a 2-D output has no spatial or token axis; output \(2, 1000\)\)"),
    (" , ", "an empty placement"),
])
def test_a_bad_spec_fails_in_one_line_naming_the_closest(spec, message):
    with pytest.raises(ConfigError, match=message) as error:
        _names("resnet18", spec, 64)
    assert "\n" not in str(error.value)


def test_output_layouts_of_maps_tokens_and_the_rest():
    assert output_layout((2, 8, 5, 5), batch=2, prefix=0, channels_last=None)[0] == "nchw"
    assert output_layout((2, 5, 5, 8), batch=2, prefix=0, channels_last=None)[0] == "nhwc"
    assert output_layout((2, 5, 5, 5), batch=2, prefix=0, channels_last=True)[0] == "nhwc"
    assert output_layout((2, 5, 5, 5), batch=2, prefix=0, channels_last=None)[0] == "nchw"
    assert output_layout((2, 96, 56, 56), batch=2, prefix=0, channels_last=True)[0] == "nchw"  # Swin's patch conv, before its permute
    assert output_layout((2, 49, 64, 32), batch=2, prefix=0, channels_last=None)[0] is None  # windows of tokens
    assert output_layout((2, 197, 8), batch=2, prefix=1, channels_last=None)[:2] == ("tokens", 1)
    assert output_layout((2, 196, 8), batch=2, prefix=1, channels_last=None)[:2] == ("tokens", 0)  # before the class token
    assert output_layout((2, 10, 8), batch=2, prefix=1, channels_last=None)[:2] == ("tokens", 1)  # 9 patches
    assert output_layout((2, 11, 8), batch=2, prefix=1, channels_last=None)[0] is None
    assert output_layout((6, 197, 8), batch=2, prefix=1, channels_last=None)[2] == "its first dimension is not the batch"


def test_a_module_outside_the_forward_pass_is_named_as_such():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.unused = nn.Conv2d(3, 4, 3), nn.ReLU()

        def forward(self, x):
            return self.conv(x)

    model = Net()
    candidates = probe(model, 16, 0)
    with pytest.raises(ConfigError, match="placement unused: the module is not called in Net's forward pass"):
        resolve_placement(model, "unused", candidates)


def test_resolution_stages_skip_pooled_maps_expansions_and_containers_spanning_a_downsampling():
    def c(name, side, leaf=True):
        return Candidate(name, "X", (2, 4, side, side), 1, "nchw", 0, "", leaf)
    candidates = [c("stem", 8), c("blocks.0.se", 1), c("blocks.0", 8, False), c("blocks.1.expand", 8), c("blocks.1.dw", 4),
                  c("blocks.1", 4, False), c("blocks", 4, False), c("down.norm", 4), c("down.conv", 2), c("down", 2, False), c("head", 2)]
    # blocks.1.expand runs at 8 inside a block whose output is at 4; "blocks" and "down" are containers spanning two
    # resolutions; down.norm runs at 4 but is a layer, so the block before it ends the stage.
    assert resolution_stages(candidates, frozenset({"blocks", "down"})) == ["blocks.0", "blocks.1", "head"]

"""Model surgery puts Top-K layers where the paper puts them, and the models still run."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from topkshape import TopK, TopKMeanReplace, build_model, insert_topk
from topkshape.errors import ConfigError
from topkshape.models import (
    ALEXNET_TOPK_POSITIONS,
    VGG16_TOPK_POSITIONS,
    cifar_resnet18,
    make_topk_layer,
    topk_alexnet,
    topk_layers,
    topk_resnet18,
    topk_resnet18_cifar,
    topk_vgg16,
)


def test_alexnet_topk_follows_each_conv_stage():
    model = topk_alexnet(0.1, weights=None)
    layers = list(model.features)
    kinds = [type(m).__name__ for m in layers]
    # The paper code's AlexNet: TopK after features 2, 5, 7, 9, 12 (max-pool, max-pool, ReLU, ReLU, max-pool).
    assert kinds == [
        "Conv2d", "ReLU", "MaxPool2d", "TopK",
        "Conv2d", "ReLU", "MaxPool2d", "TopK",
        "Conv2d", "ReLU", "TopK",
        "Conv2d", "ReLU", "TopK",
        "Conv2d", "ReLU", "MaxPool2d", "TopK",
    ]
    assert sorted(topk_layers(model)) == sorted(f"{p}_topk" for p in ALEXNET_TOPK_POSITIONS)


def test_vgg16_topk_follows_each_max_pool():
    model = topk_vgg16(0.2, weights=None)
    layers = list(model.features)
    topk_at = [i for i, m in enumerate(layers) if isinstance(m, TopK)]
    assert len(topk_at) == 5
    assert all(isinstance(layers[i - 1], nn.MaxPool2d) for i in topk_at)
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 5
    assert sorted(topk_layers(model)) == sorted(f"{p}_topk" for p in VGG16_TOPK_POSITIONS)


def test_resnet18_topk_is_appended_to_layer2():
    model = topk_resnet18(0.2, weights=None)
    assert isinstance(model.layer2[-1], TopK) and model.layer2[-1].fraction == 0.2
    assert list(topk_layers(model)) == ["layer2.topk"]


def test_surgery_keeps_parameter_names_so_weights_load_either_side():
    plain = torchvision.models.alexnet(weights=None)
    state = plain.state_dict()
    model = topk_alexnet(0.1, weights=None)
    model.load_state_dict(state)  # strict: same keys
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        # Fraction 1.0 everywhere must reproduce the plain model exactly.
        same = insert_topk(torchvision.models.alexnet(weights=None), list(ALEXNET_TOPK_POSITIONS), fraction=1.0)
        same.load_state_dict(state)
        torch.testing.assert_close(same.eval()(x), plain.eval()(x))
        assert not torch.allclose(model.eval()(x), plain(x))


@pytest.mark.parametrize(
    "builder,size,classes",
    [(topk_alexnet, 224, 1000), (topk_vgg16, 64, 1000), (topk_resnet18, 64, 1000), (topk_resnet18_cifar, 64, 10)],
)
@pytest.mark.parametrize("mode", ["topk", "non_topk", "mean_replace"])
def test_every_builder_runs_forward_and_backward_with_unchanged_output_shape(builder, size, classes, mode):
    kwargs = {"input_size": size} if builder is topk_resnet18_cifar else {}
    model = builder(0.2, weights=None, mode=mode, **kwargs)
    plain = builder(None, weights=None, **kwargs)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == plain(x).shape == (2, classes)
    out.sum().backward()
    kinds = {type(m) for m in topk_layers(model).values()}
    assert kinds == ({TopKMeanReplace} if mode == "mean_replace" else {TopK})
    assert not topk_layers(plain)


def test_cifar_resnet18_at_224_has_the_paper_code_head():
    model = cifar_resnet18(num_classes=10)
    assert model.linear.in_features == 512 * 7 * 7
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    # No max-pool anywhere: layer1 runs at full resolution.
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    with pytest.raises(ValueError, match="multiple of 32"):
        cifar_resnet18(input_size=100)


def test_cifar_resnet18_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        topk_resnet18_cifar(0.2, weights="DEFAULT")


def test_insert_topk_into_arbitrary_module_and_nested_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(self.body(self.conv(x)))

    net = Net()
    names_before = set(net.state_dict())
    insert_topk(net, {"conv": 0.1, "body.0": 0.3, "head": 0.5}, mode="mean_replace")
    assert isinstance(net.conv, nn.Conv2d) and isinstance(net.conv.topk, TopKMeanReplace)
    assert isinstance(net.body[1], TopKMeanReplace) and net.body[1].fraction == 0.3
    assert isinstance(net.head.topk, TopKMeanReplace)
    # Parameter names stay as they were: plain modules get Top-K as a child applied by a forward hook.
    assert set(net.state_dict()) == names_before
    x = torch.randn(1, 3, 8, 8)
    out = net(x)
    assert out.shape == (1, 2, 8, 8)
    # Eq. 2 ran at the head (K = 32 of 64, ties kept): each channel holds one value, at 32 or more positions.
    for channel in out[0]:
        kept = channel[channel != 0]
        assert len(kept) >= 32 and torch.allclose(kept, kept[0].expand_as(kept))


def test_insert_topk_rejects_unknown_names_and_bad_specs():
    model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match="no submodule named 'layer9'"):
        insert_topk(model, {"layer9": 0.2})
    with pytest.raises(ValueError, match="fraction"):
        insert_topk(model, {"layer2": 1.5})
    with pytest.raises(ValueError, match="needs fraction"):
        insert_topk(model, ["layer2"])
    with pytest.raises(ValueError, match="mode"):
        insert_topk(model, ["layer2"], fraction=0.2, mode="median")


def test_build_model_by_name_and_unknown_architecture():
    model = build_model("resnet18_cifar", fraction=0.2, num_classes=5, input_size=32)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        build_model("resnet19")


@pytest.mark.parametrize(
    "arch,mode",
    [(a, m) for a in ("alexnet", "resnet18_cifar") for m in ("topk", "non_topk", "mean_replace")]
    + [("vgg16", "topk"), ("resnet18", "non_topk")],  # the big ones once: building them is slow
)
def test_build_model_passes_ties_to_every_inserted_layer(arch, mode):
    kwargs = {"input_size": 32} if arch == "resnet18_cifar" else {}
    expected_count = {"alexnet": 5, "vgg16": 5, "resnet18": 1, "resnet18_cifar": 1}[arch]
    exact = build_model(arch, fraction=0.1, mode=mode, ties="exact", **kwargs)
    layers = topk_layers(exact)
    assert len(layers) == expected_count
    assert {layer.ties for layer in layers.values()} == {"exact"}
    # Without ties= the layers keep today's behaviour.
    default = build_model(arch, fraction=0.1, mode=mode, **kwargs)
    assert {layer.ties for layer in topk_layers(default).values()} == {"keep"}


def test_exact_alexnet_keeps_exactly_k_at_each_position_on_tied_max_pool_outputs():
    # Overlapping 3x3/2 max-pools repeat values, so the keep rule often keeps more than K.
    torch.manual_seed(0)
    model = build_model("alexnet", fraction=0.05, ties="exact").eval()
    counts = {}
    hooks = [
        layer.register_forward_hook(lambda m, i, o, name=name: counts.__setitem__(name, (m.last_mask.sum(dim=(2, 3)), i[0].shape)))
        for name, layer in topk_layers(model).items()
    ]
    for layer in topk_layers(model).values():
        layer.record_mask = True
    with torch.no_grad():
        model(torch.randn(2, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    for name, (kept, shape) in counts.items():
        k = max(1, int(0.05 * shape[2] * shape[3]))
        assert (kept == k).all(), name


def test_insert_topk_passes_ties_to_every_layer_of_a_spec():
    model = torchvision.models.resnet18(weights=None)
    insert_topk(model, {"layer1": 0.1, "layer2": 0.2, "layer3.0.conv1": 0.3}, mode="mean_replace", ties="exact")
    layers = topk_layers(model)
    assert len(layers) == 3 and all(isinstance(m, TopKMeanReplace) and m.ties == "exact" for m in layers.values())
    assert make_topk_layer(0.1, "non_topk", "exact").ties == "exact"
    assert make_topk_layer(0.1).ties == "keep"


@pytest.mark.parametrize("bad", ["first", None])
def test_bad_ties_is_a_config_error_even_without_topk(bad):
    with pytest.raises(ConfigError, match="ties"):
        build_model("alexnet", fraction=None, ties=bad)
    with pytest.raises(ConfigError, match="ties"):
        build_model("resnet18", fraction=0.2, ties=bad)
    with pytest.raises(ConfigError, match="ties"):
        insert_topk(torchvision.models.resnet18(weights=None), ["layer2"], fraction=0.2, ties=bad)

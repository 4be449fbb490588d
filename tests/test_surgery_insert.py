"""Model surgery on tiny hand-built modules: where each Top-K layer goes, under which name,
with which settings, and the one-line errors for bad specs (no torchvision model builds)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from topkshape import TopK, TopKMeanReplace
from topkshape.errors import ConfigError
from topkshape.models import insert_topk, make_topk_layer, topk_layers


class Block(nn.Module):
    """A plain (non-Sequential) module holding a Sequential: names three levels deep."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU())

    def forward(self, x):
        return self.body(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 1)
        self.block = Block()
        self.stages = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())

    def forward(self, x):
        return self.stages(self.block(self.stem(x)))


@pytest.mark.parametrize("ties", ["keep", "exact"])
def test_make_topk_layer_builds_the_layer_of_each_mode_with_its_fraction_and_tie_rule(ties):
    topk = make_topk_layer(0.3, "topk", ties)
    assert type(topk) is TopK and (topk.fraction, topk.keep, topk.ties) == (0.3, "topk", ties)
    revert = make_topk_layer(0.4, "non_topk", ties)
    assert type(revert) is TopK and (revert.fraction, revert.keep, revert.ties) == (0.4, "non_topk", ties)
    mean = make_topk_layer(0.5, "mean_replace", ties)
    assert type(mean) is TopKMeanReplace and (mean.fraction, mean.ties) == (0.5, ties)


def test_make_topk_layer_defaults_to_eq1_with_ties_kept():
    layer = make_topk_layer(0.2)
    assert type(layer) is TopK and (layer.keep, layer.ties) == ("topk", "keep")


def test_unknown_mode_is_a_value_error_listing_the_modes():
    with pytest.raises(ValueError) as info:
        make_topk_layer(0.2, "median")
    assert str(info.value) == "Top-K mode must be one of ('topk', 'non_topk', 'mean_replace'), got 'median'"
    with pytest.raises(ConfigError, match="ties"):
        make_topk_layer(0.2, "topk", ties="first")


def test_insert_after_a_sequential_child_adds_a_named_sibling_in_the_same_sequential():
    net = Net()
    stages = net.stages
    insert_topk(net, {"stages.0": 0.1, "stages.2": 0.3}, mode="non_topk", ties="exact")
    assert net.stages is stages  # rebuilt in place, the same object
    assert list(stages._modules) == ["0", "0_topk", "1", "2", "2_topk"]
    assert isinstance(stages[0], nn.Identity) and isinstance(stages[2], nn.Identity) and isinstance(stages[3], nn.Identity)
    first, last = stages[1], stages[4]
    assert (type(first), first.fraction, first.keep, first.ties) == (TopK, 0.1, "non_topk", "exact")
    assert (type(last), last.fraction, last.keep, last.ties) == (TopK, 0.3, "non_topk", "exact")
    assert list(topk_layers(net)) == ["stages.0_topk", "stages.2_topk"]


def test_insert_three_levels_deep_uses_the_last_dot_to_find_the_parent():
    net = Net()
    insert_topk(net, ["block.body.0"], fraction=0.5)
    body = net.block.body
    assert list(body._modules) == ["0", "0_topk", "1"]
    assert isinstance(body[0], nn.Conv2d) and isinstance(body[1], TopK) and body[1].fraction == 0.5
    assert list(topk_layers(net)) == ["block.body.0_topk"]


def test_insert_after_a_plain_module_attaches_it_by_a_hook_and_after_a_sequential_appends_topk():
    net = Net()
    stem = net.stem
    names = sorted(net.state_dict())
    insert_topk(net, {"stem": 0.25, "block.body": 0.5, "stages": 0.75}, mode="mean_replace")
    assert net.stem is stem and list(net.stem._modules) == ["topk"] and len(net.stem._forward_hooks) == 1
    assert type(net.stem.topk) is TopKMeanReplace and net.stem.topk.fraction == 0.25
    assert sorted(net.state_dict()) == names  # no parameter renamed
    assert list(net.block.body._modules) == ["0", "1", "topk"] and net.block.body.topk.fraction == 0.5
    assert list(net.stages._modules) == ["0", "1", "2", "topk"] and net.stages.topk.fraction == 0.75
    assert sorted(topk_layers(net)) == ["block.body.topk", "stages.topk", "stem.topk"]
    assert net(torch.randn(1, 1, 4, 4)).shape == (1, 2, 4, 4)


def test_integer_names_in_a_spec_are_module_names():
    model = nn.Sequential(nn.Identity(), nn.Identity())
    insert_topk(model, {1: 0.5})
    assert list(model._modules) == ["0", "1", "1_topk"]
    model = nn.Sequential(nn.Identity(), nn.Identity())
    insert_topk(model, [0], fraction=0.5)
    assert list(model._modules) == ["0", "0_topk", "1"]


def test_topk_after_a_child_acts_on_that_childs_output():
    # Sequential(x -> x + 1, Top-K 1/4, x -> 2x): only the largest |x + 1| survives, doubled.
    class AddOne(nn.Module):
        def forward(self, x):
            return x + 1

    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    model = insert_topk(nn.Sequential(AddOne(), Double()), ["0"], fraction=0.25)
    x = torch.tensor([[[[0.0, -5.0], [2.0, 1.0]]]])
    assert torch.equal(model(x), torch.tensor([[[[0.0, -8.0], [0.0, 0.0]]]]))


def test_spec_mapping_and_fraction_together_is_an_error():
    with pytest.raises(ValueError) as info:
        insert_topk(Net(), {"stem": 0.2}, fraction=0.2)
    assert str(info.value) == "give fractions in the spec mapping or as fraction=, not both"


def test_spec_as_a_single_string_is_an_error_naming_it():
    with pytest.raises(ValueError) as info:
        insert_topk(Net(), "stem", fraction=0.2)
    assert str(info.value) == "spec must be a mapping or a list of module names, got the string 'stem'"


def test_name_list_without_fraction_is_an_error():
    with pytest.raises(ValueError) as info:
        insert_topk(Net(), ["stem"])
    assert str(info.value) == "a list of module names needs fraction="


@pytest.mark.parametrize("bad", [0.0, 1.5, True])
def test_bad_fractions_are_rejected_in_either_spec_form(bad):
    with pytest.raises(ValueError, match="fraction"):
        insert_topk(Net(), {"stem": bad})
    with pytest.raises(ValueError, match="fraction"):
        insert_topk(Net(), ["stem"], fraction=bad)


def test_unknown_name_error_lists_the_first_39_submodule_names():
    model = nn.Sequential(*(nn.ReLU() for _ in range(50)))
    with pytest.raises(ValueError) as info:
        insert_topk(model, {"0": 0.2, "50": 0.2})
    names = ", ".join(str(i) for i in range(39))  # the model itself ("") is not listed
    assert str(info.value) == f"no submodule named '50' in Sequential (some names: {names})"
    assert "TopK" not in repr(model)  # nothing was inserted before the error


def test_the_empty_name_of_the_model_itself_is_not_a_target():
    model = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError) as info:
        insert_topk(model, {"": 0.2})
    assert str(info.value) == "no submodule named '' in Sequential (some names: 0)"


def test_a_block_called_with_extra_arguments_keeps_its_signature_and_a_deep_copy_keeps_its_topk():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1, bias=False)
            nn.init.ones_(self.conv.weight)

        def forward(self, x, scale):  # as timm's BEiT and Twins blocks take more than x
            return self.conv(x) * scale

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([Scaled()])

        def forward(self, x):
            return self.blocks[0](x, 2.0)

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    model = insert_topk(Outer(), ["blocks.0"], fraction=0.25, ties="exact")
    expected = torch.where(x >= 12, 2 * x, torch.zeros_like(x))  # the 4 largest of 16, after the block's scaling
    assert torch.equal(model(x), expected)
    assert torch.equal(copy.deepcopy(model)(x), expected)
    assert sorted(topk_layers(model)) == ["blocks.0.topk"]


def _four_layers() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.ReLU())


def test_under_random_ties_the_ith_layer_of_the_spec_draws_from_tie_seed_plus_i_in_its_mode():
    model = insert_topk(_four_layers(), ["1", "3"], fraction=0.5, ties="random", tie_seed=7, mode="non_topk")
    assert {n: (type(m).__name__, m.keep, m.tie_generator.initial_seed()) for n, m in topk_layers(model).items()} == {
        "1_topk": ("TopK", "non_topk", 7), "3_topk": ("TopK", "non_topk", 8)}
    default = insert_topk(_four_layers(), ["1", "3"], fraction=0.5, ties="random")
    assert [m.tie_generator.initial_seed() for m in topk_layers(default).values()] == [0, 1]
    mean = insert_topk(_four_layers(), {"3": 0.25}, ties="random", tie_seed=5, mode="mean_replace")
    layer = topk_layers(mean)["3_topk"]
    assert isinstance(layer, TopKMeanReplace) and layer.fraction == 0.25 and layer.tie_generator.initial_seed() == 5


def test_a_named_layout_wraps_only_that_layer_with_its_prefix():
    model = insert_topk(_four_layers(), ["1", "3"], fraction=0.5, layouts={"3": ("tokens", 1)})
    wrapped, plain = model._modules["3_topk"], model._modules["1_topk"]
    assert (type(wrapped).__name__, wrapped.layout, wrapped.prefix, type(wrapped.inner).__name__) == ("LayoutTopK", "tokens", 1, "TopK")
    assert type(plain).__name__ == "TopK"


def test_a_module_that_already_has_a_topk_child_is_refused_by_name():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x)

    model = insert_topk(Block(), ["conv"], fraction=0.5)
    with pytest.raises(ValueError) as err:
        insert_topk(model, ["conv"], fraction=0.5)
    assert str(err.value) == "Conv2d already has a child named 'topk'"

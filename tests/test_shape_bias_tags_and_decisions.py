"""Setting tags of the Top-K sweep and model-vs-human's 1000 -> 16 class mapping, on hand-built inputs."""

from __future__ import annotations

import pytest
import torch

from topkshape.shape_bias.decisions import (
    sixteen_class_decisions,
    sixteen_class_indices,
    sixteen_class_probabilities,
)
from topkshape.shape_bias.tags import TRAINED_PREFIX, parse_tag, setting_tag, sweep_tags, tag_setting


def test_setting_tag_is_none_without_topk_and_mode_plus_k_percent_otherwise():
    assert setting_tag(None) == "none"
    assert setting_tag(None, "non_topk") == "none"
    assert setting_tag(0.1) == "topk10"  # the default mode is topk
    assert setting_tag(0.05, "non_topk") == "non_topk5"
    assert setting_tag(0.025, "mean_replace") == "mean_replace2.5"
    # 100 * 0.07 is 7.000000000000001 in floats; the tag still reads 7.
    assert setting_tag(0.07) == "topk7"
    # K% is rounded to 6 decimals before its 6 significant digits are printed: 0.0012345649 -> 0.001235.
    assert setting_tag(1.2345649e-5) == "topk0.001235"


def test_sweep_tags_start_with_none_then_every_fraction_per_mode():
    assert sweep_tags([0.2], ["mean_replace"]) == ["none", "mean_replace20"]
    assert sweep_tags([], ["topk"]) == ["none"]


def test_parse_tag_splits_mode_and_k_percent():
    assert parse_tag("none") == ("none", None)
    assert parse_tag("topk10") == ("topk", 10.0)
    assert parse_tag("non_topk2.5") == ("non_topk", 2.5)
    assert parse_tag("mean_replace50") == ("mean_replace", 50.0)


def test_tag_setting_gives_the_fraction_and_mode_a_tag_names():
    assert tag_setting("none") == (None, "topk")
    assert tag_setting("topk10") == (0.1, "topk")
    assert tag_setting("non_topk20") == (0.2, "non_topk")
    assert tag_setting("mean_replace5") == (0.05, "mean_replace")
    for fraction, mode in ((0.05, "topk"), (0.2, "non_topk"), (0.1, "mean_replace")):
        assert tag_setting(setting_tag(fraction, mode)) == (pytest.approx(fraction), mode)


def test_trained_models_are_named_with_the_trained_prefix():
    assert TRAINED_PREFIX == "trained_"


def test_sixteen_class_table_is_model_vs_humans_sorted_categories_with_their_imagenet_indices():
    table = sixteen_class_indices()
    assert list(table) == ["airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair", "clock", "dog",
                           "elephant", "keyboard", "knife", "oven", "truck"]
    # A few entries of model-vs-human's sixteen_class_imagenet_indices (ImageNet class ids).
    assert table["airplane"] == [404]
    assert table["bear"] == [294, 295, 296, 297]
    assert table["knife"] == [499]
    every = [i for indices in table.values() for i in indices]
    assert len(every) == len(set(every)) and all(0 <= i < 1000 for i in every)


def test_sixteen_class_table_is_model_vs_humans_in_full():
    """Every index of every category, checked without ../shared: the size of each category and the
    SHA-256 of the whole table (JSON, keys sorted) as computed from model-vs-human's
    helper/human_categories.py at commit 79ed7cd, not from our file."""
    import hashlib
    import json

    table = sixteen_class_indices()
    sizes = {"airplane": 1, "bear": 4, "bicycle": 2, "bird": 49, "boat": 5, "bottle": 7, "car": 3, "cat": 6, "chair": 4,
             "clock": 3, "dog": 109, "elephant": 2, "keyboard": 2, "knife": 1, "oven": 1, "truck": 8}
    assert {category: len(indices) for category, indices in table.items()} == sizes
    canonical = json.dumps({category: list(indices) for category, indices in table.items()}, sort_keys=True)
    assert hashlib.sha256(canonical.encode()).hexdigest() == "38f860b2c576faa332251d0dc8147bb3f753fc8806f3a2048f2dc480cce0c63c"


def test_sixteen_class_probabilities_are_the_mean_over_each_categorys_classes():
    table = sixteen_class_indices()
    probs = torch.zeros(2, 1000)
    probs[0, table["bear"][0]] = 0.4  # one of bear's four classes: mean 0.1
    probs[0, table["oven"][0]] = 0.3  # oven's only class: mean 0.3
    probs[1, table["bear"]] = 0.2  # every bear class: mean 0.2
    scores = sixteen_class_probabilities(probs)
    names = list(table)
    assert scores.shape == (2, 16)
    expected = torch.zeros(2, 16)
    expected[0, names.index("bear")] = 0.1
    expected[0, names.index("oven")] = 0.3
    expected[1, names.index("bear")] = 0.2
    assert torch.allclose(scores, expected)
    assert sixteen_class_decisions(probs) == ["oven", "bear"]


@pytest.mark.parametrize("shape", [(1000,), (2, 1000, 1), (1, 10), (3, 999)])
def test_probabilities_not_shaped_n_by_1000_are_refused_with_their_shape(shape):
    with pytest.raises(ValueError) as exc:
        sixteen_class_probabilities(torch.zeros(shape))
    assert str(exc.value) == f"expected (N, 1000) ImageNet probabilities, got {shape}"

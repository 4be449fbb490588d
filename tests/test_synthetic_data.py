"""The generated shape x texture data: layout, determinism, texture shortcut, cue conflict."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from topkshape.data.shapes import SHAPES, TEXTURES, RenderSpec, render, render_texture
from topkshape.data.synthetic import (
    HOME_TEXTURE,
    resolve_home_textures,
    write_cue_conflict_set,
    write_fewshot_set,
    write_shape_subset,
)
from topkshape.errors import ConfigError

CLASSES = ["disk", "square", "triangle"]


def test_every_shape_and_texture_renders_and_differs():
    images = {s: np.asarray(render(RenderSpec(s, "stripes", 32, 7))) for s in SHAPES}
    assert all(a.shape == (32, 32, 3) for a in images.values())
    # Same seed, same texture, different shape: the pixels differ.
    assert len({a.tobytes() for a in images.values()}) == len(SHAPES)
    textures = {t: np.asarray(render_texture(t, 32, 1)) for t in TEXTURES}
    assert len({a.tobytes() for a in textures.values()}) == len(TEXTURES)
    assert len(set(HOME_TEXTURE.values())) == len(SHAPES)


def test_render_is_deterministic_given_the_seed():
    a = np.asarray(render(RenderSpec("star", "dots", 48, 3)))
    b = np.asarray(render(RenderSpec("star", "dots", 48, 3)))
    c = np.asarray(render(RenderSpec("star", "dots", 48, 4)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_permuted_colours_keep_the_pattern_and_every_other_draw_and_vary_the_hue_per_image():
    for seed in range(12):
        home = np.asarray(render(RenderSpec("star", "stripes", 32, seed))).astype(int)
        permuted = np.asarray(render(RenderSpec("star", "stripes", 32, seed, permute_colours=True))).astype(int)
        # Same image but for the order of the colour channels inside the shape: the background
        # (grey, the same in every channel up to noise) and the pattern stay where they were.
        assert sorted(home.reshape(-1, 3).sum(axis=1)) == sorted(permuted.reshape(-1, 3).sum(axis=1))
        assert np.array_equal(np.sort(home, axis=2), np.sort(permuted, axis=2))
    # One permutation per image, drawn from its seed: over 12 images, several different ones.
    orders = set()
    for seed in range(12):
        spec = RenderSpec(None, "stripes", 16, seed)
        home = np.asarray(render(spec)).reshape(-1, 3).astype(int)
        permuted = np.asarray(render(RenderSpec(None, "stripes", 16, seed, permute_colours=True))).reshape(-1, 3).astype(int)
        pixel = int(np.argmax(np.ptp(home, axis=1)))  # a pixel whose channels all differ
        orders.add(tuple(int(np.flatnonzero(home[pixel] == value)[0]) for value in permuted[pixel]))
    assert len(orders) >= 3


def test_texture_colours_permute_train_val_and_diagnostic_images_only_when_asked(tmp_path):
    common = dict(image_size=24, train_per_class=4, val_per_class=2, diagnostic_per_class=2, seed=5, progress=False)
    write_shape_subset(tmp_path / "class", CLASSES, **common)
    write_shape_subset(tmp_path / "permuted", CLASSES, texture_colours="permuted", **common)
    home, permuted = _tree_digest(tmp_path / "class"), _tree_digest(tmp_path / "permuted")
    images = [name for name in home if name.endswith(".png")]
    changed = [name for name in images if home[name] != permuted[name]]
    assert {name.split("/")[0] for name in changed} == {"train", "val", "val_shape", "val_texture"}
    assert len(changed) >= len(images) * 2 // 3  # 1 in 6 permutations is the identity
    with pytest.raises(ConfigError, match=r"^texture_colours must be one of \['class', 'permuted'\], got 'grey'$"):
        write_shape_subset(tmp_path / "x", CLASSES, texture_colours="grey", progress=False)
    assert not (tmp_path / "x").exists()


def _tree_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_subset_layout_manifest_and_determinism_across_thread_counts(tmp_path):
    write_shape_subset(tmp_path / "a", CLASSES, image_size=24, train_per_class=6, val_per_class=2, seed=5, threads=1, progress=False)
    write_shape_subset(tmp_path / "b", CLASSES, image_size=24, train_per_class=6, val_per_class=2, seed=5, threads=2, progress=False)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    for split, n in (("train", 6), ("val", 2)):
        for cls in CLASSES:
            files = list((tmp_path / "a" / split / cls).glob("*.png"))
            assert len(files) == n
            assert Image.open(files[0]).size == (24, 24)
    manifest = pd.read_csv(tmp_path / "a" / "manifest.csv")
    assert len(manifest) == 3 * 8
    for row in manifest.itertuples():
        assert hashlib.sha1((tmp_path / "a" / row.path).read_bytes()).hexdigest() == row.sha1
    classes = pd.read_csv(tmp_path / "a" / "classes.csv")
    assert list(classes["name"]) == sorted(CLASSES)


def test_training_texture_follows_the_configured_correlation(tmp_path):
    write_shape_subset(tmp_path / "s", CLASSES, image_size=16, train_per_class=150, val_per_class=1, texture_correlation=0.8, progress=False)
    manifest = pd.read_csv(tmp_path / "s" / "manifest.csv")
    train = manifest[manifest.split == "train"]
    home = (train["texture"] == train["label"].map(HOME_TEXTURE)).mean()
    assert 0.72 < home < 0.88


def test_cue_conflict_set_puts_each_shape_in_other_classes_textures_balanced(tmp_path):
    table = write_cue_conflict_set(tmp_path / "cc", CLASSES, image_size=16, per_class=4, progress=False)
    assert (table["label"] != table["texture_label"]).all()
    assert (table["style"] == table["texture_label"].map(HOME_TEXTURE)).all()
    counts = table.groupby(["label", "texture_label"]).size()
    assert set(counts) == {2}  # 4 images over 2 other classes
    for row in table.itertuples():
        assert (tmp_path / "cc" / row.image).is_file() and row.image.startswith(f"{row.label}/")
    saved = pd.read_csv(tmp_path / "cc" / "styles.csv")
    assert list(saved.columns) == ["image", "label", "style", "texture_label"]


def test_cue_conflict_set_manifest_names_its_settings_and_every_file_hash(tmp_path):
    write_cue_conflict_set(tmp_path / "cc", CLASSES, image_size=16, per_class=2, seed=5, progress=False)
    record = json.loads((tmp_path / "cc" / "manifest.json").read_text())
    assert record["settings"] == {"classes": CLASSES, "image_size": 16, "per_class": 2, "seed": 5}
    images = sorted(p.relative_to(tmp_path / "cc").as_posix() for p in (tmp_path / "cc").rglob("*.png"))
    assert sorted(record["files"]) == images and len(images) == 6
    for rel, sha1 in record["files"].items():
        assert hashlib.sha1((tmp_path / "cc" / rel).read_bytes()).hexdigest() == sha1


def test_fewshot_set_has_the_requested_count(tmp_path):
    write_fewshot_set(tmp_path / "fs", "star", count=7, image_size=16, progress=False)
    assert len(list((tmp_path / "fs" / "train" / "star").glob("*.png"))) == 7


def test_bad_classes_and_correlation_are_config_errors_and_leave_nothing(tmp_path):
    with pytest.raises(ConfigError, match="unknown shape class 'blob'"):
        write_shape_subset(tmp_path / "x", ["disk", "blob"], progress=False)
    with pytest.raises(ConfigError, match="texture_correlation"):
        write_shape_subset(tmp_path / "x", CLASSES, texture_correlation=1.5, progress=False)
    with pytest.raises(ConfigError, match="at least two"):
        write_cue_conflict_set(tmp_path / "x", ["disk"], progress=False)
    assert not (tmp_path / "x").exists()


def test_diagnostic_sets_hold_one_cue_each(tmp_path):
    """val_shape: each class's shape in textures no class of the subset wears (nor their patterns);
    val_texture: the class's home texture over the whole frame, no shape and no background."""
    write_shape_subset(tmp_path / "s", CLASSES, image_size=24, train_per_class=2, val_per_class=1, diagnostic_per_class=5, progress=False)
    manifest = pd.read_csv(tmp_path / "s" / "manifest.csv")
    shape_only = manifest[manifest.split == "val_shape"]
    texture_only = manifest[manifest.split == "val_texture"]
    assert len(shape_only) == len(texture_only) == 5 * len(CLASSES)
    home_patterns = {TEXTURES[HOME_TEXTURE[c]][0] for c in CLASSES}
    assert not {TEXTURES[t][0] for t in shape_only["texture"]} & home_patterns
    assert shape_only.groupby("label")["texture"].nunique().min() > 1  # more than one neutral texture per class
    assert (texture_only["texture"] == texture_only["label"].map(HOME_TEXTURE)).all()
    for cls in CLASSES:
        assert len(list((tmp_path / "s" / "val_shape" / cls).glob("*.png"))) == 5
    # A texture-only image is the texture everywhere: where the same draw with a shape shows the
    # shape, the pixels are equal; everywhere else the shape image shows background instead.
    spec = RenderSpec(None, "stripes", 32, 11)
    alone = np.asarray(render(spec, supersample=1))
    with_shape = np.asarray(render(RenderSpec("disk", "stripes", 32, 11), supersample=1))
    same = (alone == with_shape).all(-1)
    assert 0.05 < same.mean() < 0.9
    assert not np.array_equal(alone, with_shape)


def test_no_diagnostic_sets_unless_asked(tmp_path):
    counts = write_shape_subset(tmp_path / "s", CLASSES, image_size=16, train_per_class=2, val_per_class=1, progress=False)
    assert set(counts) == {"train", "val"} and not (tmp_path / "s" / "val_shape").exists()



# S1's first three classes in S2's textures and the other way round: every image follows the overrides.
SWAPPED = {"disk": "grid", "square": "zigzag", "triangle": "scales"}


def test_home_texture_overrides_dress_every_set_that_wears_home_textures(tmp_path):
    write_shape_subset(tmp_path / "s", CLASSES, image_size=16, train_per_class=30, val_per_class=2, diagnostic_per_class=4,
                       texture_correlation=1.0, home_textures=SWAPPED, progress=False)
    manifest = pd.read_csv(tmp_path / "s" / "manifest.csv")
    dressed = manifest[manifest.split.isin(["train", "val", "val_texture"])]
    assert (dressed["texture"] == dressed["label"].map(SWAPPED)).all() and len(dressed) == 3 * (30 + 2 + 4)
    # The shape-only images avoid the overriding patterns, and may now wear the built-in homes of these classes.
    neutral = set(manifest.loc[manifest.split == "val_shape", "texture"])
    assert not {TEXTURES[t][0] for t in neutral} & {TEXTURES[t][0] for t in SWAPPED.values()}
    assert neutral & {HOME_TEXTURE[c] for c in CLASSES}
    table = write_cue_conflict_set(tmp_path / "cc", CLASSES, image_size=16, per_class=2, home_textures=SWAPPED, progress=False)
    assert (table["style"] == table["texture_label"].map(SWAPPED)).all()
    record = json.loads((tmp_path / "cc" / "manifest.json").read_text())
    assert record["settings"]["home_textures"] == SWAPPED  # the set's identity changes with its textures
    write_fewshot_set(tmp_path / "fs", "square", count=3, image_size=16, home_textures=SWAPPED, progress=False)
    assert set(pd.read_csv(tmp_path / "fs" / "manifest.csv")["texture"]) == {"zigzag"}


def test_overrides_change_only_the_classes_they_name(tmp_path):
    assert resolve_home_textures({"disk": "grid"}) == {**HOME_TEXTURE, "disk": "grid"}
    assert resolve_home_textures(None) == HOME_TEXTURE == resolve_home_textures({})
    plain = dict(image_size=16, train_per_class=3, val_per_class=1, diagnostic_per_class=2, seed=4, progress=False)
    write_shape_subset(tmp_path / "a", CLASSES, **plain)
    write_shape_subset(tmp_path / "b", CLASSES, home_textures={"star": "dots"}, **plain)  # no class of this subset
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()


@pytest.mark.parametrize(
    "homes,colours,message",
    [
        ({"disk": "velvet"}, "class", r"^home_textures: unknown texture 'velvet' for 'disk'; choose from"),
        ({"blob": "dots"}, "class", r"^home_textures: unknown shape class 'blob'; choose from"),
        ({"disk": "checkers"}, "class", r"^home_textures: 'square' wears 'checkers', the texture of 'disk' \('checkers'\)"),
        ({"disk": "dense_stripes"}, "permuted", r"^home_textures: .*the pattern of 'disk' \('dense_stripes'\).* differ in pattern"),
    ],
)
def test_home_textures_that_cannot_name_the_classes_stop_before_writing(tmp_path, homes, colours, message):
    classes = ["disk", "square", "triangle"] if colours == "class" else ["disk", "square", "heart"]
    if colours == "permuted":
        homes = {**homes, "heart": "stripes"}
    with pytest.raises(ConfigError, match=message):
        write_shape_subset(tmp_path / "x", classes, texture_colours=colours, home_textures=homes, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_subset_of_every_class_has_no_neutral_texture_for_shape_only_images(tmp_path):
    with pytest.raises(ConfigError, match="^diagnostic_per_class: no texture is left"):
        write_shape_subset(tmp_path / "x", list(SHAPES), diagnostic_per_class=1, progress=False)
    assert not (tmp_path / "x").exists()

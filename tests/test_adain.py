"""AdaIN: the release file layouts load strictly, AdaIN transfers statistics, and a
stylised ImageFolder is complete, labelled, reproducible, or absent."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from topkshape.errors import InputDataError
from topkshape.stylize import (
    AdaINStylizer,
    adain_decoder,
    adaptive_instance_normalization,
    list_style_images,
    mean_std,
    save_random_adain_weights,
    stylize_image_folder,
    vgg_normalised_encoder,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return save_random_adain_weights(folder / "vgg_normalised.pth", folder / "decoder.pth", seed=0)


@pytest.fixture(scope="module")
def stylizer(weights):
    return AdaINStylizer.from_files(*weights)


def write_png(path, size, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


@pytest.fixture
def image_folder(tmp_path):
    src = tmp_path / "src"
    for c, label in enumerate(["cat", "dog"]):
        for i in range(2):
            write_png(src / label / f"img{i}.png", (32, 32), seed=10 * c + i)
    styles = tmp_path / "styles"
    write_png(styles / "b_style.png", (48, 40), seed=100)
    write_png(styles / "a_style.png", (24, 36), seed=101)
    return src, styles


def test_release_layouts_have_the_real_state_dict_keys(weights):
    encoder_state = torch.load(weights[0], weights_only=True)
    decoder_state = torch.load(weights[1], weights_only=True)
    assert encoder_state["0.weight"].shape == (3, 3, 1, 1)
    assert encoder_state["2.weight"].shape == (64, 3, 3, 3)
    assert encoder_state["5.weight"].shape == (64, 64, 3, 3)
    assert encoder_state["51.weight"].shape == (512, 512, 3, 3)
    assert "52.weight" not in encoder_state and len(encoder_state) == 2 * 16 + 2
    assert decoder_state["1.weight"].shape == (256, 512, 3, 3)
    assert decoder_state["28.weight"].shape == (3, 64, 3, 3)
    assert sorted(int(k.split(".")[0]) for k in decoder_state if k.endswith("weight")) == [
        1, 5, 8, 11, 14, 18, 21, 25, 28
    ]


def test_saved_weights_load_strictly(weights, stylizer):
    encoder_state = torch.load(weights[0], weights_only=True)
    assert len(stylizer.encoder) == 31
    for key, value in stylizer.encoder.state_dict().items():
        assert torch.equal(value, encoder_state[key])
    assert all(not p.requires_grad for p in stylizer.parameters())


def test_wrong_shapes_raise_input_data_error_naming_file_and_key(tmp_path, weights):
    state = torch.load(weights[1], weights_only=True)
    state["5.weight"] = torch.zeros(128, 256, 3, 3)
    bad = tmp_path / "bad_decoder.pth"
    torch.save(state, bad)
    with pytest.raises(InputDataError) as info:
        AdaINStylizer.from_files(weights[0], bad)
    message = str(info.value)
    assert "bad_decoder.pth" in message and "'5.weight'" in message and "\n" not in message


def test_missing_or_garbage_weights_raise_input_data_error(tmp_path, weights):
    with pytest.raises(InputDataError, match="nowhere.pth"):
        AdaINStylizer.from_files(tmp_path / "nowhere.pth", weights[1])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputDataError, match="garbage.pth"):
        AdaINStylizer.from_files(garbage, weights[1])


def test_adain_output_has_the_style_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(2, 5, 8, 8, generator=g) * 3.0 + 1.0
    style = torch.randn(2, 5, 6, 7, generator=g) * 0.5 - 2.0
    out = adaptive_instance_normalization(content, style)
    out_mean, out_std = mean_std(out)
    style_mean, style_std = mean_std(style)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_std, style_std, atol=1e-3, rtol=1e-3)
    # A style batch of one applies to every content image.
    broadcast = adaptive_instance_normalization(content, style[:1])
    torch.testing.assert_close(mean_std(broadcast)[0], style_mean[:1].expand(2, -1, -1, -1), atol=1e-4, rtol=1e-4)


def test_encoder_and_decoder_shapes():
    encoder, decoder = vgg_normalised_encoder(), adain_decoder()
    with torch.no_grad():
        feat = encoder(torch.rand(1, 3, 64, 64))
        assert feat.shape == (1, 512, 8, 8)
        assert decoder(feat).shape == (1, 3, 64, 64)


def test_forward_broadcasts_style_and_stays_in_unit_range(stylizer):
    content = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        out = stylizer(content, torch.rand(1, 3, 40, 24), alpha=0.5)
    assert out.shape == (2, 3, 32, 32)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_stylized_folder_keeps_layout_and_labels_and_is_reproducible(tmp_path, image_folder, stylizer):
    src, styles_dir = image_folder
    styles = list_style_images(styles_dir)
    assert [p.name for p in styles] == ["a_style.png", "b_style.png"]

    outs = [tmp_path / "out1", tmp_path / "out2"]
    tables = [
        stylize_image_folder(src, out, styles, stylizer, alpha=0.7, seed=3, size=32, style_size=24, batch_size=3,
                             progress=False)
        for out in outs
    ]
    csv = pd.read_csv(outs[0] / "styles.csv", keep_default_na=False, dtype=str)
    assert list(csv.columns) == ["image", "label", "style", "texture_label"]
    assert csv["image"].tolist() == ["cat/img0.png", "cat/img1.png", "dog/img0.png", "dog/img1.png"]
    assert csv["label"].tolist() == ["cat", "cat", "dog", "dog"]
    assert set(csv["style"]) <= {"a_style.png", "b_style.png"}
    assert (csv["texture_label"] == "").all()
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert (outs[0] / "styles.csv").read_bytes() == (outs[1] / "styles.csv").read_bytes()

    for rel in csv["image"]:
        first = np.asarray(Image.open(outs[0] / rel))
        assert first.shape == (32, 32, 3)
        np.testing.assert_array_equal(first, np.asarray(Image.open(outs[1] / rel)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out1", "out2", "src", "styles"]


def test_content_is_resized_by_its_short_side(tmp_path, stylizer):
    src = tmp_path / "src"
    write_png(src / "only" / "wide.jpg", (40, 24), seed=1)
    write_png(tmp_path / "s.png", (16, 16), seed=2)
    stylize_image_folder(src, tmp_path / "out", [tmp_path / "s.png"], stylizer, size=16, style_size=16, progress=False)
    # torchvision's Resize(16), as pytorch-AdaIN's test_transform: long side int(40 * 16 / 24) = 26.
    assert Image.open(tmp_path / "out" / "only" / "wide.png").size == (26, 16)


def test_alpha_blends_adain_and_content_features_at_alpha_other_than_one_half():
    # Identity encoder and decoder: the output is the blended feature map itself.
    stylizer = AdaINStylizer(encoder=torch.nn.Identity(), decoder=torch.nn.Identity())
    content = torch.tensor([0.2, 0.4]).view(1, 1, 1, 2).repeat(1, 3, 1, 1)
    style = torch.tensor([0.5, 0.9, 0.7]).view(1, 1, 1, 3).repeat(1, 3, 1, 1)
    # By hand: content mean 0.3, unbiased variance 0.02; style mean 0.7, unbiased variance 0.04.
    s_c, s_s = (0.02 + 1e-5) ** 0.5, (0.04 + 1e-5) ** 0.5
    adain = [0.7 + (0.2 - 0.3) / s_c * s_s, 0.7 + (0.4 - 0.3) / s_c * s_s]
    for alpha in (0.0, 0.25, 0.8, 1.0):
        expected = torch.tensor([alpha * a + (1 - alpha) * c for a, c in zip(adain, (0.2, 0.4))])
        out = stylizer(content, style, alpha=alpha)
        torch.testing.assert_close(out, expected.view(1, 1, 1, 2).expand(1, 3, 1, 2), atol=1e-6, rtol=0)
    # 0.25 is not the symmetric 0.5 blend: swapping the roles would give another result.
    assert not torch.allclose(stylizer(content, style, alpha=0.25), stylizer(content, style, alpha=0.75))


def test_style_is_sized_on_its_own_not_stretched_to_the_content(tmp_path):
    seen = []

    class RecordingEncoder(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return torch.nn.functional.avg_pool2d(x, 4)

    class Upsample(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=4)

    stylizer = AdaINStylizer(encoder=RecordingEncoder(), decoder=Upsample())
    src = tmp_path / "src"
    write_png(src / "only" / "content.png", (32, 24), seed=1)  # wide content
    write_png(tmp_path / "tall_style.png", (30, 60), seed=2)  # tall style
    stylize_image_folder(src, tmp_path / "out", [tmp_path / "tall_style.png"], stylizer, size=16, style_size=20,
                         progress=False)
    # Style: shorter side 30 -> 20, so 20 x 40 (H x W = 40 x 20); content: 24 -> 16, so 16 x 21.
    assert seen == [(40, 20), (16, 21)]
    seen.clear()
    stylize_image_folder(src, tmp_path / "out2", [tmp_path / "tall_style.png"], stylizer, size=16, style_size=20,
                         crop=True, progress=False)
    assert seen == [(20, 20), (16, 16)]
    assert Image.open(tmp_path / "out2" / "only" / "content.png").size == (16, 16)


def test_stylized_folder_records_its_settings_and_files_in_a_manifest(tmp_path, image_folder, stylizer):
    src, styles_dir = image_folder
    out = tmp_path / "out"
    stylize_image_folder(src, out, list_style_images(styles_dir), stylizer, alpha=0.3, size=32, style_size=24,
                         progress=False)
    record = json.loads((out / "manifest.json").read_text())
    assert record["settings"] == {"alpha": 0.3, "seed": 0, "content_size": 32, "style_size": 24, "crop": False}
    assert sorted(record["styles"]) == ["a_style.png", "b_style.png"]
    assert sorted(record["files"]) == ["cat/img0.png", "cat/img1.png", "dog/img0.png", "dog/img1.png"]
    assert record["files"]["cat/img0.png"] == hashlib.sha256((out / "cat" / "img0.png").read_bytes()).hexdigest()


def test_corrupt_image_raises_and_leaves_no_output(tmp_path, image_folder, stylizer):
    src, styles_dir = image_folder
    (src / "dog" / "broken.png").write_bytes(b"\x89PNG garbage, not an image")
    out = tmp_path / "out"
    with pytest.raises(InputDataError, match="broken.png"):
        stylize_image_folder(src, out, list_style_images(styles_dir), stylizer, size=32, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "styles"]


def test_empty_inputs_raise_input_data_error(tmp_path, image_folder, stylizer):
    src, _ = image_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match="empty"):
        list_style_images(empty)
    with pytest.raises(InputDataError):
        stylize_image_folder(src, tmp_path / "out", [], stylizer, size=32, progress=False)
    with pytest.raises(InputDataError, match="empty"):
        stylize_image_folder(empty, tmp_path / "out", [tmp_path], stylizer, size=32, progress=False)
    assert not (tmp_path / "out").exists()

"""The cue-conflict evaluation in-process, on tiny stimuli and tiny models whose decisions are known by construction.

A "colour-code" model answers the class whose number is the red value of the image's
top-left pixel, so every expected decision is read off the stimuli the test writes.
"""

from __future__ import annotations

import copy
import io
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from topkshape.errors import ConfigError, InputDataError
from topkshape.models import insert_topk
from topkshape.shape_bias import evaluate
from topkshape.shape_bias.decisions import sixteen_class_decisions, sixteen_class_indices
from topkshape.shape_bias.evaluate import (
    Stimuli,
    decode_stimulus,
    evaluate_cue_conflict,
    list_cue_conflict_images,
    load_stimuli,
    load_weights,
    model_decisions,
    paper_topk_positions,
    raw_decisions,
    topk_summary,
    with_inference_topk,
)
from topkshape.shape_bias.run import load_plain_model, run_cue_conflict_sweep
from conftest import help_text

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIXTEEN = list(sixteen_class_indices())

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ColourCode(nn.Module):
    """Logits with one spike at ``lookup[red]``, red the 0-255 value of the top-left pixel."""

    def __init__(self, outputs: int, lookup: list[int]) -> None:
        super().__init__()
        self.outputs = outputs
        self.lookup = torch.tensor(lookup)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        red = torch.round((x[:, 0, 0, 0] * STD[0] + MEAN[0]) * 255).long()
        logits = torch.zeros(len(x), self.outputs)
        logits[torch.arange(len(x)), self.lookup[red]] = 50.0
        return logits


def write_image(path: Path, red: int, size: int | tuple[int, int] = 8) -> Path:
    width, height = (size, size) if isinstance(size, int) else size
    pixels = np.full((height, width, 3), 90, dtype=np.uint8)
    pixels[..., 0] = red
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def coded(tmp_path):
    """5 stimuli of 8 px in 2 folders; the red value of each is the class it will be given."""
    root = tmp_path / "cc"
    reds = {"cat/cat1-dog1.png": 2, "cat/cat2-dog2.png": 0, "dog/dog1-cat1.png": 1, "dog/dog2-cat2.png": 2, "dog/dog3-cat3.png": 1}
    for name, red in reds.items():
        write_image(root / name, red)
    return root, list(reds.values())


# --- listing and decoding ------------------------------------------------------------------


def test_listing_takes_png_and_jpeg_files_one_folder_deep_sorted_with_their_folder_as_category(tmp_path):
    write_image(tmp_path / "dog" / "b.png", 0)
    write_image(tmp_path / "cat" / "z.JPG", 0)
    write_image(tmp_path / "cat" / "a.jpeg", 0)
    write_image(tmp_path / "cat" / ".hidden.png", 0)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    write_image(tmp_path / "top.png", 0)  # not in a category folder
    items = list_cue_conflict_images(str(tmp_path))
    assert items == [(tmp_path / "cat" / "a.jpeg", "cat"), (tmp_path / "cat" / "z.JPG", "cat"), (tmp_path / "dog" / "b.png", "dog")]


def test_listing_names_a_missing_folder_and_one_without_images(tmp_path):
    with pytest.raises(InputDataError) as exc:
        list_cue_conflict_images(tmp_path / "missing")
    assert str(exc.value) == f"cue-conflict folder not found: {tmp_path / 'missing'}"
    (tmp_path / "cat").mkdir()
    with pytest.raises(InputDataError) as exc:
        list_cue_conflict_images(tmp_path)
    assert str(exc.value) == f"no cue-conflict images (<category>/<image>.png) in {tmp_path}"


def test_an_unreadable_image_is_named_with_the_reason(tmp_path):
    empty = tmp_path / "cat" / "empty.png"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(InputDataError) as exc:
        decode_stimulus(empty, 8)
    assert str(exc.value) == f"unreadable cue-conflict image {empty}: empty file (0 bytes)"
    broken = tmp_path / "cat" / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(InputDataError) as exc:
        decode_stimulus(broken, 8)
    assert str(exc.value).startswith(f"unreadable cue-conflict image {broken}: cannot identify image file")


def test_an_image_of_another_size_is_resized_at_the_ratio_256_to_224_of_the_input_size(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "cat" / "cat1-dog1.png"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path)
    decoded, resized = decode_stimulus(path, 32)
    # model-vs-human's Resize(256) + CenterCrop(224), scaled to 32 px: Resize(round(32 * 256 / 224) = 37) + CenterCrop(32).
    expected = transforms.Compose([transforms.Resize(37), transforms.CenterCrop(32), transforms.PILToTensor()])(Image.fromarray(pixels))
    assert resized and decoded.dtype == torch.uint8 and torch.equal(decoded, expected)
    write_image(tmp_path / "dog" / "dog1-cat1.png", 7, size=32)
    stimuli = load_stimuli(tmp_path, 32)
    assert stimuli.resized == 1 and stimuli.pixels.shape == (2, 3, 32, 32)


def test_decoding_runs_in_a_thread_pool_of_the_given_size_only_when_asked(coded, monkeypatch):
    root, _ = coded
    pools = []

    class RecordingPool(evaluate.ThreadPoolExecutor):
        def __init__(self, max_workers):
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(evaluate, "ThreadPoolExecutor", RecordingPool)
    alone = load_stimuli(root, 8)
    assert pools == []
    threaded = load_stimuli(root, 8, threads=2)
    assert pools == [2]
    assert torch.equal(alone.pixels, threaded.pixels) and alone.items == threaded.items
    evaluate_cue_conflict(ColourCode(3, [0, 1, 2]), root, subject="m", classes=["a", "b", "c"], image_size=8, workers=3, progress=False)
    assert pools == [2, 3]
    evaluate_cue_conflict(ColourCode(3, [0, 1, 2]), root, subject="m", classes=["a", "b", "c"], image_size=8, progress=False)
    assert pools == [2, 3]  # workers=0: decoded in the calling thread


def test_stimuli_know_their_length_and_move_to_a_device_unchanged(coded):
    root, reds = coded
    stimuli = load_stimuli(root, 8)
    assert len(stimuli) == len(reds) == 5
    moved = stimuli.to("cpu")
    assert isinstance(moved, Stimuli) and moved.items == stimuli.items and moved.resized == stimuli.resized == 0
    assert torch.equal(moved.pixels, stimuli.pixels)


def test_the_default_device_is_cuda_when_available_else_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert evaluate._device(None) == torch.device("cpu")
    assert evaluate._device("meta") == torch.device("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert evaluate._device(None) == torch.device("cuda")
    assert evaluate._device("cpu") == torch.device("cpu")


# --- decisions and raw rows ---------------------------------------------------------------


def test_decisions_are_the_models_argmax_class_in_every_batch(coded):
    root, reds = coded
    model = ColourCode(3, [0, 1, 2])
    stimuli = load_stimuli(root, 8)
    responses = model_decisions(model, stimuli, classes=["a", "b", "c"], batch_size=2, device="cpu", progress=False)
    assert responses == [["a", "b", "c"][red] for red in reds]
    assert model.calls == [2, 2, 1]
    model.calls.clear()
    model_decisions(model, stimuli, classes=["a", "b", "c"], device="cpu", progress=False)
    assert model.calls == [5]  # one batch of at most 32


def test_a_1000_way_model_decides_among_the_16_categories(coded):
    root, reds = coded
    # Red value k spikes the first ImageNet class of the k-th category.
    model = ColourCode(1000, [sixteen_class_indices()[name][0] for name in SIXTEEN])
    responses = model_decisions(model, load_stimuli(root, 8), device="cpu", progress=False)
    assert responses == [SIXTEEN[red] for red in reds]


def test_a_model_without_1000_outputs_needs_class_names(coded):
    root, _ = coded
    with pytest.raises(InputDataError) as exc:
        model_decisions(ColourCode(3, [0, 1, 2]), load_stimuli(root, 8), device="cpu", progress=False)
    assert str(exc.value) == "a model with 3 outputs needs its class names; the 16-class mapping needs 1000 ImageNet outputs"


def test_raw_rows_are_model_vs_humans_columns_one_trial_per_stimulus(coded):
    root, reds = coded
    rows = evaluate_cue_conflict(ColourCode(3, [0, 1, 2]), root, subject="net-topk10", classes=["cat", "dog", "bird"],
                                 image_size=8, batch_size=2, device="cpu", progress=False)
    assert list(rows.columns) == ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
    assert rows["subj"].tolist() == ["net-topk10"] * 5
    assert rows["session"].tolist() == [1] * 5
    assert rows["trial"].tolist() == [1, 2, 3, 4, 5]
    assert rows["rt"].isna().all() and rows["condition"].isna().all()
    assert rows["category"].tolist() == ["cat", "cat", "dog", "dog", "dog"]
    assert rows["imagename"].tolist() == ["cat1-dog1.png", "cat2-dog2.png", "dog1-cat1.png", "dog2-cat2.png", "dog3-cat3.png"]
    assert rows["object_response"].tolist() == [["cat", "dog", "bird"][red] for red in reds]
    assert raw_decisions(load_stimuli(root, 8), ["x"] * 5, "s")["object_response"].tolist() == ["x"] * 5


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_named_after_the_subject_shows_on_a_terminal_only_when_asked_and_is_cleared(coded, monkeypatch):
    root, _ = coded
    model = ColourCode(3, [0, 1, 2])
    for progress in (True, False):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        evaluate_cue_conflict(model, root, subject="net-topk5", classes=["a", "b", "c"], image_size=8, batch_size=2, progress=progress)
        monkeypatch.undo()
        shown = terminal.getvalue()
        if progress:
            assert "cue-conflict net-topk5: " in shown and "/3 [" in shown  # 3 batches
            assert shown.endswith("\r") and "\n" not in shown  # wiped when done, not left on screen
        else:
            assert shown == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model_decisions(model, load_stimuli(root, 8), classes=["a", "b", "c"], device="cpu")
    monkeypatch.undo()
    assert "cue-conflict: " in terminal.getvalue()  # on by default, with the default name


# --- Top-K at inference -----------------------------------------------------------------


def test_paper_topk_positions_per_architecture():
    assert paper_topk_positions("alexnet") == tuple(f"features.{i}" for i in (2, 5, 7, 9, 12))
    assert paper_topk_positions("vgg16") == tuple(f"features.{i}" for i in (4, 9, 16, 23, 30))
    assert paper_topk_positions("resnet18") == ("layer2",)
    assert paper_topk_positions("resnet18_cifar") == ("layer2",)
    with pytest.raises(ConfigError) as exc:
        paper_topk_positions("vgg11")
    assert str(exc.value) == ("no paper Top-K positions for 'vgg11' (known: ['alexnet', 'resnet18', 'resnet18_cifar', 'vgg16']); "
                              "name the modules with --positions")


def _small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())


def test_inference_topk_is_a_copy_with_the_asked_fraction_mode_and_ties():
    plain = _small()
    assert with_inference_topk(plain, ["1"], None) is plain
    model = with_inference_topk(plain, ["1", "3"], 0.25, "non_topk", ties="exact")
    assert topk_summary(plain) == {}
    assert topk_summary(model) == {name: {"layer": "TopK", "fraction": 0.25, "mode": "non_topk", "ties": "exact"}
                                   for name in ("1_topk", "3_topk")}
    # Without ties the layers' own default (keep); Eq. 2 layers report mode mean_replace.
    assert topk_summary(with_inference_topk(plain, ["1"], 0.5)) == {"1_topk": {"layer": "TopK", "fraction": 0.5, "mode": "topk", "ties": "keep"}}
    assert topk_summary(with_inference_topk(plain, ["3"], 0.1, "mean_replace")) == {
        "3_topk": {"layer": "TopKMeanReplace", "fraction": 0.1, "mode": "mean_replace", "ties": "keep"}}


# --- weights and classifiers by name -------------------------------------------------------


def test_weights_load_from_a_state_dict_or_a_checkpoint_holding_one(tmp_path):
    torch.manual_seed(0)
    source = nn.Linear(2, 3)
    for name, payload in (("plain.pt", source.state_dict()), ("sd.pt", {"state_dict": source.state_dict(), "epoch": 3}),
                          ("model.pt", {"model": source.state_dict(), "classes": ["a"]})):
        torch.save(payload, tmp_path / name)
        target = nn.Linear(2, 3)
        load_weights(target, tmp_path / name)
        assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias), name


def test_weights_that_are_no_state_dict_or_do_not_fit_are_named(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(InputDataError) as exc:
        load_weights(nn.Linear(2, 3), tmp_path / "list.pt")
    assert str(exc.value) == f"weights file {tmp_path / 'list.pt'} holds no state dict"
    torch.save(nn.Linear(4, 3).state_dict(), tmp_path / "other.pt")
    with pytest.raises(InputDataError) as exc:
        load_weights(nn.Linear(2, 3), tmp_path / "other.pt")
    message = str(exc.value)
    assert message.startswith(f"weights file {tmp_path / 'other.pt'} does not fit this architecture (Error(s) in loading state_dict for Linear:")
    assert "size mismatch for weight" in message and "\n" not in message

    class Long(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.a_layer_with_a_name_long_enough_to_make_the_error_message_longer_than_two_hundred_characters = nn.Linear(n, 3)

    torch.save(Long(4).state_dict(), tmp_path / "long.pt")
    with pytest.raises(InputDataError) as exc:
        load_weights(Long(2), tmp_path / "long.pt")
    message = str(exc.value)
    # torch's first two lines (header, the weight's mismatch), cut at 200 characters; not the bias's line.
    inner = message[message.index("(") + 1 : -1]
    assert len(inner) == 200 and inner.startswith("Error(s) in loading state_dict for Long: \tsize mismatch for a_layer")


# --- the command line, in-process ----------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_inputs(tmp_path_factory):
    """Four 16 px stimuli and one of 20 px, and the weights of a random ResNet-18."""
    tmp_path = tmp_path_factory.mktemp("resnet")
    rng = np.random.default_rng(4)
    root = tmp_path / "cc"
    for name, size in (("cat/cat1-dog1.png", 16), ("cat/cat2-dog2.png", 16), ("dog/dog1-cat1.png", 16), ("dog/dog2-cat2.png", 20),
                       ("dog/dog3-cat3.png", 16)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    torch.save(model.state_dict(), tmp_path / "resnet.pt")
    return root, tmp_path / "resnet.pt", model


def _reference_decisions(model: nn.Module, root: Path, size: int) -> list[str]:
    """Decisions computed without the evaluate module: torchvision transforms, forward, 16-class mapping."""
    to_input = transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size), transforms.ToTensor(),
                                   transforms.Normalize(MEAN, STD)])
    images = []
    for path in sorted(root.glob("*/*.png")):
        image = Image.open(path).convert("RGB")
        images.append(transforms.Compose(to_input.transforms[2:])(image) if image.size == (size, size) else to_input(image))
    with torch.no_grad():
        return sixteen_class_decisions(torch.softmax(model.eval()(torch.stack(images)), dim=1))


def test_command_line_applies_topk_at_the_named_positions_and_writes_the_raw_rows(resnet_inputs, tmp_path, capsys, monkeypatch):
    root, weights, model = resnet_inputs
    out = tmp_path / "new" / "raw.csv"
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # records, leaves the test's threads alone
    code = evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--fraction", "0.5", "--mode", "non_topk", "--ties", "exact",
                          "--positions", "layer3,layer1", "--images", str(root), "--out", str(out), "--image-size", "16",
                          "--batch-size", "2", "--threads", "2", "--device", "cpu"])
    assert code == 0 and threads == [2]
    assert capsys.readouterr().out == f"5 decisions of resnet18-non_topk50 at 2 positions (layer1, layer3) (1 images resized to 16 px) -> {out}\n"
    rows = pd.read_csv(out)
    assert rows["subj"].tolist() == ["resnet18-non_topk50"] * 5 and rows["trial"].tolist() == [1, 2, 3, 4, 5]
    reference = insert_topk(copy.deepcopy(model), ["layer3", "layer1"], fraction=0.5, mode="non_topk", ties="exact")
    assert rows["object_response"].tolist() == _reference_decisions(reference, root, 16)


def test_command_line_defaults_plain_model_paper_positions_and_224_px(resnet_inputs, tmp_path, capsys, monkeypatch):
    root, weights, model = resnet_inputs
    out = tmp_path / "two" / "levels" / "plain.csv"
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--images", str(root), "--out", str(out)]) == 0
    assert threads == [1]
    assert capsys.readouterr().out == f"5 decisions of resnet18 (5 images resized to 224 px) -> {out}\n"
    assert pd.read_csv(out)["object_response"].tolist() == _reference_decisions(model, root, 224)
    # With a fraction and no --positions: the paper's position for ResNet-18 (layer2), mode topk, ties keep.
    out = tmp_path / "topk.csv"
    assert evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--fraction", "0.25", "--images", str(root), "--out", str(out),
                          "--image-size", "16", "--subject", "mine"]) == 0
    assert capsys.readouterr().out == f"5 decisions of mine at 1 positions (layer2) (1 images resized to 16 px) -> {out}\n"
    reference = insert_topk(copy.deepcopy(model), ["layer2"], fraction=0.25, mode="topk", ties="keep")
    assert pd.read_csv(out)["object_response"].tolist() == _reference_decisions(reference, root, 16)


def test_command_line_asks_torchvision_for_its_default_weights_and_runs_batches_of_32(tmp_path, capsys, monkeypatch):
    root = tmp_path / "cc"
    reds = [i % 16 for i in range(33)]
    for i, red in enumerate(reds):
        write_image(root / "cat" / f"cat{i:02d}-dog1.png", red)
    asked = []
    model = ColourCode(1000, [sixteen_class_indices()[name][0] for name in SIXTEEN])
    monkeypatch.setattr(torchvision.models, "get_model", lambda arch, weights: asked.append((arch, weights)) or model)  # no download
    pools = []
    monkeypatch.setattr(evaluate, "ThreadPoolExecutor", lambda max_workers: pools.append(max_workers) or ThreadPoolExecutor(max_workers))
    out = tmp_path / "raw.csv"
    assert evaluate.main(["--arch", "alexnet", "--images", str(root), "--out", str(out), "--image-size", "8"]) == 0
    assert asked == [("alexnet", "DEFAULT")]
    assert pools == []  # one thread by default: no decoding pool
    assert model.calls == [32, 1]
    assert pd.read_csv(out)["object_response"].tolist() == [SIXTEEN[red] for red in reds]


class TieProbe(nn.Module):
    """Answers the first category when ``features`` left no zero in the input, else the second.

    Exactly tied inputs (a one-colour image) tell Top-K's tie rules apart: 'keep' keeps every
    tied entry (no zero), 'exact' keeps exactly K of them and zeroes the rest.
    """

    def __init__(self, calls: list[int]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Identity())
        self.record = calls.append  # a builtin: the copy with Top-K records into the same list

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.record(len(x))
        zeroed = (self.features(x) == 0).flatten(1).any(dim=1).long()
        logits = torch.zeros(len(x), 1000)
        firsts = torch.tensor([sixteen_class_indices()[name][0] for name in SIXTEEN[:2]])
        logits[torch.arange(len(x)), firsts[zeroed]] = 50.0
        return logits


@pytest.mark.parametrize("ties,answer", [("exact", "bear"), ("keep", "airplane")])
def test_command_line_passes_ties_threads_device_and_batch_size_and_shows_no_progress_bar(ties, answer, coded, tmp_path, monkeypatch):
    root, _ = coded
    calls = []
    model = TieProbe(calls)
    monkeypatch.setattr(torchvision.models, "get_model", lambda arch, weights: model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # --device cpu must still be the CPU
    pools = []
    monkeypatch.setattr(evaluate, "ThreadPoolExecutor", lambda max_workers: pools.append(max_workers) or ThreadPoolExecutor(max_workers))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = tmp_path / "raw.csv"
    code = evaluate.main(["--arch", "alexnet", "--weights", "none", "--fraction", "0.5", "--ties", ties, "--positions", "features.0",
                          "--images", str(root), "--out", str(out), "--image-size", "8", "--batch-size", "2", "--threads", "3",
                          "--device", "cpu"])
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    assert code == 0 and terminal.getvalue() == ""
    assert pools == [3] and calls == [2, 2, 2, 1]  # the first: the probe of each module's output (a batch of 2)
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
    assert rows["object_response"].tolist() == [answer] * 5


def test_command_line_help_documents_every_option(capsys):
    text = help_text(evaluate.main, capsys)
    assert text == (
        "usage: python -m topkshape.shape_bias.evaluate [-h] --model MODEL [--weights WEIGHTS] [--seed SEED] "
        "[--weights-sha256 WEIGHTS_SHA256] [--fraction FRACTION] [--mode {topk,non_topk,mean_replace}] [--ties {keep,exact,random}] "
        "[--tie-seed TIE_SEED] [--placement PLACEMENT] [--list-positions] [--images IMAGES] [--out OUT] [--subject SUBJECT] "
        "[--image-size IMAGE_SIZE] [--batch-size BATCH_SIZE] [--threads THREADS] [--device DEVICE] "
        "Decisions of any classifier (torchvision, timm, your own) on cue-conflict stimuli, with or without Top-K at a placement "
        "you choose, as a model-vs-human raw CSV. "
        "options: -h, --help show this help message and exit "
        "--model MODEL, --arch MODEL torchvision:<name>, timm:<name>, python:<module>:<function>, or a bare torchvision name "
        "(alexnet, vgg16, ...) "
        "--weights WEIGHTS PATH of a state dict (.pt/.pth/.bin/.safetensors), random, a torchvision weights name (DEFAULT, "
        "IMAGENET1K_V1), or a timm pretrained tag (DEFAULT: timm's default); none = random "
        "--seed SEED --weights random: the seed the model is built under "
        "--weights-sha256 WEIGHTS_SHA256 pin: the SHA-256 a weights file must have "
        "--fraction FRACTION Top-K fraction K at every position; omit for the plain model "
        "--mode {topk,non_topk,mean_replace} keep the Top-K set, its complement, or Eq. 2 "
        "--ties {keep,exact,random} keep every entry tied at the threshold, exactly K (the paper code's torch.topk), "
        "or exactly K with ties drawn at random "
        "--tie-seed TIE_SEED --ties random: the seed of the first Top-K position's draws "
        "--placement PLACEMENT, --positions PLACEMENT where Top-K goes: paper, stages, every_block, every_relu, module names, "
        "globs (layer[2-3], features.*) or type:<Class>, comma-separated (default: paper for alexnet, vgg16, resnet18) "
        "--list-positions print every module with its output shape and the Top-K it would get, then stop "
        "--images IMAGES cue-conflict folder: <category>/<image>.png "
        "--out OUT raw CSV to write (the run's record goes beside it, as <out>.json) "
        "--subject SUBJECT the subj column (default: <model> or <model>-<mode><K%>) "
        "--image-size IMAGE_SIZE the model's input size (default: from its weights' metadata or timm's data config); "
        "stimuli of another size are resized as model-vs-human does "
        "--batch-size BATCH_SIZE "
        "--threads THREADS CPU threads for decoding and inference "
        "--device DEVICE cpu, cuda, cuda:1 (default: cuda when available)"
    )


def test_command_line_errors_are_one_line_with_status_1(resnet_inputs, tmp_path, capsys):
    root, weights, _ = resnet_inputs
    out = tmp_path / "o.csv"
    common = ["--weights", str(weights), "--images", str(root), "--out", str(out), "--image-size", "16"]
    assert evaluate.main(["--arch", "resnet18", "--fraction", "0.5", "--positions", "nope", *common]) == 1
    assert capsys.readouterr().err == "topkshape: placement nope: no such module in ResNet (closest names: conv1, bn1, relu)\n"
    assert evaluate.main(["--arch", "resnet18", "--fraction", "1.5", *common]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--images", str(tmp_path / "none"), "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"topkshape: cue-conflict folder not found: {tmp_path / 'none'}\n"
    assert not out.exists()


def test_command_line_options_parse_to_their_types_and_defaults():
    defaults = vars(evaluate._parser().parse_args(["--model", "alexnet"]))
    assert defaults == {"model": "alexnet", "weights": "DEFAULT", "seed": 0, "weights_sha256": None, "fraction": None, "mode": "topk",
                        "ties": "keep", "tie_seed": 0, "placement": None, "list_positions": False, "images": None, "out": None,
                        "subject": None, "image_size": None, "batch_size": 32, "threads": 1, "device": None}
    given = evaluate._parser().parse_args(["--arch", "vgg16", "--seed", "3", "--tie-seed", "4", "--positions", "features.1",
                                           "--images", "cc", "--out", "o.csv", "--image-size", "64", "--batch-size", "8"])
    assert (given.model, given.seed, given.tie_seed, given.placement) == ("vgg16", 3, 4, "features.1")
    assert (given.images, given.out, given.image_size, given.batch_size) == (Path("cc"), Path("o.csv"), 64, 8)


def test_command_line_needs_images_and_out_unless_it_lists_positions(resnet_inputs, capsys):
    root, weights, model = resnet_inputs
    for missing in (["--images", str(root)], ["--out", "o.csv"], []):
        with pytest.raises(SystemExit) as exc:
            evaluate.main(["--arch", "resnet18", "--weights", str(weights), *missing])
        assert exc.value.code == 2
        assert capsys.readouterr().err.rstrip().endswith("error: --images and --out are required (unless --list-positions)")
    assert evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--list-positions", "--image-size", "32"]) == 0
    from topkshape.models.placement import format_positions, probe

    assert capsys.readouterr().out == format_positions(probe(model, 32, 0)) + "\n"


def test_command_line_writes_its_record_beside_the_csv_with_the_seed_pin_and_tie_seed_it_used(resnet_inputs, tmp_path, capsys, monkeypatch):
    import hashlib
    import json

    root, weights, _ = resnet_inputs
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    seen = []
    real = evaluate.with_inference_topk
    monkeypatch.setattr(evaluate, "with_inference_topk", lambda *args, **kwargs: seen.append(kwargs) or real(*args, **kwargs))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    out = tmp_path / "raw.csv"
    common = ["--images", str(root), "--out", str(out), "--image-size", "16"]
    assert evaluate.main(["--model", "torchvision:resnet18", "--weights", str(weights), "--weights-sha256", digest, "--fraction", "0.5",
                          "--ties", "random", "--tie-seed", "7", "--positions", "layer1", *common]) == 0
    assert seen == [{"ties": "random", "tie_seed": 7}]
    text = Path(f"{out}.json").read_text()
    assert text.startswith('{\n  "model": ') and text.endswith("}\n")  # indented JSON, one key a line
    record = json.loads(text)
    assert record["subject"] == "resnet18-topk50"  # the label is the name after "torchvision:"
    assert {key: record[key] for key in ("fraction", "mode", "ties", "placement", "positions", "weights_sha256")} == {
        "fraction": 0.5, "mode": "topk", "ties": "random", "placement": "layer1", "positions": [{"module": "layer1", "kind": "spatial"}],
        "weights_sha256": digest}
    assert record["preprocessing"]["input_size"] == 16 and record["preprocessing"]["source"].endswith(", input size 16 from --image-size")
    assert list(pd.read_csv(out).columns) == ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
    # A pin the file does not have stops the run in one line, before anything is written.
    out.unlink()
    assert evaluate.main(["--arch", "resnet18", "--weights", str(weights), "--weights-sha256", "0" * 64, *common]) == 1
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()
    # Random weights follow --seed: the record's hash of the built weights changes with it, and only with it.
    hashes = []
    for seed in ("3", "3", "4"):
        assert evaluate.main(["--arch", "resnet18", "--weights", "random", "--seed", seed, *common]) == 0
        hashes.append(json.loads(Path(f"{out}.json").read_text())["weights_sha256"])
    assert hashes[0] == hashes[1] != hashes[2]


def test_command_line_labels_a_python_builder_by_its_function_and_names_a_bad_fraction(coded, tmp_path, capsys, monkeypatch):
    (tmp_path / "cli_nets.py").write_text(
        "from torch import nn\n\n\ndef tiny():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    root, _ = coded
    out = tmp_path / "raw.csv"
    common = ["--model", "python:cli_nets:tiny", "--weights", "random", "--images", str(root), "--out", str(out), "--image-size", "8"]
    assert evaluate.main([*common, "--fraction", "0.5", "--positions", "1"]) == 0
    assert capsys.readouterr().out.startswith("5 decisions of tiny-topk50 at 1 positions (1) ")
    assert set(pd.read_csv(out)["subj"]) == {"tiny-topk50"}
    assert evaluate.main([*common, "--fraction", "1.5", "--positions", "1"]) == 1
    assert capsys.readouterr().err == "topkshape: Top-K fraction must be in (0, 1], got 1.5\n"


def test_evaluate_cue_conflict_passes_device_and_defaults_to_batches_of_32_with_a_progress_bar(coded, monkeypatch):
    root, reds = coded
    seen = []
    monkeypatch.setattr(evaluate, "model_decisions", lambda model, stimuli, **kwargs: seen.append(kwargs) or ["cat"] * len(stimuli))
    rows = evaluate_cue_conflict(nn.Identity(), root, subject="s", image_size=8, device="cpu")
    assert rows["object_response"].tolist() == ["cat"] * len(reds)
    assert seen == [{"classes": None, "batch_size": 32, "device": "cpu", "progress": True, "desc": "cue-conflict s"}]


# --- the sweep job ----------------------------------------------------------------------------


def test_sweep_writes_one_raw_file_per_setting_equal_to_the_model_built_with_that_topk(resnet_inputs, tmp_path, caplog, monkeypatch):
    from topkshape.models import build_model

    root, _, _ = resnet_inputs
    tags = ["none", "topk50", "mean_replace25"]
    outs = [tmp_path / f"{tag}.csv" for tag in tags]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # device="cpu" must still be the CPU
    torch.manual_seed(1)
    with caplog.at_level(logging.INFO, logger="topkshape.shape_bias.run"):
        applied = run_cue_conflict_sweep("resnet18", tags, root, outs, image_size=16, batch_size=2, device="cpu")
    assert applied == {"none": {}, "topk50": {"layer2.topk": {"layer": "TopK", "fraction": 0.5, "mode": "topk", "ties": "keep"}},
                       "mean_replace25": {"layer2.topk": {"layer": "TopKMeanReplace", "fraction": 0.25, "mode": "mean_replace", "ties": "keep"}}}
    for tag, out, (fraction, mode) in zip(tags, outs, [(None, "topk"), (0.5, "topk"), (0.25, "mean_replace")]):
        torch.manual_seed(1)  # the same random weights; Top-K layers hold none
        model = build_model("resnet18", fraction=fraction, mode=mode, weights=None)
        rows = pd.read_csv(out)
        assert rows["subj"].tolist() == [f"resnet18-{tag}"] * 5
        assert rows["object_response"].tolist() == _reference_decisions(model, root, 16), tag
    loaded, *settings = [m for m in caplog.messages if "ties under an exactly-K rule" not in m]
    assert loaded.startswith("resnet18 (resnet18): 5 stimuli decoded once at 16 px (1 resized, the rest fed as they are); loading took ")
    assert len(settings) == 3
    assert settings[0].startswith("resnet18-none: Top-K layers: none; ") and settings[0].endswith(f" s -> {outs[0]}")
    assert settings[1].startswith("resnet18-topk50: Top-K layers: layer2.topk (topk 0.5, ties keep); ")
    assert settings[2].startswith("resnet18-mean_replace25: Top-K layers: layer2.topk (mean_replace 0.25, ties keep); ")
    # A tie line follows each setting with Top-K layers, none after the plain model's.
    ties = [m.split(":")[0] for m in caplog.messages if "ties under an exactly-K rule" in m]
    assert ties == ["resnet18-topk50", "resnet18-mean_replace25"]
    # The times logged are durations of this run, seconds not clock readings.
    times = [float(re.search(r"(?:took|;) (\d+\.\d) s", message)[1]) for message in [loaded, *settings]]
    assert all(0 <= t < 300 for t in times)


def _layer2_inputs(model: nn.Module, root: Path, size: int) -> torch.Tensor:
    """What the Top-K after ``layer2`` sees: the plain model's layer2 output on the stimuli."""
    seen = []
    handle = model.layer2.register_forward_hook(lambda module, inputs, output: seen.append(output.detach()))
    _reference_decisions(model, root, size)
    handle.remove()
    return torch.cat(seen)


def test_sweep_writes_the_tie_counts_of_each_setting_at_each_position(resnet_inputs, tmp_path):
    from topkshape.models import build_model
    from topkshape.ops import tie_counts
    from topkshape.shape_bias.run import TIE_COLUMNS

    root, _, _ = resnet_inputs
    tags = ["none", "topk50", "non_topk25"]
    torch.manual_seed(1)
    run_cue_conflict_sweep("resnet18", tags, root, [tmp_path / f"{t}.csv" for t in tags], image_size=16, batch_size=2,
                           device="cpu", ties_output=tmp_path / "ties.csv")
    ties = pd.read_csv(tmp_path / "ties.csv")
    assert list(ties.columns) == TIE_COLUMNS
    assert ties["subj"].tolist() == ["resnet18-topk50", "resnet18-non_topk25"] and set(ties["layer"]) == {"layer2.topk"}
    torch.manual_seed(1)
    seen = _layer2_inputs(build_model("resnet18", fraction=None, weights=None), root, 16)
    for row, fraction in zip(ties.to_dict("records"), (0.5, 0.25)):
        expected = tie_counts(seen, fraction)
        assert {key: row[key] for key in expected} == expected
    assert ties["channels"].tolist() == [5 * 128] * 2


def test_tie_spread_runs_every_topk_setting_under_each_random_tie_order(resnet_inputs, tmp_path):
    from topkshape.models import build_model, insert_topk
    from topkshape.shape_bias.run import TIE_SEED_STRIDE, run_tie_spread

    root, _, _ = resnet_inputs
    with pytest.raises(ValueError, match=r"^a tie spread needs at least one draw, got 0$"):
        run_tie_spread("resnet18", ["topk50"], root, tmp_path / "none.csv", 0)
    torch.manual_seed(1)
    table = run_tie_spread("resnet18", ["none", "topk50", "mean_replace25"], root, tmp_path / "spread.csv", 2, image_size=16,
                           batch_size=2, device="cpu")
    assert TIE_SEED_STRIDE >= 100  # more than a model's Top-K positions: draws never share a seed
    written = pd.read_csv(tmp_path / "spread.csv")
    assert len(written) == 2 * 2 * 5 and written["tie_seed"].tolist() == [0] * 10 + [TIE_SEED_STRIDE] * 10
    assert written["subj"].tolist() == (["resnet18-topk50"] * 5 + ["resnet18-mean_replace25"] * 5) * 2
    assert written["object_response"].tolist() == table["object_response"].tolist()
    for (seed, subject), rows in written.groupby(["tie_seed", "subj"]):
        fraction, mode = (0.5, "topk") if subject.endswith("topk50") else (0.25, "mean_replace")
        torch.manual_seed(1)
        model = insert_topk(build_model("resnet18", fraction=None, weights=None), ["layer2"], fraction=fraction, mode=mode,
                            ties="random", tie_seed=int(seed))
        assert rows["object_response"].tolist() == _reference_decisions(model, root, 16), (seed, subject)


def test_tie_spread_builds_each_setting_with_its_mode_random_ties_and_the_draws_seed(resnet_inputs, tmp_path, monkeypatch, caplog):
    """What each draw asks for, read at the calls (on random weights and 16 px stimuli the decisions
    rarely depend on the tie rule, so the test above cannot tell these apart)."""
    from topkshape.shape_bias import run

    root, _, _ = resnet_inputs
    calls: dict[str, list] = {"load": [], "topk": [], "decide": [], "stimuli": []}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls[name].append((args, kwargs))
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(run, "_load_sweep", spy("load", run._load_sweep))
    monkeypatch.setattr(run, "with_inference_topk", spy("topk", run.with_inference_topk))
    monkeypatch.setattr(run, "model_decisions", spy("decide", run.model_decisions))
    monkeypatch.setattr(run, "load_stimuli", spy("stimuli", run.load_stimuli))
    real_plain = run.load_plain_model
    # The weights name is recorded, then random weights are built: no download.
    monkeypatch.setattr(run, "load_plain_model", lambda name, **kwargs: calls["load"].append(("plain", kwargs)) or real_plain(
        name, **{**kwargs, "weights": None}))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    stride = run.TIE_SEED_STRIDE
    with caplog.at_level(logging.INFO, logger="topkshape.shape_bias.run"):
        table = run.run_tie_spread("resnet18", ["none", "topk50", "mean_replace25"], root, tmp_path / "s.csv", 2, weights="IMAGENET1K_V1",
                                   image_size=16, batch_size=2, threads=2, device="cpu", images_per_class=1)
    assert calls["load"] == [(("resnet18", root), {"weights": "IMAGENET1K_V1", "image_size": 16, "checkpoint": None, "threads": 2,
                                                   "device": "cpu", "images_per_class": 1}),
                             ("plain", {"weights": "IMAGENET1K_V1", "image_size": 16, "checkpoint": None})]
    assert calls["stimuli"] == [((root, 16), {"threads": 2, "per_class": 1})]
    assert len(table) == 2 * 2 * 2  # 1 stimulus per category (2) x 2 settings x 2 draws
    settings = [(0.5, "topk"), (0.25, "mean_replace")]
    assert [(args[2:], kwargs) for args, kwargs in calls["topk"]] == [
        ((fraction, mode), {"ties": "random", "tie_seed": draw * stride}) for draw in (0, 1) for fraction, mode in settings]
    assert [kwargs for _, kwargs in calls["decide"]] == [
        {"classes": None, "batch_size": 2, "device": torch.device("cpu"), "desc": f"resnet18-{tag} tie draw {draw}"}
        for draw in (0, 1) for tag in ("topk50", "mean_replace25")]
    draws = [re.sub(r"took \d+\.\d s$", "took T s", m) for m in caplog.messages if "tie draw" in m]
    assert draws == ["resnet18: tie draw 1 of 2 (2 settings) took T s", "resnet18: tie draw 2 of 2 (2 settings) took T s"]
    assert all(float(re.search(r"took (\d+\.\d) s$", m)[1]) < 300 for m in caplog.messages if "tie draw" in m)  # durations
    from topkshape.shape_bias.analysis import RAW_COLUMNS

    assert table.index.tolist() == list(range(8))
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == [*RAW_COLUMNS, "tie_seed"]  # no index column
    # No setting with Top-K: a header-only file with the same columns.
    empty = run.run_tie_spread("resnet18", ["none"], root, tmp_path / "e.csv", 1, image_size=16, device="cpu")
    assert empty.empty and list(pd.read_csv(tmp_path / "e.csv").columns) == [*RAW_COLUMNS, "tie_seed"]
    # The defaults: one draw is enough; 224 px, batches of 32, one thread, the device chosen, every stimulus.
    for name in calls:
        calls[name].clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run.run_tie_spread("resnet18", ["topk50"], root, tmp_path / "d.csv", 1)
    assert calls["load"] == [(("resnet18", root), {"weights": None, "image_size": 224, "checkpoint": None, "threads": 1, "device": None,
                                                   "images_per_class": None}),
                             ("plain", {"weights": None, "image_size": 224, "checkpoint": None})]
    assert calls["stimuli"] == [((root, 224), {"threads": 1, "per_class": None})]
    assert [kwargs["batch_size"] for _, kwargs in calls["decide"]] == [32]
    assert [kwargs["device"] for _, kwargs in calls["decide"]] == [torch.device("cpu")]


def test_sweep_job_passes_its_options_to_the_loading_and_the_settings(resnet_inputs, tmp_path, monkeypatch):
    from topkshape.shape_bias import run

    root, _, _ = resnet_inputs
    loads, sweeps = [], []
    real_load = run._load_sweep
    monkeypatch.setattr(run, "_load_sweep", lambda *args, **kwargs: loads.append(kwargs) or real_load(*args, **kwargs))
    monkeypatch.setattr(run, "sweep_settings", lambda *args, **kwargs: sweeps.append((args[3:6], kwargs)) or {})
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    outs = [tmp_path / "a.csv"]
    run.run_cue_conflict_sweep("resnet18", ["topk50"], root, outs, image_size=16, batch_size=3, threads=2, device="cpu", images_per_class=1,
                               ties="random", ties_output=tmp_path / "t.csv")
    run.run_cue_conflict_sweep("resnet18", ["topk50"], root, outs, image_size=16, device="cpu")
    assert [load["images_per_class"] for load in loads] == [1, None] and [load["threads"] for load in loads] == [2, 1]
    assert [args for args, _ in sweeps] == [("resnet18", ["topk50"], outs)] * 2
    for (_, kwargs), expected in zip(sweeps, [{"batch_size": 3, "ties": "random", "tie_seed": 0, "ties_output": tmp_path / "t.csv"},
                                              {"batch_size": 32, "ties": None, "tie_seed": 0, "ties_output": None}]):
        assert {key: kwargs[key] for key in expected} == expected


def test_tie_counter_describes_each_layer_as_shares_of_its_channels_and_kept_entries():
    from topkshape.shape_bias.run import TieCounter

    counter = TieCounter(nn.Identity())
    assert counter.describe() == "no Top-K layer"
    counter.counts = {
        "a": {"channels": 4, "channels_with_ties": 1, "kept": 8, "kept_by_tie_order": 2, "kept_by_nonzero_tie_order": 1},
        "b": {"channels": 0, "channels_with_ties": 0, "kept": 0, "kept_by_tie_order": 0, "kept_by_nonzero_tie_order": 0},
    }
    assert counter.describe() == (
        "a: 25.0% of channels tie at the threshold, 25.0% of kept entries chosen by tie order (12.5% among equal non-zero values); "
        "b: 0.0% of channels tie at the threshold, 0.0% of kept entries chosen by tie order (0.0% among equal non-zero values)")


def test_sweep_passes_ties_and_threads_and_refuses_mismatched_outputs(resnet_inputs, tmp_path, monkeypatch):
    root, _, _ = resnet_inputs
    with pytest.raises(ValueError, match=r"^2 tags but 1 output files$"):
        run_cue_conflict_sweep("resnet18", ["none", "topk10"], root, [tmp_path / "a.csv"])
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # records, leaves the test's threads alone
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the default device is then the CPU
    applied = run_cue_conflict_sweep("resnet18", ["non_topk50"], root, [tmp_path / "b.csv"], image_size=16, ties="exact", threads=2)
    assert threads == [2]
    assert len(pd.read_csv(tmp_path / "b.csv")) == 5
    assert applied == {"non_topk50": {"layer2.topk": {"layer": "TopK", "fraction": 0.5, "mode": "non_topk", "ties": "exact"}}}


def test_a_torchvision_model_is_loaded_with_the_weights_asked_for():
    with pytest.raises(KeyError, match="NOT_A_WEIGHTS_NAME"):  # torchvision's own lookup: the name reached it
        load_plain_model("resnet18", weights="NOT_A_WEIGHTS_NAME")
    model, arch, classes, size = load_plain_model("resnet18", image_size=64)
    assert (arch, classes, size) == ("resnet18", None, 64) and isinstance(model, torchvision.models.ResNet)
    assert load_plain_model("resnet18")[3] == 224


def _trained_checkpoint(path: Path, classes: list[str]) -> nn.Module:
    from topkshape.models import build_model

    torch.manual_seed(2)
    model = build_model("resnet18_cifar", fraction=None, num_classes=len(classes), input_size=32, width=4)
    settings = {"arch": "resnet18_cifar", "variant": "baseline", "topk_fraction": None, "image_size": 32, "width": 4}
    torch.save({"model": model.state_dict(), "classes": classes, "settings": settings}, path)
    return model


def test_a_trained_model_is_read_from_its_checkpoint_with_its_classes_and_size(resnet_inputs, tmp_path):
    root, _, _ = resnet_inputs
    classes = ["cat", "dog", "bird"]
    saved = _trained_checkpoint(tmp_path / "model.pt", classes)
    with pytest.raises(ValueError, match=r"^trained_shapes needs its model.pt \(checkpoint=\)$"):
        load_plain_model("trained_shapes")
    model, arch, names, size = load_plain_model("trained_shapes", checkpoint=tmp_path / "model.pt", image_size=224)
    assert (arch, names, size) == ("resnet18_cifar", classes, 32)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values()))
    out = tmp_path / "t.csv"
    run_cue_conflict_sweep("trained_shapes", ["topk50"], root, [out], checkpoint=tmp_path / "model.pt", device="cpu")
    # Decisions among the checkpoint's own classes, at its 32 px.
    reference = insert_topk(copy.deepcopy(saved), ["layer2"], fraction=0.5)
    to_input = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    stimuli = load_stimuli(root, 32)
    with torch.no_grad():
        logits = reference.eval()(torch.stack([to_input(Image.fromarray(p.permute(1, 2, 0).numpy())) for p in stimuli.pixels]))
    assert pd.read_csv(out)["object_response"].tolist() == [classes[i] for i in logits.argmax(dim=1).tolist()]


def test_sweep_defaults_224_px_batches_of_32_one_thread_and_passes_the_weights_on(tmp_path, monkeypatch):
    from topkshape.shape_bias import run

    root = tmp_path / "cc"
    reds = [i % 3 for i in range(33)]
    for i, red in enumerate(reds):
        write_image(root / "cat" / f"cat{i:02d}-dog1.png", red)
    asked, threads = [], []
    model = ColourCode(3, [0, 1, 2])

    def fake_load(model_name, **kwargs):
        asked.append((model_name, kwargs))
        return model, "resnet18", ["a", "b", "c"], 8  # a stand-in classifier of 8 px inputs

    monkeypatch.setattr(run, "load_plain_model", fake_load)
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    run.run_cue_conflict_sweep("stand-in", ["none"], root, [tmp_path / "none.csv"], weights="IMAGENET1K_V1", device="cpu")
    assert asked == [("stand-in", {"weights": "IMAGENET1K_V1", "image_size": 224, "checkpoint": None})]
    assert threads == [1] and model.calls == [32, 1]
    assert pd.read_csv(tmp_path / "none.csv")["object_response"].tolist() == [["a", "b", "c"][red] for red in reds]

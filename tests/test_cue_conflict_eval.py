"""The cue-conflict evaluation: unzoomed stimuli, Top-K really applied, one sweep per model, the CLI, chance.

Everything here runs on images the tests write themselves; nothing needs ../shared.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from matplotlib.collections import PathCollection
from PIL import Image
from torchvision import transforms

from test_shape_bias import TOOLBOX_INDICES
from topkshape.shape_bias.analysis import RAW_COLUMNS

CATEGORIES = ["airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair", "clock", "dog", "elephant",
              "keyboard", "knife", "oven", "truck"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_stimuli(root: Path, size: int | tuple[int, int] = 224, per_category: int = 1, seed: int = 0) -> Path:
    """<shape>/<shape><n>-<texture><m>.png with structured random content (blobs of colour), 16 categories."""
    rng = np.random.default_rng(seed)
    width, height = (size, size) if isinstance(size, int) else size
    for i, shape in enumerate(CATEGORIES):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for n in range(per_category):
            texture = CATEGORIES[(i + 1 + n) % len(CATEGORIES)]
            coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((width, height), Image.NEAREST)
            noise = rng.integers(0, 40, (height, width, 3))
            pixels = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / shape / f"{shape}{n + 1}-{texture}{n + 1}.png")
    return root


# --- unzoomed stimuli ----------------------------------------------------------------


@pytest.mark.parametrize("size", [224, 64])
def test_stimuli_at_the_input_size_reach_the_model_unresized_and_uncropped(tmp_path, size):
    from topkshape.shape_bias.evaluate import load_stimuli, normalize

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    (tmp_path / "cat").mkdir()
    Image.fromarray(pixels).save(tmp_path / "cat" / "cat1-dog1.png")
    stimuli = load_stimuli(tmp_path, size)
    assert stimuli.resized == 0
    assert torch.equal(stimuli.pixels[0], torch.from_numpy(pixels).permute(2, 0, 1))  # every pixel, borders included
    x = normalize(stimuli.pixels)
    for y, xpos in [(0, 0), (size - 1, size - 1), (0, size - 1), (size // 2, 3)]:
        for c in range(3):
            expected = (np.float32(pixels[y, xpos, c]) / np.float32(255) - np.float32(MEAN[c])) / np.float32(STD[c])
            assert x[0, c, y, xpos].item() == pytest.approx(float(expected), abs=1e-6)


def test_images_of_another_size_get_model_vs_humans_resize_256_and_centre_crop_224(tmp_path):
    from topkshape.shape_bias.evaluate import load_stimuli

    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (260, 300, 3), dtype=np.uint8)
    (tmp_path / "dog").mkdir()
    Image.fromarray(pixels).save(tmp_path / "dog" / "dog1-cat1.png")
    stimuli = load_stimuli(tmp_path, 224)
    # The toolbox's transform for resized datasets (modelvshuman/datasets/dataloaders.py).
    toolbox = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    expected = toolbox(Image.fromarray(pixels))
    assert stimuli.resized == 1 and stimuli.pixels.shape == (1, 3, 224, 224)
    assert torch.equal(stimuli.pixels[0].float() / 255, expected)


# --- Top-K at inference in the sweep job ----------------------------------------------


@pytest.fixture(scope="module")
def stimuli_dir(tmp_path_factory):
    return write_stimuli(tmp_path_factory.mktemp("cc") / "cue-conflict", per_category=2)


def _raw(out: Path) -> pd.DataFrame:
    return pd.read_csv(out, dtype={"object_response": str})


ALEXNET_PAPER_POSITIONS = (2, 5, 7, 9, 12)  # features.<i>: after AlexNet's five conv stages (ReLU or max-pool)


def _topk_by_hand(x: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """Eq. 1 written out: per (image, channel), the K = max(1, floor(fraction * H * W)) largest |x| over H*W,
    ties to the lowest flat index (a stable descending sort); ``non_topk`` keeps the complement."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    k = max(1, int(fraction * h * w))
    order = torch.sort(flat.abs(), dim=2, descending=True, stable=True).indices
    mask = torch.zeros(flat.shape, dtype=torch.bool).scatter_(2, order[..., :k], True)
    return torch.where(~mask if mode == "non_topk" else mask, flat, torch.zeros_like(flat)).reshape(n, c, h, w)


@torch.no_grad()
def _decisions_by_hand(folder: Path, settings: dict[str, tuple[float | None, str]], batch_size: int) -> dict[str, dict[str, str]]:
    """Per setting, image name -> decision, computed without the package: torchvision's AlexNet with the weights
    torch.manual_seed(0) draws, the PNGs normalised by hand, Top-K after features.2/5/7/9/12, and model-vs-human's
    16-class decision (the mean ImageNet probability over each category's indices, TOOLBOX_INDICES, then arg-max).

    The random network's category scores lie close together, so this runs the very float operations of the
    package's path (same layers, same batches): any change to what is computed shows up as other decisions."""
    torch.manual_seed(0)
    net = torchvision.models.alexnet(weights=None).eval()
    paths = sorted(folder.glob("*/*.png"))
    pixels = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    x_all = (pixels.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    names = sorted(TOOLBOX_INDICES)
    decided = {}
    for tag, (fraction, mode) in settings.items():
        decisions = []
        for start in range(0, len(paths), batch_size):
            x = x_all[start : start + batch_size]
            for index, layer in enumerate(net.features):
                x = layer(x)
                if fraction is not None and index in ALEXNET_PAPER_POSITIONS:
                    x = _topk_by_hand(x, fraction, mode)
            probabilities = torch.softmax(net.classifier(torch.flatten(net.avgpool(x), 1)), dim=1)
            scores = torch.stack([probabilities[:, TOOLBOX_INDICES[name]].mean(dim=1) for name in names], dim=1)
            decisions += [names[i] for i in scores.argmax(dim=1).tolist()]
        decided[tag] = dict(zip((p.name for p in paths), decisions))
    return decided


def _decisions_in(out: Path) -> dict[str, str]:
    rows = _raw(out)
    return dict(zip(rows["imagename"], rows["object_response"]))


@pytest.mark.slow
def test_sweep_job_runs_topk_at_alexnets_paper_positions_with_each_settings_fraction_and_mode(stimuli_dir, tmp_path):
    from topkshape.shape_bias.run import run_cue_conflict_sweep

    tags = ["none", "topk10", "non_topk10"]
    outs = [tmp_path / f"cue-conflict_alexnet-{t}_session-1.csv" for t in tags]
    torch.manual_seed(0)
    applied = run_cue_conflict_sweep("alexnet", tags, stimuli_dir, outs, weights=None, batch_size=16, ties="exact", device="cpu")
    paper_positions = {f"features.{i}_topk" for i in (2, 5, 7, 9, 12)}  # after AlexNet's five conv stages
    assert applied["none"] == {}
    for tag, mode in (("topk10", "topk"), ("non_topk10", "non_topk")):
        assert set(applied[tag]) == paper_positions
        assert all(layer == {"layer": "TopK", "fraction": 0.1, "mode": mode, "ties": "exact"} for layer in applied[tag].values())
    decisions = {tag: _raw(out)["object_response"] for tag, out in zip(tags, outs)}
    # The decisions themselves, against the same network's computed by hand (Top-K and its complement at 10%).
    by_hand = _decisions_by_hand(stimuli_dir, {"topk10": (0.1, "topk"), "non_topk10": (0.1, "non_topk")}, batch_size=16)
    for tag, out in zip(tags[1:], outs[1:]):
        assert _decisions_in(out) == by_hand[tag], tag
    assert (decisions["topk10"] != decisions["none"]).any()
    assert (decisions["non_topk10"] != decisions["none"]).any()
    assert (decisions["topk10"] != decisions["non_topk10"]).any()
    assert [_raw(out)["subj"].iloc[0] for out in outs] == [f"alexnet-{t}" for t in tags]


@pytest.mark.slow
def test_one_sweep_per_model_writes_the_same_csvs_as_one_evaluation_per_setting(stimuli_dir, tmp_path):
    from topkshape.models import build_model
    from topkshape.shape_bias.evaluate import evaluate_cue_conflict
    from topkshape.shape_bias.run import run_cue_conflict_sweep

    settings = {"none": (None, "topk"), "topk10": (0.1, "topk"), "non_topk20": (0.2, "non_topk"), "topk50": (0.5, "topk")}
    sweep = [tmp_path / f"sweep_{t}.csv" for t in settings]
    torch.manual_seed(0)
    run_cue_conflict_sweep("alexnet", list(settings), stimuli_dir, sweep, weights=None, batch_size=8, ties="exact", device="cpu")
    for (tag, (fraction, mode)), path in zip(settings.items(), sweep):
        # Today's per-setting job: build the model with its Top-K, decode the folder, evaluate.
        torch.manual_seed(0)  # the same random weights (Top-K layers hold no parameters)
        model = build_model("alexnet", fraction=fraction, mode=mode, weights=None, ties="exact")
        single = tmp_path / f"single_{tag}.csv"
        evaluate_cue_conflict(model, stimuli_dir, subject=f"alexnet-{tag}", batch_size=8, device="cpu", progress=False).to_csv(single, index=False)
        assert path.read_bytes() == single.read_bytes(), tag
    # Both paths are the package's: the decisions must also be the ones computed without it.
    by_hand = _decisions_by_hand(stimuli_dir, settings, batch_size=8)
    for tag, path in zip(settings, sweep):
        assert _decisions_in(path) == by_hand[tag], tag


def test_random_ties_give_the_same_decisions_for_a_tie_seed_and_not_for_every_seed(stimuli_dir, tmp_path):
    from topkshape.shape_bias.run import run_cue_conflict_sweep

    def decisions(tie_seed: int, name: str) -> pd.Series:
        # K = 5% at AlexNet's positions: features.12 keeps 1 of 6x6 and its max-pool ties often.
        out = tmp_path / f"{name}.csv"
        torch.manual_seed(0)
        applied = run_cue_conflict_sweep("alexnet", ["topk5"], stimuli_dir, [out], weights=None, batch_size=16,
                                         ties="random", tie_seed=tie_seed, device="cpu")
        assert all(layer["ties"] == "random" for layer in applied["topk5"].values())
        return _raw(out)["object_response"]

    first = decisions(0, "a")
    assert first.equals(decisions(0, "b"))
    assert any(not first.equals(decisions(seed, f"s{seed}")) for seed in (1, 2, 3))


def test_sweep_logs_how_much_tie_order_decides_at_each_position(stimuli_dir, tmp_path, caplog):
    import logging

    from topkshape.shape_bias.run import run_cue_conflict_sweep

    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="topkshape.shape_bias.run"):
        run_cue_conflict_sweep("alexnet", ["none", "topk5"], stimuli_dir, [tmp_path / "a.csv", tmp_path / "b.csv"],
                               weights=None, batch_size=16, ties="exact", device="cpu")
    lines = [r.getMessage() for r in caplog.records if "ties under an exactly-K rule" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("alexnet-topk5")  # none has no Top-K layer
    # AlexNet's overlapping max-pool before features.12 copies values: ties at K = 1 of 6x6 there.
    share = float(lines[0].split("features.12_topk: ")[1].split("%")[0])
    assert share > 0
    assert all(f"features.{i}_topk:" in lines[0] for i in (2, 5, 7, 9, 12))


def test_sweep_leaves_the_loaded_model_without_topk_between_settings(stimuli_dir, tmp_path):
    from topkshape.models import topk_layers
    from topkshape.shape_bias.evaluate import with_inference_topk

    torch.manual_seed(0)
    plain = torchvision.models.alexnet(weights=None)
    with_topk = with_inference_topk(plain, ["features.2", "features.12"], 0.2, "non_topk", ties="keep")
    assert topk_layers(plain) == {}
    assert [n for n, _ in with_topk.features.named_children()][:4] == ["0", "1", "2", "2_topk"]
    assert with_inference_topk(plain, ["features.2"], None) is plain


# --- the command line -----------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "topkshape.shape_bias.evaluate", *args], check=False, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_command_line_evaluates_a_state_dict_file_with_topk_and_writes_raw_rows(stimuli_dir, tmp_path):
    from topkshape.shape_bias.evaluate import evaluate_cue_conflict, with_inference_topk

    torch.manual_seed(3)
    model = torchvision.models.alexnet(weights=None).eval()
    weights = tmp_path / "alexnet.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "out" / "raw.csv"
    run = _cli("--arch", "alexnet", "--weights", str(weights), "--fraction", "0.1", "--mode", "non_topk", "--ties", "exact",
               "--images", str(stimuli_dir), "--out", str(out), "--batch-size", "8", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    rows = _raw(out)
    assert list(rows.columns) == ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
    assert len(rows) == 32 and set(rows["subj"]) == {"alexnet-non_topk10"} and rows["trial"].tolist() == list(range(1, 33))
    expected = evaluate_cue_conflict(with_inference_topk(model, [f"features.{i}" for i in (2, 5, 7, 9, 12)], 0.1, "non_topk", ties="exact"),
                                     stimuli_dir, subject="x", batch_size=8, device="cpu", progress=False)
    assert rows["object_response"].tolist() == expected["object_response"].tolist()


@pytest.mark.slow
def test_command_line_errors_are_one_line(tmp_path, stimuli_dir):
    missing = _cli("--arch", "alexnet", "--weights", str(tmp_path / "none.pt"), "--images", str(stimuli_dir), "--out", str(tmp_path / "o.csv"))
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [f"topkshape: weights file not found: {tmp_path / 'none.pt'}"]
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet.pt")
    misfit = _cli("--arch", "alexnet", "--weights", str(tmp_path / "resnet.pt"), "--images", str(stimuli_dir), "--out", str(tmp_path / "o.csv"))
    assert misfit.returncode == 1 and len(misfit.stderr.strip().splitlines()) == 1 and "does not fit this architecture" in misfit.stderr
    no_positions = _cli("--arch", "vgg11", "--weights", "none", "--fraction", "0.1", "--images", str(stimuli_dir), "--out", str(tmp_path / "o.csv"))
    assert no_positions.returncode == 1 and "placement paper is defined for alexnet, resnet18, resnet18_cifar, vgg16 only, not vgg11" in no_positions.stderr
    assert not (tmp_path / "o.csv").exists()


# --- shape bias that says when it means nothing -----------------------------------------


def _rows(subject: str, outcomes: list[str], classes: list[str] = CATEGORIES) -> pd.DataFrame:
    """One cue-conflict trial per outcome ('shape', 'texture', 'other'), shape != texture, plus one
    shape == texture image (no conflict; must not count as a trial)."""
    rows = []
    for i, outcome in enumerate(outcomes):
        shape, texture = classes[i % len(classes)], classes[(i + 1) % len(classes)]
        other = classes[(i + 2) % len(classes)]
        response = {"shape": shape, "texture": texture, "other": other}[outcome]
        rows.append({"object_response": response, "category": shape, "imagename": f"{shape}{i}-{texture}{i}.png"})
    rows.append({"object_response": classes[0], "category": classes[0], "imagename": f"{classes[0]}99-{classes[0]}99.png"})
    frame = pd.DataFrame(rows)
    return frame.assign(subj=subject, session=1, trial=np.arange(1, len(frame) + 1), rt=np.nan, condition=np.nan)


def _binomial_upper_tail(successes: int, trials: int, p: float) -> float:
    return sum(math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(successes, trials + 1))


def test_chance_flag_marks_decisions_not_above_two_in_n_classes():
    from topkshape.report.shape_bias import shape_bias_table

    # 160 trials, 16 classes, chance 2/16 = 0.125 (20 of 160).
    at_chance = _rows("m-topk5", ["shape"] * 11 + ["texture"] * 11 + ["other"] * 138)  # 22 of 160
    above = _rows("m-none", ["shape"] * 30 + ["texture"] * 10 + ["other"] * 120)  # 40 of 160
    table = shape_bias_table({"m-topk5": at_chance, "m-none": above}, samples=20, alpha=0.05).set_index("decision_maker")
    low, high = table.loc["m-topk5"], table.loc["m-none"]
    assert (low.conflict_trials, low.shape_decisions, low.texture_decisions, low.n_classes) == (160, 11, 11, 16)
    assert (high.shape_decisions, high.texture_decisions) == (30, 10)
    assert high.shape_accuracy == pytest.approx(30 / 160) and high.texture_accuracy == pytest.approx(10 / 160)
    assert low.chance == pytest.approx(0.125)
    assert low.p_above_chance == pytest.approx(_binomial_upper_tail(22, 160, 0.125), rel=1e-6)
    assert high.p_above_chance == pytest.approx(_binomial_upper_tail(40, 160, 0.125), rel=1e-6)
    assert bool(low.not_above_chance) and not bool(high.not_above_chance)
    assert low.shape_bias == pytest.approx(0.5)  # the "drift to 0.5" of a model at chance


def test_chance_uses_the_number_of_classes_of_the_set():
    from topkshape.report.shape_bias import chance_test

    five = CATEGORIES[:5]
    # 100 trials among 5 classes: chance 2/5 = 40; 52 correct is above it at 0.05, 44 is not.
    above = chance_test(_rows("a", ["shape"] * 30 + ["texture"] * 22 + ["other"] * 48, five), alpha=0.05)
    near = chance_test(_rows("b", ["shape"] * 24 + ["texture"] * 20 + ["other"] * 56, five), alpha=0.05)
    assert above["n_classes"] == near["n_classes"] == 5 and above["chance"] == pytest.approx(0.4)
    assert _binomial_upper_tail(52, 100, 0.4) < 0.05 < _binomial_upper_tail(44, 100, 0.4)
    assert not above["not_above_chance"] and near["not_above_chance"]


def test_report_marks_chance_rows_hollow_and_never_reads_an_effect_from_them(tmp_path):
    from matplotlib.colors import to_hex

    from topkshape.report.style import CHANCE_COLOR, model_color
    from topkshape.report.shape_bias import (
        figure_order,
        overall_figure,
        reading,
        shape_bias_table,
        table_markdown,
    )
    from topkshape.shape_bias import class_shape_biases

    makers = {
        "m-none": _rows("m-none", ["shape"] * 20 + ["texture"] * 20 + ["other"] * 120),  # bias 0.5, above chance
        "m-topk5": _rows("m-topk5", ["shape"] * 15 + ["texture"] * 5 + ["other"] * 140),  # bias 0.75, at chance
        "m-topk10": _rows("m-topk10", ["shape"] * 24 + ["texture"] * 16 + ["other"] * 120),  # bias 0.6, above chance
        "z-none": _rows("z-none", ["shape"] * 10 + ["texture"] * 10 + ["other"] * 140),  # plain model at chance
        "z-topk10": _rows("z-topk10", ["shape"] * 40 + ["texture"] * 10 + ["other"] * 110),
    }
    table = shape_bias_table(makers, samples=50)
    flagged = set(table.loc[table["not_above_chance"].astype(bool), "decision_maker"])
    assert flagged == {"m-topk5", "z-none"}
    lines = reading(table)
    m_line = next(line for line in lines if "**m**" in line)
    assert "highest above chance: Top-K 10% 0.600" in m_line and "Not above chance, not interpreted: Top-K 5%" in m_line
    assert "Top-K 5% 0.750" not in m_line
    z_line = next(line for line in lines if "**z**" in line)
    assert "plain model's decisions are not above chance" in z_line and "highest" not in z_line
    markdown = table_markdown(table, "t")
    assert sum("†" in line for line in markdown.splitlines() if line.startswith("| ")) == 2

    fig = overall_figure(table)
    ordered = figure_order(table)
    # Rows grouped by model, top to bottom: each model's plain run, then its settings by K.
    assert ordered["decision_maker"].tolist() == ["m-none", "m-topk5", "m-topk10", "z-none", "z-topk10"]
    # Left: model-vs-human's box of per-class values, quartile to quartile, one row per decision maker.
    boxes = fig.axes[0].patches
    drawn = np.array([(p.get_x(), p.get_x() + p.get_width(), p.get_y() + 0.3) for p in boxes])
    expected = np.array([(r["per_class_q1"], r["per_class_q3"], y) for y, r in enumerate(ordered.to_dict("records"))])
    np.testing.assert_allclose(drawn, expected)
    for r in table.to_dict("records"):
        values = np.sort(class_shape_biases(makers[r["decision_maker"]]).dropna().to_numpy())
        assert (r["per_class_q1"], r["per_class_median"], r["per_class_q3"]) == pytest.approx(tuple(np.percentile(values, [25, 50, 75])))
    # Right: the pooled values with their CIs; those not above chance hollow and grey, the others in their model's colour.
    scatters = [c for c in fig.axes[1].collections if isinstance(c, PathCollection)]
    hollow = [c for c in scatters if len(c.get_facecolor()) == 0]
    filled = [c for c in scatters if len(c.get_facecolor()) > 0]
    hollow_y = sorted(y for c in hollow for y in c.get_offsets()[:, 1].tolist())
    assert hollow_y == sorted(ordered.index[ordered["not_above_chance"].astype(bool)].tolist())
    assert {to_hex(c.get_edgecolor()[0]) for c in hollow} == {to_hex(CHANCE_COLOR)}
    assert sum(len(c.get_offsets()) for c in filled) == 3
    assert {to_hex(colour) for c in filled for colour in c.get_facecolor()} == {to_hex(model_color("m")), to_hex(model_color("z"))}
    grey = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_color() == "gray"]  # the panels share the row labels
    assert sorted(grey) == ["m Top-K 5% (at chance)", "z (at chance)"]


def _draws(subject: str, outcomes_per_draw: list[list[str]]) -> pd.DataFrame:
    """A tie-spread table: the raw rows of ``subject`` under each draw, with its tie seed."""
    return pd.concat([_rows(subject, outcomes).assign(tie_seed=1000 * draw) for draw, outcomes in enumerate(outcomes_per_draw)],
                     ignore_index=True)


def test_report_gives_tie_counts_and_reads_an_effect_inside_the_tie_spread_as_none(tmp_path):
    from topkshape.report.shape_bias import overall_figure, shape_bias_table, table_markdown, tie_spread, write_shape_bias_report
    from topkshape.report.shape_bias_sweep import shape_bias_vs_k_figure

    makers = {
        "m-none": _rows("m-none", ["shape"] * 20 + ["texture"] * 60),  # 0.25
        "m-topk10": _rows("m-topk10", ["shape"] * 30 + ["texture"] * 50),  # 0.375: +0.125
        "m-topk20": _rows("m-topk20", ["shape"] * 60 + ["texture"] * 20),  # 0.75: +0.5
    }
    ties = pd.DataFrame([
        {"subj": "m-topk10", "layer": "a", "channels": 10, "channels_with_ties": 2, "kept": 100, "kept_by_tie_order": 5,
         "channels_with_nonzero_ties": 1, "kept_by_nonzero_tie_order": 4},
        {"subj": "m-topk10", "layer": "b", "channels": 30, "channels_with_ties": 0, "kept": 300, "kept_by_tie_order": 3,
         "channels_with_nonzero_ties": 0, "kept_by_nonzero_tie_order": 0},
        {"subj": "m-topk20", "layer": "a", "channels": 10, "channels_with_ties": 0, "kept": 200, "kept_by_tie_order": 0,
         "channels_with_nonzero_ties": 0, "kept_by_nonzero_tie_order": 0},
    ])
    spread = pd.concat([
        _draws("m-topk10", [["shape"] * 16 + ["texture"] * 64, ["shape"] * 34 + ["texture"] * 46]),  # 0.2-0.425: range 0.225
        _draws("m-topk20", [["shape"] * 58 + ["texture"] * 22, ["shape"] * 62 + ["texture"] * 18]),  # 0.725-0.775: range 0.05
    ], ignore_index=True)
    spreads = tie_spread(spread)
    table = shape_bias_table(makers, samples=50, ties=ties, spreads=spreads).set_index("decision_maker")
    assert table.loc["m-topk10", "tie_kept_share"] == pytest.approx(8 / 400)
    assert table.loc["m-topk10", "tie_channel_share"] == pytest.approx(2 / 40)
    assert table.loc["m-topk10", "tie_kept_nonzero_share"] == pytest.approx(4 / 400)
    assert table.loc["m-topk10", "ties_per_position"] == "a 5.0%; b 1.0%"
    assert np.isnan(table.loc["m-none", "tie_kept_share"])
    assert table.loc["m-topk10", ["tie_draws", "tie_spread_min", "tie_spread_max"]].tolist() == pytest.approx([2, 0.2, 0.425])
    assert table.loc["m-topk10", "tie_spread_sd"] == pytest.approx(np.std([0.2, 0.425], ddof=1))
    assert table.loc["m-topk10", "effect_vs_plain"] == pytest.approx(0.125) and table.loc["m-topk20", "effect_vs_plain"] == pytest.approx(0.5)
    assert table.loc["m-topk10", "within_tie_spread"] and not table.loc["m-topk20", "within_tie_spread"]
    assert not table.loc["m-none", "within_tie_spread"]
    markdown = table_markdown(table.reset_index(), "t")
    row10 = next(line for line in markdown.splitlines() if line.startswith("| m | 10% "))
    assert "‡" in row10 and "2.0%, 1.0% non-zero (5% of channels)" in row10 and "2 random tie orders: 0.200-0.425" in row10
    assert "‡" not in next(line for line in markdown.splitlines() if line.startswith("| m | 20% "))
    assert "Within the tie spread of their exactly-K value, no effect: Top-K 10%." in markdown

    out = {key: tmp_path / name for key, name in [("csv", "t.csv"), ("per_class_csv", "pc.csv"), ("md", "t.md"), ("overall_png", "o.png"),
                                                   ("overall_pdf", "o.pdf"), ("per_class_png", "p.png"), ("per_class_pdf", "p.pdf")]}
    paths = []
    for name, frame in makers.items():
        frame.drop(columns=[c for c in frame if c not in RAW_COLUMNS]).to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    ties.to_csv(tmp_path / "ties.csv", index=False)
    spread.to_csv(tmp_path / "spread.csv", index=False)
    written = write_shape_bias_report(paths, [], out, title="t", samples=50, tie_csvs=[tmp_path / "ties.csv"],
                                      spread_csvs=[tmp_path / "spread.csv"], figure5_k={"m": 0.1})
    assert written.set_index("decision_maker").loc["m-topk10", "within_tie_spread"]
    per_class = pd.read_csv(out["per_class_csv"])
    assert set(per_class["decision_maker"]) == set(makers) and len(per_class) == 3 * len(set(makers["m-none"]["category"]))
    figure = shape_bias_vs_k_figure(written)
    bars = [c for c in figure.axes[0].collections if type(c).__name__ == "LineCollection" and len(c.get_segments()) == 2
            and all(s[0][0] == s[1][0] for s in c.get_segments()) and c.get_linewidth()[0] == 1.2]
    assert len(bars) == 1  # one bar per exactly-K value, just right of it, from the lowest to the highest draw
    np.testing.assert_allclose([sorted(s[:, 1]) for s in bars[0].get_segments()], [[0.2, 0.425], [0.725, 0.775]])
    np.testing.assert_allclose([s[0][0] for s in bars[0].get_segments()], [10.6, 20.6])
    pooled = overall_figure(written).axes[1]
    ranges = [c for c in pooled.collections if c.get_label() == "range over 2 random tie orders"]
    np.testing.assert_allclose(sorted(sorted(s[:, 0]) for s in ranges[0].get_segments()), [[0.2, 0.425], [0.725, 0.775]])

"""The smoke run's output checks fail on what they should catch; the smoke harness's pieces work alone.

(The whole smoke run is tests/test_paper_smoke.py.)
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request

import pandas as pd
import pytest
import yaml
from PIL import Image

from topkshape.pretrained import inception_file, torchvision_file
from topkshape.smoke import __main__ as smoke_main
from topkshape.smoke.checks import PAPER_RULES, SmokeCheckError, check_shape_bias, check_summary, check_table1, check_table1b, check_table2
from topkshape.smoke.imagenet_tree import write_imagenet_tree
from topkshape.smoke.server import serving
from topkshape.smoke.served_files import ADAIN_FILES, TORCHVISION_ARCHS, downloads_overlay, write_served_tree


def _summary(rules, status="ok"):
    lines = ["output_file\tdate\trule\tlog-file(s)\tstatus\tplan"]
    lines += [f"out/{rule}\tnow\t{rule}\t-\t{status}\tno update" for rule in rules]
    return "\n".join(lines)


def test_the_summary_check_names_a_rule_that_made_nothing_and_an_output_left_stale():
    check_summary(_summary(PAPER_RULES))
    with pytest.raises(SmokeCheckError, match=r"made no output: \['adain_weights'\]"):
        check_summary(_summary([r for r in PAPER_RULES if r != "adain_weights"]))
    with pytest.raises(SmokeCheckError, match="not up to date"):
        check_summary(_summary(PAPER_RULES, status="missing"))


def _table1(tmp_path, rows):
    (tmp_path / "table1.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    return tmp_path


def test_table1_check_wants_every_subset_variant_and_set_as_a_percentage(tmp_path):
    rows = [{"subset": s, "variant": v, "metric": m, "mean": 55.0} for s in ("S1", "S2")
            for v in ("baseline", "topk", "topk_mean_rpl") for m in ("clean", "stylized")]
    check_table1(_table1(tmp_path, rows), ["S1", "S2"])
    with pytest.raises(SmokeCheckError, match="0 rows for S2 topk stylized"):
        check_table1(_table1(tmp_path, [r for r in rows if (r["subset"], r["variant"], r["metric"]) != ("S2", "topk", "stylized")]), ["S1", "S2"])
    rows[0]["mean"] = 0.55 * 1000
    with pytest.raises(SmokeCheckError, match="not a percentage"):
        check_table1(_table1(tmp_path, rows), ["S1", "S2"])


def test_table2_check_wants_inception_fids_for_every_set_and_variant(tmp_path):
    rows = [{"class": c, "variant": v, "metric": m, "mean": 12.0} for c in ("jeep", "fish")
            for v in ("fastgan", "fastgan_topk") for m in ("fid", "kid_x1e3")]
    (tmp_path / "table2.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    (tmp_path / "table2.json").write_text('{"provenance": {"feature_extractor": "inception-v3-compat"}}')
    check_table2(tmp_path, ["jeep", "fish"])
    with pytest.raises(SmokeCheckError, match="lacks the FID or KID of train"):
        check_table2(tmp_path, ["jeep", "train"])
    (tmp_path / "table2.json").write_text('{"provenance": {"feature_extractor": "classifier"}}')
    with pytest.raises(SmokeCheckError, match="Inception"):
        check_table2(tmp_path, ["jeep", "fish"])


def _shape_bias_tables(tmp_path, spread_min=(0.2, float("nan")), draws=(2, 2)):
    """A shape-bias table of one model (plain, Top-K 10%, non-Top-K 10%) and humans, its per-class
    values and its sweep, as the report writes them."""
    nan = float("nan")
    rows = [
        {"decision_maker": "alexnet-none", "model": "alexnet", "K_percent": nan, "mode": "topk", "shape_bias": 0.3,
         "tie_kept_share": nan, "tie_draws": nan, "tie_spread_min": nan, "tie_spread_max": nan},
        {"decision_maker": "alexnet-topk10", "model": "alexnet", "K_percent": 10, "mode": "topk", "shape_bias": 0.4,
         "tie_kept_share": 0.02, "tie_draws": draws[0], "tie_spread_min": spread_min[0], "tie_spread_max": 0.5},
        # No shape or texture decision in either draw: the range is NaN, but it was drawn.
        {"decision_maker": "alexnet-non_topk10", "model": "alexnet", "K_percent": 10, "mode": "non_topk", "shape_bias": nan,
         "tie_kept_share": 0.0, "tie_draws": draws[1], "tie_spread_min": spread_min[1], "tie_spread_max": nan},
        {"decision_maker": "humans", "model": "humans", "K_percent": nan, "mode": "topk", "shape_bias": 0.96,
         "tie_kept_share": nan, "tie_draws": nan, "tie_spread_min": nan, "tie_spread_max": nan},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "shape_bias.csv", index=False)
    pd.DataFrame({"decision_maker": [r["decision_maker"] for r in rows], "category": "cat", "shape_bias": 0.5}).to_csv(
        tmp_path / "shape_bias_per_class.csv", index=False)
    pd.DataFrame({"K_percent": [10], "alexnet topk": [0.4], "alexnet non_topk": [nan], "humans": [0.96], "ViT-L": [0.5]}).to_csv(
        tmp_path / "shape_bias_sweep.csv", index=False)
    return tmp_path


def test_shape_bias_check_wants_tie_counts_and_the_configured_tie_spread_on_every_topk_row(tmp_path):
    check_shape_bias(_shape_bias_tables(tmp_path), ["alexnet"], [0.1], ["ViT-L"], tie_spread_draws=2)
    check_shape_bias(_shape_bias_tables(tmp_path), ["alexnet"], [0.1], ["ViT-L"])  # no spread asked for
    with pytest.raises(SmokeCheckError, match=r"^shape_bias.csv: alexnet has Top-K rows without a tie spread over 3 draws$"):
        check_shape_bias(_shape_bias_tables(tmp_path), ["alexnet"], [0.1], ["ViT-L"], tie_spread_draws=3)
    with pytest.raises(SmokeCheckError, match="without a tie spread over 2 draws"):
        check_shape_bias(_shape_bias_tables(tmp_path, draws=(2, float("nan"))), ["alexnet"], [0.1], ["ViT-L"], tie_spread_draws=2)
    with pytest.raises(SmokeCheckError, match="without a tie spread over 2 draws"):
        check_shape_bias(_shape_bias_tables(tmp_path, spread_min=(0.6, float("nan"))), ["alexnet"], [0.1], ["ViT-L"], tie_spread_draws=2)
    table = pd.read_csv(tmp_path / "shape_bias.csv")
    table.loc[1, "tie_kept_share"] = float("nan")
    table.to_csv(tmp_path / "shape_bias.csv", index=False)
    with pytest.raises(SmokeCheckError, match=r"^shape_bias.csv: alexnet has Top-K rows without tie counts$"):
        check_shape_bias(tmp_path, ["alexnet"], [0.1], ["ViT-L"])


def test_the_miniature_imagenet_has_the_layout_the_paper_config_reads(tmp_path):
    photo = tmp_path / "real.JPEG"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    root = write_imagenet_tree(tmp_path / "ILSVRC2012", ["n01440764", "n02690373"], train_per_class=2, val_per_class=1,
                               photos={"n01440764": [photo]})
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.JPEG")) == [
        "train/n01440764/n01440764_0.JPEG", "train/n01440764/n01440764_1.JPEG",
        "train/n02690373/n02690373_0.JPEG", "train/n02690373/n02690373_1.JPEG",
        "val/n01440764/ILSVRC2012_val_n01440764_0.JPEG", "val/n02690373/ILSVRC2012_val_n02690373_0.JPEG"]
    assert (root / "train/n01440764/n01440764_0.JPEG").read_bytes() == photo.read_bytes()  # the real photograph first
    with Image.open(root / "train/n02690373/n02690373_1.JPEG") as image:
        assert image.size == (320, 256)


def test_the_server_serves_a_folder_on_loopback_and_the_overlay_pins_what_it_serves(tmp_path):
    served = tmp_path / "serve" / "torchvision"
    served.mkdir(parents=True)
    (served / "alexnet-owt-7be5be79.pth").write_bytes(b"weights")
    (tmp_path / "serve" / "adain").mkdir()
    for name in ("vgg_normalised.pth", "decoder.pth"):
        (tmp_path / "serve" / "adain" / name).write_bytes(name.encode())
    (tmp_path / "serve" / "fidelity").mkdir()
    inception = tmp_path / "serve" / "fidelity" / "weights-inception-2015-12-05-6726825d.pth"
    inception.write_bytes(b"inception")
    with serving(tmp_path / "serve", 0) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{base}/torchvision/alexnet-owt-7be5be79.pth") as response:
            assert response.read() == b"weights"
    files = {"torchvision/alexnet-owt-7be5be79.pth": served / "alexnet-owt-7be5be79.pth",
             "adain/vgg_normalised.pth": tmp_path / "serve" / "adain" / "vgg_normalised.pth",
             "adain/decoder.pth": tmp_path / "serve" / "adain" / "decoder.pth",
             f"fidelity/{inception.name}": inception}
    overlay = downloads_overlay("http://127.0.0.1:9", files, "build/x/ILSVRC2012", "build/x/resources")
    assert overlay["downloads"]["sha256"]["alexnet-owt-7be5be79.pth"] == hashlib.sha256(b"weights").hexdigest()
    assert overlay["stylize"]["adain"]["decoder_sha256"] == hashlib.sha256(b"decoder.pth").hexdigest()
    assert overlay["downloads"]["folder"] == "build/x/resources" and overlay["imagenet_root"] == "build/x/ILSVRC2012"
    yaml.safe_dump(overlay)  # a config layer Snakemake can read


def test_stage_times_add_up_each_rules_jobs_and_their_shares(tmp_path):
    from topkshape.stage_times import stage_seconds

    for name, seconds in (("gan_train_jeep_fastgan_seed0", 30.0), ("gan_train_fish_fastgan_seed0", 50.0),
                          ("gan_eval_jeep_fastgan_seed0", 20.0), ("train_S1_topk_seed0", 100.0)):
        (tmp_path / f"{name}.tsv").write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t10\n")
    table = stage_seconds(tmp_path, ["train", "gan_train", "gan_eval", "table1"])
    assert table.loc["gan_train", "jobs"] == 2 and table.loc["gan_train", "job_seconds"] == 80.0
    assert table.loc["gan_eval", "job_seconds"] == 20.0 and table.loc["train", "longest"] == 100.0
    assert list(table.index) == ["train", "gan_train", "gan_eval"]
    assert abs(table["share"].sum() - 1) < 1e-12 and table.loc["train", "share"] == 0.5


def test_table1b_check_wants_every_models_corruptions_and_severities_and_the_correlations(tmp_path):
    corruptions = {"names": ["fog", "snow"], "severities": [3]}
    variants = ("baseline", "topk", "topk_mean_rpl")
    rows = [{"subset": "S1", "variant": v, "seed": 0, "corruption": c, "severity": 3, "correct": 1, "images": 2, "accuracy": 0.5}
            for v in variants for c in corruptions["names"]]
    pd.DataFrame(rows).to_csv(tmp_path / "corruption_accuracy.csv", index=False)
    pd.DataFrame([{"subset": "S1", "variant": v, "metric": "mean_corruption_acc", "mean": 50.0, "std": 1.0, "n": 1} for v in variants]).to_csv(
        tmp_path / "table1b.csv", index=False)
    pd.DataFrame({"subset": ["S1", "all"], "rho": [0.1, 0.1]}).to_csv(tmp_path / "shape_bias_vs_robustness.csv", index=False)
    check_table1b(tmp_path, ["S1"], corruptions)
    pd.DataFrame(rows[1:]).to_csv(tmp_path / "corruption_accuracy.csv", index=False)  # baseline lacks fog
    with pytest.raises(SmokeCheckError, match="S1 baseline lacks corruptions or severities"):
        check_table1b(tmp_path, ["S1"], corruptions)


def test_the_served_tree_outlives_the_command_and_a_later_run_reuses_its_files(tmp_path, monkeypatch, capsys):
    """`dvc repro all@paper-smoke` runs the smoke command once per stage: remaking 1.6 GB of random weights
    each time took 16 s, so the tree stays, and what is there is served again as it is."""
    paper, human = tmp_path / "paper", tmp_path / "human"
    for folder in (paper / "style_target", paper / "fewshot", paper / "cue-conflict", human / "cue-conflict"):
        folder.mkdir(parents=True)
    serve = tmp_path / "work" / "serve"
    kept = [serve / "torchvision" / torchvision_file(arch, "DEFAULT") for arch in TORCHVISION_ARCHS]
    kept += [serve / "adain" / name for name in ADAIN_FILES] + [serve / "fidelity" / inception_file()]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(path.name.encode())
    files = write_served_tree(serve, paper, human)
    assert sorted(files.values()) == sorted(kept) and all(path.read_bytes() == path.name.encode() for path in kept)

    monkeypatch.setattr(smoke_main, "prepare", lambda work, *_: (work / "downloads.yaml", files))
    args = ["--work", str(tmp_path / "work"), "--paper-data", str(paper), "--model-vs-human", str(human), "--port", "0"]
    assert smoke_main.main([*args, "--", sys.executable, "-c", "pass"]) == 0
    assert "command ended with 0" in capsys.readouterr().out
    assert all(path.read_bytes() == path.name.encode() for path in kept)

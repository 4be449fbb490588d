"""Table 1b: common corruptions of a validation set (imagecorruptions), a model's accuracy on them, mCE."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats
from torch import nn

from topkshape.classify.train import TrainSettings, build_classifier
from topkshape.classify.trained import load_as_trained
from topkshape.data.synthetic import write_shape_subset
from topkshape.errors import ConfigError, InputDataError
from topkshape.models.surgery import topk_layers
from topkshape.report.table1b import per_run, write_table1b
from topkshape.robustness.corruptions import COMMON_CORRUPTIONS, corruption_accuracies, write_corrupted_sets

CLASSES = ["disk", "square", "triangle"]


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    write_shape_subset(root / "S", CLASSES, image_size=32, train_per_class=1, val_per_class=3, progress=False)
    return root / "S" / "val"


def test_the_fifteen_corruptions_are_imagenet_cs_and_the_package_has_them():
    from imagecorruptions import get_corruption_names

    assert list(COMMON_CORRUPTIONS) == get_corruption_names("common") and len(COMMON_CORRUPTIONS) == 15


def test_every_corruption_at_every_severity_changes_the_image_and_the_set_is_laid_out_with_its_manifest(val_dir, tmp_path):
    manifest = write_corrupted_sets(val_dir, tmp_path / "c", CLASSES, per_class=1, seed=0, progress=False)
    assert len(manifest["files"]) == 15 * 5 * len(CLASSES)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text()) == manifest
    for cls in CLASSES:
        source = sorted((val_dir / cls).glob("*.png"))[0]
        clean = np.asarray(Image.open(source).convert("RGB")).astype(int)
        for name in COMMON_CORRUPTIONS:
            for severity in range(1, 6):
                corrupted = np.asarray(Image.open(tmp_path / "c" / name / str(severity) / cls / source.name)).astype(int)
                assert corrupted.shape == clean.shape and np.abs(corrupted - clean).mean() > 0.5, (name, severity)
    # Noise grows with the severity.
    changes = [np.abs(np.asarray(Image.open(next((tmp_path / "c" / "gaussian_noise" / str(s) / "disk").glob("*.png")))).astype(int)
                      - np.asarray(Image.open(sorted((val_dir / "disk").glob("*.png"))[0]).convert("RGB")).astype(int)).mean() for s in range(1, 6)]
    assert changes == sorted(changes) and changes[-1] > 2 * changes[0]


def test_each_image_is_seeded_by_itself_whatever_else_is_built_and_by_the_seed(val_dir, tmp_path):
    names = ["gaussian_noise", "impulse_noise", "glass_blur", "snow", "frost", "fog", "elastic_transform"]
    whole = write_corrupted_sets(val_dir, tmp_path / "a", CLASSES, corruptions=names, severities=[2, 5], seed=3, progress=False)
    part = write_corrupted_sets(val_dir, tmp_path / "b", CLASSES[1:], corruptions=names[::-1], severities=[5], per_class=2, seed=3, progress=False)
    assert part["files"] and all(whole["files"][rel] == sha for rel, sha in part["files"].items())
    other = write_corrupted_sets(val_dir, tmp_path / "c", CLASSES, corruptions=names, severities=[2, 5], seed=4, progress=False)
    changed = {rel.split("/")[0] for rel, sha in other["files"].items() if whole["files"][rel] != sha}
    assert changed == set(names)  # every one of these draws random numbers


def test_bad_corruptions_and_folders_stop_in_one_line_and_leave_nothing(val_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^unknown corruption 'rain'; choose from \['gaussian_noise'"):
        write_corrupted_sets(val_dir, tmp_path / "x", CLASSES, corruptions=["rain"], progress=False)
    with pytest.raises(ConfigError, match=r"^corruption severity must be one of \[1, 2, 3, 4, 5\], got 6$"):
        write_corrupted_sets(val_dir, tmp_path / "x", CLASSES, severities=[6], progress=False)
    with pytest.raises(InputDataError, match="no folder for class 'star'"):
        write_corrupted_sets(val_dir, tmp_path / "x", ["disk", "star"], progress=False)
    assert not (tmp_path / "x").exists()


class Always(nn.Module):
    """Answers class ``index`` for every image."""

    def __init__(self, index: int, classes: int) -> None:
        super().__init__()
        self.index, self.classes = index, classes

    def forward(self, x):
        logits = torch.zeros(len(x), self.classes)
        logits[:, self.index] = 1
        return logits


def test_accuracy_per_corruption_and_severity_counts_each_images_label(val_dir, tmp_path):
    write_corrupted_sets(val_dir, tmp_path / "c", CLASSES, corruptions=["contrast", "pixelate"], severities=[1, 3], per_class=2, progress=False)
    ordered = sorted(CLASSES)
    table = corruption_accuracies(Always(ordered.index("square"), 3), ordered, tmp_path / "c", 32, batch_size=4)
    assert list(zip(table.corruption, table.severity)) == [("contrast", 1), ("contrast", 3), ("pixelate", 1), ("pixelate", 3)]
    assert (table["images"] == 6).all() and (table["correct"] == 2).all() and np.allclose(table["accuracy"], 1 / 3)


def test_a_table1_model_loads_with_its_variants_topk_layers_and_its_weights(tmp_path):
    for variant, layers in (("baseline", 0), ("topk", 1), ("topk_mean_rpl", 1)):
        settings = TrainSettings(variant=variant, width=4, image_size=32, epochs=1, crop_scale=(0.35, 1.0))
        torch.manual_seed(0)
        model = build_classifier(settings, 3).eval()
        torch.save({"model": model.state_dict(), "classes": CLASSES, "settings": dataclasses.asdict(settings)}, tmp_path / f"{variant}.pt")
        loaded, classes = load_as_trained(tmp_path / f"{variant}.pt")
        assert classes == CLASSES and loaded.image_size == 32 and len(topk_layers(loaded)) == layers
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(loaded.eval()(x), model(x))


def _rows(variant: str, seed: int, errors: dict[tuple[str, int], float]) -> list[dict]:
    return [{"subset": "S1", "variant": variant, "seed": seed, "corruption": c, "severity": s, "correct": round(100 * (1 - e)),
             "images": 100, "accuracy": 1 - e} for (c, s), e in errors.items()]


def test_mce_is_each_corruptions_summed_errors_over_the_baselines_averaged_over_corruptions(tmp_path):
    # Baseline seeds 0/1 err 0.2/0.4 on fog (mean 0.3 per severity) and 0.1/0.1 on snow; Top-K halves fog's errors.
    base = {0: {("fog", 1): 0.2, ("fog", 2): 0.2, ("snow", 1): 0.1, ("snow", 2): 0.1},
            1: {("fog", 1): 0.4, ("fog", 2): 0.4, ("snow", 1): 0.1, ("snow", 2): 0.1}}
    topk = {0: {("fog", 1): 0.15, ("fog", 2): 0.15, ("snow", 1): 0.1, ("snow", 2): 0.1},
            1: {("fog", 1): 0.15, ("fog", 2): 0.15, ("snow", 1): 0.2, ("snow", 2): 0.2}}
    rows = [r for seed, e in base.items() for r in _rows("baseline", seed, e)] + [r for seed, e in topk.items() for r in _rows("topk", seed, e)]
    paths = []
    for i, chunk in enumerate((rows[:8], rows[8:])):
        paths.append(tmp_path / f"{i}.csv")
        pd.DataFrame(chunk).to_csv(paths[-1], index=False)
    runs = per_run(pd.concat(pd.read_csv(p) for p in paths)).set_index(["variant", "seed"])
    # topk seed 0: fog 0.3 / 0.6 = 0.5, snow 0.2 / 0.2 = 1 -> 0.75; seed 1: fog 0.5, snow 0.4 / 0.2 = 2 -> 1.25.
    assert runs.loc[("topk", 0), "mce"] == pytest.approx(0.75) and runs.loc[("topk", 1), "mce"] == pytest.approx(1.25)
    # baseline seed 0: fog 0.4 / 0.6, snow 1 -> (2/3 + 1) / 2.
    assert runs.loc[("baseline", 0), "mce"] == pytest.approx((2 / 3 + 1) / 2)
    assert runs.loc[("topk", 1), "mean_corruption_acc"] == pytest.approx(100 * (1 - (0.15 + 0.15 + 0.2 + 0.2) / 4))
    assert runs.loc[("topk", 0), "acc_fog"] == pytest.approx(85.0)
    out = {key: tmp_path / f"t.{key}" for key in ("csv", "md", "tex", "json")} | {"accuracy_csv": tmp_path / "acc.csv"}
    table = write_table1b(paths, out, "Table 1b").set_index(["subset", "variant", "metric"])
    assert table.loc[("S1", "topk", "mce"), "mean"] == pytest.approx(1.0)
    assert table.loc[("S1", "topk", "mce"), "std"] == pytest.approx(np.std([0.75, 1.25], ddof=1))
    p = stats.ttest_ind([100 * (1 - 0.125), 100 * (1 - 0.175)], [100 * (1 - 0.15), 100 * (1 - 0.25)], equal_var=False).pvalue
    markdown = out["md"].read_text()
    assert f"| {p:.3g} |" in markdown and "| S1 | topk | " in markdown
    assert len(pd.read_csv(out["accuracy_csv"])) == 16 and json.loads(out["json"].read_text())["S1/topk/mce"]["mean"] == 1.0


def test_a_corruption_the_baseline_never_errs_on_has_no_ce():
    rows = _rows("baseline", 0, {("fog", 1): 0.0, ("snow", 1): 0.5}) + _rows("topk", 0, {("fog", 1): 0.1, ("snow", 1): 0.25})
    runs = per_run(pd.DataFrame(rows)).set_index("variant")
    assert runs.loc["topk", "mce"] == pytest.approx(0.5) and runs.loc["topk", "mce_corruptions"] == 1

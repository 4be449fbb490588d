"""What the smoke run's outputs must hold: every rule of the paper DAG ran, and each output is plausible.

Existence is not enough: a table must have its rows with finite values in range, FID must
come from torch-fidelity's Inception, the shape-bias table must hold the humans and the
reference models, a figure must decode as an image of real size.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from PIL import Image

from topkshape.config import gan_sets
from topkshape.errors import InputDataError
from topkshape.shape_bias.tags import sweep_tags

# The rules of the paper configuration's DAG: each must have run (rules/*.smk).
PAPER_RULES = (
    "environment", "paper_data", "adain_weights", "pretrained_weights", "human_decisions", "reference_decisions",
    "subset", "stylized", "fewshot", "train", "table1", "cue_conflict_eval", "cue_conflict_tie_spread", "shape_bias_report",
    "atlas_eval", "atlas_report", "corrupted", "corruption_eval", "table1b", "shape_bias_vs_robustness",
    "ood_dataset", "ood_humans", "ood_eval", "ood_report",
    "texture_synthesis", "mask_dynamics", "gan_train", "gan_eval", "gan_mask_dynamics", "table2",
)


class SmokeCheckError(InputDataError):
    """An output of the smoke run does not hold what it should."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeCheckError(message)


def _finite(values: Iterable[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def check_summary(summary_tsv: str, rules: Iterable[str] = PAPER_RULES) -> None:
    """``snakemake --summary`` output: every paper rule made files, and every file is up to date."""
    lines = [line.split("\t") for line in summary_tsv.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    _require("rule" in header and "status" in header, f"unexpected snakemake --summary header: {header}")
    col = {name: header.index(name) for name in ("output_file", "rule", "status")}
    ran = {row[col["rule"]] for row in rows if len(row) > col["status"]}
    missing = [rule for rule in rules if rule not in ran]
    _require(not missing, f"rules of the paper DAG that made no output: {missing}")
    stale = [row[col["output_file"]] for row in rows if len(row) > col["status"] and row[col["status"]] != "ok"]
    _require(not stale, f"outputs not up to date after the run: {stale[:5]}")


def check_figures(folder: Path) -> None:
    pngs = sorted(folder.glob("*.png"))
    _require(len(pngs) >= 8, f"only {len(pngs)} figures in {folder}")
    for png in pngs:
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            _require(min(image.size) >= 100, f"{png} is only {image.size[0]}x{image.size[1]} px")
    pdfs = sorted(folder.glob("*.pdf"))
    _require(len(pdfs) >= 8, f"only {len(pdfs)} PDF figures in {folder}")
    for pdf in pdfs:
        _require(pdf.read_bytes()[:5] == b"%PDF-", f"{pdf} is not a PDF")


def _long_rows(table: pd.DataFrame, label: str, key: str, value: str, variant: str, metric: str) -> pd.DataFrame:
    return table[(table[label] == key) & (table["variant"] == variant) & (table["metric"] == metric)]


def check_table1(tables: Path, subsets: Iterable[str]) -> None:
    """One row per subset, variant and set, its mean accuracy a percentage."""
    table = pd.read_csv(tables / "table1.csv")
    for subset in subsets:
        for variant in ("baseline", "topk", "topk_mean_rpl"):
            for metric in ("clean", "stylized"):
                rows = _long_rows(table, "subset", subset, "mean", variant, metric)
                _require(len(rows) == 1, f"table1.csv has {len(rows)} rows for {subset} {variant} {metric}")
                mean = float(rows["mean"].iloc[0])
                _require(math.isfinite(mean) and 0 <= mean <= 100, f"table1.csv {subset} {variant} {metric}: {mean} is not a percentage")


def check_table1b(tables: Path, subsets: Iterable[str], corruptions: dict) -> None:
    """Every model's accuracy on every configured corruption and severity, and Table 1b's rows per subset and variant."""
    accuracy = pd.read_csv(tables / "corruption_accuracy.csv")
    cells = len(corruptions["names"]) * len(corruptions["severities"])
    for subset in subsets:
        for variant in ("baseline", "topk", "topk_mean_rpl"):
            rows = accuracy[(accuracy.subset == subset) & (accuracy.variant == variant)]
            _require(len(rows) and len(rows) % cells == 0 and set(rows.corruption) == set(corruptions["names"]),
                     f"corruption_accuracy.csv: {subset} {variant} lacks corruptions or severities ({len(rows)} rows)")
            _require(rows["accuracy"].between(0, 1).all(), f"corruption_accuracy.csv: {subset} {variant} has accuracies outside [0, 1]")
    correlations = pd.read_csv(tables / "shape_bias_vs_robustness.csv")
    _require(list(correlations["subset"]) == [*sorted(subsets), "all"], f"shape_bias_vs_robustness.csv rows {list(correlations['subset'])}")
    table = pd.read_csv(tables / "table1b.csv")
    for subset in subsets:
        for variant in ("baseline", "topk", "topk_mean_rpl"):
            rows = _long_rows(table, "subset", subset, "mean", variant, "mean_corruption_acc")
            _require(len(rows) == 1 and 0 <= float(rows["mean"].iloc[0]) <= 100, f"table1b.csv: no mean corruption accuracy of {subset} {variant}")


def check_ood(tables: Path, entries: Iterable[str], datasets: list[str], tags: list[str]) -> None:
    """Every atlas entry at every setting on every configured dataset and over all, values and intervals in
    range, the humans' own values beside them, and each setting's point of shape bias against OOD accuracy."""
    table = pd.read_csv(tables / "ood_benchmark.csv")
    for entry in entries:
        for tag in tags:
            rows = table[(table["model"] == entry) & (table["tag"] == tag)]
            _require(sorted(rows["dataset"]) == sorted([*datasets, "all"]), f"ood_benchmark.csv: {entry} {tag} has datasets {sorted(rows['dataset'])}")
            for key in ("ood_accuracy", "observed_consistency"):
                inside = (rows[f"{key}_low"] <= rows[key] + 1e-9) & (rows[key] <= rows[f"{key}_high"] + 1e-9)
                _require(rows[key].between(0, 1).all() and rows[f"human_{key}"].between(0, 1).all() and inside.all(),
                         f"ood_benchmark.csv: {entry} {tag}: {key} or its interval out of range")
            _require(rows["error_consistency"].between(-1, 1).all() and (rows["trials"] > 0).all(),
                     f"ood_benchmark.csv: {entry} {tag}: error consistency outside [-1, 1] or no trials")
    points = pd.read_csv(tables / "shape_bias_vs_ood_points.csv")
    _require(len(points) == len(list(entries)) * len(tags) and points["shape_bias"].between(0, 1).all(),
             f"shape_bias_vs_ood_points.csv: {len(points)} points, not one per entry and setting with a shape bias")


def check_table2(tables: Path, fewshot: Iterable[str]) -> None:
    """One FID and one KID per few-shot set and variant; FIDs positive and finite, from Inception."""
    table = json.loads((tables / "table2.json").read_text())
    _require("inception-v3-compat" in json.dumps(table), "table2.json does not say its FID came from torch-fidelity's Inception (inception-v3-compat)")
    runs = pd.read_csv(tables / "table2.csv")
    for name in fewshot:
        for variant in ("fastgan", "fastgan_topk"):
            fid = _long_rows(runs, "class", name, "mean", variant, "fid")
            kid = _long_rows(runs, "class", name, "mean", variant, "kid_x1e3")
            _require(len(fid) == 1 and len(kid) == 1, f"table2.csv lacks the FID or KID of {name} {variant}")
            value = float(fid["mean"].iloc[0])
            _require(math.isfinite(value) and value > 0, f"table2.csv FID of {name} {variant} is {value}")
            _require(math.isfinite(float(kid["mean"].iloc[0])), f"table2.csv KID of {name} {variant} is not finite")


def check_gan_runs(results: Path) -> None:
    for metrics_file in sorted((results / "gan").glob("*/*/seed*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        _require(metrics.get("feature_extractor") == "inception-v3-compat", f"{metrics_file}: feature extractor {metrics.get('feature_extractor')!r}")
        _require(metrics.get("selection") == "best" and _finite([metrics["fid"], metrics["fid_init"]]), f"{metrics_file}: no best FID with its initial FID")
        evaluations = metrics_file.parent / "evaluations.csv"
        _require(evaluations.is_file() and len(pd.read_csv(evaluations)) >= 1, f"{metrics_file.parent}: no FID during training (evaluations.csv)")


def check_shape_bias(tables: Path, models: Iterable[str], fractions: Iterable[float], references: Iterable[str],
                     tie_spread_draws: int = 0) -> None:
    """Every model at every K and mode, and the humans, in the table, with Figure 4's per-class box,
    the tie counts of every Top-K row and, when drawn, its tie spread; the references beside them in the sweep."""
    table = pd.read_csv(tables / "shape_bias.csv")
    models, fractions = list(models), list(fractions)
    _require("humans" in set(table["model"]), "shape_bias.csv has no row for the human observers")
    per_class = pd.read_csv(tables / "shape_bias_per_class.csv")
    _require(set(per_class["decision_maker"]) == set(table["decision_maker"]), "shape_bias_per_class.csv misses a decision maker")
    for model in models:
        rows = table[table["model"] == model]
        _require(len(rows) == 1 + 2 * len(fractions), f"shape_bias.csv has {len(rows)} rows for {model}, not 1 + 2 x {len(fractions)}")
        biases = rows["shape_bias"].dropna()
        _require(((biases >= 0) & (biases <= 1)).all(), f"shape_bias.csv: {model} shape biases outside [0, 1]")
        topk = rows[rows["K_percent"].notna()]
        _require(topk["tie_kept_share"].between(0, 1).all(), f"shape_bias.csv: {model} has Top-K rows without tie counts")
        if tie_spread_draws:
            # A draw without any shape or texture decision has no shape bias (NaN; common with random weights
            # and few stimuli): such a row's range is NaN, but it was still drawn.
            _require((topk["tie_draws"] == tie_spread_draws).all() and not (topk["tie_spread_min"] > topk["tie_spread_max"]).any(),
                     f"shape_bias.csv: {model} has Top-K rows without a tie spread over {tie_spread_draws} draws")
    sweep = pd.read_csv(tables / "shape_bias_sweep.csv")
    for name in [*references, "humans"]:
        _require(name in sweep.columns and sweep[name].notna().all(), f"shape_bias_sweep.csv has no line for {name!r}")
    _require(sorted(sweep["K_percent"]) == sorted(round(100 * f) for f in fractions), "shape_bias_sweep.csv misses a K")


def check_texture(tables: Path) -> None:
    table = pd.read_csv(tables / "texture_synthesis.csv")
    _require(len(table) >= 1, "texture_synthesis.csv is empty")
    numbers = table.select_dtypes("number").to_numpy().ravel()
    _require(_finite(numbers), "texture_synthesis.csv holds non-finite values")


def check_atlas(tables: Path, results: Path, entries: list[dict], fractions: Iterable[float], modes: Iterable[str]) -> None:
    """Each atlas model has its plain row and every swept setting, a record of the positions it ran, and a weights hash."""
    atlas = pd.read_csv(tables / "shape_bias_atlas.csv")
    for entry in entries:
        rows = atlas[atlas["model"] == entry["name"]]
        _require(len(rows) == 1 + len(list(fractions)) * len(list(modes)), f"shape_bias_atlas.csv: {entry['name']} has {len(rows)} rows")
        _require(rows["shape_bias"].between(0, 1).all() or rows["shape_bias"].isna().any(), f"{entry['name']}: shape bias out of [0, 1]")
        _require(rows["weights_sha256"].astype(str).str.fullmatch(r"[0-9a-f]{64}").all(), f"{entry['name']}: no weights SHA-256")
        record = json.loads((results / "shape_bias" / "atlas" / "records" / f"{entry['name']}.json").read_text())
        _require(bool(record["positions"]) and record["placement"] == entry["placement"], f"{entry['name']}: no resolved positions recorded")
        _require(str(rows["positions"].iloc[0]).count("[") == len(record["positions"]), f"{entry['name']}: positions differ from its record")


def check_report(report: Path) -> None:
    _require(report.is_file() and zipfile.is_zipfile(report), f"{report} is not a report archive")
    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
    _require(any(name.endswith("report.html") for name in names), f"{report} holds no report.html")
    _require(sum(name.endswith(".png") for name in names) >= 8, f"{report} holds fewer than 8 figures")


def check_outputs(root: Path, config: dict, summary_tsv: str | None = None) -> None:
    """Every check above for the run of ``config`` (merged) under ``root``."""
    experiment = config["experiment"]
    results = root / "results" / experiment
    data = root / "data" / experiment
    for subset, wnids in config["data"]["subsets"].items():
        for wnid in wnids:
            _require(any((data / subset / "train" / wnid).iterdir()), f"{data / subset}: no training images of {wnid}")
        _require(any((data / f"{subset}-stylized").rglob("*.png")) or any((data / f"{subset}-stylized").rglob("*.JPEG")),
                 f"{data}/{subset}-stylized holds no images")
    check_table1(results / "tables", config["data"]["subsets"])
    if config.get("robustness", {}).get("corruptions", {}).get("enabled"):
        check_table1b(results / "tables", config["data"]["subsets"], config["robustness"]["corruptions"])
    check_table2(results / "tables", gan_sets(config))
    check_gan_runs(results)
    shape_bias = config["shape_bias"]
    check_shape_bias(results / "tables", shape_bias["models"], shape_bias["fractions"], shape_bias["references"]["files"],
                     shape_bias.get("tie_spread_draws", 0))
    if shape_bias.get("atlas"):
        check_atlas(results / "tables", results, shape_bias["atlas"], shape_bias["fractions"], shape_bias["modes"])
    ood = config.get("robustness", {}).get("ood", {})
    if ood.get("datasets"):
        entries = [entry["name"] for entry in shape_bias["atlas"]]
        check_ood(results / "tables", entries, ood["datasets"], sweep_tags(ood.get("fractions") or shape_bias["fractions"], ["topk"]))
    check_texture(results / "tables")
    check_figures(results / "figures")
    if summary_tsv is not None:
        check_summary(summary_tsv)
    check_report(results / "report.zip")

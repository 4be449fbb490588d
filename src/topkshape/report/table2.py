"""Table 2: FID and KID x 10^3 per few-shot class, FastGAN vs FastGAN w. Top-K, over seeds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from topkshape.report.files import write_table_files
from topkshape.report.style import TEXT_WIDTH, plt, save_figure, use_paper_style

VARIANT_LABELS = {"fastgan": "FastGAN", "fastgan_topk": "FastGAN w. Top-K (ours)"}
METRICS = {"fid": "FID", "kid_x1e3": "KID×10³"}


def load_runs(metric_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run from ``<class>/<variant>/seed<k>/metrics.json``."""
    rows = []
    for path in map(Path, metric_paths):
        metrics = json.loads(path.read_text())
        rows.append({"class": path.parent.parent.parent.name, "variant": path.parent.parent.name,
                     "seed": int(path.parent.name.removeprefix("seed")), "fid": metrics["fid"], "kid_x1e3": metrics["kid_x1e3"],
                     "fid_init": metrics.get("fid_init")})
    return pd.DataFrame(rows).sort_values(["class", "variant", "seed"], ignore_index=True)


def aggregate(runs: pd.DataFrame, reference: dict[str, Any] | None) -> pd.DataFrame:
    rows = []
    for (cls, variant), group in runs.groupby(["class", "variant"], sort=True):
        for metric in METRICS:
            values = group[metric].to_numpy()
            paper = (reference or {}).get(variant, {}).get(cls, {}).get(metric)
            rows.append({"class": cls, "variant": variant, "metric": metric, "mean": float(values.mean()),
                         "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan, "n": len(values),
                         "paper_mean": paper[0] if paper else np.nan, "paper_std": paper[1] if paper else np.nan})
    return pd.DataFrame(rows)


def _cell(mean, std) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if not np.isnan(std) else f"{mean:.1f}"


def to_markdown(table: pd.DataFrame, title: str, note: str) -> str:
    classes = sorted(table["class"].unique())
    header = ["Method"] + [f"{c} {label}" + extra for c in classes for label in METRICS.values() for extra in ("", " (paper)")]
    lines = [f"# {title}", "", note, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, label in VARIANT_LABELS.items():
        cells = [label]
        for cls in classes:
            for metric in METRICS:
                hit = table[(table["class"] == cls) & (table.variant == variant) & (table.metric == metric)]
                if hit.empty:
                    cells += ["–", "–"]
                    continue
                r = hit.iloc[0]
                cells += [_cell(r["mean"], r["std"]), _cell(r.paper_mean, r.paper_std)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def training_progress(runs: pd.DataFrame) -> str:
    """Per run, the final FID as a fraction of the same generator's FID at initialisation.

    A final FID alone cannot say whether training got anywhere (an in-domain feature space has
    no familiar scale); a fraction near 1 means the generator is still close to its start.
    Empty when no run was scored at initialisation.
    """
    scored = runs[runs["fid_init"].notna()]
    if scored.empty:
        return ""
    lines = ["Final FID ÷ FID of the same generator at initialisation, per seed (smaller: training moved further):", ""]
    for (cls, variant), group in scored.groupby(["class", "variant"]):
        ratios = ", ".join(f"seed {seed}: {fid / init:.3f} ({init:.1f} → {fid:.1f})"
                           for seed, fid, init in zip(group["seed"], group["fid"], group["fid_init"]))
        lines.append(f"- {cls}, {VARIANT_LABELS.get(variant, variant)}: {ratios}")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    classes = sorted(table["class"].unique())
    lines = ["\\begin{tabular}{l" + "cc" * len(classes) + "}", "\\toprule",
             " & ".join(["Method"] + [f"{c} FID & {c} KID$^*$" for c in classes]) + " \\\\", "\\midrule"]
    for variant, label in VARIANT_LABELS.items():
        cells = [label]
        for cls in classes:
            for metric in METRICS:
                hit = table[(table["class"] == cls) & (table.variant == variant) & (table.metric == metric)]
                cells.append("--" if hit.empty else _cell(hit.iloc[0]["mean"], hit.iloc[0]["std"]).replace("±", "$\\pm$"))
        lines.append(" & ".join(cells) + " \\\\")
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"


def preview_tiles(path: str | Path) -> list[np.ndarray]:
    """The samples of one preview row (``gan.evaluate`` writes square samples side by side), RGB."""
    row = np.asarray(Image.open(path).convert("RGB"))
    height, width = row.shape[:2]
    count = width // height if height and width % height == 0 else 1
    return np.split(row, count, axis=1)


def sample_grid_figure(previews: Iterable[str | Path]) -> plt.Figure:
    """Rows of samples (one per class x variant, first seed), each row labelled with its class and
    variant and each column with its sample number; tiles of about 0.45 in (90 px in the PNG)."""
    use_paper_style()
    rows = [(Path(path), preview_tiles(path)) for path in previews]
    columns = max((len(tiles) for _, tiles in rows), default=1)
    fig, axes = plt.subplots(max(len(rows), 1), columns, squeeze=False, layout="constrained",
                             figsize=(min(TEXT_WIDTH, 1.3 + 0.55 * columns), 0.45 + 0.5 * max(len(rows), 1)))
    for r, (path, tiles) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(tiles):
                ax.axis("off")
                continue
            ax.imshow(tiles[c], interpolation="nearest")
            if r == 0:
                ax.set_title(str(c + 1))
        variant = VARIANT_LABELS.get(path.parent.parent.name, path.parent.parent.name)
        axes[r][0].set_ylabel(f"{path.parent.parent.parent.name}\n{variant}", rotation=0, ha="right", va="center")
    fig.suptitle("samples of each generator (first seed)")
    return fig


def sample_grid(previews: Iterable[str | Path], out: Iterable[str | Path]) -> None:
    """Write :func:`sample_grid_figure` to each path of ``out`` (format from the suffix: PNG, PDF)."""
    save_figure(sample_grid_figure(previews), out)


def write_table2(
    metric_paths, reference_path, out: dict[str, Any], title: str, note: str, *, provenance: dict[str, Any] | None = None
) -> pd.DataFrame:
    runs = load_runs(metric_paths)
    reference = yaml.safe_load(Path(reference_path).read_text())["table2"] if reference_path else None
    table = aggregate(runs, reference)
    progress = training_progress(runs)
    markdown = to_markdown(table, title, note) + (f"\n{progress}" if progress else "")
    write_table_files(table, ("class", "variant"), markdown, to_latex(table), out, provenance=provenance)
    return table

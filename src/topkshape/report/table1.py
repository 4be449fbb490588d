"""Table 1: clean and stylized accuracy per variant and subset, mean ± std over seeds.

The main number is the final-epoch accuracy. The paper code's protocol (each set's
best epoch, chosen on that same set, so optimistic) is reported separately. The
paper's values sit beside ours, with the difference, only for a subset run on ImageNet
with the paper configuration's classes (the paper's values are ImageNet's: beside a
generated-data run they would read as a failure to reproduce); a Welch t-test compares Top-K
with the baseline on the stylized sets. Where the data have diagnostic sets (the generated
default: shape-only and texture-only images), their accuracies say which cue each variant
learned, with a binomial test of each pooled accuracy against chance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from topkshape.report.files import write_table_files

VARIANT_LABELS = {
    "baseline": "ResNet-18",
    "topk": "ResNet-18 w. Top-K during training",
    "topk_mean_rpl": "ResNet-18 w. Top_K_Mean_Rpl during training",
}
SETS = ("clean", "stylized")
DIAGNOSTICS = {"shape_only": "shape-only", "texture_only": "texture-only"}


def load_runs(summary_paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per training run from its ``summary.json`` (path: .../<subset>/<variant>/seed<k>/)."""
    rows = []
    for path in map(Path, summary_paths):
        summary = json.loads(path.read_text())
        variant, subset = path.parent.parent.name, path.parent.parent.parent.name
        final, best = summary["final_epoch"], summary["best_epoch"]
        rows.append(
            {
                "subset": subset,
                "variant": variant,
                "seed": summary["settings"]["seed"],
                "clean": 100 * final["clean_acc"],
                "stylized": 100 * final["stylized_acc"],
                "shape_bias": 100 * final.get("shape_bias", np.nan),
                "texture_rate": 100 * final.get("texture_rate", np.nan),
                "best_clean": 100 * best["clean_acc"],
                "best_stylized": 100 * best["stylized_acc"],
                "images_per_s": summary["mean_images_per_s"],
                "classes": len(summary.get("classes", ())),
                "class_names": tuple(sorted(summary.get("classes", ()))),
                **{name: 100 * final.get(f"{name}_acc", np.nan) for name in DIAGNOSTICS},
                **{f"{name}_images": summary.get("diagnostic_images", {}).get(name, 0) for name in DIAGNOSTICS},
            }
        )
    return pd.DataFrame(rows).sort_values(["subset", "variant", "seed"], ignore_index=True)


def aggregate(runs: pd.DataFrame, reference: dict[str, Any] | None = None) -> pd.DataFrame:
    """Long table: subset, variant, metric, mean, std, n, paper mean/std, difference."""
    metrics = ["clean", "stylized", "best_clean", "best_stylized", "shape_bias", "texture_rate", *DIAGNOSTICS]
    rows = []
    for (subset, variant), group in runs.groupby(["subset", "variant"], sort=True):
        for metric in metrics:
            values = group[metric].dropna().to_numpy()
            if len(values) == 0:
                continue
            paper = (reference or {}).get(variant, {}).get(subset, {}).get(metric)
            mean = float(values.mean())
            rows.append(
                {
                    "subset": subset,
                    "variant": variant,
                    "metric": metric,
                    "mean": mean,
                    "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                    "n": len(values),
                    "paper_mean": paper[0] if paper else np.nan,
                    "paper_std": paper[1] if paper else np.nan,
                    "difference": mean - paper[0] if paper else np.nan,
                }
            )
    return pd.DataFrame(rows)


def welch_tests(runs: pd.DataFrame, metric: str = "stylized") -> pd.DataFrame:
    """Welch's t-test of each Top-K variant against the baseline, per subset."""
    rows = []
    for subset, group in runs.groupby("subset", sort=True):
        base = group.loc[group.variant == "baseline", metric].to_numpy()
        for variant in ("topk", "topk_mean_rpl"):
            other = group.loc[group.variant == variant, metric].to_numpy()
            if len(base) > 1 and len(other) > 1:
                result = stats.ttest_ind(other, base, equal_var=False)
                t, p = float(result.statistic), float(result.pvalue)
            else:
                t = p = float("nan")
            rows.append(
                {
                    "subset": subset,
                    "comparison": f"{variant} - baseline",
                    "metric": metric,
                    "difference": float(other.mean() - base.mean()) if len(base) and len(other) else np.nan,
                    "t": t,
                    "p": p,
                    "n": f"{len(other)} vs {len(base)}",
                }
            )
    return pd.DataFrame(rows)


def chance_tests(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Each diagnostic accuracy, pooled over seeds, against chance (1 / classes): one-sided binomial test.

    An accuracy not above chance at ``alpha`` says the variant did not learn that cue at all.
    """
    rows = []
    for (subset, variant), group in runs.groupby(["subset", "variant"], sort=True):
        for name in DIAGNOSTICS:
            if name not in group or group[name].isna().all():
                continue
            trials = int(group[f"{name}_images"].sum())
            hits = int(round(float((group[name] / 100 * group[f"{name}_images"]).sum())))
            chance = 1.0 / int(group["classes"].iloc[0])
            p = float(stats.binomtest(hits, trials, chance, alternative="greater").pvalue) if trials else float("nan")
            rows.append({"subset": subset, "variant": variant, "set": name, "hits": hits, "trials": trials,
                         "accuracy": 100 * hits / trials if trials else float("nan"), "chance": 100 * chance,
                         "p": p, "above_chance": bool(p < alpha)})
    return pd.DataFrame(rows, columns=["subset", "variant", "set", "hits", "trials", "accuracy", "chance", "p", "above_chance"])


def _cell(mean: float, std: float, n: int) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if not np.isnan(std) else f"{mean:.1f} (n={n})"


def _number(value: float, spec: str) -> str:
    """A dash where there is no value (a comparison with fewer than two runs on a side)."""
    return "–" if np.isnan(value) else format(value, spec)


def to_markdown(
    table: pd.DataFrame, tests: pd.DataFrame, title: str, chance: pd.DataFrame | None = None, *, paper_note: str | None = None,
) -> str:
    """``paper_note``: one line under the main table, saying why the paper's values are not beside ours."""
    subsets = sorted(table.subset.unique())
    lines = [f"# {title}", ""]
    with_paper = bool(table["paper_mean"].notna().any()) if len(table) else False

    def block(heading: str, metric_names: dict[str, str], with_paper: bool) -> None:
        header = ["Top-1 acc. (%)"]
        for subset in subsets:
            for metric, label in metric_names.items():
                header.append(f"{subset} {label}")
                if with_paper:
                    header += [f"{subset} {label} (paper)", "Δ"]
        lines.extend([f"## {heading}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)])
        for variant in VARIANT_LABELS:
            cells = [VARIANT_LABELS[variant]]
            for subset in subsets:
                for metric in metric_names:
                    hit = table[(table.subset == subset) & (table.variant == variant) & (table.metric == metric)]
                    if hit.empty:
                        cells += ["–"] * (3 if with_paper else 1)
                        continue
                    r = hit.iloc[0]
                    cells.append(_cell(r["mean"], r["std"], int(r["n"])))
                    if with_paper:
                        cells.append(_cell(r.paper_mean, r.paper_std, 3))
                        cells.append(_number(r.difference, "+.1f"))
            if len(cells) > 1:
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    n_seeds = int(table["n"].max()) if len(table) else 0
    block(f"Final epoch (main result; mean ± std over {n_seeds} seeds)", {"clean": "clean", "stylized": "stylized"}, with_paper)
    if paper_note:
        lines += [paper_note, ""]  # after the table's blank line: a line right under its rows would be one more row
    block("Paper code's protocol: best epoch per set, chosen on that set (optimistic)", {"best_clean": "clean", "best_stylized": "stylized"}, with_paper)
    if (table.metric == "shape_bias").any():
        block("Cue-conflict decisions at the final epoch (shape bias and texture-choice rate, %)", {"shape_bias": "shape bias %", "texture_rate": "texture %"}, False)
    if (table.metric.isin(list(DIAGNOSTICS))).any():
        block("Diagnostic sets at the final epoch: which cue was learned (accuracy %)", DIAGNOSTICS, False)
    if chance is not None and len(chance):
        lines += ["## Diagnostic accuracy against chance (pooled over seeds, one-sided binomial test)", "",
                  "| subset | variant | set | correct / images | acc. % | chance % | p | above chance |", "|---|---|---|---|---|---|---|---|"]
        for r in chance.itertuples():
            lines.append(f"| {r.subset} | {r.variant} | {DIAGNOSTICS[r.set]} | {r.hits} / {r.trials} | {r.accuracy:.1f} | {r.chance:.1f} | "
                         f"{r.p:.3g} | {'yes' if r.above_chance else 'no'} |")
        lines.append("")
    lines += ["## Welch t-test on the stylized sets (final epoch)", "", "| subset | comparison | Δ acc. | t | p | runs |", "|---|---|---|---|---|---|"]
    for r in tests.itertuples():
        lines.append(f"| {r.subset} | {r.comparison} | {_number(r.difference, '+.1f')} | {_number(r.t, '.2f')} | {_number(r.p, '.3g')} | {r.n} |")
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame) -> str:
    subsets = sorted(table.subset.unique())
    cols = "l" + "cc" * len(subsets)
    head = " & ".join(["Top-1 Acc. (\\%)"] + [f"{s} & Stylized-{s}" for s in subsets])
    lines = ["\\begin{tabular}{" + cols + "}", "\\toprule", head + " \\\\", "\\midrule"]
    for variant, label in VARIANT_LABELS.items():
        cells = [label.replace("_", "\\_")]
        for subset in subsets:
            for metric in SETS:
                hit = table[(table.subset == subset) & (table.variant == variant) & (table.metric == metric)]
                cells.append("--" if hit.empty else _cell(hit.iloc[0]["mean"], hit.iloc[0]["std"], int(hit.iloc[0]["n"])).replace("±", "$\\pm$"))
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def paper_classes(reference_path: str | Path) -> dict[str, list[str]]:
    """The class list of each subset in the paper configuration (``paper.yaml`` beside the reference values).

    The paper does not publish its IN-S1/IN-S2 lists; config/paper.yaml holds the ones this project
    runs in their place, so only a run on those classes is set beside the paper's values.
    """
    path = Path(reference_path).with_name("paper.yaml")
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    return {name: list(classes) for name, classes in ((config.get("data") or {}).get("subsets") or {}).items()}


def comparable_subsets(runs: pd.DataFrame, classes: Mapping[str, Sequence[str]]) -> set[str]:
    """Subsets whose every run is on exactly the paper configuration's classes (its ImageNet WNIDs)."""
    comparable = set()
    for subset, group in runs.groupby("subset"):
        wanted = tuple(sorted(classes.get(subset, ())))
        names = set(group["class_names"]) if "class_names" in group else set()
        if wanted and names == {wanted}:
            comparable.add(subset)
    return comparable


def _reference_values(reference_path: str | Path | None) -> dict[str, Any] | None:
    if not reference_path:
        return None
    raw = yaml.safe_load(Path(reference_path).read_text())["table1"]
    return {v: {s: {m: tuple(x) for m, x in ms.items()} for s, ms in subs.items()} for v, subs in raw.items()}


def _not_comparable_note(subsets: Iterable[str]) -> str:
    names = ", ".join(sorted(subsets))
    return (f"The paper's values (Li et al. 2023) are ImageNet's IN-S1/IN-S2 and not comparable with this run's {names} "
            "(another data source or other classes): no paper column, no Δ.")


def write_table1(
    summary_paths: Iterable[str | Path], reference_path: str | Path | None, out: dict[str, str | Path], title: str,
    *, provenance: dict[str, Any] | None = None, paper_subsets: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Write ``csv``, ``md``, ``tex`` and ``json`` (DVC metrics) outputs; return the long table.

    ``paper_subsets``: the paper configuration's class list per subset (default: read from the
    ``paper.yaml`` beside ``reference_path``); the paper's values go only beside subsets run on them.
    """
    runs = load_runs(summary_paths)
    reference = _reference_values(reference_path)
    note = None
    if reference is not None:
        comparable = comparable_subsets(runs, paper_classes(reference_path) if paper_subsets is None else paper_subsets)
        reference = {variant: {s: v for s, v in subsets.items() if s in comparable} for variant, subsets in reference.items()}
        others = set(runs["subset"]) - comparable
        note = _not_comparable_note(others) if others else None
    table = aggregate(runs, reference)
    tests = welch_tests(runs)
    chance = chance_tests(runs)
    markdown = to_markdown(table, tests, title, chance, paper_note=note)
    write_table_files(table, ("subset", "variant"), markdown, to_latex(table), out, provenance=provenance)
    return table

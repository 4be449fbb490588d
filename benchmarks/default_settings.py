"""Measure candidate settings for the embedded default: do the Table 1 runs converge, on any machine?

Settings are chosen by criteria that hold for the baseline AND every Top-K variant (identical
settings for all), never by whether Top-K wins. This script builds the data with the data
rules' own functions and trains each (subset, variant, seed) with the library as the ``train``
rule does, then reports per subset and variant: the final clean accuracy (mean, std over seeds,
minimum), the shape-only and texture-only accuracies of the diagnostic sets, a binomial test of
the shape-only accuracy against chance over all seeds, and the lowest final clean accuracy.
The goals (issue 26): every run >= 90 %, std <= 3 points, every baseline's shape-only accuracy
above chance; over >= 10 seeds, and again with the floats perturbed as another CPU would
(``--perturb mkldnn-off``: PyTorch's own conv kernels instead of oneDNN's; ``--threads 2``).

    nice -n 10 .venv/bin/python benchmarks/default_settings.py --subsets S1 --seeds 0 1 2 3 4 \
        --csv /tmp/s1.csv
    .venv/bin/python benchmarks/default_settings.py --report /tmp/s1.csv /tmp/s2.csv

The GAN part (``--gan``) trains one FastGAN per variant and compares the FID of the
final EMA generator with the FID of the same generator at initialisation, in the
feature space of a freshly trained S1 baseline (the default config's extractor).

Data are rendered once per settings under ``--workdir`` and reused; start parallel
processes on new data settings only after one of them has rendered the data (a second
renderer replaces the folder under a reader's feet).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from topkshape.classify.train import TrainSettings, train_classifier
from topkshape.classify.train import diagnostic_sets
from topkshape.config import validate_config
from topkshape.data.build import make_stylized, make_subset

ROOT = Path(__file__).resolve().parents[1]


def make_data(root: Path, subset: str, classes: list[str], synthetic: dict, stylize: dict) -> Path:
    """The subset (with its diagnostic sets) and its cue-conflict set, built by the data rules' own
    functions (same seeds as the workflow), once per settings (the folder name holds them)."""
    key = "_".join(f"{k}{v}" for k, v in sorted(synthetic.items()) if k != "home_textures") + f"_cc{stylize['per_class']}"
    key += f"_homes{key_of(synthetic['home_textures'])}" if synthetic.get("home_textures") else ""
    folder = root / key / f"{subset}-{'-'.join(classes)}"  # the classes too: a config may rename a subset's classes
    if not (folder / "train").is_dir():
        make_subset(subset, classes, folder, source="synthetic", options=synthetic, progress=False)
    stylized = folder.parent / f"{folder.name}-stylized"
    if not stylized.is_dir():
        make_stylized(subset, classes, folder, stylized, options=stylize, image_size=synthetic["image_size"],
                      home_textures=synthetic.get("home_textures"), progress=False)
    return folder


def key_of(values: dict) -> str:
    """A stable short digest (Python's hash() of a string changes from process to process)."""
    return hashlib.sha1(repr(sorted(values.items())).encode()).hexdigest()[:10]


@contextlib.contextmanager
def perturbed_floats(mode: str):
    """Another machine's floats: ``mkldnn-off`` runs the convolutions through PyTorch's native kernels
    instead of oneDNN's, which sum in another order (what another CPU's kernels do)."""
    if mode == "none":
        yield
    elif mode == "mkldnn-off":
        with torch.backends.mkldnn.flags(enabled=False):
            yield
    else:
        raise ValueError(f"unknown --perturb {mode!r}")


def train_runs(args: argparse.Namespace, config: dict) -> pd.DataFrame:
    config = validate_config(config, check_paths=False)  # defaults filled, as the workflow sees it
    synthetic = dict(config["data"]["synthetic"])
    for key in ("image_size", "train_per_class", "val_per_class", "diagnostic_per_class", "texture_correlation", "texture_colours"):
        value = getattr(args, f"data_{key}")
        if value is not None:
            synthetic[key] = value
    train = dict(config["train"])
    for key in ("epochs", "lr", "warmup_epochs", "batch_size", "width", "image_size", "crop_scale"):
        value = getattr(args, key)
        if value is not None:
            train[key] = value
    rows = []
    for subset in args.subsets:
        data = make_data(Path(args.workdir), subset, config["data"]["subsets"][subset], synthetic, config["stylize"])
        for variant in args.variants:
            for seed in args.seeds:
                settings = TrainSettings.from_params(train, variant=variant, seed=seed)
                out = Path(args.workdir) / "runs" / f"{subset}_{variant}_{seed}_{args.perturb}_t{args.threads}_{key_of({**dataclasses.asdict(settings), **synthetic, 'data': data.name})}"
                started, cpu_started = time.perf_counter(), time.process_time()
                with perturbed_floats(args.perturb):
                    summary = train_classifier(data / "train", data / "val", data.parent / f"{data.name}-stylized", out, settings,
                                               threads=args.threads, progress=False, diagnostic_dirs=diagnostic_sets(data),
                                               cache_images=train.get("cache_images", False),  # as the train rule: same results
                                               eval_every=train.get("eval_every", 1))
                seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
                metrics = pd.read_csv(out / "metrics.csv")
                row = {"subset": subset, "variant": variant, "seed": seed, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                       "clean_acc": float(metrics["clean_acc"].iloc[-1]),
                       "best_clean_acc": float(metrics["clean_acc"].max()),
                       "stylized_acc": float(metrics["stylized_acc"].iloc[-1]),
                       "train_acc": float(metrics["train_acc"].iloc[-1]),
                       **{column: float(metrics[column].iloc[-1]) for column in ("shape_only_acc", "texture_only_acc") if column in metrics},
                       "perturb": args.perturb, "threads": args.threads, "classes": len(summary["classes"]),
                       **{f"{name}_images": count for name, count in summary["diagnostic_images"].items()},
                       **{f"data.{k}": v for k, v in synthetic.items()},
                       **{f"train.{k}": v for k, v in train.items() if k in ("epochs", "lr", "warmup_epochs", "batch_size", "width", "image_size", "crop_scale")}}
                print(row, flush=True)
                rows.append(row)
                if args.csv:
                    pd.DataFrame(rows).to_csv(args.csv, index=False)
                del summary
    return pd.DataFrame(rows)


def report(frame: pd.DataFrame) -> None:
    """Per subset and variant: clean accuracy (mean, std in points with ddof=1, minimum), the
    diagnostic accuracies, the binomial test of shape-only accuracy against chance over all seeds,
    and the goals."""
    from topkshape.report.table1 import chance_tests

    grouped = frame.groupby(["subset", "variant"])
    table = pd.DataFrame({"mean": grouped["clean_acc"].mean() * 100, "std": grouped["clean_acc"].std(ddof=1) * 100,
                          "min": grouped["clean_acc"].min() * 100, "n": grouped.size(),
                          "cpu_s_per_run": grouped["cpu_seconds"].mean()})
    runs = pd.DataFrame()
    if "shape_only_acc" in frame:
        table["shape_only"] = grouped["shape_only_acc"].mean() * 100
        table["shape_only_min"] = grouped["shape_only_acc"].min() * 100
        table["texture_only"] = grouped["texture_only_acc"].mean() * 100
        runs = frame.assign(shape_only=frame["shape_only_acc"] * 100, texture_only=frame["texture_only_acc"] * 100)
        chance = chance_tests(runs).query("set == 'shape_only'").set_index(["subset", "variant"])
        table["shape_only_p"] = chance["p"]
    print(table.round(4).to_string())
    if "shape_only_acc" in frame:
        print(markdown_table(frame, table))
    print(f"lowest final clean accuracy: {frame['clean_acc'].min() * 100:.1f}% "
          f"({frame.loc[frame['clean_acc'].idxmin(), ['subset', 'variant', 'seed']].to_dict()})")
    # Accuracies are counts over the validation images kept as float32 (180/200 is 0.89999998): compare
    # percentages rounded far below one image, so a run at exactly 90% meets the goal.
    print("every run >= 90%:", bool(((frame["clean_acc"] * 100).round(6) >= 90).all()),
          "| every std <= 3 points:", bool((table["std"] <= 3).all()),
          "| every baseline's shape-only accuracy above chance (p < 0.05):",
          bool(len(runs) and "baseline" in table.index.get_level_values("variant")
               and (table.xs("baseline", level="variant")["shape_only_p"] < 0.05).all()))


def gan_report(frame: pd.DataFrame) -> None:
    """Per variant: the worst (largest) FID ratio, final / at initialisation, at the end and at every
    snapshot the runs recorded, with the goal (every run <= 1/10)."""
    columns = ["ratio"] + sorted((c for c in frame if c.startswith("ratio_")), key=lambda c: int(c.split("_")[1]))
    table = frame.groupby("variant")[columns].max()
    table.insert(0, "runs", frame.groupby("variant").size())
    print(table.round(4).to_string())
    print("every final FID <= init / 10:", bool((frame["ratio"] <= 0.1).all()))


def markdown_table(frame: pd.DataFrame, table: pd.DataFrame) -> str:
    """The README's table: per subset and variant, clean accuracy (mean ± std, minimum), the pooled
    shape-only accuracy with its binomial p against chance, texture-only and stylized accuracy (%)."""
    grouped = frame.groupby(["subset", "variant"])
    stylized = grouped["stylized_acc"].mean() * 100
    lines = ["| subset | variant | runs | clean % mean ± std (min) | shape-only % (pooled, p vs chance) | texture-only % | stylized % |",
             "|---|---|---|---|---|---|---|"]
    for (subset, variant), row in table.iterrows():
        p = row["shape_only_p"]
        p_text = "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
        lines.append(f"| {subset} | {variant} | {int(row['n'])} | {row['mean']:.2f} ± {row['std']:.2f} ({row['min']:.1f}) "
                     f"| {row['shape_only']:.1f} ({p_text}) | {row['texture_only']:.1f} | {stylized[(subset, variant)]:.1f} |")
    return "\n".join(lines)


def gan_runs(args: argparse.Namespace, config: dict) -> pd.DataFrame:
    """FID of each variant's final EMA generator and of the same generator at initialisation."""
    from topkshape.checkpoint import seed_everything
    from topkshape.config import validate_config
    from topkshape.data.synthetic import write_fewshot_set
    from topkshape.gan.evaluate import evaluate_run
    from topkshape.gan.settings import GanSettings, build_generator
    from topkshape.gan.train import _save_generator, train_fastgan

    full = validate_config(config, check_paths=False)
    gan = {k: v for k, v in full["gan"].items() if k not in ("seeds", "eval", "topk_fraction")}
    for key in ("im_size", "small_size", "ngf", "ndf", "iterations", "batch_size", "ema_decay", "lr"):
        value = getattr(args, f"gan_{key}")
        if value is not None:
            gan[key] = value
    gan["checkpoint_every"] = min(gan["checkpoint_every"], gan["iterations"])
    gan["snapshot_every"] = args.gan_snapshot_every  # snapshots copy the EMA generator; training is the same
    fewshot, cls = next(iter(full["data"]["fewshot"].items()))
    synthetic = full["data"]["synthetic"]
    images = Path(args.workdir) / f"fewshot_{cls}_{synthetic['image_size']}_{synthetic['home_textures'].get(cls, 'home')}"
    if not images.is_dir():
        write_fewshot_set(images, cls, count=full["data"]["fewshot_images"], image_size=synthetic["image_size"],
                          home_textures=synthetic["home_textures"], seed=synthetic["seed"], progress=False)
    rows = []
    for variant in args.gan_variants:
        for seed in args.seeds:
            fraction = full["gan"]["topk_fraction"][fewshot] if variant == "fastgan_topk" else None
            settings = GanSettings.from_params(gan, topk_fraction=fraction, seed=seed)
            tag = "_".join(f"{k}{gan[k]}" for k in ("im_size", "small_size", "ngf", "ndf", "iterations", "batch_size", "ema_decay", "lr"))
            run, init = Path(args.workdir) / "gan" / f"{variant}_{seed}_{tag}", Path(args.workdir) / "gan" / f"{variant}_{seed}_{tag}_init"
            init.mkdir(parents=True, exist_ok=True)
            seed_everything(settings.seed)  # as train_fastgan does before building its generator
            _save_generator(init / "generator_ema.pt", build_generator(settings), settings)
            started, cpu_started = time.perf_counter(), time.process_time()
            train_fastgan(images, run, settings, threads=1, progress=False)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            options = dict(full["gan"]["eval"])
            scores = {name: evaluate_run(folder, images, {**options, "selection": "best" if name == "final" and args.gan_snapshot_every else "final"},
                                         folder / "metrics.json", folder / "preview.png", classifier=args.classifier, seed=seed)
                      for name, folder in (("init", init), ("final", run))}
            # Every scored generator (snapshots, then the final one) against the same initial FID.
            candidates = {c["generator"]: c["fid"] for c in scores["final"]["candidates"]}
            final_fid = candidates.pop("generator_ema.pt", None)
            final_fid = final_fid if final_fid is not None else next(fid for name, fid in candidates.items() if name.endswith(f"{gan['iterations']:07d}.pt"))
            by_iteration = {f"ratio_{int(name.rsplit('_', 1)[1].split('.')[0])}": fid / scores["init"]["fid"] for name, fid in candidates.items()}
            row = {"variant": variant, "seed": seed, "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
                   "fid_init": scores["init"]["fid"], "fid_final": final_fid,
                   "ratio": final_fid / scores["init"]["fid"], **by_iteration, "preview": str(run / "preview.png"),
                   **{f"gan.{k}": gan[k] for k in ("im_size", "small_size", "ngf", "ndf", "iterations", "batch_size", "ema_decay", "lr")}}
            print(row, flush=True)
            rows.append(row)
            if args.csv:
                pd.DataFrame(rows).to_csv(args.csv, index=False)
    frame = pd.DataFrame(rows)
    print("every final FID <= init / 10:", bool((frame["ratio"] <= 0.1).all()))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    parser.add_argument("--workdir", default="/tmp/default_settings")
    parser.add_argument("--subsets", nargs="+", default=["S1", "S2"])
    parser.add_argument("--variants", nargs="+", default=["baseline", "topk", "topk_mean_rpl"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    for key, kind in (("epochs", int), ("lr", float), ("warmup_epochs", int), ("batch_size", int), ("width", int), ("image_size", int)):
        parser.add_argument(f"--{key.replace('_', '-')}", type=kind, default=None, help=f"train.{key} (default: the config's)")
    parser.add_argument("--crop-scale", type=float, nargs=2, default=None, help="train.crop_scale (default: the config's)")
    for key, kind in (("image_size", int), ("train_per_class", int), ("val_per_class", int), ("diagnostic_per_class", int),
                      ("texture_correlation", float), ("texture_colours", str)):
        parser.add_argument(f"--data-{key.replace('_', '-')}", type=kind, default=None, help=f"data.synthetic.{key}")
    parser.add_argument("--csv", default=None, help="write the per-run rows here (updated after every run)")
    parser.add_argument("--perturb", choices=["none", "mkldnn-off"], default="none",
                        help="another machine's floats: mkldnn-off = PyTorch's own conv kernels instead of oneDNN's")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (the train rule's train.threads; another count sums in another order)")
    parser.add_argument("--report", nargs="+", default=None, metavar="CSV", help="only report the rows of these --csv files together")
    parser.add_argument("--gan", action="store_true", help="measure the GAN (FID ratio final / init) instead of Table 1")
    parser.add_argument("--gan-variants", nargs="+", default=["fastgan", "fastgan_topk"])
    parser.add_argument("--classifier", default=None, help="--gan: the S1 baseline model.pt (FID features)")
    parser.add_argument("--gan-snapshot-every", type=int, default=0,
                        help="--gan: also score the EMA generator every N iterations (ratio_<N>, ...: the criterion at fewer iterations from the same runs)")
    for key, kind in (("im_size", int), ("small_size", int), ("ngf", int), ("ndf", int), ("iterations", int), ("batch_size", int),
                      ("ema_decay", float), ("lr", float)):
        parser.add_argument(f"--gan-{key.replace('_', '-')}", type=kind, default=None, help=f"gan.{key}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    if args.report:
        rows = pd.concat([pd.read_csv(path) for path in args.report], ignore_index=True)
        if "subset" not in rows and "ratio" in rows:
            gan_report(rows)
        else:
            report(rows)
    elif args.gan:
        gan_runs(args, config)
    else:
        report(train_runs(args, config))


if __name__ == "__main__":
    main()

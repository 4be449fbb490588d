"""``python -m topkshape.smoke``: the paper configuration's whole DAG, offline, then checks of its outputs.

    python -m topkshape.smoke                      # snakemake all on the paper config + smoke overlay, then check
    python -m topkshape.smoke --check-only         # check the outputs of an earlier run
    python -m topkshape.smoke -- dvc repro table1@paper-smoke table2@paper-smoke   # any command, server up

Run from the repository root (where the Snakefile is). The paper's published files and
model-vs-human's raw decisions are served from local copies (``--paper-data``,
``--model-vs-human``; the repository's ``../shared/`` by default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from topkshape.errors import TopkshapeError
from topkshape.smoke.checks import SmokeCheckError, check_outputs
from topkshape.smoke.imagenet_tree import write_imagenet_tree
from topkshape.smoke.server import serving
from topkshape.smoke.served_files import downloads_overlay, write_served_tree

PAPER_CONFIG = Path("config/paper.yaml")
SMOKE_CONFIG = Path("config/paper-smoke.yaml")
TRAIN_PER_CLASS = 1
VAL_PER_CLASS = 1


def layered_config(*paths: Path) -> dict:
    """The configs merged as Snakemake merges ``--configfile a b``: nested keys updated, later files win."""
    from snakemake.utils import update_config

    merged: dict = {}
    for path in paths:
        update_config(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _photos(config: dict, paper_data: Path) -> dict[str, list[Path]]:
    """Real ImageNet photographs for the WNIDs whose images the paper publishes (its few-shot sets)."""
    photos = {}
    for name, wnid in config["data"]["fewshot"].items():
        folder = paper_data / "fewshot" / str(config["data"].get("paper_fewshot", {}).get(name, ""))
        if str(wnid).startswith("n") and folder.is_dir() and any(p.name.startswith(wnid) for p in folder.iterdir()):
            photos[wnid] = sorted(folder.iterdir())
    return photos


def prepare(work: Path, paper_data: Path, human_raw_data: Path, port: int) -> tuple[Path, dict[str, Path]]:
    """The miniature ImageNet tree and the served files; returns the overlay path and the served files."""
    config = layered_config(PAPER_CONFIG, SMOKE_CONFIG)
    wnids = [w for classes in config["data"]["subsets"].values() for w in classes] + list(config["data"]["fewshot"].values())
    root = work / "ILSVRC2012"
    if not (root / "train").is_dir():
        print(f"smoke: writing a miniature ILSVRC2012 tree ({len(wnids)} WNIDs) to {root}", flush=True)
        write_imagenet_tree(root, wnids, train_per_class=TRAIN_PER_CLASS, val_per_class=VAL_PER_CLASS,
                            photos=_photos(config, paper_data))
    print(f"smoke: preparing served files under {work / 'serve'} (random weights of the real formats)", flush=True)
    files = write_served_tree(work / "serve", paper_data, human_raw_data, ood_datasets=config.get("robustness", {}).get("ood", {}).get("datasets", []))
    overlay = work / "downloads.yaml"
    text = yaml.safe_dump(downloads_overlay(f"http://127.0.0.1:{port}", files, root, work / "resources"), sort_keys=True)
    header = "# Written by python -m topkshape.smoke: where the paper config's downloads come from in the smoke run.\n"
    if not overlay.is_file() or overlay.read_text() != header + text:
        overlay.write_text(header + text)
    return overlay, files


def checked_config(overlay: Path) -> dict:
    """The run's configuration as the workflow sees it: the three layers, checked, defaults filled."""
    from topkshape.config import validate_config

    return validate_config(layered_config(PAPER_CONFIG, SMOKE_CONFIG, overlay), check_paths=False)


def snakemake_command(overlay: Path, cores: int, extra: list[str]) -> list[str]:
    snakemake = str(Path(sys.executable).parent / "snakemake")
    return [snakemake, "all", "--cores", str(cores), "--configfile", str(PAPER_CONFIG), str(SMOKE_CONFIG), str(overlay), *extra]


def verify(overlay: Path, config: dict) -> None:
    """The report, Snakemake's view (every output up to date, nothing planned), and each output's content."""
    experiment = config["experiment"]
    base = snakemake_command(overlay, 1, [])
    report = Path("results") / experiment / "report.zip"
    made = subprocess.run([*base, "--report", str(report)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise SmokeCheckError(f"snakemake --report failed: {made.stderr.strip().splitlines()[-1:]}")
    summary = subprocess.run([*base, "--summary"], capture_output=True, text=True, check=False)
    plan = subprocess.run([*base, "-n"], capture_output=True, text=True, check=False)
    if summary.returncode != 0 or "Nothing to be done" not in plan.stdout + plan.stderr:
        raise SmokeCheckError(f"after the run Snakemake still plans jobs: {(plan.stdout + plan.stderr)[-400:]}")
    check_outputs(Path("."), config, summary_tsv=summary.stdout)
    print(f"smoke: every rule of the paper DAG ran; the outputs of results/{experiment} and its report are checked", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topkshape.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("build/paper-smoke"), help="miniature ImageNet, served files, overlay")
    parser.add_argument("--paper-data", type=Path, default=Path(os.environ.get("TOPKSHAPE_PAPER_DATA", "../shared/paper-data")),
                        help="local copy of the paper repository's published files (style_target/, fewshot/, cue-conflict/); "
                             "default $TOPKSHAPE_PAPER_DATA or ../shared/paper-data")
    parser.add_argument("--model-vs-human", type=Path,
                        default=Path(os.environ.get("TOPKSHAPE_MODEL_VS_HUMAN", "../shared/model-vs-human/raw-data")),
                        help="model-vs-human's raw-data/ folder (cue-conflict/*.csv); default $TOPKSHAPE_MODEL_VS_HUMAN or ../shared/model-vs-human/raw-data")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TOPKSHAPE_SMOKE_PORT", "8741")),
                        help="127.0.0.1 port of the download server (default $TOPKSHAPE_SMOKE_PORT or 8741; keep it fixed: the URLs are params)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--check-only", action="store_true", help="only check the outputs of an earlier run")
    parser.add_argument("command", nargs="*", help="after --: a command to run while the server is up, instead of snakemake all")
    args = parser.parse_args(argv)
    try:
        if args.check_only:
            overlay = args.work / "downloads.yaml"
            if not overlay.is_file():
                print(f"smoke: no earlier smoke run here ({overlay} not found)", file=sys.stderr)
                return 2
            verify(overlay, checked_config(overlay))
            return 0
        for folder, what in ((args.paper_data, "--paper-data"), (args.model_vs_human, "--model-vs-human")):
            if not folder.is_dir():
                print(f"smoke: {what} folder not found: {folder}", file=sys.stderr)
                return 2
        args.work.mkdir(parents=True, exist_ok=True)
        overlay, _ = prepare(args.work, args.paper_data, args.model_vs_human, args.port)
        command = args.command or snakemake_command(overlay, args.cores, [])
        start = time.perf_counter()
        # The served tree (1.6 GB of seeded random weights, du) is kept for the next command: `dvc repro` runs
        # one per stage, and rebuilding it took ~16 s each (measured in docs/paper-run.md).
        with serving(args.work / "serve", args.port):
            print(f"smoke: serving downloads on 127.0.0.1:{args.port}; running {' '.join(command)}", flush=True)
            result = subprocess.run(command, check=False)
        print(f"smoke: command ended with {result.returncode} after {time.perf_counter() - start:.0f} s", flush=True)
        if result.returncode != 0:
            return result.returncode
        if not args.command:
            verify(overlay, checked_config(overlay))
        return 0
    except TopkshapeError as error:
        print(f"smoke: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The cue-conflict sweep for one model: one process for all settings vs one process per setting.

Both sides run the same library code (``run_cue_conflict_sweep``) in fresh Python
processes, so each pays what a Snakemake job pays: importing torch, building the model
(random weights from seed 0, the same on both sides), decoding the stimuli. The sweep
process does that once for all settings; the per-setting side once per setting, as the
workflow did before it ran one job per model. The raw CSVs of both sides are compared
byte for byte.

    python benchmarks/cue_conflict_sweep.py --images /work/shared/cue-conflict-sample
    python benchmarks/cue_conflict_sweep.py --images /work/shared/paper-data/cue-conflict --limit 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from topkshape.provenance import _cpu_model
from topkshape.shape_bias.tags import sweep_tags

PAPER_FRACTIONS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5]

# One Snakemake job, as a fresh process: its arguments arrive as JSON on argv.
JOB = """
import json, sys, torch
from topkshape.shape_bias.run import run_cue_conflict_sweep
a = json.loads(sys.argv[1])
torch.manual_seed(0)
run_cue_conflict_sweep(a["model"], a["tags"], a["images"], a["outputs"], weights=None, batch_size=a["batch_size"],
                       ties=a["ties"], threads=a["threads"], device=a["device"])
"""


def run_job(model: str, tags: list[str], images: Path, out_dir: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one job process writing ``<out_dir>/<model>-<tag>.csv`` for each tag."""
    job = {"model": model, "tags": tags, "images": str(images), "outputs": [str(out_dir / f"{model}-{t}.csv") for t in tags],
           "batch_size": args.batch_size, "ties": args.ties, "threads": args.threads, "device": args.device}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", JOB, json.dumps(job)], check=True)
    return time.perf_counter() - start


def limited(images: Path, limit: int | None, tmp: Path) -> tuple[Path, int]:
    """The folder itself, or the first ``limit`` images of each category round-robin, linked into ``tmp``."""
    paths = sorted(images.glob("*/*.png"))
    if not limit or limit >= len(paths):
        return images, len(paths)
    by_category: dict[str, list[Path]] = {}
    for path in paths:
        by_category.setdefault(path.parent.name, []).append(path)
    chosen = [group[i] for i in range(max(map(len, by_category.values()))) for group in by_category.values() if i < len(group)][:limit]
    for path in chosen:
        (tmp / path.parent.name).mkdir(parents=True, exist_ok=True)
        (tmp / path.parent.name / path.name).symlink_to(path)
    return tmp, len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="cue-conflict folder (<category>/<image>.png)")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--limit", type=int, help="use this many images (spread over the categories)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ties", choices=["keep", "exact"], default="exact")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    tags = sweep_tags(PAPER_FRACTIONS, ["topk", "non_topk"])
    cpu = f"CPU {_cpu_model()}, {args.threads} thread(s) per job"
    device = f"{torch.cuda.get_device_name()} ({cpu})" if args.device.startswith("cuda") else cpu
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images, count = limited(args.images, args.limit, tmp / "images")
        print(f"device: {device}; {args.model}, random weights; {count} images x {len(tags)} settings; batch {args.batch_size}; ties {args.ties}")
        (tmp / "sweep").mkdir()
        (tmp / "single").mkdir()
        sweep = run_job(args.model, tags, images, tmp / "sweep", args)
        print(f"one process, all settings:  {sweep:7.1f} s", flush=True)
        single = sum(run_job(args.model, [tag], images, tmp / "single", args) for tag in tags)
        print(f"one process per setting:    {single:7.1f} s ({len(tags)} processes)")
        same = all((tmp / "sweep" / f"{args.model}-{t}.csv").read_bytes() == (tmp / "single" / f"{args.model}-{t}.csv").read_bytes() for t in tags)
        print(f"per-setting / sweep time:   {single / sweep:7.2f}x; raw CSVs identical: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()

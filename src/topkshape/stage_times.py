"""Where a run's time went: job-seconds per rule from its Snakemake benchmarks, and each rule's share.

    python -m topkshape.stage_times results/paper-smoke/benchmarks

Each ``benchmark:`` file (``<rule>_<wildcards>.tsv``, column ``s``) is one job's wall time; the
sum over a rule's jobs is its job-seconds (jobs run side by side, so the sum exceeds the run's
wall time when they do). Rules are named by ``snakemake --list-rules`` in the working directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from topkshape.errors import InputDataError
from topkshape.slurm_resources import _rule_of


def stage_seconds(benchmark_dir: str | Path, rules: list[str]) -> pd.DataFrame:
    """Per rule: jobs, job-seconds (sum of ``s``), the longest job, and the share of all job-seconds."""
    folder = Path(benchmark_dir)
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise InputDataError(f"no benchmark files (<rule>_*.tsv) in {folder}")
    rows = []
    for path in files:
        rule = _rule_of(path.stem, rules)
        if rule is None:
            continue
        seconds = pd.read_csv(path, sep="\t")["s"]
        rows.append({"rule": rule, "s": float(seconds.iloc[-1])})
    table = pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", job_seconds="sum", longest="max")
    table["share"] = table["job_seconds"] / table["job_seconds"].sum()
    return table.sort_values("job_seconds", ascending=False)


def rule_names(cwd: str | Path | None = None) -> list[str]:
    """The workflow's rules, as ``snakemake --list-rules`` names them in ``cwd`` (default: the working directory)."""
    listed = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--list-rules"], capture_output=True, text=True, check=False,
                            cwd=cwd)
    return listed.stdout.split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topkshape.stage_times", description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", help="a run's benchmark folder, e.g. results/default/benchmarks")
    args = parser.parse_args(argv)
    rules = rule_names()
    try:
        table = stage_seconds(args.benchmarks, rules)
    except InputDataError as error:
        print(f"topkshape: {error}", file=sys.stderr)
        return 1
    print(f"{'rule':<20} {'jobs':>4} {'job-s':>8} {'longest':>8} {'share':>6}")
    for rule, row in table.iterrows():
        print(f"{rule:<20} {int(row.jobs):>4} {row.job_seconds:>8.1f} {row.longest:>8.1f} {row.share:>6.1%}")
    print(f"{'total':<20} {int(table.jobs.sum()):>4} {table.job_seconds.sum():>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

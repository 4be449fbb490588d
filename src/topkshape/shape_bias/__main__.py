"""``python -m topkshape.shape_bias --raw-csv FILE [FILE ...] --out OUT.csv [--per-class OUT2.csv] [--skip-invalid]``.

One row per input file: ``file, shape_bias, fraction_correct_shape, fraction_correct_texture``;
``--per-class``: ``file, category, shape_bias``. Every row of every file is checked first
(``analysis.raw_csv_problems``): a row the analysis would score wrong stops the run with
one line naming the file, line and value; ``--skip-invalid`` drops such rows instead and
warns on stderr with their count. Exit status 1 on any such error, 0 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import pandas as pd

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError, TopkshapeError
from topkshape.shape_bias.analysis import read_raw_csv, shape_bias, shape_bias_per_category

OVERALL_COLUMNS = ["file", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
PER_CLASS_COLUMNS = ["file", "category", "shape_bias"]


def _check_output(path: Path, option: str) -> None:
    """Fail before any work when an output cannot be written as a file."""
    if path.is_dir():
        raise InputDataError(f"{option} {path} is a folder; give a file path such as {path / 'shape_bias.csv'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise InputDataError(f"{option} {path}: {path.parent} is a file, not a folder")


def _write(frame: pd.DataFrame, path: Path, option: str) -> None:
    try:
        with atomic_file(path) as tmp:  # makes the folder too
            frame.to_csv(tmp, index=False)
    except OSError as err:
        raise InputDataError(f"{option} {path}: cannot write ({err.strerror or err})") from None


def run(args: argparse.Namespace) -> None:
    for path, option in ((args.out, "--out"), (args.per_class, "--per-class")):
        if path is not None:
            _check_output(path, option)
    overall, per_class = [], []
    for path in args.raw_csv:
        frame = read_raw_csv(path, skip_invalid=args.skip_invalid)
        for problems in frame.attrs["skipped"].values():
            print(f"topkshape: WARNING: skipped {len(problems)} invalid row(s) of {path} "
                  f"({len(frame)} scored); first: {problems[0]}", file=sys.stderr)
        overall.append({"file": path.name, **shape_bias(frame)})
        per_class.append(shape_bias_per_category(frame).assign(file=path.name)[PER_CLASS_COLUMNS])
    _write(pd.DataFrame(overall, columns=OVERALL_COLUMNS), args.out, "--out")
    if args.per_class:
        _write(pd.concat(per_class, ignore_index=True), args.per_class, "--per-class")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topkshape.shape_bias", description="Shape bias of raw cue-conflict decision files (model-vs-human format).")
    parser.add_argument("--raw-csv", nargs="+", required=True, type=Path, help="model-vs-human raw decision CSVs")
    parser.add_argument("--out", required=True, type=Path, help="one row per file")
    parser.add_argument("--per-class", type=Path, help="one row per file and shape category")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="drop rows with an unknown category, response or image name (counted, with a warning) instead of failing")
    args = parser.parse_args(argv)
    # The warning below says it on stderr; the library's log record is for workflow logs.
    logging.getLogger("topkshape.shape_bias.analysis").addHandler(logging.NullHandler())
    try:
        run(args)
    except TopkshapeError as err:
        if os.environ.get("TOPKSHAPE_DEBUG"):
            raise
        print(f"topkshape: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m topkshape.shape_bias --raw-csv FILE [FILE ...] --out OUT.csv [--per-class OUT2.csv]``.

One row per input file: ``file, shape_bias, fraction_correct_shape, fraction_correct_texture``;
``--per-class``: ``file, category, shape_bias``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from topkshape.errors import TopkshapeError
from topkshape.shape_bias.analysis import read_raw_csv, shape_bias, shape_bias_per_category


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m topkshape.shape_bias", description="Shape bias of raw cue-conflict decision files (model-vs-human format).")
    parser.add_argument("--raw-csv", nargs="+", required=True, type=Path, help="model-vs-human raw decision CSVs")
    parser.add_argument("--out", required=True, type=Path, help="one row per file")
    parser.add_argument("--per-class", type=Path, help="one row per file and shape category")
    args = parser.parse_args(argv)
    try:
        overall, per_class = [], []
        for path in args.raw_csv:
            frame = read_raw_csv(path)
            overall.append({"file": path.name, **shape_bias(frame)})
            per_class.append(shape_bias_per_category(frame).assign(file=path.name)[["file", "category", "shape_bias"]])
    except TopkshapeError as err:
        print(f"topkshape: {err}", file=sys.stderr)
        return 1
    columns = ["file", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(overall)[columns].to_csv(args.out, index=False)
    if args.per_class:
        args.per_class.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(per_class, ignore_index=True).to_csv(args.per_class, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

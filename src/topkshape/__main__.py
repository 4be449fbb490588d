"""``python -m topkshape [snakemake options]``: Snakemake with its command line checked first.

Snakemake rejects ``--config train.epochs=3``, a missing ``--configfile`` and a target written after
``--resources gpu=2`` in its own argument parsing, with a traceback, before the Snakefile can say
anything. This launcher checks those forms, rewrites dotted keys into the nested form Snakemake
accepts (``train='{epochs: 3}'``), moves such targets before the options, and then replaces itself
with ``snakemake``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from topkshape.config import launcher_args
from topkshape.errors import ConfigError

USAGE = """\
usage: python -m topkshape [TARGET ...] [SNAKEMAKE OPTION ...]

Runs snakemake on this workflow after checking the parts of its command line that Snakemake
would answer with a traceback; every option is Snakemake's. On top of snakemake it:
  --config train.epochs=3        takes dotted keys (passed on as train='{epochs: 3}')
  --configfile FILE [FILE ...]   stops in one line when a file is missing or is a folder
  --resources gpu=2 all          reads a word without '=' after NAME=VALUE options as a target
                                 (moved before the options; snakemake would take it for a value)

examples:
  python -m topkshape all --cores 2 -n
  python -m topkshape all --cores 8 --resources gpu=2 --configfile config/paper.yaml \\
      --config imagenet_root=/data/ILSVRC2012

Snakemake's own options: snakemake --help
"""


def wants_help(args: list[str]) -> bool:
    """``-h``/``--help`` anywhere: the launcher's usage, since snakemake's would not mention it."""
    return any(arg in ("-h", "--help") for arg in args)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if wants_help(args):
        print(USAGE, end="")
        return 0
    try:
        args, moved = launcher_args(args)
    except ConfigError as err:
        print(f"topkshape: {err}", file=sys.stderr)
        return 1
    if moved:
        print(f"topkshape: moved the target(s) {' '.join(moved)} before the options (snakemake would read them as "
              "values of the option before them)", file=sys.stderr)
    executable = Path(sys.executable).with_name("snakemake")
    os.execv(executable, [str(executable), *args])
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main())

"""``python -m topkshape [snakemake options]``: Snakemake with its command line checked first.

Snakemake rejects ``--config train.epochs=3`` and a missing ``--configfile`` in its own argument
parsing, with a traceback, before the Snakefile can say anything. This launcher checks those forms,
rewrites dotted keys into the nested form Snakemake accepts (``train='{epochs: 3}'``), and then
replaces itself with ``snakemake``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from topkshape.config import snakemake_args
from topkshape.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    try:
        args = snakemake_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"topkshape: {err}", file=sys.stderr)
        return 1
    executable = Path(sys.executable).with_name("snakemake")
    os.execv(executable, [str(executable), *args])
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main())

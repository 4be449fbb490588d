"""Glue for Snakemake scripts: per-rule log files and one-line errors."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from topkshape.errors import TopkshapeError


@contextlib.contextmanager
def rule_logging(log_path: str | os.PathLike, rule: str = "") -> Iterator[logging.Logger]:
    """Log to the rule's log file (and stderr); turn a user error into one line and exit 1.

    A TopkshapeError (missing folder, corrupt file, bad value) is written as one line
    to the log and to stderr, without a traceback unless TOPKSHAPE_DEBUG is set. Any
    other exception is a bug: its traceback goes to the log and the job fails.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logger = logging.getLogger(f"topkshape.rule.{rule}" if rule else "topkshape.rule")
    try:
        yield logger
    except TopkshapeError as err:
        logger.error("%s", err)
        if os.environ.get("TOPKSHAPE_DEBUG"):
            raise
        print(f"topkshape error: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        logger.exception("rule failed")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()

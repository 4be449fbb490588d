"""Glue for Snakemake scripts: per-rule log files and one-line errors."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from topkshape.errors import TopkshapeError
from topkshape.gpu_slots import gpu_slot


@contextlib.contextmanager
def rule_logging(log_path: str | os.PathLike, rule: str = "", *, gpus: int = 0) -> Iterator[logging.Logger]:
    """Log to the rule's log file (and stderr); turn a user error into one line and exit 1.

    A TopkshapeError (missing folder, corrupt file, bad value) is written as one line
    to the log and to stderr, without a traceback unless TOPKSHAPE_DEBUG is set. Any
    other exception is a bug: its traceback goes to the log and the job fails.

    ``gpus`` (the rule's ``resources: gpu``) >= 1 takes a GPU slot for the job's lifetime
    (topkshape.gpu_slots): ``CUDA_VISIBLE_DEVICES`` names the job's own device(s) and the log
    says ``GPU slot <i> (CUDA_VISIBLE_DEVICES=<id>)``. Open this before the job's first CUDA call.
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
        with gpu_slot(gpus, rule=rule, log=logger.info):
            _inject_failure(rule)
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


def _inject_failure(rule: str) -> None:
    """Fail on purpose, for resilience tests of retries and error reporting.

    ``TOPKSHAPE_FAIL_ALWAYS=<rule>`` fails every job of that rule;
    ``TOPKSHAPE_FAIL_ONCE=<rule>:<marker file>`` fails the first job of that rule that
    finds no marker file (and creates it), so a retry succeeds.
    """
    if rule and os.environ.get("TOPKSHAPE_FAIL_ALWAYS") == rule:
        raise TopkshapeError(f"injected failure in rule {rule} (TOPKSHAPE_FAIL_ALWAYS)")
    once = os.environ.get("TOPKSHAPE_FAIL_ONCE", "")
    target, _, marker = once.partition(":")
    if rule and target == rule and marker and not Path(marker).exists():
        Path(marker).parent.mkdir(parents=True, exist_ok=True)
        Path(marker).write_text("failed once\n")
        raise TopkshapeError(f"injected failure in rule {rule} (TOPKSHAPE_FAIL_ONCE)")

"""What produced a result: config values, code version, packages and device, for every result file.

A reader auditing ``results/`` should not need the logs: each run summary and each table
records the values it was made from (:func:`provenance_record`).
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

_PACKAGES = ("topkshape", "torch", "torchvision", "numpy", "snakemake", "torch-fidelity")


def environment_report() -> dict[str, str]:
    """Versions of the packages that shape our numbers, plus Python and the device."""
    report = {"python": platform.python_version(), "machine": platform.machine()}
    for name in _PACKAGES:
        try:
            report[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            report[name] = "not installed"
    if torch.cuda.is_available():
        report["device"] = torch.cuda.get_device_name(0)
        report["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    else:
        report["device"] = f"cpu ({torch.get_num_threads()} threads)"
    report["cpu"] = _cpu_model()
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state(directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit of the code that ran, and whether the work tree had uncommitted changes.

    ``directory`` defaults to the current one (Snakemake runs jobs in the project root).
    Outside a git checkout (an installed package, a tarball) both are reported as unknown.
    """
    cwd = str(directory or os.getcwd())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def provenance_record(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` (the config values a job used) with the git state and the environment."""
    return {"params": params or {}, "git": git_state(), "environment": environment_report()}

"""What produced a result: package versions and the compute device, for logs and tables."""

from __future__ import annotations

import platform
from importlib import metadata

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
    else:
        report["device"] = f"cpu ({torch.get_num_threads()} threads)"
    return report

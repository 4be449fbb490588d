"""One GPU per job on a local machine: lock files per device, then ``CUDA_VISIBLE_DEVICES``.

Snakemake's ``--resources gpu=N`` only counts GPU jobs; it never says which device a job should
use (snakemake#281), so every job would pick ``cuda:0``. A job takes a *slot* here: an exclusive
``fcntl.flock`` on ``<slot dir>/<host>/gpu-<device>.lock``, where the slot dir is
``$TOPKSHAPE_GPU_SLOT_DIR`` or ``.snakemake/gpu_slots`` in the working directory (the run's own
folder). The kernel drops a flock when its process ends, however it ends (SIGKILL included), so a
killed job's slot is free again without cleanup (forked data-loader workers share the lock until
they notice their parent is gone, a few seconds). ``CUDA_VISIBLE_DEVICES`` is set before the
job's first CUDA call: torch initialises CUDA lazily, so importing torch first does not matter.

Devices, first match wins:

1. a SLURM job whose allocation holds exactly the GPUs the job asks for: the scheduler has
   chosen; nothing is locked or changed;
2. ``CUDA_VISIBLE_DEVICES`` already set (by the user, or a larger SLURM allocation shared by a
   local run): the slots are drawn from those devices only;
3. ``$TOPKSHAPE_GPU_COUNT`` (devices ``0..n-1``; tests use it on machines without a GPU);
4. ``nvidia-smi -L``, then ``/proc/driver/nvidia/gpus`` (neither initialises CUDA here).

With no GPU found the job takes no slot and runs unconstrained (on the CPU): serialising CPU-only
jobs behind one pretend device would halve the embedded default's parallelism.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from topkshape.errors import ConfigError

SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


@dataclass(frozen=True)
class GpuAssignment:
    """The devices one job runs on and who chose them."""

    slots: tuple[int, ...]  # slot indices held by this job (empty when SLURM chose)
    devices: tuple[str, ...]  # the CUDA_VISIBLE_DEVICES entries of those slots
    chosen_by: str  # "slots" or "slurm"

    def describe(self) -> str:
        visible = ",".join(self.devices)
        if self.chosen_by == "slurm":
            return f"GPU assigned by SLURM (CUDA_VISIBLE_DEVICES={visible or 'unset'})"
        word = "slot" if len(self.slots) == 1 else "slots"
        return f"GPU {word} {','.join(map(str, self.slots))} (CUDA_VISIBLE_DEVICES={visible})"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _visible(environ: Mapping[str, str]) -> tuple[str, ...] | None:
    """Devices CUDA_VISIBLE_DEVICES allows, or None when it is unset; "" and "-1" hide all."""
    if "CUDA_VISIBLE_DEVICES" not in environ:
        return None
    devices = _split(environ["CUDA_VISIBLE_DEVICES"])
    return () if devices in ((), ("-1",)) else devices


def slurm_devices(environ: Mapping[str, str] = os.environ) -> tuple[str, ...] | None:
    """The GPUs SLURM gave this job (CUDA_VISIBLE_DEVICES first: what CUDA will see), or None.

    SLURM sets CUDA_VISIBLE_DEVICES for a GPU allocation; the executor plugin's job step may
    drop the SLURM_*_GPUS variables, so either one marks SLURM's choice.
    """
    if not environ.get("SLURM_JOB_ID"):
        return None
    visible = _visible(environ)
    if visible is not None:
        return visible
    # No CUDA_VISIBLE_DEVICES: the allocation's GPUs, or None for a CPU-only allocation.
    return next((_split(environ[key]) for key in SLURM_GPU_VARIABLES if environ.get(key)), None)


def _nvidia_smi_count() -> int | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))


def _proc_count(root: Path = Path("/proc/driver/nvidia/gpus")) -> int | None:
    try:
        return sum(1 for _ in root.iterdir())
    except OSError:
        return None


def local_devices(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The devices slots map to, outside a SLURM GPU allocation (empty: no GPU found)."""
    visible = _visible(environ)
    if visible is not None:
        return visible
    if environ.get("TOPKSHAPE_GPU_COUNT", "").strip():
        raw = environ["TOPKSHAPE_GPU_COUNT"].strip()
        if not raw.isdigit():
            raise ConfigError(f"TOPKSHAPE_GPU_COUNT must be a whole number of GPUs, got {raw!r}")
        return tuple(str(i) for i in range(int(raw)))
    count = _nvidia_smi_count()
    if not count:
        count = _proc_count()
    return tuple(str(i) for i in range(count or 0))


def slot_folder(environ: Mapping[str, str] = os.environ) -> Path:
    """Run-scoped and host-scoped: device 0 of another node is another device."""
    base = Path(environ.get("TOPKSHAPE_GPU_SLOT_DIR") or Path(".snakemake") / "gpu_slots")
    return base / socket.gethostname().split(".")[0]


def _lock_name(device: str) -> str:
    return "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", device) + ".lock"


def _try_lock(path: Path, note: str) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, note.encode())
    return fd


def _try_acquire(folder: Path, devices: tuple[str, ...], count: int, note: str) -> list[tuple[int, int]] | None:
    """``count`` free slots as (slot, fd), all or none: a partial hold could deadlock two jobs."""
    held: list[tuple[int, int]] = []
    for slot, device in enumerate(devices):
        fd = _try_lock(folder / _lock_name(device), note)
        if fd is not None:
            held.append((slot, fd))
            if len(held) == count:
                return held
    for _, fd in held:
        os.close(fd)
    return None


def _warn_if_cuda_started(log: Callable[[str], None]) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        log("warning: CUDA was initialised before the GPU slot was taken; CUDA_VISIBLE_DEVICES has no effect")


@contextlib.contextmanager
def gpu_slot(
    gpus: float | str | None,
    *,
    rule: str = "",
    log: Callable[[str], None] = lambda message: None,
    environ: dict[str, str] | None = None,
    poll_seconds: float = 0.5,
) -> Iterator[GpuAssignment | None]:
    """Hold ``gpus`` devices for the body and point ``CUDA_VISIBLE_DEVICES`` at them.

    Waits while every slot is taken (more GPU jobs than devices, e.g. no ``--resources gpu=N``
    limit). Restores ``CUDA_VISIBLE_DEVICES`` and frees the slots on exit. Yields None when the
    job asks for no GPU or the machine has none.
    """
    env = os.environ if environ is None else environ
    wanted = int(float(gpus or 0))
    if wanted <= 0:
        yield None
        return
    assigned = slurm_devices(env)
    if assigned is not None and len(assigned) <= wanted:
        assignment = GpuAssignment((), assigned, "slurm")
        log(assignment.describe())
        yield assignment
        return
    devices = assigned if assigned is not None else local_devices(env)
    if not devices:
        log("no GPU found (CUDA_VISIBLE_DEVICES, TOPKSHAPE_GPU_COUNT, nvidia-smi, /proc/driver/nvidia): "
            "no GPU slot taken, the job runs on the CPU")
        yield None
        return
    if wanted > len(devices):
        raise ConfigError(f"the job asks for {wanted} GPUs but this machine has {len(devices)} ({','.join(devices)})")
    folder = slot_folder(env)
    folder.mkdir(parents=True, exist_ok=True)
    note = f"pid {os.getpid()} rule {rule or '?'}\n"
    held = _try_acquire(folder, devices, wanted, note)
    if held is None:
        log(f"all {len(devices)} GPU slots in {folder} are taken; waiting for one to be freed")
        while held is None:
            time.sleep(poll_seconds)
            held = _try_acquire(folder, devices, wanted, note)
    assignment = GpuAssignment(tuple(s for s, _ in held), tuple(devices[s] for s, _ in held), "slots")
    previous = env.get("CUDA_VISIBLE_DEVICES")
    _warn_if_cuda_started(log)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(assignment.devices)
    log(assignment.describe())
    try:
        yield assignment
    finally:
        if previous is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = previous
        for _, fd in held:
            os.close(fd)  # closing the only descriptor releases the flock

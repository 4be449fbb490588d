"""A single-node SLURM cluster on this machine for integration tests (root, no systemd).

Installs Debian's slurm-wlm and munge when missing, writes a generated slurm.conf to
/etc/slurm (the jobstep plugin needs the default path), fakes two GPUs with character
devices, starts munged, slurmctld and slurmd in the foreground, and stops exactly the
processes it started (by PID) afterwards, restoring any configuration it replaced.

The node announces the size of a typical GPU node (NODE_CPUS, NODE_MEMORY_MB; slurmd's
``config_overrides`` accepts more than the hardware has), so the project's shipped profile
and its per-rule requests (8 CPUs, 32 GB for training) are submitted unchanged. The cluster
has no accounting, like many small clusters: that is its only difference from a production one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
CONF_DIR = Path("/etc/slurm")
NODE_CPUS = 16
NODE_MEMORY_MB = 64000


def ensure_installed() -> str | None:
    """None when SLURM is usable, else the reason to skip."""
    if all(shutil.which(cmd) for cmd in ("slurmctld", "slurmd", "sbatch", "munged")):
        return None
    if os.geteuid() != 0:
        return "SLURM is not installed and installing it needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"installing SLURM failed: {done.stderr[-500:]}"
    return None


def _slurm_conf(host: str, state: Path) -> str:
    return f"""ClusterName=topkshape-test
SlurmctldHost={host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
SchedulerType=sched/backfill
GresTypes=gpu
NodeName={host} CPUs={NODE_CPUS} RealMemory={NODE_MEMORY_MB} Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@contextmanager
def single_node_cluster(state: Path):
    """Yield the partition name of a running one-node cluster; stop it afterwards."""
    host = socket.gethostname().split(".")[0]
    for sub in ("ctld", "d", "dev"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    for i in range(2):  # fake GPUs: slurmd accepts character devices only
        device = state / "dev" / f"fakegpu{i}"
        if not device.exists():
            os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
    backups = {}
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in (("slurm.conf", _slurm_conf(host, state)),
                       ("gres.conf", f"Name=gpu File={state}/dev/fakegpu[0-1]\n")):
        path = CONF_DIR / name
        if path.exists():
            backups[path] = path.read_bytes()
        path.write_text(text)
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    try:
        log = open(state / "daemons.log", "ab")
        started.append(subprocess.Popen(["munged", "-F", "--force"], stdout=log, stderr=log))
        time.sleep(1)
        started.append(subprocess.Popen(["slurmctld", "-D", "-i"], stdout=log, stderr=log))
        time.sleep(2)
        started.append(subprocess.Popen(["slurmd", "-D"], stdout=log, stderr=log))
        deadline = time.time() + 60
        while time.time() < deadline:
            info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
            if info.returncode == 0 and info.stdout.strip() in ("idle", "mixed", "allocated"):
                break
            if "invalid" in info.stdout or "down" in info.stdout:
                subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], capture_output=True)
            time.sleep(1)
        else:
            raise RuntimeError(f"SLURM node did not become idle: {info.stdout} {info.stderr}; see {state}")
        yield "test"
    finally:
        for proc in reversed(started):
            proc.terminate()
        for proc in reversed(started):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in ("slurm.conf", "gres.conf"):
            path = CONF_DIR / name
            if path in backups:
                path.write_bytes(backups[path])
            else:
                path.unlink(missing_ok=True)

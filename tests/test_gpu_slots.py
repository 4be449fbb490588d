"""GPU slots: concurrent GPU jobs get distinct devices, a killed job's slot is freed, SLURM's choice is kept.

No GPU is needed: TOPKSHAPE_GPU_COUNT stands in for the machine's device count, and the
allocation (lock files + CUDA_VISIBLE_DEVICES) is the same with or without CUDA.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from workflow_support import SNAKEMAKE

from topkshape.errors import ConfigError
from topkshape.gpu_slots import gpu_slot

# A job: take the rule's GPU slots, report CUDA_VISIBLE_DEVICES, hold the slot until released.
JOB = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from topkshape.workflow import rule_logging
    log, report, release, gpus = sys.argv[1:5]
    with rule_logging(log, "train", gpus=int(gpus)):
        Path(report).write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
        while not Path(release).exists():
            time.sleep(0.05)
    Path(report + ".after").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
""")


def _env(tmp_path: Path, count: str = "2", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES" and not k.startswith("SLURM_")}
    env.update(TOPKSHAPE_GPU_COUNT=count, TOPKSHAPE_GPU_SLOT_DIR=str(tmp_path / "slots"), **extra)
    return env


def _start(tmp_path: Path, name: str, env: dict[str, str], gpus: int = 1) -> subprocess.Popen:
    args = [str(tmp_path / f"{name}.log"), str(tmp_path / f"{name}.visible"), str(tmp_path / f"{name}.release"), str(gpus)]
    return subprocess.Popen([sys.executable, "-c", JOB, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    time.sleep(0.05)
    return path.read_text()


def _finish(tmp_path: Path, name: str, proc: subprocess.Popen) -> str:
    (tmp_path / f"{name}.release").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return (tmp_path / f"{name}.log").read_text()


def test_two_concurrent_gpu_jobs_get_distinct_slots_and_say_so_in_their_logs(tmp_path):
    env = _env(tmp_path, "2")
    jobs = {name: _start(tmp_path, name, env) for name in ("a", "b")}
    visible = {name: _wait_for(tmp_path / f"{name}.visible") for name in jobs}  # both hold a slot now
    logs = {name: _finish(tmp_path, name, proc) for name, proc in jobs.items()}
    assert sorted(visible.values()) == ["0", "1"]
    for name, device in visible.items():
        assert f"GPU slot {device} (CUDA_VISIBLE_DEVICES={device})" in logs[name]


def test_a_third_job_waits_for_a_free_slot_and_gets_the_freed_one(tmp_path):
    env = _env(tmp_path, "2")
    first = {name: _start(tmp_path, name, env) for name in ("a", "b")}
    held = {name: _wait_for(tmp_path / f"{name}.visible") for name in first}
    third = _start(tmp_path, "c", env)
    # The third job has started and is waiting (its log says so) while both slots are held: not merely late.
    deadline = time.time() + 60
    while "waiting for one to be freed" not in ((tmp_path / "c.log").read_text() if (tmp_path / "c.log").exists() else ""):
        assert time.time() < deadline and third.poll() is None, "the third job never reported waiting for a slot"
        time.sleep(0.05)
    time.sleep(0.5)
    assert not (tmp_path / "c.visible").exists(), "a third job ran while both slots were held"
    _finish(tmp_path, "a", first["a"])
    assert _wait_for(tmp_path / "c.visible") == held["a"]
    log = _finish(tmp_path, "c", third)
    assert "GPU slots in" in log and "waiting" in log
    _finish(tmp_path, "b", first["b"])


def test_a_sigkilled_jobs_slot_is_freed(tmp_path):
    env = _env(tmp_path, "1")
    victim = _start(tmp_path, "a", env)
    assert _wait_for(tmp_path / "a.visible") == "0"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    successor = _start(tmp_path, "b", env)
    assert _wait_for(tmp_path / "b.visible", timeout=30) == "0"
    assert "waiting" not in _finish(tmp_path, "b", successor)


def test_a_job_asking_for_two_gpus_holds_two_slots(tmp_path):
    env = _env(tmp_path, "3")
    one = _start(tmp_path, "a", env, gpus=1)
    assert _wait_for(tmp_path / "a.visible") == "0"
    two = _start(tmp_path, "b", env, gpus=2)
    assert _wait_for(tmp_path / "b.visible") == "1,2"
    assert "GPU slots 1,2 (CUDA_VISIBLE_DEVICES=1,2)" in _finish(tmp_path, "b", two)
    _finish(tmp_path, "a", one)


def test_cuda_visible_devices_is_restored_when_the_job_body_ends(tmp_path):
    env = _env(tmp_path, "2")
    job = _start(tmp_path, "a", env)
    _wait_for(tmp_path / "a.visible")
    _finish(tmp_path, "a", job)
    assert (tmp_path / "a.visible.after").read_text() == "unset"


def test_more_gpus_than_the_machine_has_is_one_line_naming_both_counts(tmp_path):
    env = _env(tmp_path, "2")
    job = _start(tmp_path, "a", env, gpus=3)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 1
    assert err.strip() == "topkshape error: the job asks for 3 GPUs but this machine has 2 (0,1)"


def test_slots_are_drawn_from_an_existing_cuda_visible_devices(tmp_path):
    environ_a = {"CUDA_VISIBLE_DEVICES": "5,7", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    environ_b = dict(environ_a)
    with gpu_slot(1, environ=environ_a) as a, gpu_slot(1, environ=environ_b) as b:
        assert (environ_a["CUDA_VISIBLE_DEVICES"], environ_b["CUDA_VISIBLE_DEVICES"]) == ("5", "7")
        assert (a.slots, b.slots) == ((0,), (1,))
    assert environ_a["CUDA_VISIBLE_DEVICES"] == environ_b["CUDA_VISIBLE_DEVICES"] == "5,7"


def test_a_slurm_gpu_assignment_is_kept_and_nothing_is_locked(tmp_path):
    environ = {"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "3", "CUDA_VISIBLE_DEVICES": "0",
               "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path / "slots"), "TOPKSHAPE_GPU_COUNT": "8"}
    messages: list[str] = []
    with gpu_slot(1, environ=environ, log=messages.append) as assignment:
        assert environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert assignment.chosen_by == "slurm"
    assert messages == ["GPU assigned by SLURM (CUDA_VISIBLE_DEVICES=0)"]
    assert not (tmp_path / "slots").exists()


def test_slurms_cuda_visible_devices_alone_marks_its_choice(tmp_path):
    # The executor plugin's job step keeps only the job ids of the SLURM_* variables.
    environ = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "1", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path / "slots")}
    with gpu_slot(1, environ=environ) as assignment:
        assert assignment.chosen_by == "slurm" and environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not (tmp_path / "slots").exists()


def test_a_shared_slurm_allocation_larger_than_the_job_is_split_into_slots(tmp_path):
    # `salloc --gpus=2` then a local snakemake run: two gpu=1 jobs must not share GPU 0.
    base = {"SLURM_JOB_ID": "42", "SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1",
            "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    environ_a, environ_b = dict(base), dict(base)
    with gpu_slot(1, environ=environ_a), gpu_slot(1, environ=environ_b):
        assert {environ_a["CUDA_VISIBLE_DEVICES"], environ_b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}


def test_without_a_gpu_no_slot_is_taken_and_jobs_do_not_wait(tmp_path):
    environ = {"TOPKSHAPE_GPU_COUNT": "0", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    with gpu_slot(1, environ=environ) as a, gpu_slot(1, environ=environ) as b:
        assert a is None and b is None
        assert "CUDA_VISIBLE_DEVICES" not in environ


def test_a_job_without_gpus_is_left_alone(tmp_path):
    environ = {"TOPKSHAPE_GPU_COUNT": "1", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    with gpu_slot(0, environ=environ) as assignment:
        assert assignment is None and environ == {"TOPKSHAPE_GPU_COUNT": "1", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}


def test_a_malformed_gpu_count_is_a_config_error(tmp_path):
    environ = {"TOPKSHAPE_GPU_COUNT": "two", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="TOPKSHAPE_GPU_COUNT"), gpu_slot(1, environ=environ):
        pass


@pytest.mark.slow
def test_importing_torch_and_the_library_leaves_cuda_uninitialised_until_the_slot_is_set(tmp_path):
    # Workflow scripts import torch at the top, before rule_logging: CUDA must still be untouched
    # (torch initialises it lazily), or CUDA_VISIBLE_DEVICES would come too late.
    code = textwrap.dedent(f"""
        import os, torch
        import topkshape.classify.train, topkshape.shape_bias.evaluate, topkshape.gan.train, topkshape.texture.experiment
        from topkshape.workflow import rule_logging
        assert not torch.cuda.is_initialized()
        with rule_logging({str(tmp_path / 'job.log')!r}, "train", gpus=1):
            assert not torch.cuda.is_initialized()
            print(os.environ["CUDA_VISIBLE_DEVICES"])
    """)
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, "1"), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
    assert "CUDA was initialised before" not in (tmp_path / "job.log").read_text()


SNAKEFILE = """
rule all:
    input: "a.txt", "b.txt"

rule gpu_job:
    output: "{name}.txt"
    log: "logs/{name}.log"
    resources: gpu=1
    script: "job.py"
"""

# Both jobs hold their slot until the other has taken its own, so they provably overlap.
SCRIPT = """
import os, time
from pathlib import Path
from topkshape.workflow import rule_logging
sm = snakemake
with rule_logging(sm.log[0], "gpu_job", gpus=sm.resources.get("gpu", 0)):
    Path(f"{sm.wildcards.name}.holding").touch()
    other = "b" if sm.wildcards.name == "a" else "a"
    deadline = time.time() + 120
    while not Path(f"{other}.holding").exists() and time.time() < deadline:
        time.sleep(0.05)
    Path(sm.output[0]).write_text(os.environ["CUDA_VISIBLE_DEVICES"])
"""


@pytest.mark.slow
def test_snakemake_resources_gpu_2_runs_two_gpu_jobs_on_distinct_devices(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "job.py").write_text(SCRIPT)
    env = _env(tmp_path, "2")
    env.pop("TOPKSHAPE_GPU_SLOT_DIR")  # the default: .snakemake/gpu_slots in the working directory
    done = subprocess.run([str(SNAKEMAKE), "all", "--cores", "2", "--resources", "gpu=2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    devices = {name: (tmp_path / f"{name}.txt").read_text() for name in "ab"}
    assert sorted(devices.values()) == ["0", "1"]
    for name, device in devices.items():
        assert f"GPU slot {device} (CUDA_VISIBLE_DEVICES={device})" in (tmp_path / "logs" / f"{name}.log").read_text()
    assert any((tmp_path / ".snakemake" / "gpu_slots").rglob("gpu-*.lock"))

"""gpu_slots.py's pieces in this process, with hand-written expectations: the log text, device discovery
through a fake ``nvidia-smi`` and a fake ``/proc`` folder, the lock files, and all-or-none acquisition.

tests/test_gpu_slots.py runs whole jobs as processes (what a user sees); these run the functions
directly, so that a changed word, count or path fails here too.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import types
from pathlib import Path

import pytest

from topkshape import gpu_slots
from topkshape.errors import ConfigError
from topkshape.gpu_slots import GpuAssignment, gpu_slot


def test_describe_names_who_chose_the_devices_and_which():
    assert GpuAssignment((1,), ("3",), "slots").describe() == "GPU slot 1 (CUDA_VISIBLE_DEVICES=3)"
    assert GpuAssignment((0, 2), ("5", "7"), "slots").describe() == "GPU slots 0,2 (CUDA_VISIBLE_DEVICES=5,7)"
    assert GpuAssignment((), ("0", "1"), "slurm").describe() == "GPU assigned by SLURM (CUDA_VISIBLE_DEVICES=0,1)"
    assert GpuAssignment((), (), "slurm").describe() == "GPU assigned by SLURM (CUDA_VISIBLE_DEVICES=unset)"


def test_split_and_visible_read_cuda_visible_devices_as_cuda_does():
    assert gpu_slots._split(" 0, 2 ,,3 ") == ("0", "2", "3")
    assert gpu_slots._visible({}) is None
    assert gpu_slots._visible({"CUDA_VISIBLE_DEVICES": ""}) == ()
    assert gpu_slots._visible({"CUDA_VISIBLE_DEVICES": "-1"}) == ()
    assert gpu_slots._visible({"CUDA_VISIBLE_DEVICES": "1,GPU-abc"}) == ("1", "GPU-abc")


def test_slurm_devices_need_a_slurm_job_and_prefer_cuda_visible_devices():
    assert gpu_slots.slurm_devices({"CUDA_VISIBLE_DEVICES": "0"}) is None
    assert gpu_slots.slurm_devices({"SLURM_JOB_ID": "", "SLURM_JOB_GPUS": "0"}) is None
    assert gpu_slots.slurm_devices({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "2", "SLURM_JOB_GPUS": "0,1"}) == ("2",)
    assert gpu_slots.slurm_devices({"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "4,5", "SLURM_JOB_GPUS": "0"}) == ("4", "5")
    assert gpu_slots.slurm_devices({"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "", "SLURM_JOB_GPUS": "0"}) == ("0",)
    assert gpu_slots.slurm_devices({"SLURM_JOB_ID": "7"}) is None


def _fake_nvidia_smi(folder: Path, body: str, monkeypatch) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    # Like the real one, it lists the GPUs only when asked with -L.
    script.write_text('#!/bin/sh\n[ "$1" = "-L" ] && [ "$#" -eq 1 ] || exit 64\n' + body + "\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_nvidia_smi_counts_only_its_gpu_lines(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path / "bin", 'echo "GPU 0: NVIDIA H100 (UUID: GPU-a)"; echo "  MIG 1g.10gb"; '
                                       'echo "GPU 1: NVIDIA H100 (UUID: GPU-b)"; echo "no GPU here"', monkeypatch)
    assert gpu_slots._nvidia_smi_count() == 2
    assert gpu_slots.local_devices({}) == ("0", "1")


def test_a_failing_or_missing_nvidia_smi_counts_nothing(tmp_path, monkeypatch):
    _fake_nvidia_smi(tmp_path / "bin", 'echo "GPU 0: x"; exit 9', monkeypatch)
    assert gpu_slots._nvidia_smi_count() is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert gpu_slots._nvidia_smi_count() is None


def test_the_proc_folder_counts_one_device_per_entry(tmp_path, monkeypatch):
    (tmp_path / "gpus" / "0000:01:00.0").mkdir(parents=True)
    (tmp_path / "gpus" / "0000:02:00.0").mkdir()
    assert gpu_slots._proc_count(tmp_path / "gpus") == 2
    assert gpu_slots._proc_count(tmp_path / "absent") is None
    # nvidia-smi finds nothing: the /proc count decides.
    monkeypatch.setattr(gpu_slots, "_nvidia_smi_count", lambda: 0)
    monkeypatch.setattr(gpu_slots, "_proc_count", lambda: 3)
    assert gpu_slots.local_devices({}) == ("0", "1", "2")
    monkeypatch.setattr(gpu_slots, "_proc_count", lambda: None)
    assert gpu_slots.local_devices({}) == ()


def test_local_devices_take_cuda_visible_devices_then_the_count_variable(monkeypatch):
    monkeypatch.setattr(gpu_slots, "_nvidia_smi_count", lambda: 8)
    assert gpu_slots.local_devices({"CUDA_VISIBLE_DEVICES": "3,1", "TOPKSHAPE_GPU_COUNT": "2"}) == ("3", "1")
    assert gpu_slots.local_devices({"TOPKSHAPE_GPU_COUNT": " 2 "}) == ("0", "1")
    assert gpu_slots.local_devices({"TOPKSHAPE_GPU_COUNT": "  "}) == tuple(str(i) for i in range(8))
    with pytest.raises(ConfigError, match=r"^TOPKSHAPE_GPU_COUNT must be a whole number of GPUs, got '1.5'$"):
        gpu_slots.local_devices({"TOPKSHAPE_GPU_COUNT": "1.5"})


def test_the_slot_folder_is_per_run_and_per_host(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "node7.cluster.example")
    assert gpu_slots.slot_folder({"TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}) == tmp_path / "node7"
    assert gpu_slots.slot_folder({}) == Path(".snakemake") / "gpu_slots" / "node7"
    assert gpu_slots.slot_folder({"TOPKSHAPE_GPU_SLOT_DIR": ""}) == Path(".snakemake") / "gpu_slots" / "node7"


def test_lock_names_keep_safe_characters_only():
    assert gpu_slots._lock_name("0") == "gpu-0.lock"
    assert gpu_slots._lock_name("GPU-1a2b_c.d") == "gpu-GPU-1a2b_c.d.lock"
    assert gpu_slots._lock_name("MIG/1:2 x") == "gpu-MIG_1_2_x.lock"


def test_a_lock_file_gets_the_permissions_the_umask_gives_a_new_file(tmp_path):
    old = os.umask(0o002)
    try:
        fd = gpu_slots._try_lock(tmp_path / "gpu-0.lock", "note\n")
    finally:
        os.umask(old)
    os.close(fd)
    assert (tmp_path / "gpu-0.lock").stat().st_mode & 0o777 == 0o664  # group jobs on a shared folder can lock it too


def test_a_lock_holds_its_note_and_refuses_a_second_holder(tmp_path):
    path = tmp_path / "gpu-0.lock"
    path.write_text("an older, longer note from a finished job\n")
    fd = gpu_slots._try_lock(path, "pid 1 rule train\n")
    assert fd is not None
    try:
        assert path.read_text() == "pid 1 rule train\n"
        assert gpu_slots._try_lock(path, "pid 2\n") is None
        assert path.read_text() == "pid 1 rule train\n"
        other = os.open(path, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    finally:
        os.close(fd)
    again = gpu_slots._try_lock(path, "pid 3\n")
    assert again is not None
    os.close(again)


def test_acquisition_is_all_or_none_and_takes_the_first_free_slots(tmp_path):
    devices = ("4", "5", "6")
    busy = gpu_slots._try_lock(tmp_path / "gpu-5.lock", "busy\n")
    try:
        held = gpu_slots._try_acquire(tmp_path, devices, 2, "job\n")
        assert [slot for slot, _ in held] == [0, 2]
        for _, fd in held:
            os.close(fd)
        # Three wanted, one taken: nothing is held afterwards (every free slot can be taken again).
        assert gpu_slots._try_acquire(tmp_path, devices, 3, "job\n") is None
        for device in ("4", "6"):
            fd = gpu_slots._try_lock(tmp_path / f"gpu-{device}.lock", "check\n")
            assert fd is not None
            os.close(fd)
    finally:
        os.close(busy)


def test_a_warning_is_logged_only_when_cuda_started_before_the_slot(monkeypatch):
    messages: list[str] = []
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    gpu_slots._warn_if_cuda_started(messages.append)
    for started in (False, True):
        fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda started=started: started))
        monkeypatch.setitem(sys.modules, "torch", fake)
        gpu_slots._warn_if_cuda_started(messages.append)
    assert messages == ["warning: CUDA was initialised before the GPU slot was taken; CUDA_VISIBLE_DEVICES has no effect"]


def test_in_process_a_slot_sets_and_restores_cuda_visible_devices_and_logs_each_step(tmp_path):
    environ = {"TOPKSHAPE_GPU_COUNT": "2", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    messages: list[str] = []
    with gpu_slot(1, rule="train", log=messages.append, environ=environ) as first:
        assert first == GpuAssignment((0,), ("0",), "slots") and environ["CUDA_VISIBLE_DEVICES"] == "0"
        host = socket.gethostname().split(".")[0]
        assert (tmp_path / host / "gpu-0.lock").read_text() == f"pid {os.getpid()} rule train\n"
        inner_env = {"TOPKSHAPE_GPU_COUNT": "2", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "1,0"}
        with gpu_slot("1.0", log=messages.append, environ=inner_env) as second:
            # Drawn from CUDA_VISIBLE_DEVICES (1,0): slot 0 is device 1, free.
            assert second == GpuAssignment((0,), ("1",), "slots") and inner_env["CUDA_VISIBLE_DEVICES"] == "1"
        assert inner_env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert "CUDA_VISIBLE_DEVICES" not in environ
    assert messages == ["GPU slot 0 (CUDA_VISIBLE_DEVICES=0)", "GPU slot 0 (CUDA_VISIBLE_DEVICES=1)"]


def test_in_process_no_gpu_wanted_or_none_found_yields_none_and_says_why(tmp_path, monkeypatch):
    messages: list[str] = []
    for wanted in (0, None, "0.5"):
        with gpu_slot(wanted, log=messages.append, environ={}) as assignment:
            assert assignment is None
    assert messages == []
    monkeypatch.setattr(gpu_slots, "_nvidia_smi_count", lambda: None)
    monkeypatch.setattr(gpu_slots, "_proc_count", lambda: None)
    with gpu_slot(1, log=messages.append, environ={"TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}) as assignment:
        assert assignment is None
    assert messages == ["no GPU found (CUDA_VISIBLE_DEVICES, TOPKSHAPE_GPU_COUNT, nvidia-smi, /proc/driver/nvidia): "
                        "no GPU slot taken, the job runs on the CPU"]
    assert not (tmp_path / socket.gethostname().split(".")[0]).exists()


def test_in_process_slurms_choice_is_kept_when_it_is_no_larger_than_the_request(tmp_path):
    messages: list[str] = []
    environ = {"SLURM_JOB_ID": "9", "SLURM_JOB_GPUS": "2", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    with gpu_slot(1, log=messages.append, environ=environ) as assignment:
        assert assignment == GpuAssignment((), ("2",), "slurm")
    assert messages == ["GPU assigned by SLURM (CUDA_VISIBLE_DEVICES=2)"] and "CUDA_VISIBLE_DEVICES" not in environ
    assert not any(tmp_path.iterdir())


def test_in_process_a_busy_machine_is_waited_for_and_said_once(tmp_path, monkeypatch):
    environ = {"TOPKSHAPE_GPU_COUNT": "1", "TOPKSHAPE_GPU_SLOT_DIR": str(tmp_path)}
    folder = gpu_slots.slot_folder(environ)
    folder.mkdir(parents=True)
    busy = gpu_slots._try_lock(folder / "gpu-0.lock", "busy\n")
    sleeps: list[float] = []

    def free_after_two_polls(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            os.close(busy)

    monkeypatch.setattr(gpu_slots.time, "sleep", free_after_two_polls)
    messages: list[str] = []
    with gpu_slot(1, log=messages.append, environ=environ, poll_seconds=0.25) as assignment:
        assert assignment.slots == (0,)
    assert sleeps == [0.25, 0.25]
    assert messages == [f"all 1 GPU slots in {folder} are taken; waiting for one to be freed", "GPU slot 0 (CUDA_VISIBLE_DEVICES=0)"]

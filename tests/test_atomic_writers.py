"""Atomic outputs: a writer's cleanup removes only temporaries whose writer is gone; umask is honoured."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from topkshape.atomic import atomic_directory, atomic_file

# A second process writing the same output slowly: it creates its temporary folder, signals, then waits.
SLOW_WRITER = """
import sys, time
from pathlib import Path
from topkshape.atomic import atomic_directory
with atomic_directory(sys.argv[1]) as tmp:
    (tmp / "half.txt").write_text("8144 of 15200")
    Path(sys.argv[2]).write_text(str(tmp))
    time.sleep(float(sys.argv[3]))
"""


def _start_writer(target: Path, ready: Path, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(target), str(ready), str(seconds)])
    deadline = time.time() + 60
    while not ready.exists():
        assert process.poll() is None and time.time() < deadline, "writer did not start"
        time.sleep(0.05)
    return process


def test_a_second_writer_never_deletes_a_live_writers_temporary_folder(tmp_path):
    target = tmp_path / "data" / "S1"
    live = _start_writer(target, tmp_path / "ready", 30)
    try:
        live_tmp = Path((tmp_path / "ready").read_text())
        with atomic_directory(target) as mine:  # e.g. a second run after `snakemake --unlock`
            (mine / "done.txt").write_text("complete")
        assert live_tmp.is_dir() and (live_tmp / "half.txt").is_file()
        assert (target / "done.txt").is_file()
    finally:
        live.kill()
        live.wait()


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "data" / "S1"
    killed = _start_writer(target, tmp_path / "ready", 30)
    dead_tmp = Path((tmp_path / "ready").read_text())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert dead_tmp.is_dir()  # a real kill runs no cleanup
    with atomic_directory(target) as mine:
        (mine / "done.txt").write_text("complete")
    assert not dead_tmp.exists() and (target / "done.txt").is_file()


def test_outputs_get_the_permissions_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "table.csv") as tmp:
            tmp.write_text("a,b\n")
        with atomic_directory(tmp_path / "subset") as folder:
            (folder / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "table.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "subset").stat().st_mode) == 0o755

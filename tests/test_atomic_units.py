"""atomic.py's pieces: the umask read without changing it, the host tag, the live-writer check, when a
temporary counts as stale, and cleaning that tolerates a concurrent cleaner.

tests/test_atomic_writers.py checks the writers end to end; these pin down the decisions inside them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topkshape import atomic


def test_the_umask_is_read_from_proc_without_touching_it(monkeypatch):
    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc/self/status on this system")
    old = os.umask(0o027)
    try:
        def refuse(_mask):
            raise AssertionError("os.umask was called: it changes the process umask for every thread")

        monkeypatch.setattr(atomic.os, "umask", refuse)
        assert atomic.current_umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_without_proc_the_umask_is_read_and_restored(monkeypatch):
    real_read_text = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self) == "/proc/self/status":
            raise FileNotFoundError(str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    old = os.umask(0o007)
    try:
        assert atomic.current_umask() == 0o007
        assert os.umask(0o007) == 0o007  # left as it was
    finally:
        os.umask(old)


@pytest.mark.parametrize(("name", "tag"), [("node-7.cluster", "node_7.cluster"), ("", "host"), ("gpu01", "gpu01")])
def test_the_host_tag_has_no_dash_and_is_never_empty(monkeypatch, name, tag):
    monkeypatch.setattr(socket, "gethostname", lambda: name)
    assert atomic._host() == tag
    assert atomic._writer_tag() == f"{tag}-{os.getpid()}-"


def test_a_live_process_is_alive_and_untouched_by_the_check():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert atomic._pid_alive(child.pid)
        time.sleep(0.2)
        assert child.poll() is None, "checking a PID must not signal the process"
    finally:
        child.kill()
        child.wait()
    assert not atomic._pid_alive(child.pid)


def test_a_process_of_another_user_counts_as_alive(monkeypatch):
    def not_yours(pid, signal):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "kill", not_yours)
    assert atomic._pid_alive(12345)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staleness_by_writer_on_this_host_and_by_age_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "here")
    final = tmp_path / "out.csv"
    ours = tmp_path / f".tmp-out.csv-here-{os.getpid()}-abc"
    dead = tmp_path / f".tmp-out.csv-here-{_dead_pid()}-abc"
    foreign = tmp_path / ".tmp-out.csv-elsewhere-1-abc"
    odd = tmp_path / ".tmp-out.csv-x-notapid-abc"  # not our naming: judged by age, as a foreign one
    for path in (ours, dead, foreign, odd):
        path.write_text("partial")
    assert not atomic._is_stale(ours, final) and atomic._is_stale(dead, final)
    now = time.time()
    for path in (foreign, odd):
        os.utime(path, (now - atomic.FOREIGN_STALE_SECONDS, now - atomic.FOREIGN_STALE_SECONDS))
    monkeypatch.setattr(atomic.time, "time", lambda: now)
    assert not atomic._is_stale(foreign, final) and not atomic._is_stale(odd, final)  # exactly the limit: kept
    monkeypatch.setattr(atomic.time, "time", lambda: now + 1.5)
    assert atomic._is_stale(foreign, final) and atomic._is_stale(odd, final)
    foreign.unlink()
    assert not atomic._is_stale(foreign, final)  # gone meanwhile: nothing to remove


def test_cleaning_removes_every_stale_file_and_folder_after_a_live_one(tmp_path, monkeypatch):
    final = tmp_path / "out"
    live = tmp_path / ".tmp-out-a-live"
    stale = [tmp_path / ".tmp-out-b-file", tmp_path / ".tmp-out-c-folder", tmp_path / ".tmp-out-d-file"]
    live.write_text("x")
    stale[0].write_text("x")
    (stale[1] / "inner").mkdir(parents=True)
    stale[2].write_text("x")
    (tmp_path / ".tmp-out-e-link").symlink_to(tmp_path / "kept-target", target_is_directory=True)
    (tmp_path / "kept-target").mkdir()
    (tmp_path / "kept-target" / "data").write_text("keep me")
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: sorted(real_glob(self, pattern)))  # the live one first
    monkeypatch.setattr(atomic, "_is_stale", lambda temporary, final: temporary != live)
    atomic.remove_stale_temporaries(final)
    assert live.exists() and not any(p.exists() for p in stale)
    # A stale link to a folder is removed as a link: the folder it points to is not emptied.
    assert not (tmp_path / ".tmp-out-e-link").is_symlink() and (tmp_path / "kept-target" / "data").read_text() == "keep me"


def test_cleaning_tolerates_another_cleaner_removing_the_same_leftovers(tmp_path, monkeypatch):
    final = tmp_path / "out"
    folder, file = tmp_path / ".tmp-out-a", tmp_path / ".tmp-out-b"
    (folder / "inner").mkdir(parents=True)
    file.write_text("x")

    def stale_but_gone_by_now(temporary, final):
        if temporary.is_dir():
            (temporary / "inner").rmdir()
            temporary.rmdir()
        else:
            temporary.unlink()
        return True

    monkeypatch.setattr(atomic, "_is_stale", stale_but_gone_by_now)
    real_is_dir = Path.is_dir
    # The folder still looks like one when cleaning reaches it (the other cleaner removed it just after).
    monkeypatch.setattr(Path, "is_dir", lambda self: self.name == ".tmp-out-a" or real_is_dir(self))
    atomic.remove_stale_temporaries(final)  # no error for either
    assert not folder.exists() and not file.exists()

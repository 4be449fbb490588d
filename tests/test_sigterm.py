"""The SIGTERM handler installed over Snakemake's: a signal that arrives while the main thread holds the
scheduler's lock still stops the run, instead of deadlocking in the handler."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from topkshape.sigterm import install_graceful_sigterm
from workflow_support import SNAKEMAKE


class _Scheduler:
    """Snakemake's JobScheduler in the part that matters: exit_gracefully takes a non-reentrant lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stopped = threading.Event()
        self.deadlocked = False
        self.stopped_by: str | None = None

    def exit_gracefully(self, *args: object) -> None:
        if not self._lock.acquire(timeout=2):  # Snakemake waits forever; here the test fails instead
            self.deadlocked = True
            return
        try:
            self.stopped_by = threading.current_thread().name
            self.stopped.set()
        finally:
            self._lock.release()


@pytest.fixture
def restore_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_a_sigterm_while_the_main_thread_holds_the_schedulers_lock_stops_it_without_deadlock(restore_sigterm):
    scheduler = _Scheduler()
    assert install_graceful_sigterm(scheduler) is True
    with scheduler._lock:  # as during Snakemake's job selection
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs in this thread, inside this block
        time.sleep(0.2)
        assert not scheduler.stopped.is_set()  # it waits for the lock, in its own thread
    assert scheduler.stopped.wait(5) and not scheduler.deadlocked
    assert scheduler.stopped_by == "topkshape-sigterm"


def test_snakemakes_own_handler_would_deadlock_there(restore_sigterm):
    # The bug the handler avoids, shown with the same stand-in: called in the handler directly.
    scheduler = _Scheduler()
    signal.signal(signal.SIGTERM, scheduler.exit_gracefully)
    with scheduler._lock:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    assert scheduler.deadlocked and not scheduler.stopped.is_set()


def test_a_scheduler_without_exit_gracefully_keeps_the_handler_in_place(restore_sigterm):
    before = signal.getsignal(signal.SIGTERM)
    assert install_graceful_sigterm(None) is False
    assert install_graceful_sigterm(object()) is False
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_nothing_is_installed(restore_sigterm):
    before = signal.getsignal(signal.SIGTERM)
    results = []
    worker = threading.Thread(target=lambda: results.append(install_graceful_sigterm(_Scheduler())))
    worker.start()
    worker.join()
    assert results == [False] and signal.getsignal(signal.SIGTERM) is before


_MANY_SHORT_JOBS = """
from topkshape.sigterm import install_graceful_sigterm

onstart:
    print("handler installed:", install_graceful_sigterm(getattr(workflow, "scheduler", None)), file=sys.stderr)

rule all:
    input: expand("out/{i}.txt", i=range(400))

rule one:
    output: "out/{i}.txt"
    shell: "touch {output}"
"""


@pytest.mark.slow
def test_snakemake_stops_on_every_sigterm_to_its_process_group(tmp_path):
    # With Snakemake's own handler, 12 of 15 such runs never exited (job selection holds the lock
    # most of the time when jobs are this short); 5 runs that all exit are then no accident.
    (tmp_path / "Snakefile").write_text("import sys\n" + _MANY_SHORT_JOBS)
    for trial in range(5):
        log = tmp_path / f"run{trial}.log"
        with log.open("w") as err:
            run = subprocess.Popen([str(SNAKEMAKE), "all", "--cores", "2", "--directory", str(tmp_path / f"w{trial}"), "--snakefile",
                                    str(tmp_path / "Snakefile")], stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        out = tmp_path / f"w{trial}" / "out"
        deadline = time.time() + 120
        while not (out.is_dir() and len(list(out.iterdir())) >= 5 + 5 * trial):
            assert run.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            pytest.fail(f"Snakemake did not exit within 60 s of SIGTERM (run {trial}):\n{log.read_text()[-2000:]}")
        text = log.read_text()
        assert "handler installed: True" in text and "Will exit after finishing currently running jobs" in text, text[-2000:]
        assert len(list(out.iterdir())) < 400  # it stopped early, not by finishing

"""A SIGTERM handler for Snakemake's scheduler that cannot deadlock.

Snakemake 9's own handler (``JobScheduler.exit_gracefully``) takes the scheduler's non-reentrant lock.
Signal handlers run in the main thread, between two bytecodes of whatever it was doing, and the main
thread holds that lock while it selects jobs (the MILP solver runs as a subprocess meanwhile). A
SIGTERM arriving then, e.g. a scheduler's time limit signalling the process group, blocks the handler
on a lock its own thread holds: Snakemake never exits (12 of 15 SIGTERMs on a toy workflow of short
jobs, Snakemake 9.27.1). This handler asks for the same graceful stop from a helper thread, which
waits until the main thread lets the lock go.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def install_graceful_sigterm(scheduler: Any) -> bool:
    """Route SIGTERM to ``scheduler.exit_gracefully`` through a helper thread.

    Returns False (and changes nothing) when ``scheduler`` has no ``exit_gracefully`` (another
    Snakemake) or when called off the main thread, where Python allows no signal handler.
    """
    stop = getattr(scheduler, "exit_gracefully", None)
    if not callable(stop) or threading.current_thread() is not threading.main_thread():
        return False

    def _handler(signum: int, frame: object) -> None:
        # Starting a thread takes only an RLock and a fresh Event: safe here, unlike the scheduler's lock.
        threading.Thread(target=stop, name="topkshape-sigterm", daemon=True).start()

    signal.signal(signal.SIGTERM, _handler)
    return True

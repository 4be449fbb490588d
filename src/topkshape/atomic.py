"""Outputs that are complete or absent: write under a temporary name, then rename.

A job killed half-way leaves only a ``.tmp-*`` sibling behind, never a file or folder
that looks finished. The next writer of the same output removes such leftovers, but
only those whose writer is gone: the temporary's name carries the writer's host and
PID, so a second run (e.g. after ``snakemake --unlock``) never deletes the live
temporary folder of a job that is still writing.

Temporaries are created private (``mkstemp``/``mkdtemp`` give 0600/0700); before the
rename they get the permissions the user's umask gives new files, so results on a
shared cluster filesystem stay readable by the group as the user intended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: A temporary of another host cannot be checked for a live writer; it counts as stale
#: only when untouched for this long.
FOREIGN_STALE_SECONDS = 24 * 3600


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def _prefix(final: Path) -> str:
    return f".tmp-{final.name}-"


def _writer_tag() -> str:
    return f"{_host()}-{os.getpid()}-"


def current_umask() -> int:
    """The process umask, read without changing it (thread-safe on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(path: Path, directory: bool) -> None:
    mode = (0o777 if directory else 0o666) & ~current_umask()
    os.chmod(path, mode)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(temporary: Path, final: Path) -> bool:
    """Whether the writer of ``temporary`` is gone (dead PID on this host, or old elsewhere)."""
    rest = temporary.name[len(_prefix(final)):]
    parts = rest.split("-")
    if len(parts) >= 3 and parts[1].isdigit():
        host, pid = parts[0], int(parts[1])
        if host == _host():
            return pid != os.getpid() and not _pid_alive(pid)
    try:
        age = time.time() - temporary.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > FOREIGN_STALE_SECONDS


def remove_stale_temporaries(final: Path) -> None:
    """Delete what killed earlier attempts at ``final`` left, never a live writer's temporary."""
    for stale in final.parent.glob(f"{_prefix(final)}*"):
        if not _is_stale(stale, final):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path``.

    On any exception the temporary folder is removed and ``path`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(final) + _writer_tag(), dir=final.parent))
    try:
        yield tmp
        _apply_umask(tmp, directory=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it is renamed to ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, name = tempfile.mkstemp(prefix=_prefix(final) + _writer_tag(), dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _apply_umask(tmp, directory=False)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

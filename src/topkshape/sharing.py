"""Sharing results through DVC without recomputing them.

DVC does not preserve modification times: ``dvc pull`` writes files in arbitrary order with
new mtimes, and Snakemake (which always compares an input's mtime with its outputs', whatever
``--rerun-triggers`` says) would then rerun jobs whose inputs look newer, retraining models
after their datasets. :func:`restore_mtimes` gives every output Snakemake recorded the time
its job ended, read from Snakemake's own metadata (``.snakemake/metadata``, versioned with the
results), which restores the order the results were made in. Snakemake also reruns a job
whose script is newer than its outputs, and a clone gives every file the clone's time: the
project's unmodified tracked files get the time of the commit that last changed them, so a
script edited after the results were made still triggers its jobs. Run it after a pull:
``python -m topkshape.sharing`` (``make pull`` does both).

Partial DVC pulls: name what is missing instead of silently recomputing it.
After ``dvc pull results/default/train`` alone, the trained models are present but the
datasets they were trained on are not; Snakemake would rebuild the datasets and then, since
their downstream jobs' inputs are new, retrain every model. Before any job runs, the
Snakefile asks :func:`missing_pulls` which DVC-tracked paths are absent although outputs
recorded beside them (same stage) or after them (a stage depending on them) are present.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

METADATA = Path(".snakemake") / "metadata"


def _paths(entries) -> list[str]:
    return [entry["path"] for entry in entries or [] if isinstance(entry, dict) and "path" in entry]


def missing_pulls(root: str | Path, lock: str = "dvc.lock") -> list[str]:
    """DVC-tracked outputs that are absent while outputs recorded with or after them exist."""
    root = Path(root)
    lock_path = root / lock
    if not lock_path.is_file():
        return []
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {}) or {}
    outs = {name: _paths(stage.get("outs")) for name, stage in stages.items()}
    producer = {path: name for name, paths in outs.items() for path in paths}
    exists = {path: (root / path).exists() for path in producer}
    metadata = METADATA.as_posix()
    missing: list[str] = []
    for name, stage in stages.items():
        # Snakemake's job records are pulled on their own (restore_mtimes needs them): they do
        # not make the rest of their stage's outputs necessary.
        present = [p for p in outs[name] if exists[p] and p != metadata]
        if not present:
            continue
        missing += [p for p in outs[name] if not exists[p]]
        for dep in _paths(stage.get("deps")):
            for path in producer:
                inside = dep == path or dep.startswith(path.rstrip("/") + "/")
                if inside and producer[path] != name and not exists[path]:
                    missing.append(path)
    # Without Snakemake's metadata the pulled files' times cannot be restored (restore_mtimes).
    if missing and metadata in exists and not exists[metadata]:
        missing.append(metadata)
    return sorted(set(missing))


def missing_pulls_message(paths: list[str]) -> str:
    return (
        f"DVC-tracked {', '.join(paths)} missing while results made from them are present: "
        f"run `dvc pull {' '.join(paths)}` (or set TOPKSHAPE_REBUILD_MISSING=1 to rebuild them and everything downstream)"
    )


def _decoded(name: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def restore_mtimes(root: str | Path = ".") -> int:
    """Set each recorded output's mtime to its job's end time; returns how many were set.

    A directory output gets it on the ``.snakemake_timestamp`` file Snakemake reads for
    directories, too. Outputs that are absent, or records without an end time, are skipped.
    """
    root = Path(root)
    metadata = root / METADATA
    if not metadata.is_dir():
        return 0
    restored = 0
    for record_file in sorted(metadata.iterdir()):
        relative = _decoded(record_file.name)
        if relative is None or not record_file.is_file():
            continue
        try:
            end = float(json.loads(record_file.read_text()).get("endtime") or 0)
        except (ValueError, OSError, AttributeError):
            continue
        target = root / relative
        if end <= 0 or not target.exists():
            continue
        stamp = target / ".snakemake_timestamp"
        for path in ([stamp] if stamp.is_file() else []) + [target]:
            os.utime(path, (end, end), follow_symlinks=False)
        restored += 1
    return restored


def restore_commit_mtimes(root: str | Path = ".") -> int:
    """Give each unmodified git-tracked file the commit time of its last change; returns the count.

    Outside a git checkout, or without git, nothing changes.
    """
    root = Path(root)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=120).stdout

    try:
        modified = set(git("diff", "--name-only", "HEAD").splitlines())
        tracked = set(git("ls-files").splitlines()) - modified
        history = git("log", "--format=%x00%ct", "--name-only", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return 0
    times: dict[str, float] = {}
    for block in history.split("\0")[1:]:
        lines = block.strip().splitlines()
        if not lines:
            continue
        when = float(lines[0])
        for name in lines[1:]:
            times.setdefault(name.strip(), when)  # newest commit first: keep the first seen
    restored = 0
    for name in tracked & times.keys():
        path = root / name
        if path.is_file() and not path.is_symlink():
            os.utime(path, (times[name], times[name]))
            restored += 1
    return restored


def main() -> int:
    """``python -m topkshape.sharing [ROOT]``: restore output mtimes after ``dvc pull``."""
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    if not (root / METADATA).is_dir():
        print(f"topkshape: no Snakemake metadata under {root / METADATA}: pull it with `dvc pull` first", file=sys.stderr)
        return 1
    code = restore_commit_mtimes(root)
    count = restore_mtimes(root)
    print(f"topkshape: restored the modification times of {count} outputs from {root / METADATA} "
          f"and of {code} tracked files from their last commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())

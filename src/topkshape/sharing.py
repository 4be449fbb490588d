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

Several experiments (the default, the paper run, its smoke run) share one ``.snakemake/metadata``
folder, which DVC cannot split between stages. So each experiment's DVC stages keep a copy of
its own records in ``results/<experiment>/snakemake-metadata/`` (:func:`export_metadata`), and
after a pull they are copied back and the times restored (:func:`sync_pulled_metadata`): by
``make pull``, and by the Snakefile itself before it plans, so a bare ``dvc pull`` followed by
``snakemake all`` does not retrain either.

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
SNAPSHOT = "snakemake-metadata"  # results/<experiment>/snakemake-metadata/: an experiment's records, versioned by DVC


def _paths(entries) -> list[str]:
    return [entry["path"] for entry in entries or [] if isinstance(entry, dict) and "path" in entry]


def _persistent_stages(dvc_yaml: Path) -> set[str]:
    """Stages of ``dvc.yaml`` (foreach stages by their base name) with at least one ``persist: true`` output."""
    if not dvc_yaml.is_file():
        return set()
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {}) or {}
    found = set()
    for name, stage in stages.items():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        for entry in body.get("outs") or []:
            if isinstance(entry, dict) and any(isinstance(v, dict) and v.get("persist") for v in entry.values()):
                found.add(name)
    return found


def missing_pulls(root: str | Path, lock: str = "dvc.lock") -> list[str]:
    """DVC-tracked outputs that are absent while outputs recorded with or after them exist."""
    root = Path(root)
    lock_path = root / lock
    if not lock_path.is_file():
        return []
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {}) or {}
    # Only persistent outputs (datasets, models) count: `dvc repro` itself deletes a stage's other
    # outputs (the tables) before rerunning it, and they are cheap to make again.
    persistent = _persistent_stages(root / "dvc.yaml")
    stages = {name: stage for name, stage in stages.items() if name.split("@", 1)[0] in persistent}
    outs = {name: _paths(stage.get("outs")) for name, stage in stages.items()}
    producer = {path: name for name, paths in outs.items() for path in paths}
    exists = {path: (root / path).exists() for path in producer}
    metadata = METADATA.as_posix()
    missing: list[str] = []
    for name, stage in stages.items():
        # Snakemake's job records are pulled on their own (restore_mtimes needs them): they do
        # not make the rest of their stage's outputs necessary.
        present = [p for p in outs[name] if exists[p] and p != metadata and not p.endswith(f"/{SNAPSHOT}")]
        if not present:
            continue
        missing += [p for p in outs[name] if not exists[p]]
        for dep in _paths(stage.get("deps")):
            for path in producer:
                inside = dep == path or dep.startswith(path.rstrip("/") + "/")
                if inside and producer[path] != name and not exists[path]:
                    missing.append(path)
    # Without Snakemake's metadata the pulled files' times cannot be restored (restore_mtimes).
    if missing:
        missing += [p for p in exists if (p == metadata or p.endswith(f"/{SNAPSHOT}")) and not exists[p]]
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


def _end_time(record_file: Path) -> float:
    try:
        return float(json.loads(record_file.read_text()).get("endtime") or 0)
    except (ValueError, OSError, AttributeError):
        return 0.0


def _belongs_to(relative: str, experiment: str) -> bool:
    return any(relative == top or relative.startswith(top + "/") for top in (f"data/{experiment}", f"results/{experiment}"))


def experiment_records(folder: Path, experiment: str) -> list[Path]:
    """The job-record files in ``folder`` (Snakemake's metadata or a snapshot of it) of ``experiment``'s outputs.

    A record's file name is its output's path in URL-safe base64; names that do not decode are not records.
    """
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.iterdir())
            if path.is_file() and (relative := _decoded(path.name)) is not None and _belongs_to(relative, experiment)]


def export_metadata(root: str | Path, experiment: str) -> int:
    """Copy the records of ``experiment``'s outputs to ``results/<experiment>/snakemake-metadata/``; returns the count.

    The folder is replaced whole, so it holds exactly the current records.
    """
    import shutil

    root = Path(root)
    target = root / "results" / experiment / SNAPSHOT
    staging = target.with_name(f".{SNAPSHOT}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    copied = 0
    for record_file in experiment_records(root / METADATA, experiment):
        shutil.copy2(record_file, staging / record_file.name)
        copied += 1
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return copied


def sync_pulled_metadata(root: str | Path = ".", experiment: str | None = None) -> int:
    """Bring pulled records into ``.snakemake/metadata`` and give their outputs their jobs' end times.

    A record is taken from a snapshot (:func:`export_metadata`) when the local one is missing
    or ended earlier; a local run newer than the snapshot keeps its own. Returns how many
    records were taken; with none, nothing on disk changes. ``experiment``: only its snapshot.
    """
    import shutil

    root = Path(root)
    pattern = f"{experiment}/{SNAPSHOT}" if experiment else f"*/{SNAPSHOT}"
    metadata = root / METADATA
    taken: list[Path] = []
    for snapshot in sorted((root / "results").glob(pattern)):
        for record_file in sorted(snapshot.iterdir()):
            local = metadata / record_file.name
            if record_file.is_file() and (not local.is_file() or _end_time(local) < _end_time(record_file)):
                metadata.mkdir(parents=True, exist_ok=True)
                shutil.copy2(record_file, local)
                taken.append(local)
    if taken:
        restore_commit_mtimes(root)
        restore_mtimes(root, only=taken)
    return len(taken)


def restore_mtimes(root: str | Path = ".", only: list[Path] | None = None) -> int:
    """Set each recorded output's mtime to its job's end time; returns how many were set.

    A directory output gets it on the ``.snakemake_timestamp`` file Snakemake reads for
    directories, too. Outputs that are absent, or records without an end time, are skipped.
    ``only``: these record files instead of every record.
    """
    root = Path(root)
    metadata = root / METADATA
    if not metadata.is_dir():
        return 0
    restored = 0
    for record_file in sorted(only) if only is not None else sorted(metadata.iterdir()):
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
    """``python -m topkshape.sharing [ROOT]``: restore output mtimes after ``dvc pull``.

    ``python -m topkshape.sharing --pull``: ``dvc pull`` of the stages ``dvc.lock`` records, then that.

    ``python -m topkshape.sharing --export EXPERIMENT``: snapshot that experiment's records (DVC stages).
    """
    if sys.argv[1:] == ["--pull"]:
        # A bare `dvc pull` also asks for the outputs of experiments nobody has run (no hashes in
        # dvc.lock) and exits 1: pull exactly the stages the lock records.
        recorded = sorted(((yaml.safe_load(Path("dvc.lock").read_text()) or {}).get("stages") or {}) if Path("dvc.lock").is_file() else [])
        if not recorded:
            print("topkshape: no stage in dvc.lock: nothing to pull", file=sys.stderr)
            return 1
        done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "pull", *recorded], check=False)
        if done.returncode != 0:
            return done.returncode
        sys.argv = sys.argv[:1]
    if sys.argv[1:2] == ["--export"] and len(sys.argv) == 3:
        count = export_metadata(".", sys.argv[2])
        print(f"topkshape: {count} Snakemake records of {sys.argv[2]} copied to results/{sys.argv[2]}/{SNAPSHOT}")
        return 0
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    sync_pulled_metadata(root)
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

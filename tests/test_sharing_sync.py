"""Each experiment's Snakemake job records travel with its results, and come back with their times."""

from __future__ import annotations

import json
import os

from topkshape.sharing import METADATA, SNAPSHOT, export_metadata, sync_pulled_metadata
from workflow_support import snakemake_record_name


def _record(root, relative: str, end: float) -> None:
    name = snakemake_record_name(relative)
    folder = root / METADATA
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"endtime": end, "params": []}))


def _output(root, relative: str):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(relative)
    return path


def test_export_takes_only_the_experiments_records(tmp_path):
    for relative in ("results/paper-smoke/tables/table1.csv", "data/paper-smoke/S1", "results/default/tables/table1.csv"):
        _record(tmp_path, relative, 1000.0)
    assert export_metadata(tmp_path, "paper-smoke") == 2
    assert len(list((tmp_path / "results" / "paper-smoke" / SNAPSHOT).iterdir())) == 2
    assert export_metadata(tmp_path, "default") == 1


def test_pulled_records_restore_their_outputs_times_and_a_newer_local_run_is_kept(tmp_path):
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    _record(origin, "results/exp/tables/table1.csv", 1_000_000.0)
    _record(origin, "results/exp/train/model.pt", 999_000.0)
    export_metadata(origin, "exp")
    # A colleague's clone after `dvc pull`: the outputs and the snapshot, fresh times, no .snakemake.
    (clone / "results" / "exp").mkdir(parents=True)
    os.rename(origin / "results" / "exp" / SNAPSHOT, clone / "results" / "exp" / SNAPSHOT)
    table, model = _output(clone, "results/exp/tables/table1.csv"), _output(clone, "results/exp/train/model.pt")
    assert sync_pulled_metadata(clone, "exp") == 2
    assert table.stat().st_mtime == 1_000_000.0 and model.stat().st_mtime == 999_000.0
    assert sync_pulled_metadata(clone, "exp") == 0  # nothing new: nothing touched
    # A local rerun after the pull ended later: its record wins, its output keeps its time.
    _record(clone, "results/exp/tables/table1.csv", 2_000_000.0)
    os.utime(table, (2_000_000.0, 2_000_000.0))
    assert sync_pulled_metadata(clone, "exp") == 0
    assert table.stat().st_mtime == 2_000_000.0

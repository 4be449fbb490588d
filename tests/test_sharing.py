"""The sharing helpers on their own, on hand-made trees: which DVC-tracked paths a partial pull lacks,
the times given back to recorded outputs and to unmodified tracked files, and the command line.
(tests/test_dvc.py runs them through real `dvc pull`s; tests/test_sharing_sync.py the metadata snapshots.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from topkshape.sharing import METADATA, SNAPSHOT, main, missing_pulls, missing_pulls_message, restore_commit_mtimes, restore_mtimes
from workflow_support import snakemake_record_name

# A dvc.yaml shaped like the project's: persistent datasets and models, a table made again each time
# (not persistent), and the stage that versions Snakemake's job records.
DVC_YAML = {
    "stages": {
        "train": {"foreach": ["default"], "do": {"cmd": "x", "outs": [
            {"data/default/S1": {"persist": True}}, {"data/default/S1-stylized": {"persist": True}},
            {"results/default/train": {"persist": True}}]}},
        "gan": {"cmd": "x", "outs": [{"results/default/gan": {"persist": True}}]},
        "table1": {"cmd": "x", "outs": ["results/default/tables/table1.md"]},
        "figures": {"cmd": "x", "outs": [{".snakemake/metadata": {"persist": True}},
                                         {f"results/default/{SNAPSHOT}": {"persist": True}}]},
    }
}
DVC_LOCK = {
    "schema": "2.0",
    "stages": {
        "train@default": {"outs": [{"path": "data/default/S1"}, {"path": "data/default/S1-stylized"},
                                   {"path": "results/default/train"}]},
        # Trained on the stylized images only: a dependency inside another stage's output folder.
        "gan": {"deps": [{"path": "data/default/S1-stylized/train"}], "outs": [{"path": "results/default/gan"}]},
        "table1": {"deps": [{"path": "results/default/train"}], "outs": [{"path": "results/default/tables/table1.md"}]},
        "figures": {"outs": [{"path": ".snakemake/metadata"}, {"path": f"results/default/{SNAPSHOT}"}]},
    },
}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(DVC_LOCK))
    return tmp_path


def _present(root, *paths):
    for path in paths:
        (root / path).mkdir(parents=True)


@pytest.fixture(autouse=True)
def no_git_above(tmp_path, monkeypatch):
    """The temporary folders are no git checkout, whatever lies above them."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def test_nothing_is_missing_without_a_lock_or_before_anything_was_pulled(project, tmp_path):
    assert missing_pulls(tmp_path / "elsewhere") == []
    assert missing_pulls(project) == []


def test_pulled_models_without_their_datasets_name_the_datasets_and_the_job_records(project):
    _present(project, "results/default/train")
    assert missing_pulls(project) == [".snakemake/metadata", "data/default/S1", "data/default/S1-stylized",
                                      f"results/default/{SNAPSHOT}"]


def test_a_stage_lacks_the_output_folder_its_dependency_lies_in_but_not_a_folder_sharing_its_prefix(project):
    _present(project, "results/default/gan", ".snakemake/metadata", f"results/default/{SNAPSHOT}")
    assert missing_pulls(project) == ["data/default/S1-stylized"]  # not data/default/S1, not results/default/train


def test_the_job_records_or_a_table_alone_need_nothing_else(project):
    _present(project, ".snakemake/metadata", f"results/default/{SNAPSHOT}", "results/default/tables/table1.md")
    assert missing_pulls(project) == []


def test_everything_pulled_lacks_nothing(project):
    _present(project, "data/default/S1", "data/default/S1-stylized", "results/default/train", "results/default/gan",
             ".snakemake/metadata", f"results/default/{SNAPSHOT}")
    assert missing_pulls(project) == []


def test_the_message_names_the_paths_and_the_pull_that_fetches_them():
    message = missing_pulls_message(["data/default/S1", "results/default/snakemake-metadata"])
    assert message.startswith("DVC-tracked data/default/S1, results/default/snakemake-metadata missing while")
    assert "run `dvc pull data/default/S1 results/default/snakemake-metadata`" in message
    assert "TOPKSHAPE_REBUILD_MISSING=1" in message


def _record(root, relative: str, record, folder=None) -> object:
    folder = root / METADATA if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / snakemake_record_name(relative)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def test_recorded_outputs_get_their_jobs_end_times_and_the_rest_is_left_alone(tmp_path):
    model = tmp_path / "results" / "exp" / "model.pt"
    folder = tmp_path / "data" / "exp" / "S1"
    for made in (folder, model.parent):
        made.mkdir(parents=True)
    stamp = folder / ".snakemake_timestamp"
    stamp.write_text("")
    model.write_text("m")
    no_end, bad = tmp_path / "results" / "exp" / "no_end.csv", tmp_path / "results" / "exp" / "bad.csv"
    for path in (no_end, bad):
        path.write_text("x")
        os.utime(path, (5.0, 5.0))
    _record(tmp_path, "results/exp/model.pt", {"endtime": 1_500_000_000.5})
    _record(tmp_path, "data/exp/S1", {"endtime": 1_400_000_000})
    _record(tmp_path, "results/exp/absent.csv", {"endtime": 1_300_000_000})  # output not pulled: skipped
    _record(tmp_path, "results/exp/no_end.csv", {"params": []})
    _record(tmp_path, "results/exp/bad.csv", "{not json")
    assert restore_mtimes(tmp_path) == 2
    assert model.stat().st_mtime == 1_500_000_000.5
    assert folder.stat().st_mtime == stamp.stat().st_mtime == 1_400_000_000
    assert no_end.stat().st_mtime == bad.stat().st_mtime == 5.0
    assert not (tmp_path / "results" / "exp" / "absent.csv").exists()


def test_only_the_given_records_are_restored_and_no_metadata_restores_nothing(tmp_path):
    assert restore_mtimes(tmp_path) == 0
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    for path in (first, second):
        path.write_text("x")
        os.utime(path, (7.0, 7.0))
    record = _record(tmp_path, "a.txt", {"endtime": 1_000_000_000})
    _record(tmp_path, "b.txt", {"endtime": 1_000_000_000})
    assert restore_mtimes(tmp_path, only=[record]) == 1
    assert first.stat().st_mtime == 1_000_000_000 and second.stat().st_mtime == 7.0


def _git(root, *args, when: int | None = None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    if when is not None:
        env.update(GIT_AUTHOR_DATE=f"@{when} +0000", GIT_COMMITTER_DATE=f"@{when} +0000")
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, timeout=60)


def test_unmodified_tracked_files_get_the_time_of_the_commit_that_last_changed_them(tmp_path):
    _git(tmp_path, "init", "-q")
    for name in ("a.py", "b.py", "edited.py"):
        (tmp_path / name).write_text("1")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "one", when=1_000_000_000)
    (tmp_path / "b.py").write_text("2")
    _git(tmp_path, "commit", "-q", "-am", "two", when=1_100_000_000)
    (tmp_path / "edited.py").write_text("not committed")
    (tmp_path / "untracked.py").write_text("u")
    for name in ("edited.py", "untracked.py"):
        os.utime(tmp_path / name, (3.0, 3.0))
    assert restore_commit_mtimes(tmp_path) == 2
    assert (tmp_path / "a.py").stat().st_mtime == 1_000_000_000
    assert (tmp_path / "b.py").stat().st_mtime == 1_100_000_000
    assert (tmp_path / "edited.py").stat().st_mtime == (tmp_path / "untracked.py").stat().st_mtime == 3.0


def test_outside_a_git_checkout_no_tracked_file_is_touched(tmp_path):
    assert restore_commit_mtimes(tmp_path) == 0


def test_command_restores_the_pulled_records_and_says_how_many(tmp_path, monkeypatch, capsys):
    table = tmp_path / "results" / "exp" / "table1.csv"
    table.parent.mkdir(parents=True)
    table.write_text("t")
    _record(tmp_path, "results/exp/table1.csv", {"endtime": 1_200_000_000})
    monkeypatch.setattr(sys, "argv", ["sharing", str(tmp_path)])
    assert main() == 0
    assert table.stat().st_mtime == 1_200_000_000
    assert f"restored the modification times of 1 outputs from {tmp_path / METADATA} and of 0 tracked files" in capsys.readouterr().out


def test_command_without_metadata_or_a_lock_says_what_to_pull_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["sharing", str(tmp_path)])
    assert main() == 1
    assert "pull it with `dvc pull` first" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sharing", "--pull"])
    assert main() == 1
    assert "no stage in dvc.lock: nothing to pull" in capsys.readouterr().err


def test_command_exports_one_experiments_records(tmp_path, monkeypatch, capsys):
    _record(tmp_path, "results/exp/table1.csv", {"endtime": 1})
    _record(tmp_path, "data/exp/S1", {"endtime": 1})
    _record(tmp_path, "results/other/table1.csv", {"endtime": 1})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sharing", "--export", "exp"])
    assert main() == 0
    assert capsys.readouterr().out.strip() == f"topkshape: 2 Snakemake records of exp copied to results/exp/{SNAPSHOT}"
    assert len(list((tmp_path / "results" / "exp" / SNAPSHOT).iterdir())) == 2


# --- the pieces, with the inputs a real tree can hold (planted changes to each fail these) ---------------------------

def test_only_dict_entries_with_a_path_are_paths():
    from topkshape.sharing import _paths

    assert _paths(["path", {"path": "a"}, {"md5": "x"}, {"path": "b", "md5": "y"}]) == ["a", "b"]
    assert _paths(None) == []


def test_a_stage_is_persistent_only_through_an_output_marked_persist(tmp_path):
    from topkshape.sharing import _persistent_stages

    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "models": {"cmd": "x", "outs": [{"results/m": {"persist": True}}]},
        "cached": {"cmd": "x", "outs": [{"results/c": {"cache": True}}, "results/plain.csv"]},
        "looped": {"foreach": ["a"], "do": {"cmd": "x", "outs": [{"data/${item}": {"persist": True}}]}},
        "odd": 3,
    }}))
    assert _persistent_stages(tmp_path / "dvc.yaml") == {"models", "looped"}
    (tmp_path / "dvc.yaml").write_text("")
    assert _persistent_stages(tmp_path / "dvc.yaml") == set()


def test_every_stage_with_a_present_and_an_absent_output_adds_the_absent_one(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["gan"]["outs"].append({"path": "results/default/gan-extra"})
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))
    # Both stages are half pulled: both absent outputs are named (and the job records, needed to restore times).
    _present(project, "data/default/S1", "results/default/gan", ".snakemake/metadata", f"results/default/{SNAPSHOT}")
    assert missing_pulls(project) == ["data/default/S1-stylized", "results/default/gan-extra", "results/default/train"]


def test_a_dependency_inside_an_output_written_with_a_trailing_slash_counts(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["train@default"]["outs"][1] = {"path": "data/default/S1-stylized/"}
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))
    _present(project, "results/default/gan", ".snakemake/metadata", f"results/default/{SNAPSHOT}")
    assert missing_pulls(project) == ["data/default/S1-stylized/"]


def test_a_foreach_key_with_an_at_sign_belongs_to_its_base_stage(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["train@run@2"] = lock["stages"].pop("train@default")
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))
    _present(project, "results/default/train", ".snakemake/metadata", f"results/default/{SNAPSHOT}")
    assert missing_pulls(project) == ["data/default/S1", "data/default/S1-stylized"]


@pytest.mark.parametrize("relative", ["a", "ab", "abc", "results/x.csv", "data/default/S1"])
def test_record_names_decode_whatever_padding_they_dropped(relative):
    from topkshape.sharing import _decoded

    assert _decoded(snakemake_record_name(relative)) == relative
    assert _decoded("not base64!") is None


def test_a_records_end_time_is_its_endtime_or_zero(tmp_path):
    from topkshape.sharing import _end_time

    cases = {"done.json": ({"endtime": 1_500_000_000.25}, 1_500_000_000.25), "none.json": ({"endtime": None}, 0.0),
             "no_key.json": ({"ENDTIME": 5}, 0.0), "list.json": ([1, 2], 0.0), "broken.json": ("{", 0.0)}
    for name, (record, expected) in cases.items():
        (tmp_path / name).write_text(record if isinstance(record, str) else json.dumps(record))
        assert _end_time(tmp_path / name) == expected, name
    assert _end_time(tmp_path / "absent.json") == 0.0


def test_an_export_replaces_the_snapshot_and_a_killed_exports_leftover(tmp_path):
    from topkshape.sharing import export_metadata

    assert export_metadata(tmp_path, "exp") == 0  # no metadata folder yet: an empty snapshot
    assert list((tmp_path / "results" / "exp" / SNAPSHOT).iterdir()) == []
    first = _record(tmp_path, "results/exp/a.csv", {"endtime": 1})
    assert export_metadata(tmp_path, "exp") == 1
    staging = tmp_path / "results" / "exp" / f".{SNAPSHOT}.tmp"
    (staging / "half").mkdir(parents=True)  # an export killed half-way
    first.unlink()
    second = _record(tmp_path, "results/exp/b.csv", {"endtime": 2})
    assert export_metadata(tmp_path, "exp") == 1
    assert [p.name for p in (tmp_path / "results" / "exp" / SNAPSHOT).iterdir()] == [second.name]
    assert not staging.exists()


def _snapshot(root, experiment: str, relative: str, end: float):
    return _record(root, relative, {"endtime": end}, folder=root / "results" / experiment / SNAPSHOT)


def test_syncing_one_experiment_takes_only_its_snapshot_and_restores_only_what_it_took(tmp_path):
    from topkshape.sharing import sync_pulled_metadata

    for relative in ("results/a/t.csv", "results/b/t.csv", "results/a/old.csv", "results/a/local.csv"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
        os.utime(tmp_path / relative, (9.0, 9.0))
    _snapshot(tmp_path, "a", "results/a/t.csv", 1_000)
    _snapshot(tmp_path, "b", "results/b/t.csv", 2_000)
    _snapshot(tmp_path, "a", "results/a/old.csv", 3_000)
    _record(tmp_path, "results/a/old.csv", {"endtime": 2_500})  # an older local record: replaced
    _record(tmp_path, "results/a/local.csv", {"endtime": 4_000})  # a local record the snapshot lacks: not touched
    assert sync_pulled_metadata(tmp_path, "a") == 2
    assert (tmp_path / "results/a/t.csv").stat().st_mtime == 1_000
    assert (tmp_path / "results/a/old.csv").stat().st_mtime == 3_000
    assert (tmp_path / "results/b/t.csv").stat().st_mtime == 9.0
    assert (tmp_path / "results/a/local.csv").stat().st_mtime == 9.0


def test_restoring_skips_foreign_files_and_sets_a_linked_outputs_own_time(tmp_path):
    (tmp_path / METADATA).mkdir(parents=True)
    (tmp_path / METADATA / "!!! not a record").write_text("{}")  # sorts first; not a record name
    (tmp_path / "target.csv").write_text("x")
    os.utime(tmp_path / "target.csv", (9.0, 9.0))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "link.csv").symlink_to(tmp_path / "target.csv")
    (tmp_path / "results" / "early.csv").write_text("x")
    _record(tmp_path, "results/link.csv", {"endtime": 1_000_000_000})
    _record(tmp_path, "results/early.csv", {"endtime": 1.0})
    assert restore_mtimes(tmp_path) == 2
    assert os.lstat(tmp_path / "results" / "link.csv").st_mtime == 1_000_000_000
    assert (tmp_path / "target.csv").stat().st_mtime == 9.0  # the link's target keeps its own time
    assert (tmp_path / "results" / "early.csv").stat().st_mtime == 1.0


def test_a_staged_but_uncommitted_change_keeps_its_own_time(tmp_path):
    _git(tmp_path, "init", "-q")
    for name in ("kept.py", "staged.py"):
        (tmp_path / name).write_text("1")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "one", when=1_000_000_000)
    (tmp_path / "staged.py").write_text("2")
    _git(tmp_path, "add", "staged.py")
    os.utime(tmp_path / "staged.py", (3.0, 3.0))
    assert restore_commit_mtimes(tmp_path) == 1
    assert (tmp_path / "kept.py").stat().st_mtime == 1_000_000_000 and (tmp_path / "staged.py").stat().st_mtime == 3.0


def test_pull_pulls_exactly_the_locked_stages_with_this_environments_dvc_then_restores(tmp_path, monkeypatch, capsys):
    import topkshape.sharing as sharing

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train@default": {}, "gan": {}}}))
    table = tmp_path / "results" / "exp" / "t.csv"
    table.parent.mkdir(parents=True)
    table.write_text("t")
    _record(tmp_path, "results/exp/t.csv", {"endtime": 1_200_000_000})
    commands = []
    answers = [3, 0]

    real_run = subprocess.run

    def fake_run(command, **kwargs):
        if command[0] == "git":  # restoring the tracked files' times asks git: outside a checkout here
            return real_run(command, **kwargs)
        commands.append((command, kwargs))
        return subprocess.CompletedProcess(command, answers.pop(0))

    monkeypatch.setattr(sharing.subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    dvc = str(__import__("pathlib").Path(sys.executable).parent / "dvc")
    monkeypatch.setattr(sys, "argv", ["sharing", "--pull"])
    assert main() == 3  # a failed pull restores nothing and says so by its code
    assert commands == [([dvc, "pull", "gan", "train@default"], {"check": False})] and table.stat().st_mtime != 1_200_000_000
    monkeypatch.setattr(sys, "argv", ["sharing", "--pull"])
    assert main() == 0
    assert len(commands) == 2 and table.stat().st_mtime == 1_200_000_000
    assert "restored the modification times of 1 outputs from .snakemake/metadata" in capsys.readouterr().out


def test_pull_with_an_empty_lock_pulls_nothing(tmp_path, monkeypatch, capsys):
    import topkshape.sharing as sharing

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {}}))
    monkeypatch.setattr(sharing.subprocess, "run", lambda *a, **k: pytest.fail("dvc must not run"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sharing", "--pull"])
    assert main() == 1
    assert capsys.readouterr().err == "topkshape: no stage in dvc.lock: nothing to pull\n"


def test_without_arguments_the_current_folder_is_restored(tmp_path, monkeypatch, capsys):
    table = tmp_path / "t.csv"
    table.write_text("t")
    _record(tmp_path, "t.csv", {"endtime": 1_100_000_000})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sharing"])
    assert main() == 0 and table.stat().st_mtime == 1_100_000_000
    # "--export" needs its experiment: alone it is no export (and names no metadata folder of that name).
    monkeypatch.setattr(sys, "argv", ["sharing", "--export"])
    assert main() == 1
    assert "no Snakemake metadata under --export/.snakemake/metadata" in capsys.readouterr().err


def test_experiment_records_are_the_files_whose_decoded_names_lie_under_its_data_or_results(tmp_path):
    from topkshape.sharing import experiment_records

    folder = tmp_path / "metadata"
    assert experiment_records(folder, "exp") == []  # no folder yet
    mine = [_record(tmp_path, rel, {}, folder) for rel in ("data/exp/S1", "results/exp/tables/table1.md", "results/exp")]
    for other in ("results/expanded/x", "results/other/exp", "data/exp2", "logs/exp/train.log"):
        _record(tmp_path, other, {}, folder)
    (folder / "not base64!").write_text("{}")
    (folder / snakemake_record_name("results/exp/dir")).mkdir()  # not a file: not a record
    assert experiment_records(folder, "exp") == sorted(mine)

"""The generated run record: times from the run's own records, commit and machine named once, the README's copy checked."""

from __future__ import annotations

import json
import os

import pytest

from topkshape.report.run_record import SUMMARY_BEGIN, SUMMARY_END, main, minutes, record_markdown, run_facts
from workflow_support import snakemake_record_name

RULES = ["train", "gan_train", "table1"]
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def _record(root, relative, start, end):
    name = snakemake_record_name(relative)
    folder = root / "results" / "exp" / "snakemake-metadata"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"rule": "x", "starttime": start, "endtime": end}))


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results" / "exp"
    _record(tmp_path, "results/exp/train/S1/topk/seed0/summary.json", T0 + 10, T0 + 100)
    _record(tmp_path, "results/exp/tables/table1.md", T0 + 100, T0 + 730)
    _record(tmp_path, "results/other/tables/table1.md", T0 - 5000, T0 + 9000)  # another experiment: not this run
    bench = results / "benchmarks"
    bench.mkdir(parents=True)
    for name, seconds in (("train_S1_topk_seed0", 40.0), ("train_S1_topk_seed1", 50.0), ("gan_train_hexagon_topk_seed0", 110.0),
                          ("table1", 0.0)):
        (bench / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    for seed, commit in ((0, "a" * 40), (1, "a" * 40)):
        summary = results / "train" / "S1" / "topk" / f"seed{seed}" / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps({"provenance": {"git": {"commit": commit, "dirty": False}}}))
    (results / "environment.txt").write_text("python: 3.11.9\ntorch: 2.14.1\ndevice: cpu (2 threads)\ncpu: Test CPU 9000\n")
    tables = results / "tables"
    tables.mkdir()
    (tables / "table1.md").write_text("# Table 1\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tables / "texture_synthesis.csv").write_text("target,ratio\nhexagon_0,0.125\n")
    venv = tmp_path / ".venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("")
    (venv / ".installed").write_text("")
    os.utime(venv / "pyvenv.cfg", (T0 - 110, T0 - 110))
    os.utime(venv / ".installed", (T0 + 5, T0 + 5))
    return tmp_path


def test_times_come_from_the_experiments_job_records_and_the_venv(run):
    facts = run_facts(run, "exp")
    assert facts["workflow_s"] == 720.0  # first start T0+10 to last end T0+730; the other experiment ignored
    assert facts["setup_s"] == 115.0 and facts["total_s"] == 840.0  # venv created at T0-110, last job ended at T0+730
    assert facts["commits"] == ["aaaaaaa"]
    assert facts["finished"] == "2027-01-15 08:12 UTC"
    os.utime(run / ".venv" / ".installed", (T0 - 4000, T0 - 4000))  # installed long before: not this run's setup
    assert run_facts(run, "exp")["setup_s"] is None


def test_the_page_names_the_run_once_and_holds_the_times_and_tables(run):
    page = record_markdown(run, "exp", RULES)
    assert page.count("commit `aaaaaaa`") == 1 and "commit `aaaaaaa`, Test CPU 9000, torch 2.14.1, python 3.11.9;" in page
    assert "`make all` took **14 min 0 s** (the venv's creation to the last job's end): 1 min 55 s to create the venv and install, then 12 min 0 s" in page
    assert "Job-seconds: 200 in all; `gan_train` 110 s in 1 job (55%); `train` 90 s in 2 jobs (45%)" in page
    assert "| `train` | 2 | 90.0 | 50.0 | 45.0% |" in page
    assert "#### Table 1" in page  # the table's own heading sits below the page's
    assert "| hexagon_0 | 0.125 |" in page


def test_readme_block_is_replaced_and_checked(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("topkshape.report.run_record.rule_names", lambda cwd=None: RULES)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{SUMMARY_BEGIN}\nold numbers\n{SUMMARY_END}\noutro\n")
    out = tmp_path / "docs" / "run.md"
    assert main(["--root", str(run), "--experiment", "exp", "--out", str(out), "--readme", str(readme), "--check"]) == 1  # no page yet
    assert main(["--root", str(run), "--experiment", "exp", "--out", str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old numbers" not in text and "14 min 0 s" in text
    assert main(["--root", str(run), "--experiment", "exp", "--out", str(out), "--readme", str(readme), "--check"]) == 0
    readme.write_text(text.replace("14 min 0 s", "11 min 0 s"))
    assert main(["--root", str(run), "--experiment", "exp", "--out", str(out), "--readme", str(readme), "--check"]) == 1
    assert "differs" in capsys.readouterr().err


def test_no_records_stop_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("topkshape.report.run_record.rule_names", lambda cwd=None: RULES)
    assert main(["--root", str(tmp_path), "--experiment", "nothing", "--out", str(tmp_path / "p.md"), "--readme", str(tmp_path / "R.md")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


@pytest.mark.parametrize("seconds,text", [(59.4, "59 s"), (60, "1 min 0 s"), (923.4, "15 min 23 s")])
def test_minutes(seconds, text):
    assert minutes(seconds) == text


def test_the_docs_page_includes_the_generated_record_and_the_readme_holds_its_summary():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert '--8<-- "generated/default-run.md"' in (root / "docs" / "results.md").read_text()
    assert main(["--root", str(root), "--out", str(root / "docs" / "generated" / "default-run.md"),
                 "--readme", str(root / "README.md"), "--check"]) == 0

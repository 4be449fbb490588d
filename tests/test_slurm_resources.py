"""SLURM runtimes and memory from a run's measured Snakemake benchmarks, not from estimates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from topkshape.errors import ConfigError, InputDataError
from topkshape.slurm_resources import main, write_measured_profile

ROOT = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _benchmark(folder: Path, name: str, seconds: float, rss: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.tsv").write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{seconds}\n")


@pytest.fixture
def benchmarks(tmp_path) -> Path:
    folder = tmp_path / "benchmarks"
    _benchmark(folder, "train_S1_baseline_seed0", 3000.0, "9000.5")
    _benchmark(folder, "train_S2_topk_seed1", 4500.2, "7000")   # the longest train job; not the largest
    _benchmark(folder, "gan_train_jeep_fastgan_seed0", 100.0, "NA")  # too short for Snakemake to sample memory
    _benchmark(folder, "gan_eval_jeep_fastgan_seed0", 700.0, "2500")  # gan_eval, not gan_train's prefix 'gan'
    _benchmark(folder, "cue_conflict_eval_alexnet", 90.0, "3000")
    _benchmark(folder, "texture_synthesis", 30.0, "400")
    _benchmark(folder, "not_a_rule_of_the_profile", 99999.0, "99999")
    return folder


def test_each_rule_gets_its_longest_job_and_largest_memory_times_the_margin(benchmarks, tmp_path):
    write_measured_profile(benchmarks, ROOT / "profiles" / "slurm", tmp_path / "measured", margin=2)
    text = (tmp_path / "measured" / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    resources = profile["set-resources"]
    assert resources["train"]["runtime"] == 151  # ceil(4500.2 * 2 / 60) = ceil(150.007)
    assert resources["train"]["mem_mb"] == 18001  # ceil(9000.5 * 2)
    assert resources["gan_eval"] == {**resources["gan_eval"], "runtime": 24, "mem_mb": 5000}
    assert resources["gan_train"]["runtime"] == 5 and resources["gan_train"]["mem_mb"] == 1000  # the floors
    assert resources["cue_conflict_eval"]["runtime"] == 5 and resources["cue_conflict_eval"]["mem_mb"] == 6000
    assert resources["texture_synthesis"]["mem_mb"] == 1000
    assert "not_a_rule_of_the_profile" not in resources
    shipped = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    # Unmeasured rules and everything else keep the shipped profile's values.
    for rule in ("subset", "fewshot", "stylized"):
        assert resources[rule] == shipped["set-resources"][rule]
    assert resources["train"]["cpus_per_task"] == shipped["set-resources"]["train"]["cpus_per_task"]
    assert {k: v for k, v in profile.items() if k != "set-resources"} == {k: v for k, v in shipped.items() if k != "set-resources"}
    assert "#   train: 2 job(s), longest 4500 s, largest 9000 MB" in text
    unmeasured = text[text.index("Not measured, kept from"):].split(":", 1)[1].split(".", 1)[0]
    named = {rule.strip().lstrip("#").strip() for rule in unmeasured.replace("\n", " ").split(",")}
    assert {"fewshot", "stylized", "subset", "ood_eval"} <= named and not {"train", "gan_eval"} & named


def test_the_command_line_writes_the_profile_and_refuses_bad_input_in_one_line(benchmarks, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main([str(benchmarks), "--profile", str(ROOT / "profiles" / "slurm"), "--out", str(out), "--margin", "1.5"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["set-resources"]["train"]["runtime"] == 113  # ceil(4500.2*1.5/60)
    assert main([str(tmp_path / "missing"), "--profile", str(ROOT / "profiles" / "slurm"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no benchmark folder at" in err[0]
    assert not (tmp_path / "x").exists()  # no partial output


def test_a_margin_below_one_or_a_folder_of_other_files_is_refused(benchmarks, tmp_path):
    with pytest.raises(ConfigError, match="margin"):
        write_measured_profile(benchmarks, ROOT / "profiles" / "slurm", tmp_path / "m", margin=0.5)
    unrelated = tmp_path / "unrelated"
    _benchmark(unrelated, "something_else", 1.0, "1")
    with pytest.raises(InputDataError, match="belongs to a rule"):
        write_measured_profile(unrelated, ROOT / "profiles" / "slurm", tmp_path / "m")
    broken = tmp_path / "broken"
    shutil.copytree(benchmarks, broken)
    (broken / "texture_synthesis.tsv").write_text(HEADER + "soon\t0\t1\n")
    with pytest.raises(InputDataError, match="texture_synthesis.tsv:2"):
        write_measured_profile(broken, ROOT / "profiles" / "slurm", tmp_path / "m")

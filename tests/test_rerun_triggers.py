"""Editing a config value reruns exactly the jobs that use it (and what lies downstream)."""

from __future__ import annotations

import re

import pytest

from workflow_support import TINY_DEFAULT, copy_workflow, snakemake, write_config

pytestmark = pytest.mark.slow

# One subset, one seed: 3 training jobs, enough to see which rules a change plans.
SMALL = dict(
    TINY_DEFAULT,
    data__subsets={"S1": ["disk", "square", "triangle"]},
    train__seeds=[0],
    shape_bias__models=["trained_S1"],
    gan__eval={"samples": 10, "kid_subset_size": 5, "feature_extractor": "classifier", "classifier_subset": "S1"},
)


def planned_jobs(stdout: str) -> dict[str, int]:
    """Rule -> job count from a dry run's "Job stats" table (empty when nothing is to be done)."""
    if "Job stats:" not in stdout:
        return {}
    table = stdout.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def trained_workflow(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("rerun"))
    write_config(work / "config.yaml", **SMALL)
    done = snakemake(work, "table1", "--cores", "2", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    again = snakemake(work, "-n", "table1", "--cores", "2")
    assert planned_jobs(again.stdout) == {}, again.stdout[-2000:]
    return work


def _plan_after_edit(work, **change):
    write_config(work / "config.yaml", **dict(SMALL, **change))
    try:
        result = snakemake(work, "-n", "table1", "--cores", "2")
        assert result.returncode == 0, result.stderr[-3000:]
        return planned_jobs(result.stdout)
    finally:
        write_config(work / "config.yaml", **SMALL)


def test_editing_train_epochs_plans_every_training_job_and_table1(trained_workflow):
    plan = _plan_after_edit(trained_workflow, train__epochs=2)
    assert plan.get("train") == 3 and plan.get("table1") == 1
    assert "subset" not in plan and "stylized" not in plan


def test_editing_the_class_list_plans_the_subset_its_training_and_table1(trained_workflow):
    plan = _plan_after_edit(trained_workflow, data__subsets={"S1": ["disk", "square", "ellipse"]})
    assert plan.get("subset") == 1 and plan.get("train") == 3 and plan.get("table1") == 1


def test_editing_the_texture_shortcut_strength_plans_the_data_and_training(trained_workflow):
    plan = _plan_after_edit(trained_workflow, data__synthetic__texture_correlation=0.5)
    assert plan.get("subset") == 1 and plan.get("train") == 3


def test_editing_an_unrelated_value_plans_no_training_job(trained_workflow):
    assert _plan_after_edit(trained_workflow, shape_bias__bootstrap_samples=77) == {}
    assert _plan_after_edit(trained_workflow, gan__iterations=3) == {}


def test_editing_a_home_texture_plans_the_subsets_that_wear_it_only(trained_workflow):
    plan = _plan_after_edit(trained_workflow, data__synthetic__home_textures={"disk": "grid"})
    assert plan.get("subset") == 1 and plan.get("stylized") == 1 and plan.get("train") == 3
    # A class of no subset here (the few-shot set's hexagon is not in table1's DAG): nothing to redo.
    assert _plan_after_edit(trained_workflow, data__synthetic__home_textures={"hexagon": "grid"}) == {}

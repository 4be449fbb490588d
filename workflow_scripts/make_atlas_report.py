"""Snakemake script: the atlas table and figure from the atlas jobs' raw decisions, records and tie counts."""

from pathlib import Path

from topkshape.report.shape_bias_atlas import write_atlas
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "atlas_report"):
    p = sm.params
    humans = sorted(Path(p.humans).glob("cue-conflict_subject-*.csv")) if p.humans else []
    write_atlas(sm.input.raw, sm.input.records, sm.output, title=f"any model, any placement ({p.experiment})", human_csvs=humans,
                tie_csvs=sm.input.ties, samples=p.bootstrap_samples, alpha=p.chance_alpha)

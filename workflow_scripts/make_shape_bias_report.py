"""Snakemake script: shape-bias table and Figures 4/5 from the raw decision files."""

from pathlib import Path

from topkshape.report.shape_bias import write_shape_bias_report
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "shape_bias_report"):
    p = sm.params
    humans = sorted(Path(p.humans).glob("cue-conflict_subject-*.csv")) if p.humans else []
    write_shape_bias_report(
        sm.input.raw, humans, sm.output,
        title=f"Cue-conflict shape bias ({p.experiment})", samples=p.bootstrap_samples, alpha=p.chance_alpha,
    )

"""Snakemake script: shape-bias table and Figures 4/5 from the raw decision files."""

from pathlib import Path

from topkshape.report.shape_bias import write_shape_bias_report
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "shape_bias_report"):
    humans = sorted(Path(sm.params.humans).glob("cue-conflict_subject-*.csv")) if sm.params.humans else []
    write_shape_bias_report(
        sm.input.raw, humans, sm.output,
        title=f"Cue-conflict shape bias ({sm.config['experiment']})",
        samples=sm.config["shape_bias"]["bootstrap_samples"],
    )

"""Snakemake script: shape-bias table, Figures 4/5 and the sweep against K from the raw decision files."""

from pathlib import Path

from topkshape.report.shape_bias import write_shape_bias_report
from topkshape.report.shape_bias_sweep import write_shape_bias_sweep
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "shape_bias_report"):
    p = sm.params
    humans = sorted(Path(p.humans).glob("cue-conflict_subject-*.csv")) if p.humans else []
    table = write_shape_bias_report(
        sm.input.raw, humans, sm.output,
        title=f"Cue-conflict shape bias ({p.experiment})", samples=p.bootstrap_samples, alpha=p.chance_alpha,
        figure5_k=p.figure5_k, tie_csvs=sm.input.ties, spread_csvs=sm.input.tie_spread,
    )
    write_shape_bias_sweep(table, p.references, sm.output)

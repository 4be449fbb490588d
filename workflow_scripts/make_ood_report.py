"""Snakemake script: model-vs-human's OOD benchmark of the atlas entries, and shape bias against OOD accuracy."""

from topkshape.report.ood import raw_path_map, write_ood_report
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "ood_report"):
    write_ood_report(raw_path_map(sm.input.raw), dict(zip(sm.params.datasets, sm.input.humans)), sm.input.atlas, sm.output,
                     title=sm.params.title, samples=sm.params.bootstrap_samples)

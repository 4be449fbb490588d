"""Snakemake script: Table 1b, Table 1's models on common corruptions."""

from topkshape.report.table1b import write_table1b
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "table1b"):
    write_table1b(sm.input, sm.output, sm.params.title)

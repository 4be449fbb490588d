"""Snakemake script: aggregate the training runs into Table 1 and its figures."""

from topkshape.provenance import provenance_record
from topkshape.report.table1 import load_runs, write_table1
from topkshape.report.table1_figure import plot_accuracies, plot_training_curves
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "table1"):
    write_table1(sm.input.summaries, sm.input.reference, sm.output, sm.params.title, paper_subsets=sm.params.paper_subsets,
                 provenance=provenance_record({"train": sm.params.train, "subsets": sm.params.subsets}))
    plot_accuracies(load_runs(sm.input.summaries), [sm.output.figure_png, sm.output.figure_pdf])
    plot_training_curves(sm.input.metrics, [sm.output.curves_png, sm.output.curves_pdf])

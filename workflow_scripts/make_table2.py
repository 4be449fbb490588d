"""Snakemake script: aggregate the FastGAN runs into Table 2 and the sample grid."""

from topkshape.provenance import provenance_record
from topkshape.report.table2 import load_runs, sample_grid, write_table2
from topkshape.report.table2_figure import plot_fid_kid
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "table2"):
    gan = sm.params.gan
    ev = gan["eval"]
    note = (f"Mean ± std over {len(gan['seeds'])} seeds; {ev['samples']} generated samples vs the few-shot set's real images; "
            f"KID subset size {ev['kid_subset_size']}; features: {ev['feature_extractor']}"
            + (" (the Table 1 classifier: an in-domain stand-in, not comparable with Inception FIDs)" if ev["feature_extractor"] == "classifier" else "")
            + f"; generator: {ev['selection']} ({'lowest FID over snapshots, as the paper code' if ev['selection'] == 'best' else 'the EMA generator after the last iteration'}).")
    table = write_table2(sm.input.metrics, sm.input.reference, sm.output, sm.params.title, note, provenance=provenance_record({"gan": gan}))
    plot_fid_kid(load_runs(sm.input.metrics), table, [sm.output.figure_png, sm.output.figure_pdf])
    # The grid's PDF beside its PNG: rules/gan.smk does not declare it (yet), so Snakemake does not track it.
    sample_grid(sm.input.previews, [sm.output.samples, sm.output.samples_pdf])

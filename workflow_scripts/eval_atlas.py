"""Snakemake script: one atlas model, every Top-K setting of the sweep -> raw decision CSVs, tie counts, its record."""

from topkshape.shape_bias.atlas import atlas_entries, run_atlas_entry
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "atlas_eval", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    (entry,) = atlas_entries([p.entry])
    run_atlas_entry(
        entry, p.tags, sm.input.images, list(sm.output.raw), record_output=sm.output.record, ties_output=sm.output.ties,
        batch_size=p.batch_size, ties=p.ties, tie_seed=p.tie_seed, threads=sm.threads, images_per_class=p.images_per_class,
        # Named torchvision weights arrive as the file the pretrained_weights rule downloaded.
        weights_file=sm.input.get("weights"),
    )

"""Snakemake script: one atlas entry on one OOD dataset at every setting -> its raw decisions (the toolbox's format)."""

from topkshape.robustness.ood import write_entry_raw_decisions
from topkshape.shape_bias.atlas import atlas_entries
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "ood_eval", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    (entry,) = atlas_entries([p.entry])
    write_entry_raw_decisions(entry, p.tags, sm.input.dataset, sm.output[0], batch_size=p.batch_size, ties=p.ties, tie_seed=p.tie_seed,
                              images_per_class=p.images_per_class, threads=sm.threads, weights_file=sm.input.get("weights"))

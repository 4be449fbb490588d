"""Snakemake script: the common-corruption sets of one subset's validation images (Table 1b)."""

from pathlib import Path

from topkshape.robustness.corruptions import write_corrupted_sets
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "corrupted"):
    options = sm.params.corruptions
    write_corrupted_sets(Path(sm.input.subset) / "val", sm.output[0], sm.params.classes, corruptions=options["names"],
                         severities=options["severities"], per_class=options["per_class"], seed=options["seed"])

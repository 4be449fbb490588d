"""Snakemake script: download the reference decision makers' raw cue-conflict files (Figure 4's lines)."""

from topkshape.shape_bias.fetch import fetch_human_decisions
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "reference_decisions"):
    files = sm.params.files.values()
    # The same pinned download as the human observers' files, with the configured names and hashes.
    fetch_human_decisions(sm.params.base_url, sm.output[0], [f["name"] for f in files],
                          hashes={f["name"]: f.get("sha256") for f in files}, require_pinned=sm.params.require_pinned)

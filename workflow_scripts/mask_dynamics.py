"""Snakemake script: the grid of Top-K masks over training time (Figure 8)."""

import json
from pathlib import Path

from topkshape.report.style import use_paper_style
from topkshape.texture.experiment import render_mask_dynamics
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "mask_dynamics", gpus=sm.resources.get("gpu", 0)):
    # The recorded channels, as the train job's provenance says (masks.pt holds only the masks).
    params = json.loads(Path(sm.input.summary).read_text()).get("provenance", {}).get("params", {})
    channels = (params.get("mask_dynamics") or {}).get("channels")
    use_paper_style()
    render_mask_dynamics(Path(sm.input.summary).parent / "masks.pt", [sm.output.png, sm.output.pdf], title=sm.params.title,
                         time_unit="epoch", channel_labels=channels)

"""Snakemake script: write the environment report (package versions, device)."""

from pathlib import Path

from topkshape.provenance import environment_report

out = Path(snakemake.output[0])  # noqa: F821 (injected by Snakemake)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("".join(f"{key}: {value}\n" for key, value in environment_report().items()))

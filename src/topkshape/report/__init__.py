"""Tables and figures aggregated from the per-run result files."""

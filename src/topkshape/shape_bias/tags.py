"""Names of the Top-K settings in the sweep: 'none', or '<mode><K%>' such as 'topk10'."""

from __future__ import annotations

TRAINED_PREFIX = "trained_"


def sweep_tags(fractions: list[float], modes: list[str]) -> list[str]:
    """'none' plus '<mode><K%>' for each mode and fraction, e.g. 'topk10', 'non_topk5'."""
    return ["none"] + [f"{mode}{round(100 * f, 6):g}" for mode in modes for f in fractions]


def parse_tag(tag: str) -> tuple[str, float | None]:
    """'none' -> ('none', None); 'non_topk20' -> ('non_topk', 20.0)."""
    if tag == "none":
        return "none", None
    mode = tag.rstrip("0123456789.")
    return mode, float(tag[len(mode):])

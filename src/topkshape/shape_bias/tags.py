"""Names of the Top-K settings in the sweep: 'none', or '<mode><K%>' such as 'topk10'."""

from __future__ import annotations

TRAINED_PREFIX = "trained_"


def setting_tag(fraction: float | None, mode: str = "topk") -> str:
    """'none' for no Top-K, else '<mode><K%>': (0.1, 'topk') -> 'topk10', (0.05, 'non_topk') -> 'non_topk5'."""
    return "none" if fraction is None else f"{mode}{round(100 * fraction, 6):g}"


def sweep_tags(fractions: list[float], modes: list[str]) -> list[str]:
    """'none' plus '<mode><K%>' for each mode and fraction, e.g. 'topk10', 'non_topk5'."""
    return ["none"] + [setting_tag(f, mode) for mode in modes for f in fractions]


def parse_tag(tag: str) -> tuple[str, float | None]:
    """'none' -> ('none', None); 'non_topk20' -> ('non_topk', 20.0)."""
    if tag == "none":
        return "none", None
    mode = tag.rstrip("0123456789.")
    return mode, float(tag[len(mode):])


def tag_setting(tag: str) -> tuple[float | None, str]:
    """The (fraction, mode) a tag names: 'topk10' -> (0.1, 'topk'); 'none' -> (None, 'topk')."""
    mode, percent = parse_tag(tag)
    return (None, "topk") if percent is None else (percent / 100, mode)

"""Shape bias from raw decision files, exactly as model-vs-human's ``ShapeBias`` analysis.

Per file (or pooled files): the texture category comes from the image name (last
``_`` field, extension dropped, the part after the last ``-``, digits removed); rows
whose shape category equals the texture category carry no conflict and are dropped
from the counts, but the fractions are taken over *all* rows, as the toolbox does
(``modelvshuman/plotting/analyses.py``, ``ShapeBias.analysis``):

    fraction_correct_shape   = #(response == shape)   / #rows
    fraction_correct_texture = #(response == texture) / #rows
    shape_bias = shape / (shape + texture)

Per category: the same on the rows of each shape category (its per-class plot); the
values of Figure 4's boxplot (``class_shape_biases``), for humans averaged over observers.
A category with no shape and no texture decision has no shape bias (NaN).

The toolbox trusts its files; a file with another category set or image names without
a texture part still gives a number, a wrong one. ``read_raw_csv`` therefore checks
every row against the file's naming scheme and category set (``raw_csv_problems``) and
fails naming the file, line and value, or skips such rows when asked and says how many.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from topkshape.data.shapes import SHAPES
from topkshape.errors import InputDataError

logger = logging.getLogger(__name__)

RAW_COLUMNS = ["subj", "session", "trial", "rt", "object_response", "category", "condition", "imagename"]
CHECKED_COLUMNS = ("object_response", "category", "imagename")
# The 16 categories of the cue-conflict benchmark (the keys of decisions.sixteen_class_indices).
SIXTEEN_CATEGORIES = frozenset({
    "airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat",
    "chair", "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck",
})
# model-vs-human's code for a human observer who gave no answer in time.
NO_RESPONSE = "na"


@dataclass(frozen=True)
class NamingScheme:
    """How a set of stimuli names its images, and which categories its files may hold."""

    name: str
    pattern: re.Pattern[str]
    example: str
    categories: frozenset[str]
    # True: responses and textures come from the file's own categories (a trained
    # classifier answers among its own classes); False: from ``categories``.
    own_categories: bool


SCHEMES = (
    # Geirhos et al.'s stimuli '<shape><n>-<texture><m>.png'; human sessions prefix '<...>_'.
    NamingScheme("model-vs-human", re.compile(r"^(?:.*_)?(?P<shape>[a-z]+)\d+-(?P<texture>[a-z]+)\d+\.(?i:png|jpe?g)$"),
                 "<shape><n>-<texture><m>.png", SIXTEEN_CATEGORIES, own_categories=False),
    # The embedded default's generated cue-conflict sets (data/synthetic.py).
    NamingScheme("generated", re.compile(r"^(?P<shape>[a-z]+)_\d+-(?P<texture>[a-z]+)\.(?i:png|jpe?g)$"),
                 "<shape>_<i>-<texture>.png", frozenset(SHAPES), own_categories=True),
)


@dataclass(frozen=True)
class RowProblem:
    """One row that cannot be scored: where it is and what is wrong."""

    path: Path
    line: int
    column: str
    value: object
    reason: str

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: {self.column} {self.value!r} {self.reason}"


def texture_category(imagename: str) -> str:
    """'0001_s5n_s01_0_bird_00_bird3-clock2.png' -> 'clock'."""
    last = str(imagename).split("_")[-1]
    stem = last.split(".")[0]
    return "".join(ch for ch in stem.split("-")[-1] if not ch.isdigit())


def _scheme_of(names: pd.Series) -> NamingScheme | None:
    """The scheme of the first image name that follows one."""
    for name in names:
        if isinstance(name, str):
            for scheme in SCHEMES:
                if scheme.pattern.match(name):
                    return scheme
    return None


def raw_csv_problems(frame: pd.DataFrame, path: str | Path) -> list[RowProblem]:
    """Every row whose image name, category or response the analysis cannot score right.

    The file's naming scheme (model-vs-human's or the generated sets') is the one its
    first well-formed image name follows; every row must then follow it, with a shape
    part equal to ``category``, and category, texture and response in the scheme's set
    (for generated sets: the file's own categories, each a known shape). Lines count
    the header as line 1.
    """
    path = Path(path)
    scheme = _scheme_of(frame["imagename"])
    lines = [int(index) + 2 for index in frame.index]
    if scheme is None:
        names = " or ".join(f"{s.name}'s {s.example!r}" for s in SCHEMES)
        return [RowProblem(path, line, "imagename", name, f"follows neither {names}")
                for line, name in zip(lines, frame["imagename"])]
    known = scheme.categories
    if scheme.own_categories:
        allowed = frozenset(c for c in frame["category"] if isinstance(c, str)) & known
        what = f"one of this file's categories {sorted(allowed)}"
    else:
        allowed, what = known, f"one of the {len(known)} {scheme.name} categories"
    problems: list[RowProblem] = []
    for line, name, category, response in zip(lines, frame["imagename"], frame["category"], frame["object_response"]):
        match = scheme.pattern.match(name) if isinstance(name, str) else None
        if match is None:
            problem = ("imagename", name, f"does not follow {scheme.name}'s {scheme.example!r} as the file's other names do")
        elif not isinstance(category, str) or category not in known:
            problem = ("category", category, f"is not one of the {len(known)} {scheme.name} categories")
        elif match["shape"] != category:
            problem = ("category", category, f"differs from the shape {match['shape']!r} in the image name {name!r}")
        elif match["texture"] not in allowed:
            problem = ("imagename", name, f"has texture {match['texture']!r}, which is not {what}")
        elif not isinstance(response, str) or (response not in allowed and response != NO_RESPONSE):
            problem = ("object_response", response, f"is not {what} (or {NO_RESPONSE!r}, no response)")
        else:
            continue
        problems.append(RowProblem(path, line, *problem))
    return problems


def _read_text(path: Path) -> str:
    """The file as text, or a one-line error for a folder, an empty, binary or non-UTF-8 file."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InputDataError(f"raw decision file is a folder: {path}") from None
    except OSError as err:
        raise InputDataError(f"cannot read raw decision file {path}: {err.strerror or err}") from None
    if not data.strip():
        raise InputDataError(f"{path}: empty file; expected a CSV with the header {','.join(RAW_COLUMNS)}")
    if b"\x00" in data:
        raise InputDataError(f"{path}: binary data (NUL bytes), not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputDataError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})") from None


def _read_one(path: Path, skip_invalid: bool) -> tuple[pd.DataFrame, list[RowProblem]]:
    if not path.exists():
        raise InputDataError(f"raw decision file not found: {path}")
    text = _read_text(path)
    try:
        # Blank lines are kept (then dropped below) so that index + 2 is the line number.
        frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in CHECKED_COLUMNS}, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise InputDataError(f"{path}: not a readable CSV ({' '.join(str(err).split())})") from None
    frame = frame.dropna(how="all")
    missing = [c for c in CHECKED_COLUMNS if c not in frame]
    if missing:
        raise InputDataError(f"{path}: missing column(s) {missing}; expected model-vs-human's raw format {RAW_COLUMNS}")
    if frame.empty:
        raise InputDataError(f"{path}: no decision rows (only a header)")
    problems = raw_csv_problems(frame, path)
    if problems and not skip_invalid:
        more = f" (and {len(problems) - 1} more invalid rows; --skip-invalid drops them)" if len(problems) > 1 else ""
        raise InputDataError(f"{problems[0]}{more}")
    if problems:
        frame = frame.drop(index=[p.line - 2 for p in problems])
        logger.warning("skipped %d of %d rows of %s that cannot be scored; first: %s",
                       len(problems), len(frame) + len(problems), path, problems[0])
        if frame.empty:
            raise InputDataError(f"{path}: every row is invalid; first: {problems[0]}")
    return frame, problems


def read_raw_csv(paths: str | Path | Iterable[str | Path], *, skip_invalid: bool = False) -> pd.DataFrame:
    """One or more raw decision files, checked row by row and concatenated.

    A file that is missing, empty, binary, not UTF-8, without the needed columns or
    without rows is an error naming it; so is any row ``raw_csv_problems`` reports,
    unless ``skip_invalid``: then such rows are dropped, logged, and listed in
    ``frame.attrs["skipped"]`` (file name -> list of RowProblem).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames, skipped = [], {}
    for path in map(Path, paths):
        frame, problems = _read_one(path, skip_invalid)
        frame["file"] = path.name
        frames.append(frame)
        if problems:
            skipped[path.name] = problems
    if not frames:
        raise InputDataError("no raw decision files given")
    result = pd.concat(frames, ignore_index=True)
    result.attrs["skipped"] = skipped
    return result


def _fractions(frame: pd.DataFrame) -> tuple[float, float, float]:
    total = len(frame)
    if total == 0:
        return np.nan, np.nan, np.nan
    texture = frame["imagename"].map(texture_category)
    conflict = frame[frame["category"] != texture]
    conflict_texture = texture[conflict.index]
    shape = int((conflict["object_response"] == conflict["category"]).sum()) / total
    tex = int((conflict["object_response"] == conflict_texture).sum()) / total
    bias = shape / (shape + tex) if shape + tex > 0 else np.nan
    return shape, tex, bias


def shape_bias(frame: pd.DataFrame) -> dict[str, float]:
    """Overall shape bias and the two fractions of one decision maker's rows."""
    shape, texture, bias = _fractions(frame)
    return {"shape_bias": bias, "fraction_correct_shape": shape, "fraction_correct_texture": texture}


def shape_bias_per_category(frame: pd.DataFrame) -> pd.DataFrame:
    """Shape bias of each shape category (model-vs-human's per-class plot), sorted by category."""
    rows = []
    for category, group in frame.groupby("category", sort=True):
        shape, texture, bias = _fractions(group)
        rows.append({"category": category, "shape_bias": bias, "fraction_correct_shape": shape, "fraction_correct_texture": texture})
    return pd.DataFrame(rows, columns=["category", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"])


def class_shape_biases(frame: pd.DataFrame, *, mean_over_subjects: bool = False) -> pd.Series:
    """The per-class shape biases that model-vs-human's Figure 4 boxplot draws (category -> value).

    A model: the shape bias of each shape category's rows. Humans (``mean_over_subjects``):
    each observer's (``subj``) per-category shape bias, then the mean over observers per
    category, as ``plot_shape_bias_boxplot`` does (an observer without a shape or texture
    decision in a category leaves that observer out of its mean).
    """
    if not mean_over_subjects:
        return shape_bias_per_category(frame).set_index("category")["shape_bias"]
    per_subject = {subject: shape_bias_per_category(rows).set_index("category")["shape_bias"]
                   for subject, rows in frame.groupby("subj", sort=True)}
    return pd.DataFrame(per_subject).mean(axis=1).rename("shape_bias").rename_axis("category")


def _shape_bias_of_resamples(is_shape: np.ndarray, is_texture: np.ndarray, axis: int) -> np.ndarray:
    """shape / (shape + texture) of each resample; NaN (0 / 0) for a resample without either decision."""
    shape, texture = is_shape.sum(axis=axis), is_texture.sum(axis=axis)
    return shape / (shape + texture)


def bootstrap_shape_bias(frame: pd.DataFrame, *, samples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the shape bias (``scipy.stats.bootstrap``), resampling images (rows).

    A resample without any shape or texture decision has no shape bias and is left out
    of the percentiles; rows without either decision give no interval (NaN, NaN).
    """
    texture = frame["imagename"].map(texture_category).to_numpy()
    shape_cat = frame["category"].to_numpy()
    response = frame["object_response"].to_numpy()
    conflict = shape_cat != texture
    is_shape = (response == shape_cat) & conflict
    is_texture = (response == texture) & conflict
    if not (is_shape | is_texture).any():
        return np.nan, np.nan
    if len(frame) == 1:  # scipy needs two rows; one row resamples only to itself
        bias = float(is_shape[0])
        return bias, bias
    with warnings.catch_warnings():
        # A resample without decisions has no shape bias (0 / 0, warned about): it makes scipy's
        # percentiles NaN (warned about), so they are taken again without it; none with one: NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((is_shape, is_texture), _shape_bias_of_resamples, n_resamples=samples, paired=True,
                                 confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if np.isnan(low):  # scipy's two percentiles are NaN together
            low, high = np.nanquantile(result.bootstrap_distribution, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)

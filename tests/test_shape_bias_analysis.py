"""The shape-bias analysis on tiny hand-built decision files: row checks, messages, fractions, bootstrap CI.

Every expected number follows from model-vs-human's definition, shape / (shape + texture)
decisions, worked out by hand in the comments.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topkshape.errors import InputDataError
from topkshape.shape_bias import analysis
from topkshape.shape_bias.analysis import (
    bootstrap_shape_bias,
    class_shape_biases,
    raw_csv_problems,
    read_raw_csv,
    shape_bias,
    shape_bias_per_category,
)

HEADER = "subj,session,trial,rt,object_response,category,condition,imagename"
SIXTEEN = "one of the 16 model-vs-human categories"


def write_lines(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def row(response: str, category: str, name: str, i: int = 1) -> str:
    return f"m,1,{i},NaN,{response},{category},NaN,{name}"


def write_rows(path: Path, triples) -> Path:
    return write_lines(path, [row(*t, i) for i, t in enumerate(triples, 1)])


def frame_of(triples) -> pd.DataFrame:
    """(object_response, category, imagename) triples as a decision frame."""
    return pd.DataFrame(list(triples), columns=["object_response", "category", "imagename"])


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(InputDataError) as exc:
        read_raw_csv(path, **kwargs)
    return str(exc.value)


SHAPE = ("cat", "cat", "cat1-bird2.png")
TEXTURE = ("bird", "cat", "cat1-bird2.png")
OTHER = ("dog", "cat", "cat1-bird2.png")
NO_CONFLICT = ("cat", "cat", "cat1-cat2.png")


# --- the row checks and their messages -------------------------------------------------


def test_each_kind_of_bad_row_is_named_with_its_file_line_column_and_reason(tmp_path):
    cases = [
        (("cat", "dog", "cat1-bird2.png"), "category 'dog' differs from the shape 'cat' in the image name 'cat1-bird2.png'"),
        (("cat", "cat", "cat1-parrot2.png"), f"imagename 'cat1-parrot2.png' has texture 'parrot', which is not {SIXTEEN}"),
        (("parrot", "cat", "cat1-bird2.png"), f"object_response 'parrot' is not {SIXTEEN} (or 'na', no response)"),
        (("cat", "parrot", "parrot1-bird2.png"), "category 'parrot' is not one of the 16 model-vs-human categories"),
        (("cat", "cat", "cat1-bird2.gif"),
         "imagename 'cat1-bird2.gif' does not follow model-vs-human's '<shape><n>-<texture><m>.png' as the file's other names do"),
    ]
    for bad, reason in cases:
        path = write_rows(tmp_path / "f.csv", [SHAPE, bad])
        assert error_of(path) == f"{path} line 3: {reason}", bad


def test_a_numeric_looking_response_is_read_and_named_as_the_text_it_is(tmp_path):
    path = write_rows(tmp_path / "f.csv", [("7", "cat", "cat1-bird2.png")])
    assert error_of(path) == f"{path} line 2: object_response '7' is not {SIXTEEN} (or 'na', no response)"


def test_empty_cells_are_named_as_missing_values(tmp_path):
    cases = [
        ("m,1,2,NaN,cat,cat,NaN,", "imagename nan does not follow model-vs-human's"),
        ("m,1,2,NaN,cat,,NaN,cat1-bird2.png", "category nan is not one of the 16 model-vs-human categories"),
        ("m,1,2,NaN,,cat,NaN,cat1-bird2.png", f"object_response nan is not {SIXTEEN} (or 'na', no response)"),
    ]
    for line, reason in cases:
        path = write_lines(tmp_path / "f.csv", [row(*SHAPE), line])
        assert error_of(path).startswith(f"{path} line 3: {reason}"), line


def test_the_naming_scheme_comes_from_the_first_well_formed_name(tmp_path):
    # Row 1 has no name and row 2 a bad one; row 3 fixes the scheme, so rows 1 and 2 are the problems.
    path = write_lines(tmp_path / "f.csv", ["m,1,1,NaN,cat,cat,NaN,", row("cat", "cat", "cat1.png"), row(*SHAPE)])
    problems = raw_csv_problems(pd.read_csv(path, dtype=str), path)
    assert [(p.line, p.column) for p in problems] == [(2, "imagename"), (3, "imagename")]
    assert all("does not follow model-vs-human's" in p.reason for p in problems)


def test_a_file_whose_names_follow_no_scheme_lists_every_row_with_both_schemes(tmp_path):
    frame = frame_of([("cat", "cat", "cat1.png"), ("cat", "cat", "picture.png")])
    problems = raw_csv_problems(frame, "x.csv")
    expected = "follows neither model-vs-human's '<shape><n>-<texture><m>.png' or generated's '<shape>_<i>-<texture>.png'"
    assert [str(p) for p in problems] == [f"x.csv line 2: imagename 'cat1.png' {expected}",
                                          f"x.csv line 3: imagename 'picture.png' {expected}"]
    assert problems[0].path == Path("x.csv")


def test_image_extensions_png_and_jpeg_in_any_case_are_valid():
    names = ["cat1-bird2.PNG", "cat1-bird2.jpg", "cat1-bird2.JPEG", "0001_s5n_s01_0_cat_00_cat1-bird2.png"]
    assert raw_csv_problems(frame_of([("cat", "cat", n) for n in names]), "x.csv") == []


def test_generated_sets_allow_only_textures_and_responses_among_the_files_own_classes():
    good = [("disk", "disk", "disk_00000-square.png"), ("square", "square", "square_00000-disk.png")]
    # 'triangle' is a known shape, but not one this file's classifier was trained on.
    problems = raw_csv_problems(frame_of(good + [("disk", "disk", "disk_00001-triangle.png")]), "g.csv")
    assert [str(p) for p in problems] == [
        "g.csv line 4: imagename 'disk_00001-triangle.png' has texture 'triangle', which is not one of this file's "
        "categories ['disk', 'square']"]
    problems = raw_csv_problems(frame_of(good + [("triangle", "disk", "disk_00001-square.png")]), "g.csv")
    assert [p.column for p in problems] == ["object_response"]
    # A human who gave no answer is valid in both schemes.
    assert raw_csv_problems(frame_of(good + [("na", "disk", "disk_00001-square.png")]), "g.csv") == []


def test_one_bad_row_is_one_message_and_more_are_counted(tmp_path):
    one = write_rows(tmp_path / "one.csv", [SHAPE, ("parrot", "cat", "cat1-bird2.png")])
    assert error_of(one) == f"{one} line 3: object_response 'parrot' is not {SIXTEEN} (or 'na', no response)"
    three = write_rows(tmp_path / "three.csv", [("parrot", "cat", "cat1-bird2.png"), SHAPE] + [("parrot", "cat", "cat1-bird2.png")] * 2)
    assert error_of(three) == (f"{three} line 2: object_response 'parrot' is not {SIXTEEN} (or 'na', no response) "
                               "(and 2 more invalid rows; --skip-invalid drops them)")


def test_line_numbers_count_the_header_and_blank_lines(tmp_path):
    path = write_lines(tmp_path / "f.csv", [row(*SHAPE), "", row("parrot", "cat", "cat1-bird2.png")])
    assert error_of(path).startswith(f"{path} line 4: object_response 'parrot'")


def test_skipping_invalid_rows_logs_how_many_of_how_many_and_drops_exactly_them(tmp_path, caplog):
    path = write_rows(tmp_path / "s.csv", [SHAPE, ("parrot", "cat", "cat1-bird2.png"), TEXTURE, OTHER, ("cat", "dog", "cat1-bird2.png")])
    with caplog.at_level(logging.WARNING, logger="topkshape.shape_bias.analysis"):
        frame = read_raw_csv(path, skip_invalid=True)
    problems = frame.attrs["skipped"]["s.csv"]
    assert [p.line for p in problems] == [3, 5 + 1]
    assert caplog.messages == [f"skipped 2 of 5 rows of {path} that cannot be scored; first: {problems[0]}"]
    assert frame["object_response"].tolist() == ["cat", "bird", "dog"]
    # 1 shape, 1 texture decision among the 3 rows left.
    assert shape_bias(frame) == pytest.approx({"shape_bias": 0.5, "fraction_correct_shape": 1 / 3, "fraction_correct_texture": 1 / 3})


def test_a_file_with_only_invalid_rows_is_an_error_even_when_skipping(tmp_path):
    path = write_rows(tmp_path / "bad.csv", [("parrot", "cat", "cat1-bird2.png")])
    assert error_of(path, skip_invalid=True) == (f"{path}: every row is invalid; first: {path} line 2: object_response 'parrot' "
                                                 f"is not {SIXTEEN} (or 'na', no response)")


# --- reading files -----------------------------------------------------------------------


def test_unreadable_files_are_named_with_the_reason(tmp_path, monkeypatch):
    blank = tmp_path / "blank.csv"
    blank.write_text("\n \n")
    assert error_of(blank) == f"{blank}: empty file; expected a CSV with the header {HEADER}"
    ragged = write_lines(tmp_path / "ragged.csv", [row(*SHAPE), row(*SHAPE) + ",extra,fields"])
    assert error_of(ragged).startswith(f"{ragged}: not a readable CSV (Error tokenizing data.")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"ab\xe9")
    assert error_of(latin) == f"{latin}: not UTF-8 text (byte 0xe9 at offset 2)"
    header_only = write_lines(tmp_path / "h.csv", [])
    assert error_of(header_only) == f"{header_only}: no decision rows (only a header)"
    other = write_lines(tmp_path / "o.csv", ["1,2"], header="imagename,rt")
    assert error_of(other) == (f"{other}: missing column(s) ['object_response', 'category']; expected model-vs-human's raw format "
                               f"{HEADER.split(',')}")

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert error_of(ragged) == f"cannot read raw decision file {ragged}: Permission denied"


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + write_rows(tmp_path / "plain.csv", [SHAPE]).read_bytes())
    assert list(read_raw_csv(path).columns[:1]) == ["subj"]


def test_several_files_are_pooled_with_their_names_and_skipped_rows_per_file(tmp_path):
    a = write_rows(tmp_path / "a.csv", [SHAPE, TEXTURE])
    b = write_rows(tmp_path / "b.csv", [OTHER, ("parrot", "cat", "cat1-bird2.png")])
    frame = read_raw_csv([str(a), b], skip_invalid=True)
    assert frame["file"].tolist() == ["a.csv", "a.csv", "b.csv"]
    assert list(frame.index) == [0, 1, 2]
    assert list(frame.attrs["skipped"]) == ["b.csv"]
    assert read_raw_csv(str(a))["file"].tolist() == ["a.csv", "a.csv"]
    with pytest.raises(InputDataError, match="^no raw decision files given$"):
        read_raw_csv([])


# --- fractions -------------------------------------------------------------------------


def test_no_rows_have_no_fractions_and_no_shape_bias():
    result = shape_bias(frame_of([]))
    assert all(math.isnan(v) for v in result.values())


def test_only_texture_decisions_give_shape_bias_zero():
    # 0 shape, 2 texture decisions of 3 rows.
    assert shape_bias(frame_of([TEXTURE, TEXTURE, OTHER])) == pytest.approx(
        {"shape_bias": 0.0, "fraction_correct_shape": 0.0, "fraction_correct_texture": 2 / 3})


def test_a_response_equal_to_the_texture_of_a_no_conflict_image_counts_for_neither():
    # cat on cat answered 'cat' is no decision; the fractions still divide by all 3 rows.
    assert shape_bias(frame_of([NO_CONFLICT, SHAPE, TEXTURE])) == pytest.approx(
        {"shape_bias": 0.5, "fraction_correct_shape": 1 / 3, "fraction_correct_texture": 1 / 3})


def test_per_category_table_of_no_rows_is_empty_with_its_columns():
    table = shape_bias_per_category(frame_of([]))
    assert table.empty and list(table.columns) == ["category", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]


def test_per_category_table_is_sorted_with_nan_for_a_category_without_decisions():
    frame = frame_of([("dog", "dog", "dog1-cat2.png"), OTHER, ("cat", "bird", "bird1-cat2.png"), ("bird", "bird", "bird1-cat2.png")])
    table = shape_bias_per_category(frame)
    assert list(table.columns) == ["category", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
    assert table["category"].tolist() == ["bird", "cat", "dog"]
    # bird: 1 shape, 1 texture of 2 rows; cat: one 'other' answer; dog: 1 shape of 1 row.
    assert table.iloc[0, 1:].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert math.isnan(table.iloc[1]["shape_bias"]) and table.iloc[1, 2:].tolist() == [0.0, 0.0]
    assert table.iloc[2, 1:].tolist() == [1.0, 1.0, 0.0]


# --- bootstrap CI ------------------------------------------------------------------------


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_bootstrap_ci_of_unanimous_decisions_is_a_single_point(no_warnings):
    # Every resample of all-shape (all-texture) decisions has shape bias 1 (0).
    assert bootstrap_shape_bias(frame_of([SHAPE] * 5 + [OTHER, NO_CONFLICT]), samples=200) == (1.0, 1.0)
    assert bootstrap_shape_bias(frame_of([TEXTURE] * 4), samples=200) == (0.0, 0.0)
    assert bootstrap_shape_bias(frame_of([TEXTURE])) == (0.0, 0.0)
    assert bootstrap_shape_bias(frame_of([SHAPE])) == (1.0, 1.0)


def test_bootstrap_without_shape_or_texture_decisions_has_no_ci(no_warnings):
    for rows in ([OTHER, NO_CONFLICT], [OTHER], []):
        low, high = bootstrap_shape_bias(frame_of(rows), samples=50)
        assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_percentiles_of_one_shape_and_one_texture_image(seed, no_warnings):
    # Resampling 2 rows: shape bias 1 (both the shape row), 1/2 (one of each, either order)
    # or 0, with probability 1/4, 1/2, 1/4. With 4000 resamples each share is within 0.03 of
    # that (4 standard errors), so the 20th and 80th percentiles are 0 and 1 and the 40th
    # and 60th are both 1/2.
    frame = frame_of([SHAPE, TEXTURE])
    assert bootstrap_shape_bias(frame, samples=4000, seed=seed, level=0.6) == (0.0, 1.0)
    assert bootstrap_shape_bias(frame, samples=4000, seed=seed, level=0.2) == (0.5, 0.5)


def test_bootstrap_leaves_out_resamples_without_decisions(no_warnings):
    # One shape row and one 'other' row: a resample holds the shape row (bias 1) or not (no bias).
    frame = frame_of([SHAPE, OTHER])
    assert bootstrap_shape_bias(frame, samples=500) == (1.0, 1.0)
    # One resample only: it lacks the shape row with probability 1/4, and then there is no CI.
    results = {bootstrap_shape_bias(frame, samples=1, seed=seed) for seed in range(40)}
    assert (1.0, 1.0) in results
    assert {r for r in results if r != (1.0, 1.0)} and all(math.isnan(low) and math.isnan(high) for low, high in results - {(1.0, 1.0)})


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_percentiles_are_taken_over_the_resamples_with_decisions(seed, no_warnings):
    # Resampling a shape, a texture and an 'other' row: of the 27 equally likely resamples, 1 has
    # no decision, 7 have bias 0, 3 bias 1/3, 6 bias 1/2, 3 bias 2/3 and 7 bias 1. Over the 26 with
    # a decision the cumulative shares are 0.269, 0.385, 0.615, 0.731, 1; the 10th/90th percentiles
    # are 0 and 1 and the 35th/65th are 1/3 and 2/3 (each 5 standard errors inside its band at 4000 resamples).
    frame = frame_of([SHAPE, TEXTURE, OTHER])
    assert bootstrap_shape_bias(frame, samples=4000, seed=seed, level=0.8) == (0.0, 1.0)
    assert bootstrap_shape_bias(frame, samples=4000, seed=seed, level=0.3) == pytest.approx((1 / 3, 2 / 3))


def test_bootstrap_ci_is_reproducible_by_seed_and_brackets_the_shape_bias(no_warnings):
    # 8 shape, 4 texture and 4 other decisions: shape bias 8 / 12.
    frame = frame_of([SHAPE] * 8 + [TEXTURE] * 4 + [OTHER] * 4)
    low, high = bootstrap_shape_bias(frame, samples=300, seed=5)
    assert (low, high) == bootstrap_shape_bias(frame, samples=300, seed=5)
    assert 0 < low < 8 / 12 < high < 1
    assert {bootstrap_shape_bias(frame, samples=300, seed=s, level=0.5) for s in range(4)} != {bootstrap_shape_bias(frame, samples=300, seed=5, level=0.5)}
    # A narrower level gives a narrower interval inside the wider one.
    narrow = bootstrap_shape_bias(frame, samples=300, seed=5, level=0.5)
    assert low <= narrow[0] < narrow[1] <= high
    # One resample is one value: an interval of width 0.
    one = bootstrap_shape_bias(frame, samples=1, seed=5)
    assert one[0] == one[1]


def test_bootstrap_defaults_are_1000_resamples_seed_0_and_95_percent(no_warnings):
    frame = frame_of([SHAPE] * 8 + [TEXTURE] * 4 + [OTHER] * 4)
    assert bootstrap_shape_bias(frame) == bootstrap_shape_bias(frame, samples=1000, seed=0, level=0.95)


def test_bootstrap_is_the_percentile_interval_not_bca(no_warnings):
    # 2 shape and 18 texture rows: a resample's shape bias is X / 20 with X ~ Binomial(20, 0.1).
    # P(X = 0) = 0.122 > 0.025, so the 2.5th percentile is 0; P(X <= 4) = 0.957 and P(X <= 5) = 0.989
    # bracket 0.975, so the 97.5th is 5 / 20 (each >= 5 standard errors away at 4000 resamples).
    # BCa, scipy's default method, shifts the percentiles for this skew: its upper end is 6 / 20 with these resamples.
    frame = frame_of([SHAPE] * 2 + [TEXTURE] * 18)
    assert math.comb(20, 0) * 0.9**20 > 0.025
    below = sum(math.comb(20, x) * 0.1**x * 0.9 ** (20 - x) for x in range(5))
    assert below < 0.975 < below + math.comb(20, 5) * 0.1**5 * 0.9**15
    assert bootstrap_shape_bias(frame, samples=4000, seed=1) == (0.0, 0.25)


def test_bootstrap_defaults_are_1000_paired_percentile_resamples_at_95_percent(monkeypatch):
    calls = []
    real = analysis.stats.bootstrap

    def spy(data, statistic, **options):
        calls.append(options)
        return real(data, statistic, **options)

    monkeypatch.setattr(analysis.stats, "bootstrap", spy)
    bootstrap_shape_bias(frame_of([SHAPE, TEXTURE, TEXTURE]))
    assert len(calls) == 1
    options = calls[0]
    assert (options["n_resamples"], options["paired"], options["confidence_level"], options["method"]) == (1000, True, 0.95, "percentile")


def test_mean_over_observers_is_a_series_named_shape_bias_indexed_by_category():
    frame = frame_of([SHAPE, TEXTURE, SHAPE]).assign(subj=["a", "a", "b"])
    # Observer a: 1 shape, 1 texture decision on cat -> 1/2; observer b: 1 shape -> 1; mean 3/4.
    for series, expected in ((class_shape_biases(frame, mean_over_subjects=True), 0.75), (class_shape_biases(frame), 2 / 3)):
        assert (series.name, series.index.name) == ("shape_bias", "category")
        assert series.to_dict() == pytest.approx({"cat": expected})

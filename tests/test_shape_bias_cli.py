"""``python -m topkshape.shape_bias``: hand-derived numbers, and one line (no traceback) on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from topkshape.shape_bias.__main__ import main
from conftest import help_text

HEADER = "subj,session,trial,rt,object_response,category,condition,imagename"
# (object_response, category, imagename): cat has one shape, one texture, one other decision and
# one cat-on-cat image (no conflict); dog has two shape decisions and one texture decision.
ROWS = [
    ("cat", "cat", "cat1-bird2.png"),
    ("bird", "cat", "cat1-bird2.png"),
    ("dog", "cat", "cat1-bird2.png"),
    ("cat", "cat", "cat1-cat2.png"),
    ("dog", "dog", "dog1-clock2.png"),
    ("dog", "dog", "dog1-knife3.png"),
    ("clock", "dog", "dog1-clock2.png"),
]


def write_rows(path: Path, rows) -> Path:
    lines = [HEADER] + [f"m,1,{i},NaN,{r},{c},NaN,{n}" for i, (r, c, n) in enumerate(rows, 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.splitlines()


def test_writes_hand_derived_shape_bias_overall_and_per_class(tmp_path, capsys):
    first = write_rows(tmp_path / "a.csv", ROWS[:4])
    second = write_rows(tmp_path / "b.csv", ROWS)
    out, per_class = tmp_path / "out" / "sb.csv", tmp_path / "pc.csv"
    code, err = run_cli(capsys, "--raw-csv", first, second, "--out", out, "--per-class", per_class)
    assert code == 0 and err == []
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "shape_bias", "fraction_correct_shape", "fraction_correct_texture"]
    # a.csv: 1 shape, 1 texture of 4 rows (the cat-on-cat row counts only in #rows).
    assert table.iloc[0].tolist() == ["a.csv", 0.5, 0.25, 0.25]
    # b.csv: 3 shape, 2 texture of 7 rows -> 3/7, 2/7, 3/5.
    assert table.iloc[1, 1:].tolist() == pytest.approx([0.6, 3 / 7, 2 / 7])
    classes = pd.read_csv(per_class)
    assert list(classes.columns) == ["file", "category", "shape_bias"]
    got = {(f, c): v for f, c, v in classes.itertuples(index=False)}
    assert got == pytest.approx({("a.csv", "cat"): 0.5, ("b.csv", "cat"): 0.5, ("b.csv", "dog"): 2 / 3})


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file"),
        (HEADER.encode() + b"\n", "no decision rows (only a header)"),
        (HEADER.encode() + b"\nm,1,1,NaN,caf\xe9,cat,NaN,cat1-bird2.png\n", "not UTF-8 text (byte 0xe9 at offset"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary data (NUL bytes), not a CSV text file"),
        (b"a,b\n1,2\n", "missing column(s) ['object_response', 'category', 'imagename']"),
    ],
    ids=["empty", "header-only", "non-utf8", "binary", "other-csv"],
)
def test_unreadable_file_is_one_line_naming_it(tmp_path, capsys, content, message):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    code, err = run_cli(capsys, "--raw-csv", path, "--out", tmp_path / "o.csv")
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"topkshape: {path}") and message in err[0]
    assert not (tmp_path / "o.csv").exists()


def test_out_naming_a_folder_is_one_line_before_any_work(tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    code, err = run_cli(capsys, "--raw-csv", write_rows(tmp_path / "a.csv", ROWS), "--out", folder)
    assert code == 1 and err == [f"topkshape: --out {folder} is a folder; give a file path such as {folder / 'shape_bias.csv'}"]


def test_missing_input_file_and_input_folder_are_named(tmp_path, capsys):
    code, err = run_cli(capsys, "--raw-csv", tmp_path / "nope.csv", "--out", tmp_path / "o.csv")
    assert code == 1 and err == [f"topkshape: raw decision file not found: {tmp_path / 'nope.csv'}"]
    code, err = run_cli(capsys, "--raw-csv", tmp_path, "--out", tmp_path / "o.csv")
    assert code == 1 and err == [f"topkshape: raw decision file is a folder: {tmp_path}"]


def test_unknown_category_fails_naming_file_line_and_value(tmp_path, capsys):
    # The case: a category outside the 16 once gave a confident, wrong number.
    path = write_rows(tmp_path / "p.csv", ROWS + [("parrot", "parrot", "parrot1-cat2.png")])
    code, err = run_cli(capsys, "--raw-csv", path, "--out", tmp_path / "o.csv")
    assert code == 1
    assert err == [f"topkshape: {path} line 9: category 'parrot' is not one of the 16 model-vs-human categories"]
    assert not (tmp_path / "o.csv").exists()


def test_image_names_without_a_texture_part_fail(tmp_path, capsys):
    # Once scored as shape bias 1.0: every row looked like a no-conflict image.
    path = write_rows(tmp_path / "n.csv", [("cat", "cat", "cat1.png"), ("bird", "cat", "cat2.png")])
    code, err = run_cli(capsys, "--raw-csv", path, "--out", tmp_path / "o.csv")
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"topkshape: {path} line 2: imagename 'cat1.png' follows neither") and "1 more invalid rows" in err[0]


def test_skip_invalid_scores_the_valid_rows_and_warns_with_the_count(tmp_path, capsys):
    path = write_rows(tmp_path / "p.csv", [("parrot", "parrot", "parrot1-cat2.png")] + ROWS[:4] + [("cat", "cat", "cat1.png")])
    out = tmp_path / "o.csv"
    code, err = run_cli(capsys, "--raw-csv", path, "--out", out, "--skip-invalid")
    assert code == 0 and len(err) == 1
    assert err[0].startswith(f"topkshape: WARNING: skipped 2 invalid row(s) of {path} (4 scored); first: {path} line 2: category 'parrot'")
    assert pd.read_csv(out).iloc[0].tolist() == ["p.csv", 0.5, 0.25, 0.25]


def test_bad_inputs_give_no_traceback_in_a_real_process(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    run = subprocess.run([sys.executable, "-m", "topkshape.shape_bias", "--raw-csv", str(empty), "--out", str(tmp_path / "o.csv")],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"topkshape: {empty}: empty file; expected a CSV with the header {HEADER}"]


def test_output_under_a_file_or_a_per_class_folder_is_one_line_before_any_work(tmp_path, capsys):
    raw = write_rows(tmp_path / "a.csv", ROWS)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    code, err = run_cli(capsys, "--raw-csv", raw, "--out", blocker / "sb.csv")
    assert code == 1 and err == [f"topkshape: --out {blocker / 'sb.csv'}: {blocker} is a file, not a folder"]
    code, err = run_cli(capsys, "--raw-csv", raw, "--out", tmp_path / "o.csv", "--per-class", tmp_path)
    assert code == 1 and err == [f"topkshape: --per-class {tmp_path} is a folder; give a file path such as {tmp_path / 'shape_bias.csv'}"]
    assert not (tmp_path / "o.csv").exists()


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    out = blocker / "deeper" / "sb.csv"
    code, err = run_cli(capsys, "--raw-csv", write_rows(tmp_path / "a.csv", ROWS), "--out", out)
    assert code == 1 and err == [f"topkshape: --out {out}: cannot write (Not a directory)"]
    code, err = run_cli(capsys, "--raw-csv", tmp_path / "a.csv", "--out", tmp_path / "sb.csv", "--per-class", out)
    assert code == 1 and err == [f"topkshape: --per-class {out}: cannot write (Not a directory)"]


def test_without_per_class_only_the_overall_table_is_written(tmp_path, capsys):
    out = tmp_path / "sb.csv"
    code, err = run_cli(capsys, "--raw-csv", write_rows(tmp_path / "a.csv", ROWS[:4]), "--out", out)
    assert code == 0 and err == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "sb.csv"]
    assert pd.read_csv(out).iloc[0].tolist() == ["a.csv", 0.5, 0.25, 0.25]


def test_debug_mode_raises_the_error_with_its_traceback(tmp_path, capsys, monkeypatch):
    from topkshape.errors import InputDataError

    monkeypatch.setenv("TOPKSHAPE_DEBUG", "1")
    with pytest.raises(InputDataError, match="raw decision file not found"):
        main(["--raw-csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")])


def test_skipped_rows_are_warned_on_stderr_once_the_librarys_log_record_going_to_no_last_resort_handler(tmp_path, capsys, monkeypatch):
    import logging

    # Without a handler of its own, the library's warning would reach logging's last-resort
    # handler and print on stderr a second time (in a real process, where no pytest handler listens).
    library = logging.getLogger("topkshape.shape_bias.analysis")
    monkeypatch.setattr(library, "handlers", [])
    path = write_rows(tmp_path / "p.csv", ROWS[:4] + [("parrot", "cat", "cat1-bird2.png")])
    code, err = run_cli(capsys, "--raw-csv", path, "--out", tmp_path / "o.csv", "--skip-invalid")
    assert code == 0 and len(err) == 1 and err[0].startswith(f"topkshape: WARNING: skipped 1 invalid row(s) of {path} (4 scored); first: ")
    assert [type(h) for h in library.handlers] == [logging.NullHandler]


def test_help_documents_every_option(capsys):
    text = help_text(main, capsys)
    assert text == (
        "usage: python -m topkshape.shape_bias [-h] --raw-csv RAW_CSV [RAW_CSV ...] --out OUT [--per-class PER_CLASS] [--skip-invalid] "
        "Shape bias of raw cue-conflict decision files (model-vs-human format). "
        "options: -h, --help show this help message and exit "
        "--raw-csv RAW_CSV [RAW_CSV ...] model-vs-human raw decision CSVs "
        "--out OUT one row per file "
        "--per-class PER_CLASS one row per file and shape category "
        "--skip-invalid drop rows with an unknown category, response or image name (counted, with a warning) instead of failing"
    )

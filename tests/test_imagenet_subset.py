"""Behaviour of the ImageNet class-subset extraction on tiny fake ILSVRC2012 trees."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from topkshape.data.imagenet import choose_images, extract_subset, find_imagenet_images, read_val_labels
from topkshape.errors import ConfigError, InputDataError

WNIDS = ["n01530575", "n01440764", "n02102040"]  # deliberately unsorted
SHORT = 16


def jpeg_bytes(size=(40, 30), seed=0) -> bytes:
    """A small noisy JPEG: noise keeps the entropy-coded data large, so cutting it truncates pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_train(root: Path, per_class: int = 4) -> None:
    for c, wnid in enumerate(WNIDS):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (40, 30) if i % 2 == 0 else (30, 40)  # landscape and portrait
            (folder / f"{wnid}_{i}.JPEG").write_bytes(jpeg_bytes(size, seed=100 * c + i))


def make_flat_val(root: Path, per_class: int = 2, csv_in_val: bool = False) -> dict[str, str]:
    val = root / "val"
    val.mkdir(parents=True)
    labels, rows, n = {}, [], 0
    for i in range(per_class):
        for wnid in WNIDS:
            n += 1
            stem = f"ILSVRC2012_val_{n:08d}"
            (val / f"{stem}.JPEG").write_bytes(jpeg_bytes(seed=1000 + n))
            labels[stem] = wnid
            rows.append([stem, f"{wnid} 1 2 20 25 {wnid} 3 4 10 12"])
    solution = (val if csv_in_val else root) / "LOC_val_solution.csv"
    with open(solution, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerows(rows)
    return labels


def make_folder_val(root: Path, per_class: int = 2) -> None:
    for c, wnid in enumerate(WNIDS):
        folder = root / "val" / wnid
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"ILSVRC2012_val_{10 * c + i:08d}.JPEG").write_bytes(jpeg_bytes(seed=2000 + 10 * c + i))


@pytest.fixture
def flat_root(tmp_path) -> Path:
    root = tmp_path / "ILSVRC2012"
    make_train(root)
    make_flat_val(root)
    return root


@pytest.fixture
def folder_root(tmp_path) -> Path:
    root = tmp_path / "imagenet_folders"
    make_train(root)
    make_folder_val(root)
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def extract(root: Path, out: Path, **kwargs):
    kwargs.setdefault("resize_short_side", SHORT)
    kwargs.setdefault("progress", False)
    return extract_subset(root, WNIDS, out, **kwargs)


def assert_absent(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".tmp-{out.name}")]


def one_line_with(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# --- finding images ---------------------------------------------------------------------------


@pytest.mark.parametrize("csv_in_val", [False, True])
def test_flat_val_is_labelled_by_the_first_wnid_of_loc_solution(tmp_path, csv_in_val):
    root = tmp_path / "r"
    make_train(root)
    labels = make_flat_val(root, csv_in_val=csv_in_val)
    found = find_imagenet_images(root, WNIDS)
    assert set(found) == {(s, w) for s in ("train", "val") for w in WNIDS}
    for wnid in WNIDS:
        assert len(found[("train", wnid)]) == 4
        val = found[("val", wnid)]
        assert len(val) == 2 and val == sorted(val)
        assert all(labels[p.stem] == wnid for p in val)


def test_val_class_folders_are_found(folder_root):
    found = find_imagenet_images(folder_root, WNIDS, splits=("val",))
    assert set(found) == {("val", w) for w in WNIDS}
    assert all(p.parent.name == w for (_, w), paths in found.items() for p in paths)


def test_image_suffixes_are_case_insensitive_and_dotfiles_ignored(flat_root):
    folder = flat_root / "train" / WNIDS[0]
    (folder / "extra.jpg").write_bytes(jpeg_bytes(seed=5))
    Image.new("RGBA", (30, 40)).save(folder / "alpha.PNG")
    (folder / "._apple_fork.JPEG").write_bytes(b"\0" * 10)
    (folder / "notes.txt").write_text("not an image")
    names = {p.name for p in find_imagenet_images(flat_root, WNIDS, ("train",))[("train", WNIDS[0])]}
    assert {"extra.jpg", "alpha.PNG"} <= names
    assert "._apple_fork.JPEG" not in names and "notes.txt" not in names


def test_hidden_folder_in_a_flat_val_keeps_the_flat_layout(flat_root):
    # A hidden folder (Jupyter's checkpoints) once made val/ look like val/<wnid>/ folders.
    hidden = flat_root / "val" / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "ILSVRC2012_val_00000001-checkpoint.JPEG").write_bytes(jpeg_bytes(seed=9))
    found = find_imagenet_images(flat_root, WNIDS, splits=("val",))
    assert all(len(found[("val", w)]) == 2 for w in WNIDS)
    assert not any(".ipynb_checkpoints" in str(p) for paths in found.values() for p in paths)


def test_hidden_entries_in_val_class_folders_are_ignored(folder_root):
    (folder_root / "val" / ".DS_Store").write_bytes(b"\0" * 8)
    (folder_root / "val" / ".cache").mkdir()
    (folder_root / "val" / WNIDS[0] / ".hidden.JPEG").write_bytes(jpeg_bytes(seed=3))
    found = find_imagenet_images(folder_root, WNIDS, splits=("val",))
    assert [len(found[("val", w)]) for w in WNIDS] == [2, 2, 2]


def test_read_val_labels_rejects_a_csv_without_the_kaggle_header(tmp_path):
    bad = tmp_path / "LOC_val_solution.csv"
    bad.write_text("id,label\nx,n01440764\n")
    with pytest.raises(InputDataError) as exc:
        read_val_labels(bad)
    one_line_with(exc, bad)


# --- the written subset -----------------------------------------------------------------------


@pytest.mark.parametrize("root_fixture", ["flat_root", "folder_root"])
def test_subset_holds_rgb_jpegs_resized_to_the_short_side(request, tmp_path, root_fixture):
    root = request.getfixturevalue(root_fixture)
    Image.new("L", (50, 20), 128).save(root / "train" / WNIDS[1] / "gray.png")  # grayscale becomes RGB
    out = tmp_path / "subset"
    summary = extract(root, out)
    assert summary["counts"] == {"train": 13, "val": 6}
    assert summary["skipped"] == 0 and summary["out_dir"] == str(out.absolute())
    assert sorted(p.name for p in out.iterdir()) == ["classes.csv", "manifest.csv", "train", "val"]
    for split in ("train", "val"):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(WNIDS)
    files = sorted(out.glob("*/*/*"))
    assert len(files) == 19 and all(p.suffix == ".JPEG" for p in files)
    for path in files:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert min(image.size) == SHORT
    with Image.open(out / "train" / WNIDS[1] / "gray.JPEG") as image:
        assert image.size == (40, SHORT)  # 50x20 keeps its aspect ratio


def test_manifest_rows_and_checksums_match_the_written_files(flat_root, tmp_path):
    out = tmp_path / "subset"
    extract(flat_root, out)
    rows = read_csv(out / "manifest.csv")
    assert list(rows[0]) == ["path", "source", "wnid", "split", "sha1", "status", "error"]
    assert len(rows) == 18
    written = {p.relative_to(out).as_posix() for p in out.glob("*/*/*.JPEG")}
    assert {row["path"] for row in rows} == written
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert row["path"].startswith(f"{row['split']}/{row['wnid']}/")
        assert hashlib.sha1((out / row["path"]).read_bytes()).hexdigest() == row["sha1"]
        assert Path(row["source"]).is_file() and Path(row["source"]).stem == Path(row["path"]).stem


def test_classes_csv_follows_imagefolder_class_order(flat_root, tmp_path):
    out = tmp_path / "subset"
    extract(flat_root, out)
    rows = read_csv(out / "classes.csv")
    # ImageFolder indexes classes by the sorted folder names.
    folders = sorted(entry.name for entry in os.scandir(out / "train") if entry.is_dir())
    assert [(int(r["index"]), r["name"]) for r in rows] == list(enumerate(folders))
    assert folders == sorted(WNIDS)


def picked_sources(out: Path) -> set[str]:
    return {row["source"] for row in read_csv(out / "manifest.csv")}


def test_max_per_class_pick_is_fixed_by_the_seed(tmp_path):
    root = tmp_path / "r"
    make_train(root, per_class=10)
    make_flat_val(root, per_class=5)
    a = extract(root, tmp_path / "a", max_per_class=3, seed=0)
    b = extract(root, tmp_path / "b", max_per_class=3, seed=0)
    c = extract(root, tmp_path / "c", max_per_class=3, seed=1)
    assert a["counts"] == {"train": 9, "val": 9}
    assert picked_sources(tmp_path / "a") == picked_sources(tmp_path / "b")
    assert picked_sources(tmp_path / "a") != picked_sources(tmp_path / "c")
    assert c["counts"] == a["counts"]
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()


def test_choose_images_is_a_sorted_subset_and_keeps_all_when_too_few():
    paths = [Path(f"img_{i:02d}.JPEG") for i in range(20)]
    picked = choose_images(paths[::-1], 5, seed=3, key="train/n0")
    assert len(picked) == 5 and picked == sorted(picked) and set(picked) <= set(paths)
    assert choose_images(paths, 5, seed=3, key="train/n0") == picked
    assert choose_images(paths, 50, seed=3, key="train/n0") == paths
    assert choose_images(paths, None, seed=3, key="train/n0") == paths


def test_threads_give_the_same_subset_as_one_thread(flat_root, tmp_path):
    extract(flat_root, tmp_path / "one", threads=1)
    extract(flat_root, tmp_path / "four", threads=4)
    one = read_csv(tmp_path / "one" / "manifest.csv")
    four = read_csv(tmp_path / "four" / "manifest.csv")
    assert [(r["path"], r["sha1"]) for r in one] == [(r["path"], r["sha1"]) for r in four]


# --- corrupt images ---------------------------------------------------------------------------


def add_bad_images(root: Path) -> tuple[Path, Path]:
    folder = root / "train" / WNIDS[0]
    corrupt = folder / "corrupt.JPEG"
    corrupt.write_bytes(b"this is not a jpeg " * 40)
    whole = jpeg_bytes((64, 48), seed=7)
    truncated = folder / "truncated.JPEG"
    truncated.write_bytes(whole[: len(whole) // 2])
    with Image.open(truncated) as image:  # the header survives: only a full decode finds the cut
        assert image.size == (64, 48)
    return corrupt, truncated


def test_corrupt_and_truncated_images_are_skipped_and_counted(flat_root, tmp_path, caplog):
    corrupt, truncated = add_bad_images(flat_root)
    out = tmp_path / "subset"
    summary = extract(flat_root, out, on_corrupt="skip")
    assert summary["skipped"] == 2 and summary["counts"]["train"] == 12
    bad = {row["source"]: row for row in read_csv(out / "manifest.csv") if row["status"] != "ok"}
    assert set(bad) == {str(corrupt), str(truncated)}
    for row in bad.values():
        assert row["status"] == "corrupt" and row["path"] == "" and row["sha1"] == "" and row["error"]
    assert "truncated" in bad[str(truncated)]["error"]
    assert not (out / "train" / WNIDS[0] / "corrupt.JPEG").exists()
    assert str(corrupt) in caplog.text and str(truncated) in caplog.text


def test_skipped_corrupt_images_are_summarised_on_the_console_in_one_line(flat_root, tmp_path, capsys):
    add_bad_images(flat_root)
    out = tmp_path / "subset"
    extract(flat_root, out, on_corrupt="skip")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("topkshape:")]
    assert lines == [f"topkshape: skipped 2 corrupt image(s) for subset; listed with status 'corrupt' in {out / 'manifest.csv'}"]


def test_a_clean_subset_prints_no_corrupt_summary(flat_root, tmp_path, capsys):
    extract(flat_root, tmp_path / "subset", on_corrupt="skip")
    assert "corrupt" not in capsys.readouterr().err


@pytest.mark.parametrize("which", [0, 1], ids=["random-bytes", "truncated"])
def test_stop_mode_names_the_corrupt_image_and_leaves_no_out_dir(flat_root, tmp_path, which):
    bad = add_bad_images(flat_root)[which]
    (bad.parent / ("truncated.JPEG" if which == 0 else "corrupt.JPEG")).unlink()
    out = tmp_path / "subset"
    with pytest.raises(InputDataError, match="corrupt image") as exc:
        extract(flat_root, out, on_corrupt="stop", threads=2)
    one_line_with(exc, bad)
    assert_absent(out)


def test_truncated_images_fail_even_if_pil_was_told_to_load_them(flat_root, tmp_path, monkeypatch):
    _, truncated = add_bad_images(flat_root)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    summary = extract(flat_root, tmp_path / "subset")
    assert summary["skipped"] == 2
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def test_a_class_with_only_corrupt_images_fails_and_leaves_no_out_dir(flat_root, tmp_path):
    folder = flat_root / "train" / WNIDS[2]
    for path in folder.iterdir():
        path.write_bytes(b"garbage")
    out = tmp_path / "subset"
    with pytest.raises(InputDataError, match=WNIDS[2]) as exc:
        extract(flat_root, out)
    one_line_with(exc, folder)
    assert_absent(out)


# --- bad input and config ---------------------------------------------------------------------


def test_missing_root_is_named(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(InputDataError, match="ImageNet root not found") as exc:
        extract(root, tmp_path / "subset")
    one_line_with(exc, root)
    assert_absent(tmp_path / "subset")


def test_missing_train_folder_is_named(tmp_path):
    root = tmp_path / "r"
    make_folder_val(root)
    with pytest.raises(InputDataError) as exc:
        find_imagenet_images(root, WNIDS)
    one_line_with(exc, root / "train")


def test_missing_wnid_is_named_with_its_split_folder(flat_root, tmp_path):
    with pytest.raises(InputDataError, match="WNID n09999999 not found") as exc:
        extract_subset(flat_root, [*WNIDS, "n09999999"], tmp_path / "subset", progress=False)
    one_line_with(exc, flat_root / "train")
    assert_absent(tmp_path / "subset")


def test_missing_wnid_hints_at_an_unextracted_tar(flat_root):
    (flat_root / "train" / "n09999999.tar").write_bytes(b"")
    with pytest.raises(InputDataError, match="extract it first"):
        find_imagenet_images(flat_root, ["n09999999"], ("train",))


def test_empty_class_folder_is_named(flat_root, tmp_path):
    folder = flat_root / "train" / WNIDS[1]
    for path in folder.iterdir():
        path.unlink()
    with pytest.raises(InputDataError, match="no images for WNID") as exc:
        extract(flat_root, tmp_path / "subset")
    one_line_with(exc, folder)


def test_val_in_neither_layout_is_named(tmp_path):
    root = tmp_path / "r"
    make_train(root)
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(jpeg_bytes())  # flat, but no labels
    with pytest.raises(InputDataError, match="neither layout") as exc:
        find_imagenet_images(root, WNIDS)
    one_line_with(exc, root / "val")


def test_unknown_on_corrupt_is_a_config_error(flat_root, tmp_path):
    with pytest.raises(ConfigError, match="on_corrupt"):
        extract(flat_root, tmp_path / "subset", on_corrupt="ignore")
    assert_absent(tmp_path / "subset")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_per_class": 0}, {"threads": 0}, {"jpeg_quality": 101}, {"resize_short_side": 0}, {"splits": "train"}],
)
def test_bad_options_are_config_errors(flat_root, tmp_path, kwargs):
    with pytest.raises(ConfigError):
        extract(flat_root, tmp_path / "subset", **kwargs)


def test_out_dir_may_not_contain_the_imagenet_root(flat_root):
    with pytest.raises(ConfigError, match="would replace"):
        extract(flat_root, flat_root.parent)
    assert (flat_root / "train").is_dir()


def test_resize_short_side_null_keeps_every_original_file_byte_for_byte(folder_root, tmp_path):
    """The paper code trains on ImageNet's own JPEGs: the paper config extracts them unchanged."""
    out = tmp_path / "subset"
    extract(folder_root, out, resize_short_side=None)
    rows = read_csv(out / "manifest.csv")
    assert rows and all(row["status"] == "ok" for row in rows)
    for row in rows:
        written = out / row["path"]
        source = Path(row["source"]) if Path(row["source"]).is_absolute() else folder_root / row["source"]
        assert written.read_bytes() == source.read_bytes()
        assert row["sha1"] == hashlib.sha1(source.read_bytes()).hexdigest()


def test_resize_short_side_null_still_decodes_every_image_and_skips_a_corrupt_one(folder_root, tmp_path):
    bad = folder_root / "train" / WNIDS[0] / "broken.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "subset"
    extract(folder_root, out, resize_short_side=None)
    rows = {Path(row["path"]).name: row for row in read_csv(out / "manifest.csv")}
    assert not (out / "train" / WNIDS[0] / "broken.JPEG").exists()
    assert any(row["status"] != "ok" and "broken" in row["source"] for row in rows.values())

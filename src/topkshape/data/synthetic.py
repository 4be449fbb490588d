"""Write the embedded default's datasets in torchvision ImageFolder layout.

Mirrors what the ImageNet extraction writes for the paper config (``train/<class>``,
``val/<class>``, ``manifest.csv``, ``classes.csv``), so downstream rules do not care
which produced a subset. The cue-conflict set stands where the paper has its AdaIN-
stylized validation set and records each image's texture class in ``styles.csv``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from topkshape.atomic import atomic_directory
from topkshape.data.shapes import SHAPES, TEXTURES, RenderSpec, render
from topkshape.errors import ConfigError

HOME_TEXTURE: dict[str, str] = dict(zip(SHAPES, TEXTURES))
"""Each shape class's own texture by default: the i-th texture for the i-th shape."""


def resolve_home_textures(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every class's home texture: the built-in pairing with ``overrides`` (``data.synthetic.home_textures``)
    applied, so two subsets can wear the same well-separated textures."""
    for cls, texture in (overrides or {}).items():
        if cls not in SHAPES:
            raise ConfigError(f"home_textures: unknown shape class {cls!r}; choose from {sorted(SHAPES)}")
        if texture not in TEXTURES:
            raise ConfigError(f"home_textures: unknown texture {texture!r} for {cls!r}; choose from {sorted(TEXTURES)}")
    return {**HOME_TEXTURE, **(overrides or {})}


def home_texture_problem(classes: Sequence[str], homes: Mapping[str, str], *, permuted: bool) -> str | None:
    """Why these classes' home textures cannot name them (one line), or None.

    Two classes of a subset in one texture are told apart by nothing; with ``permuted`` colours
    a texture is only its pattern, so two textures with one pattern (stripes, dense_stripes) collide too.
    """
    seen: dict[object, str] = {}
    for cls in classes:
        texture = homes[cls]
        key = TEXTURES[texture][0] if permuted else texture
        if key in seen:
            what = "the pattern of" if permuted and homes[seen[key]] != texture else "the texture of"
            return (f"{cls!r} wears {texture!r}, {what} {seen[key]!r} ({homes[seen[key]]!r}): a subset's home "
                    f"textures must differ{' in pattern with permuted colours' if permuted else ''}")
        seen[key] = cls
    return None


def _checked_homes(classes: Sequence[str], overrides: Mapping[str, str] | None, *, permuted: bool) -> dict[str, str]:
    homes = resolve_home_textures(overrides)
    problem = home_texture_problem(classes, homes, permuted=permuted)
    if problem:
        raise ConfigError(f"home_textures: {problem}")
    return homes


TEXTURE_COLOURS = ("class", "permuted")


def _image_seed(seed: int, *parts: object) -> int:
    """A per-image seed from stable hashes, so images do not depend on render order."""
    words = [seed] + [zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def check_classes(classes: Sequence[str]) -> None:
    unknown = [c for c in classes if c not in SHAPES]
    if unknown:
        raise ConfigError(f"unknown shape class {unknown[0]!r}; choose from {sorted(SHAPES)}")
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError(f"a subset needs at least two distinct classes, got {list(classes)}")


def _write_images(jobs: list[tuple[Path, RenderSpec]], threads: int, desc: str, progress: bool) -> list[str]:
    """Render and save each (path, spec); return the SHA-1 of each written file."""

    def work(job: tuple[Path, RenderSpec]) -> str:
        path, spec = job
        path.parent.mkdir(parents=True, exist_ok=True)
        render(spec).save(path, compress_level=1)
        return hashlib.sha1(path.read_bytes()).hexdigest()

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(tqdm(pool.map(work, jobs), total=len(jobs), desc=desc, disable=None if progress else True, leave=False))


def training_texture(cls: str, classes: Sequence[str], correlation: float, rng: np.random.Generator,
                     homes: Mapping[str, str] = HOME_TEXTURE) -> str:
    """The home texture with probability ``correlation``, else another class's texture."""
    if rng.uniform() < correlation:
        return homes[cls]
    others = [homes[c] for c in classes if c != cls]
    return others[int(rng.integers(len(others)))]


SHAPE_ONLY, TEXTURE_ONLY = "val_shape", "val_texture"
"""The diagnostic validation splits: which cue a network has learned, one cue at a time."""


def neutral_textures(classes: Sequence[str], homes: Mapping[str, str] = HOME_TEXTURE) -> list[str]:
    """Textures that tell none of ``classes`` apart: no class's home texture, nor its pattern in other colours."""
    home_patterns = {TEXTURES[homes[c]][0] for c in classes}
    return [name for name, (pattern, _, _) in TEXTURES.items() if pattern not in home_patterns]


def _diagnostic_cues(split: str, cls: str, i: int, neutral: Sequence[str], homes: Mapping[str, str]) -> tuple[str | None, str]:
    """(shape, texture) of a diagnostic image: the class's shape in a neutral texture (shape-only),
    or its home texture with no shape (texture-only)."""
    if split == SHAPE_ONLY:
        return cls, neutral[i % len(neutral)]
    return None, homes[cls]


def write_shape_subset(
    out_dir: str | Path,
    classes: Sequence[str],
    *,
    image_size: int = 64,
    train_per_class: int = 200,
    val_per_class: int = 40,
    diagnostic_per_class: int = 0,
    texture_correlation: float = 0.9,
    texture_colours: str = "class",
    home_textures: Mapping[str, str] | None = None,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> dict[str, int]:
    """A classification subset: ``train/`` and ``val/`` with texture correlated to class.

    With ``diagnostic_per_class`` > 0 also ``val_shape/`` (each class's shape in textures that belong
    to no class) and ``val_texture/`` (each class's home texture filling the frame, no shape).
    ``texture_colours``: ``class`` = each texture in its own two colours; ``permuted`` = their RGB
    channels permuted per image, so a texture is its pattern (colour alone no longer names the class).
    ``home_textures``: class -> texture overrides of the built-in pairing (:func:`resolve_home_textures`).
    """
    check_classes(classes)
    if not 0.0 <= texture_correlation <= 1.0:
        raise ConfigError(f"texture_correlation must be in [0, 1], got {texture_correlation!r}")
    if texture_colours not in TEXTURE_COLOURS:
        raise ConfigError(f"texture_colours must be one of {list(TEXTURE_COLOURS)}, got {texture_colours!r}")
    permute = texture_colours == "permuted"
    homes = _checked_homes(classes, home_textures, permuted=permute)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        rows, jobs = [], []
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for cls in classes:
                for i in range(count):
                    image_seed = _image_seed(seed, split, cls, i)
                    texture = training_texture(cls, classes, texture_correlation, np.random.default_rng(image_seed + 1), homes)
                    rel = f"{split}/{cls}/{cls}_{i:05d}.png"
                    jobs.append((tmp / rel, RenderSpec(cls, texture, image_size, image_seed, permute)))
                    rows.append({"path": rel, "label": cls, "split": split, "texture": texture})
        neutral = neutral_textures(classes, homes)
        if diagnostic_per_class > 0 and not neutral:
            raise ConfigError(f"diagnostic_per_class: no texture is left that belongs to none of {list(classes)} "
                              "for the shape-only images; set it to 0 or use fewer classes")
        for split in (SHAPE_ONLY, TEXTURE_ONLY) if diagnostic_per_class > 0 else ():
            for cls in classes:
                for i in range(diagnostic_per_class):
                    shape, texture = _diagnostic_cues(split, cls, i, neutral, homes)
                    rel = f"{split}/{cls}/{cls}_{i:05d}.png"
                    jobs.append((tmp / rel, RenderSpec(shape, texture, image_size, _image_seed(seed, split, cls, i), permute)))
                    rows.append({"path": rel, "label": cls, "split": split, "texture": texture})
        sha1s = _write_images(jobs, threads, f"render {out_dir.name}", progress)
        manifest = pd.DataFrame(rows).assign(sha1=sha1s, status="ok")
        manifest.to_csv(tmp / "manifest.csv", index=False)
        _write_classes(tmp, classes)
    counts = {"train": train_per_class * len(classes), "val": val_per_class * len(classes)}
    if diagnostic_per_class > 0:
        counts.update({SHAPE_ONLY: diagnostic_per_class * len(classes), TEXTURE_ONLY: diagnostic_per_class * len(classes)})
    return counts


def write_cue_conflict_set(
    out_dir: str | Path,
    classes: Sequence[str],
    *,
    image_size: int = 64,
    per_class: int = 40,
    home_textures: Mapping[str, str] | None = None,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Each class's shape in the other classes' home textures, balanced over textures.

    Labelled by shape (ImageFolder class = shape); ``styles.csv`` adds the texture and
    the class whose home texture it is, so texture decisions can be scored too.
    """
    check_classes(classes)
    homes = _checked_homes(classes, home_textures, permuted=False)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        rows, jobs = [], []
        for cls in classes:
            others = [c for c in classes if c != cls]
            for i in range(per_class):
                texture_class = others[i % len(others)]
                rel = f"{cls}/{cls}_{i:05d}-{texture_class}.png"
                spec = RenderSpec(cls, homes[texture_class], image_size, _image_seed(seed, "conflict", cls, i))
                jobs.append((tmp / rel, spec))
                rows.append({"image": rel, "label": cls, "style": homes[texture_class], "texture_label": texture_class})
        table, sha1s = _render_with_styles(tmp, jobs, rows, out_dir.name, threads, progress)
        _write_classes(tmp, classes)
        # What identifies this evaluation set for later jobs (the resume fingerprint reads manifest.json).
        manifest = {
            "method": "texture_swap",
            "settings": {"classes": list(classes), "image_size": image_size, "per_class": per_class, "seed": seed,
                         **({"home_textures": {c: homes[c] for c in classes}} if home_textures else {})},
            "files": {row["image"]: sha1 for row, sha1 in zip(rows, sha1s)},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return table


def write_sixteen_category_stimuli(
    out_dir: str | Path,
    categories: Sequence[str],
    *,
    per_category: int = 2,
    image_size: int = 224,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Cue-conflict-named stimuli for ImageNet classifiers, generated: ``<c>/<c><n>-<t><n>.png``.

    The embedded default has no photographs, so a model of the atlas (an ImageNet classifier) is run
    on generated shapes named by model-vs-human's 16 categories: category i is drawn as the i-th toy
    shape, in the texture pattern of another category. This runs the atlas's code path end to end;
    an ImageNet classifier's decisions on such images carry no shape or texture information, and
    the atlas's chance test says so.
    """
    shapes, textures = sorted(SHAPES), sorted(TEXTURES)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        rows, jobs = [], []
        for index, category in enumerate(categories):
            for n in range(1, per_category + 1):
                other = (index + n) % len(categories)
                rel = f"{category}/{category}{n}-{categories[other]}{n}.png"
                spec = RenderSpec(shapes[index % len(shapes)], textures[other % len(textures)], image_size,
                                  _image_seed(seed, "sixteen", category, n))
                jobs.append((tmp / rel, spec))
                rows.append({"image": rel, "category": category, "texture_category": categories[other]})
        table, _ = _render_with_styles(tmp, jobs, rows, out_dir.name, threads, progress)
    return table


def write_fewshot_set(
    out_dir: str | Path,
    cls: str,
    *,
    count: int = 100,
    image_size: int = 64,
    home_textures: Mapping[str, str] | None = None,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> int:
    """``count`` training images of one class in its home texture (few-shot synthesis data)."""
    check_classes([cls, next(c for c in SHAPES if c != cls)])
    texture = resolve_home_textures(home_textures)[cls]
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        jobs, rows = [], []
        for i in range(count):
            rel = f"train/{cls}/{cls}_{i:05d}.png"
            jobs.append((tmp / rel, RenderSpec(cls, texture, image_size, _image_seed(seed, "fewshot", cls, i))))
            rows.append({"path": rel, "label": cls, "split": "train", "texture": texture})
        sha1s = _write_images(jobs, threads, f"render {out_dir.name}", progress)
        pd.DataFrame(rows).assign(sha1=sha1s, status="ok").to_csv(tmp / "manifest.csv", index=False)
        _write_classes(tmp, [cls])
    return count


def _render_with_styles(folder: Path, jobs: list[tuple[Path, RenderSpec]], rows: list[dict], name: str, threads: int,
                        progress: bool) -> tuple[pd.DataFrame, list[str]]:
    """Render a stimulus set's images and write its ``styles.csv`` (one row per image, each image's cues):
    the table and the SHA-1 of each image."""
    sha1s = _write_images(jobs, threads, f"render {name}", progress)
    table = pd.DataFrame(rows)
    table.to_csv(folder / "styles.csv", index=False)
    return table, sha1s


def _write_classes(folder: Path, classes: Sequence[str]) -> None:
    """``classes.csv`` in torchvision ImageFolder index order (sorted names)."""
    names = sorted(classes)
    pd.DataFrame({"index": range(len(names)), "name": names}).to_csv(folder / "classes.csv", index=False)

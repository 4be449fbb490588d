"""The data the paper's own repository publishes, fetched file by file and checked against pinned hashes.

Li et al. publish, at commit ``2ab45dee`` of github.com/Crazy-Jack/nips2023_shape_vs_texture, the three
AdaIN style images of their stylized IN-S1/IN-S2 sets, the four few-shot sets of Table 2 and the 1,280
cue-conflict stimuli. ``data/paper_data_sha256.json`` (shipped in the package) pins the SHA-256 of every
one of those files, so the paper config uses exactly those bytes whether they come from GitHub, a mirror
or a local folder: each file is fetched from ``<base_url>/<repository path>``, checked, and a part's
folder appears only when every file of it matched.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from topkshape.atomic import atomic_directory
from topkshape.download import as_url, download_file
from topkshape.errors import ConfigError

logger = logging.getLogger(__name__)

MANIFEST = "paper_data_sha256.json"
REPOSITORY = "Crazy-Jack/nips2023_shape_vs_texture"
COMMIT = "2ab45deea83d5baa301e07efe2ba653a849cf852"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"

PART_FOLDERS: dict[str, str] = {
    "styles": "cnns-train-top-k/style_target",
    "fewshot-jeep": "few-shot-img-syn/data/jeep",
    "fewshot-fish": "few-shot-img-syn/data/fish",
    "fewshot-railway": "few-shot-img-syn/data/railway",
    "fewshot-table": "few-shot-img-syn/data/table",
    "cue-conflict": "cnns-inference-top-k/model-vs-human_topK/datasets/cue-conflict",
}
"""Each part we fetch (one output folder) and the repository folder it mirrors."""

FEWSHOT_SETS = ("jeep", "fish", "railway", "table")
"""The few-shot sets of Table 2 as the repository names them ("railway" is the paper's "train": 105 COCO images)."""

FOLDER_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PaperFile:
    repo_path: str  # path in the paper's repository at COMMIT
    rel_path: str  # path inside the part's output folder
    sha256: str


@lru_cache(maxsize=1)
def load_manifest() -> dict[str, Any]:
    """The shipped manifest: ``{"repository", "commit", "files": {repository path: sha256}}``."""
    return json.loads(resources.files("topkshape.data").joinpath(MANIFEST).read_text())


def fewshot_part(paper_set: str) -> str:
    """The part holding one of the paper's few-shot sets (``jeep``, ``fish``, ``railway``, ``table``)."""
    if paper_set not in FEWSHOT_SETS:
        raise ConfigError(f"{paper_set!r} is not one of the paper's few-shot sets {list(FEWSHOT_SETS)}")
    return f"fewshot-{paper_set}"


def part_files(part: str) -> list[PaperFile]:
    """The pinned files of ``part``, sorted by repository path."""
    if part not in PART_FOLDERS:
        raise ConfigError(f"unknown paper data part {part!r}; choose from {sorted(PART_FOLDERS)}")
    prefix = PART_FOLDERS[part] + "/"
    files = [
        PaperFile(path, path[len(prefix):], sha)
        for path, sha in load_manifest()["files"].items()
        if path.startswith(prefix)
    ]
    return sorted(files, key=lambda f: f.repo_path)


def file_url(base_url: str, repo_path: str) -> str:
    """``<base_url>/<repository path>``, the path percent-encoded; a plain folder becomes a file:// URL."""
    return f"{as_url(base_url).rstrip('/')}/{urllib.parse.quote(repo_path)}"


def _safe_destination(root: Path, rel_path: str) -> Path:
    """Refuse manifest paths that would leave the output folder (the manifest is data, not trusted code)."""
    rel = PurePosixPath(rel_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ConfigError(f"paper data manifest holds an unsafe path {rel_path!r}")
    return root.joinpath(*rel.parts)


def _run_all(work: Callable[[PaperFile], None], files: list[PaperFile], threads: int) -> None:
    """Run ``work`` on every file; at the first failure cancel what has not started and re-raise it.

    Waiting for the running downloads before re-raising matters: the atomic folder is removed
    afterwards, and a download still writing would recreate it.
    """
    pool = ThreadPoolExecutor(max(1, threads))
    try:
        futures = [pool.submit(work, item) for item in files]
        for future in as_completed(futures):
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def fetch_paper_part(part: str, out_dir: str | Path, base_url: str = DEFAULT_BASE_URL, *, threads: int = 8,
                     timeout: float = 60) -> Path:
    """Fetch every file of ``part`` into ``out_dir`` and check each against the pinned SHA-256.

    ``out_dir`` appears only when all files arrived and matched; a missing or altered file
    raises one line naming it (InputDataError / ChecksumError) and leaves nothing behind.
    ``out_dir/manifest.json`` records the source commit and each file's hash (what the
    resume fingerprint of later jobs reads); it does not record ``base_url``, since any
    mirror delivers the same bytes.
    """
    files = part_files(part)
    manifest = load_manifest()
    with atomic_directory(out_dir) as tmp:
        def fetch(item: PaperFile) -> None:
            download_file(file_url(base_url, item.repo_path), _safe_destination(tmp, item.rel_path), item.sha256,
                          timeout=timeout, progress=False)

        _run_all(fetch, files, threads)
        record = {
            "repository": manifest["repository"],
            "commit": manifest["commit"],
            "folder": PART_FOLDERS[part],
            "files": {f.rel_path: f.sha256 for f in files},
        }
        (tmp / FOLDER_MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
    logger.info("paper data %s: %d files from %s verified into %s", part, len(files), base_url, out_dir)
    return Path(out_dir)


def fetch_paper_data(out_root: str | Path, base_url: str = DEFAULT_BASE_URL, parts: Iterable[str] | None = None,
                     *, threads: int = 8) -> list[Path]:
    """Fetch several parts (default: all) into ``out_root/<part>``; each is complete or absent."""
    chosen = list(PART_FOLDERS) if parts is None else list(parts)
    return [fetch_paper_part(part, Path(out_root) / part, base_url, threads=threads) for part in chosen]

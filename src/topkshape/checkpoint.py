"""Checkpoints: written atomically and durably, loaded without running code, resumed only when provably the same run.

Every file the project reads back with torch goes through :func:`load_torch_file`, which
uses PyTorch's weights-only unpickler: a crafted or shared ``model.pt`` cannot execute code.
What needs pickling is stored as tensors, lists, dicts, numbers and strings instead
(see :func:`rng_states`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError

logger = logging.getLogger(__name__)

#: Set to 1 to load files from an older version of the project that the weights-only loader
#: refuses. Only for files you wrote yourself: an unsafe load can run arbitrary code.
TRUST_ENV = "TOPKSHAPE_TRUST_UNSAFE_FILES"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync it, then rename over it.

    The fsync makes the rename durable: a node lost right after the rename leaves either
    the old checkpoint or the complete new one, never a truncated file under the final name.
    """
    with atomic_file(path) as tmp:
        torch.save(state, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())


def load_torch_file(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch file with the weights-only unpickler; one-line errors for bad files.

    ``what`` names the file for the user ("training checkpoint", "trained classifier", ...).
    A file that needs arbitrary unpickling (a file of an older version, or a malicious one)
    is refused unless ``TOPKSHAPE_TRUST_UNSAFE_FILES=1`` is set.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} not found: {path}")
    trusted = os.environ.get(TRUST_ENV) == "1"
    if trusted:
        logger.warning("loading %s %s with the unsafe unpickler (%s=1)", what, path, TRUST_ENV)
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputDataError(
            f"{what} {path} cannot be loaded safely (weights-only: {reason[:160]}); regenerate it, "
            f"or, only if you wrote it yourself, set {TRUST_ENV}=1"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        raise InputDataError(f"{what} {path} is unreadable ({type(error).__name__}: {str(error).strip()[:160]})") from None


def load_state_strict(module: nn.Module, state: Mapping[str, Any], what: str, target: str = "this architecture") -> None:
    """``module.load_state_dict(state, strict=True)``; a misfit is one line naming ``what``, ``target`` and
    the first thing that does not fit."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise InputDataError(f"{what} does not fit {target} ({' '.join(first[:2])[:200]})") from None


def fingerprint(value: Any) -> str:
    """A stable SHA-256 of a JSON-able value (settings, class lists, manifest hashes)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def dataset_identity(*folders: str | os.PathLike) -> dict[str, Any]:
    """What identifies a run's input data: each folder's manifest hash, or its file list's.

    Uses ``manifest.json``/``manifest.csv`` when a folder has one (our data rules write them),
    else the sorted relative paths and sizes of its files: cheap, and changes whenever the
    class list, the counts or any file's size changes.
    """
    identity: dict[str, Any] = {}
    for folder in folders:
        root = Path(folder)
        digest = hashlib.sha256()
        manifests = [root / name for name in ("manifest.json", "manifest.csv") if (root / name).is_file()]
        if manifests:
            for manifest in manifests:
                digest.update(manifest.name.encode())
                digest.update(manifest.read_bytes())
        else:
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                digest.update(f"{file.relative_to(root).as_posix()}\0{file.stat().st_size}\n".encode())
        identity[root.name] = digest.hexdigest()
    return identity


def resumable_state(path: Path, expected: dict[str, Any], map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to this very run and is unfinished, else None.

    ``expected`` is the run's identity (settings and data). A checkpoint for another identity,
    a finished one, or an unreadable one is not resumed: the reason is logged in one line, an
    unreadable file is moved aside as ``<name>.corrupt-<time>``, and the caller starts over.
    """
    if not path.is_file():
        logger.info("starting from scratch (no checkpoint at %s)", path)
        return None
    try:
        state = load_torch_file(path, "training checkpoint", map_location=map_location)
        if not isinstance(state, dict) or "identity" not in state:
            raise InputDataError(f"training checkpoint {path} has no run identity (written by an older version)")
    except InputDataError as error:
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        logger.warning("%s: moved aside to %s, starting over", error, aside.name)
        return None
    if state.get("finished"):
        logger.info("checkpoint %s is of a finished run: starting over", path)
        return None
    theirs, ours = state["identity"], expected
    if theirs != ours:
        differs = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        logger.info("checkpoint %s is for another run (%s changed): starting over", path, ", ".join(differs))
        return None
    return state


def finish_run(path: Path) -> None:
    """Remove a finished run's resumable checkpoint, so a forced rerun trains from scratch."""
    Path(path).unlink(missing_ok=True)


def rng_states() -> dict[str, Any]:
    """Every random generator a training step can touch, as tensors, lists and ints.

    These forms pass the weights-only loader; Python's and numpy's native states do not.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    npy = states["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

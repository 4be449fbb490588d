"""The shape-bias atlas: the Top-K sweep for any model the config names, at any placement.

Each entry of ``shape_bias.atlas`` is one model: a name (its label in files and tables), the
model (``torchvision:<name>``, ``timm:<name>``, ``python:<module>:<function>``), its weights
(``random`` with a seed, a state-dict file with an optional SHA-256 pin, a torchvision weights
name or a timm tag) and a placement spec (:mod:`topkshape.models.placement`). One job per
entry loads the model and decodes the stimuli once, then runs every Top-K setting of the sweep
(the same fractions and modes as the paper's models), and records what it ran: the resolved
positions with their Top-K kind, the weights' SHA-256 and the preprocessing.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from topkshape.atomic import atomic_file
from topkshape.errors import ConfigError
from topkshape.models.placement import probe, resolve_placement
from topkshape.models.zoo import STIMULUS_SIZE, load_model, parse_model_name
from topkshape.shape_bias.evaluate import load_stimuli
from topkshape.shape_bias.run import sweep_settings

logger = logging.getLogger(__name__)
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class AtlasEntry:
    """One model of the atlas, as the config gives it."""

    name: str
    model: str
    weights: str = "random"
    seed: int = 0
    placement: str = "stages"
    weights_sha256: str | None = None


def atlas_entries(entries: Sequence[Mapping[str, Any]]) -> list[AtlasEntry]:
    """The config's entries, checked: unique names, parseable model names, a placement."""
    parsed, seen = [], set()
    for index, raw in enumerate(entries):
        where = f"shape_bias.atlas[{index}]"
        unknown = set(raw) - set(AtlasEntry.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        entry = AtlasEntry(**{k: v for k, v in raw.items() if v is not None or k == "weights_sha256"})
        if not NAME_PATTERN.fullmatch(entry.name):
            raise ConfigError(f"{where}.name {entry.name!r}: letters, digits and _ only, starting with a letter")
        if entry.name in seen:
            raise ConfigError(f"{where}.name {entry.name!r} is used twice")
        seen.add(entry.name)
        parse_model_name(entry.model)
        if not str(entry.placement).strip():
            raise ConfigError(f"{where}.placement is empty")
        parsed.append(entry)
    return parsed


def load_entry(entry: AtlasEntry, weights_file: str | Path | None = None):
    """The entry's model (its weights, preprocessing and record) and its resolved Top-K positions.

    ``weights_file``: where the workflow downloaded the entry's named torchvision weights (read from
    that file; its name's transforms still give the preprocessing).
    """
    if weights_file is not None:
        loaded = load_model(entry.model, str(weights_file), metadata=entry.weights)
    else:
        loaded = load_model(entry.model, entry.weights, seed=entry.seed, sha256=entry.weights_sha256)
    candidates = probe(loaded.model, loaded.preprocessing.input_size, loaded.prefix_tokens)
    return loaded, resolve_placement(loaded.model, entry.placement, candidates, arch=loaded.name.arch)


def run_atlas_entry(
    entry: AtlasEntry,
    tags: Sequence[str],
    images: str | Path,
    outputs: Sequence[str | Path],
    *,
    record_output: str | Path,
    ties_output: str | Path | None = None,
    batch_size: int = 32,
    ties: str | None = None,
    tie_seed: int = 0,
    threads: int = 1,
    device: str | torch.device | None = None,
    images_per_class: int | None = None,
    weights_file: str | Path | None = None,
) -> dict[str, Any]:
    """Every setting of ``tags`` for ``entry``; writes its raw CSVs, its tie counts and its record.

    ``weights_file``: where the workflow downloaded the entry's named torchvision weights (read
    from that file; its name's transforms still give the preprocessing).
    """
    if len(tags) != len(outputs):
        raise ValueError(f"{len(tags)} tags but {len(outputs)} output files")
    torch.set_num_threads(threads)
    start = time.perf_counter()
    loaded, positions = load_entry(entry, weights_file)
    stimuli = load_stimuli(images, STIMULUS_SIZE, threads=threads, per_class=images_per_class)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    plain, stimuli = loaded.model.to(dev).eval(), stimuli.to(dev)
    logger.info("%s (%s, weights %s): Top-K at %d positions (%s); %d stimuli at %d px fed as %s; loading took %.1f s",
                entry.name, loaded.name, loaded.weights, len(positions), ", ".join(f"{p.name} [{p.kind}]" for p in positions),
                len(stimuli), STIMULUS_SIZE, loaded.preprocessing.source, time.perf_counter() - start)
    sweep_settings(plain, positions, stimuli, entry.name, tags, outputs, batch_size=batch_size, ties=ties, tie_seed=tie_seed,
                   device=dev, ties_output=ties_output, preprocess=loaded.preprocessing)
    record = {
        "name": entry.name,
        **loaded.record(),
        "seed": entry.seed,
        "placement": entry.placement,
        "positions": [{"module": p.name, "kind": p.kind, "output": list(p.shape[1:]) if p.shape else None} for p in positions],
        "stimuli": len(stimuli),
        "entry": asdict(entry),
    }
    with atomic_file(record_output) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n")
    return record

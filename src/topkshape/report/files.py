"""Writing an aggregated table in every format the tables stage publishes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topkshape.atomic import atomic_file


def write_table_files(table: pd.DataFrame, keys: Sequence[str], markdown: str, latex: str, out: dict[str, Any]) -> None:
    """``csv``, ``md``, ``tex`` and ``json`` (DVC metrics keyed ``<key>/<key>/.../<metric>``: mean, std)."""
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_file(out["md"]) as tmp:
        tmp.write_text(markdown)
    with atomic_file(out["tex"]) as tmp:
        tmp.write_text(latex)
    metrics = {
        "/".join(str(row[k]) for k in (*keys, "metric")): {
            "mean": round(row["mean"], 4),
            "std": None if np.isnan(row["std"]) else round(row["std"], 4),
        }
        for row in table.to_dict("records")
    }
    with atomic_file(Path(out["json"])) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))


def stamp_provenance(json_path: str | Path, record: dict[str, Any]) -> None:
    """Add ``provenance`` (config values, git commit, packages, device) to a table's json.

    The json stays a DVC metrics file: the record sits under one key beside the metrics.
    """
    path = Path(json_path)
    data = json.loads(path.read_text())
    data["provenance"] = record
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))

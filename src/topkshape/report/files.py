"""Writing an aggregated table in every format the tables stage publishes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topkshape.atomic import atomic_file


def write_table_files(
    table: pd.DataFrame, keys: Sequence[str], markdown: str, latex: str, out: dict[str, Any],
    *, provenance: dict[str, Any] | None = None,
) -> None:
    """``csv``, ``md``, ``tex`` and ``json`` (DVC metrics keyed ``<key>/<key>/.../<metric>``: mean, std).

    ``provenance`` (config values, git commit, packages, device) goes into the json under its
    own key beside the metrics, so a reader can audit the table without the logs.
    """
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
    if provenance is not None:
        metrics["provenance"] = provenance
    with atomic_file(Path(out["json"])) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True, default=str))


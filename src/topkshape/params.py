"""Settings dataclasses built from a workflow job's params, in one way for every trainer."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def settings_from_params(cls: type[T], params: dict[str, Any], **job_values: Any) -> T:
    """``cls`` from a config section's params: keys that are not fields are ignored (a section also
    holds workflow values such as ``threads`` or ``seeds``); ``job_values`` (seed, variant, ...) win."""
    names = {field.name for field in dataclasses.fields(cls)}
    values = {key: value for key, value in params.items() if key in names}
    values.update(job_values)
    return cls(**values)

"""Checks of the command line that Snakemake itself lets through, run when the workflow is planned.

Snakemake silently ignores a ``--set-resources``/``--set-threads`` entry (or a profile's
``set-resources:`` key) that names no rule, so a typo gives a 50-epoch training job the
30-minute default limit. An empty ``slurm_partition`` or ``slurm_account`` reaches ``sbatch``
as ``-p ''``/``-A ''`` and fails every job at submission. Both stop ``snakemake -n`` instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

SLURM_NAMES = ("slurm_partition", "slurm_account")


def _closest(name: str, rules: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, sorted(rules), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _raw(value: Any) -> Any:
    """A Snakemake Resource's value as written on the command line or in the profile."""
    return getattr(value, "raw", value)


def resource_problems(
    rules: Iterable[str],
    set_resources: Mapping[str, Mapping[str, Any]],
    set_threads: Mapping[str, Any],
    default_resources: Iterable[str] = (),
) -> Iterator[str]:
    """One line per entry that names no rule, and per empty SLURM partition or account.

    ``default_resources``: the ``name=value`` strings of ``--default-resources``.
    """
    names = set(rules)
    for option, entries in (("set-resources", set_resources), ("set-threads", set_threads)):
        for rule in entries:
            if rule not in names:
                yield f"--{option} (or the profile's {option}:) names no rule of this workflow: '{rule}'{_closest(rule, names)}"
    for rule, resources in set_resources.items():
        for key in SLURM_NAMES:
            if key in resources and str(_raw(resources[key]) or "").strip() in ("", "None", "''", '""'):
                yield f"--set-resources {rule}:{key} is empty: name the {key[6:]} (sinfo / sacctmgr show assoc) or leave the key out"
    for entry in default_resources:
        key, _, value = str(entry).partition("=")
        if key.strip() in SLURM_NAMES and value.strip() in ("", "None", "''", '""'):
            yield f"--default-resources {key.strip()} is empty: name the {key.strip()[6:]} (sinfo / sacctmgr show assoc) or leave the key out"


def workflow_resource_problems(workflow: Any) -> Iterator[str]:
    """:func:`resource_problems` for a parsed Snakemake workflow (Snakefile: ``workflow``)."""
    settings = workflow.resource_settings
    defaults = getattr(settings.default_resources, "args", None) or []
    yield from resource_problems((rule.name for rule in workflow.rules), settings.overwrite_resources,
                                 settings.overwrite_threads, defaults)

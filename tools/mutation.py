"""Mutation testing of the core modules with mutmut, and the mutation score per module.

``make mutation`` runs this. mutmut plants one small bug at a time (a flipped comparison, a
changed constant, a swapped argument) in each function of the modules under test and runs the
tests that cover that function; a mutant is *killed* when a test fails. A surviving mutant is a
bug the suite would not notice, unless it is *equivalent* (the program behaves the same), which
``tools/mutation_equivalent.txt`` lists with the reason. The score per module is

    killed / (mutants - equivalent - not run)

with crashes counted as killed, timeouts shown apart and not scored, and mutants no test reaches as
survivors. Every run verifies the equivalence list for the modules it ran: a listed mutant must
still exist and must survive, otherwise the run fails naming it.

Each module group of ``[tool.topkshape.mutation.groups]`` in pyproject.toml (modules and the
test files written to kill their mutants) runs in a scratch copy of its own
(``build/mutation/<group>``: src, tests, config and a pyproject whose ``[tool.mutmut]`` names
that group's modules and tests), so the work tree is never mutated. Per-group test files keep
the run affordable: mutmut reruns every test that covers a mutated function, and a slow
end-to-end test covering everything would run for each mutant. Parts can be run alone::

    python tools/mutation.py --groups table1 ops
    python tools/mutation.py --modules src/topkshape/report/table1.py --tests tests/test_table1.py
    python tools/mutation.py --report-only          # the scores of the last run of every group
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
KILLED = {1, 3, 37}  # a test failed, pytest errored, or the type checker refused it
CRASHED = {255, -11, -6}  # the tests crashed (SIGSEGV; SIGABRT: glibc aborts on a corrupted heap): the mutant was noticed
TIMED_OUT = {36, -24, 24, 152, -9}  # mutmut's timeout, SIGXCPU, SIGKILL: no test failed, so neither killed nor survived
DETECTED = CRASHED
UNDETECTED = {0, 5, 33}  # survived, or no test reaches it
NOT_RUN = {None, 2, 34}  # not checked, interrupted, skipped


def mutation_groups() -> dict[str, dict[str, list[str]]]:
    """Group name -> {"modules": [...], "tests": [...]}, from pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["topkshape"]["mutation"]["groups"]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


# What the groups' tests read besides the code: the SLURM profile, the workflow, the README and docs.
PROJECT_FOLDERS = ("config", "profiles", "rules", "workflow_scripts", "docs")
PROJECT_FILES = ("README.md", "Snakefile", "config.yaml", "Makefile")


def prepare_workdir(workdir: Path, modules: list[str], tests: list[str]) -> None:
    """A fresh scratch copy with a pyproject that names only ``modules`` and ``tests``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    for name in ("src", "tests", *PROJECT_FOLDERS):
        shutil.copytree(ROOT / name, workdir / name, ignore=ignore)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, workdir / name)
    # mutmut runs the tests in workdir/mutants/, so a test's ``parents[2] / "shared"`` is workdir/shared:
    # the data beside the checkout, linked, so that the tests needing it run instead of skipping.
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (workdir / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # mutmut copies into mutants/ only src/, tests/ and its also_copy list.
    also_copy = [*project["tool"]["mutmut"].get("also_copy", []), *(f"{name}/" for name in PROJECT_FOLDERS), *PROJECT_FILES]
    config = {**project["tool"]["mutmut"], "also_copy": list(dict.fromkeys(also_copy)), "only_mutate": modules,
              "pytest_add_cli_args_test_selection": tests}
    lines = ["[tool.pytest.ini_options]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in project["tool"]["pytest"]["ini_options"].items()]
    lines += ["", "[tool.mutmut]"] + [f"{key} = {_toml_value(value)}" for key, value in config.items()]
    (workdir / "pyproject.toml").write_text("\n".join(lines) + "\n")


def read_equivalent(path: Path = EQUIVALENT) -> dict[str, str]:
    """Mutant name -> reason, from ``name  # reason`` lines (a reason is required)."""
    equivalent = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, reason = line.partition("#")
            if not reason.strip():
                raise SystemExit(f"{path}:{number}: an equivalent mutant needs a reason after '#'")
            equivalent[name.strip()] = reason.strip()
    return equivalent


def results(workdir: Path) -> dict[str, dict[str, int | None]]:
    """Module path (``src/...py``) -> mutant name -> mutmut's exit code, from its .meta files."""
    found = {}
    mutants = workdir / "mutants"
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix().removesuffix(".meta")
        found[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def _module_of(mutant: str) -> str:
    """``topkshape.ops.x__run_in_threads__mutmut_12`` -> ``topkshape.ops``."""
    return mutant.rsplit(".x_", 1)[0] if ".x_" in mutant else mutant.rsplit(".", 1)[0]


def equivalence_problems(found: dict[str, dict[str, int | None]], equivalent: dict[str, str]) -> list[str]:
    """Listed equivalents that no longer exist in a module that ran, or that a test now kills.

    An entry is checked only when its module ran: a list entry must name a mutant mutmut still
    makes, and a mutant some test kills, crashes or times out is no equivalent (its reason is stale).
    """
    ran = {_module_of(name) for codes in found.values() for name in codes}
    codes = {name: code for module_codes in found.values() for name, code in module_codes.items()}
    problems = []
    for name in sorted(equivalent):
        if _module_of(name) not in ran:
            continue
        if name not in codes:
            problems.append(f"{name}: listed as equivalent, but mutmut no longer makes this mutant")
        elif codes[name] in KILLED or codes[name] in CRASHED or codes[name] in TIMED_OUT:
            problems.append(f"{name}: listed as equivalent, but the tests notice it (exit code {codes[name]})")
    return problems


def score_table(found: dict[str, dict[str, int | None]], equivalent: dict[str, str]) -> list[dict]:
    """Per module: killed (failed or crashed tests), survived, timed out (shown apart, not scored),
    equivalent, not run; score = killed / (killed + survived)."""
    rows = []
    for module, codes in found.items():
        count = Counter()
        survivors = []
        for name, code in codes.items():
            if name in equivalent and code in UNDETECTED:
                count["equivalent"] += 1
            elif code in KILLED or code in CRASHED:
                count["killed"] += 1
            elif code in TIMED_OUT:
                count["timed out"] += 1
            elif code in NOT_RUN:
                count["not run"] += 1
            else:  # survived, no tests, suspicious
                count["survived"] += 1
                survivors.append(name)
        judged = count["killed"] + count["survived"]
        rows.append({"module": module, "mutants": len(codes), **count,
                     "score": 100 * count["killed"] / judged if judged else None, "survivors": survivors})
    return rows


def print_report(rows: list[dict], fail_under: float, show_survivors: bool) -> bool:
    print(f"{'module':45s} {'mutants':>7s} {'killed':>6s} {'survived':>8s} {'timeout':>7s} {'equiv.':>6s} {'not run':>7s} {'score':>6s}")
    ok = True
    for row in rows:
        score = row["score"]
        text = "  –  " if score is None else f"{score:5.1f}%"
        print(f"{row['module']:45s} {row['mutants']:7d} {row.get('killed', 0):6d} {row.get('survived', 0):8d} "
              f"{row.get('timed out', 0):7d} {row.get('equivalent', 0):6d} {row.get('not run', 0):7d} {text:>6s}")
        if score is not None and score < fail_under:
            ok = False
    if show_survivors:
        for row in rows:
            for name in row["survivors"]:
                print(f"survived: {name}   (see: cd build/mutation/<group> && mutmut show {name})")
    if not ok:
        print(f"some module scores below {fail_under}%: kill the survivors with tests, or list true equivalents in {EQUIVALENT.relative_to(ROOT)}")
    return ok


RUN_RECORD = "run.json"


def run_mutmut(workdir: Path, modules: list[str], tests: list[str], max_children: int, timeout: float | None) -> None:
    """Run mutmut in a fresh scratch copy, then record what ran where (``run.json``: commit, machine,
    date, versions, seconds), so the scores table can name each group's own run."""
    facts = run_facts()  # the commit whose source is copied now
    started = time.monotonic()
    # CPU time of mutmut and every process it waited for: the work done, whatever else shared the machine.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    prepare_workdir(workdir, modules, tests)
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(max_children)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # Its own session, so that a timeout stops mutmut's workers too.
    process = subprocess.Popen(command, cwd=workdir, env=env, start_new_session=True)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(f"mutmut stopped after {timeout:.0f} s in {workdir}; the scores below cover what it ran")
    finished = run_facts()["date"]
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    (workdir / RUN_RECORD).write_text(json.dumps({**facts, "date": finished, "seconds": round(time.monotonic() - started),
                                                  "cpu_seconds": round(cpu), "max_children": max_children,
                                                  "mutmut_exit": process.returncode,
                                                  "modules": modules}, indent=1) + "\n")


def recorded_runs(workroot: Path, groups: dict[str, dict[str, list[str]]]) -> dict[str, tuple[dict, dict[str, dict[str, int | None]]]]:
    """Group -> (its run record, its modules' results), for every group whose last run left both in
    ``workroot/<group>``: the scores table covers every group run so far, not only this invocation's."""
    runs = {}
    for name, group in groups.items():
        record = workroot / name / RUN_RECORD
        if record.is_file():
            found = {m: codes for m, codes in results(workroot / name).items()
                     if any(fnmatch.fnmatch(m, pattern) for pattern in group["modules"])}
            if found:
                runs[name] = (json.loads(record.read_text()), found)
    return runs


SCORES = ROOT / "docs" / "generated" / "mutation_scores.md"


def run_facts() -> dict[str, str]:
    """What a scores table must name: the commit, the machine, the date, Python and mutmut."""
    import datetime
    import platform

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    try:
        from importlib.metadata import version

        mutmut = version("mutmut")
    except Exception:  # mutmut is installed by `make mutation` only
        mutmut = "not installed"
    return {"commit": commit + (" (with uncommitted changes)" if dirty else ""), "machine": f"{cpu}, {os.cpu_count()} cores",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "mutmut": mutmut}


def write_scores(runs: dict[str, tuple[dict, list[dict]]], problems: list[str], groups: list[str], facts: dict[str, str],
                 path: Path = SCORES) -> None:
    """The scores table the docs include: per group, the commit, machine, date and time of its own last
    run, then every module's score; groups with no recorded run are named as such."""
    lines = [f"Written by `make mutation` (tools/mutation.py) on {facts['date']} from the runs recorded in build/mutation/. "
             "Score = killed / (killed + survived); timeouts are shown, not scored; equivalents are listed in "
             "tools/mutation_equivalent.txt and verified against every recorded run.", "",
             "| group | commit | finished | machine | Python, mutmut | wall time | CPU time |", "|---|---|---|---|---|---|---|"]
    for name in groups:
        if name in runs:
            run = runs[name][0]
            workers = f"{run['max_children']} worker" + ("s" if run["max_children"] != 1 else "")
            cpu = f"{run['cpu_seconds'] // 60} min" if "cpu_seconds" in run else "–"
            failed = f" **mutmut exited {run['mutmut_exit']}: no score**" if run.get("mutmut_exit") else ""
            lines.append(f"| {name} | {run['commit']} | {run['date']}{failed} | {run['machine']} | {run['python']}, {run['mutmut']} | "
                         f"{run['seconds'] // 60} min {run['seconds'] % 60} s ({workers}) | {cpu} |")
        else:
            lines.append(f"| {name} | – | no recorded run: no score | | | | |")
    lines += ["", "| group | module | mutants | killed | survived | timed out | equivalent | not run | score |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name in groups:
        for row in runs.get(name, ({}, []))[1]:
            score = "–" if row["score"] is None else f"{row['score']:.1f}%"
            lines.append(f"| {name} | {row['module']} | {row['mutants']} | {row.get('killed', 0)} | {row.get('survived', 0)} | "
                         f"{row.get('timed out', 0)} | {row.get('equivalent', 0)} | {row.get('not run', 0)} | {score} |")
    verdict = "no recorded run to verify it against." if not runs else "verified, no problem." if not problems else f"{len(problems)} problem(s):"
    lines += ["", "Equivalence list: " + verdict]
    lines += [f"- {problem}" for problem in problems]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    groups = mutation_groups()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", choices=sorted(groups), default=None, help="module groups to run (default: all)")
    parser.add_argument("--modules", nargs="+", default=None, help="instead of groups: source files (globs) to mutate")
    parser.add_argument("--tests", nargs="+", default=None, help="with --modules: the test files to run")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation", help="scratch root: a folder per group, custom/ for --modules")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=None, help="seconds for each mutmut run")
    parser.add_argument("--fail-under", type=float, default=85.0)
    parser.add_argument("--report-only", action="store_true", help="print the scores of the last run")
    parser.add_argument("--survivors", action="store_true", help="list every surviving mutant")
    parser.add_argument("--scores-out", type=Path, default=None, help=f"write the scores table with commit, machine and date (make mutation: {SCORES.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if (args.modules is None) != (args.tests is None):
        parser.error("--modules and --tests go together")

    if args.modules is not None:
        runs = {None: (args.workdir / "custom", args.modules, args.tests)}
    else:
        chosen = args.groups or sorted(groups)
        runs = {name: (args.workdir / name, groups[name]["modules"], groups[name]["tests"]) for name in chosen}
    found: dict[str, dict[str, int | None]] = {}
    for name, (workdir, modules, tests) in runs.items():
        if not args.report_only:
            run_mutmut(workdir, modules, tests, args.max_children, args.timeout)
        found.update({m: codes for m, codes in results(workdir).items() if any(fnmatch.fnmatch(m, pattern) for pattern in modules)})
    equivalent = read_equivalent()
    if args.scores_out is not None:
        # Every recorded group run, not only this invocation's: one group run alone keeps the others' rows.
        recorded = recorded_runs(args.workdir, groups)
        every = {m: codes for _, found_codes in recorded.values() for m, codes in found_codes.items()}
        write_scores({name: (run, score_table(found_codes, equivalent)) for name, (run, found_codes) in recorded.items()},
                     equivalence_problems(every, equivalent), sorted(groups), run_facts(), args.scores_out)
        print(f"scores of every recorded group run written to {args.scores_out}")
    if not found:
        print(f"no mutation results in {args.workdir}")
        return 1
    problems = equivalence_problems(found, equivalent)
    for problem in problems:
        print(f"equivalence list: {problem}")
    rows = score_table(found, equivalent)
    scores_ok = print_report(rows, args.fail_under, args.survivors)
    return 0 if scores_ok and not problems else 1


if __name__ == "__main__":
    sys.exit(main())

"""Every snakemake, dvc and make command in the code blocks of the README and of the docs pages
(docs/*.md, the mkdocs site) works as written (dry-run).

The commands run in a temporary copy of the working tree (the files git tracks or would
track, as a fresh clone has them, with the project's .venv linked in): `snakemake ... -n`,
`make -n ...` (and the snakemake commands its recipe runs, dry-run in turn), and each file's
dvc commands in order (`dvc repro`: the pipeline loads and each stage's snakemake command
plans). A command that several files show is planned once. Placeholders for the user's own
paths are replaced (PLACEHOLDERS); dvc commands that cannot be dry-run are parsed by dvc's own
argument parser (PARSE_ONLY, each with the reason).
To check a draft README: README_UNDER_TEST=path pytest tests/test_readme_commands.py
(DOCS_UNDER_TEST=folder for draft docs pages).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from topkshape.robustness.ood_datasets import OOD_DATASETS
from workflow_support import ROOT

pytestmark = pytest.mark.slow

README = Path(os.environ.get("README_UNDER_TEST", ROOT / "README.md"))
DOCS = Path(os.environ.get("DOCS_UNDER_TEST", ROOT / "docs"))
TOOLS = ("snakemake", "dvc", "make")
SHELL_LANGUAGES = ("", "bash", "sh", "shell", "console")
PREFIXES = ("time", "nice", "env")  # words that may precede the tool on a line
BIN = Path(sys.executable).parent

# Paths that stand for the user's own data: replaced by a stand-in in the temporary copy.
PLACEHOLDERS = {
    "/data/ILSVRC2012": "imagenet",  # an ILSVRC2012 folder; the stand-in has train/ (enough to plan)
    "/mnt/storage/topkshape-dvc": "dvc-remote",  # a DVC remote folder
}
# dvc subcommands with no dry run: checked by dvc's own argument parser, not run.
PARSE_ONLY = {
    "push": "uploads the cache to the remote: there is no dry run, and the test has no data to push",
    "pull": "downloads from the remote: no dry run",
    "fetch": "downloads from the remote: no dry run",
    "add": "hashes and caches the whole folder (ImageNet: hours): no dry run",
    "gc": "deletes cache files: no dry run",
    "plots": "draws result files that a fresh clone lacks; tests/test_dvc.py renders them after a tiny dvc repro",
    "exp": "runs or compares experiments (training): no dry run; tests/test_dvc.py runs one on a tiny config",
}


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    text: str  # as written in the file (continuation lines joined)
    source: str = ""  # the file that shows it: README.md or docs/<page>.md

    @property
    def tool(self) -> str:
        return Path(self.words[0]).name

    def __str__(self) -> str:
        return self.text


def _split_commands(line: str) -> list[list[str]]:
    """Shell words of each command on a line (split at ; && || |), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in lexer:
        if token in (";", "&&", "||", "|", "&"):
            commands.append(words)
            words = []
        else:
            words.append(token)
    commands.append(words)
    return [w for w in commands if w]


def readme_commands(text: str, source: str = "") -> list[Command]:
    """The snakemake/dvc/make commands of the fenced shell code blocks, in document order.

    Fences may be indented (a code block inside a list item or an admonition of the docs pages)."""
    found = []
    for language, body in re.findall(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```", text, re.MULTILINE | re.DOTALL):
        if language not in SHELL_LANGUAGES:
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            first = line.split()[0] if line.split() else ""
            try:
                commands = _split_commands(line)
            except ValueError:  # unbalanced quotes: prose or output, unless it starts with a tool
                assert Path(first).name not in TOOLS, f"{source or 'README'} command cannot be parsed: {line}"
                continue
            for words in commands:
                while words and (words[0] in PREFIXES or re.fullmatch(r"[A-Za-z_]\w*=.*", words[0])):
                    words = words[1:]
                if words and Path(words[0]).name in TOOLS:
                    found.append(Command(tuple(words), " ".join(line.split()), source))
    return found


def documented_files() -> list[Path]:
    """The README, then every docs page, in a fixed order."""
    pages = sorted(DOCS.glob("*.md")) if DOCS.is_dir() else []
    return [path for path in [README, *pages] if path.is_file()]


def _label(path: Path) -> str:
    return f"docs/{path.name}" if path.parent == DOCS else path.name


COMMANDS = [command for path in documented_files() for command in readme_commands(path.read_text(), _label(path))]
README_COMMANDS = [command for command in COMMANDS if command.source == _label(README)]


def _unique(tool: str) -> list[Command]:
    """One command per distinct word list (the first file that shows it), in document order."""
    seen: dict[tuple[str, ...], Command] = {}
    for command in COMMANDS:
        if command.tool == tool:
            seen.setdefault(command.words, command)
    return list(seen.values())


def _shown_in(command: Command) -> str:
    return ", ".join(dict.fromkeys(c.source for c in COMMANDS if c.words == command.words))


def _clone(dest: Path) -> Path:
    """The working tree's files as a fresh clone has them, with the project's .venv linked in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    # The quick start's prerequisite, done as a user does it: the AdaIN weights and OOD archives pinned in config/paper.yaml
    # (until then the shipped paper config stops at `snakemake -n`: tests/test_plan_checks.py).
    paper = dest / "config" / "paper.yaml"
    ood_pins = "{" + ", ".join(f"{name}: {'c' * 64}" for name in OOD_DATASETS) + "}"
    paper.write_text(paper.read_text().replace("encoder_sha256: null", f"encoder_sha256: {'a' * 64}")
                     .replace("decoder_sha256: null", f"decoder_sha256: {'b' * 64}").replace("    sha256: {}\n", f"    sha256: {ood_pins}\n"))
    for name, stand_in in PLACEHOLDERS.items():
        (dest.parent / stand_in).mkdir(exist_ok=True)
    (dest.parent / PLACEHOLDERS["/data/ILSVRC2012"] / "train").mkdir(exist_ok=True)
    (dest.parent / "home").mkdir(exist_ok=True)  # HOME: no user-level snakemake/dvc settings leak in
    env = _env(dest)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "clone"]):
        subprocess.run(cmd, cwd=dest, env=env, capture_output=True, check=True)
    return dest


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", "HOME": str(work.parent / "home")}


def _substitute(words: tuple[str, ...], work: Path) -> list[str]:
    out = []
    for word in words:
        for placeholder, stand_in in PLACEHOLDERS.items():
            word = word.replace(placeholder, str(work.parent / stand_in))
        out.append(word)
    return out


def _run(words: list[str], work: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(words, cwd=work, env=_env(work), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def _sets_cores(words: list[str], work: Path) -> bool:
    """A real (not dry) local run needs --cores: `-n` alone would pass without it."""
    if any(w in ("--cores", "-c", "--jobs", "-j") or w.startswith(("--cores=", "--jobs=")) for w in words):
        return True
    if "--profile" in words:
        config = _profile_folder(words, work) / "config.yaml"
        settings = yaml.safe_load(config.read_text()) if config.is_file() else {}
        return any(key in settings for key in ("cores", "jobs", "executor"))
    return False


def _profile_folder(words: list[str], work: Path) -> Path:
    name = words[words.index("--profile") + 1]
    if name.startswith("~"):  # the shell would expand it; the copy's HOME has no user profiles
        name = _env(work)["HOME"] + name[1:]
    return Path(name) if Path(name).is_absolute() else work / name


_PLANNED: dict[tuple[tuple[str, ...], str], str | None] = {}


def dry_run_snakemake(words: tuple[str, ...], work: Path) -> str | None:
    """None when the command plans without error, else what went wrong (each command planned once per copy)."""
    key = (tuple(words), str(work))
    if key not in _PLANNED:
        _PLANNED[key] = _dry_run_snakemake(words, work)
    return _PLANNED[key]


def _dry_run_snakemake(words: tuple[str, ...], work: Path) -> str | None:
    args = _substitute(words, work)
    if "--profile" in args and not _profile_folder(args, work).is_dir():
        return f"profile folder {_profile_folder(args, work)} does not exist in a fresh clone"
    if not _sets_cores(args, work):
        return "no --cores (or a profile setting cores/jobs): a real run stops with 'cores have to be specified'"
    done = _run([*args, "-n"], work)
    if done.returncode != 0:
        return (done.stdout[-1500:] + done.stderr[-2500:]).strip()
    return None


# Experiments of dvc.yaml whose stage commands a fresh clone cannot dry-run, with the reason.
NOT_DRY_RUN = {
    "paper": "needs ImageNet and the AdaIN pins set in config/paper.yaml (the README says so); tests/test_plan_checks.py plans it",
    "paper-smoke": "needs the smoke command's overlay and served files; tests/test_paper_smoke.py runs these stages",
}


def _dvc_stage_commands(work: Path) -> dict[str, list[list[str]]]:
    """``stage@experiment`` -> the snakemake command lines its cmd runs (dvc.yaml's foreach expanded)."""
    document = yaml.safe_load((work / "dvc.yaml").read_text())
    experiments = {key: value for entry in document.get("vars", []) for key, value in entry.get("experiments", {}).items()}
    commands = {}
    for name, stage in document["stages"].items():
        items = experiments.items() if "foreach" in stage else [(None, {})]
        for key, item in items:
            cmd = stage["do"]["cmd"] if key else stage["cmd"]
            cmd = re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), cmd).replace("${key}", str(key))
            parts = [shlex.split(part) for part in cmd.split("&&")]
            # `python -m topkshape.smoke -- snakemake ...`: the command after `--`.
            parts = [words[words.index("--") + 1:] if "--" in words else words for words in parts]
            commands[f"{name}@{key}" if key else name] = [words for words in parts if words and Path(words[0]).name == "snakemake"]
    return commands


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return _clone(tmp_path_factory.mktemp("readme") / "clone")


def test_the_readme_documents_commands_for_every_tool():
    assert README.is_file(), README
    assert {c.tool for c in README_COMMANDS} >= {"snakemake", "make"}, [str(c) for c in README_COMMANDS]


def test_the_docs_pages_commands_are_checked_too():
    # The workflow page shows the paper run on one machine; the cluster page the SLURM variants.
    assert DOCS.is_dir(), DOCS
    sources = {c.source for c in COMMANDS}
    assert {"docs/workflow.md", "docs/cluster.md", "docs/sharing.md"} <= sources, sorted(sources)


@pytest.mark.parametrize("command", _unique("snakemake"), ids=str)
def test_readme_snakemake_command_plans_as_written(command, clone):
    problem = dry_run_snakemake(command.words, clone)
    assert problem is None, f"command `{command}` ({_shown_in(command)}) fails:\n{problem}"


@pytest.mark.parametrize("command", _unique("make"), ids=str)
def test_readme_make_command_and_the_snakemake_it_runs_plan_as_written(command, clone):
    done = _run(["make", "-n", *command.words[1:]], clone)
    assert done.returncode == 0, f"command `{command}` ({_shown_in(command)}) fails:\n{done.stderr[-2000:]}"
    for line in done.stdout.splitlines():
        for words in _split_commands(line):
            if Path(words[0]).name == "snakemake":
                problem = dry_run_snakemake(tuple(words), clone)
                assert problem is None, f"`{command}` ({_shown_in(command)}) runs `{line}`, which fails:\n{problem}"


def _reset_dvc_config(work: Path) -> None:
    """Each file's dvc commands start from a fresh clone's DVC settings (a remote added by one file is not another's)."""
    subprocess.run(["git", "checkout", "-q", "--", ".dvc"], cwd=work, env=_env(work), capture_output=True, check=True)
    (work / ".dvc" / "config.local").unlink(missing_ok=True)


@pytest.mark.parametrize("source", list(dict.fromkeys(c.source for c in COMMANDS if c.tool == "dvc")) or ["README.md"])
def test_readme_dvc_commands_run_in_order_as_written(source, clone):
    commands = [c for c in COMMANDS if c.tool == "dvc" and c.source == source]
    if not commands:
        pytest.skip(f"{source} has no dvc command")
    _reset_dvc_config(clone)
    for command in commands:
        args = _substitute(command.words, clone)
        sub = args[1] if len(args) > 1 else ""
        if sub in PARSE_ONLY:
            code = f"import sys; from dvc.cli import parse_args; parse_args({args[1:]!r})"
            done = _run([sys.executable, "-c", code], clone)
        elif sub == "repro":
            # `dvc repro --dry` stops at the first stage whose inputs an earlier stage would make
            # (a fresh clone has none), so: the pipeline must load (`dvc status`), and every
            # stage's snakemake command must plan as written.
            done = _run(["dvc", "status"], clone)
            targets = [word for word in args[2:] if not word.startswith("-")]
            experiments = {target.partition("@")[2] for target in targets} or {"default", *NOT_DRY_RUN}
            for stage, cmds in _dvc_stage_commands(clone).items():
                experiment = stage.partition("@")[2]
                if experiment not in experiments or experiment in NOT_DRY_RUN:
                    continue
                for cmd in cmds:
                    problem = dry_run_snakemake(tuple(cmd), clone)
                    assert problem is None, f"`{command}` ({source}) runs stage {stage}: `{shlex.join(cmd)}`, which fails:\n{problem}"
        elif sub in ("init", "status", "remote", "config", "dag", "params", "metrics"):
            done = _run(args, clone)  # only reads, or writes the copy's .dvc/config
        else:
            pytest.fail(f"no dry run known for `{command}`: add it to PARSE_ONLY with the reason, or a handler")
        assert done.returncode == 0, f"{source} command `{command}` fails:\n{done.stdout[-1500:]}{done.stderr[-1500:]}"


# The checks themselves: the extraction, and that a documented command that fails is caught.

def test_extraction_joins_continuations_drops_comments_and_prefixes_and_skips_other_blocks():
    text = (
        "Prose `snakemake --bogus` is not a code block.\n"
        "```bash\n"
        ". .venv/bin/activate\n"
        "time .venv/bin/snakemake all --cores 2 \\\n"
        "    --configfile config/paper.yaml   # the paper run\n"
        "TOPKSHAPE_DEBUG=1 make -n all && dvc status\n"
        "```\n"
        "```python\n"
        "make = 1\n"
        "```\n"
        "```\n"
        "Snakefile            # configuration\n"
        "topkshape: config key 'train': Additional properties ('epoch' was unexpected)\n"
        "```\n"
    )
    assert [c.words for c in readme_commands(text)] == [
        (".venv/bin/snakemake", "all", "--cores", "2", "--configfile", "config/paper.yaml"),
        ("make", "-n", "all"),
        ("dvc", "status"),
    ]


def test_extraction_reads_indented_fences_and_records_the_file():
    text = (
        "- a list item:\n"
        "\n"
        "    ```bash\n"
        "    snakemake all --cores 2   # inside the item\n"
        "    ```\n"
        "```text\n"
        "snakemake all   # output, not a command\n"
        "```\n"
    )
    assert [(c.words, c.source) for c in readme_commands(text, "docs/page.md")] == [
        (("snakemake", "all", "--cores", "2"), "docs/page.md"),
    ]


def test_the_target_after_resources_form_is_caught(clone):
    # `--resources` takes every following word: Snakemake 9 reads `all` as a resource and stops.
    problem = dry_run_snakemake(("snakemake", "--cores", "1", "--resources", "gpu=2", "all"), clone)
    assert problem is not None and "dictionary update sequence" in problem
    assert dry_run_snakemake(("snakemake", "all", "--cores", "1", "--resources", "gpu=2"), clone) is None


def test_a_command_without_cores_is_caught(clone):
    assert "--cores" in dry_run_snakemake(("snakemake", "all"), clone)

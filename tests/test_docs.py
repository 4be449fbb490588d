"""The documentation: the mkdocs site builds with --strict (a broken link or anchor fails it), every page is
in its navigation, and the README stays a short user's page whose links all lead somewhere.

The commands shown in the README and in the pages are dry-run by tests/test_readme_commands.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
README_MAX_LINES = 260

# The doc tools are pinned in requirements-lock.txt (so `make test` has them) and are the `docs` extra of
# pyproject.toml. Without them these tests skip, except under CI=true, where they must be installed.
needs_doc_tools = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None and os.environ.get("CI") != "true",
    reason="mkdocs is not installed (pip install -e .[docs], or the lock)",
)


def _nav_pages(nav) -> list[str]:
    """Every page file named in mkdocs.yml's nav, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def _mkdocs_config() -> dict:
    # mkdocs.yml may hold !!python/name tags (not ours today); the nav needs none of them.
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load(MKDOCS_YML.read_text(), Loader=Loader)


def _links(markdown: str) -> list[str]:
    """Targets of the inline links and images of a markdown text, code blocks and code spans left out."""
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)


@pytest.mark.slow
@needs_doc_tools
def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a warning (a broken link or anchor, an API page that does not render) fails."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for module in ("topkshape.ops", "topkshape.models", "topkshape.shape_bias.analysis"):
        assert f'id="{module}"' in api, f"the API page does not render {module}"
    assert 'id="topkshape.ops.TopK"' in api and 'id="topkshape.models.insert_topk"' in api
    assert 'id="topkshape.shape_bias.analysis.bootstrap_shape_bias"' in api


def test_every_page_is_in_the_navigation_and_every_nav_entry_exists():
    config = _mkdocs_config()
    nav = _nav_pages(config["nav"])
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    assert set(pages) <= set(nav), f"pages missing from mkdocs.yml's nav: {sorted(set(pages) - set(nav))}"
    assert all((DOCS / page).is_file() for page in nav), [page for page in nav if not (DOCS / page).is_file()]
    assert {"config.md", "testing.md", "api.md", "citing.md"} <= set(nav)


def test_the_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES} (move the rest to docs/)"


@needs_doc_tools
def test_the_readme_links_only_to_files_that_exist_and_to_pages_of_the_site():
    nav = set(_nav_pages(_mkdocs_config()["nav"]))
    links = [link for link in _links(README.read_text()) if not re.match(r"[a-z][a-z0-9+.-]*:", link)]
    assert any(link.startswith("docs/") for link in links), "the README links to no docs page"
    for link in links:
        path, _, anchor = link.partition("#")
        if not path:
            continue  # an anchor of the README itself
        target = (ROOT / path).resolve()
        assert target.is_file(), f"README links to {link}, which does not exist"
        if target.suffix == ".md" and target.parent == DOCS:
            assert target.name in nav, f"README links to {link}, a page the site does not show (not in mkdocs.yml's nav)"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target.read_text()), f"README links to {link}: {path} has no heading #{anchor}"


def _anchors(markdown: str) -> set[str]:
    """The ids mkdocs' toc extension gives the headings of a page (its default slugify)."""
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    from markdown.extensions.toc import slugify  # what mkdocs' toc extension uses by default

    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
    return {slugify(re.sub(r"`([^`]*)`", r"\1", heading), "-") for heading in headings}


@pytest.mark.parametrize("text, expected", [
    ("See [a](docs/a.md), ![b](docs/b.png) and [c](https://example.org).", ["docs/a.md", "docs/b.png", "https://example.org"]),
    ("`[not](a link)` and\n```bash\n[nor](this)\n```\n[yes](docs/x.md#part)", ["docs/x.md#part"]),
])
def test_link_extraction(text, expected):
    assert _links(text) == expected


@needs_doc_tools
def test_anchor_slugs_match_mkdocs():
    assert _anchors("## The paper's data: ImageNet subsets\n## After a failure\n### `topkshape.ops` API\n") == {
        "the-papers-data-imagenet-subsets", "after-a-failure", "topkshapeops-api"}

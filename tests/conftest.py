import os
import sys
from pathlib import Path

import pytest
import torch

# Test helper modules (workflow_support) import by name.
sys.path.insert(0, str(Path(__file__).parent))


def needs_shared(path: Path, what: str) -> pytest.MarkDecorator:
    """Skip a test whose ``../shared`` data is absent, except under ``CI=true``, where ../shared is always
    beside the checkout: there the test runs, and fails on the missing data instead of skipping."""
    return pytest.mark.skipif(not path.exists() and os.environ.get("CI") != "true", reason=f"{what} not found at {path}")


def help_text(main, capsys) -> str:
    """What ``main(["--help"])`` prints, on one line: whitespace collapsed, and Python < 3.10's
    "optional arguments:" heading spelled as 3.10+ spells it. Asserts that --help exits 0."""
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split()).replace("optional arguments:", "options:")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small ops gain little from threads, and spinning threads stall on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def compiled_select_missing() -> str | None:
    """Why the compiled Top-K select cannot be tested here, or None when it can.

    Where it was not built (no C compiler at install) its tests skip, unless
    TOPKSHAPE_REQUIRE_NATIVE is set (``make test`` sets it: CI must build it); built but
    not loadable is always a failure.
    """
    import importlib.util
    import os

    from topkshape import ops

    if importlib.util.find_spec("topkshape._topk_native") is None:
        reason = "the compiled Top-K select was not built (no C compiler at install)"
        if os.environ.get("TOPKSHAPE_REQUIRE_NATIVE"):
            pytest.fail(f"{reason}, and TOPKSHAPE_REQUIRE_NATIVE is set")
        return reason
    if not ops._NATIVE:
        pytest.fail("the compiled Top-K select was built but does not load")
    return None


@pytest.fixture(params=["compiled", "numpy"])
def cpu_selection_backend(request, monkeypatch):
    """Run a test once with the compiled CPU select and once with the numpy fallback.

    Both must give identical masks; the fallback is what runs where no C compiler was
    found at install.
    """
    from topkshape import ops

    if request.param == "numpy":
        monkeypatch.setattr(ops, "_NATIVE", {})
    elif (reason := compiled_select_missing()) is not None:
        pytest.skip(reason)
    return request.param


# The files whose tests take longest (the paper smoke run alone is ~14 min on 2 cores), run first. Under
# `make test`'s two xdist workers (--dist loadfile, in collection order) one worker starts the smoke run at
# once while the other takes the rest; last, it would leave one worker alone with it at the end.
LONGEST_FIRST = ("test_paper_smoke.py", "test_dvc.py", "test_slurm.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other test keeps its order

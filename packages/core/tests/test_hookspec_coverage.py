"""Every pycrew hook is tested and documented (in the manner of datasette's hook coverage test).

A hook counts as tested when its name appears in a test module of some package
(``packages/*/tests``), of the template plugin, of the cross-package ``tests/``, or in the
conformance suite (``pycrew.testing``), which every launcher runs. Adding a hookspec
without a test, or without a word in docs/plugins.md, fails here.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import pycrew.testing.suite
from pycrew import hookspecs

ROOT = Path(__file__).resolve().parents[3]
TESTING = Path(pycrew.testing.suite.__file__).resolve().parent
DOC = ROOT / "docs" / "plugins.md"


def hook_names() -> list[str]:
    """Names of every hookspec in :mod:`pycrew.hookspecs`."""
    return sorted(
        name
        for name, fn in vars(hookspecs).items()
        if name.startswith("pycrew_") and callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")
    )


def hook_test_sources() -> list[Path]:
    """Files whose mention of a hook counts as a test of it."""
    files = [
        p
        for pattern in ("packages/*/tests/**/*.py", "examples/*/tests/**/*.py", "tests/**/*.py")
        for p in ROOT.glob(pattern)
    ]
    files += sorted(TESTING.glob("*.py"))
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def test_hookspecs_are_found() -> None:
    names = hook_names()
    assert {"pycrew_launch_workers", "pycrew_terminate_workers", "pycrew_list_workers"} <= set(names), names


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_test(hook: str) -> None:
    sources = hook_test_sources()
    assert any(hook in path.read_text(errors="replace") for path in sources), (
        f"no test mentions the hook {hook}: add one to the package's tests or to the conformance suite "
        f"(pycrew/testing/suite.py) before adding a hookspec"
    )


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_documented(hook: str) -> None:
    assert hook in DOC.read_text(), f"docs/plugins.md does not mention the hook {hook}"


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 20, f"the hookspec {hook} needs a docstring saying when it is called and what it must do"

"""The examples in docstrings (``>>>``) of every package's modules are true.

They document parsers and message builders (a scheduler's exit status in words, a
quantity's arithmetic); nothing ran them before, and one went stale unnoticed.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parent.parent / "packages"


def modules_with_examples() -> list[str]:
    """Dotted names of the modules under ``packages/*/src`` whose source has a ``>>>`` example."""
    names = []
    for path in sorted(PACKAGES.glob("*/src/**/*.py")):
        if ">>> " not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(next(p for p in path.parents if p.name == "src")).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_the_examples_are_found() -> None:
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, report=True, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} example(s) in {name} failed (see the output above)"

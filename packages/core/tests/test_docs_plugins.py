"""docs/plugins.md runs: every ```python block executes, in order, in one shared namespace.

A block that must not run is preceded by the line ``<!-- docs-test: skip -->``; there
should be none, and :data:`MAX_SKIPPED` keeps it that way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pycrew

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins.md"
SKIP_MARKER = "<!-- docs-test: skip -->"
MAX_SKIPPED = 0
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the page."""

    line: int  # 1-based line of the first code line
    language: str
    code: str
    skipped: bool


def code_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, with its language and whether it is marked to skip."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None or not m.group(1):
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{DOC}:{i + 1}: the code block is never closed")
        skipped = i > 0 and lines[i - 1].strip() == SKIP_MARKER
        blocks.append(Block(start + 1, m.group(1), "\n".join(lines[start:end]) + "\n", skipped))
        i = end + 1
    return blocks


def python_blocks() -> list[Block]:
    """The page's ```python blocks."""
    return [b for b in code_blocks(DOC.read_text()) if b.language == "python"]


def test_page_has_python_blocks() -> None:
    assert len(python_blocks()) >= 10, f"{DOC} should show the plugin contract in runnable blocks"


def test_skipped_blocks_stay_rare() -> None:
    skipped = [b.line for b in python_blocks() if b.skipped]
    assert len(skipped) <= MAX_SKIPPED, f"blocks at lines {skipped} of {DOC} are marked {SKIP_MARKER!r}: make them run"


def test_code_blocks_parse() -> None:
    """Blocks are found even next to other languages, and the marker is seen."""
    text = "intro\n```bash\nls\n```\n<!-- docs-test: skip -->\n```python\nx = 1\n```\n```python\ny = 2\n```\n"
    blocks = code_blocks(text)
    assert [(b.language, b.skipped, b.line) for b in blocks] == [
        ("bash", False, 3),
        ("python", True, 7),
        ("python", False, 10),
    ]


@pytest.fixture
def registered_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Record plugins the page registers, and unregister them if it fails midway."""
    plugins: list[Any] = []
    real_register = pycrew.register

    def register(plugin: object, name: str | None = None) -> list[pycrew.LauncherSpec]:
        plugins.append(plugin)
        return real_register(plugin, name=name)

    monkeypatch.setattr(pycrew, "register", register)
    yield plugins
    for plugin in plugins:
        pycrew.unregister(plugin)  # a no-op for a plugin the page unregistered itself


@pytest.mark.slow
def test_python_blocks_run(
    pycrew_tmp_state_dir: Path, registered_plugins: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the page: each block in order, sharing one namespace; tracebacks point at the page's lines."""
    import types

    namespace: dict[str, Any] = {"__name__": "docs_plugins"}
    # The conformance module imports pycrew_script.plugin (the page's complete launcher as a
    # file, which the page's namespace has registered already): see test_the_guides_files_pass_...
    for module in ("pycrew_script", "pycrew_script.plugin"):
        monkeypatch.setitem(sys.modules, module, types.ModuleType(module))
    try:
        for block in python_blocks():
            if block.skipped:
                continue
            padded = "\n" * (block.line - 1) + block.code  # so line numbers are the page's
            exec(compile(padded, str(DOC), "exec", dont_inherit=True), namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, pycrew.Controller):
                value.terminate()
    assert registered_plugins, "the page should show registering a plugin with pycrew.register"


@pytest.mark.slow
def test_the_guides_files_pass_the_conformance_suites_discovery_and_client_death_tests(tmp_path: Path) -> None:
    """The guide's complete launcher saved as ``pycrew_script/plugin.py`` and its conformance
    module as ``tests/test_conformance.py``, run as the guide says. From a probe following
    the guide literally (session 36): the module registered nothing in the test process
    (test_01 failed), and the launcher's print garbled test_10's child reports."""
    blocks = python_blocks()
    launcher = next(b.code for b in blocks if "class ScriptLauncher" in b.code and "pycrew.register(plugin)" in b.code)
    suite = next(b.code for b in blocks if "class TestScriptLauncher(LauncherSuite)" in b.code)
    (tmp_path / "pycrew_script").mkdir()
    (tmp_path / "pycrew_script" / "__init__.py").write_text("")
    (tmp_path / "pycrew_script" / "plugin.py").write_text(launcher)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_conformance.py").write_text(suite)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYCREW_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_conformance.py", "-ra", "-q", "-p", "no:cacheprovider",
         "-k", "test_01_discovery or test_10_"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]


# -- the guide and the docstrings keep up with the code ------------------------------------

TABLE_ROW = re.compile(r"^\| `(test_\d\d_)\*` \|", re.MULTILINE)


def suite_prefixes(names: list[str]) -> set[str]:
    """The ``test_NN_`` prefixes among test names."""
    return {m.group(0) for name in names if (m := re.match(r"test_\d\d_", name))}


def table_gaps(names: list[str], text: str) -> tuple[set[str], set[str]]:
    """``(prefixes of ``names`` without a row in the guide's test table, rows without a test)``."""
    prefixes, rows = suite_prefixes(names), set(TABLE_ROW.findall(text))
    return prefixes - rows, rows - prefixes


def test_the_table_check_finds_a_missing_and_a_stale_row() -> None:
    text = "| `test_01_*` | discovery |\n| `test_03_*` | gone |\n"
    assert table_gaps(["test_01_a", "test_01_b", "test_02_c", "helper"], text) == ({"test_02_"}, {"test_03_"})


def test_the_guides_test_table_has_a_row_for_every_conformance_test() -> None:
    from pycrew.testing import LauncherSuite

    names = [n for n in dir(LauncherSuite) if n.startswith("test_")]
    assert len(suite_prefixes(names)) >= 14, sorted(names)
    missing, stale = table_gaps(names, DOC.read_text())
    assert not missing, f"{DOC}: the conformance suite's table has no row for {sorted(missing)}: describe them"
    assert not stale, f"{DOC}: the conformance suite's table describes {sorted(stale)}, which LauncherSuite lacks"


def test_the_register_docstrings_name_every_keyword() -> None:
    """``register``'s keywords are the fields of LauncherSpec that a plugin gives (dial_host was missed once)."""
    import dataclasses

    from pycrew.hookspecs import pycrew_register_launchers

    keywords = [f.name for f in dataclasses.fields(pycrew.LauncherSpec) if f.name not in ("name", "options_type", "plugin")]
    assert "dial_host" in keywords, keywords
    missing = [k for k in keywords if f"``{k}``" not in (pycrew.RegisterLauncher.__doc__ or "")]
    assert not missing, f"the docstring of pycrew.RegisterLauncher does not name the keyword(s) {missing}"
    packaged = [k for k in keywords if k not in ("distribution", "version")]  # core fills those in for entry points
    missing = [k for k in packaged if f"{k}=" not in (pycrew_register_launchers.__doc__ or "")]
    assert not missing, f"the docstring of the pycrew_register_launchers hookspec does not show {missing}"

"""The documentation runs: every ```python block of every page under docs/ that this test owns.

Blocks of one page execute in order in one shared namespace, on the local launcher, with
tracebacks pointing at the page's own lines. A block that cannot run here (it needs a
cluster or a cloud account) is preceded by the line ``<!-- no-run: <reason> -->``; such
blocks are counted, must give a reason, and stay rare (:data:`MAX_NO_RUN`).

docs/plugins.md runs in packages/core/tests/test_docs_plugins.py, and each remote
launcher's page (:data:`OTHER_PAGES`) is tested with its launcher. The command-line page
shows shell sessions instead: each ``$ pycrew ...`` line there must name a real command
(its ``--help`` is run; running them for real could stop other people's workers).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import wait_until

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages whose code is tested elsewhere.
OTHER_PAGES = frozenset(
    {
        "plugins.md",
        "launchers/slurm.md",
        "launchers/k8s.md",
        "launchers/cloudrun.md",
        "launchers/awsbatch.md",
        "launchers/lsf.md",
        "launchers/pbs.md",
        "launchers/sge.md",
    }
)
#: Pages that must show runnable Python.
GUIDES = ("index.md", "quickstart.md", "concepts.md", "controller.md", "launchers/local.md")
MAX_NO_RUN = 2
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
NO_RUN = re.compile(r"^<!--\s*no-run:(.*?)-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the block's first code line
    language: str
    code: str
    no_run: str | None  # the reason given in a no-run comment right before the fence, if any


def code_blocks(page: str, text: str) -> list[Block]:
    """Every fenced block of ``text`` (the page ``page``), with its language and no-run reason."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, language = m.group(1), m.group(2)
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"docs/{page}:{i + 1}: the code block is never closed")
        marker = NO_RUN.match(lines[i - 1].strip()) if i > 0 else None
        no_run = marker.group(1).strip() if marker else None
        blocks.append(Block(page, i + 2, language, "\n".join(lines[i + 1 : end]) + "\n", no_run))
        i = end + 1
    return blocks


def owned_pages() -> list[str]:
    """Pages under docs/ whose code this module runs, relative to docs/."""
    pages = (p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    return sorted(p for p in pages if p not in OTHER_PAGES and not p.startswith("_"))


def python_blocks(page: str) -> list[Block]:
    """The ```python blocks of one page."""
    return [b for b in code_blocks(page, (DOCS / page).read_text()) if b.language == "python"]


PAGES_WITH_CODE = [p for p in owned_pages() if python_blocks(p)]


def test_guides_show_runnable_python() -> None:
    missing = [p for p in GUIDES if p not in PAGES_WITH_CODE]
    assert not missing, f"these pages should exist and show ```python blocks: {missing}"


def test_no_run_blocks_are_rare_and_explained() -> None:
    marked = [b for p in owned_pages() for b in python_blocks(p) if b.no_run is not None]
    where = [f"docs/{b.page}:{b.line}" for b in marked]
    assert len(marked) <= MAX_NO_RUN, (
        f"{len(marked)} blocks are marked no-run ({where}): make them run on the local launcher"
    )
    unexplained = [f"docs/{b.page}:{b.line}" for b in marked if not b.no_run]
    assert not unexplained, f"no-run blocks must say why: <!-- no-run: reason -->, at {unexplained}"


def test_code_blocks_parse() -> None:
    text = "a\n```bash\nls\n```\n<!-- no-run: needs SLURM -->\n```python\nx = 1\n```\n````python\n```\n````\n"
    blocks = code_blocks("x.md", text)
    assert [(b.language, b.no_run, b.line, b.code) for b in blocks] == [
        ("bash", None, 3, "ls\n"),
        ("python", "needs SLURM", 7, "x = 1\n"),
        ("python", None, 10, "```\n"),
    ]


@pytest.fixture
def started_controllers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[pycrew.Controller]]:
    """Every controller a page starts; terminated afterwards, and checked to leave no worker behind."""
    started: list[pycrew.Controller] = []
    real_start = pycrew.Controller.start

    def start(self: pycrew.Controller) -> pycrew.Controller:
        if self not in started:
            started.append(self)
        return real_start(self)

    monkeypatch.setattr(pycrew.Controller, "start", start)
    yield started
    for c in started:
        c.terminate()
    monitor = pycrew.Monitor("local")
    for c in started:
        if c.spec.name == "local":
            wait_until(
                lambda c=c: not monitor.list(c.id),
                timeout=30,
                message=f"controller {c.name!r} of the page left workers running: {monitor.list(c.id)}",
            )


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_runs(page: str, started_controllers: list[pycrew.Controller]) -> None:
    """Run the page's blocks in order in one namespace; a failure names the page's line."""
    path = DOCS / page
    namespace: dict[str, Any] = {"__name__": "docs_" + re.sub(r"\W", "_", page.removesuffix(".md"))}
    ran = 0
    for block in python_blocks(page):
        if block.no_run is not None:
            continue
        padded = "\n" * (block.line - 1) + block.code  # so that line numbers are the page's
        exec(compile(padded, str(path), "exec", dont_inherit=True), namespace)
        ran += 1
    assert ran, f"docs/{page}: every block is marked no-run"


# -- the command-line page ----------------------------------------------------------------------


def cli_lines() -> list[str]:
    """The ``$ pycrew ...`` lines of docs/cli.md's console blocks."""
    blocks = [b for b in code_blocks("cli.md", (DOCS / "cli.md").read_text()) if b.language == "console"]
    return [line[2:] for b in blocks for line in b.code.splitlines() if line.startswith("$ pycrew")]


def command_words(line: str) -> list[str]:
    """The command of a ``pycrew ...`` line: its words up to the first option."""
    words = []
    for word in line.split()[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return words


def pycrew_command() -> str:
    """The ``pycrew`` console script of this environment."""
    found = shutil.which("pycrew", path=str(Path(sys.executable).parent)) or shutil.which("pycrew")
    if found is None:
        pytest.fail("the pycrew command is not installed: pip install -e packages/core")
    return found


def test_cli_page_shows_every_command() -> None:
    commands = {" ".join(command_words(line)[:1]) for line in cli_lines()}
    from pycrew.cli import cli

    expected = set(cli.commands)  # every command (`pycrew metrics` was missing from the page)
    assert {"launchers", "config", "monitor", "metrics", "doctor", "worker", "demo"} <= expected
    assert expected <= commands, f"docs/cli.md shows no example of: {sorted(expected - commands)}"


@pytest.mark.parametrize("line", cli_lines())
def test_cli_page_names_real_commands(line: str) -> None:
    words = command_words(line)
    done = subprocess.run([pycrew_command(), *words, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"docs/cli.md shows `{line}`, but `pycrew {' '.join(words)} --help` failed "
        f"(exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    )


def test_cli_launchers_lists_the_local_launcher() -> None:
    done = subprocess.run([pycrew_command(), "launchers"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "local" in done.stdout, f"`pycrew launchers` printed:\n{done.stdout}{done.stderr}"


def readme_shared_options() -> set[str]:
    """The option names in the README's paragraph "Options shared by every launcher: ...".

    The paragraph runs from that phrase to the sentence about a launcher's own options; a
    name is a backquoted identifier (values such as ``"nng"`` are quoted inside the quotes).
    """
    text = (DOCS.parent / "README.md").read_text()
    start = text.find("Options shared by every launcher:")
    end = re.search(r"A\s+launcher's\s+own\s+options", text[max(start, 0):])
    assert start >= 0 and end is not None, "README.md lost its paragraph 'Options shared by every launcher: ...'"
    return set(re.findall(r"`([a-z_]+)`", text[start : start + end.start()]))


def test_readme_lists_every_controller_option() -> None:
    fields = {f.name for f in dataclasses.fields(pycrew.ControllerOptions) if f.init}
    listed = readme_shared_options()
    assert fields - listed == set(), f"README.md's shared options miss {sorted(fields - listed)}: add them"
    assert listed - fields == set(), f"README.md lists {sorted(listed - fields)}, which ControllerOptions does not have"


#: "`seconds_launch` seconds (default 30)", "`seconds_idle` (default: never)": a default a
#: page states for a controller option.
_STATED_DEFAULT = re.compile(r"`([a-z_]+)`[A-Za-z ,]{0,40}\(default:?\s+([^)\n]+?)\s*\)")


def _stated_defaults() -> list[tuple[str, str, str]]:
    """(page, option, stated default) of every ControllerOptions field whose default a page states."""
    fields = {f.name for f in dataclasses.fields(pycrew.ControllerOptions) if f.init}
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = re.sub(r"\s+", " ", page.read_text())
        found += [(page.name, m[1], m[2]) for m in _STATED_DEFAULT.finditer(text) if m[1] in fields]
    return found


def test_defaults_the_pages_state_are_the_controllers() -> None:
    """The launcher pages said ``seconds_launch`` defaults to 120 and ``seconds_idle`` to 60 s
    (both wrong: 30 s and never) for as long as they existed."""
    stated = _stated_defaults()
    assert {option for _, option, _ in stated} >= {"seconds_launch", "seconds_idle"}, stated
    defaults = pycrew.ControllerOptions()
    wrong = []
    for page, option, text in stated:
        actual = getattr(defaults, option)
        number = re.fullmatch(r"([0-9][0-9_,.]*)\s*(s|seconds)?", text)
        if text == "never":
            ok = actual == float("inf")
        elif number is not None:
            ok = float(number[1].replace(",", "").replace("_", "")) == actual
        else:
            continue  # words ("the first routable address"): not a value to compare
        if not ok:
            wrong.append(f"{page}: `{option}` (default {text}), but ControllerOptions().{option} is {actual!r}")
    assert not wrong, "\n".join(wrong)


#: A launcher page's options table row: "| `name` | ... | ... (default 60) |" or "default 300".
_ROW_DEFAULT = re.compile(r"\(?\bdefault:?\s+([0-9][0-9_,.]*)(?:\s*(?:s|seconds))?\b")


@pytest.mark.parametrize("page", sorted(p.stem for p in (DOCS / "launchers").glob("*.md") if p.stem != "index"))
def test_option_defaults_in_a_launcher_pages_table_are_its_options(page: str) -> None:
    """Every number a launcher page's options table gives as a default is that option's
    default in the launcher's options class (``seconds_poll``, ``seconds_ttl``, ...)."""
    from pycrew.plugins import get_launcher

    try:
        spec = get_launcher(page)
    except Exception as exc:  # a page about something that is not a launcher name
        pytest.skip(f"no launcher named {page!r}: {exc}")
    # (the fields' own defaults: some options classes require a value, a Cloud Run region say)
    fields = {f.name: f.default for f in dataclasses.fields(spec.options_type) if f.default is not dataclasses.MISSING}
    checked, wrong = 0, []
    for line in (DOCS / "launchers" / f"{page}.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        names = re.findall(r"`([a-z_]+)`", cells[0]) if cells else []
        if len(names) != 1 or names[0] not in fields or (found := _ROW_DEFAULT.search(cells[-1])) is None:
            continue
        checked += 1
        stated = float(found[1].rstrip(".,").replace(",", "").replace("_", ""))
        if stated != fields[names[0]]:
            wrong.append(f"`{names[0]}`: the page says default {found[1]}, {spec.options_type.__name__} has {fields[names[0]]!r}")
    assert not wrong, f"docs/launchers/{page}.md: " + "; ".join(wrong)
    if page in ("slurm", "pbs", "lsf", "k8s"):
        assert checked, f"docs/launchers/{page}.md: no option default found in its table (the parser broke?)"

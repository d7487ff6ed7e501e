"""The documentation site builds with ``mkdocs build --strict``, offline, into a temporary directory.

Needs mkdocs-material and mkdocstrings[python] (``scripts/setup.sh --test`` installs
them). Without them the build test is skipped, with the reason, except in CI
(``CI=true``), where it fails: CI must build the docs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK = DOCS / "_hooks" / "launcher_pages.py"
BUILD_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
#: Written alongside their launchers; linked in the nav once they exist.
LAUNCHER_PAGES = ("launchers/slurm.md", "launchers/k8s.md", "launchers/cloudrun.md", "launchers/awsbatch.md")


def missing_tools() -> list[str]:
    missing = []
    for name in BUILD_TOOLS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("launcher_pages", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_site_builds_strict_and_offline(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        message = f"cannot build the docs: {', '.join(missing)} not installed (pip install mkdocs-material 'mkdocstrings[python]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-4000:]}{done.stderr[-8000:]}"
    for page in ("index", "quickstart", "concepts", "controller", "launchers/local", "plugins", "cli", "benchmarks"):
        assert (site / page.removesuffix("index") / "index.html").is_file(), f"the site has no page {page}"
    reference = (site / "reference" / "controller" / "index.html").read_text()
    assert 'id="pycrew.Controller.push"' in reference, (
        "the API reference lacks Controller.push: mkdocstrings rendered nothing?"
    )
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "Throughput" in benchmarks, "benchmarks/README.md was not included in the benchmarks page"
    for html in site.rglob("*.html"):
        text = html.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, f"{html} loads web fonts"


def test_nav_links_every_launcher_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in ("launchers/local.md", *LAUNCHER_PAGES, "plugins.md"):
        assert page in config, f"mkdocs.yml's nav does not name {page}"


def test_hook_keeps_existing_launcher_pages_and_appends_unnamed_ones(tmp_path: Path) -> None:
    hook = load_hook()
    (tmp_path / "launchers").mkdir()
    for name in ("local.md", "k8s.md", "zeta.md", "alpha.md"):
        (tmp_path / "launchers" / name).write_text(f"# {name}\n")
    nav = [{"Local": "launchers/local.md"}, {"SLURM": "launchers/slurm.md"}, {"Kubernetes": "launchers/k8s.md"}]
    assert hook.launcher_entries(nav, tmp_path) == [
        {"Local": "launchers/local.md"},
        {"Kubernetes": "launchers/k8s.md"},
        "launchers/alpha.md",
        "launchers/zeta.md",
    ], "missing pages must leave the nav and unnamed ones join it, sorted"


def test_hook_rewrites_only_the_launchers_section(tmp_path: Path) -> None:
    hook = load_hook()
    (tmp_path / "launchers").mkdir()
    (tmp_path / "launchers" / "local.md").write_text("# Local\n")

    nav = [{"Home": "index.md"}, {"Launchers": [{"Local": "launchers/local.md"}, {"K8s": "launchers/k8s.md"}]}]
    config = hook.on_config(SimpleNamespace(docs_dir=str(tmp_path), nav=nav))
    assert config.nav == [{"Home": "index.md"}, {"Launchers": [{"Local": "launchers/local.md"}]}]


def test_roles_hook_turns_sphinx_roles_into_optional_references() -> None:
    spec = importlib.util.spec_from_file_location("sphinx_roles", DOCS / "_hooks" / "sphinx_roles.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    html = "<p>See :class:<code>~pycrew.testing.LauncherConfig</code> and :meth:<code>pop</code>. Example::</p>"
    assert hook.on_page_content(html) == (
        '<p>See <autoref identifier="pycrew.testing.LauncherConfig" optional><code>LauncherConfig</code></autoref>'
        ' and <autoref identifier="pycrew.pop" optional><code>pop</code></autoref>. Example:</p>'
    )

"""Layout rules beyond the worker: public-API-only imports, and core modules a reader can take in.

The layout's rules ("Who may import whom" of the architecture notes): a launcher package
imports pycrew's public API only, never its private modules, exactly as a third party's
would; ``pycrew.testing`` does too, so that a plugin in another repository can use it. The
public API is ``pycrew`` itself (the names of ``pycrew.__all__``), the scheduler layer
``pycrew.scheduler`` with its public modules ``jobscript`` and ``jobtag``, and
``pycrew.testing``. Read statically, with the worker-side test's :func:`imports_of`
(imports at any depth, also inside functions).

The style guide also asks that modules stay small enough to read in one sitting
(under :data:`LINES_MAX` lines), splitting a file that grows two jobs: checked for core.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import pycrew

REPO = Path(__file__).resolve().parents[3]
CORE = Path(pycrew.__file__).resolve().parent
#: pycrew modules that may be imported by name; ``pycrew.testing`` with its submodules.
PUBLIC_MODULES = ("pycrew", "pycrew.scheduler", "pycrew.scheduler.jobscript", "pycrew.scheduler.jobtag")
PUBLIC_PACKAGES = ("pycrew.testing",)
#: The most lines a module of core may have.
LINES_MAX = 400


def _load_worker_imports() -> ModuleType:
    """test_worker_imports.py as a module (its name hidden, so pytest does not collect its tests twice)."""
    spec = importlib.util.spec_from_file_location("_pycrew_worker_import_rules", Path(__file__).with_name("test_worker_imports.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_worker_imports = _load_worker_imports()


def is_public(module: str) -> bool:
    """Whether importing the pycrew module ``module`` stays within the public API."""
    return module in PUBLIC_MODULES or _worker_imports._within(module, PUBLIC_PACKAGES)


def public_api_violations(source: str, module: str) -> list[str]:
    """What ``module`` (text ``source``) imports of pycrew beyond the public API, one line per import."""
    package = module.removesuffix(".__init__") if module.endswith("__init__") else module.rpartition(".")[0]
    problems = []
    for imp in _worker_imports.imports_of(source, package, public_api=True):
        if imp.module.split(".")[0] == "pycrew" and not is_public(imp.module):
            problems.append(
                f"{module}:{imp.line} imports {imp.module}: private to pycrew; use the public API "
                f"(pycrew.<name>, {', '.join(PUBLIC_MODULES[1:])} or pycrew.testing)"
            )
    return list(dict.fromkeys(problems))  # one line per import statement, not per name


def _modules_under(root: Path, prefix: str = "") -> dict[str, Path]:
    """Every module under the source directory ``root``, by dotted name (``prefix`` + path)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        out[prefix + ".".join(path.relative_to(root).with_suffix("").parts)] = path
    return out


def public_api_users() -> dict[str, Path]:
    """The modules bound to the public API: every launcher package and its tests, the template (and its tests), pycrew.testing."""
    modules: dict[str, Path] = {}
    for src in sorted(REPO.glob("packages/launcher-*/src")):
        modules.update(_modules_under(src))
    for tests in sorted(REPO.glob("packages/launcher-*/tests")):  # a third party's tests could not do more
        modules.update(_modules_under(tests, f"{tests.parent.name.replace('-', '_')}_tests."))
    modules.update(_modules_under(REPO / "examples" / "plugin-template" / "src"))
    modules.update(_modules_under(REPO / "examples" / "plugin-template" / "tests", "plugin_template_tests."))
    modules.update(_modules_under(CORE / "testing", "pycrew.testing."))
    return modules


def test_the_rule_sees_every_launcher_the_template_and_pycrew_testing():
    packages = {name.split(".")[0] for name in public_api_users()}
    launchers = {f"pycrew_{p.name.removeprefix('launcher-')}" for p in REPO.glob("packages/launcher-*")}
    assert len(launchers) >= 8, f"launcher packages not found under {REPO / 'packages'}"
    missing = (launchers | {"pycrew_template", "plugin_template_tests", "pycrew"}) - packages
    assert not missing, f"no modules found for {sorted(missing)}"
    assert "pycrew.testing.scheduler_calls" in public_api_users()


def test_launchers_the_template_and_pycrew_testing_import_only_the_public_api():
    problems = [p for name, path in public_api_users().items() for p in public_api_violations(path.read_text(), name)]
    assert not problems, "imports beyond pycrew's public API:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from pycrew.wire.protocol import TOKEN_ENV\n", "pycrew.wire.protocol"),
        ("from pycrew.plugin_api import WorkerCall\n", "pycrew.plugin_api"),
        ("def f():\n    import pycrew.control.scaler\n", "pycrew.control.scaler"),
        ("from pycrew import plugins\n", "pycrew.plugins"),
        ("from pycrew import errors\n", "pycrew.errors"),
        ("from pycrew.scheduler.cli import SchedulerCLI\n", "pycrew.scheduler.cli"),
        ("from pycrew.scheduler import commands\n", "pycrew.scheduler.commands"),
        ("from ..wire import protocol\n", "pycrew.wire.protocol"),
    ],
)
def test_the_rule_catches_a_private_import(source, bad):
    problems = public_api_violations(source, "pycrew.testing.example")
    assert any(f"imports {bad}:" in p for p in problems), f"{source!r} gave {problems}, expected one naming {bad}"


def test_the_rule_allows_the_public_api():
    source = (
        "import pycrew\nfrom pycrew import TOKEN_ENV, WorkerCall, testing\nfrom pycrew.scheduler import jobscript\n"
        "from pycrew.scheduler.jobtag import encode\nfrom pycrew.testing.harness import wait_until\n"
        "import pycrew.testing\nfrom . import tasks\nimport pycrew_sge.qstat\n"
    )
    assert public_api_violations(source, "pycrew.testing.example") == []


def test_core_modules_stay_under_the_line_aim():
    sizes = {path.relative_to(CORE.parent): len(path.read_text().splitlines()) for path in CORE.rglob("*.py")}
    assert len(sizes) > 50, f"core modules not found under {CORE}"
    long = {str(path): n for path, n in sorted(sizes.items()) if n >= LINES_MAX}
    assert not long, f"core modules of {LINES_MAX} lines or more (split them along a seam): {long}"

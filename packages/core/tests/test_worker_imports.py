"""Import rules: the worker side (pycrew.worker, pycrew.wire) imports nothing of the controller side.

A worker runs in a container with nothing but pycrew and the user's code, so neither its
modules nor what they import may pull in the controller, the plugin machinery or their
dependencies. Checked twice: statically (every import statement of every worker-side
module, at any depth, read with :mod:`ast`) and in a fresh interpreter (what importing
every worker-side module actually loads).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import pycrew

CORE = Path(pycrew.__file__).resolve().parent
#: The worker side: these packages, and which pycrew packages each may import.
ALLOWED: dict[str, tuple[str, ...]] = {
    "pycrew.worker": ("pycrew.worker", "pycrew.wire"),
    "pycrew.wire": ("pycrew.wire", "pycrew.loglimit"),
}
#: Never imported by the worker side, at any depth (also inside functions).
FORBIDDEN = (
    "pycrew.control",
    "pycrew.plugins",
    "pycrew.plugin_api",
    "pycrew.config",
    "pycrew.cli",
    "pluggy",
    "tqdm",
    "asyncio",
)
#: Imported by the worker side only inside functions (when a feature is used), never at import time.
LAZY_ONLY = ("psutil",)
#: Modules a worker must never load: the controller side and its dependencies.
CONTROLLER_SIDE = (
    "pycrew.controller",
    "pycrew.control",
    "pycrew.plugins",
    "pycrew.plugin_api",
    "pycrew.config",
    "pycrew.cli",
    "pycrew.monitor",
    "pluggy",
    "psutil",
    "tqdm",
    "asyncio",
)


@dataclass(frozen=True)
class Import:
    """One imported module: where, and whether it runs at import time (outside any function)."""

    module: str
    line: int
    at_import_time: bool


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports_of(source: str, package: str, public_api: bool = False) -> list[Import]:
    """Every module ``source`` imports; ``from pycrew import X`` counts as the module defining X.

    Args:
        source: a module's text.
        package: the package the module belongs to (for relative imports).
        public_api: count ``from pycrew import X`` of a public name X (``pycrew.__all__``) as
            ``pycrew``, the public API, rather than the module that defines X.
    """
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([base] if base else []))
                if base == "pycrew":  # a submodule, or a lazy public name that loads its module
                    found.extend(
                        Import(_from_pycrew(alias.name, public_api), child.lineno, not in_function) for alias in child.names
                    )
                elif base.startswith("pycrew."):  # from a pycrew package: a submodule, or a name
                    found.extend(Import(_submodule(base, alias.name), child.lineno, not in_function) for alias in child.names)
                else:
                    found.append(Import(base, child.lineno, not in_function))
            visit(child, nested)

    visit(ast.parse(source), False)
    return found


def _submodule(package: str, name: str) -> str:
    """``package.name`` if that is a module of pycrew (``from pycrew.wire import protocol``), else ``package``."""
    path = CORE.joinpath(*package.split(".")[1:], name)
    return f"{package}.{name}" if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else package


def _from_pycrew(name: str, public_api: bool) -> str:
    """The module ``from pycrew import name`` stands for."""
    if public_api and name in pycrew.__all__:
        return "pycrew"
    return pycrew._WHERE.get(name, f"pycrew.{name}")


def rule_violations(source: str, module: str) -> list[str]:
    """What ``module`` (with text ``source``) imports against the rules, one line per problem."""
    side = next(s for s in ALLOWED if _within(module, (s,)))
    package = module if module.endswith("__init__") else module.rpartition(".")[0]
    problems = []
    for imp in imports_of(source, package.removesuffix(".__init__")):
        where = f"{module}:{imp.line} imports {imp.module}"
        if _within(imp.module, FORBIDDEN):
            problems.append(f"{where}: controller side or its dependency")
        elif imp.module.split(".")[0] == "pycrew" and not _within(imp.module, ALLOWED[side]):
            problems.append(f"{where}: {side} may import only {', '.join(ALLOWED[side])}")
        elif _within(imp.module, LAZY_ONLY) and imp.at_import_time:
            problems.append(f"{where} at import time: import it inside the function that needs it")
    return problems


def worker_side_modules() -> dict[str, Path]:
    """Every module of the worker side, by dotted name."""
    out: dict[str, Path] = {}
    for side in ALLOWED:
        root = CORE / side.split(".", 1)[1]
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(CORE.parent).with_suffix("")
            out[".".join(rel.parts)] = path
    return out


def test_the_worker_side_has_the_modules_this_test_checks():
    modules = worker_side_modules()
    for expected in ("pycrew.worker.loop", "pycrew.worker.command", "pycrew.wire.protocol", "pycrew.wire.transport.__init__"):
        assert expected in modules, f"{expected} not found among {sorted(modules)}"


def test_no_worker_side_module_imports_the_controller_side():
    problems = [p for name, path in worker_side_modules().items() for p in rule_violations(path.read_text(), name)]
    assert not problems, "worker-side import rules broken:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio\n", "imports asyncio: controller side"),
        ("def f():\n    from pycrew.control import dispatcher\n", "imports pycrew.control.dispatcher: controller side"),
        ("from pycrew import WorkerCall\n", "imports pycrew.plugin_api: controller side"),
        ("from pycrew import results\n", "imports pycrew.results: pycrew.worker may import only"),
        ("from .. import config\n", "imports pycrew.config: controller side"),
        ("import psutil\n", "imports psutil at import time"),
        ("if True:\n    import tqdm.auto\n", "imports tqdm.auto: controller side"),
    ],
)
def test_the_rule_check_catches_a_forbidden_import(source, expected):
    problems = rule_violations(source, "pycrew.worker.example")
    assert any(expected in p for p in problems), f"{source!r} gave {problems}, expected one with {expected!r}"


def test_the_rule_check_allows_lazy_psutil_and_the_worker_side():
    source = "from pycrew.wire import protocol\nfrom pycrew.worker.command import WorkerCommand\ndef f():\n    import psutil\n"
    assert rule_violations(source, "pycrew.worker.example") == []


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(out.stdout.splitlines()[-1]))


#: Worker-side modules that load a third-party library with its own imports: pynng itself
#: imports asyncio, so the ``nng`` transport (and its link module) is loaded only when a worker chooses it.
LOADED_ON_DEMAND = ("pycrew.wire.transport.nng", "pycrew.wire.transport.nng_link")


def test_importing_every_worker_side_module_loads_nothing_of_the_controller_side():
    names = [n.removesuffix(".__init__") for n in worker_side_modules() if not n.endswith("__main__")]
    names = [n for n in names if n not in LOADED_ON_DEMAND]
    loaded = _modules_after("\n".join(f"import {n}" for n in names))
    bad = [m for m in loaded if _within(m, CONTROLLER_SIDE)]
    assert not bad, f"the worker side loads controller-side modules: {bad}"
    assert not set(LOADED_ON_DEMAND) & set(loaded), "a transport loaded without being chosen"
    ours = {m for m in loaded if _within(m, ("pycrew",))}
    allowed = {"pycrew", "pycrew.loglimit"}
    assert {m for m in ours if not _within(m, tuple(ALLOWED))} <= allowed, sorted(ours)


def test_a_starting_worker_does_not_load_cloudpickle():
    """A task pickled by reference needs no cloudpickle; one pickled by value imports it itself."""
    names = [n.removesuffix(".__init__") for n in worker_side_modules() if not n.endswith("__main__")]
    names = [n for n in names if n not in LOADED_ON_DEMAND]
    loaded = _modules_after("\n".join(f"import {n}" for n in names))
    assert not [m for m in loaded if _within(m, ("cloudpickle",))], "cloudpickle is imported at worker start"


def test_the_worker_package_alone_loads_only_itself():
    loaded = _modules_after("import pycrew.worker")
    assert [m for m in loaded if _within(m, ("pycrew",))] == ["pycrew", "pycrew.worker"], (
        "import pycrew.worker must stay light: a controller imports pycrew.worker.command through WorkerCall"
    )


def test_every_worker_side_module_is_importable_by_name():
    package = __import__("pycrew.worker", fromlist=["_"])
    found = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert {"command", "loop", "results", "execution", "sampling", "__main__"} <= found, found


def test_import_pycrew_alone_loads_no_submodule():
    loaded = _modules_after("import pycrew")
    assert [m for m in loaded if m.startswith("pycrew.")] == []


def test_every_public_name_resolves_and_is_listed():
    for name in pycrew.__all__:
        assert getattr(pycrew, name) is not None, name
    assert set(pycrew._WHERE) | {"__version__", "hookimpl", "metrics"} == set(pycrew.__all__)
    assert "Controller" in dir(pycrew)


def test_an_unknown_name_is_an_attribute_error():
    try:
        pycrew.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("pycrew.NoSuchThing did not raise AttributeError")


def test_the_worker_exit_is_loaded_when_asked_for():
    loaded = _modules_after("from pycrew.worker import exit_process\nassert exit_process.__module__ == 'pycrew.worker.exiting'")
    assert "pycrew.worker.exiting" in loaded
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import pycrew.worker

        pycrew.worker.nothing  # noqa: B018

"""Local workers import from the controller's sys.path, as multiprocessing's children do.

A task function from a module next to the controller's script travels by reference: the
worker must find that module. And a file of the worker's working directory named as a
standard module must not replace it in the worker (``python -P``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

import pycrew
from pycrew_local import LocalOptions


def module_on_the_controllers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A module only this process's sys.path finds (not installed, not in the workers' cwd)."""
    name = f"next_to_the_script_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / f"{name}.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(tmp_path)
    return importlib.import_module(name)


def test_a_task_from_a_module_on_the_controllers_path_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = module_on_the_controllers_path(tmp_path, monkeypatch)
    with pycrew.controller("local", workers=1) as c:
        assert c.submit(module.double, 21).result(timeout=60) == 42
        worker_path = c.submit(lambda: list(sys.path)).result(timeout=60)
    controllers = list(dict.fromkeys(json.loads(pycrew.sys_path_environment()[pycrew.SYS_PATH_ENV])))
    assert worker_path[: len(controllers)] == controllers, "the worker's path starts with the controller's, in order"
    assert os.path.realpath(worker_path[-1]) == os.path.realpath(tmp_path), "the worker's working directory comes last"


def test_with_inherit_sys_path_false_the_worker_keeps_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = module_on_the_controllers_path(tmp_path, monkeypatch)
    with pycrew.controller("local", workers=1, inherit_sys_path=False) as c, pytest.raises(ModuleNotFoundError):
        c.submit(module.double, 21).result(timeout=60)


def test_a_file_in_the_workers_directory_named_as_a_standard_module_does_not_replace_it(tmp_path: Path) -> None:
    # json: imported by the worker at start-up (it failed to start); queue: by the task.
    for stdlib in ("json", "queue"):
        (tmp_path / f"{stdlib}.py").write_text(f"raise ImportError('the {stdlib}.py of the working directory was imported')\n")
    (tmp_path / "own_module_here.py").write_text("VALUE = 42\n")

    def probe() -> tuple[int, str]:
        import queue

        import own_module_here  # type: ignore[import-not-found]

        return own_module_here.VALUE, queue.__file__

    with pycrew.controller("local", workers=1, cwd=str(tmp_path), launch_max=1) as c:
        value, queue_file = c.submit(probe).result(timeout=60)
    assert value == 42, "a module of the working directory is still importable"
    assert Path(queue_file).parent != tmp_path, queue_file


def test_only_workers_of_the_controllers_interpreter_share_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LocalOptions().shares_sys_path()
    assert not LocalOptions(inherit_sys_path=False).shares_sys_path()
    assert not LocalOptions(env={pycrew.SYS_PATH_ENV: "[]"}).shares_sys_path(), "env sets it: the user's value wins"
    # Another path to the same binary is another interpreter: a venv's python, linked
    # elsewhere, finds no pyvenv.cfg and runs with the base installation's site-packages.
    other = tmp_path / "python"
    other.symlink_to(sys.executable)
    assert not LocalOptions(python=str(other)).shares_sys_path()
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert LocalOptions(python=os.path.basename(sys.executable)).shares_sys_path(), "a bare name is found on PATH"
    # Another name of the same interpreter in the same directory (a venv's bin/python3 beside the
    # bin/python the controller runs) is the same environment: a probe's workers lost the path.
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    (bin_dir / "python").symlink_to("python3")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    assert LocalOptions(python=str(bin_dir / "python3")).shares_sys_path()
    assert not LocalOptions(python=os.path.realpath(sys.executable)).shares_sys_path(), "the base interpreter: another environment"


def test_a_path_object_on_the_controllers_path_does_not_stop_the_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", [*sys.path, tmp_path, None])  # programs put such things there
    with pycrew.controller("local", workers=1, launch_max=1) as c:
        assert c.submit(abs, -7).result(timeout=60) == 7
        assert str(tmp_path) in c.submit(lambda: list(sys.path)).result(timeout=60)

"""Scenario 16 of the conformance suite: workers see the controller's files (capability ``shared_files``).

A launcher whose workers run where the controller's files are (its own machine, or the
nodes of a cluster sharing its file system) promises what ``multiprocessing`` gives a
child: the task runs in the controller's working directory, and a function the controller
imports from a module on its ``sys.path`` (``helpers.py`` next to its script, or a
directory it added) is imported by the worker too. Without that, code that runs on the
``local`` launcher fails on a cluster with ``ModuleNotFoundError``, or opens the wrong
relative paths.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from pathlib import Path

import pytest

import pycrew
from pycrew.testing.harness import describe
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures, require

_MODULE = '''\
import os


def where():
    """The working directory and this module's file, as the worker sees them."""
    return os.getcwd(), __file__
'''


class FilesTests(SuiteFixtures):
    """Scenario 16: the controller's working directory and import path, on the workers."""

    def test_16_workers_start_in_the_controllers_directory_and_import_from_its_path(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A task imported from a directory on the controller's ``sys.path`` (not the working
        directory) runs, and finds the controller's working directory as its own."""
        require(launcher_spec, "shared_files")
        name = f"pycrew_suite_where_{secrets.token_hex(4)}"
        library = tmp_path / "library"
        library.mkdir()
        (library / f"{name}.py").write_text(_MODULE)
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.syspath_prepend(str(library))
        monkeypatch.chdir(work)
        try:
            module = importlib.import_module(name)
            c = controllers(workers=1)
            c.push(module.where, name="where")
            assert c.wait(timeout=2 * launcher_config.seconds_timeout), f"the task did not finish{describe(c)}"
            [result] = c.collect()
        finally:
            sys.modules.pop(name, None)
        assert result.ok, (
            f"the task failed: {result.error}. A worker of a launcher declaring 'shared_files' must import "
            f"what the controller's sys.path finds (here {library}): pass it the path "
            "(pycrew.sys_path_environment(), and start it with python -P)"
        )
        cwd, file = result.result
        assert os.path.realpath(cwd) == os.path.realpath(work), (
            f"the task ran in {cwd}, not in the controller's working directory {work}: "
            "start workers there (or in the directory the launcher's options name)"
        )
        assert os.path.realpath(file) == os.path.realpath(library / f"{name}.py"), (
            f"the worker imported {name} from {file}, not from the controller's {library}"
        )

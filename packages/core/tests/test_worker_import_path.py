"""A worker adopts the import path its launcher passes (pycrew.worker.import_path)."""

from __future__ import annotations

import json
import os
import sys

import pytest

import pycrew
from pycrew.worker.import_path import adopt, encode


@pytest.fixture
def own_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A sys.path of this test's own (adopt changes the list in place; put back after)."""
    path = ["/worker/own", "/usr/lib/python3", "/shared"]
    monkeypatch.setattr(sys, "path", list(path))
    return path


def test_the_controllers_path_comes_first_then_the_workers_own_then_its_working_directory(own_path: list[str]) -> None:
    environ = {pycrew.SYS_PATH_ENV: json.dumps(["/scripts", "/shared", "/usr/lib/python3"]), "OTHER": "1"}
    assert adopt(environ) is None
    assert sys.path == ["/scripts", "/shared", "/usr/lib/python3", "/worker/own", os.getcwd()]
    assert environ == {"OTHER": "1"}, "the variable is removed, so that tasks and their children do not see it"


def test_without_the_variable_the_path_is_left_alone(own_path: list[str]) -> None:
    assert adopt({}) is None
    assert sys.path == own_path


@pytest.mark.parametrize(("value", "why"), [("[/scripts", "not JSON"), ('{"a": 1}', "not a JSON list of strings"), ("[1, 2]", "not a JSON list of strings")])
def test_a_malformed_value_is_ignored_with_a_reason(own_path: list[str], value: str, why: str) -> None:
    problem = adopt({pycrew.SYS_PATH_ENV: value})
    assert problem is not None and why in problem and pycrew.SYS_PATH_ENV in problem, problem
    assert sys.path == own_path


def test_the_controllers_empty_entry_means_its_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    assert json.loads(encode(["", "/a"], "/controller/cwd")) == ["/controller/cwd", "/a"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", "/a"])
    [(name, value)] = pycrew.sys_path_environment().items()
    assert (name, json.loads(value)) == (pycrew.SYS_PATH_ENV, [str(tmp_path), "/a"])


def test_entries_that_are_not_strings_travel_as_the_paths_they_name(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(sys, "path", [tmp_path / "as-path", b"/as/bytes", 42, None, "/plain"])
    [value] = pycrew.sys_path_environment().values()
    assert json.loads(value) == [str(tmp_path / "as-path"), "/as/bytes", "/plain"]


def test_a_relative_entry_travels_as_the_directory_it_names_from_the_controller() -> None:
    """``sys.path.append("src")`` names the controller's ``src``: a worker started in another
    directory (the launchers' ``cwd`` option) finds the same one."""
    assert json.loads(encode(["src", "/abs", "../up"], "/controller/cwd")) == [
        "/controller/cwd/src", "/abs", "/controller/cwd/../up",
    ]
    assert json.loads(encode(["src", ""], "")) == ["src"], "without a working directory it stays relative"

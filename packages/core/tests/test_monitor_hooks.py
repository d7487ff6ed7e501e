"""A launcher whose monitor hooks misbehave: a PluginError naming it, and ``Error: ...`` (exit code 1) from the CLI.

The launcher is a real distribution (a ``*.dist-info`` folder and a module on ``sys.path``)
for :class:`pycrew.Monitor`, and a plugin registered in code for the ``pycrew`` command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from distributions import write_distribution

import pycrew
from pycrew import cli
from pycrew.errors import PluginError
from pycrew.plugins import PluginRegistry

#: What a misbehaving pycrew_list_workers returns (or does), by name.
BAD_LISTS = {
    "str": ("'not a list'", r"returned a str, 'not a list', from pycrew_list_workers"),
    "dicts": ("[{'id': 'x'}]", r"returned a list from pycrew_list_workers whose element 0 is a dict, \{'id': 'x'\}"),
    "second": ("[WORKER, 'w2']", r"returned a list from pycrew_list_workers whose element 1 is a str, 'w2', not a"),
    "raises": ("boom()", r"failed in pycrew_list_workers: RuntimeError: the platform's API is down"),
}

MODULE = """\
import pycrew

WORKER = pycrew.WorkerInfo(id="w1", handle="h1", launcher="badlist")


def boom():
    raise RuntimeError("the platform's API is down")


class Plugin:
    @pycrew.hookimpl
    def pycrew_register_launchers(self, register):
        register("badlist", pycrew.LauncherOptions)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher, controller_id):
        return {returned}


plugin = Plugin()
"""


@pytest.mark.parametrize("bad", list(BAD_LISTS))
def test_monitor_list_names_the_plugin_and_what_its_hook_returned(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    returned, said = BAD_LISTS[bad]
    module = f"badlist_plugin_{bad}"
    write_distribution(
        tmp_path, "badlist-plugin", f"[pycrew.launchers]\nbadlist = {module}:plugin\n", {module: MODULE.format(returned=returned)}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monitor = pycrew.Monitor("badlist", registry=PluginRegistry())
    for call in (monitor.list, monitor.orphans, lambda: monitor.logs("w1")):
        with pytest.raises(PluginError, match=r"launcher 'badlist' \(plugin 'badlist' of distribution badlist-plugin 0\.1"
                           r"\) " + said):
            call()


@dataclass(frozen=True)
class BadOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "badmon"


class BadMonitor:
    """A launcher registered in code whose list hook returns ``listed`` or raises ``raises``; the others raise."""

    def __init__(self, listed: Any = None, raises: BaseException | None = None) -> None:
        self.listed = listed
        self.raises = raises

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: pycrew.RegisterLauncher) -> None:
        register("badmon", BadOptions, summary="a monitor that misbehaves")

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> Any:
        if self.raises is not None:
            raise self.raises
        return self.listed

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        raise ValueError(f"cannot terminate {list(handles)}")

    @pycrew.hookimpl
    def pycrew_worker_logs(self, launcher: pycrew.LauncherInfo, handle: Any, lines: int | None) -> str | None:
        raise KeyError(handle)


@pytest.fixture
def badmon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BadMonitor]:
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    plugin = BadMonitor()
    pycrew.register(plugin, name="badmon-test")
    try:
        yield plugin
    finally:
        pycrew.unregister(plugin)


@pytest.mark.parametrize(
    ("listed", "raises", "said"),
    [
        ("not a list", None, "returned a str, 'not a list', from pycrew_list_workers"),
        ([{"id": "x"}], None, "whose element 0 is a dict, {'id': 'x'}, not a pycrew.WorkerInfo"),
        (None, RuntimeError("the platform's API is down"), "failed in pycrew_list_workers: RuntimeError: the platform"),
        (None, SystemExit(3), "failed in pycrew_list_workers: SystemExit: 3"),
        # on 33e082d: a TypeError traceback from WorkerInfo.age
        ([pycrew.WorkerInfo(id="w1", handle="h1", launcher="badmon", started="yesterday")],  # type: ignore[arg-type]
         None, "a WorkerInfo (element 0, id 'w1') whose started is a str, 'yesterday', not epoch seconds"),
    ],
    ids=["str", "dicts", "raises", "exits", "started"],
)
@pytest.mark.parametrize("args", [["list"], ["list", "--orphans"], ["terminate", "--all"]], ids=" ".join)
def test_the_cli_prints_an_error_for_a_misbehaving_list_hook(
    badmon: BadMonitor, listed: Any, raises: BaseException | None, said: str, args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    badmon.listed, badmon.raises = listed, raises
    assert cli.main(["monitor", "badmon", *args]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("Error: launcher 'badmon' (plugin 'badmon-test') "), captured.err
    assert said in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out


def test_the_cli_prints_an_error_for_a_raising_terminate_or_logs_hook(
    badmon: BadMonitor, capsys: pytest.CaptureFixture[str]
) -> None:
    badmon.listed = [pycrew.WorkerInfo(id="w1", handle="h1", launcher="badmon", started=time.time())]
    assert cli.main(["monitor", "badmon", "terminate", "w1"]) == 1
    assert "failed in pycrew_terminate_workers: ValueError: cannot terminate ['h1']" in capsys.readouterr().err
    assert cli.main(["monitor", "badmon", "logs", "w1"]) == 1
    assert "failed in pycrew_worker_logs: KeyError: 'h1'" in capsys.readouterr().err


def test_the_cli_lists_fields_of_any_type_a_plugin_put_in_a_worker_info(
    badmon: BadMonitor, capsys: pytest.CaptureFixture[str]
) -> None:
    badmon.listed = [pycrew.WorkerInfo(id=17, handle="h1", launcher="badmon", host=("node", 1), reason=404)]  # type: ignore[arg-type]
    assert cli.main(["monitor", "badmon", "list"]) == 0
    assert "17" in capsys.readouterr().out


def test_monitoring_the_sequential_controller_says_it_has_no_workers(capsys: pytest.CaptureFixture[str]) -> None:
    """On fce425b ``pycrew monitor sequential list`` suggested ``pip install "pycrew[sequential]"``."""
    with pytest.raises(pycrew.OptionsError, match="sequential controller runs every task in the process"):
        pycrew.Monitor("sequential")
    assert cli.main(["monitor", "sequential", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: the sequential controller") and "pip install" not in err, err

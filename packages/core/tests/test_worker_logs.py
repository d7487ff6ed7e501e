"""Worker logs through core: the pycrew_worker_logs hook, Monitor.logs, Controller.logs and ``pycrew monitor LAUNCHER logs``.

The launchers here are small real plugins registered in code (their hooks are the thing
core routes to); the launchers' own logs are tested in their packages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

import pycrew
from pycrew import cli


@dataclass(frozen=True)
class LogOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "logfake"


@dataclass(frozen=True)
class NoLogOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "nologfake"


def worker_info(wid: str, launcher: str) -> pycrew.WorkerInfo:
    return pycrew.WorkerInfo(
        id=wid, handle=f"h-{wid}", launcher=launcher, controller="c", controller_id="cid", instance=f"i-{wid}",
        worker=1, state="RUNNING", host="node1", started=time.time(),
    )


class LoggingLauncher(pycrew.LauncherPlugin[LogOptions, None]):
    """Lists two workers; each one's output is ten numbered lines naming its handle.

    It keeps output for the listed workers, the ones it launched, and ``h-gone``, a worker
    that is no longer listed (as a scheduler job that left the queue).
    """

    name = "logfake"
    options_type = LogOptions

    def __init__(self) -> None:
        self.asked: list[tuple[Any, int | None]] = []
        self.kept = {"h-w1", "h-w2", "h-gone"}

    def launch(self, launcher: pycrew.LauncherInfo, options: LogOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        self.kept.update(c.instance for c in calls)
        return [c.instance for c in calls]

    def terminate(self, launcher: pycrew.LauncherInfo, options: LogOptions, handles: Sequence[Any]) -> None:
        return None

    def list_workers(self, launcher: pycrew.LauncherInfo, options: LogOptions, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        return [worker_info("w1", self.name), worker_info("w2", self.name)]

    def logs(self, launcher: pycrew.LauncherInfo, options: LogOptions, handle: Any, lines: int | None) -> str | None:
        self.asked.append((handle, lines))
        if handle not in self.kept:
            raise pycrew.LogsUnavailableError(f"logfake keeps no output for handle {handle!r}")
        text = [f"{handle} line {k}\n" for k in range(1, 11)]
        return "".join(text if lines is None else text[-lines:])


class SilentLauncher(LoggingLauncher):
    """The same, without logs (the base class's default)."""

    name = "nologfake"
    options_type = NoLogOptions  # type: ignore[assignment]

    def logs(self, launcher: pycrew.LauncherInfo, options: Any, handle: Any, lines: int | None) -> str | None:
        return super(LoggingLauncher, self).logs(launcher, options, handle, lines)


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def launchers() -> Iterator[tuple[LoggingLauncher, SilentLauncher]]:
    logging_, silent = LoggingLauncher(), SilentLauncher()
    pycrew.register(logging_, name="logfake-test")
    pycrew.register(silent, name="nologfake-test")
    try:
        yield logging_, silent
    finally:
        pycrew.unregister(logging_)
        pycrew.unregister(silent)


def test_monitor_logs_routes_pycrew_worker_logs_to_the_launchers_plugin(launchers: Any) -> None:
    logging_, _ = launchers
    text = pycrew.Monitor("logfake").logs("w2", lines=3)
    assert text == "h-w2 line 8\nh-w2 line 9\nh-w2 line 10\n", text
    assert logging_.asked == [("h-w2", 3)]
    assert pycrew.Monitor("logfake").logs(worker_info("w1", "logfake"), lines=None).count("\n") == 10


def test_monitor_logs_of_a_launcher_without_logs_names_the_launcher(launchers: Any) -> None:
    with pytest.raises(pycrew.LogsUnavailableError, match="launcher 'nologfake' cannot give worker logs \\(worker w1\\)"):
        pycrew.Monitor("nologfake").logs("w1")


def test_monitor_logs_of_an_unknown_id_lists_the_ids_and_the_launchers_reason(launchers: Any) -> None:
    logging_, _ = launchers
    with pytest.raises(pycrew.LogsUnavailableError) as caught:
        pycrew.Monitor("logfake").logs("w9")
    message = str(caught.value)
    assert "no worker with id 'w9' on launcher 'logfake' (listed: w1, w2;" in message, message
    assert "logfake keeps no output for handle 'w9'" in message, message
    assert logging_.asked == [("w9", 200)], "the unlisted id must be tried as the handle"


def test_monitor_logs_of_a_worker_no_longer_listed_uses_the_id_as_handle(launchers: Any) -> None:
    logging_, _ = launchers
    assert pycrew.Monitor("logfake").logs("h-gone", lines=1) == "h-gone line 10\n"
    assert logging_.asked == [("h-gone", 1)]
    result = run("monitor", "logfake", "logs", "h-gone", "--lines", "2")
    assert result.exit_code == 0, result.output
    assert result.output == "h-gone line 9\nh-gone line 10\n"


@pytest.mark.parametrize("lines", [0, -1, 2.5, True, "3"])
def test_logs_rejects_a_bad_lines_value(launchers: Any, lines: Any) -> None:
    with pytest.raises(pycrew.OptionsError, match="lines must be an int >= 1 or None"):
        pycrew.Monitor("logfake").logs("w1", lines=lines)


def test_controller_logs_before_any_launch_and_of_a_bad_slot_are_clear_errors(launchers: Any) -> None:
    c = pycrew.controller("logfake", workers=2)
    with pytest.raises(pycrew.LogsUnavailableError, match="worker 1 of controller 'logfake' has no logs yet"):
        c.logs(1)
    for bad in (0, 3, "1"):
        with pytest.raises(pycrew.OptionsError, match="worker must be a worker slot from 1 to workers=2"):
            c.logs(bad)  # type: ignore[arg-type]


def test_controller_logs_reads_the_slots_last_handle(launchers: Any) -> None:
    c = pycrew.controller("logfake", workers=1, seconds_launch=30)
    try:
        c.start()
        c.push(lambda: 1)
        slot = c.launcher.slots[0]
        deadline = time.monotonic() + 10
        while not slot.last_handle_known and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slot.last_handle_known, "the launch of worker 1 never returned its handle"
        assert c.logs(1, lines=1) == f"{slot.last_handle} line 10\n"
    finally:
        c.terminate()
    assert c.logs(1, lines=2).startswith(f"{slot.last_handle} line 9"), "logs must stay readable after terminate"


def run(*args: str) -> Any:
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


def test_cli_monitor_logs_prints_the_last_lines(launchers: Any) -> None:
    result = run("monitor", "logfake", "logs", "w1", "--lines", "2")
    assert result.exit_code == 0, result.output
    assert result.output == "h-w1 line 9\nh-w1 line 10\n"
    record = json.loads(run("monitor", "logfake", "logs", "w1", "--lines", "1", "--json").output)
    assert record == {"id": "w1", "lines": 1, "logs": "h-w1 line 10\n"}


def test_cli_monitor_logs_of_a_launcher_without_logs_fails_cleanly(launchers: Any) -> None:
    result = run("monitor", "nologfake", "logs", "w1")
    assert result.exit_code == 1
    assert result.output.startswith("Error: launcher 'nologfake' cannot give worker logs"), result.output


def test_cli_monitor_logs_rejects_lines_below_one(launchers: Any) -> None:
    result = run("monitor", "logfake", "logs", "w1", "--lines", "0")
    assert result.exit_code == 2
    assert "--lines" in result.output

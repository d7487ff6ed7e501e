"""Error messages of ``pycrew monitor``: in the command's terms, ids quoted, ``--json`` errors, the state directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

import pycrew
from pycrew import cli, monitor


@dataclass(frozen=True)
class MsgOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "fakemsg"
    zone: str = "a"


class MsgLauncher:
    """Lists fixed workers; reads logs like the local launcher: only by the handle of a listed worker."""

    def __init__(self) -> None:
        self.workers = [self.worker("w1", "live"), self.worker("w2", "dead")]
        self.terminated: list[Any] = []
        self.logs_error: str | None = None  # what the logs hook says of a handle it does not know

    @staticmethod
    def worker(wid: str, controller_id: str) -> pycrew.WorkerInfo:
        return pycrew.WorkerInfo(
            id=wid, handle=("handle", wid), launcher="fakemsg", controller="c", controller_id=controller_id,
            instance=f"i-{wid}", worker=1, state="RUNNING", host="node1", started=time.time() - 5,
        )

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Any) -> None:
        register("fakemsg", MsgOptions, summary="lists fixed workers")

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        return [c.instance for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        self.terminated.extend(handles)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        return [w for w in self.workers if controller_id is None or w.controller_id == controller_id]

    @pycrew.hookimpl
    def pycrew_worker_logs(self, launcher: pycrew.LauncherInfo, handle: Any, lines: int | None) -> str | None:
        if isinstance(handle, tuple):
            return None if handle[1] == "w2" else f"output of {handle[1]}\n"
        raise pycrew.LogsUnavailableError(self.logs_error or (
            f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs a MsgHandle "
            "(from the launch hook or Monitor.list())"))


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as cwd, no user file, private controller records."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def fake() -> Iterator[MsgLauncher]:
    plugin = MsgLauncher()
    pycrew.register(plugin, name="fakemsg-test")
    monitor.register_controller("live", "c", "fakemsg")
    monitor.register_controller("dead", "c", "fakemsg")
    monitor.unregister_controller("dead")  # ended: w2 is an orphan
    try:
        yield plugin
    finally:
        monitor.unregister_controller("live")
        pycrew.unregister(plugin)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


# -- logs of an id the launcher does not know ------------------------------------------------


def test_logs_of_an_unknown_id_says_in_cli_terms_that_it_is_no_worker_and_how_to_list_them(fake: MsgLauncher) -> None:
    """Before, it ended with "it needs a LocalHandle (from the launch hook or Monitor.list())"."""
    result = run("monitor", "fakemsg", "logs", "nope")
    assert result.exit_code == 1, result.output
    assert result.output.startswith(
        "Error: no worker with id 'nope' on launcher 'fakemsg' (listed: 'w1', 'w2'; ended workers included), and 'nope' "
        "is not a job id or handle the launcher reads logs by;"), result.output
    assert result.output.rstrip().endswith("; to see the worker ids, run: pycrew monitor fakemsg list --ended"), result.output
    for api_word in ("Monitor.list", "MsgHandle", "launch hook"):
        assert api_word not in result.output, f"API wording {api_word!r} in a CLI message: {result.output}"


def test_logs_of_an_unknown_id_keeps_the_launchers_own_reason_and_the_options_in_its_hint(fake: MsgLauncher) -> None:
    fake.logs_error = "launcher 'fakemsg': the scheduler does not know the job 'nope' (jobs are kept a few days)"
    result = run("monitor", "fakemsg", "logs", "nope", "-o", "zone=b c")
    assert result.exit_code == 1
    assert "the launcher cannot read logs with it as a job id: launcher 'fakemsg': the scheduler does not know the job" \
        in result.output, result.output
    assert result.output.rstrip().endswith("run: pycrew monitor fakemsg list --ended -o 'zone=b c'"), result.output


def test_logs_of_a_listed_worker_without_output_keeps_the_launchers_message(fake: MsgLauncher) -> None:
    result = run("monitor", "fakemsg", "logs", "w2")
    assert result.exit_code == 1
    assert "launcher 'fakemsg' cannot give worker logs (worker w2)" in result.output, result.output
    assert run("monitor", "fakemsg", "logs", "w1").output == "output of w1\n"


def test_the_monitor_api_keeps_its_own_message_for_an_unknown_id(fake: MsgLauncher) -> None:
    with pytest.raises(pycrew.LogsUnavailableError, match=r"no worker with id 'nope'.*Monitor\.list\(ended=True\)"):
        pycrew.Monitor("fakemsg").logs("nope")


# -- an empty launcher name -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "said"), [("", "is empty"), ("  ", "is blank ('  ')")])
def test_an_empty_launcher_name_is_a_usage_error_listing_the_launchers(fake: MsgLauncher, name: str, said: str) -> None:
    """Before, ``monitor "" list`` advised "Define [profiles.] in pycrew.toml"."""
    result = run("monitor", name, "list")
    assert result.exit_code == 2, result.output
    assert f"Invalid value for 'LAUNCHER': the launcher name {said}; give a launcher's or a profile's name" \
        in result.output, result.output
    assert "fakemsg" in result.output.split("launchers: ")[1], result.output
    assert "[profiles." not in result.output, result.output


# -- ids quoted -------------------------------------------------------------------------------


def test_terminate_of_an_empty_id_quotes_it_and_the_listed_ids(fake: MsgLauncher) -> None:
    """Before: "no worker with id  on launcher ..." (an empty id was invisible)."""
    result = run("monitor", "fakemsg", "terminate", "")
    assert result.exit_code == 1
    assert "no worker with id '' on launcher 'fakemsg'; listed: 'w1', 'w2' (nothing was terminated)" in result.output, \
        result.output
    assert fake.terminated == []


def test_terminate_of_unknown_orphan_ids_names_them_all_quoted(fake: MsgLauncher) -> None:
    result = run("monitor", "fakemsg", "terminate", "--orphans", "w1", "x 1")
    assert result.exit_code == 1
    assert "no orphan worker with ids 'w1', 'x 1' on launcher 'fakemsg'; listed: 'w2'" in result.output, result.output
    assert result.output.rstrip().endswith("to see the worker ids, run: pycrew monitor fakemsg list --orphans"), result.output
    assert fake.terminated == []


# -- errors with --json -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["monitor", "fakemsg", "logs", "nope", "--json"], 1, "no worker with id 'nope'"),
        (["monitor", "fakemsg", "--json", "terminate"], 2, "terminate needs worker ids, --all or --orphans"),
        (["monitor", "fakemsg", "list", "--json", "--bogus"], 2, "No such option '--bogus'"),
        (["launchers", "--json", "extra"], 2, "Got unexpected extra argument"),
    ],
)
def test_an_error_with_json_is_also_a_json_object_on_stdout(
    fake: MsgLauncher, capsys: pytest.CaptureFixture[str], args: list[str], code: int, said: str
) -> None:
    assert cli.main(args) == code
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert error["exit_code"] == code and said in error["error"], error
    assert f"Error: {said}" in err or said in err, "the human message stays on stderr"


def test_an_error_without_json_writes_nothing_on_stdout(fake: MsgLauncher, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["monitor", "fakemsg", "logs", "nope"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Error: no worker with id 'nope'" in err


# -- an unusable state directory --------------------------------------------------------------


@pytest.mark.parametrize("action", ["list", "terminate"])
def test_orphans_with_a_state_dir_that_is_no_directory_fail_naming_the_variable(
    fake: MsgLauncher, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Before: rc 0, "no orphan pycrew workers", no word of the state directory."""
    monkeypatch.setenv("PYCREW_STATE_DIR", "/dev/null")
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", action, "--orphans"])
    assert result.exit_code == 1, result.output
    assert "Error: cannot tell which workers are orphans: PYCREW_STATE_DIR='/dev/null': not a directory." \
        in result.stderr, result.stderr
    assert result.stdout == "" and fake.terminated == []


@pytest.mark.parametrize("action", ["list", "terminate"])
def test_orphans_with_a_missing_state_dir_warn_naming_the_variable(
    fake: MsgLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """A directory that does not exist is what a controller not yet run leaves: a warning (a typo is likely), not a failure."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "typo"))
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", action, "--orphans"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"warning: PYCREW_STATE_DIR={str(tmp_path / 'typo')!r}: the directory does not exist: "
                                    "no controller run with that setting has recorded itself"), result.stderr
    assert fake.terminated == []


def test_a_record_dir_that_is_a_file_is_named(fake: MsgLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "controllers").write_text("")
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "odd"))
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", "list", "--orphans"])
    assert result.exit_code == 1
    assert f"{str(tmp_path / 'odd' / 'controllers')!r} is not a directory" in result.stderr, result.stderr


def test_an_unreadable_state_dir_is_named(fake: MsgLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = tmp_path / "locked" / "controllers"
    records.mkdir(parents=True)
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "locked"))

    def denied(path: Any) -> Any:  # as for a directory without read permission (the tests may run as root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", denied)
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", "list", "--orphans"])
    assert result.exit_code == 1
    assert f"PYCREW_STATE_DIR={str(tmp_path / 'locked')!r}: {str(records)!r} cannot be read: Permission denied" \
        in result.stderr, result.stderr


def test_list_with_an_unusable_state_dir_warns_and_still_lists(fake: MsgLauncher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_STATE_DIR", "/dev/null")
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["orphan"] for r in json.loads(result.stdout)] == [None, None]
    assert "warning: PYCREW_STATE_DIR='/dev/null': not a directory; no controller's record can be read" in result.stderr


def test_an_empty_state_dir_variable_means_the_default_directory(
    fake: MsgLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYCREW_STATE_DIR", "")
    assert monitor.state_dir() == tmp_path / "home" / ".local" / "state" / "pycrew" / "controllers"
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemsg", "list", "--orphans"])
    assert result.exit_code == 0 and result.stderr == "", "no controller has run yet: nothing is wrong"
    assert result.stdout.strip() == "no orphan pycrew workers on launcher 'fakemsg'"

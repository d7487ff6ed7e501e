"""Controller records: running, ended (tombstones) and unknown controllers, as monitors see them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycrew import monitor


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state" / "controllers"


def test_a_terminated_controller_leaves_a_tombstone(state: Path) -> None:
    monitor.register_controller("c1", "name", "local")
    assert monitor.controller_state("c1") == "running" and monitor.controller_alive("c1")
    monitor.unregister_controller("c1")
    record = json.loads((state / "c1.json").read_text())
    assert record["id"] == "c1" and record["name"] == "name" and record["ended"] > time.time() - 60
    assert monitor.controller_state("c1") == "ended" and not monitor.controller_alive("c1")


def test_a_killed_controller_is_ended_and_stays_so(state: Path) -> None:
    """Its record names a process that is gone: ended, and the record says so from then on."""
    proc = subprocess.run(
        [sys.executable, "-c", "from pycrew import monitor; monitor.register_controller('k1', 'n', 'local')"],
        env=os.environ.copy(), check=True, timeout=60,
    )
    assert proc.returncode == 0
    assert json.loads((state / "k1.json").read_text())["ended"] is None
    assert monitor.controller_state("k1") == "ended"
    assert json.loads((state / "k1.json").read_text())["ended"] is not None
    assert monitor.controller_state("k1") == "ended"


@pytest.mark.parametrize("controller_id", [None, "", "never-recorded"])
def test_a_controller_without_a_record_is_unknown(controller_id: str | None) -> None:
    assert monitor.controller_state(controller_id) == "unknown"
    assert not monitor.controller_alive(controller_id)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"pid": "x", "host": HOST}', '{"host": HOST}'])
def test_an_unreadable_record_is_never_running(state: Path, text: str) -> None:
    state.mkdir(parents=True)
    (state / "bad.json").write_text(text.replace("HOST", json.dumps(socket.gethostname())))
    assert monitor.controller_state("bad") in ("unknown", "ended")


def test_a_controller_on_another_host_counts_as_running(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "far.json").write_text(json.dumps({"id": "far", "pid": 1, "create_time": 0, "host": "elsewhere-host"}))
    assert monitor.controller_state("far") == "running"


def test_unregister_without_a_record_still_marks_the_controller_ended(state: Path) -> None:
    """A controller whose record could not be written at start still leaves a tombstone at its end."""
    monitor.unregister_controller("late")
    assert monitor.controller_state("late") == "ended"


def test_old_tombstones_are_pruned_and_running_records_kept(state: Path) -> None:
    monitor.register_controller("old-ended", "n", "local")
    monitor.unregister_controller("old-ended")
    monitor.register_controller("old-running", "n", "local")
    monitor.register_controller("young-ended", "n", "local")
    monitor.unregister_controller("young-ended")
    past = time.time() - monitor.SECONDS_TOMBSTONE - 3600
    ended = json.loads((state / "old-ended.json").read_text())
    (state / "old-ended.json").write_text(json.dumps({**ended, "ended": past}))
    for name in ("old-ended.json", "old-running.json", ".pruned"):  # (pruned an hour ago or more: due now)
        os.utime(state / name, (past, past))
    monitor.register_controller("new", "n", "local")
    assert sorted(p.name for p in state.glob("*.json")) == ["new.json", "old-running.json", "young-ended.json"]


def test_records_are_pruned_at_most_hourly_and_kept_to_a_bounded_number(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On c0da4a1 every start listed and stat'ed every record (a program that started a controller a
    second had its start() slowed by 9 µs a record, 163 ms at 20,000), and 30 days of them were kept."""
    monkeypatch.setattr(monitor, "TOMBSTONES_MAX", 5)
    for i in range(8):
        monitor.register_controller(f"ended-{i}", "n", "local")
        monitor.unregister_controller(f"ended-{i}")
        os.utime(state / f"ended-{i}.json", (time.time() - 100 + i, time.time() - 100 + i))  # ended-0 is the oldest
    monitor.register_controller("running", "n", "local")
    os.utime(state / "running.json", (time.time() - 1000, time.time() - 1000))  # older than all: never removed
    assert len(list(state.glob("*.json"))) == 9, "pruned again within the hour"
    past = time.time() - monitor.SECONDS_PRUNE - 1
    os.utime(state / ".pruned", (past, past))
    monitor.register_controller("new", "n", "local")
    kept = sorted(p.stem for p in state.glob("*.json"))
    assert kept == ["ended-5", "ended-6", "ended-7", "new", "running"], kept


def test_a_record_that_cannot_be_written_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYCREW_STATE_DIR", str(blocker))  # a file: no directory can be made under it
    monitor.register_controller("c", "n", "local")
    monitor.unregister_controller("c")
    text = caplog.text
    assert "could not record controller c" in text and "never listed as orphans" in text, text
    assert "could not mark the record of controller c ended" in text, text


def _dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    """Make a record written ``seconds`` ago (and, never marked ended, started then)."""
    when = time.time() - seconds
    record = json.loads(path.read_text())
    if record["ended"] is None:
        path.write_text(json.dumps({**record, "started": when}))
    else:
        path.write_text(json.dumps({**record, "ended": when}))
    os.utime(path, (when, when))


def _prune_due(state: Path) -> None:
    past = time.time() - monitor.SECONDS_PRUNE - 1
    os.utime(state / ".pruned", (past, past))


def test_records_of_controllers_killed_without_ending_are_pruned_after_the_keep_period(state: Path) -> None:
    """On 45bbb7b the record of a controller killed before it could end it (SIGKILL, the OOM killer,
    os._exit) kept "ended": null and was never pruned, however old: the state directory only grew."""
    subprocess.run(  # a controller's process that ends without ending its record
        [sys.executable, "-c", "import os; from pycrew import monitor; monitor.register_controller('killed', 'n', 'local'); os._exit(9)"],
        env=os.environ.copy(), check=False, timeout=60,
    )
    assert json.loads((state / "killed.json").read_text())["ended"] is None
    monitor.register_controller("pid-reused", "n", "local")  # its pid now names a later process (this one)
    reused = json.loads((state / "pid-reused.json").read_text())
    (state / "pid-reused.json").write_text(json.dumps({**reused, "create_time": reused["create_time"] - 86400}))
    monitor.register_controller("running", "n", "local")  # this process: alive, however old
    (state / "young-killed.json").write_text(json.dumps({**reused, "id": "young-killed", "pid": _dead_pid()}))
    (state / "far.json").write_text(json.dumps({**reused, "id": "far", "host": "elsewhere-host", "pid": _dead_pid()}))
    for name in ("killed", "pid-reused", "running", "far"):  # (far: may still run on its host, so it is kept)
        _age(state / f"{name}.json", monitor.SECONDS_TOMBSTONE + 3600)
    _age(state / "young-killed.json", monitor.SECONDS_TOMBSTONE - 3600)
    _prune_due(state)
    monitor.register_controller("new", "n", "local")
    kept = sorted(p.stem for p in state.glob("*.json"))
    assert kept == ["far", "new", "running", "young-killed"], kept


def test_records_of_controllers_killed_without_ending_count_toward_the_cap(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past TOMBSTONES_MAX records, those of this host's killed controllers go with the ended
    ones, oldest first, whatever their age; running ones, and those of another host, stay."""
    monkeypatch.setattr(monitor, "TOMBSTONES_MAX", 4)
    monitor.register_controller("running", "n", "local")
    record = json.loads((state / "running.json").read_text())
    for i in range(4):
        (state / f"killed-{i}.json").write_text(json.dumps({**record, "id": f"killed-{i}", "pid": _dead_pid()}))
        monitor.register_controller(f"ended-{i}", "n", "local")
        monitor.unregister_controller(f"ended-{i}")
    (state / "far.json").write_text(json.dumps({**record, "id": "far", "host": "elsewhere-host"}))
    for age, name in enumerate(["running", "far", "killed-0", "ended-0", "killed-1", "ended-1", "killed-2",
                                "ended-2", "killed-3", "ended-3"][::-1]):  # running is the oldest
        _age(state / f"{name}.json", 1000 + age)
    _prune_due(state)
    monitor.register_controller("new", "n", "local")  # 11 records, 4 at most: the 7 oldest of the 8 that may go
    kept = sorted(p.stem for p in state.glob("*.json"))
    assert kept == ["ended-3", "far", "new", "running"], kept

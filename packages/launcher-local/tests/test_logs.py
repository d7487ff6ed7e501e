"""The local launcher's worker logs (pycrew_worker_logs): log_dir files and the in-memory tail, with real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_local import LocalHandle, LocalOptions
from pycrew_local.plugin import plugin
from pycrew_local.processes import LOG_ENV, kill_tree, start_worker


def call(instance: str) -> pycrew.WorkerCall:
    args = ("-m", "pycrew.worker", "--url", "tcp://127.0.0.1:9", "--instance", instance, "--worker", "1",
            "--launcher", "local", "--controller", "unit", "--controller-id", "c0ffee0002")
    return pycrew.WorkerCall(args=args, python=sys.executable, env={}, token="0" * 64, name=f"pycrew-unit-1-{instance}",
                             launcher="local", worker=1, instance=instance, controller="unit", controller_id="c0ffee0002")


def fake_python(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def logs(handle: object, lines: int | None, **options: object) -> str | None:
    return plugin.pycrew_worker_logs(launcher=pycrew.LauncherInfo("local", LocalOptions(**options)), handle=handle, lines=lines)  # type: ignore[arg-type]


def test_a_task_s_output_is_in_controller_logs_while_and_after_the_worker_runs() -> None:
    def shout(word: str) -> str:
        print(f"task says {word}", flush=True)
        return word

    with pycrew.controller("local", workers=1) as c:
        assert c.submit(shout, "alpha").result(timeout=60) == "alpha"
        wait_until(lambda: "task says alpha" in c.logs(worker=1), 10, f"a running worker's output lacks the print: {c.logs(1)!r}")
    assert "task says alpha" in c.logs(worker=1, lines=None), "the output must stay readable after terminate"
    assert c.logs(1, lines=1).strip() != "" and c.logs(1, lines=1).count("\n") <= 1


def test_with_log_dir_monitor_logs_reads_a_running_worker_s_file(tmp_path: Path, handles: list[LocalHandle]) -> None:
    python = fake_python(tmp_path, "for i in 1 2 3 4 5; do echo \"line $i\"; done\nexec sleep 60")
    options = LocalOptions(python=python, log_dir=str(tmp_path / "logs"))
    handles.append(start_worker(call("feed0002"), options))
    log = tmp_path / "logs" / "pycrew-unit-1-feed0002.log"
    wait_until(lambda: log.exists() and "line 5" in log.read_text(), 15, "the worker wrote no log")
    assert log.stat().st_mode & 0o077 == 0, f"{oct(log.stat().st_mode)}: other users could read the tasks' output"
    # Past its exec: during one, /proc/PID/environ of the process can read as empty, even
    # once its name is the new program's (the kernel sets the name before the new memory's
    # environment bounds): wait for the variable itself.
    wait_until(
        lambda: psutil.Process(handles[0].pid).name() == "sleep" and LOG_ENV in psutil.Process(handles[0].pid).environ(),
        15,
        "the fake worker never reached its sleep",
    )
    assert logs(handles[0], 2) == "line 4\nline 5\n"
    assert logs(handles[0], None) == "line 1\nline 2\nline 3\nline 4\nline 5\n"
    # a handle this process does not know: found through the running process's environment
    foreign = LocalHandle(handles[0].pid, handles[0].create_time)
    from pycrew_local import children

    with children.CHILDREN_LOCK:
        child = children.CHILDREN.pop(handles[0])
    try:
        assert logs(foreign, 1) == "line 5\n", "a worker started elsewhere is found by its PYCREW_LOCAL_LOG"
    finally:
        with children.CHILDREN_LOCK:
            children.CHILDREN[handles[0]] = child


def test_without_log_dir_an_ended_worker_s_tail_outlives_its_termination(tmp_path: Path, handles: list[LocalHandle]) -> None:
    python = fake_python(tmp_path, "echo 'out line'\necho 'err line' >&2\nexit 2")
    handle = start_worker(call("feed0003"), LocalOptions(python=python))
    handles.append(handle)
    wait_until(lambda: "err line" in (logs(handle, None) or ""), 15, "the worker's output never arrived")
    kill_tree(handle)
    assert logs(handle, None) == "out line\nerr line\n"
    assert logs(handle, 1) == "err line\n"


def test_logs_of_a_worker_without_kept_output_say_to_set_log_dir() -> None:
    with pytest.raises(pycrew.LogsUnavailableError, match="set the launcher option log_dir"):
        logs(LocalHandle(2**22 + 7, 1.0), 10)
    with pytest.raises(pycrew.LogsUnavailableError, match="needs a LocalHandle"):
        logs("1234", 10)


def test_the_last_lines_of_a_large_log_are_read_from_its_end(tmp_path: Path, handles: list[LocalHandle]) -> None:
    """``logs(lines=3)`` of a 40 MB log reads its end only: reading the whole file first took
    the controller from 30 MB to 340 MB for a 100 MB log (a probe, on c9e0b43)."""
    import tracemalloc

    python = fake_python(tmp_path, "yes 'line of a chatty task' | head -n 2000000\necho 'last one'\nexec sleep 60")
    options = LocalOptions(python=python, log_dir=str(tmp_path / "logs"))
    handles.append(start_worker(call("feed0003"), options))
    log = tmp_path / "logs" / "pycrew-unit-1-feed0003.log"

    def written() -> bool:
        if not log.exists() or log.stat().st_size < 40_000_000:
            return False
        with log.open("rb") as f:
            f.seek(-9, 2)
            return f.read() == b"last one\n"

    wait_until(written, 30, "the worker wrote no 40 MB log ending in 'last one'")
    tracemalloc.start()
    try:
        text = logs(handles[0], 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text == "line of a chatty task\n" * 2 + "last one\n", text
    assert peak < 2_000_000, f"{peak:,} bytes allocated to read 3 lines"

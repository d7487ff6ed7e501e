"""The local launcher's processes: ended workers are reported with exit code and output until terminated."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_local import LocalOptions, children
from pycrew_local.processes import TAIL_BYTES, TAIL_LINES, kill_tree, list_workers, start_worker


def call(instance: str = "feed0001", controller_id: str = "c0ffee0001") -> pycrew.WorkerCall:
    args = ("-m", "pycrew.worker", "--url", "tcp://127.0.0.1:9", "--instance", instance, "--worker", "1",
            "--launcher", "local", "--controller", "unit", "--controller-id", controller_id)
    return pycrew.WorkerCall(args=args, python=sys.executable, env={}, token="0" * 64, name=f"pycrew-unit-1-{instance}",
                             launcher="local", worker=1, instance=instance, controller="unit", controller_id=controller_id)


def script(tmp_path: Path, body: str, name: str = "fake-python") -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def ended(controller_id: str) -> list[pycrew.WorkerInfo]:
    return [w for w in list_workers(controller_id) if w.ended]


def test_an_ended_worker_is_listed_with_exit_code_and_output_until_terminated(tmp_path, handles):
    python = script(tmp_path, "echo 'first line'\necho 'No module named pycrew' >&2\nexit 3")
    handles.append(start_worker(call(), LocalOptions(python=python)))
    [worker] = wait_until(lambda: ended("c0ffee0001"), 15, "the exited worker is not listed as ended")
    assert (worker.status, worker.exit_code, worker.state, worker.instance, worker.worker) == ("failed", 3, "exited", "feed0001", 1)
    assert worker.reason == "first line\nNo module named pycrew", worker.reason
    assert worker.handle == handles[0] and worker.pid == handles[0].pid
    assert ended("another-controller") == [], "an ended worker is listed for its own controller only"
    monitor = pycrew.Monitor("local")
    assert monitor.list("c0ffee0001") == [], "Monitor.list shows live workers only"
    assert [w.instance for w in monitor.list("c0ffee0001", ended=True)] == ["feed0001"]
    kill_tree(handles[0])
    assert ended("c0ffee0001") == [], "a terminated worker is still reported"


def test_a_clean_exit_is_done_and_a_signal_is_named(tmp_path, handles):
    handles.append(start_worker(call("feed0002"), LocalOptions(python=script(tmp_path, "exit 0"))))
    handles.append(start_worker(call("feed0003"), LocalOptions(python=script(tmp_path, "kill -9 $$", "killed-python"))))
    found = wait_until(lambda: len(ended("c0ffee0001")) == 2 and ended("c0ffee0001"), 15, "the workers did not end")
    by_instance = {w.instance: w for w in found}
    assert (by_instance["feed0002"].status, by_instance["feed0002"].exit_code) == ("done", 0)
    assert by_instance["feed0002"].reason == "it wrote no output"
    assert (by_instance["feed0003"].status, by_instance["feed0003"].exit_code) == ("failed", 137)
    assert by_instance["feed0003"].reason == "killed by SIGKILL; it wrote no output"


def test_only_the_end_of_a_long_output_is_kept(tmp_path, handles):
    python = script(tmp_path, "i=0; while [ $i -lt 5000 ]; do echo \"line $i $(printf '%0100d' 0)\"; i=$((i+1)); done\nexit 1")
    handles.append(start_worker(call(), LocalOptions(python=python)))
    [worker] = wait_until(lambda: ended("c0ffee0001"), 30, "the worker did not end")
    lines = worker.reason.splitlines()
    assert len(lines) == TAIL_LINES and lines[-1].startswith("line 4999 "), lines[-3:]
    output = children.CHILDREN[handles[0]].output
    assert output is not None and len(output._buf) <= 2 * TAIL_BYTES, "more than the tail of the output was kept in memory"


def test_with_log_dir_the_output_goes_to_the_log_and_is_quoted_from_it(tmp_path, handles):
    python = script(tmp_path, "echo 'bad interpreter'\nexit 4")
    handles.append(start_worker(call(), LocalOptions(python=python, log_dir=str(tmp_path / "logs"))))
    [worker] = wait_until(lambda: ended("c0ffee0001"), 15, "the worker did not end")
    assert (worker.exit_code, worker.reason) == (4, "bad interpreter")
    assert worker.log and Path(worker.log).read_text() == "bad interpreter\n"


@pytest.fixture
def shadow_worker(tmp_path: Path) -> Iterator[Callable[[list[str]], None]]:
    """Processes whose command line is ``python -m pycrew.worker ...`` but that only sleep.

    A ``pycrew`` package earlier on ``PYTHONPATH`` stands in for the real one, so the
    command line is exactly a worker's while nothing connects anywhere.
    """
    (tmp_path / "shadow" / "pycrew" / "worker").mkdir(parents=True)
    (tmp_path / "shadow" / "pycrew" / "__init__.py").write_text("")
    (tmp_path / "shadow" / "pycrew" / "worker" / "__init__.py").write_text("")
    (tmp_path / "shadow" / "pycrew" / "worker" / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
        started.append(subprocess.Popen(argv, env=env))

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def listed(controller_id: str) -> list[pycrew.WorkerInfo]:
    return [w for w in list_workers(controller_id) if not w.ended]


def test_a_worker_of_another_version_is_listed_from_its_command_line(shadow_worker):
    args = [*call("feed0004", "c0ffee0004").args, "--garbage-collection", "--option-of-a-newer-version", "1"]
    shadow_worker([sys.executable, "-u", *args])
    [worker] = wait_until(lambda: listed("c0ffee0004"), 15, "the worker process is not listed")
    assert (worker.instance, worker.worker, worker.controller, worker.launcher) == ("feed0004", 1, "unit", "local")


def test_a_process_that_only_mentions_the_worker_module_is_not_listed(shadow_worker):
    """``python -c CODE -m pycrew.worker ...`` runs CODE: it is no worker, and terminating it would hurt a bystander."""
    worker_args = call("feed0005", "c0ffee0005").args
    shadow_worker([sys.executable, "-c", "import time; time.sleep(60)", *worker_args])
    shadow_worker([sys.executable, *call("feed0006", "c0ffee0005").args])  # a real one, as a witness
    found = wait_until(lambda: listed("c0ffee0005"), 15, "the witness worker is not listed")
    assert [w.instance for w in found] == ["feed0006"], [(w.instance, w.pid) for w in found]


def _fork_a_sleeper() -> tuple[int, int]:
    """(the worker's pid, the pid of a child it forked that sleeps on with its command line)."""
    import time as _time

    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        _time.sleep(60)
        os._exit(0)
    return os.getpid(), child


def test_a_process_a_task_forked_is_not_listed_as_a_worker():
    """A forked child keeps its worker's command line: it was listed as a second worker of the
    slot, and as an orphan once the controller was gone, which ``terminate --orphans`` would
    kill (a probe, on 64971f1). A local worker leads its own session; a fork stays in it."""
    c = pycrew.controller("local", workers=1).start()
    child = None
    try:
        worker, child = c.submit(_fork_a_sleeper).result(timeout=60)
        listed = pycrew.Monitor("local").list(c.id)
        assert [w.pid for w in listed] == [worker], [(w.pid, w.instance) for w in listed]
    finally:
        c.terminate()
        if child is not None:
            try:
                os.kill(child, 9)
            except ProcessLookupError:
                pass

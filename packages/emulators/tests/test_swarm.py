"""The swarm launcher (many real worker loops per process) and its host processes.

The conformance suite runs on it with the capabilities it claims; the tests after it
check what is particular to hosting many workers per process: batches split over
hosts, handles that name the host and the instance, terminating one worker of a
host, and that one worker's trouble (its connection dropped while a task runs, a
cancel it cannot honour) leaves the other workers of its process serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import pycrew
from pycrew.testing import LauncherConfig, LauncherSuite, tasks
from pycrew_emulators.swarm import SwarmHandle, _entries
from pycrew_emulators.swarm_host import SpecError, parse_batch


def _handle_pid(handle: SwarmHandle) -> int:
    return handle.pid


@pytest.fixture
def run_dir() -> Iterator[str]:
    """A private, short directory for the hosts' control sockets (Unix socket paths are short)."""
    path = tempfile.mkdtemp(prefix="swarm-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class TestSwarmLauncher(LauncherSuite):
    """Workers are threads of host processes on this machine."""

    @pytest.fixture
    def launcher_config(self, run_dir: str) -> LauncherConfig:
        return LauncherConfig(
            name="swarm",
            options={"run_dir": run_dir, "workers_per_host": 3},
            bad_options=[{"workers_per_host": 0}, {"python": ""}, {"env": {"PYCREW_TOKEN": "x"}},
                         {"run_dir": "/tmp/" + "x" * 100}],
            bad_launch_options={"python": "/no/such/python"},
            seconds_timeout=30.0,
            handle_pid=_handle_pid,
        )

    @pytest.fixture
    def unrelated_job(self) -> Iterator[str | None]:
        """A Python process of this user that is not a swarm host."""
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            yield str(proc.pid)
        finally:
            proc.kill()
            proc.wait()


# -- the batch document ----------------------------------------------------------------------


def test_batch_document_resolves_arrays_like_the_worker() -> None:
    """An array entry becomes one worker per index with the instance and token an array job derives."""
    c = pycrew.controller("swarm", workers=3)  # never started: it only builds the calls
    calls = [c.launcher.call(worker=k + 1, batch=("k" * 64, "pre-", k, 3)) for k in range(3)]
    entries = _entries(calls)
    assert len(entries) == 1 and entries[0]["indices"] == [0, 1, 2] and "token" not in entries[0]
    workers = parse_batch({"workers": entries})
    assert [(w.instance, token) for w, token, _ in workers] == [(call.instance, call.token) for call in calls]
    single = c.launcher.call(worker=1)
    (entry,) = _entries([single])
    assert entry["token"] == single.token
    ((command, token, ca),) = parse_batch({"workers": [entry]})
    assert (command, token, ca) == (single.command, single.token, None)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"workers": [{"args": ["-m", "other"], "token": "t"}]}, "workers[0].args"),
        ({"workers": [{"args": ["-m", "pycrew.worker", "--url", "tcp://127.0.0.1:1", "--instance", "a"]}]}, "batch_key"),
        ({"workers": [{"args": ["-m", "pycrew.worker", "--url", "tcp://127.0.0.1:1", "--instance", "a"], "token": ""}]},
         "non-empty token"),
    ],
)
def test_batch_document_errors_name_the_entry(document: Any, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_batch(document)


def test_host_refuses_a_bad_batch_with_exit_code_2(run_dir: str) -> None:
    """A host given a batch it cannot read says why on its output and exits 2, listening nowhere."""
    control = os.path.join(run_dir, "bad.sock")
    run = subprocess.run(
        [sys.executable, "-m", "pycrew_emulators.swarm_host", "--control", control],
        input=json.dumps({"workers": [{"args": ["-m", "pycrew.worker"], "token": "t"}]}),
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2 and "workers[0].args" in run.stderr, run
    assert not os.path.exists(control)


# -- many workers per process ------------------------------------------------------------------


def test_batch_splits_over_hosts_and_handles_name_host_and_instance(run_dir: str) -> None:
    """50 workers, 8 per host: 7 host processes; every task's pid is its handle's host pid."""
    c = pycrew.controller("swarm", workers=50, workers_at_start=0, run_dir=run_dir, workers_per_host=8, seconds_launch=60)
    try:
        futures = [c.submit(tasks.sleep_then_report, 0.5) for _ in range(50)]
        wait_until(lambda: c.summary().controller.workers_online == 50, 60, "50 workers online")
        results = [f.result(timeout=60) for f in futures]
        handles = {s.handle for s in c.launcher.slots}
        assert all(isinstance(h, SwarmHandle) for h in handles) and len(handles) == 50
        assert len({h.pid for h in handles}) == 7, sorted({h.pid for h in handles})
        rows = {w.instance: w for w in c.summary().workers}
        assert {h.instance for h in handles} == set(rows)
        for h in handles:
            assert rows[h.instance].pid == h.pid, (h, rows[h.instance])
        assert {pid for _, pid in results} <= {h.pid for h in handles}
        listed = pycrew.Monitor("swarm", run_dir=run_dir).list(c.id)
        assert {w.handle for w in listed} == handles
    finally:
        c.terminate()
    wait_until(lambda: not any(alive(h.pid) for h in handles), 30, "every host to exit after terminate()")
    assert not [f for f in os.listdir(run_dir) if f.endswith(".sock")], "a host left its control socket behind"


def test_terminating_one_worker_leaves_its_host_mates_serving(run_dir: str) -> None:
    """Terminate one of a host's 3 workers: the controller loses it, the other 2 keep serving."""
    # All three launched by start() in one call, so they share one host (pushes could reach the
    # scaler in two rounds and start two hosts).
    c = pycrew.controller("swarm", workers=3, workers_at_start=3, run_dir=run_dir, workers_per_host=3, seconds_launch=60)
    try:
        for _ in range(3):
            c.push(tasks.sleep_then_report, (0.3,))
        wait_until(lambda: c.summary().controller.workers_online == 3, 60, "3 workers online")
        assert c.wait(timeout=60)
        c.collect()
        victim = c.launcher.slots[0].handle
        mates = [s.handle for s in c.launcher.slots[1:]]
        assert {h.pid for h in mates} == {victim.pid}, "all three should share one host"
        pycrew.Monitor("swarm", run_dir=run_dir).terminate([
            w for w in pycrew.Monitor("swarm", run_dir=run_dir).list(c.id) if w.instance == victim.instance
        ])
        wait_until(lambda: c.summary().controller.workers_online == 2, 30, "the controller to lose the victim")
        assert alive(victim.pid), "terminating one worker killed its whole host"
        online = {w.instance for w in c.summary().workers if w.online}
        assert online == {h.instance for h in mates}
        for _ in range(20):
            c.push(tasks.report_worker)
        assert c.wait(timeout=60)
        assert {r.instance for r in c.collect() if r.ok} <= online | {s.instance for s in c.launcher.slots}
        listed = {w.instance for w in pycrew.Monitor("swarm", run_dir=run_dir).list(c.id)}
        assert victim.instance not in listed
    finally:
        c.terminate()
    wait_until(lambda: not alive(victim.pid), 30, "the host to exit once its last workers were terminated")


def test_a_worker_dropped_during_its_task_does_not_end_its_host(run_dir: str) -> None:
    """A cancelled task cannot be interrupted in a thread: the dispatcher drops that worker after
    its grace period, while the task still runs. The host process and its other worker live on.

    (Before ``Worker(shared_process=True)`` a worker loop could not start outside the main
    thread, and a worker whose link closed during a task ended its whole process.)
    """
    c = pycrew.controller("swarm", workers=2, workers_at_start=2, run_dir=run_dir, workers_per_host=2, seconds_launch=60)
    try:
        c.push(tasks.sleep_then_report, (0.3,), name="warm_a")
        c.push(tasks.sleep_then_report, (0.3,), name="warm_b")
        wait_until(lambda: c.summary().controller.workers_online == 2, 60, "2 workers online")
        assert c.wait(timeout=60)
        pids = {r.result[1] for r in c.collect()}
        assert len(pids) == 1, "both workers should live in one host process"
        (pid,) = pids
        marker = os.path.join(run_dir, "long-task-started")

        def long_task(path: str = marker) -> str:  # a local function: it travels by value
            import time

            with open(path, "w"):
                pass
            time.sleep(20.0)
            return "done"

        c.push(long_task, name="long")
        # Started on the worker, not only sent: a task still waiting in the worker's own queue
        # is dropped there when cancelled, and its worker rightly stays.
        wait_until(lambda: os.path.exists(marker), 30, "the long task to start on its worker")
        assert c.cancel(names=["long"]) == 1
        wait_until(lambda: c.summary().controller.workers_online == 1, 30, "the dispatcher to drop the stuck worker")
        assert alive(pid), "the host process ended with the dropped worker"
        c.push(tasks.report_worker, name="after")
        assert c.wait(timeout=30)
        results = {r.name: r for r in c.collect()}
        assert results["long"].status == "cancel"
        assert results["after"].ok and results["after"].result[1] == pid, results["after"]
    finally:
        c.terminate()
    wait_until(lambda: not alive(pid), 30, "the host to exit after terminate() (its stuck task notwithstanding)")


HOST_WRAPPER = """#!{python}
import json, os, sys, time
data = sys.stdin.buffer.read()
if any(0 in entry.get("indices", []) for entry in json.loads(data)["workers"]):
    time.sleep(4.0)
    open(os.path.join(os.path.dirname(sys.argv[0]), "slow-host-up"), "w").close()
r, w = os.pipe()  # hand the batch on as standard input (it fits in the pipe's buffer)
os.write(w, data)
os.close(w)
os.dup2(r, 0)
os.execv({python!r}, [{python!r}, *sys.argv[1:]])
"""


def test_a_host_whose_workers_ended_before_the_batch_was_ready_is_not_a_failed_launch(run_dir: str) -> None:
    """Hosts announce readiness one by one; a host whose workers connected, idled out and
    left (so it exited) while a later host was still starting belongs to a good launch.

    (The launcher took any exited host for a failed one: at W = 5,000 on two cores a host
    whose workers had ended made the whole batch "fail", and every host was killed.)
    """
    wrapper = os.path.join(run_dir, "python")
    with open(wrapper, "w") as f:  # the host of array element 0 (started first) is slow to start
        f.write(HOST_WRAPPER.format(python=sys.executable))
    os.chmod(wrapper, 0o755)
    c = pycrew.controller(
        "swarm", workers=2, workers_at_start=2, run_dir=run_dir, workers_per_host=1, python=wrapper,
        seconds_idle=0.5, seconds_launch=60,
    )
    try:
        c.start()
        # Element 1's host is up at once: its worker connects, idles out, and its host exits.
        # Element 0's host announces itself 4 s later: that is when launch() judges the batch.
        wait_until(lambda: os.path.exists(os.path.join(run_dir, "slow-host-up")), 60, "the slow host to start")
        assert c.submit(tasks.report_worker).result(timeout=60)
        summary = c.summary().launcher
        assert summary["launches"] == 2 and summary["launch_failures"] == 0, summary
    finally:
        c.terminate()

    def hosts() -> list[int]:
        return [p.pid for p in psutil.process_iter(["cmdline"]) if run_dir in " ".join(p.info["cmdline"] or [])]

    wait_until(lambda: not hosts(), 30, "every host to exit after terminate()")

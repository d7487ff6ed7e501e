"""At interpreter exit, a termination that another thread began is waited for, so no worker is left.

``shutdown(wait=False)`` leaves the termination to a daemon thread of the controller's
(``pycrew-shutdown-<name>``). When the program's main thread ends while that thread is
inside ``terminate()``, the exit hook used to skip the controller (no longer live once its
terminate() began): the daemon thread died with the interpreter before the launcher's
``terminate_all``, and a worker still starting was left running on its own (parent 1).

Here a second worker's interpreter waits in a ``sitecustomize`` while a gate file exists
(a slow start: a big import, a slow node), and the child program's ``terminate_all``
takes a moment (as ``scancel`` or a cloud API call does) and starts only once the exit
hook runs: the child's main thread has ended by then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from pycrew.testing.harness import wait_until

SITECUSTOMIZE = """
import os, time
_gate, _started = os.environ.get("P30D_GATE"), os.environ.get("P30D_STARTED")
if _gate and os.path.exists(_gate):  # a worker launched once the gate exists starts slowly
    open(os.path.join(_started, str(os.getpid())), "w").close()
    _deadline = time.monotonic() + 120  # (never forever, whatever happens to the test)
    while os.path.exists(_gate) and time.monotonic() < _deadline:
        time.sleep(0.05)
"""

CHILD = """
import os, sys, threading, time
import pycrew
from pycrew.control import exit_hooks, scaler

gate, started, slowstart = sys.argv[1:4]
entered = threading.Event()
_terminate_all = scaler.Scaler.terminate_all

def slow_terminate_all(self, timeout):
    # a launcher whose termination takes a moment; it begins once the main thread has ended
    entered.set()
    while not exit_hooks._exiting:
        time.sleep(0.01)
    time.sleep(2.0)
    return _terminate_all(self, timeout)

scaler.Scaler.terminate_all = slow_terminate_all

def wait_for(condition, what):
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"child: {what} did not happen")
        time.sleep(0.02)

c = pycrew.controller("local", workers=2, name="exitwait", env={"PYTHONPATH": slowstart, "P30D_GATE": gate, "P30D_STARTED": started})
print(c.id, flush=True)
c.submit(abs, -1).result(timeout=60)  # the first worker is connected
open(gate, "w").close()  # from now on, a worker launched waits in its sitecustomize
futures = [c.submit(time.sleep, 0.3) for _ in range(4)]  # the second worker is launched
wait_for(lambda: os.listdir(started), "the second worker's launch")
c.shutdown(wait=False)  # the controller's own thread terminates it once the futures finish
for f in futures:
    f.result(timeout=60)
wait_for(entered.is_set, "terminate()")
print("main thread ends", flush=True)
"""


def workers_of(controller_id: str) -> list[int]:
    """Pids of live processes whose command line names the controller (its workers)."""
    return [
        p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
        if controller_id in " ".join(p.info["cmdline"] or []) and p.info["pid"] != os.getpid()
    ]


def test_exit_waits_for_a_termination_another_thread_began(tmp_path: Path) -> None:
    slowstart = tmp_path / "slowstart"
    slowstart.mkdir()
    (slowstart / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    started = tmp_path / "started"
    started.mkdir()
    gate = tmp_path / "gate"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(gate), str(started), str(slowstart)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    controller_id = ""
    try:
        out, err = proc.communicate(timeout=120)
        lines = out.splitlines()
        assert proc.returncode == 0 and lines[-1:] == ["main thread ends"], f"child failed ({proc.returncode}): {out}\n{err}"
        controller_id = lines[0]
        # the second worker waits at the gate for as long as the test holds it: gone only if terminated
        wait_until(lambda: not workers_of(controller_id), 20,
                   lambda: f"workers of the child's controller left running after it exited: {workers_of(controller_id)}\n{err}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        gate.unlink(missing_ok=True)
        if controller_id:
            for pid in workers_of(controller_id):  # (this test's orphans: a failing run leaves one)
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            wait_until(lambda: not workers_of(controller_id), 20, lambda: f"workers could not be killed: {workers_of(controller_id)}")

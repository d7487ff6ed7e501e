"""SIGTERM to a program that runs a controller terminates its workers, queued ones too.

Platforms end programs with SIGTERM (a batch job's time limit, ``scancel``, a deleted pod,
``timeout``). Python's default action would end the program at once, and its controller
could not terminate the workers that had not connected yet: a job still in a scheduler's
queue would start later for nothing. Here the second worker's "interpreter" waits as a
queued job does (a ``sleep`` in its place), and must be gone soon after the SIGTERM, as
must the connected worker; the program exits with 143 (see pycrew.control.termination).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew.control import termination
from support import pid_gone, run_script, wait_for

SCRIPT = """
import json, os, threading, time
import pycrew

def run(c):
    futures = [c.submit(time.sleep, 600) for _ in range(2)]  # two workers wanted: one starts, one is "queued"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = c.summary()
        if s.controller.workers_online == 1 and s.controller.running == 1 and os.path.exists({pending!r}):
            break
        time.sleep(0.05)
    line = json.dumps({{"worker": [w.pid for w in s.workers if w.online][0]}})
    if {phase!r} != "exit":
        print(line, flush=True)
        [f.result() for f in futures]
    else:  # the main thread ends here, and the exit hook waits for the futures: say so once it does
        def say_when_waiting():
            while not threading._SHUTTING_DOWN:
                time.sleep(0.01)
            time.sleep(0.3)  # the main thread is in the exit hook by now (a signal before it tests another path)
            print(line, flush=True)
        threading.Thread(target=say_when_waiting, daemon=True).start()

c = pycrew.controller("local", workers=2, python={python!r}, seconds_launch=300)
if {phase!r} == "with":
    with c:
        run(c)
else:
    c.start()
    run(c)
"""


def queue_python(tmp_path: Path) -> str:
    """The first launch starts a worker; the others wait as a queued job would, their pid in ``pending.pid``."""
    path = tmp_path / "queue-python"
    path.write_text(
        "#!/bin/sh\n"
        f'if mkdir "{tmp_path}/grant" 2>/dev/null; then exec {sys.executable} "$@"; fi\n'
        f'echo $$ > "{tmp_path}/pending.pid"\nexec sleep 300\n'
    )
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("signum", "phase"),
    [
        (signal.SIGTERM, "with"),  # a with block unwinds
        (signal.SIGTERM, "result"),  # no with block: the exit hook terminates without waiting
        (signal.SIGTERM, "exit"),  # the main thread has ended; the exit hook waits for the futures
        (signal.SIGHUP, "result"),  # the terminal or ssh session closed
        (signal.SIGINT, "result"),  # Ctrl-C
        (signal.SIGINT, "exit"),
    ],
    ids=["TERM-with", "TERM-result", "TERM-exit-hook", "HUP-result", "INT-result", "INT-exit-hook"],
)
def test_a_signal_terminates_the_connected_and_the_queued_workers_and_sets_the_exit_status(
    tmp_path: Path, signum: int, phase: str
) -> None:
    """On e86a66d+ SIGTERM while the exit hook waited exited with status 0; SIGHUP ended the
    program at once (queued workers stayed); Ctrl-C without a with block waited for every
    pending future (here 600 s) before the program ended."""
    pending = tmp_path / "pending.pid"
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(SCRIPT.format(python=queue_python(tmp_path), pending=str(pending), phase=phase)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    queued: int | None = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"the program said nothing: {proc.communicate(timeout=30)}"
        worker = json.loads(line)["worker"]
        queued = int(pending.read_text())
        os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=30)
        expected = -signal.SIGINT if signum == signal.SIGINT else 128 + signum  # Ctrl-C: Python ends by SIGINT
        assert proc.returncode == expected, f"exit code {proc.returncode}; stderr:\n{err[-3000:]}"
        if signum == signal.SIGINT:
            said = {"result": "the program was interrupted: terminating it without waiting for its 2 pending future(s)",
                    "exit": "the program was interrupted (KeyboardInterrupt) while it waited at exit for pending futures"}
            assert said[phase] in err, err[-3000:]
        else:
            assert f"{signal.Signals(signum).name} received" in err and "Traceback" not in err, err[-3000:]
        wait_for(lambda: pid_gone(queued) and pid_gone(worker), 10, message="a worker outlived its SIGTERM'd controller")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if queued is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(queued, signal.SIGKILL)


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as if no controller had started yet: no handler installed, SIGTERM's
    default action (put back as it was after the test)."""
    monkeypatch.setattr(termination, "installed", False)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_programs_own_sigterm_handler_is_left_alone(make_controller, fresh_process: None) -> None:
    def own(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGTERM, own)
    make_controller("local", workers=1).start()
    assert signal.getsignal(signal.SIGTERM) is own


def test_the_handler_is_installed_from_the_main_thread_only(make_controller, fresh_process: None) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            make_controller("local", workers=1).start()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(60)
    assert not errors and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, errors
    make_controller("local", workers=1).start()
    assert signal.getsignal(signal.SIGTERM) is termination._on_sigterm


def test_a_forked_child_ends_on_sigterm_by_default(make_controller, fresh_process: None) -> None:
    make_controller("local", workers=1).start()
    assert signal.getsignal(signal.SIGTERM) is termination._on_sigterm
    pid = os.fork()
    if pid == 0:  # the child: the default action again
        os._exit(0 if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child kept pycrew's SIGTERM handler"


def test_pycrew_is_importable_without_installing_anything() -> None:
    code = "import signal, pycrew; pycrew.controller('local', workers=1); print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "True", "building a controller (not started) installs no handler"


STUCK_CALLBACK = """
import threading
import pycrew

c = pycrew.controller("local", workers=1)
entered = threading.Event()

def stuck(_future):
    entered.set()
    threading.Event().wait()  # never returns

c.submit(abs, -1).add_done_callback(stuck)
entered.wait(60)
if {terminated!r}:
    c.terminate()
print("ready", flush=True)
"""


@pytest.mark.parametrize("terminated", [False, True], ids=["live", "terminated"])
def test_sigterm_while_the_exit_hook_waits_for_a_stuck_callback_ends_with_143(tmp_path: Path, terminated: bool) -> None:
    """On 2c03aec the exit hook, after a SIGTERM had ended its wait for a controller's callbacks,
    waited for them again (and swallowed the SystemExit): the program ran until a second
    SIGTERM; when the controller had been terminated already, it exited with status 0."""
    code, _, err = sigterm_when_ready(tmp_path, STUCK_CALLBACK.format(terminated=terminated))
    assert code == termination.EXIT_CODE, f"exit code {code}; stderr:\n{err[-3000:]}"


INTERRUPTED_BEFORE_THE_FIRST_WAIT = """
import weakref
import psutil
import pycrew
from pycrew.control import exit_hooks

c = pycrew.controller("local", workers=1, seconds_idle=3600).start()
assert c.submit(abs, -1).result(60) == 1


class Interrupted(weakref.WeakSet):
    first = True

    def __iter__(self):
        if Interrupted.first:  # as a SIGTERM that lands as the exit hook begins, before any wait
            Interrupted.first = False
            raise SystemExit(143)
        return super().__iter__()


exit_hooks.live.__class__ = Interrupted
print(*[p.pid for p in psutil.Process().children(recursive=True)], flush=True)
"""


def test_a_sigterm_anywhere_in_the_exit_hook_ends_with_143_and_terminates_the_controllers(tmp_path: Path) -> None:
    """CI: a SIGTERM that landed in the exit hook outside a controller's wait (listing the
    live controllers) was "ignored in threading._shutdown": exit status 0, and the
    controller was never terminated."""
    proc = run_script(tmp_path, INTERRUPTED_BEFORE_THE_FIRST_WAIT)
    assert proc.returncode == termination.EXIT_CODE, proc.stderr[-3000:]
    assert "Exception ignored" not in proc.stderr, proc.stderr[-3000:]
    pids = [int(w) for w in proc.stdout.split()]
    assert pids, proc.stdout
    wait_for(lambda: all(pid_gone(p) for p in pids), timeout=15, message="the controller's worker outlived the program")


def sigterm_when_ready(tmp_path: Path, program: str) -> tuple[int, str, str]:
    """Run ``program`` until it prints "ready", send it SIGTERM: its exit code, the rest of its stdout, its stderr."""
    script = tmp_path / "program.py"
    script.write_text(program)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=30)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


SERVICE = """
import time
import pycrew

with pycrew.controller("local", workers=1) as c:
    assert c.submit(abs, -1).result(timeout=60) == 1
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # a service loop that survives its own errors
    try:
        time.sleep(0.05)
    except BaseException as exc:
        print("caught", type(exc).__name__, flush=True)
print("still running", flush=True)
"""


def test_once_no_controller_is_left_sigterm_ends_the_program_as_without_pycrew(tmp_path: Path) -> None:
    """On 4e818b3 pycrew's handler stayed for good after the last controller ended: a SIGTERM meant
    for a long-lived program became SystemExit(143), which its service loop caught, and it
    ran on. With no controller started or terminating, the signal ends it as Python's
    default would."""
    code, out, err = sigterm_when_ready(tmp_path, SERVICE)
    assert code == -signal.SIGTERM, f"exit code {code}; stdout {out!r}; stderr:\n{err[-3000:]}"
    assert "caught" not in out



SWALLOWED = """
import time
import pycrew

with pycrew.{kind} as c:
    futures = [c.submit(time.sleep, 60) for _ in range(2)]
    try:
        print("ready", flush=True)  # (in the try: the signal may come as soon as this is out)
        futures[0].result(timeout=60)
    except BaseException as exc:  # a helper that catches everything, SIGTERM's SystemExit too
        print("caught", type(exc).__name__, flush=True)
    started = time.monotonic()
print("left the block in", round(time.monotonic() - started, 1), flush=True)
with pycrew.{kind} as later:  # begun after the signal: its end waits for its tasks as usual
    future = later.submit(time.sleep, 1)
print("a later block waited:", future.done() and not future.cancelled() and future.exception() is None, flush=True)
"""


@pytest.mark.parametrize("kind", ['controller("local", workers=2)',
                                  'ControllerGroup([pycrew.controller("local", workers=2)])'])
def test_a_sigterm_caught_inside_the_with_block_does_not_make_its_end_wait_for_the_tasks(tmp_path: Path, kind: str) -> None:
    """The SystemExit was swallowed, so the block ended without an exception, and its end
    waited for every task (60 s of sleeps here) although pycrew had said it was terminating
    them (a probe of the cloud launchers, session 36)."""
    _, out, err = sigterm_when_ready(tmp_path, SWALLOWED.format(kind=kind))
    assert "caught SystemExit" in out, out + err[-3000:]
    left = float(out.split("left the block in ")[1].split()[0])
    assert left < 20, f"the block's end waited {left} s for tasks pycrew said it was terminating"
    assert "a later block waited: True" in out, out + err[-3000:]

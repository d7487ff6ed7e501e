"""Auto-scaling, launch failures and worker exit rules on the local launcher."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

import pytest

import pycrew
from helpers import identity, sleep_then
from pycrew.wire import protocol, transport
from support import run_script, wait_for, worker_pids


def test_unstartable_worker_raises_launch_error_after_launch_max(make_controller, tmp_path):
    c = make_controller("local", workers=1, launch_max=2, python=str(tmp_path / "no-python")).start()
    future = c.submit(identity, 1)
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=60)
    message = str(info.value)
    assert "launcher 'local'" in message and "2 times in a row" in message
    assert "-m pycrew.worker" in message and "No such file" in message
    # On 33e082d: "Likely causes: the workers cannot reach ..." for a worker that never started
    assert "The launcher's call to the platform failed" in message and "pycrew doctor local" in message, message
    assert "Likely causes" not in message and "cannot reach" not in message, message
    with pytest.raises(pycrew.LaunchError):
        future.result(timeout=5)


def test_futures_failed_by_a_launch_error_are_no_longer_unresolved(make_controller, tmp_path):
    """On 33e082d ``unresolved()`` still counted the futures a LaunchError had failed (their
    tasks never run), so a loop polling ``unresolved()`` waited for them for ever. A pushed
    task, which has no future, stays unresolved (``pop()`` raises the error), and summary()
    counts it abandoned: none goes to a worker after the LaunchError."""
    c = make_controller("local", workers=1, launch_max=1, python=str(tmp_path / "no-python")).start()
    futures = [c.submit(identity, i) for i in range(3)]
    c.push(identity, (9,), name="pushed")
    with pytest.raises(pycrew.LaunchError):
        c.wait(timeout=60)
    for f in futures:
        with pytest.raises(pycrew.LaunchError):
            f.result(timeout=5)
    assert c.pending_futures() == 0
    assert c.unresolved() == 1, "only the pushed task is still unresolved"
    assert (c.summary().controller.queued, c.summary().controller.abandoned) == (0, 4)


def test_leaving_a_with_block_after_a_launch_error_was_seen_raises_nothing(make_controller, tmp_path):
    """The user got the LaunchError from ``result()`` and handled it: leaving the ``with``
    block terminates without raising it again, and a ``submit`` before that raises it. On
    2c03aec both depended on a race: the futures failed just before the controller's error was
    set; ``__exit__`` waited for the tasks (and raised) and ``submit`` queued a task unless
    they saw that error."""
    python = tmp_path / "python-that-fails"
    python.write_text("#!/bin/sh\nsleep 0.5\nexit 1\n")  # fails after the tasks below are queued
    python.chmod(0o755)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: the race shows
    try:
        for attempt in range(4):
            with make_controller("local", workers=1, launch_max=1, python=str(python)) as c:
                futures = [c.submit(identity, i) for i in range(2000)]  # failing them all takes a while
                with pytest.raises(pycrew.LaunchError):
                    futures[0].result(timeout=60)
                with pytest.raises(pycrew.LaunchError):  # as from a broken executor, not a future failed later
                    c.submit(identity, attempt)
            with pytest.raises(RuntimeError, match="after shutdown"):
                c.submit(identity, attempt)
    finally:
        sys.setswitchinterval(interval)


def test_worker_that_never_connects_is_terminated_and_counted(make_controller, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(600)\n")
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    fake_python.chmod(0o755)
    c = make_controller("local", workers=1, launch_max=2, seconds_launch=1, python=str(fake_python)).start()
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError, match="did not connect within seconds_launch=1 s"):
        c.wait(timeout=60)
    s = c.summary()
    assert s.workers[0].launch_failures == 2
    wait_for(lambda: worker_pids(c.id) == [], 10)


def test_scales_up_to_workers_and_not_beyond_demand(make_controller):
    c = make_controller("local", workers=3).start()
    c.push(sleep_then, (0.5,))
    wait_for(lambda: c.summary().controller.workers_online == 1, 30)
    time.sleep(0.3)
    assert c.summary().controller.workers_online + c.summary().controller.workers_launching == 1
    for _ in range(6):
        c.push(sleep_then, (0.5,))
    wait_for(lambda: c.summary().controller.workers_online == 3, 30)
    assert c.wait(timeout=30)


def test_tasks_max_makes_workers_exit_and_relaunch(make_controller):
    c = make_controller("local", workers=1, tasks_max=3).start()
    assert list(c.map(identity, range(10))) == list(range(10))
    s = c.summary()
    assert s.workers[0].instances == 4, f"10 tasks at 3 per worker need 4 instances: {s}"


def test_seconds_wall_makes_workers_exit(make_controller):
    c = make_controller("local", workers=1, seconds_wall=1.0).start()
    assert c.submit(identity, 1).result(timeout=30) == 1
    wait_for(lambda: c.summary().controller.workers_online == 0, 15, message="worker outlived seconds_wall")
    assert c.submit(identity, 2).result(timeout=30) == 2


def test_seconds_idle_makes_workers_exit(make_controller):
    c = make_controller("local", workers=1, seconds_idle=0.5).start()
    assert c.submit(identity, 1).result(timeout=30) == 1
    wait_for(lambda: c.summary().controller.workers_online == 0, 15, message="worker did not idle out")
    wait_for(lambda: worker_pids(c.id) == [], 15)


def test_push_does_not_wait_for_a_slow_launcher(make_controller):
    class Slow:
        @pycrew.hookimpl(wrapper=True)
        def pycrew_launch_workers(self, launcher, calls):
            time.sleep(2)
            return (yield)

    slow = Slow()
    pycrew.register(slow)
    try:
        c = make_controller("local", workers=4).start()
        t0 = time.monotonic()
        for i in range(50):
            c.push(identity, (i,))
        assert time.monotonic() - t0 < 1.5, "push waited for the launcher"
        assert c.wait(timeout=60)
    finally:
        pycrew.unregister(slow)


def test_tasks_prefetched_behind_a_long_task_go_to_an_idle_worker(make_controller, tmp_path):
    """Short tasks are prefetched; when one turns out long, those sent behind it are
    recalled from its worker and run on the other (see pycrew.control.recall)."""
    from helpers import first_waits_for_gate

    c = make_controller("local", workers=2, seconds_idle=60).start()
    assert list(c.map(identity, range(300))) == list(range(300))  # short tasks: prefetch grows
    wait_for(lambda: c.summary().controller.workers_online == 2, 30)
    futures = [c.submit(first_waits_for_gate, str(tmp_path), i) for i in range(300)]
    wait_for(lambda: len(list(tmp_path.glob("done-*"))) == 299, timeout=30,
             message="tasks sent behind the long one still wait on its worker")
    assert not futures[0].done()
    assert c.summary().controller.retries == 0, "tasks given back are not retries"
    (tmp_path / "gate").touch()
    assert [f.result(timeout=30) for f in futures] == list(range(300))


def test_a_worker_that_joins_after_everything_was_prefetched_takes_half_of_the_tail(make_controller):
    """The first worker took every task (short ones before them opened the prefetch window);
    the second, launched for the same demand, connects to an empty queue and takes the newer
    half of what the first has not started (see pycrew.control.recall). Each task is shorter
    than the 50 ms after which tasks count as stuck behind a long one, so nothing else would
    move them."""
    from pycrew.testing.tasks import sleep_then_report

    c = make_controller("local", workers=2, seconds_idle=60).start()
    for i in range(50):  # one at a time (no demand for a second worker): the average falls to ~us
        assert c.submit(abs, -i).result(timeout=30) == i
    assert c.summary().controller.workers_online == 1
    futures = [c.submit(sleep_then_report, 0.03) for _ in range(100)]
    pids = [f.result(timeout=60)[1] for f in futures]
    assert len(set(pids)) == 2, "the second worker ran none of the tasks the first had prefetched"
    assert c.summary().controller.retries == 0, "tasks given back are not retries"


def test_lone_tasks_go_to_idle_workers_even_after_short_tasks_raised_prefetch(make_controller):
    from helpers import whoami

    c = make_controller("local", workers=2).start()
    assert list(c.map(identity, range(300))) == list(range(300))  # short tasks: prefetch grows
    wait_for(lambda: c.summary().controller.workers_online == 2, 30)
    first = c.submit(sleep_then, 1.5, "a")
    time.sleep(0.2)
    second = c.submit(whoami)
    _, pid = second.result(timeout=1.0)  # must not wait behind the sleeping task
    assert first.result(timeout=30) == "a"
    assert pid in {s.pid for s in c.launcher.slots}


# -- launches whose worker ends before connecting (issue 14, item 13) ----------------------


def fake_python(tmp_path: Any, body: str) -> str:
    """An executable standing in for the worker's interpreter (the launcher's python option)."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def launch_error(c: pycrew.Controller) -> tuple[str, float]:
    """Push one task; the LaunchError's message and how long it took."""
    started = time.monotonic()
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=120)
    return str(info.value), time.monotonic() - started


def test_a_worker_that_exits_at_once_fails_the_launch_within_seconds_with_its_exit_code(make_controller):
    c = make_controller("local", workers=1, launch_max=2, seconds_launch=60, python="/bin/false").start()
    message, seconds = launch_error(c)
    assert seconds < 20, f"the LaunchError came after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "failed before it connected (exit code 1): it wrote no output" in message, message
    assert "The worker command is: /bin/false -m pycrew.worker" in message, (
        f"the message must show the launcher's python option, not sys.executable: {message}"
    )
    assert c.summary().workers[0].launch_failures == 2


@pytest.mark.parametrize("wire", transport.TRANSPORTS)
def test_a_worker_of_another_pycrew_version_is_refused_with_a_clear_launch_error_within_seconds(
    make_controller, tmp_path, wire, caplog
):
    # the real worker, made to speak as an older pycrew does (wire protocol 1); it would
    # fail every task (a task's function may travel as bytes since protocol 2)
    code = (
        "import runpy, sys; import pycrew.wire.protocol as p; p.PROTOCOL_VERSION = 1; p.PYCREW_VERSION = '0.0.9'; "
        "runpy.run_module('pycrew.worker', run_name='__main__', alter_sys=True)"
    )
    python = fake_python(tmp_path, f'shift 2  # -m pycrew.worker\nexec {sys.executable} -c "{code}" "$@"')
    caplog.set_level(logging.WARNING, logger="pycrew.control.dispatcher")
    c = make_controller("local", workers=1, launch_max=2, seconds_launch=60, python=python, wire=wire).start()
    message, seconds = launch_error(c)
    assert seconds < 20, f"the LaunchError came after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert (
        "last reason: the controller refused the worker: it runs pycrew 0.0.9 (wire protocol 1) and this controller "
        f"runs pycrew {pycrew.__version__} (wire protocol {protocol.PROTOCOL_VERSION})"
    ) in message, message
    assert "Workers must run the pycrew version (wire protocol), Python minor version and cloudpickle" in message, message
    assert c.summary().workers[0].launch_failures == 2
    wait_for(lambda: worker_pids(c.id) == [], 10)  # the refused workers are gone
    refusals = [r.getMessage() for r in caplog.records if r.name == "pycrew.control.dispatcher"]
    assert any(m.startswith("refusing worker connection") and "wire protocol 1" in m for m in refusals), refusals
    assert not any("before authentication" in m for m in refusals), refusals  # it proved its token


@pytest.mark.parametrize(
    ("patch", "said"),
    [
        ("r.PYTHON = '3.99.1'", "it runs Python 3.99.1 and this controller runs Python {python}: cloudpickle sends"),
        (
            "r.versions = lambda: {{'python': r.PYTHON, 'cloudpickle': '2.2.1'}}",
            "it runs cloudpickle 2.2.1 and this controller runs cloudpickle {cloudpickle}: a cloudpickle of another",
        ),
    ],
    ids=["python", "cloudpickle"],
)
def test_a_worker_on_another_python_or_cloudpickle_is_refused_with_a_clear_launch_error(make_controller, tmp_path, patch, said):
    """The bytecode cloudpickle sends runs only on the Python minor version that made it: a probe's
    3.13 worker SIGSEGVed on ``x * x`` from 3.11, a 3.12 one raised "too many values to unpack" from a
    correct comprehension, and nothing named the cause. Before: such workers were admitted."""
    import cloudpickle

    from pycrew.wire import runtime

    code = (
        "import runpy; import pycrew.wire.runtime as r; " + patch.format() + "; "
        "runpy.run_module('pycrew.worker', run_name='__main__', alter_sys=True)"
    )
    python = fake_python(tmp_path, f'shift 2  # -m pycrew.worker\nexec {sys.executable} -c "{code}" "$@"')
    c = make_controller("local", workers=1, launch_max=2, seconds_launch=60, python=python).start()
    future = c.submit(abs, -1)
    message, seconds = launch_error(c)
    assert seconds < 20, f"the LaunchError came after {seconds:.1f} s: {message}"
    expected = said.format(python=runtime.PYTHON, cloudpickle=cloudpickle.__version__)
    assert f"last reason: the controller refused the worker: {expected}" in message, message
    assert c.summary().workers[0].launch_failures == 2
    with pytest.raises(pycrew.LaunchError):
        future.result(timeout=10)
    wait_for(lambda: worker_pids(c.id) == [], 10)


def test_the_launch_error_quotes_the_last_lines_of_the_workers_output(make_controller, tmp_path):
    lines = "\n".join(f"echo 'line {i}'" for i in range(30))
    python = fake_python(tmp_path, f"{lines}\necho \"ModuleNotFoundError: No module named 'pycrew'\" >&2\nexit 2")
    c = make_controller("local", workers=1, launch_max=1, seconds_launch=60, python=python).start()
    message, seconds = launch_error(c)
    assert seconds < 20, f"the LaunchError came after {seconds:.1f} s: {message}"
    assert "exit code 2" in message, message
    quoted = message.splitlines()[1:]
    assert quoted[-1].strip() == "ModuleNotFoundError: No module named 'pycrew'", message
    assert len(quoted) == 20 and quoted[0].strip() == "line 11", f"the last 20 lines of output, in order: {quoted}"


def test_the_log_dir_output_is_quoted_too(make_controller, tmp_path):
    python = fake_python(tmp_path, "echo 'cannot import pycrew'\nexit 5")
    logs = tmp_path / "logs"
    c = make_controller("local", workers=1, launch_max=1, seconds_launch=60, python=python, log_dir=str(logs)).start()
    message, _ = launch_error(c)
    assert "(exit code 5): cannot import pycrew" in message, message
    assert any("cannot import pycrew" in p.read_text() for p in logs.glob("*.log")), "the log file lost the output"


def test_a_worker_that_never_connects_has_its_last_output_quoted(make_controller, tmp_path):
    """A launch that times out quotes what the worker said (here a made-up reason it could
    not connect), read through the launcher's pycrew_worker_logs: on a cluster, the worker's
    log is often the only place that says why (a firewall, a wrong host)."""
    python = fake_python(tmp_path, "echo 'first line'\necho 'cannot reach 10.0.0.1:4000: no route to host'\nexec sleep 60")
    c = make_controller("local", workers=1, launch_max=1, seconds_launch=2, python=python).start()
    message, _ = launch_error(c)
    assert "the worker did not connect within seconds_launch=2 s" in message, message
    assert "seconds_launch=2 s; the end of its output is quoted below." in message, message
    assert message.endswith("\nfirst line\ncannot reach 10.0.0.1:4000: no route to host"), message


@pytest.mark.parametrize("wire", transport.TRANSPORTS)
def test_a_worker_that_cannot_reach_the_controller_says_so_and_the_launch_error_quotes_it(make_controller, tmp_path, wire):
    """The real worker, dialling a port nothing listens on (as behind a firewall or with a
    host= the nodes cannot reach): it says so in its output after a few seconds, and the
    controller's LaunchError quotes that line when the launch times out."""
    rewrite = 'for a in "$@"; do case "$a" in tcp://*) set -- "$@" tcp://127.0.0.1:9;; *) set -- "$@" "$a";; esac; shift; done'
    python = fake_python(tmp_path, f'{rewrite}\nexec {sys.executable} "$@"')
    c = make_controller("local", workers=1, launch_max=1, seconds_launch=6, python=python, wire=wire).start()
    message, _ = launch_error(c)
    assert "the end of its output is quoted below" in message, message
    assert "pycrew worker: cannot connect to tcp://127.0.0.1:9 yet (ConnectionRefusedError" in message, message


def test_a_worker_killed_right_after_its_start_is_relaunched_at_once(make_controller):
    class KillFirst:
        def __init__(self) -> None:
            self.killed: list[int] = []

        @pycrew.hookimpl
        def pycrew_worker_launched(self, launcher, call, handle):
            if not self.killed:
                time.sleep(0.014)
                os.kill(handle.pid, signal.SIGKILL)
                self.killed.append(handle.pid)

    killer = KillFirst()
    pycrew.register(killer)
    try:
        c = make_controller("local", workers=1, seconds_launch=60).start()
        started = time.monotonic()
        assert c.submit(identity, 7).result(timeout=60) == 7
        seconds = time.monotonic() - started
    finally:
        pycrew.unregister(killer)
    assert killer.killed, "the observer never saw the launch"
    assert seconds < 20, f"the task waited {seconds:.1f} s for a relaunch (seconds_launch=60)"
    launcher = c.summary().launcher
    assert launcher["launch_failures"] == 1, launcher
    assert "killed by SIGKILL" in launcher["last_launch_error"], launcher


def test_a_worker_that_connected_is_never_a_failed_launch_whatever_the_monitor_says(make_controller, tmp_path):
    python = fake_python(tmp_path, f'sleep 1\nexec {sys.executable} "$@"')  # launches take > 1 s: polls happen
    c = make_controller("local", workers=2, seconds_launch=60, python=python).start()
    seen: list[str] = []

    class ReportsConnectedWorkersEnded:
        """A monitor that lists every connected worker as failed (stale or racing platform data)."""

        @pycrew.hookimpl(wrapper=True)
        def pycrew_list_workers(self, launcher, controller_id):
            listed = yield
            slots = list(c.launcher.slots)
            connected = [(s.instance, s.handle) for s in slots if s.state == "connected" and s.instance]
            if connected and any(s.state == "launching" for s in slots):
                seen.extend(i for i, _ in connected)
            ended = [
                pycrew.WorkerInfo(id=i, handle=h, launcher="local", controller_id=controller_id, instance=i,
                                  status="failed", exit_code=1, reason="injected")
                for i, h in connected
            ]
            return [*(listed or []), *ended]

    reporter = ReportsConnectedWorkersEnded()
    pycrew.register(reporter)
    try:
        first = c.submit(sleep_then, 4.0, "first")
        wait_for(lambda: c.summary().controller.workers_online == 1, 30)
        second = c.submit(identity, "second")  # slot 2 launches while slot 1 is connected
        assert second.result(timeout=60) == "second" and first.result(timeout=60) == "first"
    finally:
        pycrew.unregister(reporter)
    assert seen, "no monitor poll happened while one worker was connected and another launching"
    workers = c.summary().workers
    assert [w.launch_failures for w in workers] == [0, 0], workers
    assert workers[0].instances == 1, f"the connected worker was replaced: {workers}"


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_an_untrusted_certificate_fails_the_launch_within_seconds_and_says_so(make_controller, wire):
    from pycrew.tls import self_signed

    key, cert = self_signed("127.0.0.1")
    _, other = self_signed("127.0.0.1")
    tls = pycrew.TLS("custom", key=key, certificate=cert)
    c = make_controller("local", workers=1, wire=wire, tls=tls, launch_max=2, seconds_launch=60)
    c.launcher.tls_ca = other  # workers trust another certificate (ca=other fails when built: test_tls_material_checks)
    c.start()
    message, seconds = launch_error(c)
    assert seconds < 20, f"the LaunchError came after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "exit code 3" in message and "certificate is not trusted" in message, message


def test_a_monitor_that_fails_does_not_stop_launches(make_controller, tmp_path, caplog):
    python = fake_python(tmp_path, f'sleep 1\nexec {sys.executable} "$@"')  # launches take > 1 s: polls happen
    calls: list[float] = []

    class BrokenMonitor:
        @pycrew.hookimpl(wrapper=True)
        def pycrew_list_workers(self, launcher, controller_id):
            yield
            calls.append(time.monotonic())
            raise RuntimeError("the platform's list API is down")

    broken = BrokenMonitor()
    pycrew.register(broken)
    try:
        with caplog.at_level("WARNING", logger="pycrew.control.scaler"):
            c = make_controller("local", workers=1, seconds_launch=60, python=python).start()
            assert c.submit(identity, 5).result(timeout=60) == 5
    finally:
        pycrew.unregister(broken)
    assert calls, "the monitor was never asked while the worker launched"
    warned = [r for r in caplog.records if "listing its workers failed" in r.getMessage()]
    assert len(warned) == 1 and "the platform's list API is down" in warned[0].getMessage(), [r.getMessage() for r in warned]
    assert c.summary().workers[0].launch_failures == 0


def test_a_program_exits_after_its_controller_even_if_a_launcher_call_never_returns(tmp_path):
    # The launcher's hook threads were a ThreadPoolExecutor's, which the interpreter joins at
    # exit: a termination that hung (a platform API that never answers) kept the program
    # from ever exiting, long after terminate() had given up on it (seconds_terminate).
    proc = run_script(
        tmp_path,
        """
        import time
        import pycrew

        class Hangs:
            @pycrew.hookimpl(wrapper=True)
            def pycrew_terminate_workers(self, launcher, handles):
                time.sleep(3600)
                return (yield)

        pycrew.register(Hangs())
        with pycrew.controller("local", workers=1, seconds_terminate=1) as c:
            print("result", c.submit(abs, -3).result(timeout=60), flush=True)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "result 3" in proc.stdout
    assert "its terminate hook did not return within 1 s" in proc.stderr, "terminate() did not say it gave up on the launcher"


def test_a_controller_out_of_file_descriptors_says_so_once_and_serves_the_workers_it_has(tmp_path):
    # Each connected worker holds a file descriptor of the controller's process. Out of them,
    # accept() failed with EMFILE while connections waited: the listener stayed readable, and
    # the dispatcher spun on it, logging "accepting a connection failed" ~50,000 times a second.
    proc = run_script(
        tmp_path,
        """
        import logging, os, resource, time
        import pycrew

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

        class Starve:  # once all 20 workers are started, leave the controller 5 more file descriptors
            launched = 0

            @pycrew.hookimpl
            def pycrew_worker_launched(self, launcher, call, handle):
                Starve.launched += 1
                if Starve.launched == 20:
                    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 5, hard))

        pycrew.register(Starve())
        with pycrew.controller("local", workers=20, workers_at_start=20, seconds_launch=60) as c:
            futures = [c.submit(time.sleep, 0.2) for _ in range(40)]
            print("done", sum(f.result(timeout=60) is None for f in futures), flush=True)
            time.sleep(1.0)  # connections still waiting: the listener is tried again every 0.5 s
        """,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done 40" in proc.stdout
    failures = proc.stderr.count("accepting a worker's connection failed") + proc.stderr.count("accepting a connection failed")
    assert failures == 1, f"{failures} warnings about accepting connections (one expected): {proc.stderr[-2000:]}"
    assert "Too many open files" in proc.stderr and "ulimit -n" in proc.stderr


def test_a_launch_out_of_file_descriptors_says_how_to_raise_the_limit(tmp_path):
    proc = run_script(
        tmp_path,
        """
        import os, resource
        import pycrew

        class Starve:  # the local launcher starts its worker with one file descriptor to spare
            @pycrew.hookimpl(wrapper=True)
            def pycrew_launch_workers(self, launcher, calls):
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 1, hard))
                try:
                    return (yield)
                finally:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        pycrew.register(Starve())
        try:
            with pycrew.controller("local", workers=1, launch_max=1) as c:
                c.submit(abs, -1).result(timeout=60)
        except pycrew.LaunchError as exc:
            print(exc)
        """,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Too many open files" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "ulimit -n" in proc.stdout and "or use fewer workers" in proc.stdout, proc.stdout

"""Processes forked by a task, and processes forked from a controller's process.

Each test failed on commit f6a41ab: a child that ``sys.exit()``-ed out of a task sent its
``SystemExit`` back as the task's result and the worker was stuck; SIGTERM to a task's
``multiprocessing`` child made its worker leave; a ``multiprocessing`` child of a script
with a live controller ran the controller's exit hook when it ended, which hung it while a
future was pending and stopped the parent's workers.
"""

from __future__ import annotations

import signal

import pytest

from helpers import fork_and_leave, fork_then_terminate_the_child, whoami
from support import run_script


def _same_worker_serves_on(c, worker_pid: int) -> None:
    assert c.submit(whoami).result(timeout=30)[1] == worker_pid, "the worker was replaced"
    workers = c.summary().workers
    assert [w.instances for w in workers] == [1] and [w.crashes for w in workers] == [0]


@pytest.mark.parametrize(("how", "code"), [("exit3", 3), ("raise", 1), ("return", 0)])
def test_a_child_a_task_forks_ends_where_it_leaves_the_task(make_controller, how, code):
    c = make_controller("local", workers=1)
    worker_pid = c.submit(whoami).result(timeout=60)[1]
    assert c.submit(fork_and_leave, how).result(timeout=30) == (code, worker_pid), "not the parent's result"
    _same_worker_serves_on(c, worker_pid)
    logs = c.logs(1, lines=None)
    if how == "raise":
        assert "ValueError: raised by the forked child" in logs
    if how == "return":
        assert "returned from the task function; it ends here (exit code 0)" in logs


def test_sigterm_to_a_multiprocessing_child_of_a_task_leaves_the_worker_alone(make_controller):
    c = make_controller("local", workers=1)
    worker_pid = c.submit(whoami).result(timeout=60)[1]
    exitcode, pid = c.submit(fork_then_terminate_the_child, 20).result(timeout=60)
    assert (exitcode, pid) == (-signal.SIGTERM, worker_pid), "the child did not die of SIGTERM"
    _same_worker_serves_on(c, worker_pid)
    assert c.summary().controller.workers_online == 1


def test_a_forked_child_of_a_controllers_process_leaves_its_workers_and_futures_alone(tmp_path):
    done = run_script(
        tmp_path,
        """
        import multiprocessing, time
        import pycrew
        from helpers import sleep_then, whoami

        with pycrew.controller("local", workers=1) as c:
            pid = c.submit(whoami).result(60)[1]
            pending = c.submit(sleep_then, 2, "slept")
            t0 = time.monotonic()
            child = multiprocessing.get_context("fork").Process(target=abs, args=(1,))
            child.start()
            child.join(30)
            print("child", child.exitcode, time.monotonic() - t0 < 10)
            print("pending", pending.result(30))
            print("same worker", c.submit(whoami).result(30)[1] == pid)
            print("instances", [w.instances for w in c.summary().workers])
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:4] == ["child 0 True", "pending slept", "same worker True", "instances [1]"], (
        done.stdout + done.stderr
    )


def test_a_forked_copy_of_a_controller_refuses_work_and_terminating_it_touches_nothing(tmp_path):
    done = run_script(
        tmp_path,
        """
        import os, time
        import pycrew
        from helpers import identity, sleep_then, whoami

        with pycrew.controller("local", workers=1) as c:
            pid = c.submit(whoami).result(60)[1]
            pending = c.submit(sleep_then, 3, "slept")
            r, w = os.pipe()
            child = os.fork()
            if child == 0:
                lines = []
                calls = (
                    lambda: c.submit(identity, 1), lambda: c.push(identity, (1,)), lambda: c.wait(),
                    lambda: pending.result(10), lambda: pending.exception(10),  # before: TimeoutError, 10 s later
                )
                for call in calls:
                    try:
                        call()
                        lines.append("accepted")
                    except Exception as exc:
                        lines.append(f"{type(exc).__name__}: {exc}")
                t0 = time.monotonic()
                c.terminate()
                lines.append(f"terminated {time.monotonic() - t0 < 2}")
                os.write(w, "\\n".join(lines).encode())
                os._exit(0)
            os.close(w)
            with os.fdopen(r) as f:
                print(f.read())
            os.waitpid(child, 0)
            print("parent", c.submit(identity, 7).result(30), c.submit(whoami).result(30)[1] == pid, pending.result(30))
        """,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().split("\n")
    assert len(lines) == 7, done.stdout + done.stderr
    for line in lines[:5]:
        assert "belongs to process" in line and "is a fork of it and cannot use it" in line, line
    assert lines[0].startswith("RuntimeError") and lines[1].startswith("ControllerError")
    assert lines[3].startswith("ControllerError: this future cannot be waited for here") and lines[4] == lines[3]
    assert lines[5:] == ["terminated True", "parent 7 True slept"]


def test_a_long_lived_forked_child_does_not_keep_the_controllers_port_and_links(tmp_path):
    """A child forked while the controller runs (a fork-based multiprocessing pool, say)
    closes its copies of the dispatcher's sockets at the fork. Before, it kept the port
    bound after the parent's controller ended, and every worker connection open: a worker
    whose controller died saw no end of its connection while the child lived. The same for
    the dashboard's port (on d0119a8 the child kept it: clients connected and got no answer,
    and a fixed dashboard=<port> could not be used again while the child lived)."""
    done = run_script(
        tmp_path,
        """
        import os, socket
        import pycrew
        from helpers import whoami

        c = pycrew.controller("local", workers=1, dashboard=True)
        c.start()
        c.submit(whoami).result(60)
        ports = {"port": int(c._dispatcher.address.rsplit(":", 1)[1]), "dashboard port": c._dashboard.port}
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(w)
            os.read(r, 1)  # lives until the parent says
            os._exit(0)
        os.close(r)
        c.terminate()
        try:
            for name, port in ports.items():
                probe = socket.socket()
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past closed links (TIME_WAIT), not a listener
                try:
                    probe.bind(("127.0.0.1", port))
                    probe.listen()
                    print(name, "free")
                except OSError as exc:
                    print(name, "still bound:", exc)
                finally:
                    probe.close()
        finally:
            os.write(w, b"x")
            os.waitpid(child, 0)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["port free", "dashboard port free"], done.stdout + done.stderr


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_a_forked_child_of_a_controllers_process_may_end_through_a_normal_exit(tmp_path, wire):
    """``sys.exit`` in an ``os.fork`` child runs the interpreter's exit: neither pycrew's exit
    hook nor pynng's (NNG cannot run in a forked child: it waited forever) may act there."""
    done = run_script(
        tmp_path,
        f"""
        import os, sys, time
        import pycrew
        from helpers import identity, whoami

        with pycrew.controller("local", workers=1, wire={wire!r}) as c:
            pid = c.submit(whoami).result(60)[1]
            child = os.fork()
            if child == 0:
                sys.exit(7)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                ended, status = os.waitpid(child, os.WNOHANG)
                if ended:
                    break
                time.sleep(0.05)
            print("child", os.waitstatus_to_exitcode(status) if ended else "still running")
            print("parent", c.submit(identity, 7).result(30), c.submit(whoami).result(30)[1] == pid)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["child 7", "parent 7 True"], done.stdout + done.stderr

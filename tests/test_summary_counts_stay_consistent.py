"""``summary()`` tells the truth at every moment, not only at rest (from a probe of what
users see: each test failed on 64971f1).

- The identity the docs promise, pushed == queued + running + resolved + abandoned, and
  success + error + crash + cancel + timeout == resolved, broke for tens of milliseconds
  at a time while results came in (519 to 1,149 of ~20,000 samples): the counts were read
  one by one while the dispatcher moved tasks from one to the next.
- A slot's ``assigned`` ("tasks sent to this slot's workers") went down: it was counted
  as its results plus the tasks its current connection held, so a task lost with a dead
  worker left it (0, 1, 0, 1, 0 for a task that crashed three workers).
- After a ``LaunchError``, another slot's launch under way stayed ``launching`` for good
  (and its worker, if it came up, for nothing).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import pycrew
from helpers import sleep_then
from support import wait_for


def _exit_at_once() -> None:
    time.sleep(0.1)
    os._exit(3)


def _sample(c: pycrew.Controller, stop: threading.Event, bad: list[str], counts: list[int]) -> None:
    while not stop.is_set():
        s = c.summary().controller
        counts[0] += 1
        statuses = s.success + s.error + s.crash + s.cancel + s.timeout
        if s.pushed != s.queued + s.running + s.resolved + s.abandoned:
            bad.append(f"pushed {s.pushed} != queued {s.queued} + running {s.running} + resolved {s.resolved} "
                       f"+ abandoned {s.abandoned}")
        if statuses != s.resolved:
            bad.append(f"statuses {statuses} != resolved {s.resolved}")
        if s.popped > s.resolved:
            bad.append(f"popped {s.popped} > resolved {s.resolved}")


def test_the_counts_add_up_in_every_sample_while_results_come_in(make_controller):
    c = make_controller("local", workers=2).start()
    stop, bad, counts = threading.Event(), [], [0]
    sampler = threading.Thread(target=_sample, args=(c, stop, bad, counts), daemon=True)
    sampler.start()
    try:
        for _ in range(3):
            futures = [c.submit(divmod, i, 7) for i in range(1_000)]
            for i in range(1_000):
                c.push(abs, args=(-i,))
            assert [f.result(timeout=120) for f in futures] == [divmod(i, 7) for i in range(1_000)]
            assert c.wait(timeout=120)
            while c.pop() is not None:
                pass
    finally:
        stop.set()
        sampler.join(30)
    assert counts[0] > 100, "too few samples to tell"
    assert not bad, f"{len(bad)} of {counts[0]} samples did not add up, e.g. {bad[:3]}"


def test_assigned_counts_every_task_sent_and_never_goes_down(make_controller):
    c = make_controller("local", workers=1, crashes_max=3).start()
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            w = c.summary().workers[0]
            seen.append((w.assigned, w.complete))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        future = c.submit(_exit_at_once)
        with pytest.raises(pycrew.TaskCrashError):
            future.result(timeout=120)
    finally:
        stop.set()
        sampler.join(30)
    w = c.summary().workers[0]
    assert (w.crashes, w.assigned, w.running) == (3, 3, 0), w
    assigned = [a for a, _ in seen]
    assert assigned == sorted(assigned), f"assigned went down: {assigned}"
    assert all(a >= done for a, done in seen)


def test_a_cancelled_task_leaves_its_workers_running_count_at_once(make_controller):
    c = make_controller("local", workers=1).start()
    long = c.submit(sleep_then, 30, "late")
    wait_for(lambda: c.summary().workers[0].running == 1, 60, message="the task never ran")
    assert long.cancel()
    s = c.summary()
    assert (s.controller.running, s.workers[0].running, s.workers[0].assigned) == (0, 0, 1), s
    assert c.submit(abs, -5).result(timeout=60) == 5
    assert c.summary().workers[0].assigned == 2


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_other_launches_under_way_end_with_the_launch_error(make_controller, tmp_path):
    """Worker 1's interpreter fails at once; worker 2's never connects (it sleeps): the
    LaunchError comes from worker 1, and worker 2's launch must not stay under way."""
    python = tmp_path / "python"
    python.write_text(f'''#!/bin/sh
case " $* " in *" --worker 2 "*) echo $$ > {tmp_path}/pid; exec sleep 60;; esac
exit 1
''')
    python.chmod(0o755)
    c = make_controller("local", workers=2, launch_max=2, python=str(python)).start()
    futures = [c.submit(abs, -1), c.submit(abs, -2)]  # work for both
    with pytest.raises(pycrew.LaunchError):
        futures[0].result(timeout=20)  # (seconds_launch is 30 s: worker 2 has not timed out)
    wait_for(lambda: c.summary().controller.workers_launching == 0, 10,
             message="worker 2's launch stayed under way after the LaunchError")
    w = c.summary().workers[1]
    assert (w.launches, w.launch_failures) == (1, 0) and "raised a LaunchError" in w.exit_reason, w
    pid = int((tmp_path / "pid").read_text())
    wait_for(lambda: not _pid_alive(pid), 10, message="worker 2's process was left running")
    time.sleep(1.0)  # and nothing launches again
    assert [w.launches for w in c.summary().workers] == [2, 1]
    assert c.summary().controller.workers_launching == 0


def test_after_terminate_each_worker_that_was_there_says_why_it_left(make_controller):
    """Probe H (session 32): exit_reason stayed empty for the workers terminate() ended."""
    c = make_controller("local", workers=2, workers_at_start=2).start()
    assert [f.result(timeout=60) for f in [c.submit(abs, -i) for i in range(4)]] == [0, 1, 2, 3]
    c.terminate()
    reasons = [w.exit_reason for w in c.summary().workers if w.instances]
    assert reasons and all(r == "the controller terminated" for r in reasons), reasons


def test_pushed_tasks_queued_at_a_launch_error_count_as_abandoned_at_once(make_controller, tmp_path):
    """They never go to a worker after it (pop raises the error), yet summary() showed them
    queued until terminate() (a probe of a service watching summary, session 36)."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    c = make_controller("local", workers=1, launch_max=1, python=str(python)).start()
    for i in range(3):
        c.push(abs, (-i,))
    future = c.submit(abs, -9)
    with pytest.raises(pycrew.LaunchError):
        future.result(timeout=30)
    s = c.summary().controller
    assert (s.pushed, s.queued, s.running, s.resolved, s.abandoned) == (4, 0, 0, 0, 4), s
    with pytest.raises(pycrew.LaunchError):
        c.pop()
    c.terminate()
    s = c.summary().controller
    assert (s.pushed, s.queued, s.running, s.resolved, s.abandoned) == (4, 0, 0, 0, 4), s


def test_every_launch_of_a_batch_whose_hook_raised_counts_as_failed(make_controller, pycrew_plugin):
    """The batch's first slot reached launch_max and raised the LaunchError, which ended the
    second slot's launch before it was counted: 4 launches, 3 failures (probe W, session 36)."""
    from pycrew_local.plugin import LocalPlugin

    class Refusing(LocalPlugin):
        name = "refusing"

        def launch(self, launcher, options, calls):
            raise RuntimeError("the platform said no")

    pycrew_plugin(Refusing(), name="refusing")
    c = make_controller("refusing", workers=2, launch_max=2).start()
    futures = [c.submit(abs, -1), c.submit(abs, -2)]
    with pytest.raises(pycrew.LaunchError):
        futures[0].result(timeout=30)
    launcher = c.summary().launcher
    assert launcher["launches"] >= 3 and launcher["launch_failures"] == launcher["launches"], launcher

"""Cancelling queued and running tasks, per-task timeouts, seeds and worker hygiene."""

from __future__ import annotations

import os
import signal
import time

import pytest

import pycrew
from helpers import (
    break_the_standard_streams,
    busy_loop,
    catch_own_alarm,
    draw,
    identity,
    interpreter_settings,
    leave_a_timer_running,
    leave_and_remove,
    mock_the_serializers,
    mutate_process_state,
    pid_and_draws,
    print_and_log,
    sleep_then,
    stop_the_clocks,
    turn_interpreter_settings,
    write_pid_then_sleep,
)
from support import run_script, wait_for


def test_cancel_running_task_by_name_interrupts_it_and_resolves_once(make_controller, tmp_path):
    c = make_controller("local", workers=1).start()
    pid_file = tmp_path / "pid"
    c.push(write_pid_then_sleep, (str(pid_file), 60), name="long")
    c.push(identity, (1,), name="next")
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30)
    assert c.cancel(names=["long"]) == 1
    assert c.wait(timeout=30)
    results = {r.name: r for r in c.collect()}
    assert results["long"].status == "cancel"
    assert results["next"].status == "success", "other tasks are not affected"
    assert results["next"].pid == int(pid_file.read_text()), "the worker was interrupted, not replaced"
    assert c.summary().controller.cancel == 1 and c.summary().controller.resolved == 2


def test_cancel_all_removes_queued_tasks(make_controller):
    c = make_controller("local", workers=1).start()
    c.walk(sleep_then, [0.5] * 5)
    assert c.cancel(all=True) == 5
    assert c.wait(timeout=30)
    assert [r.status for r in c.collect()] == ["cancel"] * 5


def test_future_cancel_stops_a_running_task(make_controller):
    c = make_controller("local", workers=1).start()
    future = c.submit(sleep_then, 60)
    wait_for(future.running, 30)
    t0 = time.monotonic()
    assert future.cancel() is True
    assert future.cancelled() and time.monotonic() - t0 < 10
    assert c.submit(identity, 3).result(timeout=30) == 3


def test_task_timeout_resolves_as_timeout_and_spares_others(make_controller):
    c = make_controller("local", workers=1).start()
    c.push(sleep_then, (30,), name="slow", seconds_timeout=0.5)
    c.push(busy_loop, (30,), name="spinning", seconds_timeout=0.5)
    c.push(sleep_then, (0.1, "quick"), name="quick", seconds_timeout=5)
    assert c.wait(timeout=60)
    results = {r.name: r for r in c.collect()}
    assert results["slow"].status == "timeout" and "seconds_timeout" in results["slow"].error
    assert results["spinning"].status == "timeout"
    assert results["quick"].result == "quick"
    assert results["slow"].seconds < 5


def test_controller_default_timeout_raises_in_futures(make_controller):
    c = make_controller("local", workers=1, seconds_timeout=0.5).start()
    with pytest.raises(pycrew.TaskTimeoutError):
        c.submit(sleep_then, 30).result(timeout=30)


def test_worker_that_ignores_interruption_is_replaced(make_controller, tmp_path):
    script = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\ntime.sleep(60)\n"

    def deaf() -> None:
        exec(script, {})

    c = make_controller("local", workers=1).start()
    c._dispatcher.settings = type(c._dispatcher.settings)(**{**c._dispatcher.settings.__dict__, "seconds_grace": 1.0})
    c.push(deaf, name="deaf", seconds_timeout=0.5)
    assert c.wait(timeout=60)
    r = c.pop()
    assert r.status == "timeout" and "replaced" in r.error
    assert c.submit(identity, 1).result(timeout=30) == 1


def test_a_task_that_blocked_the_interrupt_and_ended_late_is_a_timeout_and_the_next_is_interruptible(make_controller):
    script = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\ntime.sleep(1.5)\n"

    def deaf_for_a_while() -> str:
        exec(script, {})
        return "late"

    c = make_controller("local", workers=1).start()  # the grace period (5 s) outlasts the task
    c.push(deaf_for_a_while, name="deaf", seconds_timeout=0.3)
    c.push(sleep_then, (30,), name="next", seconds_timeout=0.3)
    assert c.wait(timeout=60)
    results = {r.name: r for r in c.collect()}
    # Before: "deaf" came back a success, 1.2 s past its time limit, and "next" could not be
    # interrupted either (the signal stayed blocked): its worker was replaced after the grace period.
    assert results["deaf"].status == "timeout" and "could not interrupt it" in results["deaf"].error
    assert results["next"].status == "timeout" and "could not interrupt" not in results["next"].error
    assert c.summary().workers[0].instances == 1, "the worker was replaced: the interrupt signal stayed blocked"


def test_signals_a_task_blocked_and_returned_are_unblocked_for_the_next_task(make_controller):
    """A task blocked signals (``pthread_sigmask``, never undone) and returned in time."""
    script = (
        "import signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP})\n"
        "blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))\n"
    )

    def block_signals() -> list[int]:
        scope: dict[str, list[int]] = {}
        exec(script, scope)
        return scope["blocked"]

    def blocked_now() -> list[int]:
        import signal

        return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))

    c = make_controller("local", workers=1).start()
    before = c.submit(blocked_now).result(timeout=60)
    assert {10, 15, 1} <= set(c.submit(block_signals).result(timeout=60))
    assert c.submit(blocked_now).result(timeout=60) == before
    t0 = time.monotonic()
    c.push(sleep_then, (60,), name="next", seconds_timeout=0.5)
    assert c.wait(timeout=60)
    (result,) = c.collect()
    # Before: "next" ran its full 60 s (the interrupt signal stayed blocked), or its worker
    # was replaced after the grace period.
    assert result.status == "timeout" and "could not interrupt" not in result.error
    assert time.monotonic() - t0 < 30, "the task was cut short at its time limit"
    assert c.summary().workers[0].instances == 1, "the worker was interrupted, not replaced"


def test_workers_of_a_program_that_blocked_signals_can_still_be_interrupted(tmp_path):
    """A signal mask is inherited across ``fork`` and ``exec``: a program (or the job runner
    above it) that blocked SIGUSR1 and SIGTERM started workers deaf to both."""
    proc = run_script(
        tmp_path,
        """
        import signal, time
        import pycrew
        from helpers import sleep_then

        def blocked_now():
            import signal
            return sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP})
        with pycrew.controller("local", workers=1) as c:
            print("mask", *c.submit(blocked_now).result(timeout=60))
            t0 = time.monotonic()
            c.push(sleep_then, (60,), seconds_timeout=0.5)
            c.wait(timeout=90)
            print("result", c.pop().status, c.summary().workers[0].instances, time.monotonic() - t0 < 30)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    # Before: the mask was 1 10 15, and the task ran until the dispatcher replaced its worker.
    assert lines["mask"] == str(int(signal.SIGHUP)), "the worker's own signals unblocked, the program's others kept"
    assert lines["result"] == "timeout 1 True", proc.stderr


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_a_task_that_stopped_the_clocks_cannot_stop_its_workers(make_controller, wire):
    """A task replaced ``time.monotonic`` and ``time.time`` for good (freezegun's way). On
    e762936 the worker's own clock stopped with them: its time limits never expired (the
    controller replaced the worker once the grace period ran out) and its results claimed to
    take no time."""
    c = make_controller("local", workers=1, wire=wire).start()
    pid = c.submit(stop_the_clocks).result(timeout=60)
    c.push(sleep_then, (30, "late"), name="timed", seconds_timeout=0.5)
    c.push(sleep_then, (0.2, "kept"), name="kept")
    assert c.wait(timeout=60)
    results = {r.name: r for r in c.collect()}
    assert results["timed"].status == "timeout" and "replaced" not in results["timed"].error, results["timed"].error
    assert results["kept"].status == "success" and results["kept"].seconds >= 0.2, results["kept"]
    assert c.submit(os.getpid).result(timeout=60) == pid, "the worker was replaced: it could not keep the time limit"
    assert c.summary().workers[0].instances == 1


def test_a_task_that_mocks_pickle_and_json_for_good_does_not_break_its_worker(make_controller):
    # Before: that task's own result and every later task's came back as "the result could not
    # be unpickled on the controller" (the worker pickled them with the task's mock).
    c = make_controller("local", workers=1, tasks_max=4).start()
    assert c.submit(mock_the_serializers).result(timeout=60) == "mocked"
    assert [c.submit(identity, {"n": i}).result(timeout=60) for i in range(3)] == [{"n": i} for i in range(3)]
    wait_for(lambda: c.summary().workers[0].instances == 1 and c.summary().controller.workers_online == 0, 30,
             message="the worker did not leave cleanly after tasks_max (its goodbye is JSON)")
    assert c.summary().controller.crash == 0 and c.summary().workers[0].crashes == 0


@pytest.mark.parametrize("kind", ["alarm", "repeating", "profiler"])
def test_a_timer_a_task_left_running_does_not_end_the_worker_later(make_controller, kind):
    """On 11cebb5 SIGALRM (or SIGPROF) from a timer an earlier task never cancelled ended
    the worker during the next task, which was counted as a crash."""
    c = make_controller("local", workers=1, crashes_max=1).start()
    pid = c.submit(leave_a_timer_running, kind).result(timeout=60)
    c.push(busy_loop, (1.5,), name="next")  # on the CPU: SIGPROF's timer runs too
    assert c.wait(timeout=60)
    r = c.pop()
    assert r.status == "success" and r.pid == pid, (r.status, r.error)
    assert any("left running" in w and "cancelled the timer" in w for w in r.warnings), r.warnings
    assert c.submit(catch_own_alarm, 0.5).result(timeout=60) >= 3, "a task's own SIGALRM handler must still get its signals"
    assert c.submit(os.getpid).result(timeout=60) == pid and c.summary().workers[0].instances == 1


def test_a_time_limit_is_kept_on_a_link_whose_reads_cannot_be_cut_short(make_controller):
    """On NNG the worker's comms thread reads every frame and its reads cannot be
    interrupted: having handed a task over, it must not block in a read (until its next
    heartbeat, here up to 30 s) before the task's deadline is known."""
    c = make_controller("local", workers=1, wire="nng", seconds_heartbeat=30.0, seconds_heartbeat_timeout=120.0).start()
    c.push(sleep_then, (3.0, "late"), name="timed", seconds_timeout=0.5)
    assert c.wait(timeout=60)
    r = c.pop()
    assert r.status == "timeout" and "replaced" not in r.error, (r.status, r.error)  # before: a success, at 3 s


def test_seeded_tasks_are_reproducible_and_restore_the_state(make_controller):
    c = make_controller("local", workers=2).start()
    first = list(c.map(draw, range(0), seed=1))
    assert first == []
    a = [c.submit_task(draw, seed=42).result(timeout=30) for _ in range(2)]
    assert a[0] == a[1], "the same seed gives the same draw"
    m1 = list(c.map(lambda _: draw(), range(6), seed=7))
    m2 = list(c.map(lambda _: draw(), range(6), seed=7))
    assert m1 == m2 and len(set(m1)) == 6
    assert pycrew.task_seed(7, 0) != pycrew.task_seed(7, 1) != pycrew.task_seed(8, 0)
    c.push(draw, seed=5, name="s")
    c.wait(timeout=30)
    assert c.pop().seed == 5


def test_unseeded_workers_draw_from_distinct_streams(make_controller):
    c = make_controller("local", workers=2).start()
    (pid1, draws1), (pid2, draws2) = c.map(pid_and_draws, [0.5, 0.5])
    assert pid1 != pid2, "the two tasks should have run on two workers"
    assert draws1 != draws2, "two worker instances drew from the same random stream"


def test_worker_state_changes_do_not_leak_into_the_next_task(make_controller, tmp_path):
    c = make_controller("local", workers=1).start()
    first = c.submit(mutate_process_state, str(tmp_path)).result(timeout=30)
    second = c.submit(mutate_process_state, str(tmp_path)).result(timeout=30)
    assert second == first, "os.environ, sys.path or the cwd leaked from one task into the next"


def test_a_task_that_removes_the_workers_directory_keeps_its_result_and_its_worker(make_controller, tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)  # the local launcher's workers start in the controller's directory
    c = make_controller("local", workers=1).start()
    c.push(leave_and_remove, (str(home), str(elsewhere)), name="remover")
    assert c.wait(timeout=30)
    r = c.pop()
    # Before: the worker died putting the directory back, the task's result with it, and the
    # task ran again as a crash (on a new worker), where removing the directory failed.
    assert (r.status, r.result, r.attempts) == ("success", str(elsewhere), 1), r.error
    assert len(r.warnings) == 1 and "could not return the worker to its working directory" in r.warnings[0]
    monkeypatch.chdir(tmp_path)
    assert c.submit(mutate_process_state, str(tmp_path)).result(timeout=30)["cwd"] == str(elsewhere)
    assert c.summary().workers[0].instances == 1, "the worker was replaced"


@pytest.mark.parametrize("how", ["replace", "close"])
def test_a_task_that_breaks_the_standard_streams_does_not_break_the_next(make_controller, tmp_path, how):
    c = make_controller("local", workers=1).start()
    assert c.submit(break_the_standard_streams, how, str(tmp_path / "elsewhere")).result(timeout=30) == how
    assert c.submit(print_and_log, "next task").result(timeout=30) == "next task", "the next task failed"
    wait_for(lambda: "next task logged" in c.logs(1, lines=None), 30, message="the worker's log lines are lost")
    logs = c.logs(1, lines=None)
    assert "next task on stdout" in logs and "next task on stderr" in logs, logs
    assert c.summary().workers[0].instances == 1


def test_a_task_that_turns_an_interpreter_setting_does_not_turn_it_for_the_next(make_controller):
    # Before: a task's sys.setrecursionlimit(60) made the next task that recursed a little fail
    # with RecursionError, a profiler left installed slowed every later task, a umask of 0o777
    # made their files unreadable, and so on for each setting below.
    c = make_controller("local", workers=1).start()
    baseline = c.submit(interpreter_settings).result(timeout=30)
    assert baseline["trace"] is None and baseline["profile"] is None and baseline["gc"] is True
    leaked = {}
    for setting in baseline:
        assert c.submit(turn_interpreter_settings, setting).result(timeout=30) == setting
        after = c.submit(interpreter_settings).result(timeout=30)
        leaked.update({k: v for k, v in after.items() if v != baseline[k]})
    assert leaked == {}, f"settings a task changed stayed changed for the next: {leaked}"
    assert c.summary().workers[0].instances == 1


def test_reset_can_be_turned_off(make_controller, tmp_path):
    c = make_controller("local", workers=1, reset_environment=False, garbage_collection=True).start()
    c.submit(mutate_process_state, str(tmp_path)).result(timeout=30)
    second = c.submit(mutate_process_state, str(tmp_path)).result(timeout=30)
    assert second["env"] == "leaked" and second["path"] is True

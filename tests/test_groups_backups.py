"""ControllerGroup, backup controllers and the sequential controller."""

from __future__ import annotations

import contextlib
import os
import pdb
import socket
import threading
import time

import pytest

import pycrew
from helpers import always_crash, crash_until, identity, raise_value_error, sleep_then
from support import wait_for, worker_pids


def test_group_routes_by_name_and_pops_fairly(make_controller):
    a = make_controller("local", workers=1, name="a")
    b = make_controller("local", workers=1, name="b")
    with pycrew.ControllerGroup(a, b) as group:
        for i in range(3):
            group.push(identity, (f"a{i}",), name=f"a{i}")
            group.push(identity, (f"b{i}",), name=f"b{i}", controller="b")
        assert group.wait(timeout=60)
        order = [group.pop().controller for _ in range(6)]
        assert group.pop() is None
    assert order == ["a", "b", "a", "b", "a", "b"], "pop must alternate between controllers with results"
    assert group.summary()["b"].controller.pushed == 3


def test_group_submit_map_and_errors_carry_the_controller_name(make_controller, tmp_path):
    good = make_controller("local", workers=1, name="good")
    bad = make_controller("local", workers=1, name="bad", launch_max=1, python=str(tmp_path / "missing"))
    group = pycrew.ControllerGroup(good, bad).start()
    try:
        assert group.submit(identity, 5).result(timeout=30) == 5
        assert list(group.map(identity, [1, 2], controller="good")) == [1, 2]
        # bad's first worker (launched by start()) fails at once: the push or the wait says so
        with pytest.raises(pycrew.LaunchError, match=r"^controller 'bad': "):
            group.push(identity, (1,), controller="bad")
            group.wait(timeout=60)
        with pytest.raises(pycrew.OptionsError, match="no controller named 'ugly'"):
            group.push(identity, (1,), controller="ugly")
        # walk and map name it too (a probe: only push and submit_to did), and map checks its
        # arguments when called, not when first iterated (with buffersize="auto", only then)
        with pytest.raises(pycrew.OptionsError, match=r"^controller 'good': seconds_timeout must be a number > 0"):
            group.walk(identity, [1], seconds_timeout=-1, controller="good")
        with pytest.raises(pycrew.OptionsError, match=r"^controller 'good': seconds_timeout must be a number > 0"):
            group.map(identity, [1], seconds_timeout=-1, controller="good")
        with pytest.raises(pycrew.SerializationError, match=r"^controller 'good': task '.*' cannot be pickled"):
            group.walk(identity, [threading.Lock()], controller="good")
    finally:
        group.terminate()


def test_map_checks_its_task_arguments_when_called(make_controller):
    """With the default buffersize="auto" a bad seconds_timeout or fn was raised only by list(it):
    a map never iterated hid it (a probe)."""
    c = make_controller("local", workers=1)
    for buffersize in ("auto", None, 4):
        with pytest.raises(pycrew.OptionsError, match="seconds_timeout must be a number > 0 or None, got -1"):
            c.map(abs, [1, 2], seconds_timeout=-1, buffersize=buffersize)
        with pytest.raises(TypeError, match="fn must be callable, got 3"):
            c.map(3, [1, 2], buffersize=buffersize)
    assert c.summary().controller.pushed == 0


@pytest.mark.parametrize("mode", ["all", "one"])
def test_group_wait_raises_a_members_launch_error_after_it_failed_every_future(make_controller, tmp_path, mode):
    """Once a LaunchError has failed every future of a member, that member has nothing
    unresolved: the group's wait still raises the error, as a controller's own wait does."""
    good = make_controller("local", workers=1, name="good")
    bad = make_controller("local", workers=1, name="bad", launch_max=1, python=str(tmp_path / "missing"))
    group = pycrew.ControllerGroup(good, bad).start()
    try:
        future = bad.submit(identity, 1)
        with pytest.raises(pycrew.LaunchError):
            future.result(timeout=60)
        assert group.unresolved() == 0
        with pytest.raises(pycrew.LaunchError, match=r"^controller 'bad': "):
            group.wait(mode, timeout=30)
        with pytest.raises(pycrew.LaunchError, match=r"^launcher 'local'"):
            bad.wait(mode, timeout=30)
    finally:
        group.terminate()


def test_a_terminated_controller_holds_back_none_of_the_groups_results(make_controller):
    """Failed on fce425b: with b's three results waiting and a terminated, collect() took
    b's results and then raised a's error (they were lost), and every pop() raised a's
    error before reaching b."""
    b = make_controller("local", workers=1, name="b")
    a = make_controller("local", workers=1, name="a")
    group = pycrew.ControllerGroup(b, a).start()
    try:
        for i in range(6):
            group.push(identity, (i,), name=f"b{i}", controller="b")
        assert group.wait(timeout=60)
        a.terminate()
        assert group.pop().name == "b0" and group.pop().name == "b1", "pop reaches b past the terminated a"
        assert [r.name for r in group.collect()] == ["b2", "b3", "b4", "b5"], "collect keeps b's results"
        assert b.ready() == 0 and b.summary().controller.popped == 6
        # nothing left anywhere, and a ended with nothing unresolved: nothing to pop, no error
        # (as a controller's own pop after a clean end, since 157a9be)
        assert group.pop() is None and group.collect() == []
        with pytest.raises(RuntimeError, match="after shutdown") as raised:
            group.submit_to("a", identity, 1)
        assert "in controller 'a' of the group" in raised.value.__notes__
    finally:
        group.terminate()


def test_group_wait_raises_for_a_terminated_member_holding_a_result_and_unfinished_tasks(make_controller):
    """On 2c03aec it never returned: the terminated member still counted its unfinished pushed
    task, and its wait("one") returned True (a result was ready) instead of raising."""
    a, b = make_controller("local", workers=1, name="a"), make_controller("local", workers=1, name="b")
    group = pycrew.ControllerGroup(a, b).start()
    try:
        group.push(identity, (1,), name="ready", controller="a")
        assert a.wait(timeout=60)
        group.push(sleep_then, (30.0, "slow"), name="slow", controller="a")
        wait_for(lambda: a.summary().controller.running == 1, 30, message="the slow task did not start")
        a.terminate()
        started = time.monotonic()
        with pytest.raises(pycrew.ControllerError, match=r"^controller 'a' was terminated"):
            group.wait(timeout=20)
        assert time.monotonic() - started < 15, "wait ran out its timeout instead of raising"
    finally:
        group.terminate()


@pytest.mark.parametrize("how", ["shutdown", "shutdown(wait=False)", "terminate", "a member's shutdown"])
def test_a_group_shut_down_inside_its_with_block_leaves_it_cleanly(make_controller, how):
    """As a controller does: on 12c4779 the block's end raised "controller 'a' was
    terminated" in all four cases, and wait() after a clean shutdown() raised too (a probe)."""
    a, b = make_controller("local", workers=1, name="a"), make_controller("local", workers=1, name="b")
    with pycrew.ControllerGroup(a, b) as group:
        assert group.submit(identity, 3).result(timeout=60) == 3
        if how == "shutdown":
            group.shutdown()
            assert group.wait(timeout=30)
        elif how == "shutdown(wait=False)":
            group.shutdown(wait=False)
        elif how == "terminate":
            group.terminate()
        else:
            b.shutdown()
            assert group.submit_to("a", identity, 4).result(timeout=60) == 4
    assert a._terminated and b._terminated


def test_a_failed_member_does_not_cut_the_others_work_short(make_controller, tmp_path):
    """On 2c03aec the group's wait raised the failed member's LaunchError at once: leaving the
    with block then terminated the healthy member, whose running task ended cancelled."""
    good = make_controller("local", workers=1, name="good")
    bad = make_controller("local", workers=1, name="bad", launch_max=1, python=str(tmp_path / "missing"))
    with pytest.raises(pycrew.LaunchError, match=r"^controller 'bad': "), pycrew.ControllerGroup(good, bad) as group:
        slow = group.submit_to("good", sleep_then, 2.0, "done")
        with contextlib.suppress(pycrew.LaunchError):  # if its launch failed already
            group.submit_to("bad", identity, 1)
    assert slow.result(timeout=0) == "done", "the healthy member's task was cut short"


@pytest.mark.parametrize("how", ["group.shutdown()", "bad.shutdown()", "bad.terminate()"])
@pytest.mark.parametrize("tasks", [0, 1])
def test_a_member_shut_down_after_its_launch_error_still_fails_the_block(make_controller, tmp_path, how, tasks):
    """The docs: a failed member's LaunchError is raised at the block's end even if it was seen
    inside, so that a group never hides a failed member. A probe's block, shut down in a
    ``finally`` as the docs advise, ended without an error (or with "controller 'bad' was
    terminated", the launch's reason lost)."""
    good = make_controller("local", workers=1, name="good")
    bad = make_controller("local", workers=1, name="bad", launch_max=1, python=str(tmp_path / "missing"))
    failed = pytest.raises(pycrew.LaunchError, match=r"^controller 'bad': .*No such file")
    with failed, pycrew.ControllerGroup(good, bad) as group:
        assert group.submit_to("good", identity, 1).result(timeout=60) == 1
        with pytest.raises(pycrew.LaunchError):
            bad.submit(identity, 1).result(timeout=60)
        if tasks:
            group.push(sleep_then, (0.5, 2), controller="good")
        {"group.shutdown()": group.shutdown, "bad.shutdown()": bad.shutdown, "bad.terminate()": bad.terminate}[how]()


@pytest.mark.parametrize("progress", [False, True])
def test_a_group_wait_blocks_instead_of_spinning_while_a_result_waits_to_be_popped(make_controller, progress):
    """A probe: the group's wait("all") asked each member wait("one", 0.02), which returns at
    once while a result waits for pop(): 3.0 s of CPU in 3.0 s (the with block's end too, and the
    bar redrew 12,704 times), against 0.01 s for the member's own wait."""
    a, b = make_controller("local", workers=1, name="a"), make_controller("local", workers=1, name="b")
    with pycrew.ControllerGroup(a, b) as group:
        group.push(identity, (1,), controller="b")
        assert b.wait(timeout=60)
        group.push(sleep_then, (2.0, "slow"), controller="b")
        cpu = time.process_time()
        assert group.wait(timeout=60, progress=progress)
        cpu = time.process_time() - cpu
        assert [group.pop().result for _ in range(2)] == [1, "slow"]
    assert cpu < 0.8, f"the group's wait used {cpu:.2f} s of CPU over a 2 s task"


def test_a_group_wait_for_one_looks_at_every_member_at_once(make_controller):
    """wait("one") and wait(timeout=) gave each busy member up to 0.02 s in turn: a probe's group
    of 20 took 0.41 s for wait(timeout=0) and to see a quick task end. Members here are stand-ins
    (the group only calls their API) that count how long each was asked to wait."""
    asked: list[float] = []

    class Busy:
        def __init__(self, name: str) -> None:
            self.name, self._terminated = name, False

        def wait(self, mode: str = "all", timeout: float | None = None, progress: bool = False) -> bool:
            asked.append(timeout or 0.0)
            time.sleep(timeout or 0.0)
            return False

        def unresolved(self) -> int:
            return 1

        def ready(self) -> int:
            return 0

        push = pop = summary = terminate = None

    group = pycrew.ControllerGroup(*[Busy(f"m{i}") for i in range(20)])
    assert group.wait("one", timeout=0.0) is False
    assert group.wait("one", timeout=0.1) is False
    assert group.wait(timeout=0.0) is False
    assert group.wait(timeout=0.1) is False
    assert sum(asked) <= 0.2 + 1e-9, f"members were asked to wait {sum(asked):.2f} s in all for 0.2 s of timeouts"


def test_a_group_that_cannot_start_leaves_no_controller_running(make_controller):
    """Failed on 5246eae: the first controller started, the second could not listen, and the
    first kept its dispatcher and workers running (no __exit__ runs after a failed __enter__)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        a = make_controller("local", workers=2, name="a")
        b = make_controller("local", workers=1, name="b", host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(pycrew.ControllerError, match=r"controller 'b'.*cannot listen"), pycrew.ControllerGroup(a, b):
            pass
    assert a._dispatcher is not None and not a._dispatcher.thread.is_alive(), "controller 'a' still runs"
    assert worker_pids(a.id) == [], "controller 'a' left its workers running"
    with pytest.raises(RuntimeError):
        a.submit(abs, -1)


def test_group_terminate_and_shutdown_reach_every_controller_when_one_fails(make_controller, monkeypatch):
    """Failed on 5246eae: an error other than a pycrew one from the first controller's
    terminate (or shutdown) left the others running."""
    a = make_controller("local", workers=1, name="a")
    b = make_controller("local", workers=1, name="b")
    group = pycrew.ControllerGroup(a, b).start()
    assert group.submit_to("b", identity, 1).result(timeout=60) == 1

    def broken(*args, **kwargs):
        raise OSError("the platform's API is down")

    with monkeypatch.context() as patch:
        patch.setattr(a, "terminate", broken)
        patch.setattr(a, "shutdown", broken)
        with pytest.raises(OSError, match="API is down"):
            group.shutdown()
        assert not b._dispatcher.thread.is_alive(), "shutdown stopped at the first failure"
        with pytest.raises(OSError, match="API is down"):
            group.terminate()
    wait_for(lambda: worker_pids(b.id) == [], 10, message="controller 'b' to end its workers")


def test_group_rejects_duplicate_names(make_controller):
    with pytest.raises(pycrew.OptionsError, match="named 'x'"):
        pycrew.ControllerGroup(make_controller(name="x"), make_controller(name="x"))


def test_group_rejects_a_group_as_a_member_and_a_name_that_is_no_string(make_controller):
    """On 2c03aec a group was taken as a member (its summary then mixed dicts and summaries, and
    wait(progress=True) raised AttributeError), and controller=["a"] was a bare TypeError."""
    a, b = make_controller(name="a"), make_controller(name="b")
    inner = pycrew.ControllerGroup(a)
    with pytest.raises(TypeError, match=r"cannot hold another \('a'\): pass its controllers"):
        pycrew.ControllerGroup(inner, b)
    group = pycrew.ControllerGroup(a, b)
    with pytest.raises(TypeError, match=r"controller= takes one controller's name \(a str\), got list \['a'\]"):
        group.push(identity, (1,), controller=["a"])  # type: ignore[arg-type]


def test_a_group_takes_its_controllers_as_arguments_or_as_a_list(make_controller):
    a, b = make_controller(name="la"), make_controller("sequential", name="lb")
    assert list(pycrew.ControllerGroup([a, b]).controllers) == ["la", "lb"]  # before: AttributeError: 'list' object has no attribute 'name'
    assert list(pycrew.ControllerGroup((a,)).controllers) == ["la"]
    with pytest.raises(TypeError, match=r"ControllerGroup takes controllers \(made by pycrew.controller\(...\)\), got str 'local'"):
        pycrew.ControllerGroup("local")
    with pytest.raises(TypeError, match="got int 1"):
        pycrew.ControllerGroup([a, 1])


def test_crashed_task_goes_to_the_backup_and_says_so(make_controller, tmp_path):
    big = make_controller("local", workers=1, name="big")
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big).start()
    small.push(crash_until, (str(tmp_path / "n"), 1), name="oom")
    assert small.wait(timeout=60)
    r = small.pop()
    assert r.status == "success" and r.result == 2
    assert r.controller == "big" and r.attempts == 2 and r.name == "oom"
    assert small.summary().controller.success == 1 and big.summary().controller.pushed == 1
    assert big.pop() is None, "the backup must not keep the relayed result"


def test_backup_chain_and_final_crash(make_controller, tmp_path):
    c3 = make_controller("local", workers=1, name="c3", crashes_max=1)
    c2 = make_controller("local", workers=1, name="c2", crashes_max=1, backup=c3)
    c1 = make_controller("local", workers=1, name="c1", crashes_max=1, backup=c2).start()
    f = c1.submit(crash_until, str(tmp_path / "n"), 2)
    assert f.result(timeout=60) == 3
    c1.push(always_crash, name="hopeless")
    assert c1.wait(timeout=60)
    r = c1.pop()
    assert r.status == "crash" and r.controller == "c3" and r.attempts == 3


@pytest.mark.parametrize(("workers", "match"), [(-3, "must be >= 1"), (0, "must be >= 1"), ("2", "must be int")])
def test_the_sequential_controller_checks_a_worker_count_as_any_controller_does(workers, match):
    """On fce425b ``controller("sequential", workers=-3)`` dropped the count unchecked, so code
    that switches launchers by name failed only on the real one."""
    with pytest.raises(pycrew.OptionsError, match=f"'workers' {match}"):
        pycrew.controller("sequential", workers=workers)
    assert pycrew.controller("sequential", workers=4).name == "sequential"


def test_the_sequential_controller_checks_map_arguments_and_refuses_work_after_shutdown_as_any_controller():
    """On 157a9be it took ``chunksize=0``, which the local controller refuses, and said
    "no new tasks" where concurrent.futures says "cannot schedule new futures after shutdown"."""
    c = pycrew.controller("sequential")
    for bad, match in [({"chunksize": 0}, "chunksize must be an int >= 1"), ({"buffersize": 0}, "buffersize"),
                       ({"timeout": "1"}, "map timeout must be a number")]:
        with pytest.raises(ValueError, match=match):
            c.map(abs, [1], **bad)
    assert list(c.map(abs, [-1, -2], chunksize=3)) == [1, 2]
    c.shutdown()
    for call in (lambda: c.submit(abs, 1), lambda: c.map(abs, [1])):
        with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown"):
            call()


def test_sequential_controller_runs_in_this_process():
    with pycrew.controller("sequential") as c:
        c.push(os.getpid, name="pid")
        c.push(raise_value_error, ("no",), name="bad")
        assert c.wait()
        results = {r.name: r for r in c.collect()}
        assert results["pid"].result == os.getpid() and results["pid"].pid == os.getpid()
        assert results["bad"].status == "error" and "ValueError: no" in results["bad"].traceback
        assert list(c.map(identity, [1, 2])) == [1, 2]
        with pytest.raises(ValueError):
            c.submit(raise_value_error, "x").result()
        assert c.summary().controller.error == 2
        assert list(c.map(lambda _: __import__("random").random(), range(2), seed=3)) == list(
            c.map(lambda _: __import__("random").random(), range(2), seed=3)
        )


def test_sequential_tasks_can_be_debugged_with_pdb(monkeypatch):
    entered = []
    monkeypatch.setattr(pdb, "set_trace", lambda *a, **k: entered.append(os.getpid()))

    def task() -> int:
        pdb.set_trace()
        return 1

    c = pycrew.controller("sequential")
    assert c.submit(task).result() == 1
    assert entered == [os.getpid()], "the breakpoint must be hit in the calling process"


def test_every_controller_takes_the_shared_api_parameters(make_controller):
    """Controller, SequentialController and ControllerGroup accept the same call (the ControllerAPI protocol)."""
    group = pycrew.ControllerGroup(make_controller("local", workers=1, name="g1"))
    for c in (make_controller("local", workers=1), pycrew.controller("sequential"), group):
        api: pycrew.ControllerAPI = c
        names = api.walk(identity, [1, 2], seconds_timeout=30, progress=False)
        assert len(names) == 2
        assert api.wait("all", timeout=60, progress=True)
        assert api.ready() == 2
        assert sorted(r.result for r in api.collect()) == [1, 2]
        assert list(api.map(identity, [3, 4], chunksize=2, buffersize=1, seconds_timeout=30, progress=True)) == [3, 4]
        api.shutdown(wait=True)


def test_group_map_applies_the_time_limit(make_controller):
    group = pycrew.ControllerGroup(make_controller("local", workers=1, name="only"))
    with group, pytest.raises(pycrew.TaskTimeoutError):
        list(group.map(time.sleep, [30], seconds_timeout=0.5))


def test_a_failed_group_start_leaves_a_controller_started_before_it_running(make_controller):
    """Probe M (session 33): ControllerGroup(terminated, started).start() terminated the
    controller its user had started and given work."""
    gone = make_controller("local", workers=1, name="gone")
    gone.terminate()
    busy = make_controller("local", workers=1, name="busy").start()
    fresh = make_controller("local", workers=1, name="fresh")
    future = busy.submit(time.sleep, 0.5)
    group = pycrew.ControllerGroup(gone, busy, fresh)
    with pytest.raises(pycrew.ControllerError, match="terminated"):
        group.start()
    assert future.result(timeout=60) is None and busy.submit(abs, -2).result(timeout=60) == 2
    assert fresh._terminated, "the one this start() started (or would have) is terminated"

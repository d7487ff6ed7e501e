"""The controller's ``initializer`` option: run once in each worker before its first task.

Its globals, environment and interpreter settings are what every task on the worker starts
from; a failure (an exception, its time limit, the worker's death) is a failed launch whose
LaunchError quotes the remote traceback; a slow initializer is not held to seconds_launch.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import pytest

import pycrew
from helpers import (
    block_interrupts_then_sleep,
    identity,
    load_model,
    print_then_exit,
    raise_value_error,
    sleep_then,
    use_model,
)
from pycrew.wire.functions import call_by_name
from support import run_script, wait_for, worker_pids


def _runs(directory: Path) -> dict[int, int]:
    """pid -> how many times the initializer ran in that process."""
    return {int(p.name.split("-")[1]): len(p.read_text().splitlines()) for p in directory.glob("init-*")}


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_tasks_see_what_the_initializer_set(make_controller, tmp_path, wire):
    c = make_controller("local", workers=2, wire=wire, initializer=load_model, initargs=("/models/a", str(tmp_path)))
    seen = list(c.map(use_model, range(12)))
    for model, loaded, env, limit, pid, _ in seen:
        assert model == ("model", "/models/a", pid)  # the global it set, in this very process
        assert loaded == {"path": "/models/a"}  # a global dict it filled
        # The state after the initializer is every task's baseline: the previous task's
        # changes are undone back to it, not to the state before the initializer.
        assert env == "/models/a" and limit == 4321
    runs = _runs(tmp_path)  # (a worker may have run no task: it started when all were taken)
    assert {pid for *_, pid, _ in seen} <= set(runs) and set(runs.values()) == {1}


def test_each_new_worker_runs_the_initializer_once(make_controller, tmp_path):
    c = make_controller("local", workers=1, tasks_max=2, initializer=load_model, initargs=("/m", str(tmp_path)))
    pids = [r[4] for r in c.map(use_model, range(6))]
    assert len(set(pids)) == 3  # tasks_max=2: three workers in turn
    assert _runs(tmp_path) == dict.fromkeys(set(pids), 1)


def test_a_script_initializer_shares_globals_with_the_scripts_tasks(tmp_path):
    # Functions of a script travel by value, each with its own copy of the globals it uses;
    # the initializer's globals are the ones its tasks must see.
    proc = run_script(
        tmp_path,
        """
        import functools

        import pycrew

        CONFIG = {"threshold": 1}
        MODEL = None

        def setup(scale):
            global MODEL
            MODEL = [scale]
            CONFIG["threshold"] = scale

        def predict(x):
            MODEL.append(x)  # the one object, kept between tasks on that worker
            return x * MODEL[0], CONFIG["threshold"]

        def offset(by, x):
            return x + MODEL[0] + by

        with pycrew.controller("local", workers=1, initializer=setup, initargs=(10,)) as c:
            print(list(c.map(predict, [1, 2, 3])))
            print(list(c.map(functools.partial(offset, 100), [1, 2])))  # a partial travels whole with each task
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[(10, 10), (20, 10), (30, 10)]", "[111, 112]"]


def test_a_failing_initializer_is_a_failed_launch_with_its_traceback(make_controller):
    c = make_controller("local", workers=2, launch_max=2, initializer=raise_value_error, initargs=("no model at /m",))
    future = c.submit(identity, 1)
    with pytest.raises(pycrew.LaunchError) as info:
        future.result(timeout=60)
    message = str(info.value)
    assert "2 times in a row" in message
    assert "last reason: the initializer failed: ValueError: no model at /m" in message
    assert "Traceback (most recent call last)" in message and "in raise_value_error" in message
    assert "initializer(*initargs)" in message  # the advice for this failure
    assert c.summary().workers[0].launch_failures == 2
    wait_for(lambda: worker_pids(c.id) == [], 15, message="workers whose initializer failed are still running")


def test_each_raise_of_a_launch_error_is_a_fresh_exception(make_controller):
    """On fce425b every future and every wait() raised the one LaunchError object, so each
    raise added its frames to the same traceback: 60,007 deep after 20,000 wait() calls."""
    c = make_controller("local", workers=1, launch_max=1, initializer=raise_value_error, initargs=("no model",))
    futures = [c.submit(identity, i) for i in range(2)]
    errors = [f.exception(timeout=60) for f in futures]
    assert isinstance(errors[0], pycrew.LaunchError) and errors[0] is not errors[1]

    def raised() -> pycrew.LaunchError:
        with pytest.raises(pycrew.LaunchError) as info:
            c.wait(timeout=0)
        return info.value

    first, later = raised(), [raised() for _ in range(50)][-1]
    assert first is not later and str(first) == str(later) == str(errors[0])
    depth = [len(traceback.extract_tb(e.__traceback__)) for e in (first, later)]
    assert depth[0] == depth[1], f"the traceback grew with each raise: {depth}"


def test_an_initializer_past_seconds_initializer_is_interrupted(make_controller):
    c = make_controller("local", workers=1, launch_max=1, initializer=sleep_then, initargs=(600,), seconds_initializer=1)
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=120)
    message = str(info.value)
    assert "TimeoutError: the initializer ran longer than seconds_initializer=1 s and was interrupted" in message
    assert "in sleep_then" in message  # where it was when interrupted
    assert "Interrupted" not in message  # the worker's own machinery stays out of it
    wait_for(lambda: worker_pids(c.id) == [], 15)


def test_an_initializer_that_cannot_be_interrupted_fails_the_launch_anyway(make_controller):
    c = make_controller(
        "local", workers=1, launch_max=1, initializer=block_interrupts_then_sleep, initargs=(600,), seconds_initializer=1
    )
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError, match="ran longer than seconds_initializer=1 s and its worker did not stop it"):
        c.wait(timeout=120)
    wait_for(lambda: worker_pids(c.id) == [], 15, message="the stuck worker was not terminated")


def test_a_worker_that_dies_in_its_initializer_says_how(make_controller):
    c = make_controller("local", workers=1, launch_max=1, initializer=print_then_exit, initargs=(7, "loading failed hard"))
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=60)
    message = str(info.value)
    assert "the worker's connection was lost while its initializer ran" in message
    assert "exit code 7" in message and "loading failed hard" in message  # the platform's report of it


def test_a_slow_initializer_is_not_held_to_seconds_launch(make_controller, tmp_path):
    c = make_controller("local", workers=1, seconds_launch=1, launch_max=1, initializer=sleep_then, initargs=(2.5,))
    future = c.submit(identity, 5)
    wait_for(lambda: c.summary().workers[0].initializing, 30, message="summary() never showed the worker initializing")
    assert c.summary().controller.workers_launching == 1 and not c.summary().workers[0].online
    assert future.result(timeout=60) == 5
    worker = c.summary().workers[0]
    assert (worker.launch_failures, worker.initializing, worker.online) == (0, False, True)
    assert 2.5 <= worker.seconds_initializer < 10, "summary() says what the initializer took"


def test_the_worker_keeps_its_interrupt_after_an_initializer_took_it(make_controller):
    # The initializer replaced and blocked SIGUSR1: the worker puts its handler back and
    # unblocks it, so a task's time limit still interrupts the task (not the worker).
    c = make_controller("local", workers=1, initializer=block_interrupts_then_sleep, initargs=(0,))
    first = c.submit(identity, "pid")
    assert first.result(timeout=60) == "pid"
    pid = worker_pids(c.id)
    c.push(sleep_then, (30,), seconds_timeout=0.5, name="slow")
    assert c.wait(timeout=30)
    result = c.pop()
    assert result is not None and result.status == "timeout"
    assert "did not stop it" not in result.error
    assert worker_pids(c.id) == pid  # the same worker: interrupted, not replaced


def test_sequential_controller_runs_the_initializer_in_this_process(tmp_path):
    c = pycrew.controller("sequential", initializer=load_model, initargs=("/seq", str(tmp_path)))
    try:
        model, loaded, *_ = c.submit(use_model, 1).result()
        took = c.summary().workers[0].seconds_initializer
    finally:
        c.terminate()
    assert model == ("model", "/seq", os.getpid()) and loaded == {"path": "/seq"}
    assert 0 < took < 10, took
    assert _runs(tmp_path) == {os.getpid(): 1}
    by_name = pycrew.controller("sequential", initializer="helpers:load_model", initargs=("/named", str(tmp_path)))
    by_name.terminate()
    assert _runs(tmp_path) == {os.getpid(): 2}


def test_initializer_options_are_checked():
    with pytest.raises(pycrew.OptionsError, match="'initializer' must be a function"):
        pycrew.controller("local", initializer="setup")
    with pytest.raises(pycrew.OptionsError, match="'initargs' must be empty without an initializer"):
        pycrew.controller("local", initargs=(1,))
    with pytest.raises(pycrew.OptionsError, match="'seconds_initializer' must be > 0"):
        pycrew.controller("local", initializer=print, seconds_initializer=0)
    with pytest.raises(pycrew.SerializationError, match="initargs item 0"):
        pycrew.controller("local", initializer=print, initargs=(threading.Lock(),))


def _two_args(path, value):
    return path, value


@pytest.mark.parametrize("controller", ["local", "sequential"])
def test_initargs_that_do_not_fit_the_initializer_are_refused_before_any_launch(controller):
    """On 33e082d ``initializer=f, initargs=(1,)`` for ``f(path, value)`` started every
    worker, each failed its initializer with a TypeError, and the LaunchError came after
    ``launch_max`` launches; now the controller refuses the options at once."""
    with pytest.raises(pycrew.OptionsError, match=r"initargs=\(1,\) does not fit the initializer _two_args\(path, value\)"):
        pycrew.controller(controller, initializer=_two_args, initargs=(1,))
    with pytest.raises(pycrew.OptionsError, match="too many positional arguments"):
        pycrew.controller(controller, initializer=load_model, initargs=(1, 2, 3, 4, 5))
    pycrew.controller(controller, initializer=print, initargs=(1, 2, 3)).terminate()  # *args: any number
    pycrew.controller(controller, initializer=max, initargs=(1, 2)).terminate()  # no signature to read: the workers check


def test_tasks_pushed_while_workers_initialize_wait_for_them(make_controller, tmp_path):
    t0 = time.monotonic()
    c = make_controller("local", workers=2, initializer=sleep_then, initargs=(1.0,))
    futures = [c.submit(identity, i) for i in range(20)]
    assert [f.result(timeout=60) for f in futures] == list(range(20))
    assert time.monotonic() - t0 >= 1.0  # none ran before an initializer finished


def test_an_initializer_named_in_pycrew_toml_is_imported_by_the_workers(make_controller, tmp_path, monkeypatch):
    # A project's module, imported by name where the worker runs (local workers start in
    # the working directory, which is on their path).
    (tmp_path / "project_setup.py").write_text(
        "import os\n"
        "STATE = {}\n"
        "def start(model):\n"
        "    STATE['model'] = (model, os.getpid())\n"
        "def task():\n"
        "    return STATE['model']\n"
    )
    (tmp_path / "pycrew.toml").write_text(
        "[profiles.ready]\n"
        'launcher = "local"\n'
        'initializer = "project_setup:start"\n'
        'initargs = ["/from/toml"]\n'
        "\n"
        "[profiles.misnamed]\n"
        'launcher = "local"\n'
        'initializer = "project_setup:no_such_function"\n'
        "launch_max = 1\n"
    )
    monkeypatch.chdir(tmp_path)
    c = make_controller("ready", workers=1)
    model, pid = c.submit(call_by_name, "project_setup:task").result(timeout=60)
    assert model == "/from/toml" and pid in worker_pids(c.id)
    bad = make_controller("misnamed", workers=1)
    with pytest.raises(pycrew.LaunchError) as info:
        bad.submit(identity, 1).result(timeout=60)
    assert "the initializer failed: AttributeError" in str(info.value) and "no_such_function" in str(info.value)
    with pytest.raises(pycrew.OptionsError, match=r"'package\.module:function'"):
        pycrew.controller("local", initializer="project_setup.start")


def test_a_failed_initializer_is_warned_of_once_per_launch(make_controller, caplog):
    """Probe H (session 32): the dispatcher and the scaler each logged a WARNING for it."""
    import logging

    c = make_controller("local", workers=1, launch_max=2, initializer=raise_value_error, initargs=("no model",))
    with caplog.at_level(logging.WARNING, logger="pycrew"), pytest.raises(pycrew.LaunchError):
        c.submit(identity, 1).result(timeout=60)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "the initializer failed" in r.getMessage()]
    assert len(warned) == 2 and all("failed launch" in w for w in warned), warned

"""The joblib backend (issue 18, item 4): ``joblib.Parallel`` and scikit-learn on local workers.

Every test runs real local workers. Controllers the backend builds are recorded (the
``started`` fixture wraps :meth:`Controller.start` to see them), terminated after the test,
and checked to leave no worker running.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

#: Under CI=true a missing test tool fails the run instead of skipping its tests (as the
#: dashboard's and the metrics endpoint's tests do): CI must not pass by running nothing.
IN_CI = os.environ.get("CI") == "true"

try:
    import joblib
except ImportError:  # scripts/setup.sh --test and nox install it; CI must not skip
    if IN_CI:
        raise
    pytest.skip("joblib is missing (a test tool: scripts/setup.sh --test installs it)", allow_module_level=True)
from joblib import Parallel, delayed, parallel_backend

import pycrew
import pycrew.joblib
from helpers import identity
from pycrew import Controller
from pycrew.joblib import PycrewBackend
from support import pid_gone, wait_for, worker_pids

# The task functions and classes below travel by value (workers cannot import this module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])



def require_sklearn() -> None:
    """Skip the test without scikit-learn; under CI=true fail it instead."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        why = f"scikit-learn is missing ({exc}); it is a test tool: scripts/setup.sh --test and nox install it"
        if IN_CI:
            pytest.fail(f"CI=true requires scikit-learn: {why}", pytrace=False)
        pytest.skip(why)


# -- task functions --------------------------------------------------------------------


class Boom(Exception):
    """An exception type of the user's own."""


def square_and_pid(i: int, seconds: float) -> tuple[int, int]:
    """Sleep, then return ``(i * i, this worker's pid)``."""
    time.sleep(seconds)
    return i * i, os.getpid()


def boom_at(i: int, bad: int) -> int:
    """Return ``i``, or raise :class:`Boom` for ``i == bad``."""
    if i == bad:
        raise Boom(f"item {i} failed")
    return i


def fail_while_another_runs(i: int, folder: str) -> int:
    """Item 0 raises once another item runs; the others record their pid and run for a minute."""
    if i == 0:
        deadline = time.monotonic() + 30
        while not any(n.startswith("started-") for n in os.listdir(folder)) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise Boom("item 0 failed")
    Path(folder, f"started-{i}").write_text(str(os.getpid()))
    time.sleep(60)
    Path(folder, f"finished-{i}").write_text("")
    return i


def nested_parallel(n: int) -> tuple[str, list[int], int]:
    """Run a Parallel call inside the task: (the active backend's class, its results, pid)."""
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    values = Parallel(n_jobs=2)(delayed(abs)(-k) for k in range(n))
    return type(backend).__name__, values, os.getpid()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Controller]]:
    """Every controller started during the test; terminated afterwards, and checked for leftover workers."""
    made: list[Controller] = []
    real_start = Controller.start

    def start(self: Controller) -> Controller:
        if self not in made:
            made.append(self)
        return real_start(self)

    monkeypatch.setattr(Controller, "start", start)
    yield made
    for c in made:
        c.terminate()
    for c in made:
        wait_for(lambda c=c: not worker_pids(c.id), message=f"controller {c.name!r} left workers {worker_pids(c.id)}")


def _fresh_interpreter(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the interpreter failed:\n{done.stderr[-3000:]}"
    return dict(json.loads(done.stdout.splitlines()[-1]))


# -- import and registration ---------------------------------------------------------------


def test_import_pycrew_does_not_import_joblib() -> None:
    facts = _fresh_interpreter(
        "import json, sys, pycrew\npycrew.Controller, pycrew.controller\n"
        "print(json.dumps({'joblib': 'joblib' in sys.modules}))"
    )
    assert facts == {"joblib": False}


def test_import_pycrew_joblib_registers_the_backend_and_keeps_pycrew_controller_callable() -> None:
    facts = _fresh_interpreter(
        "import json, pycrew.joblib, pycrew, joblib.parallel\n"
        "print(json.dumps({'registered': joblib.parallel.BACKENDS.get('pycrew') is pycrew.joblib.PycrewBackend,"
        " 'callable': callable(pycrew.controller)}))"
    )
    assert facts == {"registered": True, "callable": True}, facts


# -- sizes and options (no processes) --------------------------------------------------------


def test_n_jobs_maps_to_workers_and_workers_caps_n_jobs() -> None:
    capped = PycrewBackend(workers=3)
    assert [capped.effective_n_jobs(n) for n in (-1, -2, -10, 1, 2, 5, None)] == [3, 2, 1, 1, 2, 3, 3]
    free = PycrewBackend()
    cpus = joblib.cpu_count()
    assert [free.effective_n_jobs(n) for n in (-1, 4, None)] == [cpus, 4, cpus], "without workers, -1 means cpu_count()"


def test_n_jobs_zero_is_refused_with_the_value() -> None:
    with pytest.raises(pycrew.OptionsError, match=r"n_jobs must not be 0.*got 0"):
        PycrewBackend(workers=2).effective_n_jobs(0)


def test_bad_backend_arguments_fail_at_parallel_backend(make_controller) -> None:
    c = make_controller("local", workers=1)
    with pytest.raises(pycrew.OptionsError, match=r"either controller= or launcher options.*workers"):
        parallel_backend("pycrew", controller=c, workers=2)
    with pytest.raises(pycrew.OptionsError, match=r"workers must be an int >= 1.*got 0"):
        parallel_backend("pycrew", workers=0)
    with pytest.raises(pycrew.OptionsError, match=r"must be a pycrew\.Controller.*got 'local'"):
        parallel_backend("pycrew", controller="local")
    with pytest.raises(pycrew.LauncherNotFoundError):
        parallel_backend("pycrew", launcher="no-such-launcher")


def _callback_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pycrew-joblib-callbacks"]


def test_a_ctrl_c_during_the_backends_termination_leaves_no_callbacks_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe's repeated Ctrl-C during Parallel left an idle callbacks thread per interrupted
    termination (on 866a79e)."""
    backend = PycrewBackend("local", workers=2)
    assert backend.configure(n_jobs=1) == 1 and backend._owned is None
    backend.configure(n_jobs=2)
    owned = backend._owned
    assert owned is not None and _callback_threads()
    terminate = owned.terminate

    def interrupted() -> None:
        terminate()
        raise KeyboardInterrupt

    monkeypatch.setattr(owned, "terminate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backend.terminate()
    wait_for(lambda: not _callback_threads(), message=f"callback threads left running: {_callback_threads()}")


def test_a_controller_that_cannot_start_fails_the_call_and_leaves_no_thread(make_controller) -> None:
    with (
        parallel_backend("pycrew", workers=2, no_such_option=1),
        pytest.raises(pycrew.OptionsError, match="no_such_option"),
    ):
        Parallel()(delayed(identity)(i) for i in range(4))
    c = make_controller("local", workers=2)
    c.terminate()
    with parallel_backend("pycrew", controller=c), pytest.raises(pycrew.ControllerError, match="terminated"):
        Parallel()(delayed(identity)(i) for i in range(4))
    wait_for(lambda: not _callback_threads(), message=f"callback threads left running: {_callback_threads()}")


def test_sequential_launcher_runs_parallel_in_this_process(started: list[Controller]) -> None:
    with parallel_backend("pycrew", launcher="sequential") as (backend, _):
        out = Parallel()(delayed(square_and_pid)(i, 0) for i in range(4))
    assert out == [(i * i, os.getpid()) for i in range(4)]
    assert backend.controller is None and not started, "no controller should be built for the sequential launcher"


# -- Parallel on workers ---------------------------------------------------------------------


def test_parallel_returns_results_in_order_from_workers_then_terminates_them(started: list[Controller]) -> None:
    # later items finish first, so completion order differs from the order of the items
    with parallel_backend("pycrew", workers=2):
        out = Parallel(batch_size=1)(delayed(square_and_pid)(i, 0.05 * (5 - i)) for i in range(6))
    assert [v for v, _ in out] == [i * i for i in range(6)]
    assert all(pid != os.getpid() for _, pid in out), "every item should run on a worker"
    assert len(started) == 1, f"one controller per Parallel call, got {len(started)}"
    assert not started[0].started, "the controller the backend built should be terminated after the call"
    wait_for(lambda: not worker_pids(started[0].id), message="workers still run after the Parallel call")


def test_parallel_as_generator_yields_in_order(started: list[Controller]) -> None:
    with parallel_backend("pycrew", workers=2):
        gen = Parallel(return_as="generator")(delayed(identity)(i) for i in range(20))
        assert list(gen) == list(range(20))


def test_an_exception_keeps_its_type_and_the_remote_traceback(started: list[Controller]) -> None:
    with parallel_backend("pycrew", workers=2), pytest.raises(Boom, match="item 3 failed") as info:
        Parallel(batch_size=1)(delayed(boom_at)(i, 3) for i in range(6))
    cause = info.value.__cause__
    assert isinstance(cause, pycrew.RemoteTraceback) and "boom_at" in cause.tb, f"remote traceback missing: {cause!r}"


def test_a_batch_that_does_not_pickle_fails_the_call(started: list[Controller]) -> None:
    # the message names the call of the batch and its argument, not only joblib's BatchedCalls (a probe, on cd4b0cc)
    with parallel_backend("pycrew", workers=2), pytest.raises(
        pycrew.SerializationError, match=r"cannot be pickled: call 0 of its joblib batch, argument 0 \(<unlocked _thread.lock"
    ):
        Parallel()(delayed(identity)(threading.Lock()) for _ in range(3))


def test_auto_batching_sends_many_tiny_items_in_few_tasks(make_controller) -> None:
    c = make_controller("local", workers=2)
    n = 3000
    with parallel_backend("pycrew", controller=c):
        out = Parallel()(delayed(identity)(i) for i in range(n))
    assert out == list(range(n))
    assert 1 <= c.pushed < n // 10, f"{n} items went out in {c.pushed} tasks: auto-batching did not batch"


def test_a_users_controller_is_used_and_left_running(make_controller) -> None:
    c = make_controller("local", workers=2)
    with parallel_backend("pycrew", controller=c) as (backend, _):
        assert Parallel()(delayed(identity)(i) for i in range(8)) == list(range(8))
    assert backend.controller is c and c.pushed >= 1
    assert c.started, "the backend must not terminate a controller it did not build"
    assert c.submit(identity, "still here").result(timeout=60) == "still here"


def test_a_controller_terminated_during_a_call_is_named_in_its_error(make_controller) -> None:
    """On 2c03aec joblib raised the bare CancelledError of a queued batch: empty message."""
    c = make_controller("local", workers=2)  # (with one, joblib runs the call in this process)
    threading.Timer(1.0, c.terminate).start()
    with parallel_backend("pycrew", controller=c), pytest.raises(pycrew.ControllerError, match="'local' was terminated"):
        Parallel(batch_size=1)(delayed(time.sleep)(0.5) for _ in range(40))


def test_a_managed_parallel_reuses_one_controller_for_its_calls(started: list[Controller]) -> None:
    with Parallel(n_jobs=2, backend=PycrewBackend()) as parallel:
        first = parallel(delayed(identity)(i) for i in range(5))
        second = parallel(delayed(identity)(i) for i in range(5, 10))
        assert len(started) == 1 and started[0].started, "both calls should share the controller"
    assert first + second == list(range(10))
    assert not started[0].started, "the controller should be terminated when the managed Parallel exits"


def test_a_nested_parallel_runs_with_threads_on_the_worker(started: list[Controller]) -> None:
    with parallel_backend("pycrew", workers=2):
        out = Parallel()(delayed(nested_parallel)(n) for n in (3, 4))
    for (backend_name, values, pid), n in zip(out, (3, 4), strict=True):
        assert backend_name == "ThreadingBackend", f"nested calls should use threads, got {backend_name}"
        assert values == list(range(n)) and pid != os.getpid()
    assert len(started) == 1, "a task must not build controllers of its own"


# -- abort -------------------------------------------------------------------------------------


def test_abort_on_error_cancels_the_rest_and_leaves_no_worker_running(
    started: list[Controller], tmp_path: Path
) -> None:
    with parallel_backend("pycrew", workers=2), pytest.raises(Boom, match="item 0 failed"):
        Parallel(batch_size=1)(delayed(fail_while_another_runs)(i, str(tmp_path)) for i in range(6))
    (c,) = started
    assert not c.started, "the controller the backend built should be terminated on abort"
    pids = [int(p.read_text()) for p in tmp_path.glob("started-*")]
    assert pids, "an item should have been running when item 0 failed"
    wait_for(lambda: not worker_pids(c.id) and all(pid_gone(p) for p in pids), message="workers survived the abort")
    assert not list(tmp_path.glob("finished-*")), "a cancelled item ran to its end"


def test_abort_cancels_the_rest_on_a_users_controller_and_keeps_it(make_controller, tmp_path: Path) -> None:
    c = make_controller("local", workers=2)
    with parallel_backend("pycrew", controller=c), pytest.raises(Boom, match="item 0 failed"):
        Parallel(batch_size=1)(delayed(fail_while_another_runs)(i, str(tmp_path)) for i in range(6))
    wait_for(lambda: c.unresolved() == 0, message=f"batches left unresolved after the abort: {c.unresolved()}")
    s = c.summary().controller
    assert (s.error, s.success, s.cancel) == (1, 0, s.pushed - 1), f"expected 1 error and the rest cancelled: {s}"
    assert c.submit(identity, 1).result(timeout=60) == 1, "the user's controller should keep working"


def test_a_parallel_timeout_aborts_and_leaves_no_worker_running(started: list[Controller], tmp_path: Path) -> None:
    with parallel_backend("pycrew", workers=2), pytest.raises(multiprocessing.TimeoutError):
        Parallel(timeout=1)(delayed(square_and_pid)(i, 60) for i in range(2))
    (c,) = started
    wait_for(lambda: not worker_pids(c.id), message="workers survived the timeout")


# -- scikit-learn -------------------------------------------------------------------------------


def test_cross_val_score_on_workers_matches_n_jobs_1(started: list[Controller]) -> None:
    require_sklearn()
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000)
    expected = cross_val_score(model, x, y, cv=5, n_jobs=1)
    with parallel_backend("pycrew", workers=2):
        got = cross_val_score(model, x, y, cv=5)
    assert list(got) == list(expected), f"scores on workers {got} differ from n_jobs=1 {expected}"
    assert len(started) == 1 and started[0].pushed >= 1, "cross_val_score did not run on pycrew workers"


def test_grid_search_on_workers_matches_n_jobs_1(started: list[Controller]) -> None:
    require_sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    x, y = load_digits(return_X_y=True)
    grid = {"C": [1, 10], "gamma": [0.001, 0.0001]}
    expected = GridSearchCV(SVC(), grid, cv=3, n_jobs=1).fit(x, y)
    with parallel_backend("pycrew", workers=2):
        got = GridSearchCV(SVC(), grid, cv=3).fit(x, y)
    assert list(got.cv_results_["mean_test_score"]) == list(expected.cv_results_["mean_test_score"])
    assert got.best_params_ == expected.best_params_
    assert len(started) == 1 and started[0].pushed >= 1, "GridSearchCV did not run on pycrew workers"


# -- missing test tools: a skip here, a failure in CI ----------------------------------------------


def _run_without(module: str, tmp_path: Path, ci: bool, *selection: str) -> subprocess.CompletedProcess[str]:
    """pytest on this file's ``selection`` in a fresh interpreter where ``module`` cannot be imported."""
    blocked = tmp_path / "blocked"
    (blocked / module).mkdir(parents=True)
    (blocked / module / "__init__.py").write_text(  # what a missing package raises
        f"raise ModuleNotFoundError({f'No module named {module!r} (blocked by the test)'!r}, name={module!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONPATH")}
    env["PYTHONPATH"] = str(blocked)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", *selection],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent,
    )


@pytest.mark.parametrize("ci", [False, True])
def test_missing_scikit_learn_skips_but_fails_under_ci(tmp_path: Path, ci: bool) -> None:
    done = _run_without("sklearn", tmp_path, ci, "-k", "cross_val_score or grid_search", "-rs")
    out = done.stdout[-3000:] + done.stderr[-2000:]
    if ci:
        assert done.returncode == 1 and "2 failed" in out and "CI=true requires scikit-learn" in out, out
    else:
        assert done.returncode == 0 and "2 skipped" in out and "scikit-learn is missing" in out, out


@pytest.mark.parametrize("ci", [False, True])
def test_missing_joblib_skips_the_module_but_fails_under_ci(tmp_path: Path, ci: bool) -> None:
    done = _run_without("joblib", tmp_path, ci, "-rs")
    out = done.stdout[-3000:] + done.stderr[-2000:]
    if ci:
        assert done.returncode == 2 and "No module named 'joblib' (blocked by the test)" in out, out
    else:
        # pytest's exit code 5: nothing ran, the whole module was skipped
        assert done.returncode == 5 and "1 skipped" in out and "joblib is missing" in out, out

"""A task's changes to its worker process are undone, and its warnings recorded, every task.

The worker keeps one baseline and one warnings capture for its life (no copy of the
environment and no ``catch_warnings`` per task); these tests check that the cheaper way
keeps the same promises.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycrew.wire.records import ResultRecord
from pycrew.worker.execution import INTERRUPT_SIGNAL, TaskRunner
from pycrew.worker.interpreter import InterpreterSettings
from pycrew.worker.isolation import ProcessBaseline, SignalMask, WarningCapture


def _payload(fn: Any, *args: Any) -> bytes:
    return pickle.dumps((fn, args, {}, None, "t", None))


def _record(data: bytes) -> ResultRecord:
    return ResultRecord.from_wire(pickle.loads(data))


def _warn_twice(text: str) -> str:
    for _ in range(2):
        warnings.warn(text, UserWarning, stacklevel=1)
    return text


def _silence_then_warn() -> None:
    warnings.simplefilter("ignore")
    warnings.warn("silenced", UserWarning, stacklevel=1)


def _reset_filters() -> None:
    warnings.resetwarnings()
    warnings.filterwarnings("error")


def _replace_showwarning() -> None:
    warnings.showwarning = lambda *a, **k: None


def _warn_then_fail() -> None:
    warnings.warn("before failing", DeprecationWarning, stacklevel=1)
    raise ValueError("failed")


def _mutate(tmp: str) -> None:
    os.environ["PYCREW_ISOLATION_NEW"] = "1"
    os.environ.pop("PYCREW_ISOLATION_OLD", None)
    sys.path.insert(0, "/nonexistent/pycrew-isolation")
    os.chdir(tmp)


def _leave_and_remove(home: str, elsewhere: str, fail: bool) -> str:
    os.chdir(elsewhere)
    os.rmdir(home)  # the directory the worker started in
    if fail:
        raise ValueError("failed after removing it")
    return "removed"


def _replace_sys_path() -> None:
    sys.path = tuple(sys.path)  # type: ignore[assignment]


@pytest.fixture(params=["own process", "shared process"])
def runner(request: pytest.FixtureRequest) -> Iterator[TaskRunner]:
    """A runner that owns the process (persistent capture) and one that shares it (catch_warnings)."""
    saved_handler = signal.getsignal(INTERRUPT_SIGNAL)
    saved = (list(warnings.filters), warnings.showwarning, warnings._showwarnmsg_impl)  # type: ignore[attr-defined]
    r = TaskRunner()
    if request.param == "own process":
        r.install()
    try:
        yield r
    finally:
        signal.signal(INTERRUPT_SIGNAL, saved_handler)
        warnings.filters[:] = saved[0]
        warnings._filters_mutated()  # type: ignore[attr-defined]
        warnings.showwarning = saved[1]
        warnings._showwarnmsg_impl = saved[2]  # type: ignore[attr-defined]


def test_every_warning_of_every_task_is_recorded(runner: TaskRunner) -> None:
    for text in ("first", "second"):
        record = _record(runner.run(1, _payload(_warn_twice, text)))
        assert record.status == "success" and record.value == text
        assert record.warnings == [f"UserWarning: {text}"] * 2, "the 'always' action: repeats are recorded too"


def test_a_task_that_changes_the_warning_filters_does_not_change_the_next_ones(runner: TaskRunner) -> None:
    for meddle in (_silence_then_warn, _reset_filters, _replace_showwarning):
        assert _record(runner.run(1, _payload(meddle))).status == "success"
        record = _record(runner.run(2, _payload(_warn_twice, "after")))
        assert record.status == "success", f"after {meddle.__name__}: {record.error}"
        assert record.warnings == ["UserWarning: after"] * 2, f"after {meddle.__name__}"


def test_warnings_of_a_failing_task_come_with_its_error(runner: TaskRunner) -> None:
    record = _record(runner.run(1, _payload(_warn_then_fail)))
    assert record.status == "error" and record.error_type == "ValueError"
    if runner.installed:
        assert record.warnings == ["DeprecationWarning: before failing"]


def test_environment_path_and_directory_come_back_after_every_task(runner: TaskRunner, tmp_path: Path) -> None:
    os.environ["PYCREW_ISOLATION_OLD"] = "kept"
    cwd, path = os.getcwd(), list(sys.path)
    try:
        for _ in range(2):  # the second task starts from the same baseline as the first
            assert _record(runner.run(1, _payload(_mutate, str(tmp_path)))).status == "success"
            assert os.environ.get("PYCREW_ISOLATION_OLD") == "kept"
            assert "PYCREW_ISOLATION_NEW" not in os.environ
            assert sys.path == path and os.getcwd() == cwd
    finally:
        os.environ.pop("PYCREW_ISOLATION_OLD", None)
        os.environ.pop("PYCREW_ISOLATION_NEW", None)
        os.chdir(cwd)
        sys.path[:] = path


def test_a_task_that_removed_its_working_directory_sends_the_worker_back(tmp_path: Path) -> None:
    home = os.getcwd()
    gone = tmp_path / "gone"
    gone.mkdir()
    try:
        baseline = ProcessBaseline()
        baseline.take()
        os.chdir(gone)
        gone.rmdir()  # os.getcwd() now fails
        baseline.restore()
        assert os.getcwd() == home
    finally:
        os.chdir(home)


@pytest.mark.parametrize("fail", [False, True], ids=["succeeds", "fails"])
def test_a_task_that_removed_the_workers_directory_gets_its_result_and_a_warning(tmp_path: Path, fail: bool) -> None:
    saved_cwd, saved_handler = os.getcwd(), signal.getsignal(INTERRUPT_SIGNAL)
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    os.chdir(home)
    try:
        runner = TaskRunner()
        runner.install()
        record = _record(runner.run(1, _payload(_leave_and_remove, str(home), str(elsewhere), fail)))
        # Before: restoring the directory raised out of run() (which must never raise): the
        # worker died with the task's result, and the task was retried as a crash.
        assert record.status == ("error" if fail else "success")
        assert record.value == (None if fail else "removed")
        (warning,) = record.warnings
        assert warning.startswith("RuntimeWarning: pycrew could not return the worker to its working directory")
        assert str(home) in warning and f"start in {str(elsewhere)!r}" in warning
        after = _record(runner.run(2, _payload(os.getcwd)))
        assert (after.status, after.value, after.warnings) == ("success", str(elsewhere), []), "later tasks start, quietly, where it left"
    finally:
        os.chdir(saved_cwd)
        signal.signal(INTERRUPT_SIGNAL, saved_handler)


def test_a_task_that_replaced_sys_path_with_a_tuple_does_not_break_the_next(runner: TaskRunner) -> None:
    path = list(sys.path)
    try:
        assert _record(runner.run(1, _payload(_replace_sys_path))).status == "success"
        assert type(sys.path) is list and sys.path == path
    finally:
        sys.path = path


def test_the_capture_reinstalls_itself_when_a_task_replaced_it() -> None:
    saved = (list(warnings.filters), warnings.showwarning, warnings._showwarnmsg_impl)  # type: ignore[attr-defined]
    try:
        capture = WarningCapture()
        capture.start()
        warnings._showwarnmsg_impl = lambda msg: None  # type: ignore[attr-defined]
        assert capture.stop() == []
        capture.start()
        warnings.warn("seen", RuntimeWarning, stacklevel=1)
        assert capture.stop() == ["RuntimeWarning: seen"]
    finally:
        warnings.filters[:] = saved[0]
        warnings._filters_mutated()  # type: ignore[attr-defined]
        warnings.showwarning = saved[1]
        warnings._showwarnmsg_impl = saved[2]  # type: ignore[attr-defined]


def test_interpreter_settings_come_back_to_the_state_before_the_first_task_not_to_the_defaults() -> None:
    """A profiler or tracer installed at the worker's start (a coverage tool's) is the
    baseline: it stays; one a task installs goes, as does a task's recursion limit."""

    def at_start(*args: object) -> None:
        return None

    def by_a_task(*args: object) -> None:
        return None

    limit = sys.getrecursionlimit()
    sys.setprofile(at_start)
    try:
        settings = InterpreterSettings()
        settings.take()
        settings.restore()
        assert sys.getprofile() is at_start, "nothing changed: nothing may be touched"
        sys.setprofile(by_a_task)
        sys.setrecursionlimit(limit + 7)
        settings.restore()
        assert sys.getprofile() is at_start and sys.getrecursionlimit() == limit
    finally:
        sys.setprofile(None)
        sys.setrecursionlimit(limit)


def test_a_decimal_context_comes_back_and_an_untouched_one_is_left_alone() -> None:
    """``decimal`` imported after the baseline (by a task): a new thread's context is the
    baseline. Put back once a task changed it, then not replaced after every task."""
    import decimal

    settings = InterpreterSettings()
    settings.take()
    assert settings.saved is not None
    settings.saved = (*settings.saved[:-1], None)  # as taken before anything imported decimal
    original = decimal.getcontext().copy()  # (not the object itself, changed in place below: CI's later tests got it)
    try:
        decimal.getcontext().prec = 7
        decimal.getcontext().traps[decimal.Inexact] = True
        settings.restore()
        context = decimal.getcontext()
        assert context.prec == decimal.DefaultContext.prec and not context.traps[decimal.Inexact]
        assert decimal.Decimal(1) / decimal.Decimal(3) == decimal.Decimal("0." + "3" * decimal.DefaultContext.prec)
        settings.restore()
        assert decimal.getcontext() is context, "an unchanged context was replaced"
    finally:
        decimal.setcontext(original)


def test_the_signal_mask_comes_back_and_the_worker_s_own_signals_are_unblocked() -> None:
    """The mask before the first task is the baseline, but for the signals the worker
    needs (inherited blocked across ``exec``, say): those are unblocked at once."""
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH})
    try:
        mask = SignalMask()
        mask.take({signal.SIGUSR1})
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) >= {signal.SIGUSR2, signal.SIGWINCH}
        assert signal.SIGUSR1 not in signal.pthread_sigmask(signal.SIG_BLOCK, []), "the worker's own signal"
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGHUP})  # a task's
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGWINCH})
        mask.restore()
        now = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert signal.SIGUSR1 not in now and signal.SIGHUP not in now and {signal.SIGUSR2, signal.SIGWINCH} <= now
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


def test_a_runner_puts_the_signal_mask_back_after_a_task() -> None:
    saved_handler = signal.getsignal(INTERRUPT_SIGNAL)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    r = TaskRunner()
    r.install()
    try:
        record = _record(r.run(1, _payload(signal.pthread_sigmask, signal.SIG_BLOCK, {INTERRUPT_SIGNAL})))
        assert record.status == "success"
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        signal.signal(INTERRUPT_SIGNAL, saved_handler)

"""The worker's initializer: the controller's ``initializer`` option, run once in each worker
before its first task (as ``ProcessPoolExecutor(initializer=..., initargs=...)`` does).

The WELCOME carries it pickled as a task is, ``(fn, initargs, {}, None, "initializer",
seconds_initializer)``. The worker runs it in its main thread as it runs a task: its
warnings recorded, its time limit enforced by interrupting it (so a timeout's traceback
shows where it was). Unlike a task's, its changes stay: the environment, ``sys.path``, the
working directory, the standard streams and the interpreter settings as it leaves them are
the state every task starts from (what ``reset_environment`` puts back after each task).
Only the worker's own signal handlers are put back, and its interrupt signal unblocked.
An initializer pickled by value (defined in a script or notebook) shares the globals it
used with the tasks' functions from the same script (see :func:`share_globals`), as a
module's functions share its globals.

A failure is the worker's end: it reports it (``INITIALIZED``, with the traceback) and
exits; the controller counts a failed launch (see :mod:`pycrew.control.admission`).
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from pycrew.wire import clock, functions
from pycrew.wire.functions import load_task, share_globals
from pycrew.worker import execution
from pycrew.worker.execution import Interrupted, TaskRunner, format_task_traceback
from pycrew.worker.failures import exception_text, loading_hint, qualified_name

log = logging.getLogger("pycrew.worker")
# The initializer's traceback starts at its own first frame (functions: call_by_name).
execution.WORKER_FILES.update((__file__, functions.__file__))


def _where(message: str) -> str:
    """The traceback of the initializer interrupted for its time limit: where it was (the
    worker's own frames left out), ending in a TimeoutError (never raises)."""
    try:
        frames = traceback.extract_tb(sys.exc_info()[2])
        kept = traceback.format_list([f for f in frames if f.filename not in execution.WORKER_FILES])
        return "Traceback (most recent call last):\n" + "".join(kept) + f"TimeoutError: {message}\n"
    except Exception:  # a frame's source line may fail to load: the message says enough
        return ""


def run_initializer(runner: TaskRunner, payload: bytes, instance: str) -> dict[str, Any]:
    """Run the initializer pickled in ``payload``; the INITIALIZED report (never raises)."""
    t0 = clock.monotonic()
    warns: list[str] = []
    limit: float | None = None
    report: dict[str, Any]
    try:
        try:
            loaded = False
            fn, args, kwargs, _, _, limit = load_task(payload)
            loaded = True
            runner.invoke_initializer(fn, args, kwargs, limit, warns)
            share_globals(fn)
            report = {"status": "success"}
        except Interrupted:
            message = f"the initializer ran longer than seconds_initializer={limit:g} s and was interrupted"
            report = {"status": "timeout", "error": message, "error_type": "TimeoutError", "traceback": _where(message)}
        except BaseException as exc:  # SystemExit too: the controller hears of it, with the traceback
            text = exception_text(exc)
            if not loaded and (hint := loading_hint(exc)) is not None:
                text = f"{text}: {hint.replace('the task', 'the initializer')}"
            report = {"status": "error", "error": text, "error_type": qualified_name(type(exc)), "traceback": format_task_traceback()}
    except Interrupted:  # arrived after the initializer's own handler: it had run out of time
        report = {"status": "timeout", "error": "the initializer ran longer than seconds_initializer", "error_type": "TimeoutError"}
    finally:
        runner.deadline = None
        runner.rebase()
    report["seconds"] = seconds = clock.monotonic() - t0
    for warning in warns:
        log.warning("pycrew worker %s: the initializer warned: %s", instance, warning)
    if report["status"] == "success":
        log.info("pycrew worker %s: initializer done in %.3f s", instance, seconds)
    else:
        log.error("pycrew worker %s: the initializer failed: %s: %s\n%s", instance, report["error_type"],
                  report["error"], report.get("traceback", ""))
    return report

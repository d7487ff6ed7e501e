"""A controller's ``terminate()`` (mixed into :class:`~pycrew.control.controller.Controller`).

A Ctrl-C (a second one: the first ended a ``with`` block) may interrupt ``terminate()``
while it waits for the dispatcher to stop or for the platform to terminate workers. The
program then usually ends, but it may catch the interrupt and carry on (a notebook, a
service): so the rest of the termination goes on on a thread of its own, which resolves
every future as ``terminate()`` would have (before, they stayed pending for good: a
probe's ``result(timeout=15)`` ran out, and ``result()`` would have hung) and terminates
the workers. The interrupt is raised at once all the same; a program that ends first
leaves what that thread had not done yet, and the error logged says where to look.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from pycrew import monitor
from pycrew.control import exit_hooks, termination
from pycrew.control.state import ControllerState

if TYPE_CHECKING:
    from pycrew.control.dispatcher import Dispatcher
    from pycrew.control.tasks import Task
    from pycrew.dashboard import Dashboard

log = logging.getLogger("pycrew.control.controller")


class Ending(ControllerState):
    """``terminate()``, and its end on a thread of its own after a Ctrl-C."""

    _lock: threading.Lock
    _futures_lock: threading.Lock
    _dashboard: Dashboard | None
    dashboard_link: str | None
    _end_held: Any  # (tasks) -> None: see pycrew.control.backups

    def terminate(self) -> None:
        """Stop the dispatcher and terminate every worker (idempotent).

        Queued futures are cancelled, running ones fail with a :class:`ControllerError`; pushed
        tasks left unresolved are counted in :meth:`summary`, and :meth:`pop` raises that error.
        """
        with self._lock, self._futures_lock:  # (the latter: no task is queued after this, see Submitting._enqueue)
            resume = self._terminated and self._terminating is None  # a Ctrl-C stopped the first one (see below)
            if self._terminated and not resume:
                first = False
            else:
                first = self._terminated = self._shutdown = True
                self._terminating = threading.current_thread()
                self._terminate_done.clear()
            dispatcher = self._dispatcher
        if not first:  # another thread terminates: return when it is done, as it would
            if threading.current_thread() is not self._terminating:
                self._terminate_done.wait(termination.seconds_awaiting_termination(self.options.seconds_terminate))
            return
        handed_over = False
        try:
            self._terminate_steps(dispatcher)
        except KeyboardInterrupt:  # a second Ctrl-C: the rest goes on on a thread, and the program may end now
            handed_over = self._finish_on_a_thread(dispatcher)
            raise
        finally:
            if not handed_over:
                self._terminated_now()

    def _terminate_steps(self, dispatcher: Dispatcher | None) -> None:
        """What ``terminate()`` does (again from the start on the thread that finishes it after a Ctrl-C)."""
        exit_hooks.ending(self)  # type: ignore[arg-type]  # (a Controller: this is one of its parts)
        self._stop_feeders(CancelledError(f"map input not submitted: controller {self.name!r} was terminated"))
        if dispatcher is not None:
            dispatcher.stop(max(5.0, self.options.seconds_terminate))  # (its tasks are taken once it ended)
            self.launcher.terminate_all(self.options.seconds_terminate)
            held: list[Task] = dispatcher._held_tasks()
            self._end_held(held)
            monitor.unregister_controller(self.id)

    def _terminated_now(self) -> None:
        """The termination is over (or given up): close the dashboard, wake whoever waits for it."""
        if self._dashboard is not None:
            self._dashboard.close()
            self.dashboard_link = None
        self._terminate_done.set()
        with self._cv:
            self._cv.notify_all()

    def _finish_on_a_thread(self, dispatcher: Dispatcher | None) -> bool:
        """After a Ctrl-C in ``terminate()``: its steps again, on a thread of their own; whether it started."""

        def finish() -> None:
            try:
                self._terminate_steps(dispatcher)
                log.warning("controller %r: terminated after the interrupt", self.name)
            except BaseException:
                log.exception("controller %r: finishing its termination after the interrupt failed", self.name)
                self._terminating = None  # a later terminate() tries again
            finally:
                self._terminated_now()

        log.error(
            "controller %r: interrupted while terminating its workers: finishing on a thread of its own; if the program "
            "ends first, some may be left: `pycrew monitor %s list --orphans` shows them", self.name, self.spec.name,
        )
        finisher = threading.Thread(target=finish, name=f"pycrew-terminate-{self.name}", daemon=True)
        self._terminating = finisher
        try:
            finisher.start()
        except BaseException:  # (no thread to be had): a later terminate() does what is left
            self._terminating = None
            return False
        return True

    def _stop_feeders(self, error: BaseException) -> None:
        """Stop every ``map`` still submitting its input; its iterator raises ``error`` in turn."""
        with self._futures_lock:
            feeders = list(self._feeders)
        for feeder in feeders:
            feeder.stop(error)

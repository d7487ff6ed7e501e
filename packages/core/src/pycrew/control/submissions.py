"""How tasks from other threads reach the dispatcher's queue: :class:`Submissions`.

A thread that submits appends to a thread-safe deque and wakes the dispatcher through its
self-pipe; the dispatcher moves what arrived to its queue at the start of each turn. Once
the loop has ended, a task that arrives can only be handed back to its owner: with the
error the loop died of (``on_failure``). A controller that stops its dispatcher normally
(``terminate()``) first stops taking tasks, under the lock its ``submit`` holds from its
last check to :meth:`Submissions.submit`, so that no task arrives after it took the
dispatcher's tasks to end them (see :meth:`pycrew.control.submitting.Submitting._queue_task`).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable

from pycrew.control.tasks import Task

#: Submissions a thread makes after waking an idle dispatcher before it lets it run.
SUBMITS_BEFORE_YIELD = 8


class Submissions:
    """The dispatcher's side of submitting (a mixin of :class:`pycrew.control.dispatcher.Dispatcher`)."""

    submissions: collections.deque[Task]
    queue: collections.deque[Task]
    thread: threading.Thread
    finished: bool
    error: BaseException | None
    _on_failure: Callable[[BaseException, list[Task]], None] | None
    _wake_pending: bool
    _unheard: int  # submissions since the last wake
    _idle: bool  # nothing queued or running, a worker ready, after the last step
    wake: Callable[[], None]

    def submit(self, task: Task) -> None:
        """Queue a task (any thread).

        The first tasks of a burst that finds the dispatcher idle with a worker ready go out
        at once: a thread that submits in a loop holds the interpreter lock, which CPython
        takes from it only every ``sys.getswitchinterval()`` (5 ms), so after
        :data:`SUBMITS_BEFORE_YIELD` submissions the woken dispatcher has not taken yet, the
        submitting thread lets it run once (``time.sleep(0)``); more often costs more than it gains.

        A caller that holds a lock appends and calls :meth:`submitted` itself, then
        :meth:`abandon_late` once it holds none (``on_failure`` resolves futures, whose
        callbacks may run there).
        """
        self.submissions.append(task)
        self.submitted()
        self.abandon_late()

    def submitted(self) -> None:
        """After a task was appended to :attr:`submissions` (any thread): wake the loop, as :meth:`submit` says."""
        if not self._wake_pending:
            self._unheard = 0
            self.wake()
        else:
            self._unheard += 1
            if self._unheard == SUBMITS_BEFORE_YIELD and self._idle and threading.current_thread() is not self.thread:
                time.sleep(0)

    def abandon_late(self) -> None:
        """If the loop is gone, nobody else will ever look at the tasks submitted: hand them back (any thread)."""
        if self.finished:
            self._abandon(self._drain_submissions())

    def _queue_submissions(self) -> bool:
        """Move submissions to the queue one at a time (summary() counts both); any moved?"""
        moved = bool(self.submissions)
        while self.submissions:
            self.queue.append(self.submissions.popleft())
        return moved

    def _drain_submissions(self) -> list[Task]:
        out = []
        with contextlib.suppress(IndexError):  # another thread may still be submitting
            while True:
                out.append(self.submissions.popleft())
        return out

    def _abandon(self, tasks: list[Task]) -> None:
        """Hand tasks the dead loop can no longer run to ``on_failure`` (any thread).

        A loop that was stopped (no ``error``) has none to hand back: its controller took
        the tasks it held after stopping it, and stopped taking new ones before that.
        """
        if tasks and self.error is not None and self._on_failure is not None:
            self._on_failure(self.error, tasks)

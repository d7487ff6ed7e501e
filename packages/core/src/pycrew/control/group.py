"""ControllerGroup: several controllers behind one API."""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from pycrew.control import arguments, callbacks, termination
from pycrew.control.collecting import check_wait_timeout
from pycrew.control.progress import ProgressBar
from pycrew.errors import ControllerError, OptionsError, PycrewError
from pycrew.results import ControllerSummary, Summary, TaskResult

T = TypeVar("T")
log = logging.getLogger(__name__)


def _named(name: str, exc: PycrewError) -> PycrewError:
    """The same kind of error, its message prefixed with the controller's name (unless it starts with it)."""
    if str(exc).startswith(f"controller {name!r}"):
        return exc
    try:
        out = type(exc)(f"controller {name!r}: {exc}")
    except TypeError:  # an error type whose constructor takes more: keep it, name in a note
        exc.add_note(f"in controller {name!r}")
        return exc
    out.__cause__ = exc
    return out


class _GroupCounts:
    """The group's counts summed, in the shape a progress bar reads."""

    def __init__(self, group: ControllerGroup) -> None:
        self.group = group
        self.name = group.name

    def summary(self) -> Summary:
        parts = [c.summary().controller for c in self.group.controllers.values()]
        total = {k: sum(getattr(p, k) for p in parts) for k in ("pushed", "queued", "running", "resolved", "popped", "success", "error", "crash", "cancel", "timeout", "abandoned", "retries", "workers_online", "workers_launching")}
        controller = ControllerSummary(controller=self.name, launcher="group", seconds=max((p.seconds for p in parts), default=0.0), **total)
        return Summary(controller=controller, workers=(), launcher={})


#: wait("all") blocks in one busy member's own wait for up to this long, then looks again (a
#: sweep of every member with a short wait each spun a core while one had results ready to pop).
SECONDS_MEMBER = 0.5
#: ... for up to this long with a progress bar, which is redrawn between.
SECONDS_BAR = 0.2
#: wait("one") looks at every member, then sleeps: 1 ms at first, doubled up to this long.
SECONDS_POLL_MAX = 0.02

#: What the group calls on each of its controllers, besides submitting.
_CONTROLLER_API = ("name", "push", "pop", "wait", "summary", "terminate")


class ControllerGroup(concurrent.futures.Executor):
    """Several controllers (e.g. local and slurm) behind one push/walk/pop/wait/map/summary/terminate.

    A task goes to a controller by name (``controller="gpu"``), by default the first.
    ``pop`` is fair: it takes from the controllers in turn, so one busy controller never
    starves the others. An error from one controller is re-raised with its name.

    Example::

        with pycrew.ControllerGroup(pycrew.controller("local", name="cpu", workers=2),
                                    pycrew.controller("slurm", name="gpu", gres="gpu:1")) as g:
            g.push(train, args=(cfg,), controller="gpu")
            g.push(summarize, args=(data,))            # to "cpu", the first
    """

    name: str  #: the controllers' names joined with "+"

    def __init__(self, *controllers: Any) -> None:
        self._signals_seen = termination.signals  # a SIGTERM after this, caught in a with block, ends the block at once
        if len(controllers) == 1 and isinstance(controllers[0], (list, tuple)):
            controllers = tuple(controllers[0])  # ControllerGroup([a, b]) as well as ControllerGroup(a, b)
        if not controllers:
            raise OptionsError("ControllerGroup needs at least one controller")
        self.controllers: dict[str, Any] = {}
        for c in controllers:
            if isinstance(c, ControllerGroup):
                raise TypeError(
                    f"a ControllerGroup cannot hold another ({c.name!r}): pass its controllers, "
                    "ControllerGroup(*inner.controllers.values(), other)"
                )
            if not all(hasattr(c, attribute) for attribute in _CONTROLLER_API):
                raise TypeError(
                    f"ControllerGroup takes controllers (made by pycrew.controller(...)), got {type(c).__name__} {c!r:.60}"
                )
            if any(c is other for other in self.controllers.values()):
                raise OptionsError(f"controller {c.name!r} is given to the group twice; pass each controller once")
            if c.name in self.controllers:
                raise OptionsError(f"two controllers in the group are named {c.name!r}; give each a distinct name=")
            self.controllers[c.name] = c
        self.name = "+".join(self.controllers)
        self._next = 0

    def _get(self, name: str | None) -> Any:
        if name is None:
            return next(iter(self.controllers.values()))
        if not isinstance(name, str):
            raise TypeError(f"controller= takes one controller's name (a str), got {type(name).__name__} {name!r:.60}")
        try:
            return self.controllers[name]
        except KeyError:
            raise OptionsError(f"no controller named {name!r} in the group; names: {', '.join(self.controllers)}") from None

    def _each(self, fn: Callable[[Any], T]) -> list[T]:
        out = []
        for name, c in self.controllers.items():
            try:
                out.append(fn(c))
            except PycrewError as exc:
                raise _named(name, exc) from exc
        return out

    # -- submitting ------------------------------------------------------------------------

    def push(self, fn: Callable[..., Any], args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None, name: str | None = None, seed: int | None = None, seconds_timeout: float | None = None, controller: str | None = None) -> str:
        """Push to one controller (default: the first). Returns the task's name."""
        target = self._get(controller)
        try:
            return str(target.push(fn, args, kwargs, name=name, seed=seed, seconds_timeout=seconds_timeout))
        except PycrewError as exc:
            raise _named(target.name, exc) from exc

    def walk(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        names: Iterable[str] | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
        controller: str | None = None,
    ) -> list[str]:
        """Push ``fn(item)`` for every item to one controller (default: the first)."""
        target = self._get(controller)
        try:
            return list(target.walk(fn, iterable, names=names, seed=seed, seconds_timeout=seconds_timeout, progress=progress))
        except PycrewError as exc:
            raise _named(target.name, exc) from exc

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Executor API: submit to the first controller (see :meth:`submit_to`)."""
        return self.submit_to(None, fn, *args, **kwargs)

    def submit_to(self, controller: str | None, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Submit to the controller named ``controller`` (``None``: the first)."""
        target = self._get(controller)
        try:
            future: concurrent.futures.Future[T] = target.submit(fn, *args, **kwargs)
        except PycrewError as exc:
            raise _named(target.name, exc) from exc
        except RuntimeError as exc:  # the Executor contract's "cannot schedule new futures after shutdown"
            exc.add_note(f"in controller {target.name!r} of the group")
            raise
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | Literal["auto"] | None = "auto",
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
        controller: str | None = None,
    ) -> Iterator[T]:
        """Executor API: ``map`` on one controller (default: the first)."""
        target = self._get(controller)
        try:
            it: Iterator[T] = target.map(
                fn, *iterables, timeout=timeout, chunksize=chunksize, buffersize=buffersize, seed=seed,
                seconds_timeout=seconds_timeout, progress=progress,
            )
        except PycrewError as exc:
            raise _named(target.name, exc) from exc
        return it

    def cancel(self, names: Iterable[str] | str | None = None, all: bool = False) -> int:
        """Cancel tasks by name (or all) in every controller."""
        wanted = arguments.cancel_names(names, all)  # once: an iterator of names is read once
        return sum(self._each(lambda c: int(c.cancel(names=wanted, all=all))))

    # -- results -----------------------------------------------------------------------------

    def pop(self) -> TaskResult | None:
        """The next result, taking from the controllers in turn.

        A controller that raises (its workers could not be launched, it was terminated)
        holds back no other's results: its error, named, is raised when none has a result.
        """
        order = list(self.controllers.items())
        error: PycrewError | None = None
        for k in range(len(order)):
            i = (self._next + k) % len(order)
            name, c = order[i]
            try:
                result = c.pop()
            except PycrewError as exc:
                error = error or _named(name, exc)
                continue
            if result is not None:
                self._next = (i + 1) % len(order)
                return result  # type: ignore[no-any-return]
        if error is not None:
            raise error
        return None

    def collect(self) -> list[TaskResult]:
        """Every available result of every controller; as :meth:`pop`, a controller's error
        is raised only when no controller had a result (none is taken and then lost)."""
        out: list[TaskResult] = []
        error: PycrewError | None = None
        for name, c in self.controllers.items():
            try:
                out.extend(c.collect())
            except PycrewError as exc:
                error = error or _named(name, exc)
        if error is not None and not out:
            raise error
        return out

    def unresolved(self) -> int:
        """Unresolved tasks over all controllers."""
        return sum(int(c.unresolved()) for c in self.controllers.values())

    def ready(self) -> int:
        """Results waiting for :meth:`pop`, over all controllers."""
        return sum(int(c.ready()) for c in self.controllers.values())

    def wait(self, mode: Literal["all", "one"] = "all", timeout: float | None = None, progress: bool = False) -> bool:
        """Block until every task of every controller resolved, or (``"one"``) one result is ready.

        A controller that failed (its :class:`~pycrew.LaunchError`) or was terminated with
        tasks unresolved is not waited for: the others are, and then its error is raised,
        named. One shut down or terminated with every task resolved is no error (as a
        controller's own ``wait`` after ``shutdown()``). With ``progress=True``, a bar follows
        the group's resolved tasks.
        """
        if mode not in ("all", "one"):
            raise OptionsError(f"wait mode must be 'all' or 'one', got {mode!r}")
        timeout = check_wait_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar(_GroupCounts(self), 0, desc=f"{self.name} wait") if progress else None
        failed: dict[str, PycrewError | None] = {}  # None: passed over without an error
        pause = 0.001  # wait("one"): how long to sleep between looks at the members (see SECONDS_POLL_MAX)

        def poll(name: str, c: Any, seconds: float, how: Literal["all", "one"] = "one") -> None:
            """A member's error is kept; the others go on (one with results ready returns from wait("one")
            without raising: its state is asked first)."""
            try:
                if getattr(c, "_terminated", False):
                    if (await_termination := getattr(c, "_await_termination", None)) is not None:
                        await_termination(deadline)  # another thread's terminate(): its futures resolved first
                    if (error := getattr(getattr(c, "launcher", None), "error", None)) is not None:
                        raise copy.copy(error)  # shut down after its LaunchError, seen or not: still a failed member
                    if c.unresolved() == 0 and not getattr(c, "_abandoned", 0):  # shut down cleanly
                        failed.setdefault(name, None)
                        return
                    raise ControllerError(f"controller {name!r} was terminated")
                if (error := getattr(c, "_launch_error", lambda: None)()) is not None:
                    raise copy.copy(error)
                c.wait(how, timeout=seconds)
            except PycrewError as exc:
                failed.setdefault(name, _named(name, exc))

        def busy() -> int:
            return sum(int(c.unresolved()) for n, c in self.controllers.items() if n not in failed)

        def done() -> bool:  # every live one polled: raise the first member's error, if any
            for name, c in self.controllers.items():
                if name not in failed:
                    poll(name, c, 0.0)
            if errors := [e for e in failed.values() if e is not None]:
                raise errors[0]
            return True

        try:
            while True:
                if bar is not None:
                    bar.bar.total = sum(c.summary().controller.pushed for c in self.controllers.values())
                    bar.refresh()
                if mode == "all" and busy() == 0:
                    # the futures' done-callbacks have run too (each controller's wait does
                    # the same), and whatever they submitted is waited for
                    for name, c in self.controllers.items():
                        left = None if deadline is None else max(0.0, deadline - time.monotonic())
                        if name not in failed and not callbacks.drain(c, left):
                            return False
                    if busy() == 0:
                        return done()
                if mode == "one" and (self.ready() or busy() == 0):
                    return True if self.ready() else done()
                left = math.inf if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                if mode == "all":  # every member must finish: block in a busy one's own wait, then the next
                    member = next(((n, c) for n, c in self.controllers.items() if n not in failed and c.unresolved()), None)
                    if member is not None:
                        poll(*member, min(left, SECONDS_BAR if bar is not None else SECONDS_MEMBER), "all")
                    continue
                for name, c in self.controllers.items():  # any member's result will do: look at each, then sleep
                    if name not in failed:
                        poll(name, c, 0.0)
                time.sleep(min(left, pause))
                pause = min(pause * 2, SECONDS_POLL_MAX)  # quick tasks are seen at once, long ones for little CPU
        finally:
            if bar is not None:
                bar.close()

    def summary(self) -> dict[str, Summary]:
        """Each controller's summary, by name."""
        return {name: c.summary() for name, c in self.controllers.items()}

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> ControllerGroup:
        """Start every controller; if one cannot start, terminate those this call started
        (not those started before, which may hold their user's work), then raise."""
        before = {id(c) for c in self.controllers.values() if getattr(c, "_started", False)}
        try:
            self._each(lambda c: c.start())
        except BaseException:  # none this call started is left running with its workers
            self._all(lambda c: None if id(c) in before else c.terminate(), cleanup=True)
            raise
        return self

    def _all(self, fn: Callable[[Any], object], cleanup: bool = False) -> None:
        """Call ``fn`` on every controller even if some fail; then raise the first failure.

        With ``cleanup``, failures are only logged (an error is being raised already).
        """
        self._raise_first(self._try_all(fn), cleanup)

    def _try_all(self, fn: Callable[[Any], object]) -> list[BaseException]:
        """Call ``fn`` on every controller even if some fail; return the failures, named."""
        errors: list[BaseException] = []
        for name, c in self.controllers.items():
            try:
                fn(c)
            except PycrewError as exc:
                errors.append(_named(name, exc))
            except BaseException as exc:  # the others still get their turn; re-raised by the caller
                errors.append(exc)
        return errors

    def _raise_first(self, errors: list[BaseException], cleanup: bool = False) -> None:
        """Raise the first of ``errors`` (with ``cleanup``, only log them all)."""
        if errors and cleanup:
            for error in errors:
                log.warning("ControllerGroup %r: terminating a controller after a failed start failed: %s", self.name, error)
            return
        if errors:
            raise errors[0]

    def terminate(self) -> None:
        """Terminate every controller (all are tried even if one fails; the first error is raised)."""
        self._all(lambda c: c.terminate())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Executor API: shut every controller down (all are tried even if one fails; the first error is raised).

        Every controller stops accepting tasks (and, with ``cancel_futures``, cancels its queued
        futures) before the group waits for any: waiting for one controller's running tasks
        first would let another start the tasks it was to cancel, and accept new ones, meanwhile.
        With ``wait``, the group then waits for each in turn (each terminates once its tasks finished).
        """
        # shutdown(wait=False) returns at once: the controller refuses new tasks from now on
        # and terminates by itself once its tasks finished; a second shutdown(wait=True) waits for that.
        errors = self._try_all(lambda c: c.shutdown(wait=False, cancel_futures=cancel_futures))
        if wait:
            errors += self._try_all(lambda c: c.shutdown(wait=True))
        self._raise_first(errors)

    def __enter__(self) -> ControllerGroup:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and termination.signals == self._signals_seen:  # (not a SIGTERM caught in the block)
                self.wait("all")
        finally:
            self.terminate()

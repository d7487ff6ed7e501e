"""A joblib backend: ``joblib.Parallel`` (and scikit-learn's ``n_jobs``) on pycrew workers.

Importing this module registers the backend under the name ``"pycrew"`` (call
:func:`register` again if something replaced it)::

    import joblib
    import pycrew.joblib  # registers the "pycrew" backend

    with joblib.parallel_backend("pycrew", launcher="local", workers=2):
        squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(10))

Every ``Parallel`` call sends its batches (joblib's ``BatchedCalls``, with auto-batching)
as tasks to a controller that the backend builds for that call and terminates at its end,
or to a controller you pass (``controller=c``), which is used and never terminated. See
docs/joblib.md for the rules (``n_jobs`` and ``workers``, nested calls, errors, abort).

``import pycrew`` does not import joblib: only this module does.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

try:
    import joblib
    from joblib.parallel import AutoBatchingMixin, ParallelBackendBase, SequentialBackend, ThreadingBackend
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"pycrew.joblib needs joblib >= 1.3, which could not be imported ({exc}); install it with "
        "pip install 'pycrew[joblib]'"
    ) from exc

from pycrew import Controller, SequentialController
from pycrew.config import SEQUENTIAL, controller_arguments
from pycrew.errors import ControllerError, OptionsError

__all__ = ["BACKEND_NAME", "PycrewBackend", "register"]

log = logging.getLogger(__name__)

#: The name the backend is registered under: ``joblib.parallel_backend("pycrew", ...)``.
BACKEND_NAME = "pycrew"

_Callback = Callable[[Any], Any]


class _CallbackThread:
    """Runs joblib's batch-completion callbacks in order, on a thread of their own.

    A task's future resolves on the dispatcher thread. joblib's callback records the result
    and dispatches the next batch, which pickles it: doing that on the dispatcher thread
    would stall every worker's traffic meanwhile, so the callbacks are handed over here.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[_Callback, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pycrew-joblib-callbacks", daemon=True)
        self._thread.start()

    def put(self, callback: _Callback, future: Future[Any]) -> None:
        """Queue ``callback(future)`` (any thread)."""
        self._queue.put((callback, future))

    def close(self) -> None:
        """Let the thread end once the callbacks queued so far ran."""
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            callback, future = item
            try:
                callback(future)
            except BaseException:  # keep running the next callbacks; joblib's own failure is logged, not lost
                log.exception("joblib's batch-completion callback failed")


def _check_workers(workers: object) -> int | None:
    if workers is None:
        return None
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise OptionsError(
            f"the pycrew joblib backend's workers must be an int >= 1 or None (None: from n_jobs), got {workers!r}"
        )
    return workers


class PycrewBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]  # joblib has no type hints
    """joblib backend that runs ``Parallel``'s batches as tasks of a pycrew controller.

    Build it through joblib: ``joblib.parallel_backend("pycrew", launcher=..., workers=...,
    **options)`` or ``joblib.parallel_config(backend="pycrew", ...)``.

    Args:
        launcher: a launcher's or a profile's name, as for :func:`pycrew.controller`
            (default ``"local"``). ``"sequential"`` makes ``Parallel`` run in this process.
        workers: most workers at once. ``None``: the profile's ``workers``, else
            ``Parallel``'s ``n_jobs`` (``-1``: :func:`joblib.cpu_count` of this machine).
            A positive ``n_jobs`` below ``workers`` lowers it for that call.
        controller: a :class:`pycrew.Controller` (or ``SequentialController``) to use
            instead of building one per call; it is never terminated by the backend.
        nesting_level: set by joblib.
        inner_max_num_threads: not supported (must be ``None``).
        **options: controller and launcher options, as for :func:`pycrew.controller`.

    Raises:
        OptionsError: ``workers`` is not an int >= 1, or ``controller`` is combined with
            launcher options or is not a controller.
        LauncherNotFoundError: ``launcher`` is neither a launcher nor a profile.

    Attributes:
        controller: the controller of the current (or last) ``Parallel`` call, ``None``
            before the first one.
    """

    default_n_jobs = -1
    supports_retrieve_callback = True
    supports_return_generator = True
    supports_timeout = True
    supports_sharedmem = False
    supports_inner_max_num_threads = False
    uses_threads = False

    def __init__(
        self,
        launcher: str | None = None,
        workers: int | None = None,
        *,
        controller: Controller | SequentialController | None = None,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        workers = _check_workers(workers)
        self._user_controller = controller
        self._launcher = SEQUENTIAL
        self._workers: int | None = None
        self._options: dict[str, Any] = {}
        if controller is not None:
            given = [k for k, v in (("launcher", launcher), ("workers", workers)) if v is not None] + sorted(options)
            if given:
                raise OptionsError(
                    f"the pycrew joblib backend takes either controller= or launcher options, not both; got "
                    f"controller={controller!r} and {', '.join(given)}: set those options on the controller instead"
                )
            if not isinstance(controller, (Controller, SequentialController)):
                raise OptionsError(
                    f"the pycrew joblib backend's controller must be a pycrew.Controller or SequentialController, "
                    f"got {controller!r} ({type(controller).__name__}); build one with pycrew.controller(...)"
                )
        else:
            self._launcher, self._workers, self._options = controller_arguments(launcher or "local", workers, options)
        self.controller: Controller | SequentialController | None = controller
        self._owned: Controller | None = None  # the live controller this backend built (and terminates)
        self._callbacks: _CallbackThread | None = None
        self._outstanding: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._prefix = f"joblib-{secrets.token_hex(3)}-"
        self._count = itertools.count(1)

    # -- sizes ---------------------------------------------------------------------------

    def _workers_max(self) -> int | None:
        """Most workers this backend may use, ``None`` when ``n_jobs`` decides."""
        c = self._user_controller
        if isinstance(c, SequentialController):
            return 1
        if c is not None:
            return c.options.workers
        if self._launcher == SEQUENTIAL:
            return 1
        return self._workers

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """How many batches run at once: ``n_jobs`` capped by ``workers``.

        Negative ``n_jobs`` count back from the total as in joblib (``-1``: all of
        ``workers``, or :func:`joblib.cpu_count` when ``workers`` is not set; ``-2``: one
        fewer). ``1`` makes joblib run the call in this process, as with every backend.

        Raises:
            OptionsError: ``n_jobs`` is 0.
        """
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs == 0:
            raise OptionsError("n_jobs must not be 0: use -1 for every worker, or k >= 1 for at most k workers; got 0")
        cap = self._workers_max()
        total = cap if cap is not None else joblib.cpu_count()
        if n_jobs < 0:
            return max(total + 1 + n_jobs, 1)
        return n_jobs if cap is None else min(n_jobs, cap)

    def configure(
        self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None, require: Any = None, **backend_args: Any
    ) -> int:
        """Called by ``Parallel``: build (or reuse) the controller; returns the effective ``n_jobs``.

        ``backend_args`` (joblib's memmapping and pool settings) do not apply to pycrew and
        are ignored.
        """
        n = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        if n > 1:
            self._ensure_controller(n)
        return n

    def _ensure_controller(self, workers: int) -> None:
        with self._lock:
            if self._user_controller is None and self._owned is None:
                self.controller = self._owned = Controller(self._launcher, workers, **self._options)
            controller = self.controller
            if self._callbacks is None:
                self._callbacks = _CallbackThread()
        try:
            if isinstance(controller, Controller):
                controller.start()
        except BaseException:
            self.terminate()  # joblib will not: the call fails before it starts
            raise

    # -- tasks ---------------------------------------------------------------------------

    def submit(self, func: Callable[[], Any], callback: _Callback | None = None) -> Future[Any]:
        """Run one batch (joblib's ``BatchedCalls``) as a task; returns its future.

        ``callback(future)`` runs on the backend's callback thread once the task resolved.
        A batch that cannot be submitted (it does not pickle, the launcher failed, the
        controller was terminated) gets a future holding that error, so that ``Parallel``
        raises it.
        """
        name = f"{self._prefix}{next(self._count)}"
        controller = self.controller
        callbacks = self._callbacks
        future: Future[Any] | None = None
        try:
            if not isinstance(controller, Controller) or callbacks is None:
                raise ControllerError(
                    f"the pycrew joblib backend has no controller to run batch {name!r} (got {controller!r}): "
                    "Parallel calls configure() first; use the backend through joblib.parallel_backend('pycrew', ...)"
                )
            future = controller.submit_task(func, name=name)
        except Exception as exc:  # joblib must get this batch's failure as its outcome, or it would wait forever
            future = Future()
            future.set_exception(exc)
        else:
            assert future is not None
            with self._lock:
                self._outstanding[name] = future
            future.add_done_callback(lambda _f: self._forget(name))
        if callback is not None:
            if callbacks is None:
                callback(future)
            else:
                future.add_done_callback(lambda f: callbacks.put(callback, f))
        return future

    def apply_async(self, func: Callable[[], Any], callback: _Callback | None = None) -> Future[Any]:
        """joblib < 1.5 calls this instead of :meth:`submit`."""
        return self.submit(func, callback)

    def retrieve_result_callback(self, out: Future[Any]) -> Any:
        """The batch's list of results, or its task's exception raised (the original type)."""
        return self.retrieve_result(out)

    def retrieve_result(self, out: Future[Any], timeout: float | None = None) -> Any:
        """The batch's results, waiting at most ``timeout`` seconds (unused by joblib here).

        Raises:
            ControllerError: the batch was cancelled because its controller was terminated
                (a bare ``CancelledError`` would not say which, nor why).
        """
        try:
            return out.result(timeout)
        except CancelledError as exc:
            controller = self.controller
            if isinstance(controller, Controller) and controller._terminated:
                raise ControllerError(
                    f"controller {controller.name!r} was terminated before this joblib batch finished"
                ) from exc
            raise

    def _forget(self, name: str) -> None:
        with self._lock:
            self._outstanding.pop(name, None)

    # -- nesting -------------------------------------------------------------------------

    def get_nested_backend(self) -> tuple[Any, int | None]:
        """Backend of ``Parallel`` calls made inside a task: threads on the worker itself.

        As joblib does for its process backends: a ``ThreadingBackend`` at the first nesting
        level (its ``n_jobs`` unset means 1, so an inner ``Parallel`` runs sequentially unless
        it asks for more), a ``SequentialBackend`` deeper: a nested call that inherits the
        backend never launches pycrew workers of its own (one that names ``"pycrew"`` itself,
        in a ``parallel_backend`` block inside the task, does: it starts a controller there).
        """
        level = (self.nesting_level or 0) + 1
        if level > 1:
            return SequentialBackend(nesting_level=level), None
        return ThreadingBackend(nesting_level=level), None

    # -- stopping ------------------------------------------------------------------------

    def _cancel_outstanding(self) -> None:
        with self._lock:
            names = list(self._outstanding)
        controller = self.controller
        if names and isinstance(controller, Controller):
            controller.cancel(names)

    def _terminate_owned(self) -> None:
        with self._lock:
            owned, self._owned = self._owned, None
        if owned is not None:
            owned.terminate()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """After a batch failed: cancel the batches still queued or running.

        A controller the backend built is terminated unless joblib will reuse the backend
        (``ensure_ready``, in ``with Parallel(...) as p:``); a controller you passed only has
        this backend's tasks cancelled.
        """
        if self._owned is not None and not ensure_ready:
            self._terminate_owned()
        else:
            self._cancel_outstanding()

    def terminate(self) -> None:
        """End of a ``Parallel`` call: terminate the controller the backend built (not yours).

        The callbacks thread is let go even if a Ctrl-C interrupts the termination (before,
        each such interruption left an idle thread behind)."""
        try:
            if self._user_controller is not None:
                self._cancel_outstanding()
            self._terminate_owned()
        finally:
            with self._lock:
                callbacks, self._callbacks = self._callbacks, None
            if callbacks is not None:
                callbacks.close()
        self.reset_batch_stats()

    def __repr__(self) -> str:
        where = self._user_controller if self._user_controller is not None else f"launcher={self._launcher!r}"
        return f"<pycrew.joblib.PycrewBackend {where}>"


def register(make_default: bool = False) -> None:
    """Register :class:`PycrewBackend` with joblib as ``"pycrew"`` (done on import).

    Args:
        make_default: also make it joblib's default backend.
    """
    joblib.register_parallel_backend(BACKEND_NAME, PycrewBackend, make_default=make_default)


register()

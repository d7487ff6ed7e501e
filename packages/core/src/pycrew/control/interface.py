"""The API every controller shares: :class:`Controller`, :class:`SequentialController` and
:class:`ControllerGroup` all satisfy :class:`ControllerAPI` (checked by mypy below), so code
written against one runs on the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pycrew.results import TaskResult

if TYPE_CHECKING:
    from pycrew.control.controller import Controller
    from pycrew.control.group import ControllerGroup
    from pycrew.control.sequential import SequentialController

T = TypeVar("T")


class ControllerAPI(Protocol):
    """crew's push/walk/pop/collect/wait/cancel and the ``concurrent.futures`` Executor API."""

    name: str

    def push(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
    ) -> str:
        """Submit a task whose result :meth:`pop` returns; returns its name."""
        ...

    def walk(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        names: Iterable[str] | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Push ``fn(item)`` for every item; returns the names."""
        ...

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)``; returns a future of its value."""
        ...

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
    ) -> Iterator[T]:
        """Like :func:`map`, results in order."""
        ...

    def cancel(self, names: Iterable[str] | str | None = None, all: bool = False) -> int:
        """Cancel tasks by name (or all); returns how many."""
        ...

    def pop(self) -> TaskResult | None:
        """The next result of a pushed task, or ``None``."""
        ...

    def collect(self) -> list[TaskResult]:
        """Every result ready now."""
        ...

    def wait(self, mode: Literal["all", "one"] = "all", timeout: float | None = None, progress: bool = False) -> bool:
        """Block until every task resolved (``"all"``) or a result is ready (``"one"``)."""
        ...

    def ready(self) -> int:
        """Results waiting for :meth:`pop`."""
        ...

    def unresolved(self) -> int:
        """Tasks not resolved yet."""
        ...

    def summary(self) -> object:
        """Counts (a :class:`~pycrew.Summary`; a group gives one per controller)."""
        ...

    def terminate(self) -> None:
        """Stop and release the workers."""
        ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Executor API: no new tasks; release the workers."""
        ...


if TYPE_CHECKING:  # mypy checks that the three controllers keep to the API

    def _conforms(c: Controller, s: SequentialController, g: ControllerGroup) -> list[ControllerAPI]:
        return [c, s, g]

"""Fault-injection knobs shared by the platform emulators.

Each emulator owns one :class:`Faults` object and exposes it to tests. For every API
request it handles, the emulator calls :meth:`Faults.take_api_fault` (with the request's
operation name) and, if a :class:`Fault` comes back, answers with that HTTP status in
the platform's own error format instead of serving the request; it also sleeps
:attr:`Faults.delay_seconds` before answering (:meth:`Faults.sleep`).

Workload faults (image pull errors, unschedulable or stuck workloads) are platform
specific and decided by each emulator; the generic flags :attr:`Faults.stuck` and
:attr:`Faults.unschedulable` are here so the emulators share their names. Image pull
errors go through ``JobRunner.missing_images``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "Faults"]


@dataclass(frozen=True)
class Fault:
    """One injected API error.

    Attributes:
        status: HTTP status to answer with (e.g. 503, 500, 429, 400).
        code: Platform error code (e.g. ``"ServiceUnavailable"``,
            ``"ThrottlingException"``); each emulator renders it in its error format.
        message: Human-readable error message.
        kind: ``"error"`` for :meth:`Faults.fail_next`, ``"throttle"`` for
            :meth:`Faults.throttle_next`.
    """

    status: int
    code: str
    message: str
    kind: Literal["error", "throttle"] = "error"


@dataclass
class _Pending:
    remaining: int
    fault: Fault
    only: frozenset[str] | None


@dataclass
class Faults:
    """Thread-safe, test-settable fault knobs of one emulator.

    Attributes:
        delay_seconds: Every API response is delayed by this many seconds.
        stuck: Workloads are accepted but never start (each emulator documents what
            that looks like on its platform, e.g. a Batch job stays RUNNABLE).
        unschedulable: Workloads cannot be placed (e.g. a pod stays Pending with an
            Unschedulable condition), where the platform has such a state.
        injected: ``(operation, fault)`` for every fault handed out, oldest first.
    """

    delay_seconds: float = 0.0
    stuck: bool = False
    unschedulable: bool = False
    injected: list[tuple[str, Fault]] = field(default_factory=list)
    _pending: list[_Pending] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        code: str = "ServiceUnavailable",
        message: str = "Service unavailable (injected fault)",
        *,
        only: str | Iterable[str] | None = None,
    ) -> None:
        """Make the next ``n`` API calls (of operations ``only``, if given) fail."""
        self._add(n, Fault(status, code, message, "error"), only)

    def throttle_next(
        self,
        n: int = 1,
        status: int = 429,
        code: str = "ThrottlingException",
        message: str = "Rate exceeded (injected fault)",
        *,
        only: str | Iterable[str] | None = None,
    ) -> None:
        """Make the next ``n`` API calls (of operations ``only``, if given) throttled.

        Each emulator may replace ``status``/``code`` defaults by its platform's own
        throttling form (e.g. Cloud Run: 429 ``RESOURCE_EXHAUSTED``).
        """
        self._add(n, Fault(status, code, message, "throttle"), only)

    def delay(self, seconds: float) -> None:
        """Delay every API response by ``seconds`` (0 to stop)."""
        self.delay_seconds = float(seconds)

    def take_api_fault(self, operation: str = "") -> Fault | None:
        """Called by the emulator once per API request; the fault to answer with, if any.

        Queued faults are used in the order they were set; a fault restricted with
        ``only`` is skipped for other operations.
        """
        with self._lock:
            for i, pending in enumerate(self._pending):
                if pending.only is not None and operation not in pending.only:
                    continue
                pending.remaining -= 1
                if pending.remaining <= 0:
                    del self._pending[i]
                self.injected.append((operation, pending.fault))
                return pending.fault
        return None

    def sleep(self) -> None:
        """Sleep :attr:`delay_seconds` (call before answering a request)."""
        if self.delay_seconds > 0:
            time.sleep(self.delay_seconds)

    def pending_count(self) -> int:
        """Number of API faults still queued."""
        with self._lock:
            return sum(p.remaining for p in self._pending)

    def reset(self) -> None:
        """Clear every knob (queued faults, delay, stuck, unschedulable, history)."""
        with self._lock:
            self._pending.clear()
            self.injected.clear()
        self.delay_seconds = 0.0
        self.stuck = False
        self.unschedulable = False

    def _add(self, n: int, fault: Fault, only: str | Iterable[str] | None) -> None:
        if n <= 0:
            return
        ops = None if only is None else frozenset([only] if isinstance(only, str) else only)
        with self._lock:
            self._pending.append(_Pending(n, fault, ops))

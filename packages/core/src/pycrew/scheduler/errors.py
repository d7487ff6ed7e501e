"""The scheduler layer's error: a scheduler command that failed."""

from __future__ import annotations

from collections.abc import Sequence

from pycrew.errors import PycrewError


class SchedulerError(PycrewError):
    """A scheduler command failed (could not run, timed out, or exited with an error).

    Attributes:
        command: the command line that failed.
        returncode: its exit status (``None`` if it did not run to the end).
        stderr: what it wrote to stderr.
        transient: whether the failure said "try again" (the scheduler's daemon was
            unreachable or busy, the command timed out): the layer retried it with backoff
            before raising.
    """

    def __init__(
        self,
        message: str,
        command: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr
        self.transient = transient

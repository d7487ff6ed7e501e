"""The process's limit on open files, as it bears on a controller's connections.

Every connected worker holds one file descriptor in the controller's process. A login
node's usual soft limit (``ulimit -n``: 1,024) is too few for a thousand workers, and
``accept()`` then fails with ``EMFILE``: :func:`accept_failure_hint` says what to do.
"""

from __future__ import annotations

import errno
import os

try:
    import resource
except ImportError:  # not on Unix
    resource = None  # type: ignore[assignment]

#: errno values of an accept() that failed for want of resources, not because of its peer.
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def open_files() -> int | None:
    """How many file descriptors this process has open (Linux; None if it cannot tell, as
    when it has none left to list them with)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listing them
    except OSError:
        return None


def open_files_limit() -> tuple[int, int] | None:
    """The soft and hard limits on open files (``RLIMIT_NOFILE``), or None where unknown."""
    if resource is None:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return soft, hard


def accept_failure_hint(exc: OSError) -> str:
    """What to do about an accept() that failed with ``exc`` ("" when there is no advice)."""
    if exc.errno not in (errno.EMFILE, errno.ENFILE):
        return ""
    limits = open_files_limit()
    if exc.errno == errno.ENFILE:
        return "; the whole system is out of file descriptors (fs.file-max): close other programs or raise it"
    soft = "its limit" if limits is None else f"its limit of {limits[0]:,} (ulimit -n; hard limit {limits[1]:,})"
    return (
        f"; this process has used {soft}, and each connected worker holds one: raise the soft limit (ulimit -n "
        "in the shell, or resource.setrlimit(resource.RLIMIT_NOFILE, ...) before starting the controller) "
        "or use fewer workers"
    )

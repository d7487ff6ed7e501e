"""The process's limit on open files, as it bears on a controller's workers.

Every connected worker holds one file descriptor in the controller's process (and the
local launcher opens a few more to start each one). A login node's usual soft limit
(``ulimit -n``: 1,024) is too few for a thousand workers: ``accept()`` or the launch then
fails with ``EMFILE``, and :func:`open_files_hint` says what to do.
"""

from __future__ import annotations

import errno

try:
    import resource
except ImportError:  # not on Unix
    resource = None  # type: ignore[assignment]


def open_files_limit() -> tuple[int, int] | None:
    """The soft and hard limits on open files (``RLIMIT_NOFILE``), or None where unknown."""
    if resource is None:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return soft, hard


def open_files_hint(exc: BaseException) -> str:
    """What to do about ``exc`` if it says this process or the system ran out of file
    descriptors (to append to its message), else ``""``."""
    code = getattr(exc, "errno", None)
    if code == errno.ENFILE:
        return "; the whole system is out of file descriptors (fs.file-max): close other programs or raise it"
    if code != errno.EMFILE:
        return ""
    limits = open_files_limit()
    used = "its limit" if limits is None else f"its limit of {limits[0]:,} (ulimit -n; hard limit {limits[1]:,})"
    return (
        f"; this process has used {used}; each connected worker holds one, as does each connection still "
        "opening (anyone who reaches the port can open one; it is closed after seconds_auth): raise the soft limit (ulimit -n "
        "in the shell, or resource.setrlimit(resource.RLIMIT_NOFILE, ...) before starting the controller) "
        "or use fewer workers"
    )

"""A worker's output: the bounded in-memory tail of its pipe, or its log file."""

from __future__ import annotations

import os
import threading

import pycrew

#: How much of a worker's output is kept (the end of it), to explain an early exit.
TAIL_BYTES = 16 * 1024
#: How many lines of that output an ended worker's ``reason`` quotes.
TAIL_LINES = 20


class OutputTail:
    """Reads a worker's output pipe on a daemon thread, keeping only its last ``limit`` bytes."""

    def __init__(self, fd: int, name: str, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._fd = fd
        self.thread = threading.Thread(target=self._read, name=f"pycrew-local-output-{name}", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 65536)
                except OSError:  # the pipe broke: treat it as the end of the output
                    return
                if not chunk:
                    return
                with self._lock:
                    self._buf += chunk
                    if len(self._buf) > 2 * self.limit:
                        del self._buf[: len(self._buf) - self.limit]
        finally:
            os.close(self._fd)

    def text(self) -> str:
        """The end of the output read so far."""
        with self._lock:
            data = bytes(self._buf[-self.limit :])
        return data.decode("utf-8", errors="replace")


def read_log_file(path: str, limit: int | None = TAIL_BYTES, *, lines: int | None = None) -> str:
    """The text of a worker's log file: its last ``limit`` bytes (all of it for ``None``), or
    with ``lines``, its last ``lines`` lines, read from the end (a log of gigabytes is not
    read whole to show its end: see :mod:`pycrew.log_tail`).

    Raises:
        pycrew.LogsUnavailableError: the file cannot be read.
    """
    try:
        if lines is not None:
            return pycrew.read_last_lines(path, lines)
        with open(path, "rb") as f:
            if limit is not None:
                f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise pycrew.LogsUnavailableError(
            f"the log file {path} of a local worker cannot be read: {exc}; check log_dir and its permissions"
        ) from exc


def last_lines(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all of it for ``None``)."""
    return text if lines is None else "".join(text.splitlines(keepends=True)[-lines:]) if lines else ""

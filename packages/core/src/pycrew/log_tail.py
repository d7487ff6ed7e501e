"""The end of a worker's log file, read from the end: a worker's log may hold gigabytes,
and showing its last lines must not read them all (``logs(lines=3)`` of a 100 MB log took
the controller from 30 MB to 340 MB of memory when the whole file was read first).

For launchers whose workers write their output to files (``Launcher.logs``); see
:func:`read_last_lines`.
"""

from __future__ import annotations

import os

__all__ = ["read_last_lines"]

#: Bytes read from the end per step.
BLOCK_BYTES = 64 * 1024


def read_last_lines(path: str | os.PathLike[str], lines: int | None) -> str:
    """The last ``lines`` lines of the file at ``path`` (all of it for ``None``), as text
    (UTF-8, undecodable bytes replaced), with their line ends: the same as
    ``"".join(text.splitlines(keepends=True)[-lines:])`` of the whole file's text, but reading
    only as far back from the end as those lines go, 64 KB at a time (one long line is read
    whole).

    Raises:
        OSError: the file cannot be opened or read (the caller says what to do).
        ValueError: ``lines`` is negative.
    """
    if lines is not None and lines < 0:
        raise ValueError(f"lines must be 0 or more (or None for all), not {lines}")
    with open(path, "rb") as f:
        if lines is None:
            return f.read().decode("utf-8", errors="replace")
        if lines == 0:
            return ""
        start = f.seek(0, os.SEEK_END)
        blocks: list[bytes] = []
        breaks = 0
        # More newlines than lines asked for: the text after the earliest of them holds the
        # last `lines` lines (whatever splitlines also splits on only adds breaks).
        while start > 0 and breaks <= lines:
            size = min(BLOCK_BYTES, start)
            start -= size
            f.seek(start)
            block = f.read(size)
            blocks.append(block)
            breaks += block.count(b"\n")
    text = b"".join(reversed(blocks)).decode("utf-8", errors="replace")
    return "".join(text.splitlines(keepends=True)[-lines:])

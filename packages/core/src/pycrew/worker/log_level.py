"""The worker's log level: ``PYCREW_WORKER_LOG_LEVEL`` (a level name in any case, or a number)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

LOG_LEVEL_ENV = "PYCREW_WORKER_LOG_LEVEL"
DEFAULT_LOG_LEVEL = logging.WARNING


def worker_log_level(environ: Mapping[str, str]) -> tuple[int, str | None]:
    """The level ``PYCREW_WORKER_LOG_LEVEL`` asks for, and a warning if it is not a level.

    Accepts a level's name in any case (``debug``, ``INFO``, ``warn``) or a number from 0
    (``10`` is DEBUG); unset or empty means WARNING. Anything else gives WARNING and a
    message to print: a typo in a log setting must not stop the worker.

    Returns:
        ``(level, warning)``; ``warning`` is ``None`` when the value was understood.
    """
    text = environ.get(LOG_LEVEL_ENV, "").strip()
    if not text:
        return DEFAULT_LOG_LEVEL, None
    if text.isdigit():
        return int(text), None
    names = logging.getLevelNamesMapping()
    if text.upper() in names:
        return names[text.upper()], None
    choices = ", ".join(sorted(n for n in names if n != "NOTSET"))
    return DEFAULT_LOG_LEVEL, (
        f"pycrew worker: ignoring {LOG_LEVEL_ENV}={text!r}: not a log level (one of {choices}, in any case, "
        f"or a number such as 10); logging at WARNING"
    )

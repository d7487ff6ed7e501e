"""Progress bars for ``map``, ``walk`` and ``wait`` (``progress=True``), drawn with tqdm."""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

log = logging.getLogger(__name__)


def _report(exc: BaseException) -> None:
    """A progress bar that cannot be drawn is dropped, never the work: say so once, in the log."""
    log.warning("pycrew: the progress bar cannot be drawn on stderr (%s); the work goes on without it", exc)


def _failed(s: Any) -> int:
    """Tasks of a controller summary that did not succeed."""
    return int(s.error + s.crash + s.timeout + s.cancel)


class _Reporting(Protocol):
    name: str

    def summary(self) -> Any: ...


class ProgressBar:
    """A bar of resolved tasks with running, queued, failed and workers-online counts."""

    def __init__(self, controller: _Reporting, total: int, desc: str | None = None, start: int = 0, own: bool = False) -> None:
        """``own``: the bar is one call's (a ``map``): its ``failed`` counts the failures from now on only."""
        self.controller = controller
        self.start = start
        self._failed_start = _failed(controller.summary().controller) if own else 0
        from tqdm import tqdm  # only when a bar is asked for: tqdm costs ~10 ms to import

        options: dict[str, Any] = {"total": total, "desc": desc or controller.name, "unit": "task", "dynamic_ncols": True}
        stream = sys.stderr
        try:
            self.bar = tqdm(file=stream, disable=stream is None, **options)  # no stderr (pythonw, a daemon): no bar
        except (OSError, ValueError) as exc:  # a closed or broken stream: the work goes on without a bar
            self.bar = tqdm(disable=True, **options)
            _report(exc)

    def refresh(self, done: int | None = None) -> None:
        """Redraw from the controller's counts (``done``: override the number completed)."""
        if self.bar.disable:
            return
        s = self.controller.summary().controller
        completed = (s.resolved - self.start) if done is None else done
        failed = _failed(s) - self._failed_start
        self.bar.set_postfix(
            running=s.running, queued=s.queued, failed=failed, online=s.workers_online, refresh=False
        )
        self.bar.n = max(0, min(completed, self.bar.total or completed))
        try:
            self.bar.refresh()
        except (OSError, ValueError) as exc:  # stderr broke (a closed pipe, a closed file): stop drawing
            self.bar.disable = True
            _report(exc)

    def close(self) -> None:
        """Final redraw and close."""
        self.refresh()
        self.end()

    def end(self) -> None:
        """Close the bar as it is (its last line stays on the terminal)."""
        try:
            self.bar.close()
        except (OSError, ValueError) as exc:
            self.bar.disable = True
            _report(exc)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

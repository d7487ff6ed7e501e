"""Progress bars for ``map``, ``walk`` and ``wait`` (``progress=True``), drawn with tqdm."""

from __future__ import annotations

import sys
from typing import Any, Protocol


class _Reporting(Protocol):
    name: str

    def summary(self) -> Any: ...


class ProgressBar:
    """A bar of resolved tasks with running, queued, failed and workers-online counts."""

    def __init__(self, controller: _Reporting, total: int, desc: str | None = None, start: int = 0) -> None:
        self.controller = controller
        self.start = start
        from tqdm import tqdm  # only when a bar is asked for: tqdm costs ~10 ms to import

        self.bar = tqdm(total=total, desc=desc or controller.name, unit="task", file=sys.stderr, dynamic_ncols=True)

    def refresh(self, done: int | None = None) -> None:
        """Redraw from the controller's counts (``done``: override the number completed)."""
        s = self.controller.summary().controller
        completed = (s.resolved - self.start) if done is None else done
        failed = s.error + s.crash + s.timeout + s.cancel
        self.bar.set_postfix(
            running=s.running, queued=s.queued, failed=failed, online=s.workers_online, refresh=False
        )
        self.bar.n = max(0, min(completed, self.bar.total or completed))
        self.bar.refresh()

    def close(self) -> None:
        """Final redraw and close."""
        self.refresh()
        self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The workers' latest CPU and memory samples, read from ``metrics_dir`` as they grow.

Workers started with ``seconds_metrics`` and ``metrics_dir`` append one JSON line per
sample to ``<metrics_dir>/<instance>.jsonl`` on their own machine (see
:mod:`pycrew.metrics`). The dashboard reads the new bytes of the files of connected
workers once a second, so it sees them when that directory is readable from the
controller's machine (the local launcher, or a shared file system).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from pycrew.metrics import MetricRow

log = logging.getLogger(__name__)

#: Most bytes read from one file per look (older samples are skipped, not needed).
BYTES_MAX = 64 * 1024


@dataclass(frozen=True)
class MetricsSource:
    """Where the workers' samples are, and what to tell the user when they are not shown.

    Attributes:
        directory: the metrics directory, if the dashboard can read it.
        note: a sentence for the page when samples cannot be shown, else ``""``.
    """

    directory: str | None
    note: str


def metrics_source(seconds_metrics: float | None, metrics_dir: str | None) -> MetricsSource:
    """Decide where samples come from for a controller's ``seconds_metrics``/``metrics_dir`` options."""
    if seconds_metrics is None:
        return MetricsSource(
            None, "CPU and memory are off: start the controller with seconds_metrics=1 and metrics_dir=<a directory>."
        )
    if metrics_dir is None:
        return MetricsSource(
            None,
            "The workers write their samples to their logs: set metrics_dir=<a directory readable here> "
            "to see CPU and memory on this page.",
        )
    return MetricsSource(metrics_dir, "")


class WorkerSamples:
    """Tails ``<directory>/<instance>.jsonl`` per instance and keeps the latest sample."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._offsets: dict[str, int] = {}
        self._latest: dict[str, MetricRow] = {}

    def latest(self, instance: str) -> MetricRow | None:
        """Read what ``instance`` appended since the last call; return its newest sample."""
        path = os.path.join(self.directory, f"{instance}.jsonl")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                offset = self._offsets.get(instance, 0)
                if size < offset:  # rewritten: start again
                    offset = 0
                offset = max(offset, size - BYTES_MAX)
                f.seek(offset)
                data = f.read(size - offset)
        except FileNotFoundError:  # no sample yet, or the directory is on another machine
            return self._latest.get(instance)
        except OSError as exc:
            log.debug("cannot read worker samples %s: %s", path, exc)
            return self._latest.get(instance)
        end = data.rfind(b"\n")
        if end < 0:  # no complete line yet
            return self._latest.get(instance)
        self._offsets[instance] = offset + end + 1
        for line in reversed(data[:end].splitlines()):
            try:
                self._latest[instance] = MetricRow(**json.loads(line))
                break
            except (ValueError, TypeError):  # a partial first line after a skip, or a foreign line
                continue
        return self._latest.get(instance)

    def keep_only(self, instances: set[str]) -> None:
        """Forget instances that are gone (keeps memory bounded by the slots)."""
        for gone in set(self._offsets) - instances:
            del self._offsets[gone]
        for gone in set(self._latest) - instances:
            del self._latest[gone]

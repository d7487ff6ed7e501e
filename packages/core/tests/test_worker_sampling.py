"""The worker's CPU and memory sampler (``pycrew.worker.sampling``) outlives its task's subprocesses."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pycrew.worker import sampling
from pycrew.worker.command import WorkerCommand


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sampler_survives_a_subprocess_that_ends_between_listing_and_reading(tmp_path, monkeypatch):
    """On cfc2c0a a descendant that ended after ``/proc`` listed it and before psutil opened
    it raised NoSuchProcess out of the sampling thread, which ended for good: the dashboard
    kept the worker's last CPU and memory for as long as it lived (a task calling
    ``subprocess.run`` in a loop hit it within seconds)."""
    pytest.importorskip("psutil")
    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process now
    monkeypatch.setattr(sampling, "_descendants", lambda pid: [ended.pid])
    command = WorkerCommand(url="tcp://127.0.0.1:1", instance="probe", metrics_seconds=0.01, metrics_dir=str(tmp_path))
    gone = threading.Event()
    thread = threading.Thread(target=sampling.sample_metrics, args=(command, gone, lambda: None), daemon=True)
    thread.start()
    path = tmp_path / "probe.jsonl"
    try:
        deadline = time.monotonic() + 30
        while len(_lines(path)) < 5 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive(), "the sampling thread ended"
        rows = _lines(path)
        assert len(rows) >= 5, rows
        assert all(row["rss_bytes"] > 0 for row in rows), rows  # the worker's own memory still counted
    finally:
        gone.set()
        thread.join(10)

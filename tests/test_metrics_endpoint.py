"""``/metrics`` of the dashboard, read back with the official Prometheus client's parser."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from typing import Any

import cloudpickle
import pytest

import pycrew
from helpers import raise_value_error, sleep_then

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # scripts/setup.sh --test installs it; CI must not skip
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("prometheus_client is missing (scripts/setup.sh --test installs it)", allow_module_level=True)

# The gate task below is defined here: workers get it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def wait_for_gate(path: str, value: int) -> int:
    """Task: block until the file ``path`` exists (at most a minute), then return ``value``."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} never opened")
        time.sleep(0.02)
    return value


def scrape(c: pycrew.Controller) -> tuple[dict[str, Any], str]:
    """Parse the controller's /metrics: ``({family name: family}, content type)``."""
    assert c.dashboard_link is not None, "the controller has no dashboard"
    with urllib.request.urlopen(c.dashboard_link + "metrics", timeout=10) as reply:
        text = reply.read().decode()
        content_type = reply.headers["Content-Type"]
    return {f.name: f for f in text_string_to_metric_families(text)}, content_type


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """The one sample of family ``name`` (named ``sample``, if given; with ``labels`` among its labels)."""
    family = families[name]
    found = [
        s.value for s in family.samples if labels.items() <= s.labels.items() and (sample is None or s.name == sample)
    ]
    assert len(found) == 1, f"{name}{labels}: {family.samples}"
    return float(found[0])


def scrape_until(c: pycrew.Controller, condition: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Scrape until ``condition(families)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        families, _ = scrape(c)
        if condition(families):
            return families
        assert time.monotonic() < deadline, f"/metrics never got there: {[f.samples for f in families.values()]}"
        time.sleep(0.1)


def test_metrics_count_tasks_queue_workers_and_round_trips(make_controller, tmp_path):
    c = make_controller("local", workers=2, dashboard=True, prefetch_max=1).start()
    families, content_type = scrape(c)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert value(families, "pycrew_tasks_pushed") == 0
    assert list(c.map(sleep_then, [0.1] * 5, range(5))) == list(range(5))
    c.push(raise_value_error, ("a",))
    c.push(raise_value_error, ("b",))
    assert c.wait(timeout=60)
    gate = tmp_path / "gate"
    for i in range(3):
        c.push(wait_for_gate, (str(gate), i))
    families = scrape_until(c, lambda f: value(f, "pycrew_tasks_running") == 2)
    assert value(families, "pycrew_tasks_queued") == 1
    time.sleep(0.05)  # the gated tasks' round trips stay over 10 ms, however fast the scrape was
    gate.write_text("open")
    assert c.wait(timeout=60)

    families, _ = scrape(c)
    assert families["pycrew_tasks"].type == "counter"
    by_status = {s.labels["status"]: s.value for s in families["pycrew_tasks"].samples}
    assert by_status == {"success": 8, "error": 2, "crash": 0, "cancel": 0, "timeout": 0}, by_status
    assert value(families, "pycrew_tasks_pushed") == 10
    assert (value(families, "pycrew_tasks_queued"), value(families, "pycrew_tasks_running")) == (0, 0)
    assert value(families, "pycrew_workers_online") == 2 and value(families, "pycrew_workers_launching") == 0
    assert value(families, "pycrew_workers_max") == 2
    assert value(families, "pycrew_worker_launches") == 2 and value(families, "pycrew_worker_launch_failures") == 0
    assert all(
        s.labels["controller"] == "local" and s.labels["launcher"] == "local"
        for f in families.values()
        for s in f.samples
    )

    histogram = families["pycrew_task_round_trip_seconds"]
    assert histogram.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in histogram.samples if s.name.endswith("_bucket")]
    counts = [n for _, n in buckets]
    assert counts == sorted(counts), f"buckets must be cumulative: {buckets}"
    assert buckets[-1] == ("+Inf", 10)
    assert value(families, "pycrew_task_round_trip_seconds", "pycrew_task_round_trip_seconds_count") == 10
    total = value(families, "pycrew_task_round_trip_seconds", "pycrew_task_round_trip_seconds_sum")
    assert total >= 5 * 0.1, f"five tasks slept 0.1 s each, the round trips add up to {total}"
    below_10ms = dict(buckets)["0.01"]
    assert below_10ms <= 2, f"only the failing tasks can resolve within 10 ms of submit: {buckets}"


def test_metrics_show_launching_workers_and_launch_failures(make_controller, tmp_path):
    slow = tmp_path / "slow-python"
    slow.write_text(f'#!/bin/sh\nsleep 1.5\nexec "{sys.executable}" "$@"\n')
    slow.chmod(0o755)
    c = make_controller("local", workers=1, dashboard=True, python=str(slow)).start()
    c.push(sleep_then, (0.1, 1))
    scrape_until(c, lambda f: value(f, "pycrew_workers_launching") == 1 and value(f, "pycrew_workers_online") == 0)
    assert c.wait(timeout=60)
    families = scrape_until(c, lambda f: value(f, "pycrew_workers_online") == 1)
    assert value(families, "pycrew_workers_launching") == 0

    broken = tmp_path / "no-image"
    broken.write_text('#!/bin/sh\necho "image pull failed" >&2\nexit 3\n')
    broken.chmod(0o755)
    b = make_controller("local", workers=1, dashboard=True, python=str(broken), launch_max=2, name="broken").start()
    b.push(sleep_then, (0.1, 1))
    failed = b.submit(sleep_then, 0.1, 2)
    try:
        b.wait(timeout=60)
    except pycrew.LaunchError:
        pass  # expected: the launcher gives up after launch_max failures
    families = scrape_until(b, lambda f: value(f, "pycrew_worker_launch_failures") == 2)
    assert value(families, "pycrew_worker_launches") == 2
    assert value(families, "pycrew_tasks_queued") == 0 and value(families, "pycrew_workers_online") == 0
    with pytest.raises(pycrew.LaunchError):
        failed.result(timeout=60)
    assert value(families, "pycrew_tasks_abandoned") == 2, "the future failed by the LaunchError, and the pushed task never runs"
    t = b.summary().controller
    assert (t.pushed, t.queued, t.resolved, t.abandoned) == (2, 0, 0, 2), t


def test_metric_labels_escape_the_controller_name(make_controller):
    name = 'odd "name" with \\ backslash'
    c = make_controller("local", workers=1, dashboard=True, name=name).start()
    families, _ = scrape(c)
    assert {s.labels["controller"] for f in families.values() for s in f.samples} == {name}


def test_worker_cpu_and_memory_are_exported_with_metrics_dir(make_controller, tmp_path):
    c = make_controller(
        "local", workers=1, dashboard=True, seconds_metrics=0.2, metrics_dir=str(tmp_path / "metrics")
    ).start()
    assert c.submit(sleep_then, 0.1, 1).result(timeout=60) == 1
    families = scrape_until(c, lambda f: "pycrew_worker_memory_bytes" in f)
    assert value(families, "pycrew_worker_memory_bytes", worker="1") > 1_000_000
    assert 0 <= value(families, "pycrew_worker_cpu_percent", worker="1") <= 400

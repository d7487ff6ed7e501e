"""ControllerGroup.shutdown(cancel_futures=True) shuts every member down before it waits for any.

It used to shut the members down one after the other: while it waited for the first one's
running tasks, the second still accepted submissions and started its queued futures, which
were to be cancelled (a ``ThreadPoolExecutor`` cancels them at once and refuses new work).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psutil
import pytest

import pycrew
from pycrew.testing.harness import wait_until


def workers_of(controller_ids: list[str]) -> list[int]:
    """Pids of live processes whose command line names one of these controllers (their workers)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(p.info["cmdline"] or [])
        if any(cid in line for cid in controller_ids):
            found.append(p.info["pid"])
    return found


def test_group_shutdown_cancels_and_refuses_on_every_member_while_it_waits(tmp_path: Path) -> None:
    gate = tmp_path / "gate"

    def blocked(path: str) -> str:  # (a nested function travels to the worker by value)
        while not os.path.exists(path):
            time.sleep(0.02)
        return "done"

    a = pycrew.controller("local", workers=1, name="a")
    b = pycrew.controller("local", workers=1, name="b")
    group = pycrew.ControllerGroup(a, b).start()
    failures: list[BaseException] = []

    def shut_down() -> None:
        try:
            group.shutdown(wait=True, cancel_futures=True)
        except BaseException as exc:  # (re-raised by the test below)
            failures.append(exc)

    shutting = threading.Thread(target=shut_down)
    try:
        running = [group.submit_to(name, blocked, str(gate)) for name in ("a", "b")]
        wait_until(lambda: all(f.running() for f in running), 60, "the blocked tasks did not start")
        queued_b = [group.submit_to("b", abs, -i) for i in range(50)]
        shutting.start()
        # a's running task holds the group's shutdown; b is shut down meanwhile all the same
        wait_until(lambda: any(f.cancelled() for f in queued_b), 20,
                   lambda: f"none of b's queued futures was cancelled while the group waited for a: {b.summary().controller}")
        with pytest.raises(RuntimeError, match="after shutdown"):
            group.submit_to("b", abs, 1)
        assert shutting.is_alive(), "the group's shutdown returned while a's task still ran"
    finally:
        gate.touch()
        if shutting.ident is not None:
            shutting.join(60)
        group.terminate()
        wait_until(lambda: not workers_of([a.id, b.id]), 30, lambda: f"workers left: {workers_of([a.id, b.id])}")
    assert not failures, failures
    assert not shutting.is_alive()
    assert [f.result(timeout=0) for f in running] == ["done", "done"]
    assert all(f.cancelled() or f.result(timeout=0) == abs(-i) for i, f in enumerate(queued_b))

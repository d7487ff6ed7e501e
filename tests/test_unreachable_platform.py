"""A platform that cannot be reached for a while (a scheduler's daemon restarting) does not fail the work.

A launch hook that raises an exception whose ``transient`` attribute is true (the scheduler
layer's ``SchedulerError`` for "connection refused", a timeout) is tried again until the
platform has been unreachable for ``seconds_unreachable``; only then do ``launch_max``
failures raise the LaunchError. On 33e082d five such failures in a row (about 35 s on SGE,
whose qsub fails at once while qmaster is down) failed every waiting future.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew_local import LocalOptions
from pycrew_local.plugin import LocalPlugin
from support import wait_for


class Unreachable(ConnectionError):
    transient = True


class Flaky(LocalPlugin):
    """The local launcher, whose launches fail as an unreachable platform's while ``down`` exists."""

    name = "flaky"

    def __init__(self, down: Path, transient: bool = True) -> None:
        self.down = down
        self.transient = transient
        self.failed = 0

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        if self.down.exists():
            self.failed += 1
            error = Unreachable("the scheduler's daemon refused the connection")
            error.transient = self.transient  # type: ignore[misc]
            raise error
        return super().launch(launcher, options, calls)


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[Flaky]:
    (tmp_path / "down").write_text("")
    plugin = Flaky(tmp_path / "down")
    pycrew.register(plugin, name="flaky-test")
    yield plugin
    pycrew.unregister(plugin)


def test_launches_are_tried_again_while_the_platform_is_unreachable(flaky, make_controller, caplog):
    c = make_controller("flaky", workers=1, launch_max=2).start()
    future = c.submit(abs, -4)
    with caplog.at_level(logging.WARNING, logger="pycrew"):
        wait_for(lambda: flaky.failed >= 4, 60, message="the launcher was not tried again")
        wait_for(lambda: "failed launch 3 (past launch_max=2: the platform was unreachable)" in caplog.text, 10,
                 message=f"the warnings past launch_max do not say so (the probe read 'past launch_max= 2'): {caplog.text}")
    assert not future.done(), f"the future failed while the platform was briefly unreachable: {future.exception()}"
    flaky.down.unlink()
    assert future.result(timeout=60) == 4


def test_an_unreachable_platform_is_a_launch_error_after_seconds_unreachable(flaky, make_controller):
    c = make_controller("flaky", workers=1, launch_max=2, seconds_unreachable=1).start()
    future = c.submit(abs, -4)
    with pytest.raises(pycrew.LaunchError, match=r"the platform could not be reached, or was unavailable, for [0-9]+ s; seconds_unreachable=1\)") as info:
        future.result(timeout=60)
    assert "Check that its API or scheduler answers from this machine" in str(info.value), str(info.value)
    assert "Fix the launcher's options" not in str(info.value)


def test_a_failure_that_is_not_transient_still_fails_after_launch_max(flaky, make_controller):
    flaky.transient = False
    c = make_controller("flaky", workers=1, launch_max=2).start()
    future = c.submit(abs, -4)
    with pytest.raises(pycrew.LaunchError, match="refused the connection"):
        future.result(timeout=60)
    assert flaky.failed == 2


def test_the_launch_error_counts_the_launches_that_failed_past_launch_max(flaky, make_controller):
    """Probe J (AWS Batch throttled for 20 s): the log said "failed launch 3 (past
    launch_max=2 ...)" and the LaunchError "failed to start a worker 2 times in a row"."""
    c = make_controller("flaky", workers=1, launch_max=2, seconds_unreachable=1.5).start()
    future = c.submit(abs, -4)
    with pytest.raises(pycrew.LaunchError) as info:
        future.result(timeout=60)
    failures = c.summary().workers[0].launch_failures
    assert failures > 2, f"the platform was unreachable for 1.5 s, yet only {failures} launches failed"
    assert f"failed to start a worker {failures} times in a row (launch_max=2)" in str(info.value), str(info.value)

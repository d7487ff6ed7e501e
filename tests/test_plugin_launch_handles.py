"""A launch hook whose result breaks the contract: the batch is rejected, and every worker it returned is terminated.

The launcher is the real local one, subclassed to return its real handles in a wrong
shape and registered in code: without the termination, those workers would run until
their ``seconds_launch`` (60 s here) ran out.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psutil
import pytest

import pycrew
from pycrew_local import LocalHandle, LocalOptions
from pycrew_local.plugin import LocalPlugin
from support import pid_gone, wait_for

#: Each shape a launch hook has been seen to return instead of one handle per call.
SHAPES: dict[str, Callable[[list[Any], LocalHandle], object]] = {
    "fewer": lambda real, extra: real[:-1],
    "more": lambda real, extra: [*real, extra],
    "generator": lambda real, extra: (h for h in real),
    "bare handle": lambda real, extra: real[0],
    "dict": lambda real, extra: dict(enumerate(real)),
}


class WrongHandles(LocalPlugin):
    """The local launcher, returning its real handles in a wrong shape; keeps every process it started."""

    name = "wronghandles"

    def __init__(self, shape: str, terminate_fails: bool = False) -> None:
        self.shape = shape
        self.terminate_fails = terminate_fails
        self.started: list[LocalHandle] = []
        self.returned: list[LocalHandle] = []
        self.extras: list[subprocess.Popen[bytes]] = []

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        real = super().launch(launcher, options, calls)
        extra_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        self.extras.append(extra_process)
        extra = LocalHandle(extra_process.pid, psutil.Process(extra_process.pid).create_time())
        self.started += [*real, extra]
        result = SHAPES[self.shape](real, extra)
        self.returned += [h for h in self.started if h is result or _holds(result, h)]
        return result

    def terminate(self, launcher: pycrew.LauncherInfo, options: LocalOptions, handles: Sequence[Any]) -> None:
        if self.terminate_fails:
            raise RuntimeError("the platform refused to terminate")
        super().terminate(launcher, options, handles)


def _holds(result: object, handle: LocalHandle) -> bool:
    if isinstance(result, dict):
        return handle in result.values()
    if isinstance(result, list):
        return handle in result
    return False


@pytest.fixture
def register() -> Iterator[Callable[..., WrongHandles]]:
    """Register a :class:`WrongHandles` plugin; at the end, unregister it and kill whatever it started."""
    made: list[WrongHandles] = []

    def make(shape: str, terminate_fails: bool = False) -> WrongHandles:
        plugin = WrongHandles(shape, terminate_fails)
        pycrew.register(plugin, name=f"wronghandles-{shape}")
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        pycrew.unregister(plugin)
        for handle in plugin.started:
            LocalPlugin.terminate(plugin, pycrew.LauncherInfo("wronghandles", LocalOptions()), LocalOptions(), [handle])
        for process in plugin.extras:
            process.kill()
            process.wait()


def launch_error(make_controller: Callable[..., pycrew.Controller]) -> str:
    """The LaunchError of a controller on the plugin, which launches two workers at once."""
    c = make_controller("wronghandles", workers=2, workers_at_start=2, launch_max=1, seconds_launch=60)
    c.start()
    future = c.submit(abs, -1)
    with pytest.raises(pycrew.LaunchError) as raised:
        future.result(timeout=30)
    return str(raised.value)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_workers_of_a_rejected_launch_are_terminated_at_once(
    shape: str, register: Callable[..., WrongHandles], make_controller: Callable[..., pycrew.Controller]
) -> None:
    plugin = register(shape)
    message = launch_error(make_controller)
    if shape == "generator":  # what it yielded was received
        plugin.returned = plugin.started[:-1]
    assert plugin.returned, "the shape returned no handle: nothing to check"
    assert f"the {len(plugin.returned)} worker(s) it returned were terminated" in message, message
    # fewer handles than workers: the one without a handle cannot be terminated, and the message says so
    assert ("out of pycrew's reach" in message) == (shape == "fewer"), message
    wait_for(
        lambda: all(pid_gone(h.pid) for h in plugin.returned), 10,
        message=f"the workers the rejected launch returned still run: {plugin.returned}",
    )
    kept = [h for h in plugin.started if h not in plugin.returned]
    assert not any(pid_gone(h.pid) for h in kept), "a worker the launch hook did not return was terminated"


def test_a_failed_termination_of_a_rejected_launch_is_logged_and_reported_not_raised(
    register: Callable[..., WrongHandles],
    make_controller: Callable[..., pycrew.Controller],
    caplog: pytest.LogCaptureFixture,
) -> None:
    register("more", terminate_fails=True)
    with caplog.at_level(logging.ERROR, logger="pycrew"):
        message = launch_error(make_controller)
    assert "returned 3 handle(s) for 2 worker call(s)" in message, message
    assert "the 3 worker(s) it returned could not be terminated" in message, message
    assert "the platform refused to terminate" in caplog.text


@pytest.mark.parametrize("shape", ["dict", "fewer", "bare handle"])
def test_the_conformance_suite_checks_a_launch_result_as_core_does(shape: str, register: Callable[..., WrongHandles]) -> None:
    """The suite's direct launch (pycrew.testing.harness.launch_directly) took a dict's keys
    for handles (``{0: handle}`` gave 0, and a terminate hook doing ``os.killpg(0)`` killed
    the suite's own pytest: a probe, on 5b78b04); it now fails the test with core's message
    and terminates what can be taken from the result (a dict's values)."""
    from pycrew.testing.harness import launch_directly

    plugin = register(shape)
    spec = pycrew.get_launcher("wronghandles")
    info = pycrew.LauncherInfo("wronghandles", LocalOptions(), controller="suite", controller_id="c0ffee0003")
    calls = [
        pycrew.WorkerCall.from_command(
            pycrew.WorkerCommand(url="tcp://127.0.0.1:9", instance=f"feed000{4 + i}", worker=i + 1, launcher="wronghandles",
                                 controller="suite", controller_id="c0ffee0003", seconds_launch=60.0),
            python=sys.executable, env={}, token="0" * 64, name=f"suite-w{i + 1}",
        )
        for i in range(2)
    ]
    with pytest.raises(AssertionError, match=r"pycrew_launch_workers must return a list of one handle per call"):
        launch_directly(spec, info, calls)
    assert plugin.returned
    wait_for(lambda: all(pid_gone(h.pid) for h in plugin.returned), 10,
             message=f"the workers the rejected launch returned still run: {plugin.returned}")

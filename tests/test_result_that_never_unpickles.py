"""A result whose unpickling in the controller never returns (a ``__reduce__`` of the user's
that blocks) holds the dispatcher's thread; ``terminate()`` must still resolve its future
(a probe, on 64971f1: the future stayed pending for good after terminate() returned, since
the task was taken off its worker before its result was read, and was in nothing
terminate() ends)."""

from __future__ import annotations

import pytest

import pycrew
from helpers import unpickles_for_ever
from support import wait_for


def test_terminate_resolves_the_future_whose_result_is_still_unpickling(make_controller, tmp_path):
    c = make_controller("local", workers=1, seconds_terminate=5).start()  # (terminate waits that long for the loop)
    release = tmp_path / "release"
    try:
        future = c.submit(unpickles_for_ever, str(release))
        wait_for(future.running, 60, message="the task never ran")
        wait_for(lambda: c._dispatcher.running() == 0, 60, message="the result never came")  # (and is being read)
        assert not future.done()
        c.terminate()
        with pytest.raises(pycrew.ControllerError, match="terminated"):
            future.result(timeout=10)
        assert c.summary().controller.abandoned == 1
    finally:
        release.touch()  # the dispatcher's thread ends

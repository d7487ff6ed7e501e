"""A task's ``seed``: the random generators seeded for the task, and put back after it."""

from __future__ import annotations

import random
import sys
from typing import Any


def seed_generators(seed: int) -> tuple[Any, Any]:
    """Seed :mod:`random` (and NumPy's global generator, if NumPy is loaded) with ``seed``;
    return their states before, for :func:`restore_generators`."""
    state = random.getstate()
    random.seed(seed)
    np_state = None
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        np_state = numpy.random.get_state()
        numpy.random.seed(seed % (2**32))
    return state, np_state


def restore_generators(saved: tuple[Any, Any]) -> None:
    """Put back the generators' states that :func:`seed_generators` returned."""
    random.setstate(saved[0])
    numpy = sys.modules.get("numpy")
    if numpy is not None and saved[1] is not None:
        numpy.random.set_state(saved[1])

"""Fixtures of the local launcher's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycrew_local import LocalHandle
from pycrew_local.processes import kill_tree


@pytest.fixture
def handles() -> Iterator[list[LocalHandle]]:
    """Workers a test started with ``start_worker``: killed (their trees, their groups) after it."""
    started: list[LocalHandle] = []
    yield started
    for h in started:
        kill_tree(h)

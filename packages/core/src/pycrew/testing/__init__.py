"""The conformance suite every pycrew launcher should pass, and helpers for plugin tests.

A launcher plugin's test module subclasses :class:`LauncherSuite` and overrides its
``launcher_config`` fixture::

    import pytest
    from pycrew.testing import LauncherConfig, LauncherSuite

    class TestMyLauncher(LauncherSuite):
        @pytest.fixture
        def launcher_config(self) -> LauncherConfig:
            return LauncherConfig(name="mylauncher", options={"queue": "test"})

The suite's names are imported lazily: workers unpickle task functions from
:mod:`pycrew.testing.tasks`, and must not need pytest for that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycrew.testing.launcher_config import CAPABILITIES, LauncherConfig
    from pycrew.testing.suite import LauncherSuite

__all__ = ["CAPABILITIES", "LauncherConfig", "LauncherSuite"]

_LAZY = {
    "CAPABILITIES": "pycrew.testing.launcher_config",
    "LauncherConfig": "pycrew.testing.launcher_config",
    "LauncherSuite": "pycrew.testing.suite",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pycrew.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""The fixtures of :class:`~pycrew.testing.LauncherSuite`: what a plugin overrides and what the suite builds.

A plugin overrides :meth:`SuiteFixtures.launcher_config` (required) and may override
:meth:`SuiteFixtures.bad_launch_options` and :meth:`SuiteFixtures.unrelated_job`.
Everything else the suite builds from those, and cleans up in finalizers, also when a
test fails: every controller is terminated, every worker launched directly is
terminated through the launcher's hook, and any worker the monitor still lists for a
suite controller is terminated too.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import terminate_handles
from pycrew.testing.launcher_config import CAPABILITIES, LauncherConfig

log = logging.getLogger(__name__)

_plugin_names = itertools.count(1)


class ControllerFactory:
    """Builds the suite's controllers (``controllers(workers=2, seconds_idle=2)``) and ends them.

    Each controller gets the config's controller and launcher options, then the
    keyword overrides, and a name unique within the test (``suite1``, ``suite2``, ...).
    """

    def __init__(self, config: LauncherConfig) -> None:
        self.config = config
        self.made: list[pycrew.Controller] = []

    def __call__(self, workers: int = 1, **overrides: Any) -> pycrew.Controller:
        """A new, not yet started controller of the launcher under test."""
        options = self.config.controller_kwargs(name=f"suite{len(self.made) + 1}", **overrides)
        c = pycrew.controller(self.config.name, workers=workers, **options)
        self.made.append(c)
        return c

    def cleanup(self, monitor: pycrew.Monitor | None) -> None:
        """Terminate every controller, then any worker of theirs the monitor still lists."""
        for c in self.made:
            try:
                c.terminate()
            except Exception:  # teardown must go on to the next controller; the error is logged
                log.exception("terminating suite controller %r failed", c.name)
        if monitor is None:
            return
        for c in self.made:
            try:
                left = monitor.list(c.id)
                if left:
                    log.warning("suite cleanup: terminating %d leftover worker(s) of %s", len(left), c.id)
                    monitor.terminate(left)
            except Exception:  # best effort: a broken monitor is reported by the monitor tests
                log.exception("suite cleanup through the monitor failed for controller %s", c.id)


def require(spec: pycrew.LauncherSpec, *capabilities: str) -> None:
    """Skip the calling test, visibly, unless the launcher declares every capability."""
    missing = [c for c in capabilities if c not in spec.capabilities]
    if missing:
        why = "; ".join(f"{c!r}: {CAPABILITIES.get(c, '?')}" for c in missing)
        pytest.skip(f"launcher {spec.name!r} does not declare capability {', '.join(map(repr, missing))} ({why})")


class SuiteFixtures:
    """Fixtures shared by every test of the conformance suite."""

    # -- what a plugin provides --------------------------------------------------------

    @pytest.fixture
    def launcher_config(self) -> LauncherConfig:
        """The launcher under test: override in the subclass (may depend on service fixtures)."""
        pytest.fail(
            "LauncherSuite needs the launcher under test: override the fixture in your subclass:\n"
            "    @pytest.fixture\n"
            "    def launcher_config(self) -> LauncherConfig:\n"
            '        return LauncherConfig(name="mylauncher", options={...})'
        )

    @pytest.fixture
    def bad_launch_options(self, launcher_config: LauncherConfig) -> Mapping[str, Any] | None:
        """Valid launcher options under which every launch fails (default: the config's)."""
        return launcher_config.bad_launch_options

    @pytest.fixture
    def unrelated_job(self, launcher_config: LauncherConfig) -> Iterator[str | None]:
        """Override to start a job on the platform that is not a pycrew worker; yield its id.

        The monitor test checks that the monitor never lists it (``WorkerInfo.id``).
        The default starts nothing and yields ``None``.
        """
        yield None

    # -- what the suite builds ---------------------------------------------------------

    @pytest.fixture(autouse=True)
    def suite_state_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Controller records go to a fresh directory, so orphan checks see only this test's."""
        path = tmp_path / "pycrew-state"
        path.mkdir()
        monkeypatch.setenv("PYCREW_STATE_DIR", str(path))
        return path

    @pytest.fixture
    def launcher_spec(self, launcher_config: LauncherConfig) -> pycrew.LauncherSpec:
        """The launcher's registration, looked up by name."""
        return pycrew.get_launcher(launcher_config.name)

    @pytest.fixture
    def monitor(self, launcher_config: LauncherConfig, launcher_spec: pycrew.LauncherSpec) -> pycrew.Monitor:
        """The launcher's monitor."""
        return pycrew.Monitor(launcher_config.name, **launcher_config.monitor_kwargs())

    @pytest.fixture
    def controllers(
        self, launcher_config: LauncherConfig, launcher_spec: pycrew.LauncherSpec, monitor: pycrew.Monitor
    ) -> Iterator[ControllerFactory]:
        """A factory of controllers of the launcher under test, all ended at teardown."""
        factory = ControllerFactory(launcher_config)
        yield factory
        factory.cleanup(monitor if "monitor" in launcher_spec.capabilities else None)

    @pytest.fixture
    def stray_handles(self, monitor: pycrew.Monitor) -> Iterator[list[Any]]:
        """Handles of workers a test launched directly; terminated at teardown."""
        handles: list[Any] = []
        yield handles
        if handles:
            try:
                terminate_handles(monitor, handles)
            except Exception:  # reported by the termination tests; teardown goes on
                log.exception("suite cleanup: terminating directly launched workers failed")

    @pytest.fixture
    def observe(self) -> Iterator[Callable[[Any], Any]]:
        """``observe(plugin)`` registers an observer plugin for this test only; returns it.

        Request it after ``controllers``: it is torn down first, releasing held launches.
        """
        plugins: list[Any] = []

        def register(plugin: Any) -> Any:
            pycrew.register(plugin, name=f"pycrew-suite-{type(plugin).__name__}-{next(_plugin_names)}")
            plugins.append(plugin)
            return plugin

        yield register
        for plugin in plugins:
            release = getattr(plugin, "release", None)
            if callable(release):  # never leave a held launch or dispatcher behind
                release()
            pycrew.unregister(plugin)

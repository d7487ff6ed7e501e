"""What a plugin tells the conformance suite about its launcher: :class:`LauncherConfig`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycrew

#: Capabilities the suite knows, and what each one promises: core's
#: :data:`pycrew.LAUNCHER_CAPABILITIES`, the one list. A launcher lists the ones it has in
#: ``LauncherSpec.capabilities``; tests that need a missing one are skipped, visibly, with
#: the reason.
CAPABILITIES: Mapping[str, str] = pycrew.LAUNCHER_CAPABILITIES


@dataclass(frozen=True)
class LauncherConfig:
    """How the conformance suite runs one launcher (returned by the ``launcher_config`` fixture).

    Attributes:
        name: the launcher's registered name.
        options: launcher options that start working workers in the test environment
            (a cluster's partition, a test image, an emulator's endpoint, ...).
        monitor_options: options for :class:`pycrew.Monitor` (default: ``options``).
        controller_options: extra controller options every suite controller gets
            (e.g. ``host`` and ``port`` when workers cannot reach 127.0.0.1).
        bad_options: option mappings that are each invalid; building the options from
            any of them must raise :class:`pycrew.OptionsError` naming the option.
        bad_launch_options: valid options under which launches fail (a missing
            interpreter, image or partition); ``None`` skips the launch-failure test.
            They are merged over ``options`` (and ``controller_options``), not used
            instead of them: give only the keys that make launches fail; every other
            key keeps its value from ``options``. They may not set ``workers``,
            ``launch_max`` or ``seconds_launch``, which that test sets itself.
        seconds_launch: ``seconds_launch`` of the suite's controllers: how long a worker
            may take to start and connect on this platform.
        seconds_launch_failure: ``seconds_launch`` for the launch-failure test, short so
            that a launch that never connects fails quickly.
        seconds_timeout: the longest any single step (start a worker, run a task) may
            take before the suite calls it a hang; raise it for slow platforms.
        batch_size: how many workers the batched-launch test asks for in one round.
        entry_point: whether the launcher is installed through an entry point in the
            ``pycrew.launchers`` group (``False`` for a plugin registered in code).
        subprocess_setup: Python code a child controller process runs first (the
            client-death test), e.g. to register a plugin defined in code.
        handle_pid: optional function from a launch handle to the worker's process id,
            so the suite can check handles against the pids tasks report.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    monitor_options: Mapping[str, Any] | None = None
    controller_options: Mapping[str, Any] = field(default_factory=dict)
    bad_options: Sequence[Mapping[str, Any]] = ()
    bad_launch_options: Mapping[str, Any] | None = None
    seconds_launch: float = 30.0
    seconds_launch_failure: float = 5.0
    seconds_timeout: float = 60.0
    batch_size: int = 2
    entry_point: bool = True
    subprocess_setup: str = ""
    handle_pid: Callable[[Any], int | None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LauncherConfig.name must be the launcher's name, got {self.name!r}")
        for key in ("seconds_launch", "seconds_launch_failure", "seconds_timeout"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"LauncherConfig.{key} must be a finite number > 0, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"LauncherConfig.batch_size must be >= 2 to test batching, got {self.batch_size!r}")
        if not self.entry_point and not self.subprocess_setup.strip():
            raise ValueError(
                f"LauncherConfig(entry_point=False) needs subprocess_setup: the code that registers launcher "
                f"{self.name!r} in a new Python process (e.g. 'import my_plugin_module'), which the client-death "
                "test starts its controller in; without it that controller finds no launcher of that name"
            )

    def monitor_kwargs(self) -> dict[str, Any]:
        """Keyword options for :class:`pycrew.Monitor`."""
        return dict(self.options if self.monitor_options is None else self.monitor_options)

    def controller_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword options for :func:`pycrew.controller`: controller, launcher, then ``overrides``."""
        return {"seconds_launch": self.seconds_launch, **self.controller_options, **self.options, **overrides}

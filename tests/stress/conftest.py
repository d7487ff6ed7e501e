"""Shared pieces of the stress suite: sizes, the figures table, the controller's memory.

Short sizes run in the normal test run; ``PYCREW_STRESS=full`` (set by ``nox -s stress``)
selects the sizes of issue 14. Every test records its figures with the ``figures``
fixture: they are printed at once (visible with ``pytest -s``) and again as a table at the
end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import pytest

FIGURES = pytest.StashKey[list[tuple[str, dict[str, object]]]]()


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(name=value, ...)``: print figures now and list them in the end-of-run table."""

    def record(**values: object) -> None:
        request.config.stash.setdefault(FIGURES, []).append((request.node.nodeid, dict(values)))
        print(f"\n[stress] {request.node.name}: " + ", ".join(f"{k}={_format(v)}" for k, v in values.items()), flush=True)

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """The figures of every stress test that ran, one block per record."""
    rows = config.stash.get(FIGURES, [])
    if not rows:
        return
    size = "full" if os.environ.get("PYCREW_STRESS") == "full" else "short (PYCREW_STRESS=full for the full sizes)"
    terminalreporter.section(f"pycrew stress figures, {size}")
    for nodeid, values in rows:
        terminalreporter.write_line(nodeid.split("::", 1)[-1])
        for key, value in values.items():
            terminalreporter.write_line(f"    {key:<32} {_format(value)}")


@dataclass
class Memory:
    """The resident memory of this process: the controller's, since controllers run in the test process."""

    process: psutil.Process

    def rss(self) -> int:
        """Resident bytes now."""
        return int(self.process.memory_info().rss)

    def reset_peak(self) -> None:
        """Make the kernel's high-water mark (VmHWM) start again from the current RSS."""
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def peak(self) -> int:
        """Highest resident bytes since the last :meth:`reset_peak` (VmHWM)."""
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("/proc/self/status has no VmHWM line")


@pytest.fixture
def memory() -> Memory:
    """Resident memory of the test process (current and peak), in bytes."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("measuring peak memory needs Linux's /proc/self/clear_refs")
    return Memory(psutil.Process())


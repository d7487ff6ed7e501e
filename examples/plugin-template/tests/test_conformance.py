"""The ``template`` launcher passes pycrew's launcher conformance suite.

Copy this module into your plugin: subclass LauncherSuite, return your launcher's name
and test options from ``launcher_config``, and say how to make launches fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew.testing import LauncherConfig, LauncherSuite

# Skip visibly, rather than fail to collect, when the template is not installed.
pytest.importorskip("pycrew_template", reason="install the template first: pip install -e examples/plugin-template")


def _handle_pid(handle: object) -> int:
    pid = getattr(handle, "pid", None)
    assert isinstance(pid, int), f"a template handle carries the worker's pid, got {handle!r}"
    return pid


class TestTemplateLauncher(LauncherSuite):
    """Workers are background processes of /bin/sh, recorded in a per-test run directory."""

    @pytest.fixture
    def launcher_config(self, tmp_path: Path) -> LauncherConfig:
        return LauncherConfig(
            name="template",
            options={"run_dir": str(tmp_path / "run")},
            bad_options=[{"shell": "sh"}, {"python": ""}, {"env": {"PYCREW_TOKEN": "x"}}],
            # The shell starts fine but cannot exec the interpreter: the worker never
            # connects, and each launch fails after seconds_launch_failure.
            bad_launch_options={"python": "/no/such/python"},
            seconds_launch_failure=3.0,
            seconds_timeout=30.0,
            handle_pid=_handle_pid,
        )

    @pytest.fixture
    def unrelated_job(self, launcher_config: LauncherConfig) -> Iterator[str | None]:
        """A process that is no worker, behind a stale record that claims its pid."""
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        run = Path(launcher_config.options["run_dir"])
        run.mkdir(parents=True, exist_ok=True)
        record = {"pid": proc.pid, "instance": "0123456789abcdef", "launcher": "template", "started": time.time()}
        (run / "0123456789abcdef.json").write_text(json.dumps(record))
        try:
            yield str(proc.pid)
        finally:
            proc.kill()
            proc.wait()

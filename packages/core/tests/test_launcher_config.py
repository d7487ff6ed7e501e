"""The conformance suite's LauncherConfig refuses a configuration its tests cannot run with."""

from __future__ import annotations

import pytest

from pycrew.testing import LauncherConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "LauncherConfig.name must be the launcher's name"),
        ({"seconds_timeout": 0}, "LauncherConfig.seconds_timeout must be a finite number > 0"),
        ({"batch_size": 1}, "LauncherConfig.batch_size must be >= 2"),
        # the guide's own example failed test_10 with "the controller process said nothing in 60 s"
        # after 0.8 s: its child controller found no launcher (a probe, on a5a6183)
        ({"entry_point": False}, r"LauncherConfig\(entry_point=False\) needs subprocess_setup"),
        ({"entry_point": False, "subprocess_setup": "  "}, r"needs subprocess_setup"),
    ],
)
def test_a_config_the_suite_cannot_run_with_is_refused_saying_why(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LauncherConfig(**{"name": "script", **kwargs})  # type: ignore[arg-type]


def test_a_plugin_registered_in_code_gives_what_registers_it() -> None:
    config = LauncherConfig(name="script", entry_point=False, subprocess_setup="import pycrew_script.plugin")
    assert config.subprocess_setup == "import pycrew_script.plugin"

"""The plugin module without a cell: registration, entry point, handle checks, the client cache key."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from sge_helpers import launcher_info, make_calls

from pycrew_sge import SgeOptions
from pycrew_sge.plugin import CAPABILITIES, plugin


def test_terminate_rejects_handles_that_are_not_task_ids(tmp_path: Path) -> None:
    info = launcher_info(SgeOptions(directory=str(tmp_path)), make_calls("pass", 1))
    with pytest.raises(ValueError, match=r"123\.4"):
        plugin.pycrew_terminate_workers(launcher=info, handles=["-u", "root"])


def test_register_declares_a_remote_launcher_with_the_monitor() -> None:
    got: list[tuple[tuple[object, ...], dict[str, object]]] = []
    plugin.pycrew_register_launchers(register=lambda *a, **k: got.append((a, k)))
    (args, kwargs), = got
    assert args == ("sge", SgeOptions)
    assert kwargs["remote"] is True and kwargs["capabilities"] == CAPABILITIES
    assert {"monitor", "host", "orphans", "never_connected", "shared_files"} == CAPABILITIES


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [e for e in entry_points(group="pycrew.launchers") if e.name == "sge"]
    assert ep.value == "pycrew_sge.plugin:plugin" and ep.load() is plugin


def test_another_cell_is_another_client(monkeypatch: pytest.MonkeyPatch) -> None:
    options = SgeOptions()
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    monkeypatch.setenv("SGE_CELL", "default")
    first = plugin.client_key(options)
    assert plugin.client_key(SgeOptions()) == first, "equal options and cell: one client"
    for name, value in (("SGE_CELL", "other"), ("SGE_ROOT", "/opt/sge2"), ("SGE_QMASTER_PORT", "7444")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert plugin.client_key(options) != first, f"{name} names another cluster"

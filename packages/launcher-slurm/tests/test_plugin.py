"""The plugin module without a cluster: registration, entry point, handle checks, a missing client."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from slurm_helpers import launcher_info, make_calls

from pycrew_slurm import SchedulerError, SlurmCLI, SlurmOptions
from pycrew_slurm.plugin import plugin


def options_for(tmp_path: Path, **kw: object) -> SlurmOptions:
    return SlurmOptions(directory=str(tmp_path / "private"), **kw)  # type: ignore[arg-type]


def test_terminate_rejects_handles_that_are_not_job_ids(tmp_path: Path) -> None:
    info = launcher_info(options_for(tmp_path), make_calls("pass", 1))
    with pytest.raises(ValueError, match="123_4"):
        plugin.pycrew_terminate_workers(launcher=info, handles=["--user=root"])


def test_register_declares_a_remote_launcher() -> None:
    got: list[tuple[tuple[object, ...], dict[str, object]]] = []
    plugin.pycrew_register_launchers(register=lambda *a, **k: got.append((a, k)))
    (args, kwargs), = got
    assert args == ("slurm", SlurmOptions)
    assert kwargs["remote"] is True


def test_entry_point_names_the_plugin_module() -> None:
    (ep,) = [e for e in entry_points(group="pycrew.launchers") if e.name == "slurm"]
    assert ep.load() is plugin


def test_missing_slurm_client_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path, array_size_max=5), calls)
    with pytest.raises(SchedulerError, match=r"'(scontrol|sbatch)' not found.*on PATH"):
        plugin.pycrew_launch_workers(launcher=info, calls=calls)


def test_cancel_groups_elements_per_array() -> None:
    cli = SlurmCLI("slurm", SlurmOptions())
    assert cli.cancel_command(["12_3", "12_1", "9_2", "15", "15_4"]) == ["scancel", "15", "9_2", "12_[1,3]"]

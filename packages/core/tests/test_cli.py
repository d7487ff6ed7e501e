"""The ``pycrew`` command, in process (click's CliRunner), on a fake launcher."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from distributions import write_distribution

import pycrew
from pycrew import cli, monitor
from pycrew.doctor import DoctorReport, DoctorStep


@dataclass(frozen=True)
class FakeOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "fakemon"
    zone: str = "a"


class FakeLauncher:
    """A launcher whose monitor lists fixed workers and records terminations."""

    def __init__(self, workers: list[pycrew.WorkerInfo]) -> None:
        self.workers = workers
        self.terminated: list[Any] = []
        self.zones: list[str] = []

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Any) -> None:
        register("fakemon", FakeOptions, summary="lists fixed workers")

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        return [c.instance for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        self.terminated.extend(handles)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        assert isinstance(launcher.options, FakeOptions)
        self.zones.append(launcher.options.zone)
        return [w for w in self.workers if controller_id is None or w.controller_id == controller_id]


def worker(wid: str, controller_id: str, state: str = "RUNNING", reason: str = "", log: str | None = None) -> pycrew.WorkerInfo:
    return pycrew.WorkerInfo(
        id=wid, handle=f"h-{wid}", launcher="fakemon", controller="c", controller_id=controller_id,
        instance=f"i-{wid}", worker=1, state=state, host="node1", started=time.time() - 42, reason=reason, log=log,
    )


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as cwd, no user file, private controller records."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    for var in list(os.environ):
        if var.startswith(("PYCREW_GPU", "PYCREW_DEV", "PYCREW_CLUSTER")):
            monkeypatch.delenv(var)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def fake() -> Iterator[FakeLauncher]:
    plugin = FakeLauncher([worker("w1", "live"), worker("w2", "dead", "PENDING", "Unschedulable", "/logs/w2.log")])
    pycrew.register(plugin, name="fakemon-test")
    monitor.register_controller("live", "c", "fakemon")
    monitor.register_controller("dead", "c", "fakemon")
    monitor.unregister_controller("dead")  # ended: its workers are orphans
    try:
        yield plugin
    finally:
        monitor.unregister_controller("live")
        pycrew.unregister(plugin)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)


# -- launchers --------------------------------------------------------------------------------


def launchers_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distribution: str, entry_points: str,
                   modules: dict[str, str]) -> Any:
    """``pycrew launchers`` run with one more distribution installed (written to ``tmp_path``)."""
    write_distribution(tmp_path, distribution, entry_points, modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    from pycrew import plugins

    plugins.reset_registry()
    try:
        return CliRunner().invoke(cli.cli, ["launchers"])
    finally:
        plugins.reset_registry()


def test_launchers_says_which_plugin_failed_to_load_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On fce425b an observer plugin (group pycrew.plugins) that raised at import gave a raw
    traceback from ``pycrew launchers``; the other commands print ``Error: ...``."""
    result = launchers_with(
        tmp_path, monkeypatch, "broken-observer", "[pycrew.plugins]\nbroken = broken_observer:plugin\n",
        {"broken_observer": "raise ImportError('no module named gpu_driver')\n"},
    )
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    # the launchers are still listed (on a5a6183's parent one broken observer stopped them all: a probe)
    assert "warning: plugin 'broken' (" in result.output and "broken-observer 0.1" in result.output, result.output
    assert "gpu_driver" in result.output and "Traceback" not in result.output, result.output
    assert any(line.startswith("local ") for line in result.output.splitlines()), result.output


def test_launchers_names_the_distribution_of_a_launcher_whose_plugin_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = launchers_with(
        tmp_path, monkeypatch, "broken-launcher", "[pycrew.launchers]\nbrokenl = broken_launcher:plugin\n",
        {"broken_launcher": "raise ImportError('no module named gpu_driver\\nsecond line')\n"},
    )
    assert result.exit_code == 1, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("brokenl ")]
    assert "broken-launcher" in row and "0.1" in row and "error: " in row and "second line" in row, result.output


def test_launchers_lists_installed_launchers_with_distribution_and_version(fake: FakeLauncher) -> None:
    result = run("launchers")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "SUMMARY"]
    local = next(line for line in lines if line.startswith("local "))
    assert local.split()[:3] == ["local", "pycrew-local", "0.1.0"], local
    assert any(line.startswith("fakemon ") and "lists fixed workers" in line for line in lines), result.output


def test_launchers_json_has_one_record_per_launcher(fake: FakeLauncher) -> None:
    rows = json.loads(run("launchers", "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert by_name["local"]["distribution"] == "pycrew-local" and by_name["local"]["error"] is None
    assert by_name["fakemon"]["summary"] == "lists fixed workers"


@pytest.mark.parametrize(("allow", "named"), [("", "PYCREW_PLUGINS=''"), ("locla", "PYCREW_PLUGINS names 'locla', which no installed plugin is (did you mean 'local'?)")])
def test_launchers_names_the_plugins_variable_that_hides_every_launcher(monkeypatch: pytest.MonkeyPatch, allow: str, named: str) -> None:
    """An empty or mistyped PYCREW_PLUGINS hid every launcher, and ``pycrew launchers`` said "no launchers
    installed; install one" with exit code 0, naming neither the variable nor the typo."""
    from pycrew import plugins

    monkeypatch.setenv("PYCREW_PLUGINS", allow)
    plugins.reset_registry()
    try:
        for args in (["launchers"], ["launchers", "--json"]):
            result = CliRunner().invoke(cli.cli, args)
            assert result.exit_code == 1, result.output
            assert result.output.startswith("Error: no launcher loaded: ") and named in result.output, result.output
            assert "leaves out the installed launcher(s)" in result.output and "local" in result.output
    finally:
        plugins.reset_registry()


def test_launchers_warns_of_a_typo_in_the_block_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from pycrew import plugins

    monkeypatch.setenv("PYCREW_BLOCK_PLUGINS", "locla")
    plugins.reset_registry()
    try:
        result = CliRunner().invoke(cli.cli, ["launchers"])
    finally:
        plugins.reset_registry()
    assert result.exit_code == 0, result.output
    assert "warning: PYCREW_BLOCK_PLUGINS names 'locla', which no installed plugin is (did you mean 'local'?)" in result.output
    assert any(line.startswith("local ") for line in result.output.splitlines()), "nothing is blocked"


def test_launchers_warns_of_a_typo_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a real process (no logging configured) the registry's own log line came too, through
    logging's last resort, without a newline before the table (a probe, on 658e03d)."""
    import subprocess
    import sys

    env = {**os.environ, "PYCREW_BLOCK_PLUGINS": "locla"}
    done = subprocess.run([sys.executable, "-m", "pycrew.cli", "launchers"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("names 'locla'") == 1, done.stderr


# -- config show ------------------------------------------------------------------------------

CONFIG = """
[profiles.dev]
launcher = "local"
workers = 2

[profiles.cluster]
launcher = "fakemon"
zone = "b"

[defaults]
seconds_launch = 120
"""


def test_config_show_lists_each_value_with_its_source(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = isolated / "pycrew.toml"
    path.write_text(CONFIG.replace('[profiles.cluster]\nlauncher = "fakemon"\nzone = "b"\n', ""))
    monkeypatch.setenv("PYCREW_DEV_SECONDS_IDLE", "30")
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    assert f"project file: {path}" in result.output
    assert "(not found)" in result.output.splitlines()[0], "the user file is reported missing"
    profile = result.output.split("\ndefaults (")[0]
    rows = {line.split()[0]: line.split()[1:] for line in profile.splitlines() if line.startswith("  ")}
    assert rows["launcher"] == ['"local"', f"{path}:profiles.dev"]
    assert rows["workers"] == ["2", f"{path}:profiles.dev"]
    assert rows["seconds_launch"] == ["120.0", f"{path}:defaults"]
    assert rows["seconds_idle"] == ["30.0", "env", "PYCREW_DEV_SECONDS_IDLE"]


def test_config_show_defaults_adds_the_options_left_at_their_defaults(isolated: Path) -> None:
    (isolated / "pycrew.toml").write_text('[profiles.dev]\nlauncher = "local"\n')
    result = run("config", "show", "dev", "--defaults")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.startswith("  ")}
    assert rows["port"] == ["0", "default"]
    assert rows["log_dir"] == ["none", "default"], "launcher options are listed too"


def test_config_show_json(isolated: Path, fake: FakeLauncher) -> None:
    (isolated / "pycrew.toml").write_text(CONFIG)
    data = json.loads(run("config", "show", "--json").output)
    assert data["files"] == [{"path": str(isolated / "pycrew.toml"), "scope": "project"}]
    assert data["profiles"]["cluster"]["launcher"] == "fakemon"
    assert data["profiles"]["cluster"]["options"]["zone"] == "b"
    assert data["profiles"]["dev"]["sources"]["seconds_launch"].endswith("pycrew.toml:defaults")


def test_json_output_is_strict_json_with_infinity_as_a_string(isolated: Path) -> None:
    """``--json`` printed the bare token Infinity (Python's json default), which is no JSON (RFC 8259): strict
    parsers (JavaScript's JSON.parse, jq) refused the whole output."""
    (isolated / "pycrew.toml").write_text('[profiles.dev]\nlauncher = "local"\nseconds_idle = inf\n')

    def strict(token: str) -> Any:
        raise AssertionError(f"not JSON: {token}")

    data = json.loads(run("config", "show", "--json", "--defaults").output, parse_constant=strict)
    assert data["profiles"]["dev"]["options"]["seconds_idle"] == "inf"
    assert data["profiles"]["dev"]["options"]["seconds_wall"] == "inf", "the defaults' inf too"


def test_config_show_reports_a_bad_profile_and_fails(isolated: Path) -> None:
    (isolated / "pycrew.toml").write_text(CONFIG + '[profiles.bad]\nlauncher = "local"\nworkres = 2\n')
    result = run("config", "show")
    assert result.exit_code == 1
    assert "key 'workres': unknown key" in result.output and "did you mean 'workers'?" in result.output
    assert "profile dev" in result.output, "the good profiles are still shown"


def test_config_show_of_an_unknown_profile_fails(isolated: Path) -> None:
    (isolated / "pycrew.toml").write_text(CONFIG)
    result = run("config", "show", "gpx")
    assert result.exit_code == 1
    assert "Error: no launcher or profile named 'gpx'; launchers: " in result.output
    assert "profiles: cluster, dev. Define [profiles.gpx] in pycrew.toml" in result.output
    result = run("config", "show", "dex")
    assert result.exit_code == 1 and "(did you mean 'dev'?)" in result.output and "pycrew[dex]" not in result.output


def test_config_show_shows_and_checks_the_defaults_and_a_launchers_name(isolated: Path) -> None:
    """On d0119a8 `config show` neither showed nor checked [defaults] (a typo there passed, exit code 0, and broke
    pycrew.controller("local")), and `config show local` said "no profile named 'local'"."""
    path = isolated / "pycrew.toml"
    path.write_text("[defaults]\nseconds_idel = 60\n")
    result = run("config", "show")
    assert result.exit_code == 1
    assert f"  error: {path}:defaults: key 'seconds_idel': unknown key" in result.output
    assert "(did you mean 'seconds_idle'?)" in result.output
    path.write_text("[defaults]\nseconds_idle = 60\n")
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    assert "\ndefaults (" in result.output and f"seconds_idle  60     {path}:defaults" in result.output
    assert json.loads(run("config", "show", "--json").output)["defaults"]["sources"] == {"seconds_idle": f"{path}:defaults"}
    result = run("config", "show", "local")
    assert result.exit_code == 0, result.output
    assert "launcher local (no profile of that name: what pycrew.controller('local') gets)" in result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.startswith("  ")}
    assert rows["seconds_idle"] == ["60.0", f"{path}:defaults"] and rows["launcher"] == ['"local"', "default"]


def test_config_show_lists_the_variables_that_override_nothing(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On d0119a8 PYCREW_LOCAL_WORKERS without a [profiles.local], and PYCREW_GPU_IDLE_SECONDS (no key of that
    name, nor close to one), were ignored without a word outside DEBUG."""
    (isolated / "pycrew.toml").write_text('[profiles.gpu]\nlauncher = "local"\n')
    monkeypatch.setenv("PYCREW_LOCAL_WORKERS", "2")
    monkeypatch.setenv("PYCREW_GPU_IDLE_SECONDS", "5")
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    listed = result.output.split("\nignored environment variables\n")[1]
    assert "  PYCREW_GPU_IDLE_SECONDS: 'idle_seconds' is no option of profile 'gpu' (launcher 'local')" in listed
    assert "  PYCREW_LOCAL_WORKERS: no configuration file defines [profiles.local]" in listed
    assert "PYCREW_LOCAL_WORKERS" in run("config", "show", "local").output
    assert set(json.loads(run("config", "show", "--json").output)["ignored"]) == {"PYCREW_LOCAL_WORKERS"}


def test_config_show_without_files_says_so() -> None:
    result = run("config", "show")
    assert result.exit_code == 0
    assert "project file: none found" in result.output and "no profiles defined" in result.output


def test_config_show_names_a_broken_file(isolated: Path) -> None:
    (isolated / "pycrew.toml").write_text("[profiles.dev\n")
    result = run("config", "show")
    assert result.exit_code == 1
    assert "pycrew.toml: not valid TOML" in result.output


# -- monitor ----------------------------------------------------------------------------------


def test_monitor_list_prints_a_table_with_orphans_marked(fake: FakeLauncher) -> None:
    result = run("monitor", "fakemon", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "CONTROLLER", "INSTANCE", "WORKER", "STATE", "AGE", "ORPHAN", "HOST", "REASON", "LOG"]
    w1, w2 = lines[1].split(), lines[2].split()
    assert w1[5] in ("42s", "43s") and w2[5] in ("42s", "43s"), "the age is shown in seconds"
    assert w1[:5] + w1[6:] == ["w1", "c", "i-w1", "1", "RUNNING", "no", "node1"]
    assert w2[:5] + w2[6:] == ["w2", "c", "i-w2", "1", "PENDING", "yes", "node1", "Unschedulable", "/logs/w2.log"]


def test_monitor_list_json_without_handles(fake: FakeLauncher) -> None:
    rows = json.loads(run("monitor", "fakemon", "list", "--json").output)
    assert [(r["id"], r["orphan"]) for r in rows] == [("w1", False), ("w2", True)]
    assert "handle" not in rows[0] and rows[0]["controller_id"] == "live" and 41 <= rows[0]["age"] < 60


def test_monitor_list_filters_orphans_and_controllers(fake: FakeLauncher) -> None:
    assert [r["id"] for r in json.loads(run("monitor", "fakemon", "list", "--orphans", "--json").output)] == ["w2"]
    assert [r["id"] for r in json.loads(run("monitor", "fakemon", "list", "--controller", "live", "--json").output)] == ["w1"]
    result = run("monitor", "fakemon", "list", "--controller", "nobody")
    assert result.output.strip() == "no pycrew workers on launcher 'fakemon'"


def test_monitor_leaves_workers_of_an_unknown_controller_out_of_orphans(fake: FakeLauncher) -> None:
    """On 33e082d a worker whose controller had no record in this state directory (a controller
    run with another PYCREW_STATE_DIR, still running) was an orphan: ``terminate --orphans`` killed it."""
    fake.workers.append(worker("w3", "elsewhere"))
    rows = json.loads(run("monitor", "fakemon", "list", "--json").output)
    assert [(r["id"], r["orphan"], r["controller_state"]) for r in rows] == [
        ("w1", False, "running"), ("w2", True, "ended"), ("w3", None, "unknown"),
    ]
    result = CliRunner().invoke(cli.cli, ["monitor", "fakemon", "list"])
    assert result.output.splitlines()[3].split()[6] == "unknown", result.output
    assert "ORPHAN unknown: no record of the worker's controller in" in result.stderr, result.stderr
    assert json.loads(run("monitor", "fakemon", "terminate", "--orphans", "--json").output) == {"terminated": ["w2"]}
    assert fake.terminated == ["h-w2"]
    run("monitor", "fakemon", "terminate", "w3")
    assert fake.terminated == ["h-w2", "h-w3"], "an unknown controller's worker is stopped by id"


def test_monitor_lists_and_terminates_an_orphan_that_pends_for_good(fake: FakeLauncher) -> None:
    """A worker that will never start (status failed) but that the platform still holds
    (queued: SLURM PartitionConfig, SGE Eqw) is shown and removed with the live ones; one that
    has ended is not. Before, both were "ended": left out of list and terminate --orphans."""
    stuck = dataclasses.replace(worker("w3", "dead", "PENDING", "pending for good: PartitionConfig"), status="failed", queued=True)
    gone = dataclasses.replace(worker("w4", "dead", "FAILED"), status="failed", exit_code=1)
    fake.workers += [stuck, gone]
    assert stuck.ended and stuck.held and gone.ended and not gone.held
    rows = json.loads(run("monitor", "fakemon", "list", "--json").output)
    assert [(r["id"], r["orphan"], r["queued"]) for r in rows] == [("w1", False, False), ("w2", True, False), ("w3", True, True)]
    assert [r["id"] for r in json.loads(run("monitor", "fakemon", "list", "--ended", "--json").output)] == ["w1", "w2", "w3", "w4"]
    assert json.loads(run("monitor", "fakemon", "terminate", "--orphans", "--json").output) == {"terminated": ["w2", "w3"]}
    assert fake.terminated == ["h-w2", "h-w3"]


def test_monitor_terminate_by_id_terminates_exactly_those(fake: FakeLauncher) -> None:
    result = run("monitor", "fakemon", "terminate", "w2")
    assert result.exit_code == 0, result.output
    assert fake.terminated == ["h-w2"]
    assert result.output.strip() == "terminated 1 worker(s): w2"


def test_monitor_terminate_of_an_unknown_id_terminates_nothing(fake: FakeLauncher) -> None:
    result = run("monitor", "fakemon", "terminate", "w1", "w9")
    assert result.exit_code == 1
    assert "no worker with id 'w9'" in result.output and "listed: 'w1', 'w2'" in result.output
    assert fake.terminated == []


def test_monitor_terminate_all_and_orphans(fake: FakeLauncher) -> None:
    assert json.loads(run("monitor", "fakemon", "terminate", "--orphans", "--json").output) == {"terminated": ["w2"]}
    assert fake.terminated == ["h-w2"]
    run("monitor", "fakemon", "terminate", "--all")
    assert fake.terminated == ["h-w2", "h-w1", "h-w2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["terminate"], "terminate needs worker ids, --all or --orphans"),
        (["terminate", "w1", "--all"], "give worker ids or --all, not both"),
        (["list", "w1"], "list takes no worker ids or --all (those are for terminate); for one controller's workers, give --controller ID"),
        (["stop"], "'stop' is not one of 'list', 'logs', 'terminate'"),
        (["logs"], "logs needs exactly one worker id"),
        (["logs", "w1", "w2"], "logs needs exactly one worker id"),
    ],
)
def test_monitor_usage_errors(fake: FakeLauncher, args: list[str], message: str) -> None:
    result = run("monitor", "fakemon", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert fake.terminated == []


def test_monitor_accepts_a_profile_and_uses_its_launcher_options(isolated: Path, fake: FakeLauncher) -> None:
    (isolated / "pycrew.toml").write_text(CONFIG)
    result = run("monitor", "cluster", "list", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 2
    assert fake.zones == ["b"]


def test_monitor_of_an_unknown_launcher_is_a_clean_error() -> None:
    result = run("monitor", "slrum", "list")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no launcher or profile named 'slrum' (did you mean 'slurm'?)")


def test_monitor_of_a_mistyped_profile_gives_the_hints_pycrew_controller_gives(isolated: Path) -> None:
    """``pycrew monitor gpo list`` (a profile gpu exists) gave no "did you mean 'gpu'?", listed no profiles,
    and advised pip install "pycrew[gpo]", an extra that does not exist."""
    (isolated / "pycrew.toml").write_text('[profiles.gpu]\nlauncher = "local"\n')
    result = run("monitor", "gpo", "list")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no launcher or profile named 'gpo' (did you mean 'gpu'?); launchers: ")
    assert "profiles: gpu. Define [profiles.gpo] in pycrew.toml" in result.output
    assert "pycrew[gpo]" not in result.output and 'pip install "pycrew[NAME]" for NAME in' in result.output


# -- doctor, worker, demo, main ---------------------------------------------------------------


def report(ok: bool) -> DoctorReport:
    steps = (DoctorStep("build", "ok", "built"), DoctorStep("listen", "ok" if ok else "fail", "listening", "" if ok else "a hint"))
    return DoctorReport("dev", "local", "tcp://127.0.0.1:1", "python -m pycrew.worker", steps)


def test_doctor_prints_the_report_passes_options_and_sets_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_doctor(target: str, timeout: float | None, options: dict[str, Any]) -> DoctorReport:
        calls.append((target, timeout, options))
        return report(ok=target == "good")

    monkeypatch.setattr("pycrew.doctor.run_doctor", fake_doctor)
    result = run("doctor", "bad", "--timeout", "5", "-o", "python=/x/python", "-o", "workers=2", "-o", 'env={"A": "1"}')
    assert result.exit_code == 1
    assert calls == [("bad", 5.0, {"python": "/x/python", "workers": 2, "env": {"A": "1"}})]
    assert "FAIL  listen" in result.output and "a hint" in result.output
    result = run("doctor", "good", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["ok"] is True
    assert calls[-1] == ("good", None, {})
    run("doctor")
    assert calls[-1][0] == "local", "the default target is the local launcher"


@pytest.mark.parametrize(("text", "value"), [("inf", math.inf), ("-Inf", -math.inf), ("Infinity", math.inf), ("2.5", 2.5)])
def test_an_option_of_inf_is_the_number(monkeypatch: pytest.MonkeyPatch, text: str, value: float) -> None:
    """On 33e082d ``-o seconds_idle=inf`` was the text 'inf' (JSON has no inf), and the
    controller refused it: "must be float, got 'inf' (str)"."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("pycrew.doctor.run_doctor", lambda target, timeout, options: calls.append(options) or report(ok=True))
    assert run("doctor", "-o", f"seconds_idle={text}", "-o", "partition=infra").exit_code == 0
    assert calls == [{"seconds_idle": value, "partition": "infra"}]


def test_doctor_rejects_an_option_without_a_value() -> None:
    result = run("doctor", "-o", "python")
    assert result.exit_code == 2
    assert "Invalid value for '-o' / '--option': expected KEY=VALUE" in result.output


def test_an_option_value_is_read_as_its_options_type(monkeypatch: pytest.MonkeyPatch, isolated: Path, fake: FakeLauncher) -> None:
    """``-o KEY=VALUE`` read VALUE as JSON whatever the option, so a text option that looks like a number
    could not be given: ``-o log_dir=2024`` failed with "must be str or None, got 2024 (int)"."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("pycrew.doctor.run_doctor", lambda target, timeout, options: calls.append(options) or report(ok=True))
    assert run("doctor", "-o", "log_dir=2024", "-o", "name=123", "-o", "workers_at_start=1", "-o", "tls=none").exit_code == 0
    assert calls == [{"log_dir": "2024", "name": "123", "workers_at_start": 1, "tls": "none"}]
    (isolated / "pycrew.toml").write_text(CONFIG)
    assert run("doctor", "dev", "-o", "log_dir=7").exit_code == 0 and calls[-1] == {"log_dir": "7"}, "a profile's launcher"
    result = run("monitor", "fakemon", "list", "-o", "zone=123")
    assert result.exit_code == 0, result.output
    assert fake.zones == ["123"]
    result = run("monitor", "fakemon", "list", "-o", "seconds_idle=soon")
    assert result.exit_code == 2 and "Invalid value for '-o' / '--option': seconds_idle='soon'" in result.output


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_doctor_refuses_a_timeout_that_is_not_a_positive_number_before_launching(timeout: str) -> None:
    """On fce425b ``--timeout -1`` launched a worker, then failed at the task step."""
    result = run("doctor", "--timeout", timeout)
    assert result.exit_code == 2, result.output
    assert "must be a number of seconds > 0" in result.output and "build" not in result.output


@pytest.mark.parametrize("tasks", ["0", "-5"])
def test_demo_refuses_a_task_count_below_one_before_launching(tasks: str) -> None:
    """On 48a7de2 ``--tasks 0`` launched workers and ended in a ZeroDivisionError
    traceback, and ``--tasks -5`` printed "pi ~= -0.00000 from -100,000 draws"."""
    result = run("demo", "--tasks", tasks)
    assert result.exit_code == 2
    assert f"Invalid value for '--tasks': {tasks} is not in the range x>=1" in result.output


def test_demo_refuses_a_worker_count_below_one_as_a_usage_error() -> None:
    """On d0119a8 ``--workers 0`` reached the controller: exit code 1 and an OptionsError, where ``--tasks 0`` is
    a usage error (2)."""
    result = run("demo", "--workers", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--workers': 0 is not in the range x>=1" in result.output


def test_demo_on_the_sequential_controller_runs(isolated: Path) -> None:
    """On d0119a8 it failed: "the sequential controller takes no option(s) ['seconds_idle']", which the demo
    itself had passed."""
    result = run("demo", "--launcher", "sequential", "--tasks", "2")
    assert result.exit_code == 0, result.output
    assert "pi ~= 3.1" in result.output and "controller 'sequential'" in result.output


def test_worker_with_a_url_it_cannot_dial_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """On d0119a8 ``pycrew worker --url garbage`` printed a traceback ending in ValueError."""
    monkeypatch.setenv("PYCREW_TOKEN", "x")
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "--url", "garbage", "--instance", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: unsupported URL 'garbage': expected tcp://HOST:PORT" in err and "Traceback" not in err, err


@pytest.mark.parametrize(("arguments", "named"), [({"tasks": 0}, "tasks"), ({"draws": -1}, "draws"), ({"tasks": 2.5}, "tasks"), ({"workers": 0}, "workers")])
def test_run_demo_refuses_counts_below_one(arguments: dict[str, Any], named: str) -> None:
    from pycrew.demo import run_demo

    with pytest.raises(pycrew.OptionsError, match=f"demo: {named} must be a whole number >= 1"):
        run_demo(**arguments)


def test_worker_arguments_reach_the_worker_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    monkeypatch.setattr("pycrew.worker.main", fake_main)
    args = ["--url", "tcp://h:1", "--", "--help", "-h", "--unknown=1", "x"]
    assert cli.main(["worker", *args]) == 7
    assert seen == [args]
    result = run("worker", "--help", "--url", "tcp://h:1", "-x")
    assert result.exit_code == 7
    assert seen[-1] == ["--help", "--url", "tcp://h:1", "-x"]


def test_worker_without_a_token_exits_with_the_workers_message(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PYCREW_TOKEN", raising=False)
    assert cli.main(["worker", "--url", "tcp://127.0.0.1:1", "--instance", "x"]) == 2
    assert "PYCREW_TOKEN is not set" in capsys.readouterr().err


def test_main_returns_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "launchers" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert "pycrew, version" in capsys.readouterr().out
    assert cli.main(["nosuchcommand"]) == 2
    assert "No such command 'nosuchcommand'" in capsys.readouterr().err
    assert cli.main(["monitor", "slrum", "list"]) == 1
    assert "Error: no launcher or profile named 'slrum' (did you mean 'slurm'?)" in capsys.readouterr().err


# -- monitor options --------------------------------------------------------------------------


@dataclass(frozen=True)
class NeedsOptions(pycrew.LauncherOptions):
    owner: ClassVar[str] = "needy"
    namespace: str  # no default: the monitor cannot guess it


class NeedyLauncher(FakeLauncher):
    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Any) -> None:
        register("needy", NeedsOptions, summary="needs a namespace")

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        assert isinstance(launcher.options, NeedsOptions)
        self.zones.append(launcher.options.namespace)
        return self.workers


@pytest.fixture
def needy() -> Iterator[NeedyLauncher]:
    ended = pycrew.WorkerInfo(id="w9", handle="h-w9", launcher="needy", status="failed", reason="exit 3", exit_code=3)
    plugin = NeedyLauncher([worker("w1", "live"), ended])
    pycrew.register(plugin, name="needy-test")
    try:
        yield plugin
    finally:
        pycrew.unregister(plugin)


def test_a_monitor_for_options_without_defaults_says_which_and_how_to_pass_them(needy: NeedyLauncher) -> None:
    with pytest.raises(pycrew.OptionsError, match=r"'namespace' have no default.*-o namespace="):
        pycrew.Monitor("needy")
    result = run("monitor", "needy", "list")
    assert result.exit_code != 0 and "-o namespace=" in result.output, result.output


def test_monitor_takes_launcher_options_and_shows_ended_workers_on_request(needy: NeedyLauncher) -> None:
    result = run("monitor", "needy", "list", "-o", "namespace=batch", "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.output)] == ["w1"], "ended workers are hidden by default"
    assert needy.zones == ["batch"]
    rows = json.loads(run("monitor", "needy", "list", "-o", "namespace=batch", "--ended", "--json").output)
    assert {r["id"]: r["status"] for r in rows} == {"w1": "unknown", "w9": "failed"}

"""The generated job script: directives, no secret in it, and the token hand-over (run by bash here)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from slurm_helpers import WHO_AM_I, launcher_info, make_calls

from pycrew import WorkerCall
from pycrew_slurm import SlurmCLI, SlurmOptions, jobtag

PRINT_ENV = WHO_AM_I + (
    "import json; print(json.dumps({'instance': instance, 'token': token, 'names': names,"
    " 'ca': os.environ.get('PYCREW_TLS_CA'), 'extra': os.environ.get('EXTRA'),"
    " 'from_lines': os.environ.get('FROM_LINES')}))"
)


def render(options: SlurmOptions, calls: list[WorkerCall]) -> str:
    cli = SlurmCLI("slurm", options)
    info = launcher_info(options, calls)
    return cli.render_script(info, calls, jobtag.encode(calls))


def test_script_starts_with_directives_in_order(tmp_path: Path) -> None:
    calls = make_calls(PRINT_ENV, 3, controller="my ctl")
    options = SlurmOptions(directory=str(tmp_path), partition="short", memory="2G", seconds_time=600)
    lines = render(options, calls).splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert directives[:3] == ["#SBATCH --job-name=pycrew-my-ctl", "#SBATCH --array=1-3", directives[2]]
    assert directives[2].startswith("#SBATCH --comment=pycrew:1;c=")
    assert directives[3] == f"#SBATCH --output={tmp_path}/logs/%x-%A_%a.log"
    assert directives[4:] == ["#SBATCH --partition=short", "#SBATCH --mem=2G", "#SBATCH --time=0-00:10:00"]
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(not line.startswith("#SBATCH") for line in lines[first_command:]), "directives must precede commands"


def test_log_error_and_quoted_paths() -> None:
    calls = make_calls(PRINT_ENV, 1)
    script = render(SlurmOptions(log_output="/l o g/%A_%a.out", log_error="/dev/null"), calls)
    assert '#SBATCH --output="/l o g/%A_%a.out"' in script
    assert "#SBATCH --error=/dev/null" in script


def test_script_holds_no_secret_and_one_command_for_every_element(tmp_path: Path) -> None:
    calls = make_calls(PRINT_ENV, 3)
    script = render(SlurmOptions(directory=str(tmp_path)), calls)
    assert calls[0].batch_key not in script, "the batch key leaked into the job script"
    for call in calls:
        assert call.token not in script, "a token leaked into the job script"
    execs = [line for line in script.splitlines() if line.startswith("exec ")]
    assert len(execs) == 1 and "--instance-prefix" in execs[0] and "--index-env SLURM_ARRAY_TASK_ID" in execs[0], execs


def test_a_call_without_batch_key_runs_its_own_instance(tmp_path: Path) -> None:
    (call,) = make_calls(PRINT_ENV, 1, batch=False)
    script = render(SlurmOptions(directory=str(tmp_path)), [call])
    assert call.token not in script and f"--instance {call.instance}" in script
    seen = run_element(script, 1, [call], tmp_path)
    assert (seen["instance"], seen["token"]) == (call.instance, call.token)


def run_element(
    script: str, index: int, calls: list[WorkerCall], tmp_path: Path, extra_env: Mapping[str, str] = {}
) -> dict[str, Any]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    cli = SlurmCLI("slurm", SlurmOptions())
    env = {**cli.submission_environment(calls), "SLURM_ARRAY_TASK_ID": str(index), **extra_env}
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_each_element_finds_its_instance_and_derives_its_own_token(tmp_path: Path) -> None:
    calls = make_calls(PRINT_ENV, 3, env={"PYCREW_TLS_CA": "-----BEGIN X-----\n'quoted' $HOME\n"})
    script = render(SlurmOptions(directory=str(tmp_path)), calls)
    for index in (1, 3):
        seen = run_element(script, index, calls, tmp_path)
        assert seen["instance"] == calls[index - 1].instance
        assert seen["token"] == calls[index - 1].token, "the element derived another token than core authorized"
        assert seen["names"] == "PYCREW_TOKEN", "only the batch key crosses over"
        assert seen["ca"] == "-----BEGIN X-----\n'quoted' $HOME\n", "env values must survive shell quoting"


def test_second_array_of_a_split_batch_starts_at_its_own_batch_index(tmp_path: Path) -> None:
    calls = make_calls(PRINT_ENV, 5)
    chunks = jobtag.split_calls(calls, array_max=2, tag_max=1000)
    assert [len(c) for c in chunks] == [2, 2, 1]
    script = render(SlurmOptions(directory=str(tmp_path)), chunks[1])
    assert "#SBATCH --array=1-2" in script
    for index, call in ((1, calls[2]), (2, calls[3])):
        seen = run_element(script, index, chunks[1], tmp_path)
        assert (seen["instance"], seen["token"]) == (call.instance, call.token), f"element {index} of the second array"


def test_script_lines_run_without_the_secret_and_python_option(tmp_path: Path) -> None:
    calls = make_calls(PRINT_ENV, 2, env={"EXTRA": "shared value"})
    lines = ('export FROM_LINES="${PYCREW_TOKEN:-none}"',)
    options = SlurmOptions(directory=str(tmp_path), python=sys.executable, script_lines=lines)
    script = render(options, calls)
    assert script.index(lines[0]) < script.index("exec ")
    assert f"exec {sys.executable} " in script
    seen = run_element(script, 2, calls, tmp_path)
    assert seen["from_lines"] == "none", "script_lines must not see the secret"
    assert seen["extra"] == "shared value" and seen["token"] == calls[1].token


def test_stale_tokens_of_our_own_environment_are_not_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_TOKEN", "mine")
    monkeypatch.setenv("PYCREW_TOKEN_9", "old")
    calls = make_calls(PRINT_ENV, 2)
    env = SlurmCLI("slurm", SlurmOptions()).submission_environment(calls)
    assert "PYCREW_TOKEN_9" not in env
    assert env["PYCREW_TOKEN"] == calls[0].batch_key


def test_private_directory_is_0700_and_scripts_0600(tmp_path: Path) -> None:
    directory = tmp_path / "private"
    cli = SlurmCLI("slurm", SlurmOptions(directory=str(directory)))
    path = cli.write_script("#!/bin/bash\n")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


WHERE = WHO_AM_I + (
    "import json, sys; print(json.dumps({'cwd': os.getcwd(), 'path': os.environ.get('PYCREW_SYS_PATH'),"
    " 'safe_path': sys.flags.safe_path}))"
)


def run_raw(script: str, calls: list[WorkerCall], tmp_path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    env = {**SlurmCLI("slurm", SlurmOptions()).submission_environment(calls), "SLURM_ARRAY_TASK_ID": "1"}
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, cwd=cwd, timeout=30, check=False)


def test_workers_start_in_the_controllers_directory_with_its_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script enters the directory the controller ran in when it submitted, wherever the
    scheduler starts the job, and hands the worker the controller's sys.path (python -P)."""
    controller_dir, job_dir = tmp_path / "controller", tmp_path / "job"
    controller_dir.mkdir()
    job_dir.mkdir()
    monkeypatch.chdir(controller_dir)
    monkeypatch.setattr(sys, "path", ["", "relative/lib", "/opt/site"])
    calls = make_calls(WHERE, 1)
    script = render(SlurmOptions(directory=str(tmp_path)), calls)
    monkeypatch.chdir(job_dir)  # the controller moves on; its workers keep the directory it submitted from
    proc = run_raw(script, calls, tmp_path, cwd=job_dir)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["cwd"] == str(controller_dir)
    assert json.loads(seen["path"]) == [str(controller_dir), str(controller_dir / "relative/lib"), "/opt/site"]
    assert seen["safe_path"] is True, "a worker given the path starts with python -P"


def test_a_node_without_the_controllers_directory_runs_the_worker_where_it_is_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, job_dir = tmp_path / "gone", tmp_path / "job"
    gone.mkdir()
    job_dir.mkdir()
    monkeypatch.chdir(gone)
    calls = make_calls(WHERE, 1)
    script = render(SlurmOptions(directory=str(tmp_path)), calls)
    monkeypatch.chdir(tmp_path)
    gone.rmdir()
    proc = run_raw(script, calls, tmp_path, cwd=job_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cwd"] == str(job_dir)
    assert f"the controller's working directory {gone} is not on this host; the worker runs in {job_dir}" in proc.stderr


def test_the_cwd_option_names_the_directory_and_a_missing_one_fails_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, job_dir = tmp_path / "data", tmp_path / "job"
    data.mkdir()
    job_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    calls = make_calls(WHERE, 1)
    script = render(SlurmOptions(directory=str(tmp_path), cwd="data"), calls)  # relative: to the controller's
    proc = run_raw(script, calls, tmp_path, cwd=job_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cwd"] == str(data)
    script = render(SlurmOptions(directory=str(tmp_path), cwd=str(tmp_path / "missing")), calls)
    proc = run_raw(script, calls, tmp_path, cwd=job_dir)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"pycrew: this worker cannot enter its working directory {tmp_path / 'missing'} (the cwd option)" in proc.stderr


@pytest.mark.parametrize(
    ("options", "shared"),
    [({}, True), ({"python": sys.executable}, True), ({"python": "/other/python3"}, False), ({"inherit_sys_path": False}, False)],
)
def test_only_workers_of_the_controllers_interpreter_get_its_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], shared: bool
) -> None:
    """Another interpreter's standard library and site-packages must not come after the
    controller's; a PYCREW_SYS_PATH the controller inherited never reaches the job."""
    monkeypatch.setenv("PYCREW_SYS_PATH", '["/inherited"]')
    calls = make_calls(WHERE, 1)
    script = render(SlurmOptions(directory=str(tmp_path), **options), calls)
    assert ("export PYCREW_SYS_PATH=" in script) is shared
    [command] = [line for line in script.splitlines() if line.startswith("exec ")]
    assert (" -P -c " in command) is shared
    assert "PYCREW_SYS_PATH" not in SlurmCLI("slurm", SlurmOptions()).submission_environment(calls)

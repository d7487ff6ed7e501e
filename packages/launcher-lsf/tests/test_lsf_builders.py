"""LsfCLI's builders: the job script, bsub's command line and stdin, bkill and bjobs commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pycrew import WorkerCall
from pycrew.scheduler import SchedulerError, jobtag
from pycrew.testing.scheduler_calls import WHO_AM_I, launcher_info, make_calls
from pycrew_lsf import LsfCLI, LsfOptions
from pycrew_lsf.lsf import index_list, memory_unit_of_site

DATA = Path(__file__).parent / "data"
PRINT_ME = WHO_AM_I + "import json; print(json.dumps({'instance': instance, 'token': token, 'names': names}))"


def calls_of(n: int, **kwargs: Any) -> list[WorkerCall]:
    return make_calls(PRINT_ME, n, launcher="lsf", **kwargs)


def render(options: LsfOptions, calls: list[WorkerCall]) -> str:
    return LsfCLI("lsf", options).render_script(launcher_info(options, calls), calls, jobtag.encode(calls))


def test_script_starts_with_name_array_tag_logs_then_resources(tmp_path: Path) -> None:
    calls = calls_of(3, controller="my ctl")
    options = LsfOptions(directory=str(tmp_path), queue="short", memory="2G", memory_unit="MB", seconds_walltime=600)
    lines = render(options, calls).splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#BSUB")]
    assert directives == [
        '#BSUB -J "pycrew-my-ctl[1-3]"',
        f'#BSUB -Jd "{jobtag.encode(calls)}"',
        f'#BSUB -o "{tmp_path}/logs/%J_%I.log"',
        "#BSUB -q short",
        '#BSUB -R "rusage[mem=2048]"',
        "#BSUB -M 2048",
        "#BSUB -W 0:10",
    ]
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(not line.startswith("#BSUB") for line in lines[first_command:]), "directives must precede commands"
    assert (tmp_path / "logs").is_dir()


def test_one_worker_is_an_array_of_one_and_log_error_gets_its_own_file(tmp_path: Path) -> None:
    script = render(LsfOptions(directory=str(tmp_path), log_output="/o u t/%J.%I", log_error="/dev/null"), calls_of(1))
    assert '#BSUB -J "pycrew-test-controller[1]"' in script
    assert '#BSUB -o "/o u t/%J.%I"' in script and '#BSUB -e "/dev/null"' in script


def test_memory_unit_comes_from_lsf_conf_when_not_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lsf.conf").write_text((DATA / "lsf_conf.txt").read_text())
    monkeypatch.setenv("LSF_ENVDIR", str(tmp_path))
    script = render(LsfOptions(directory=str(tmp_path), memory="1G"), calls_of(1))
    assert '#BSUB -R "rusage[mem=1024]"' in script and "#BSUB -M 1024" in script


def test_memory_unit_is_lsfs_default_kb_without_lsf_conf(tmp_path: Path) -> None:
    assert memory_unit_of_site({"LSF_ENVDIR": str(tmp_path / "nowhere")}) == "KB"
    (tmp_path / "lsf.conf").write_text("LSF_UNIT_FOR_LIMITS=GB\n")
    assert memory_unit_of_site({"LSF_ENVDIR": str(tmp_path)}) == "GB"


def test_script_holds_no_secret_and_one_command_for_every_element(tmp_path: Path) -> None:
    calls = calls_of(3)
    script = render(LsfOptions(directory=str(tmp_path)), calls)
    assert calls[0].batch_key not in script, "the batch key leaked into the job script"
    assert all(call.token not in script for call in calls), "a token leaked into the job script"
    execs = [line for line in script.splitlines() if line.startswith("exec ")]
    assert len(execs) == 1 and "--index-env LSB_JOBINDEX" in execs[0], execs


@pytest.mark.parametrize("index", [1, 3])
def test_each_element_finds_its_instance_and_token_from_lsb_jobindex(tmp_path: Path, index: int) -> None:
    calls = calls_of(3)
    cli = LsfCLI("lsf", LsfOptions(directory=str(tmp_path)))
    script = cli.render_script(launcher_info(cli.options, calls), calls, jobtag.encode(calls))
    env = {**cli.submission_environment(calls), "LSB_JOBINDEX": str(index)}
    proc = subprocess.run(["bash"], input=script, capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert (seen["instance"], seen["token"]) == (calls[index - 1].instance, calls[index - 1].token)
    assert seen["names"] == "PYCREW_TOKEN", "only the batch key's variable reaches the worker command"


def test_submit_reads_the_script_on_stdin_and_passes_only_the_secret_without_export(tmp_path: Path) -> None:
    calls = calls_of(2)
    cli = LsfCLI("lsf", LsfOptions(bin_directory="/opt/lsf/bin", submit_args=("-H",)))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    assert cli.submit_command(script, calls, "tag") == ["/opt/lsf/bin/bsub", "-H"]
    assert cli.submit_input(script) == "#!/bin/bash\ntrue\n"
    private = LsfCLI("lsf", LsfOptions(export_environment=False))
    assert private.submit_command(script, calls, "tag") == ["bsub", "-env", "PYCREW_TOKEN"]


def test_element_handles_are_job_id_and_index() -> None:
    assert LsfCLI("lsf", LsfOptions()).element_handles("77", 3) == ["77[1]", "77[2]", "77[3]"]


def test_bkill_gets_one_argument_per_job_with_index_ranges() -> None:
    cli = LsfCLI("lsf", LsfOptions())
    handles = ["13[5]", "12", "13[1]", "13[2]", "13[3]", "14[9]", "12[4]"]
    assert cli.cancel_command(handles) == ["bkill", "12", "13[1-3,5]", "14[9]"]


@pytest.mark.parametrize("handle", ["-u all", "12_3", "12[x]", 12, "12[1] 13", "", "0x1"])
def test_bkill_refuses_what_is_no_handle(handle: Any) -> None:
    with pytest.raises(ValueError, match="lsf handles must look like"):
        LsfCLI("lsf", LsfOptions()).cancel_command([handle])


@pytest.mark.parametrize(
    ("line", "gone"),
    [
        ("Job <12>: Job has already finished", True),
        ("Job <12[3]>: No matching job found", True),
        ("Job <12> is being terminated", True),
        ("Job <12> is not found", True),
        ("Job <12>: Permission denied. Job not killed", False),
        ("LSF is processing your request. Please wait ...", False),
    ],
)
def test_bkill_lines_that_only_say_the_job_is_gone(line: str, gone: bool) -> None:
    assert LsfCLI("lsf", LsfOptions()).is_gone(line) is gone


def test_bjobs_lists_this_users_jobs_finished_ones_included_as_json() -> None:
    argv = LsfCLI("lsf", LsfOptions(bin_directory="/b")).list_command()
    assert argv[0] == "/b/bjobs" and argv[1] == "-o" and "-json" in argv and "-a" in argv
    assert argv[argv.index("-u") + 1] not in ("", "all")
    assert argv[2].split() == [
        "jobid", "jobindex", "stat", "job_name", "job_description", "exec_host", "submit_time",
        "exit_code", "exit_reason", "pend_reason", "output_file",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "LSF is processing your request. Please wait ...",
        "Cannot connect to LSF. Please wait ...",
        "LSF is down. Please wait ...",
        "batch system daemon not responding ... still trying",
        "LSF daemon (LIM) not responding ... still trying",
        "Failed in an LSF library call: Slave LIM configuration is not ready yet. Job not submitted.",
        "Batch system concurrent job query limit exceeded. LSF is retrying. Please wait...",
    ],
)
def test_lsfs_documented_retry_messages_are_transient(text: str) -> None:
    assert LsfCLI("lsf", LsfOptions()).is_transient(255, text)


@pytest.mark.parametrize(
    "text",
    [
        "queue <nope>: No such queue. Job not submitted.",
        "Bad resource requirement syntax. Job not submitted.",
        "LSF is processing your request. Please wait ...\nnope: No such queue. Job not submitted.",
        "LSF is processing your request. Please wait ...\nError in rusage section. Job not submitted.",
    ],
)
def test_bad_requests_are_not_transient(text: str) -> None:
    assert not LsfCLI("lsf", LsfOptions()).is_transient(255, text)


def test_index_list() -> None:
    assert index_list([5, 1, 2, 3, 3, 9, 10]) == "1-3,5,9-10"
    assert index_list([4]) == "4"


def test_the_plugin_is_the_entry_point() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pycrew.launchers") if e.name == "lsf"]
    assert entry.value == "pycrew_lsf.plugin:plugin"
    assert entry.load().options_type is LsfOptions
    assert {"monitor", "host", "orphans", "never_connected", "shared_files"} == sys.modules["pycrew_lsf.plugin"].CAPABILITIES


def stand_in_bjobs(tmp_path: Path, stdout: str, stderr: str, status: int) -> LsfCLI:
    """An LsfCLI whose ``bjobs`` is a script printing what an LSF version prints, with its exit status."""
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    script = bin_directory / "bjobs"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {status}\n")
    script.chmod(0o755)
    return LsfCLI("lsf", LsfOptions(bin_directory=str(bin_directory), command_attempts=1))


@pytest.mark.parametrize(
    ("stdout", "stderr", "status"),
    [("", "No job found", 255), ("", "No unfinished job found", 0), ("No job found", "", 0)],
)
def test_bjobs_saying_there_is_no_job_is_an_empty_listing(tmp_path: Path, stdout: str, stderr: str, status: int) -> None:
    assert stand_in_bjobs(tmp_path, stdout, stderr, status).list_jobs() == []


def test_bjobs_failing_otherwise_raises_with_its_message(tmp_path: Path) -> None:
    cli = stand_in_bjobs(tmp_path, "", "bjobs: job_description: Illegal field name in -o format", 255)
    with pytest.raises(SchedulerError, match="Illegal field name"):
        cli.list_jobs()

"""The LSF emulator, driven through its shims as a user would."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pycrew_emulators.batch import BatchJob
from pycrew_emulators.lsf import LsfEmulator

GATED = "#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nexit {code}\n"
FIELDS = "jobid jobindex stat job_name description exec_host submit_time exit_code output_file error_file"


def submitted_id(result: subprocess.CompletedProcess[str]) -> str:
    match = re.fullmatch(r"Job <(\d+)> is submitted to (default )?queue <\w+>\.\n", result.stdout)
    assert match is not None and result.returncode == 0, (result.stdout, result.stderr)
    return match.group(1)


def bjobs_json(emu: LsfEmulator, *args: str, fields: str = FIELDS) -> list[dict[str, str]]:
    result = emu.run("bjobs", "-o", fields, "-json", *args)
    document = json.loads(result.stdout)
    assert document["COMMAND"] == "bjobs" and document["JOBS"] == len(document["RECORDS"]), document
    records: list[dict[str, str]] = document["RECORDS"]
    return records


def one(value: BatchJob | list[BatchJob]) -> BatchJob:
    assert isinstance(value, BatchJob), value
    return value


def test_array_from_stdin_with_bsub_directives_runs_each_index_and_appends_the_report(
    lsf_emulator: LsfEmulator, tmp_path: Path
) -> None:
    emu = lsf_emulator
    script = (
        "#!/bin/bash\n"
        '#BSUB -J "work[1-3]"\n'
        "#BSUB -o out.%J.%I\n"
        "#BSUB -Jd pycrew-tag\n"
        "echo id=$LSB_JOBID index=$LSB_JOBINDEX name=$LSB_JOBNAME pwd=$(pwd)\n"
        "echo oops >&2\n"
    )

    job_id = submitted_id(emu.run("bsub", stdin=script, cwd=tmp_path))

    elements = emu.wait_for_state(job_id, "finished")
    assert isinstance(elements, list) and [e.job_id for e in elements] == [f"{job_id}[{i}]" for i in (1, 2, 3)]
    for element in elements:
        text = (tmp_path / f"out.{job_id}.{element.index}").read_text()
        assert text.startswith(f"id={job_id} index={element.index} name=work[{element.index}] pwd={tmp_path}\noops\n")
        assert f"Subject: Job {job_id}[{element.index}]: <work[{element.index}]> in cluster" in text
        assert "\nSuccessfully completed.\n" in text and text.rstrip().endswith("above this job summary.")
    records = bjobs_json(emu, "-a", job_id)
    assert [(r["JOBID"], r["JOBINDEX"], r["STAT"], r["JOB_NAME"]) for r in records] == [
        (job_id, str(i), "DONE", f"work[{i}]") for i in (1, 2, 3)
    ]
    assert {r["JOB_DESCRIPTION"] for r in records} == {"pycrew-tag"}


def test_bsub_names_the_queue_it_used_and_refuses_unknown_queues(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator

    default = emu.run("bsub", "true")
    chosen = emu.run("bsub", "-q", "short", "true")
    unknown = emu.run("bsub", "-q", "nosuch", "true")

    assert re.fullmatch(r"Job <\d+> is submitted to default queue <normal>\.\n", default.stdout)
    assert re.fullmatch(r"Job <\d+> is submitted to queue <short>\.\n", chosen.stdout)
    assert (unknown.returncode, unknown.stderr) == (255, "nosuch: No such queue. Job not submitted.\n")


def test_bjobs_json_shape_follows_the_job_from_pend_to_run_to_exit(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    emu = lsf_emulator
    gate = tmp_path / "gate"
    emu.hold_jobs()
    job_id = submitted_id(
        emu.run("bsub", "-J", "gated", "-n", "2", "-o", f"{tmp_path}/o.%J", stdin=GATED.format(gate=gate, code=3))
    )

    (pending,) = bjobs_json(emu, job_id)
    assert pending["STAT"] == "PEND" and pending["EXEC_HOST"] == "" and pending["JOBINDEX"] == "0"
    assert all(isinstance(v, str) for v in pending.values()), "every value is a string"
    assert list(pending) == ["JOBID", "JOBINDEX", "STAT", "JOB_NAME", "JOB_DESCRIPTION", "EXEC_HOST",
                             "SUBMIT_TIME", "EXIT_CODE", "OUTPUT_FILE", "ERROR_FILE"]  # fmt: skip
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d", pending["SUBMIT_TIME"])
    emu.release_jobs()
    emu.wait_for_state(job_id, "running")
    (running,) = bjobs_json(emu, job_id)
    assert running["STAT"] == "RUN" and running["EXEC_HOST"] == f"{emu.hostname}:{emu.hostname}"
    gate.touch()
    emu.wait_for_state(job_id, "finished")
    assert bjobs_json(emu, job_id) == [], "finished jobs need -a"
    (finished,) = bjobs_json(emu, "-a", job_id, fields="stat exit_code output_file finish_time")
    assert (finished["STAT"], finished["EXIT_CODE"]) == ("EXIT", "3")
    assert finished["FINISH_TIME"].endswith(" L")
    raw = emu.run("bjobs", "-o", "output_file", "-json", "-a", job_id).stdout
    escaped = (str(tmp_path) + f"/o.{job_id}").replace("/", "\\/")
    assert f'"OUTPUT_FILE":"{escaped}"' in raw, "slashes are escaped"


def test_bjobs_default_table_and_delimited_custom_output(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    emu = lsf_emulator
    emu.hold_jobs()
    job_id = submitted_id(emu.run("bsub", "-J", "a_rather_long_job_name", "true", cwd=tmp_path))

    table = emu.run("bjobs").stdout.splitlines()
    delimited = emu.run("bjobs", "-noheader", "-o", "jobid stat exec_host delimiter='^'").stdout

    assert table[0].split() == ["JOBID", "USER", "STAT", "QUEUE", "FROM_HOST", "EXEC_HOST", "JOB_NAME", "SUBMIT_TIME"]
    assert table[1].split()[:7] == [job_id, table[1].split()[1], "PEND", "normal", emu.hostname, "-", "*_job_name"]
    assert delimited == f"{job_id}^PEND^-\n", "empty values show as '-'"


def test_bjobs_reports_unknown_jobs_and_an_empty_listing(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator

    empty = emu.run("bjobs")
    unknown = emu.run("bjobs", "4242")
    unknown_json = emu.run("bjobs", "-o", "jobid stat", "-json", "4242")

    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "No unfinished job found\n")
    assert (unknown.returncode, unknown.stderr) == (255, "Job <4242> is not found\n")
    assert unknown_json.returncode == 255
    assert json.loads(unknown_json.stdout)["RECORDS"] == [{"ERROR": "Job <4242> is not found"}]


def test_bkill_of_a_running_job_terminates_it_with_sigint_first(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    emu = lsf_emulator
    job_id = submitted_id(emu.run("bsub", "sleep 30", cwd=tmp_path))
    emu.wait_for_state(job_id, "running")

    result = emu.run("bkill", job_id)

    assert (result.returncode, result.stdout, result.stderr) == (0, f"Job <{job_id}> is being terminated\n", "")
    job = one(emu.wait_for_state(job_id, "finished", timeout=5))
    assert job.native_state == "EXIT" and job.exit_status == 128 + 2
    (record,) = bjobs_json(emu, "-a", job_id, fields="stat exit_code exit_reason")
    assert record == {"STAT": "EXIT", "EXIT_CODE": "130", "EXIT_REASON": "TERM_OWNER: job killed by owner"}


def test_bkill_escalates_int_term_kill_for_a_job_that_ignores_them(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    emu = lsf_emulator
    emu.kill_grace_seconds = 0.2
    job_id = submitted_id(emu.run("bsub", stdin="trap '' INT TERM\nsleep 30\n", cwd=tmp_path))
    emu.wait_for_state(job_id, "running")

    emu.run("bkill", job_id)

    assert one(emu.wait_for_state(job_id, "finished", timeout=5)).exit_status == 128 + 9


def test_bkill_of_pending_elements_and_index_lists(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    emu = lsf_emulator
    gate = tmp_path / "gate"
    emu.slots = 2
    job_id = submitted_id(emu.run("bsub", "-J", "w[1-5]", stdin=GATED.format(gate=gate, code=0), cwd=tmp_path))
    emu.wait_for_state(f"{job_id}[2]", "running")

    result = emu.run("bkill", f"{job_id}[1-3,5]")

    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"Job <{job_id}[{i}]> is being terminated" for i in (1, 2, 3, 5)]
    emu.wait_for_state(f"{job_id}[5]", "finished")
    states = {j.index: (j.native_state, j.pid is None) for j in emu.jobs()}
    assert states[3] == ("EXIT", True) and states[5] == ("EXIT", True), "pending elements end without running"
    gate.touch()
    emu.wait_for_state(job_id, "finished", timeout=5)
    again = emu.run("bkill", f"{job_id}[1-4]")
    assert (again.returncode, again.stderr) == (255, f"Job <{job_id}[1-4:1]>: Job has already finished\n")


def test_bkill_of_finished_and_unknown_jobs(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator
    job_id = submitted_id(emu.run("bsub", "true"))
    emu.wait_for_state(job_id, "finished")

    finished = emu.run("bkill", job_id)
    unknown = emu.run("bkill", "4242")

    assert (finished.returncode, finished.stderr) == (255, f"Job <{job_id}>: Job has already finished\n")
    assert (unknown.returncode, unknown.stderr) == (255, "Job <4242>: No matching job found\n")


def test_transient_failures_lost_replies_and_busy_answers(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator
    emu.fail_next("bsub")
    emu.lose_reply_next("bsub")
    emu.delay_next("bjobs", seconds=0.2)

    failed = emu.run("bsub", "true")
    lost = emu.run("bsub", "-J", "lost", "true")
    busy = emu.run("bjobs", "-a")

    assert failed.returncode == 255 and failed.stderr.startswith("Failed in an LSF library call:")
    assert failed.stderr.endswith("Job not submitted.\n")
    assert lost.returncode == 255 and lost.stdout == ""
    (job,) = emu.jobs()
    assert job.name == "lost", "the lost reply's submit happened"
    assert busy.returncode == 0 and busy.stderr.startswith("LSF is processing your request. Please wait ...\n")
    assert busy.stdout.splitlines()[1].startswith(job.job_id)


def test_env_none_all_and_explicit_variables(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "FROM_CALLER": "yes"}
    default = submitted_id(emu.run("bsub", "true", env=env))
    none = submitted_id(emu.run("bsub", "-env", "none, EXTRA=1", "true", env=env))

    default_env = one(emu.wait_for_state(default, "finished")).environment
    none_env = one(emu.wait_for_state(none, "finished")).environment

    assert default_env["FROM_CALLER"] == "yes" and default_env["PATH"] == "/usr/bin:/bin"
    assert "FROM_CALLER" not in none_env and none_env["EXTRA"] == "1"
    assert none_env["LSB_JOBID"] == none and none_env["LSB_JOBINDEX"] == "0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-R", "rusage[mem=lots]"], "Error in rusage section. Job not submitted.\n"),
        (["-J", "w[0-3]"], "Bad job name. Job not submitted.\n"),
        (["-W", "soon"], "soon: Bad RUNLIMIT specification. Job not submitted.\n"),
        (["-H"], "bsub: -H (hold) is not supported by the emulator: it has no bresume\n"),
    ],
)
def test_bad_bsub_options_are_refused(lsf_emulator: LsfEmulator, args: list[str], message: str) -> None:
    result = lsf_emulator.run("bsub", *args, "true")

    assert (result.returncode, result.stdout, result.stderr) == (255, "", message)
    assert lsf_emulator.jobs() == []


@pytest.mark.parametrize("direct", [False, True])
def test_output_is_copied_at_the_end_unless_lsb_stdout_direct(tmp_path: Path, direct: bool) -> None:
    with LsfEmulator(stdout_direct=direct) as emu:
        gate = tmp_path / "gate"
        out = tmp_path / "job.out"
        job_id = submitted_id(
            emu.run("bsub", "-o", str(out), stdin=f"echo started\nwhile [ ! -e {gate} ]; do sleep 0.02; done\n")
        )
        emu.wait_for_state(job_id, "running")

        if direct:
            assert emu.engine.wait_until(lambda: out.exists() and out.read_text() == "started\n", 5)
        else:
            assert not out.exists(), "LSF's default: output reaches -o when the job ends"
        gate.touch()
        emu.wait_for_state(job_id, "finished")
        text = out.read_text()
        assert text.startswith("started\n") and "Successfully completed." in text


def test_bparams_shows_the_array_limit_bsub_enforces(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator
    assert "    MAX_JOB_ARRAY_SIZE = 1000\n" in emu.run("bparams", "-a").stdout
    emu.max_array_size = 5

    refused = emu.run("bsub", "-J", "w[1-6]", "true")

    assert (refused.returncode, refused.stderr) == (255, "Job array index too large. Job not submitted.\n")
    assert "    MAX_JOB_ARRAY_SIZE = 5\n" in emu.run("bparams", "-a").stdout
    assert emu.run("bparams").stdout.startswith("Default Queues:  normal\n")


def test_bjobs_u_filters_by_user(lsf_emulator: LsfEmulator) -> None:
    emu = lsf_emulator
    emu.hold_jobs()
    mine = submitted_id(emu.run("bsub", "true", env={"USER": "alice", "PATH": "/usr/bin:/bin"}))
    submitted_id(emu.run("bsub", "true", env={"USER": "bob", "PATH": "/usr/bin:/bin"}))

    alice = bjobs_json(emu, "-u", "alice", fields="jobid user")
    everyone = bjobs_json(emu, "-u", "all", fields="jobid user")

    assert alice == [{"JOBID": mine, "USER": "alice"}]
    assert [r["USER"] for r in everyone] == ["alice", "bob"]

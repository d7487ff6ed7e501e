"""LSF's output parsers on canned outputs in the documented shapes (tests/data, see its README)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pycrew.scheduler import SchedulerError
from pycrew_lsf import parsing

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(("name", "job_id"), [("bsub_queue.txt", "1234"), ("bsub_default_queue.txt", "77")])
def test_submit_reply_gives_the_job_id(name: str, job_id: str) -> None:
    assert parsing.parse_submit(read(name)) == job_id


@pytest.mark.parametrize(
    "stdout",
    ["", "Job <fuzz> is submitted to queue <q>.", "Job <12> is subtted to queue <q>.", "Request aborted by esub. Job not submitted."],
)
def test_submit_reply_without_a_job_id_raises(stdout: str) -> None:
    with pytest.raises(SchedulerError, match="bsub printed no 'Job <id> is submitted"):
        parsing.parse_submit(stdout)


def test_bjobs_json_gives_one_record_per_array_element_with_normalised_status() -> None:
    now = datetime(2025, 3, 10, 12, 0).timestamp()
    records = parsing.parse_bjobs_json(read("bjobs_array.json"), now=now)
    assert [r.id for r in records] == [f"4711[{i}]" for i in range(1, 6)], "the plain job and the ERROR record are no elements"
    assert [r.status for r in records] == ["pending", "running", "done", "cancelled", "failed"]
    assert [r.state for r in records] == ["PEND", "RUN", "DONE", "EXIT", "EXIT"]
    assert [r.exit_code for r in records] == [None, None, 0, 130, 127]
    assert {r.array_id for r in records} == {"4711"} and [r.index for r in records] == [1, 2, 3, 4, 5]
    assert [r.host for r in records] == [None, "node07", "node08", "node09", "node09"]
    assert records[0].reason == "New job is waiting for scheduling", "the pending reason, without LSF's trailing ';'"
    assert records[3].reason == "TERM_OWNER: job killed by owner; killed by signal 2 (SIGINT)", "exit code 130: 128 + SIGINT"
    assert records[4].reason == "", "exit code 127 is the job's own (< 128): no signal"
    assert records[0].name == "pycrew-fit[1]" and records[0].tag == "pycrew:1;c=ab12;n=fit;p=9f3e-;o=0;w=1-5"
    assert records[0].log == "/home/ana/.pycrew/lsf/logs/4711_1.log", "%J and %I expanded, \\/ unescaped"
    assert records[3].log is None and records[4].log is None, "'-' and '' are no file"
    assert records[0].submitted == datetime(2025, 3, 3, 9, 15).timestamp()
    assert records[4].submitted == datetime(2025, 3, 3, 9, 16).timestamp(), "a trailing one-letter flag is ignored"


def test_bjobs_json_with_index_in_jobid_and_year() -> None:
    (record,) = parsing.parse_bjobs_json(read("bjobs_display_enh.json"))
    assert (record.id, record.array_id, record.index) == ("123[4]", "123", 4)
    assert (record.status, record.host, record.log) == ("running", "gpu02", "/scratch/logs/out.123.4")
    assert record.submitted == datetime(2024, 12, 31, 23, 59).timestamp()


@pytest.mark.parametrize(
    "stdout", [read("bjobs_empty.json"), "", "No job found\n", "No unfinished job found", "No matching job found"]
)
def test_bjobs_without_jobs_gives_an_empty_list(stdout: str) -> None:
    assert parsing.parse_bjobs_json(stdout) == []


@pytest.mark.parametrize("stdout", ["Segmentation fault", '{"COMMAND":"bjobs"}', '{"RECORDS": 3}', "{not json"])
def test_bjobs_output_that_is_no_listing_raises(stdout: str) -> None:
    with pytest.raises(SchedulerError, match="bjobs -json printed something else"):
        parsing.parse_bjobs_json(stdout)


@pytest.mark.parametrize(
    ("stat", "status"),
    [
        ("PEND", "pending"), ("PSUSP", "pending"), ("WAIT", "pending"), ("PROV", "pending"),
        ("RUN", "running"), ("USUSP", "running"), ("SSUSP", "running"),
        ("DONE", "done"), ("PDONE", "done"), ("EXIT", "failed"), ("ZOMBI", "cancelled"),
        ("UNKWN", "unknown"), ("SOMETHING_NEW", "unknown"),
    ],
)
def test_every_documented_state_maps_to_a_status(stat: str, status: str) -> None:
    record = {"JOBID": "9", "JOBINDEX": "1", "STAT": stat, "JOB_NAME": "pycrew-x[1]"}
    (parsed,) = parsing.parse_bjobs_json(json.dumps({"COMMAND": "bjobs", "JOBS": 1, "RECORDS": [record]}))
    assert parsed.status == status


@pytest.mark.parametrize(
    ("stat", "pend_reason", "status", "said"),
    [
        ("PEND", "Dependency condition invalid or never satisfied;", "failed",
         'pending for good: LSF says "Dependency condition invalid or never satisfied" (its dependency can never be satisfied)'),
        ("PEND", " Job's resource requirements not satisfied: 2 hosts; Dependency condition invalid or never satisfied;",
         "failed", 'pending for good: LSF says "Job\'s resource requirements not satisfied: 2 hosts; Dependency'),
        ("PEND", "Job dependency condition not satisfied;", "pending", "Job dependency condition not satisfied"),
        ("PEND", "New job is waiting for scheduling;", "pending", "New job is waiting for scheduling"),
        ("PSUSP", "The job was suspended by the user while pending;", "pending", "The job was suspended by the user while pending"),
        ("RUN", "Dependency condition invalid or never satisfied;", "running", ""),
    ],
)  # fmt: skip
def test_a_job_pending_for_a_reason_that_never_passes_is_failed(stat: str, pend_reason: str, status: str, said: str) -> None:
    """Before, such a job stayed "pending": each launch failed only after seconds_launch."""
    record = {"JOBID": "9", "JOBINDEX": "1", "STAT": stat, "JOB_NAME": "pycrew-x[1]", "PEND_REASON": pend_reason}
    (parsed,) = parsing.parse_bjobs_json(json.dumps({"COMMAND": "bjobs", "JOBS": 1, "RECORDS": [record]}))
    assert parsed.status == status and parsed.state == stat
    assert parsed.reason.startswith(said), parsed.reason
    assert parsed.queued == (status == "failed") and parsed.held, "it waits in the queue until killed"


@pytest.mark.parametrize("reason", ["TERM_OWNER: job killed by owner", "TERM_FORCE_ADMIN", "TERM_REQUEUE_OWNER: x"])
def test_an_exit_killed_by_someone_is_cancelled(reason: str) -> None:
    assert parsing.job_status("EXIT", reason) == "cancelled"
    assert parsing.job_status("EXIT", "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit") == "failed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Jan  5 07:08", (2025, 1, 5, 7, 8, 0)), ("Jan 5 07:08:09", (2025, 1, 5, 7, 8, 9)), ("Dec 30 10:00", (2024, 12, 30, 10, 0, 0))],
)
def test_times_without_a_year_are_this_year_or_last(text: str, expected: tuple[int, int, int, int, int, int]) -> None:
    now = datetime(2025, 1, 10, 12, 0).timestamp()
    assert parsing.parse_time(text, now) == datetime(*expected).timestamp()


@pytest.mark.parametrize("text", ["", "-", "yesterday", "Foo 12 10:00", "Feb 30 10:00 2023"])
def test_what_is_no_time_gives_none(text: str) -> None:
    assert parsing.parse_time(text) is None


@pytest.mark.parametrize(
    ("exec_host", "host"), [("", None), ("hostA", "hostA"), ("hostA:hostB", "hostA"), ("4*hostA", "hostA"), ("2*a:3*b", "a")]
)
def test_first_execution_host(exec_host: str, host: str | None) -> None:
    assert parsing.first_host(exec_host) == host


def test_bparams_array_limit() -> None:
    assert parsing.parse_array_max(read("bparams_a.txt")) == 2000
    assert parsing.parse_array_max("DEFAULT_QUEUE = normal\n") is None


def test_lsf_conf_unit_for_limits() -> None:
    assert parsing.parse_unit_for_limits(read("lsf_conf.txt")) == "MB"
    assert parsing.parse_unit_for_limits('LSF_UNIT_FOR_LIMITS="gb"  # comment\n') == "GB"
    assert parsing.parse_unit_for_limits("#LSF_UNIT_FOR_LIMITS=MB\nLSF_LOGDIR=/tmp\n") is None


def test_log_path_patterns() -> None:
    assert parsing.expand_log_path("/l/%J_%I.out", "12", 3) == "/l/12_3.out"
    assert parsing.expand_log_path("/l/out", "12", 3) == "/l/out"


@pytest.mark.parametrize(
    ("exit_reason", "exit_code", "said"),
    [
        ("TERM_RUNLIMIT: job killed after reaching LSF run time limit", 140,
         "TERM_RUNLIMIT: job killed after reaching LSF run time limit; killed by signal 12 (SIGUSR2)"),
        ("TERM_MEMLIMIT: job killed after reaching LSF memory usage limit", 137,
         "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit; killed by signal 9 (SIGKILL)"),
        ("", 137, "killed by signal 9 (SIGKILL)"),
        ("", 3, ""),
        ("", 255, ""),
    ],
)
def test_an_element_that_exited_says_lsfs_reason_and_the_signal_that_killed_it(exit_reason: str, exit_code: int, said: str) -> None:
    """LSF reports a job killed by signal N as exit code 128 + N; before, only its EXIT_REASON was said."""
    record = {"JOBID": "9", "JOBINDEX": "1", "STAT": "EXIT", "JOB_NAME": "pycrew-x[1]", "EXIT_CODE": str(exit_code),
              "EXIT_REASON": exit_reason}
    [parsed] = parsing.parse_bjobs_json(json.dumps({"COMMAND": "bjobs", "JOBS": 1, "RECORDS": [record]}))
    assert (parsed.status, parsed.exit_code, parsed.reason) == ("failed", exit_code, said)

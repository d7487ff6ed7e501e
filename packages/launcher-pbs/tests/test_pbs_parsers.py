"""PBS's builders and parsers on canned outputs (tests/data, from the documentation; see its README)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from pycrew import TOKEN_ENV
from pycrew.scheduler import SchedulerError, jobtag
from pycrew.testing.scheduler_calls import launcher_info, make_calls
from pycrew_pbs import PbsCLI, PbsOptions, TorqueCLI
from pycrew_pbs.pbs import TAG_VARIABLE, decode_tag, encode_tag
from pycrew_pbs.qstat import (
    STATES,
    finished_status,
    never_starts,
    output_path,
    parse_qstat_text,
    parse_variable_list,
    pbs_time,
    server_array_limit,
)

DATA = Path(__file__).parent / "data"
ARRAY_TAG = "pycrew:1;c=3f9a;n=fit;p=7c1e2a-;o=0;w=1-3"
SINGLE_TAG = "pycrew:1;c=3f9a;n=fit;w=4.d41d8cd98f00"
LOGS = "/home/alice/.pycrew/pbs/logs"


def cli(user: str = "alice", **options: Any) -> PbsCLI:
    client = PbsCLI.for_options("pbs", PbsOptions(**options))
    client.user = user
    return client


def summary(records: list[Any]) -> list[tuple[Any, ...]]:
    return [(r.id, r.array_id, r.index, r.name, r.state, r.status, r.exit_code, r.host) for r in records]


# -- qstat listings ---------------------------------------------------------------------------


def test_pbspro_json_listing_elements_jobs_and_history() -> None:
    records = cli().parse_listing((DATA / "qstat-f-F-json-x-t-openpbs20.json").read_text())
    assert summary(records) == [
        ("1010[1].pbs01", "1010[].pbs01", 1, "pycrew-fit", "X", "done", 0, "node07"),
        ("1010[2].pbs01", "1010[].pbs01", 2, "pycrew-fit", "R", "running", None, "node08"),
        ("1010[3].pbs01", "1010[].pbs01", 3, "pycrew-fit", "Q", "pending", None, None),
        ("1011.pbs01", "1011.pbs01", 1, "pycrew-fit", "F", "cancelled", 271, "node09"),
        ("1012.pbs01", "1012.pbs01", 1, "pycrew-fit", "F", "failed", None, None),  # no exit status, not cancelled here
        ("1013.pbs01", "1013.pbs01", 1, "pycrew-other", "H", "pending", None, None),
        ("1014.pbs01", "1014.pbs01", 1, "STDIN", "F", "failed", -29, None),
    ], "another user's job (1006) and the array parent (1010[]) are not listed"
    by_id = {r.id: r for r in records}
    assert [by_id[f"1010[{i}].pbs01"].tag for i in (1, 2, 3)] == [ARRAY_TAG] * 3, "the queued element takes the parent's tag"
    assert by_id["1011.pbs01"].tag == SINGLE_TAG and by_id["1013.pbs01"].tag == "not-a-tag" and by_id["1014.pbs01"].tag == ""
    assert by_id["1010[2].pbs01"].log == f"{LOGS}/pycrew-fit-0a1b2c3d4e5f.2.log", "host: dropped, ^array_index^ expanded"
    assert by_id["1010[3].pbs01"].log == f"{LOGS}/pycrew-fit-0a1b2c3d4e5f.3.log", "the parent's Output_Path, this index"
    assert by_id["1011.pbs01"].log == f"{LOGS}/pycrew-fit-5f4e3d2c1b0a.log"
    assert by_id["1010[3].pbs01"].reason == "Not Running: Insufficient amount of resource: ncpus"
    assert by_id["1010[1].pbs01"].submitted == time.mktime(time.strptime("Wed Apr 14 23:34:17 2021", "%a %b %d %H:%M:%S %Y"))
    assert jobtag.decode(by_id["1010[2].pbs01"].tag) is not None


NEVER = "Can Never Run: Insufficient amount of resource: ncpus (R: 64 A: 8 T: 8)"
HELD = "job held, too many failed attempts to run"


def listing_with(changes: dict[str, dict[str, Any]], drop: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The canned listing's records by id, after changing (or dropping) some attributes."""
    data = json.loads((DATA / "qstat-f-F-json-x-t-openpbs20.json").read_text())
    for job_id, attrs in changes.items():
        data["Jobs"][job_id].update(attrs)
    for job_id, names in (drop or {}).items():
        for name in names:
            data["Jobs"][job_id].pop(name, None)
    return {r.id: r for r in cli().parse_listing(json.dumps(data))}


@pytest.mark.parametrize("comment", [NEVER, HELD, HELD + " and terminated"])
def test_a_queued_or_held_job_that_pbs_will_never_start_is_failed_with_its_comment(comment: str) -> None:
    state = "H" if comment.startswith("job held") else "Q"
    by_id = listing_with({"1010[3].pbs01": {"comment": comment, "job_state": state}, "1013.pbs01": {"comment": comment}})
    for job_id in ("1010[3].pbs01", "1013.pbs01"):
        record = by_id[job_id]
        assert record.status == "failed" and record.exit_code is None, record
        assert record.queued and record.held, "it waits in the queue until deleted"
        assert record.reason.startswith(f'pending for good: PBS says "{comment}"'), record.reason
        assert "fix the job's options" in record.reason
    assert by_id["1010[2].pbs01"].status == "running", "a running element of the same array is untouched"


def test_a_queued_subjob_without_its_own_comment_takes_the_array_s() -> None:
    by_id = listing_with({"1010[].pbs01": {"comment": NEVER}}, drop={"1010[3].pbs01": ["comment"]})
    assert by_id["1010[3].pbs01"].status == "failed" and NEVER in by_id["1010[3].pbs01"].reason
    assert by_id["1010[2].pbs01"].status == "running", "a running subjob does not take its array's comment"
    assert by_id["1010[2].pbs01"].reason.startswith("Job run at")


@pytest.mark.parametrize(
    "state, comment",
    [
        ("Q", "Not Running: Insufficient amount of resource: ncpus"),  # passes when nodes free up
        ("Q", ""),
        ("R", NEVER),  # a running job's stale comment means nothing
        ("F", NEVER),
        ("Q", "Job will never run? ask"),  # only the scheduler's own prefix counts
    ],
)
def test_comments_that_pass_are_not_pending_for_good(state: str, comment: str) -> None:
    assert never_starts(state, comment) is None


def test_pbspro_listing_of_another_user_is_filtered_by_job_owner() -> None:
    records = cli(user="qoot").parse_listing((DATA / "qstat-f-F-json-x-t-openpbs20.json").read_text())
    assert [r.id for r in records] == ["1006.pbs01"] and records[0].host == "node07"


@pytest.mark.parametrize("out", ["", "\n", (DATA / "qstat-f-F-json-no-jobs.json").read_text(), '{"Jobs": {}}'])
def test_pbspro_listing_without_jobs_is_empty(out: str) -> None:
    assert cli().parse_listing(out) == []


def test_pbspro_listing_that_is_not_json_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="printed no JSON"):
        cli().parse_listing("qstat: something went wrong\n")


def test_torque_text_listing_with_wrapped_values() -> None:
    records = cli(flavour="torque").parse_listing((DATA / "qstat-f-t-torque.txt").read_text())
    assert summary(records) == [
        ("2041[1].torque01.cluster.local", "2041[].torque01.cluster.local", 1, "pycrew-fit-1", "C", "done", 0, "node01"),
        ("2041[2].torque01.cluster.local", "2041[].torque01.cluster.local", 2, "pycrew-fit-2", "R", "running", None, "node02"),
        ("2041[3].torque01.cluster.local", "2041[].torque01.cluster.local", 3, "pycrew-fit-3", "Q", "pending", None, None),
        ("2042.torque01.cluster.local", "2042.torque01.cluster.local", 1, "pycrew-fit", "C", "cancelled", 271, "node03"),
    ], "bob's job is not listed"
    assert [r.tag for r in records] == [ARRAY_TAG] * 3 + [SINGLE_TAG], "values wrapped mid-word are joined as they are"
    assert records[0].log == f"{LOGS}/pycrew-fit-0a1b2c3d4e5f.log-1"
    assert records[3].log == f"{LOGS}/pycrew-fit-5f4e3d2c1b0a.log"


def test_qstat_text_blocks_and_continuations() -> None:
    jobs = parse_qstat_text((DATA / "qstat-f-t-torque.txt").read_text())
    first = jobs["2041[1].torque01.cluster.local"]
    assert first["submit_args"].endswith("p%3D7c1e2a-;o%3D0;w%3D1-3 /home/alice/.pycrew/pbs/scripts/job-x.sh")
    assert first["Output_Path"].endswith("/logs/pycrew-fit-0a1b2c3d4e5f.log-1"), "a value wrapped mid-item is joined as it is"
    assert first["Resource_List.nodes"] == "1:ppn=2" and first["ctime"] == "Tue Nov  3 10:00:00 2015"
    variables = parse_variable_list(jobs["2041[2].torque01.cluster.local"]["Variable_List"])
    assert variables["NOTE"] == "a,b" and variables["PBS_O_HOME"] == "/home/alice"


@pytest.mark.parametrize(("state", "status"), [*STATES.items(), ("Z", "unknown")])
def test_live_states_are_normalised(state: str, status: str) -> None:
    out = f'{{"Jobs": {{"7.s": {{"Job_Name": "pycrew-x", "job_state": "{state}"}}}}}}'
    assert cli().parse_listing(out)[0].status == status


@pytest.mark.parametrize(
    ("exit_status", "status"), [(0, "done"), (1, "failed"), (127, "failed"), (271, "cancelled"), (265, "failed"),
                                (-1, "failed"), (-29, "failed"), (None, "cancelled")],
)
@pytest.mark.parametrize("state", ["F", "X", "C"])
def test_ended_jobs_take_their_status_from_the_exit_status(state: str, exit_status: int | None, status: str) -> None:
    assert finished_status(exit_status) == status
    exit_attr = "" if exit_status is None else f', "Exit_status": {exit_status}'
    client = cli()
    if exit_status is None:
        client.departures.cancelled(["7.s"], time.monotonic())  # deleted by pycrew (see the next test)
    record = client.parse_listing(f'{{"Jobs": {{"7.s": {{"job_state": "{state}"{exit_attr}}}}}}}')[0]
    assert (record.status, record.exit_code) == (status, exit_status)


@pytest.mark.parametrize("state", ["F", "X", "C"])
def test_an_ended_job_without_exit_status_that_pycrew_did_not_cancel_failed(state: str) -> None:
    """On the code before this test it read "cancelled" (the launch watch: "the worker was
    cancelled before it connected") though pycrew never deleted it: an administrator did, or
    its node was lost."""
    records = cli().parse_listing(f'{{"Jobs": {{"7[2].s": {{"job_state": "{state}", "comment": "Job run at x"}}}}}}')
    assert records[0].status == "failed" and records[0].exit_code is None
    assert records[0].reason == (
        "it ended without an exit status (deleted by an administrator, or lost with its node); PBS says: Job run at x; "
        "tracejob 7[2].s on the server host has its history"
    )


def test_a_torque_listing_cut_short_is_a_transient_error() -> None:
    """On the code before this test a qstat -f -t text cut short parsed without error, losing
    the jobs after the cut (and the tag of the cut block): two such listings deleted live jobs."""
    text = (DATA / "qstat-f-t-torque.txt").read_text()
    for cut in (text[: len(text) // 3], text[: text.index("Variable_List")], text.rstrip("\n") + "\n"):
        with pytest.raises(SchedulerError, match="cut short") as caught:
            cli(flavour="torque").parse_listing(cut)
        assert caught.value.transient
    assert cli(flavour="torque").parse_listing("") == []


def test_pbs_times() -> None:
    assert pbs_time("Tue Nov  3 10:00:00 2015") == time.mktime((2015, 11, 3, 10, 0, 0, 0, 0, -1))
    assert pbs_time(1618432467) == 1618432467.0 and pbs_time("1618432467") == 1618432467.0
    assert pbs_time("") is None and pbs_time("soon") is None and pbs_time(None) is None


def test_output_paths() -> None:
    assert output_path("host.x:/a/b.^array_index^.log", 3) == "/a/b.3.log"
    assert output_path("/a/b.^array_index^.log", None) == "/a/b.^array_index^.log"
    assert output_path("relative/path:x", None) == "relative/path:x", "only a leading host: is dropped"


# -- qsub, qdel, the tag ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "job"),
    [("1234.pbs01\n", "1234.pbs01"), ("1234[].pbs01\n", "1234[].pbs01"), ("77\n", "77"),
     ("qsub: warning\n100[].pbs-head.emu.local\n", "100[].pbs-head.emu.local")],
)
def test_qsub_job_ids(out: str, job: str) -> None:
    assert cli().parse_submit(out) == job


def test_qsub_without_a_job_id_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="qsub printed no job id"):
        cli().parse_submit("qsub: Job rejected\n")


def test_element_handles() -> None:
    assert cli().element_handles("100[].srv.x", 3) == ["100[1].srv.x", "100[2].srv.x", "100[3].srv.x"]
    assert cli().element_handle("101.srv", 1) == "101.srv", "a plain job's handle is its id"


def test_qdel_command_checks_handles() -> None:
    argv = cli(bin_directory="/opt/pbs/bin").cancel_command(["100[1].s", "100[2].s", "101.s", "100[1].s"])
    assert argv == ["/opt/pbs/bin/qdel", "100[1].s", "100[2].s", "101.s"]
    for bad in (["-x"], ["100[1].s; rm -rf ~"], [123], ["100[1-3].s"]):
        with pytest.raises(ValueError, match="pbs handles must look like"):
            cli().cancel_command(bad)


@pytest.mark.parametrize(
    ("message", "gone"),
    [("qdel: Unknown Job Id 999.pbs01", True), ("qdel: Job has finished 100.pbs01", True),
     ("qdel: Unknown Job Id Error 999.torque01", True), ("qdel: Invalid state for job - COMPLETE 100.srv", True),
     ("qdel: Request invalid for state of job MSG=invalid state for job - COMPLETE 1037416.admin", True),
     ("qdel: Request invalid for finished array subjob 100[2].pbs01", True),
     ("qdel: Unauthorized Request  100.pbs01", False), ("qdel: illegally formed job identifier: x", False)],
)
def test_qdel_messages_that_mean_gone(message: str, gone: bool) -> None:
    assert cli().is_gone(message) is gone


@pytest.mark.parametrize(
    ("output", "transient"),
    [("pbs_iff: cannot connect to host\nqsub: cannot connect to server pbs01 (errno=15010)", True),
     ("qstat: End of File", True), ("qdel: Premature End of File 5.srv", True),
     ("Connection refused\nqstat: cannot connect to server pbs01 (errno=111)", True),
     ("qsub: Request not allowed: Server shutting down", True),
     ("qsub: Unknown queue", False), ("qsub: Job exceeds queue resource limits", False),
     ("qsub: Illegal attribute or resource value Resource_List.select", False)],
)
def test_transient_failures(output: str, transient: bool) -> None:
    assert cli().is_transient(1, output) is transient


@pytest.mark.parametrize(
    "tag", [ARRAY_TAG, SINGLE_TAG, "pycrew:1;c=ab;n=a%2Cb%25c;p=x-;o=3;w=1-4,7,9-12", "pycrew:1;c=x;n='q\"';w=1.a"]
)
def test_the_tag_survives_variable_list(tag: str) -> None:
    value = encode_tag(tag)
    assert not set(value) & set(",='\" \\"), f"-v splits at commas, '=' starts a name, quotes quote: {value!r}"
    assert decode_tag(value) == tag


def test_qsub_command_exports_the_environment_and_carries_the_tag(tmp_path: Path) -> None:
    calls = make_calls("pass", 3)
    client = cli(bin_directory="/opt/pbs/bin", submit_args=("-W", "group_list=proj"))
    argv = client.submit_command(tmp_path / "job.sh", calls, ARRAY_TAG)
    assert argv == [
        "/opt/pbs/bin/qsub", "-V", "-v", f"{TAG_VARIABLE}={encode_tag(ARRAY_TAG)}", "-W", "group_list=proj", str(tmp_path / "job.sh"),
    ]


def test_qsub_without_the_environment_names_the_token_variable_only(tmp_path: Path) -> None:
    calls = make_calls("pass", 2)
    argv = cli(export_environment=False).submit_command(tmp_path / "job.sh", calls, ARRAY_TAG)
    assert argv[1:3] == ["-v", f"{TOKEN_ENV},{TAG_VARIABLE}={encode_tag(ARRAY_TAG)}"] and "-V" not in argv
    assert calls[0].batch_key not in shlex.join(argv), "the secret is never on the command line"


# -- the job script ---------------------------------------------------------------------------


def script_of(client: PbsCLI, n: int) -> str:
    calls = make_calls("pass", n, controller="fit")
    return client.render_script(launcher_info(client.options, calls, "pbs"), calls, jobtag.encode(calls))


def test_pbspro_array_script(tmp_path: Path) -> None:
    text = script_of(cli(directory=str(tmp_path), cpus=2, memory="4G", walltime="01:00:00", queue="workq", account="p1"), 3)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#PBS")]
    assert directives[:4] == ["#PBS -N pycrew-fit", "#PBS -S /bin/bash", "#PBS -J 1-3", directives[3]]
    assert directives[3].startswith(f"#PBS -o {tmp_path}/logs/pycrew-fit-") and directives[3].endswith(".^array_index^.log")
    assert directives[4:] == [
        "#PBS -j oe", "#PBS -k oed", "#PBS -q workq", "#PBS -A p1", "#PBS -l select=1:ncpus=2:mem=4096mb",
        "#PBS -l walltime=01:00:00",
    ]
    assert "--index-env PBS_ARRAY_INDEX" in text and "export PBS_ARRAY_INDEX" not in text
    assert (tmp_path / "logs").is_dir()


def test_a_single_worker_is_a_plain_job_that_sets_its_index(tmp_path: Path) -> None:
    text = script_of(cli(directory=str(tmp_path)), 1)
    assert "#PBS -J" not in text and "^array_index^" not in text
    assert "export PBS_ARRAY_INDEX=1" in text and "--index-env PBS_ARRAY_INDEX" in text


def test_torque_array_script(tmp_path: Path) -> None:
    client = cli(directory=str(tmp_path), flavour="torque", cpus=2, memory="1G", log_error=str(tmp_path / "err.log"))
    assert isinstance(client, TorqueCLI)
    directives = [line for line in script_of(client, 2).splitlines() if line.startswith("#PBS")]
    assert "#PBS -t 1-2" in directives and "#PBS -J 1-2" not in directives
    assert f"#PBS -e {tmp_path}/err.log" in directives and "#PBS -j oe" not in directives
    assert "#PBS -k oed" not in directives and "#PBS -l nodes=1:ppn=2,mem=1024mb" in directives
    assert "--index-env PBS_ARRAYID" in script_of(client, 2)


def test_default_logs_differ_per_submission(tmp_path: Path) -> None:
    client = cli(directory=str(tmp_path))
    a, b = make_calls("pass", 2, controller="fit"), make_calls("pass", 2, controller="fit")
    info = launcher_info(client.options, a, "pbs")
    assert client.log_paths(info, a, jobtag.encode(a)) != client.log_paths(info, b, jobtag.encode(b))
    assert client.log_paths(info, a, jobtag.encode(a)) == client.log_paths(info, a, jobtag.encode(a))


def test_log_paths_with_spaces_are_quoted(tmp_path: Path) -> None:
    text = script_of(cli(directory=str(tmp_path), log_output=str(tmp_path / "my logs" / "w.log")), 2)
    assert f'#PBS -o "{tmp_path}/my logs/w.log"' in text
    assert (tmp_path / "my logs").is_dir(), "the log directory is made: PBS cannot deliver into a missing one"


def test_direct_write_can_be_turned_off(tmp_path: Path) -> None:
    assert "#PBS -k oed" not in script_of(cli(directory=str(tmp_path), direct_write=False), 2)


# -- the server's array limit -----------------------------------------------------------------


def test_array_limits_from_the_server() -> None:
    assert cli().array_limit((DATA / "qstat-B-f-F-json-openpbs20.json").read_text(), "max_array_size") == 2500
    torque = cli(flavour="torque")
    assert torque.array_limit((DATA / "qstat-B-f-torque.txt").read_text(), "max_job_array_size") == 500
    assert cli().array_limit('{"Server": {"s": {"scheduling": "True"}}}', "max_array_size") == 10000, "PBS's default"
    assert cli().array_limit("", "max_array_size") == 10000
    assert server_array_limit("    max_job_array_size = 0\n", "max_job_array_size") is None

"""SGE's builders and parsers on canned outputs.

The outputs in ``tests/data`` were captured from the real Son of Grid Engine 8.1.9 the tests
run (see ``tests/data/README.md`` for how each was made); the others are quoted from SGE's
documentation (qstat(1), qsub(1), sge_types(1) of 8.1.9), as each test says.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pycrew.scheduler import JobRecord, SchedulerError, jobtag
from pycrew_sge import SgeCLI, SgeOptions
from pycrew_sge import qstat as q
from pycrew_sge.sge import ARRAY_MAX_UNLIMITED

DATA = Path(__file__).parent / "data"


def cli(**options: Any) -> SgeCLI:
    return SgeCLI("sge", SgeOptions(**options))


def captured(name: str) -> dict[str, Any]:
    """A command's captured run: argv, returncode, stdout, stderr."""
    run: dict[str, Any] = json.loads((DATA / name).read_text())
    return run


# -- qsub --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "job"), [("qsub_terse_job.json", "115"), ("qsub_terse_array.json", "114")])
def test_qsub_terse_output_gives_the_job_id(name: str, job: str) -> None:
    assert cli().parse_submit(captured(name)["stdout"]) == job


def test_qsub_terse_output_of_an_array_as_the_manual_shows_it() -> None:
    # qsub(1), -terse: "only the job-id of the job will be printed"; arrays as "<job>.<range>"
    assert cli().parse_submit("4711.1-10:2\n") == "4711"


@pytest.mark.parametrize("name", ["qsub_job.json", "qsub_array.json"])
def test_qsub_without_terse_is_no_job_id(name: str) -> None:
    with pytest.raises(SchedulerError, match="qsub -terse printed no job id"):
        cli().parse_submit(captured(name)["stdout"])


# -- qstat -xml (the listing) -----------------------------------------------------------


def listing(name: str) -> list[tuple[str, str, int, str, str, str | None]]:
    records = cli().parse_listing((DATA / name).read_text())
    return [(r.id, r.array_id, r.index, r.state, r.status, r.host) for r in records]


def test_listing_of_running_pending_held_error_suspended_and_restarted_jobs() -> None:
    # qstat_u_states_1.txt shows the same jobs as qstat's table; jobs that are no array
    # (sleeper, pycrew-susp, ...) are left out: pycrew submits arrays only.
    assert listing("qstat_u_states_1.xml") == [
        ("102.1", "102", 1, "r", "running", "vm"),
        ("102.2", "102", 2, "r", "running", "vm"),
        ("104.1", "104", 1, "Eqw", "failed", None),
        ("104.2", "104", 2, "Eqw", "failed", None),
        ("102.3", "102", 3, "qw", "pending", None),
        ("102.4", "102", 4, "qw", "pending", None),
        ("103.1", "103", 1, "hqw", "pending", None),
        ("103.2", "103", 2, "hqw", "pending", None),
        ("103.3", "103", 3, "hqw", "pending", None),
    ]


def test_a_task_in_error_state_is_failed_but_queued() -> None:
    """``Eqw`` stays in the queue until deleted (or cleared): the monitor shows it with the live ones."""
    records = cli().parse_listing((DATA / "qstat_u_states_1.xml").read_text())
    assert {r.id for r in records if r.queued} == {"104.1", "104.2"}
    assert all(r.held for r in records if r.status != "cancelled")


def test_listing_of_every_job_state_captured() -> None:
    tasks = [
        t for name in ("qstat_u_states_1.xml", "qstat_u_states_2.xml", "qstat_u_states_3.xml")
        for t in q.parse_qstat((DATA / name).read_text())
    ]
    seen = {t.state: q.normalise_state(t.state) for t in tasks}
    assert seen == {
        "r": "running", "t": "running", "hr": "running",
        "qw": "pending", "hqw": "pending", "Rq": "pending",
        "s": "pending", "S": "pending", "Ss": "pending", "Sh": "pending", "SRt": "pending",
        "Eqw": "failed", "dr": "cancelled",
    }
    plain = [t for t in tasks if t.job == "106"]
    assert plain and all(t.task is None for t in plain), "a job that is no array has no task id"
    assert all(t.time is not None for t in tasks), "every entry has a start or submission time"


def test_listing_of_tasks_that_ended_zombies() -> None:
    # qstat -s prsz: the queue, then the last finished_jobs that ended (state z, no queue,
    # ranges as task lists); 912 has task 2 running and task 1 ended.
    assert listing("qstat_u_zombies.xml") == [
        ("912.2", "912", 2, "r", "running", "vm"),
        ("909.1", "909", 1, "z", "done", None),
        ("909.2", "909", 2, "z", "done", None),
        ("909.3", "909", 3, "z", "done", None),
        ("910.1", "910", 1, "z", "done", None),
        ("910.2", "910", 2, "z", "done", None),
        ("911.1", "911", 1, "z", "done", None),
        ("911.2", "911", 2, "z", "done", None),
        ("912.1", "912", 1, "z", "done", None),
    ]
    assert all(r.ended and r.exit_code is None for r in cli().parse_listing((DATA / "qstat_u_zombies.xml").read_text())
               if r.state == "z"), "ended; SGE keeps no exit status in its queue"


def test_the_listing_asks_for_ended_tasks_too() -> None:
    assert cli().list_command()[-2:] == ["-s", "prsz"]


class ScriptedQstat(SgeCLI):
    """An SgeCLI whose qstat answers are canned: the zombie listing, and ``qstat -j`` that
    knows none of the jobs (as for jobs whose tasks all ended)."""

    def __init__(self, directory: Path) -> None:
        super().__init__("sge", SgeOptions(directory=str(directory)))
        self.asked: list[list[str]] = []

    def check(self, argv: Any, env: Any = None, what: str = "", retry: bool = True, input: str | None = None) -> str:
        if "-j" in argv:
            self.asked.append(sorted(argv[argv.index("-j") + 1].split(","), key=int))
            return (DATA / "qstat_j_unknown.xml").read_text()
        return (DATA / "qstat_u_zombies.xml").read_text()


def test_ended_tasks_are_pycrews_when_this_process_submitted_their_job(tmp_path: Path) -> None:
    """qstat -j no longer knows a job whose tasks all ended: what its submission put in it
    (tag, output path) names the tasks; a job this process never knew is asked about once."""
    c = ScriptedQstat(tmp_path)
    tag = "pycrew:1;c=abc;n=x;p=9f;o=0;w=1-3"
    c._remember("909", tag)  # as submit_array does once qsub answered
    records = {r.id: r for r in c.list_jobs()}
    assert c.asked == [["909", "910", "911", "912"]]
    ended = records["909.2"]
    assert ended.status == "done" and ended.tag == tag
    assert ended.reason == "it ended; SGE keeps no exit status in its queue (qacct -j 909 -t 2 has it)"
    assert ended.log == str(tmp_path / "logs" / "pycrew-x-909.2.log")
    assert records["910.1"].tag == "" and records["912.2"].tag == "", "never known: no tag, not pycrew's"
    again = {r.id: r for r in c.list_jobs()}
    assert c.asked == [["909", "910", "911", "912"]], "what qstat -j does not know is not asked again"
    assert again["909.2"].tag == tag


def test_what_a_submission_put_in_its_job_is_kept_only_a_while_unlisted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycrew_sge.sge as sge_module

    c = ScriptedQstat(tmp_path)
    c._remember("5000", "pycrew:1;c=abc;n=x;p=9f;o=0;w=1")  # not in the canned listing
    c.list_jobs()
    assert "5000" in c._details, "kept: the job may not be listed yet"
    later = time.monotonic() + sge_module.SECONDS_UNLISTED + 1
    monkeypatch.setattr(sge_module, "time", SimpleNamespace(monotonic=lambda: later))
    c.list_jobs()
    assert "5000" not in c._details


def test_an_empty_queue_lists_nothing() -> None:
    assert cli().parse_listing((DATA / "qstat_u_empty.xml").read_text()) == []


@pytest.mark.parametrize(
    ("state", "status"),
    # qstat(1): "d(eletion), E(rror), h(old), r(unning), R(estarted), s(uspended),
    # S(uspended), t(ransfering), T(hreshold) or w(aiting)", combined as qstat shows them
    [("qw", "pending"), ("hqw", "pending"), ("hRwq", "pending"), ("r", "running"), ("t", "running"),
     ("Rr", "running"), ("Rt", "running"), ("s", "pending"), ("S", "pending"), ("T", "pending"),
     ("Eqw", "failed"), ("Ehqw", "failed"), ("dr", "cancelled"), ("dt", "cancelled"), ("dRr", "cancelled"),
     ("dT", "cancelled"), ("z", "done"), ("", "unknown")],
)
def test_states_of_the_manual_are_normalised(state: str, status: str) -> None:
    assert q.normalise_state(state) == status


@pytest.mark.parametrize(
    ("text", "tasks"),
    [("4", [4]), ("1-3:1", [1, 2, 3]), ("3,4", [3, 4]), ("1,4-6:1", [1, 4, 5, 6]),
     ("1-10:2", [1, 3, 5, 7, 9]),  # sge_types(1): n[-m[:s]]
     ("5,6,9", [5, 6, 9])],
)
def test_task_lists(text: str, tasks: list[int]) -> None:
    assert q.expand_tasks(text) == tasks


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-4:0", "1-", "1:2:3"])
def test_task_lists_that_are_none(text: str) -> None:
    with pytest.raises(ValueError, match="not an SGE task list"):
        q.expand_tasks(text)


def test_an_unreachable_qmaster_in_qstat_xml_is_a_transient_error() -> None:
    run = captured("no_qmaster_qstat_j.json")
    assert run["returncode"] == 0, "qstat -xml -j says it with exit status 0: only the XML tells"
    with pytest.raises(SchedulerError, match="could not reach the qmaster") as info:
        q.parse_details(run["stdout"])
    assert info.value.transient


def test_output_that_is_no_xml_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="printed no XML"):
        q.parse_qstat("error: something\n")


# -- qstat -xml -j (the details) --------------------------------------------------------


def test_details_give_tag_log_path_error_reasons_and_scheduler_messages() -> None:
    details = q.parse_details((DATA / "qstat_j_states_1.xml").read_text())
    assert sorted(details, key=int) == ["102", "103", "104", "105", "106", "107", "108", "109"]
    demo, held, error, big = details["102"], details["103"], details["104"], details["105"]
    assert demo.tag == "pycrew:1;c=3f9a1c2b7d4e5f60;n=demo;p=a1b2c3d4e5f6-;o=0;w=1-3,7", "',' is stored as '+'"
    assert jobtag.decode(demo.tag) is not None
    assert demo.stdout_path == "/tmp/sgecap/logs/$JOB_NAME-$JOB_ID.$TASK_ID.log" and demo.merged
    assert held.tag == "pycrew:1;c=3f9a1c2b7d4e5f60;n=demo;w=5.abc" and held.messages == ("Job is in hold state",)
    assert error.tag == "" and error.task_errors == {
        1: 'can\'t open output file "/nonexistent/dir/out": No such file or directory',
        2: 'can\'t open output file "/nonexistent/dir/out": No such file or directory',
    }
    assert big.messages == ('cannot run in PE "smp" because it only offers 0 slots',)
    assert big.stdout_path is None


def test_details_of_unknown_jobs_are_none() -> None:
    assert q.parse_details((DATA / "qstat_j_unknown.xml").read_text()) == {}


# -- qstat -xml -j about tasks missing from a listing (confirm_gone) ---------------------

#: The jobs asked about in qstat_j_some_gone.xml; qstat_u_some_gone.xml is the listing then.
SOME_GONE_ASKED = ["442", "443", "445", "446", "447", "448"]


def test_qstat_j_leaves_out_the_jobs_it_no_longer_holds_when_it_holds_some() -> None:
    # 445 ended, 446 was deleted; 442, 443, 447 and 448 are held (running, held, Eqw tasks)
    assert q.parse_unknown_jobs((DATA / "qstat_j_some_gone.xml").read_text(), SOME_GONE_ASKED) == {"445", "446"}


def test_qstat_j_names_the_jobs_it_no_longer_holds_when_it_holds_none() -> None:
    assert q.parse_unknown_jobs((DATA / "qstat_j_all_gone.xml").read_text(), ["445", "446"]) == {"445", "446"}
    assert q.parse_unknown_jobs((DATA / "qstat_j_unknown.xml").read_text(), ["998", "999", "5"]) == {"998", "999"}, (
        "only the jobs it names"
    )


@pytest.mark.parametrize(
    "xml",
    [captured("no_qmaster_qstat_j.json")["stdout"], "error: something\n", "<detailed_job_info></detailed_job_info>",
     (DATA / "qstat_u_some_gone.xml").read_text()],
    ids=["no-qmaster", "no-xml", "no-job", "a-listing"],
)
def test_qstat_j_answers_that_are_no_job_details_name_no_job_gone(xml: str) -> None:
    with pytest.raises(SchedulerError):
        q.parse_unknown_jobs(xml, ["445"])


class CannedQstatJ(SgeCLI):
    """An SgeCLI whose ``run`` answers with a canned ``qstat -xml -j`` (or raises ``error``)."""

    def __init__(self, stdout: str = "", returncode: int = 0, error: SchedulerError | None = None) -> None:
        super().__init__("sge", SgeOptions())
        self.answer = subprocess.CompletedProcess(["qstat"], returncode, stdout, "")
        self.error = error
        self.asked: list[list[str]] = []

    def run(self, argv: Any, env: Any = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        self.asked.append(list(argv))
        if self.error is not None:
            raise self.error
        return self.answer


def test_confirm_gone_names_only_the_tasks_of_jobs_qstat_j_no_longer_knows() -> None:
    """The listing's tasks taken as missing: only those of 445 and 446 are gone. 448.4
    was deleted too, but its job still holds 448.3 (qw) and 448.5 (hqw), which qstat -j does
    not list either: the two cannot be told apart, so neither is confirmed."""
    c = CannedQstatJ((DATA / "qstat_j_some_gone.xml").read_text())
    listed = c.parse_listing((DATA / "qstat_u_some_gone.xml").read_text())
    records = [r for r in listed if r.array_id in SOME_GONE_ASKED]  # (444, running, was not asked about)
    gone = c.confirm_gone(records)
    assert c.asked == [["qstat", "-xml", "-j", ",".join(SOME_GONE_ASKED)]], "one qstat call for every job"
    assert gone == {("445", 1), ("445", 2), ("446", 1), ("446", 2)}, gone


def test_confirm_gone_asks_one_qstat_about_at_most_confirm_jobs_max_jobs() -> None:
    c = CannedQstatJ((DATA / "qstat_j_unknown.xml").read_text())
    records = [JobRecord(id=f"{j}.1", array_id=str(j), index=1, name="n", tag="", state="qw") for j in range(1000, 850, -1)]
    c.confirm_gone(records)
    [argv] = c.asked
    assert argv[-1].split(",") == [str(j) for j in range(851, 851 + c.CONFIRM_JOBS_MAX)], "the lowest job numbers"


@pytest.mark.parametrize(
    "canned",
    [
        CannedQstatJ(captured("no_qmaster_qstat_j.json")["stdout"]),
        CannedQstatJ(error=SchedulerError("qstat -xml -j 445 did not finish within 60 s", ["qstat"], transient=True)),
        CannedQstatJ("", returncode=1),
        CannedQstatJ((DATA / "qstat_j_all_gone.xml").read_text(), returncode=1),
    ],
    ids=["no-qmaster", "timeout", "no-answer", "exit-status-1"],
)
def test_confirm_gone_is_none_when_qstat_j_cannot_say(canned: CannedQstatJ) -> None:
    assert canned.confirm_gone(canned.parse_listing((DATA / "qstat_u_some_gone.xml").read_text())) is None


def test_listing_with_details_names_the_worker_log_and_reason() -> None:
    c = cli()
    records = {r.id: r for r in c.parse_listing((DATA / "qstat_u_states_1.xml").read_text())}
    details = q.parse_details((DATA / "qstat_j_states_1.xml").read_text())
    running = c.with_details(records["102.2"], details["102"], "root", "/root")
    assert running.log == "/tmp/sgecap/logs/pycrew-demo-102.2.log" and running.reason == ""
    assert jobtag.decode(running.tag) is not None and jobtag.decode(running.tag).element(2) == (2, "a1b2c3d4e5f6-1")  # type: ignore[union-attr]
    failed = c.with_details(records["104.1"], details["104"], "root", "/root")
    assert failed.status == "failed" and "can't open output file" in failed.reason
    pending = c.with_details(records["103.1"], details["103"], "root", "/root")
    assert pending.reason == "Job is in hold state" and pending.log == "/dev/null"


def test_log_paths_expand_sge_pseudo_variables() -> None:
    # qsub(1), -o: $HOME, $USER, $JOB_ID, $JOB_NAME, $HOSTNAME, $TASK_ID
    pattern = "$HOME/out/$USER/$JOB_NAME.o$JOB_ID.$TASK_ID@$HOSTNAME"
    assert q.expand_log_path(pattern, "7", 3, "pycrew-x", "ann", "/home/ann", "node1") == "/home/ann/out/ann/pycrew-x.o7.3@node1"
    assert q.expand_log_path(pattern, "7", 3, "n", "ann", "/h", None).endswith("@$HOSTNAME"), "unknown host: left as is"


# -- the tag in the job context ---------------------------------------------------------


def test_tags_with_commas_survive_the_job_context() -> None:
    tag = "pycrew:1;c=abc;n=x%2Cy;p=ab-;o=0;w=1-3,7,9-10"
    stored = q.tag_to_context(tag)
    assert "," not in stored, "a comma would split the context into two variables"
    assert q.tag_from_context(stored) == tag


@pytest.mark.parametrize("tag", ["pycrew:1;c=a+b", "pycrew:1;c=a b"])
def test_tags_the_context_cannot_carry_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="cannot carry a tag"):
        q.tag_to_context(tag)


# -- qdel --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["qdel_unknown.txt", "qdel_unknown_task.txt", "qdel_pending_task.txt", "qdel_running_tasks.txt",
             "qdel_pending_jobs.txt", "qdel_mixed.txt", "qdel_in_deletion.txt"],
)
def test_qdel_lines_that_only_say_gone_or_going(name: str) -> None:
    lines = [line for line in (DATA / name).read_text().splitlines() if line.strip() and not line.startswith("rc=")]
    assert lines and all(cli().is_gone(line) for line in lines), lines


@pytest.mark.parametrize(
    "line",
    ['nobody - you do not have the necessary privileges to delete the job "102"',
     'unable to send message to qmaster using port 6444 on host "vm": got send error'],
)
def test_qdel_lines_that_are_real_errors(line: str) -> None:
    assert not cli().is_gone(line)


def test_qdel_groups_tasks_per_job() -> None:
    argv = cli(bin_directory="/opt/sge/bin").cancel_command(["12.3", "12.1", "13.2", "14", "14.2", "15.4", "15.5", "15.6"])
    assert argv == ["/opt/sge/bin/qdel", "14", "12", "-t", "1,3", "13.2", "15", "-t", "4-6"]


@pytest.mark.parametrize("handle", ["-u", "12_3", "12.3.4", 12, "*", "12.x"])
def test_qdel_refuses_handles_that_are_not_sge_tasks(handle: Any) -> None:
    with pytest.raises(ValueError, match=r"sge handles must look like '123\.4'"):
        cli().cancel_command(["1.1", handle])


# -- transient failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["no_qmaster_qsub.json", "no_qmaster_qstat_u.json", "no_qmaster_qdel.json", "no_qmaster_qconf.json",
     "hung_qmaster_qstat_u.json", "hung_qmaster_qsub.json"],
)
def test_qmaster_outages_are_transient(name: str) -> None:
    run = captured(name)
    assert run["returncode"] != 0
    assert cli().is_transient(run["returncode"], run["stderr"] + "\n" + run["stdout"]), run


@pytest.mark.parametrize("name", ["qsub_bad_queue.json", "qsub_bad_time.json"])
def test_rejected_submissions_are_not_transient(name: str) -> None:
    run = captured(name)
    assert run["returncode"] == 1 and not cli().is_transient(run["returncode"], run["stderr"] + run["stdout"])


def test_documented_qmaster_messages_are_transient() -> None:
    # what SGE's clients print when the qmaster cannot be reached or answers too late
    c = cli()
    assert c.is_transient(1, 'error: unable to contact qmaster using port 6444 on host "master"')
    assert c.is_transient(1, "error: failed receiving gdi request response for mid=1 (got syncron message receive timeout error).")
    assert c.is_transient(1, "error: commlib error: got read error (closing \"master/qmaster/1\")")


# -- the site's array limit ---------------------------------------------------------------


def test_array_limit_from_qconf() -> None:
    assert q.parse_array_max((DATA / "qconf_sconf.txt").read_text()) == 75000
    assert q.parse_array_max("max_aj_instances 2000\n") is None
    assert q.parse_array_max("max_aj_tasks 0\n") == 0 and ARRAY_MAX_UNLIMITED == jobtag.ELEMENTS_MAX


class KeyedCell(SgeCLI):
    """An SgeCLI on a canned listing whose jobs carry the tags given (``qstat -j`` not asked)."""

    def __init__(self, directory: Path, listing: str, tags: dict[str, str]) -> None:
        super().__init__("sge", SgeOptions(directory=str(directory), secret_file=True))
        self.listing_xml, self.tags = listing, tags

    def check(self, argv: Any, env: Any = None, what: str = "", retry: bool = True, input: str | None = None) -> str:
        return (DATA / self.listing_xml).read_text()

    def job_details(self, records: Any) -> dict[str, q.JobDetails]:
        return {job: q.JobDetails(job, {q.TAG_VARIABLE: tag}) for job, tag in self.tags.items()}


def test_a_key_file_stays_while_its_job_is_queued_even_in_error_and_goes_when_only_zombies_are_left(tmp_path: Path) -> None:
    """An ``Eqw`` task (status failed) may still run once an administrator clears it: its
    array's secret stays. A job whose tasks all ended (zombies, status done) or are being
    deleted (``dr``: tested on the cell, test_sge_jobs.py) needs it no more."""
    tags = {job: f"pycrew:1;c=abc;n=x;p={job}-;o=0;w=1-3" for job in ("104", "103", "909", "5000")}
    cell = KeyedCell(tmp_path, "qstat_u_states_1.xml", {"104": tags["104"], "103": tags["103"]})
    for job in ("104", "103", "5000"):
        cell.keys.write(tags[job], "secret")
        cell.keys.settled(tags[job], True)
    cell.list_jobs()
    assert cell.keys.path(tags["104"]).exists(), "a task in error state keeps its array's secret"
    assert cell.keys.path(tags["103"]).exists()
    assert not cell.keys.path(tags["5000"]).exists(), "an array no longer listed loses it"
    zombies = KeyedCell(tmp_path, "qstat_u_zombies.xml", {"909": tags["909"]})
    zombies.keys.write(tags["909"], "secret")
    zombies.keys.settled(tags["909"], True)
    zombies.list_jobs()
    assert not zombies.keys.path(tags["909"]).exists(), "an array whose tasks all ended loses it"

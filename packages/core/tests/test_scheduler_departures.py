"""pycrew's array elements that leave a scheduler's queue without a trace (SGE's
``finished_jobs 0``, TORQUE's ``keep_completed 0``): listed as ended by the process that
saw them waiting or running (:mod:`pycrew.scheduler.departures`).

The scheduler is the fake of ``test_scheduler_layer`` (real shell scripts keeping their
jobs in a file); a job "ends without a trace" when its line is removed from that file.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_scheduler_layer import Fake, FakeCLI

from pycrew.scheduler import JobRecord
from pycrew.scheduler import departures as departures_module
from pycrew.scheduler.departures import SECONDS_KEPT, Departures, pycrews
from pycrew.testing.scheduler_calls import launcher_info, make_calls


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


def set_jobs(fake: Fake, lines: list[str]) -> None:
    (fake.state / "jobs").write_text("".join(f"{line}\n" for line in lines))


def launch(cli: FakeCLI, n: int) -> list[str]:
    calls = make_calls("pass", n, launcher="fake", controller_id="ctl1")
    return cli.launch(launcher_info(cli.options, calls), calls)


def test_an_element_that_leaves_the_queue_is_listed_as_ended_with_its_tag(fake: Fake) -> None:
    cli = fake.cli(seconds_poll=0)
    launch(cli, 3)  # arrays of 2 (the fake site's limit): 100.1, 100.2 and 102.1
    assert [w.status for w in cli.workers("ctl1")] == ["pending"] * 3
    first, second, third = fake.jobs()
    set_jobs(fake, [first.replace("|PEND", "|RUN"), second, third])
    assert [w.status for w in cli.workers("ctl1")] == ["running", "pending", "pending"]
    cli.cancel(["102.1"])  # pycrew cancels it: the fake drops it
    set_jobs(fake, [second])  # 100.1 ended, and the queue kept nothing of it
    assert [w.id for w in cli.workers("ctl1")] == ["100.2"], "missing from one listing: not yet"
    workers = {w.id: w for w in cli.workers("ctl1")}
    assert sorted(workers) == ["100.1", "100.2", "102.1"]
    one, three = workers["100.1"], workers["102.1"]
    assert one.status == "done" and one.ended and one.exit_code is None and one.instance and one.worker == 1
    assert "left the fake queue, which keeps no record of ended jobs" in one.reason
    assert "last seen running" in one.reason and one.state == "", "the scheduler has no state for it"
    assert three.status == "cancelled" and "cancelled by pycrew" in three.reason
    assert workers["100.2"].status == "pending"
    assert [w.id for w in cli.workers("someone-else")] == []


def test_only_elements_seen_waiting_or_running_and_never_in_another_process(fake: Fake) -> None:
    cli = fake.cli(seconds_poll=0)
    launch(cli, 2)
    tag = fake.jobs()[0].split("|")[2]
    set_jobs(fake, [f"100|1|{tag}|DONE", f"100|2|{tag}|RUN"])
    cli.workers(None)
    set_jobs(fake, [])  # 1 was listed ended already: it is not listed again; 2 left
    cli.workers(None)
    assert [(w.id, w.status) for w in cli.workers(None)] == [("100.2", "done")]
    other = fake.cli(seconds_poll=0)  # a later `pycrew monitor list`: it never saw them
    assert other.workers(None) == []


def test_an_element_listed_again_is_what_the_queue_says_and_departures_expire(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = fake.cli(seconds_poll=0)
    launch(cli, 1)
    tag = fake.jobs()[0].split("|")[2]
    assert [w.status for w in cli.workers(None)] == ["pending"]
    set_jobs(fake, [])
    cli.workers(None)
    assert [w.status for w in cli.workers(None)] == ["done"]
    set_jobs(fake, [f"100|1|{tag}|PEND"])  # requeued: listed again
    assert [w.status for w in cli.workers(None)] == ["pending"]
    set_jobs(fake, [])
    cli.workers(None)
    assert [w.status for w in cli.workers(None)] == ["done"]
    import time as real_time

    later = real_time.monotonic() + SECONDS_KEPT + 1
    monkeypatch.setattr("pycrew.scheduler.listing.time", SimpleNamespace(monotonic=lambda: later))
    assert cli.workers(None) == [], f"forgotten {SECONDS_KEPT} s after it left"


def record(index: int, status: str = "pending", name: str = "pycrew-x", tag: str = "t") -> JobRecord:
    return JobRecord(f"7.{index}", "7", index, name, tag, status.upper(), status=status)


def test_a_listing_asked_before_the_last_one_applied_changes_nothing() -> None:
    seen = Departures("fake", lambda job, index: f"{job}.{index}", pycrews("pycrew"), lambda r: "")
    assert seen.update([record(1), record(2)], asked=10.0, now=10.5) == []
    assert seen.update([record(1)], asked=11.0, now=11.5) == []  # 2 missed once
    assert [r.id for r in seen.update([record(1)], asked=12.0, now=12.5)] == ["7.2"]
    # a slower listing asked at 11.8 (before 12) still shows 2 and lacks 1: it is not applied
    assert [r.id for r in seen.update([record(2)], asked=11.8, now=13.0)] == ["7.2"]
    assert [r.id for r in seen.update([], asked=14.0, now=14.0)] == ["7.2"]
    assert [r.id for r in seen.update([], asked=15.0, now=15.0)] == ["7.2", "7.1"]


def test_one_listing_that_lacks_jobs_reports_nothing() -> None:
    """Whatever made the scheduler answer one listing without them (a glitch), elements
    listed again in the next one never read as ended."""
    seen = Departures("fake", lambda job, index: f"{job}.{index}", pycrews("pycrew"), lambda r: "")
    seen.update([record(1), record(2)], asked=1.0, now=1.0)
    assert seen.update([], asked=2.0, now=2.0) == []
    assert seen.update([record(1), record(2, status="running")], asked=3.0, now=3.0) == []
    assert seen.update([], asked=4.0, now=4.0) == []
    assert [r.id for r in seen.update([], asked=5.0, now=5.0)] == ["7.1", "7.2"]


def test_records_that_are_not_pycrews_are_never_tracked() -> None:
    seen = Departures("fake", lambda job, index: f"{job}.{index}", pycrews("pycrew"), lambda r: "")
    seen.update([record(1, name="someone"), record(2, tag="")], asked=1.0, now=1.0)
    seen.update([], asked=2.0, now=2.0)
    assert seen.update([], asked=3.0, now=3.0) == []


def test_unhashable_handles_are_tolerated() -> None:
    seen = Departures("fake", lambda job, index: [job, index], pycrews("pycrew"), lambda r: "")
    seen.cancelled([["7", 1]], now=1.0)
    seen.update([record(1)], asked=1.0, now=1.0)
    seen.update([], asked=2.0, now=2.0)
    assert [r.status for r in seen.update([], asked=3.0, now=3.0)] == ["done"]
    assert departures_module.SECONDS_KEPT == SECONDS_KEPT


def test_cancels_are_forgotten_even_without_listings() -> None:
    seen = Departures("fake", lambda job, index: f"{job}.{index}", pycrews("pycrew"), lambda r: "")
    seen.cancelled([f"1.{i}" for i in range(5000)], now=0.0)
    seen.cancelled(["2.1"], now=SECONDS_KEPT + 1)
    assert list(seen._cancelled) == ["2.1"]


def suspicious(confirm: Any = None, keeps_ended: bool = False) -> Departures:
    return Departures(
        "fake", lambda job, index: f"{job}.{index}", pycrews("pycrew"), lambda r: "",
        seconds_suspect=30.0, confirm=confirm, keeps_ended=keeps_ended,
    )


def test_a_listing_that_loses_every_job_is_suspect_until_confirmed_or_long_missing() -> None:
    """PBS Pro's qstat with no "Jobs" key, LSF's "JOBS":0: on the code before this test two such
    listings made running and queued jobs read as ended (and core deleted and resubmitted them)."""
    asked: list[list[str]] = []
    answer: set[tuple[str, int]] | None = None

    def confirm(records: list[JobRecord]) -> set[tuple[str, int]] | None:
        asked.append([r.id for r in records])
        return answer

    seen = suspicious(confirm)
    seen.update([record(1, "running"), record(2, "running")], asked=1.0, now=1.0)
    assert seen.update([], asked=2.0, now=2.0) == [] and asked == [], "one listing without them: not even asked"
    assert seen.update([], asked=3.0, now=3.0) == [] and asked == [["7.1", "7.2"]], "the scheduler knows them"
    assert seen.update([], asked=20.0, now=20.0) == []
    answer = {("7", 2)}
    assert [r.id for r in seen.update([], asked=21.0, now=21.0)] == ["7.2"], "the scheduler says 7.2 is gone"
    answer = None
    assert [r.id for r in seen.update([], asked=32.5, now=32.5)] == ["7.2", "7.1"], "missing for 30 s"


def test_an_element_last_seen_waiting_or_missing_from_a_history_listing_is_suspect() -> None:
    seen = suspicious()
    seen.update([record(1, "running"), record(2), record(3, "running")], asked=1.0, now=1.0)
    seen.update([record(3, "running")], asked=2.0, now=2.0)
    assert [r.id for r in seen.update([record(3, "running")], asked=3.0, now=3.0)] == ["7.1"], (
        "a running element that left while others stay is gone; the waiting one is suspect"
    )
    assert [r.id for r in seen.update([record(3, "running")], asked=32.5, now=32.5)] == ["7.1", "7.2"]
    history = suspicious(keeps_ended=True)
    history.update([record(1, "running"), record(2, "running")], asked=1.0, now=1.0)
    history.update([record(2, "running")], asked=2.0, now=2.0)
    assert history.update([record(2, "running")], asked=3.0, now=3.0) == [], "the listing keeps ended jobs"
    cancelled = suspicious()
    cancelled.update([record(1), record(2)], asked=1.0, now=1.0)
    cancelled.cancelled(["7.1", "7.2"], now=1.5)
    cancelled.update([], asked=2.0, now=2.0)
    assert [r.status for r in cancelled.update([], asked=3.0, now=3.0)] == ["cancelled"] * 2, "cancelled here: not suspect"


def test_jobs_a_listing_lost_are_not_ended_when_the_scheduler_still_knows_them(fake: Fake) -> None:
    cli = fake.cli(seconds_poll=0)
    launch(cli, 2)
    assert [w.status for w in cli.workers("ctl1")] == ["pending"] * 2
    (fake.state / "hide").write_text("1\n")  # flist exits 0 and prints nothing: the jobs are still there
    for _ in range(4):
        assert cli.workers("ctl1") == []
    (fake.state / "hide").unlink()
    assert [w.status for w in cli.workers("ctl1")] == ["pending"] * 2
    assert len(fake.jobs()) == 2


def test_an_element_last_seen_waiting_may_never_have_started(fake: Fake) -> None:
    """Its reason says so (a user's scancel of a pending element read as a worker that exited)."""
    cli = fake.cli(seconds_poll=0)
    launch(cli, 1)
    departed = Departures("fake", cli.element_handle, pycrews(cli.job_name_prefix), cli.departed_hint)
    was = next(r for r in cli.list_jobs() if r.status == "pending")
    reason = departed._departed(was).reason
    assert "last seen pending" in reason and "or was cancelled from outside while it waited" in reason, reason


def test_an_element_cancelled_from_outside_before_the_first_listing_is_ended_once_the_scheduler_confirms(
    fake: Fake,
) -> None:
    """Probe F on real SLURM: scancel of a waiting element ~0.2 s after its submit left no trace,
    and before this test its launch failed only at ``seconds_launch`` (30 s), with no reason."""
    cli = fake.cli(seconds_poll=0)
    launch(cli, 1)
    set_jobs(fake, [])  # cancelled from outside before pycrew listed it
    assert cli.workers("ctl1") == [], "missing from one listing: not yet"
    (gone,) = cli.workers("ctl1")
    assert gone.id == "100.1" and gone.ended and gone.status == "done" and gone.instance and gone.worker == 1
    assert "before pycrew first listed it" in gone.reason and "cancelled from outside" in gone.reason, gone.reason


def test_an_element_no_listing_has_shown_leaves_only_when_the_scheduler_says_so(fake: Fake) -> None:
    """A listing that cannot show pycrew's new jobs (a site's wrapper, a lagging daemon) must not
    fail their launches on time alone: only the scheduler's own word ends them."""
    cli = fake.cli(seconds_poll=0)
    (fake.state / "hide").write_text("1\n")  # the listing shows nothing; the jobs are there
    launch(cli, 2)
    cli.departures.seconds_suspect = 0.0  # would end suspects on time alone
    for _ in range(4):
        assert cli.workers("ctl1") == []
    assert (fake.state / "query_calls").exists(), "the scheduler was asked about them"
    (fake.state / "hide").unlink()
    assert [w.status for w in cli.workers("ctl1")] == ["pending"] * 2
    assert cli.departures.unlisted == 0, "listed: tracked as any other element from now on"


def test_a_listing_asked_before_the_submit_is_not_a_miss() -> None:
    seen = suspicious(confirm=lambda records: {(r.array_id, r.index) for r in records})
    seen.submitted([record(1)], now=5.0)
    assert seen.update([], asked=4.0, now=6.0) == []
    assert seen.update([], asked=4.5, now=6.5) == [], "asked before the submit: it could not show the job"
    assert seen.update([], asked=7.0, now=7.0) == []
    assert [r.id for r in seen.update([], asked=8.0, now=8.0)] == ["7.1"], "two listings after it, and confirmed"


def test_an_unlisted_element_pycrew_cancelled_reads_cancelled_and_old_submits_are_forgotten() -> None:
    seen = suspicious()  # no confirm: the scheduler cannot say
    seen.submitted([record(1), record(2)], now=1.0)
    seen.cancelled(["7.1"], now=1.5)
    seen.update([], asked=2.0, now=2.0)
    assert [(r.id, r.status) for r in seen.update([], asked=3.0, now=3.0)] == [("7.1", "cancelled")]
    later = 2.0 + SECONDS_KEPT
    assert [r.id for r in seen.update([], asked=later, now=later)] == ["7.1"], "7.2: never listed, never confirmed"
    assert seen.unlisted == 0 and ("7", 2) not in seen._live, "never listed nor confirmed: dropped after SECONDS_KEPT"

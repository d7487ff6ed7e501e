"""The scheduler layer's runner: retries, lost submit replies, the circuit breaker, cancel.

The scheduler here is three real shell scripts (``fsub``, ``flist``, ``fcancel``) keeping
their jobs in a file; files in their state directory make the next calls fail the way
real schedulers do (a transient "connection refused", a reply lost after the job was
taken, a hang past the command timeout, a permanent rejection). What runs is the real
:class:`pycrew.scheduler.SchedulerCLI` code and real processes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pycrew import OptionsError, WorkerCall
from pycrew.plugin_api import LauncherInfo
from pycrew.scheduler import (
    JobRecord,
    SchedulerCLI,
    SchedulerError,
    SchedulerOptions,
    SubmitBreaker,
    memory_to_megabytes,
    normalise,
    seconds_to_hms,
    walltime_to_seconds,
)
from pycrew.testing.scheduler_calls import launcher_info, make_calls

# fsub: submit. The tag is read from the script's "#FAKE --tag=" line. Fault files (each
# holds a count, decremented per use): fail (exit 1, transient text), reject (exit 2,
# permanent), lose (the job is taken, then exit 1 with a transient text), hang (the job is
# taken, then the command sleeps past any timeout the tests set).
FSUB = r"""#!/bin/bash
state="$(dirname "$0")/../state"
echo call >> "$state/sub_calls"
take() { f="$state/$1"; [ -s "$f" ] || return 1; n=$(cat "$f"); [ "$n" -gt 0 ] || return 1; echo $((n - 1)) > "$f"; }
if take fail; then echo "fsub: error: connection refused by the controller" >&2; exit 1; fi
if take reject; then echo "fsub: error: invalid account 'nope'" >&2; exit 2; fi
tag=$(grep -m1 '^#FAKE --tag=' "$1" | cut -d= -f2-)
id=$(( $(wc -l < "$state/jobs" 2>/dev/null || echo 0) + 100 ))
n=$(grep -m1 '^#FAKE --size=' "$1" | cut -d= -f2)
for i in $(seq 1 "$n"); do echo "$id|$i|$tag|PEND" >> "$state/jobs"; done
if take lose; then echo "fsub: error: connection timed out waiting for the reply" >&2; exit 1; fi
if take break; then echo "fsub: error: the reply could not be decoded" >&2; exit 1; fi
if take garble; then echo "Submitted job to workq (site fsub wrapper v2)"; exit 0; fi
if take hang; then sleep 30; fi
echo "Submitted $id"
"""
FLIST = r"""#!/bin/bash
state="$(dirname "$0")/../state"
f="$state/list_fail"
if [ -s "$f" ] && [ "$(cat "$f")" -gt 0 ]; then echo "flist: error: permission denied" >&2; exit 3; fi
if [ -e "$state/hide" ]; then exit 0; fi  # a daemon that has not registered its new jobs yet
cat "$state/jobs" 2>/dev/null || true
"""
FCANCEL = r"""#!/bin/bash
state="$(dirname "$0")/../state"
take() { f="$state/$1"; [ -s "$f" ] || return 1; n=$(cat "$f"); [ "$n" -gt 0 ] || return 1; echo $((n - 1)) > "$f"; }
if take cancel_hang; then sleep 30; fi
f="$state/cancel_fail"
if [ -s "$f" ] && [ "$(cat "$f")" -gt 0 ]; then echo $(( $(cat "$f") - 1 )) > "$f"; echo "fcancel: error: try again later" >&2; exit 1; fi
rc=0
for h in "$@"; do
  if grep -q "^${h%.*}|${h#*.}|" "$state/jobs" 2>/dev/null; then
    grep -v "^${h%.*}|${h#*.}|" "$state/jobs" > "$state/jobs.new"; mv "$state/jobs.new" "$state/jobs"
  else
    echo "fcancel: error: job $h does not exist" >&2; rc=1
  fi
done
exit $rc
"""
# fquery: the jobs named (handles), as flist prints them; "does not exist" for the others.
FQUERY = r"""#!/bin/bash
state="$(dirname "$0")/../state"
echo call >> "$state/query_calls"
rc=0
for h in "$@"; do
  grep "^${h%.*}|${h#*.}|" "$state/jobs" 2>/dev/null || { echo "fquery: error: job $h does not exist" >&2; rc=1; }
done
exit $rc
"""


class FakeOptions(SchedulerOptions):
    owner: ClassVar[str] = "fake"
    directive_prefix: ClassVar[str] = "#FAKE"


class FakeCLI(SchedulerCLI):
    """The fake scheduler's syntax: builders and parsers, nothing else."""

    directive_prefix = "#FAKE"
    array_index_variable = "FAKE_INDEX"

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        return [f"#FAKE --tag={tag}", f"#FAKE --size={len(calls)}"]

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        return [self.command("fsub"), str(script)]

    def parse_submit(self, stdout: str) -> str:
        words = stdout.split()
        if len(words) != 2 or not words[1].isdigit():
            raise SchedulerError(f"fsub printed no job id: {stdout!r}", ["fsub"], 0)
        return words[1]

    def element_handle(self, job_id: str, index: int) -> str:
        return f"{job_id}.{index}"

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        return [self.command("fcancel"), *handles]

    def is_gone(self, message: str) -> bool:
        return "does not exist" in message

    def list_command(self) -> list[str]:
        return [self.command("flist")]

    def query_command(self, records: Sequence[JobRecord]) -> list[str]:
        return [self.command("fquery"), *(self.element_handle(r.array_id, r.index) for r in records)]

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        records = []
        for line in stdout.splitlines():
            job, index, tag, state = line.split("|")
            status = normalise(state, {"PEND": "pending", "RUN": "running", "DONE": "done"})
            records.append(JobRecord(f"{job}.{index}", job, int(index), "pycrew-x", tag, state, status=status))
        return records

    def site_array_max(self) -> int:
        return 2


class Fake:
    """The fake scheduler's directory: bin/ with the commands, state/ with jobs and faults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.state = root / "state"
        self.bin.mkdir()
        self.state.mkdir()
        for name, text in (("fsub", FSUB), ("flist", FLIST), ("fcancel", FCANCEL), ("fquery", FQUERY)):
            path = self.bin / name
            path.write_text(text)
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def fault(self, name: str, count: int) -> None:
        (self.state / name).write_text(f"{count}\n")

    def jobs(self) -> list[str]:
        path = self.state / "jobs"
        return path.read_text().splitlines() if path.exists() else []

    def sub_calls(self) -> int:
        path = self.state / "sub_calls"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def cli(self, **options: Any) -> FakeCLI:
        opts = FakeOptions(directory=str(self.root / "private"), bin_directory=str(self.bin), **options)
        return FakeCLI("fake", opts)


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


def launch(cli: FakeCLI, n: int) -> list[Any]:
    calls = make_calls("pass", n, launcher="fake")
    return cli.launch(launcher_info(cli.options, calls), calls)


def test_a_batch_goes_out_as_arrays_of_the_site_limit_and_scripts_are_removed(fake: Fake) -> None:
    cli = fake.cli()
    handles = launch(cli, 3)
    assert handles == ["100.1", "100.2", "102.1"], "3 workers with an array limit of 2: two arrays"
    assert len(fake.jobs()) == 3 and fake.sub_calls() == 2
    assert list((fake.root / "private" / "scripts").iterdir()) == [], "job scripts must be removed after submission"


def test_transient_submit_failures_are_retried_with_backoff_and_submit_once(fake: Fake) -> None:
    cli = fake.cli()
    fake.fault("fail", 2)
    started = time.monotonic()
    assert launch(cli, 2) == ["100.1", "100.2"]
    waited = time.monotonic() - started
    assert fake.sub_calls() == 3 and len(fake.jobs()) == 2, fake.jobs()
    assert cli.retries == 2
    assert waited >= 0.5 + 1.0, f"the backoff waits 0.5 s then 1 s; the launch took {waited:.2f} s"


def test_a_lost_submit_reply_is_found_by_its_tag_and_not_resubmitted(fake: Fake) -> None:
    cli = fake.cli()
    fake.fault("lose", 1)
    assert launch(cli, 2) == ["100.1", "100.2"]
    assert fake.sub_calls() == 1, "the job was taken: it must not be submitted again"
    assert len(fake.jobs()) == 2 and cli.found_by_tag == 1


def test_a_submit_that_hangs_past_the_timeout_is_found_by_its_tag(fake: Fake) -> None:
    cli = fake.cli(seconds_command_timeout=1.0)
    fake.fault("hang", 1)
    assert launch(cli, 1) == ["100.1"]
    assert fake.sub_calls() == 1 and len(fake.jobs()) == 1


def test_a_lost_reply_with_an_unreadable_queue_is_an_error_not_a_second_submit(fake: Fake) -> None:
    cli = fake.cli()
    fake.fault("lose", 1)
    fake.fault("list_fail", 1)
    with pytest.raises(SchedulerError, match="not submitting again") as caught:
        launch(cli, 1)
    assert "permission denied" in str(caught.value)
    assert fake.sub_calls() == 1, "whether the job was taken is unknown: it must not be submitted again"


def test_a_permanent_rejection_fails_at_once_with_the_schedulers_message(fake: Fake) -> None:
    cli = fake.cli()
    fake.fault("reject", 1)
    with pytest.raises(SchedulerError, match=r"exit status 2.*invalid account 'nope'") as caught:
        launch(cli, 1)
    assert not caught.value.transient
    assert fake.sub_calls() == 1 and cli.retries == 0


def test_transient_failures_give_up_after_command_attempts(fake: Fake) -> None:
    cli = fake.cli(command_attempts=2, seconds_retry_max=0.1)
    fake.fault("fail", 5)
    with pytest.raises(SchedulerError, match="connection refused") as caught:
        launch(cli, 1)
    assert caught.value.transient
    assert fake.sub_calls() == 2 and fake.jobs() == []


def test_a_failed_second_array_cancels_the_first(fake: Fake) -> None:
    cli = fake.cli(command_attempts=1)
    (fake.state / "sub_calls").write_text("")
    # the first array goes through, the second is rejected
    fsub = fake.bin / "fsub"
    fsub.write_text(FSUB.replace('if take reject;', 'if [ "$(wc -l < "$state/sub_calls")" -ge 2 ] && take reject;'))
    fake.fault("reject", 1)
    with pytest.raises(SchedulerError, match="invalid account"):
        launch(cli, 3)
    assert fake.jobs() == [], "the first array must be cancelled when the second fails"


def test_the_circuit_breaker_stops_submitting_after_repeated_failures_then_tries_again(fake: Fake) -> None:
    cli = fake.cli(submit_failures_max=2, seconds_submit_pause=1.0)
    fake.fault("reject", 2)
    for _ in range(2):
        with pytest.raises(SchedulerError, match="invalid account"):
            launch(cli, 1)
    with pytest.raises(SchedulerError, match=r"2 launches in a row failed.*stops submitting.*invalid account"):
        launch(cli, 1)
    assert fake.sub_calls() == 2, "an open breaker must not run the submit command"
    assert cli.breaker.trips == 1
    time.sleep(1.1)
    assert launch(cli, 1) == ["100.1"], "after the pause one launch goes through and closes the breaker"
    assert not cli.breaker.is_open and cli.breaker.failures == 0


def test_breaker_half_open_failure_opens_it_again() -> None:
    now = [0.0]
    breaker = SubmitBreaker("x", failures_max=3, seconds_pause=10, clock=lambda: now[0])
    for _ in range(3):
        breaker.check()
        breaker.failure(RuntimeError("boom"))
    with pytest.raises(SchedulerError, match="3 launches in a row failed"):
        breaker.check()
    now[0] = 10.5
    breaker.check()  # half-open: one try
    breaker.failure(RuntimeError("again"))
    with pytest.raises(SchedulerError, match="Last error: again"):
        breaker.check()
    assert breaker.trips == 2


def test_cancel_ignores_gone_jobs_and_retries_transient_failures(fake: Fake) -> None:
    cli = fake.cli()
    handles = launch(cli, 2)
    fake.fault("cancel_fail", 1)
    cli.cancel([*handles, "999.1"])
    assert fake.jobs() == [] and cli.retries == 1
    cli.cancel(handles)  # all gone now: no error


@pytest.mark.parametrize("how", ["listing unreadable", "every try failed"])
def test_a_submit_in_doubt_that_the_scheduler_took_after_all_is_cancelled_when_a_listing_shows_it(
    fake: Fake, how: str
) -> None:
    """On 33e082d such a job stayed in the queue, unknown to pycrew, until it started, and
    its worker was refused (seen on real SLURM: sbatch timed out against a stalled slurmctld,
    which took the job when it came back)."""
    cli = fake.cli(seconds_poll=0, command_attempts=2, seconds_retry_max=0.01)
    if how == "listing unreadable":
        fake.fault("lose", 1)  # the job is taken, the reply lost ...
        fake.fault("list_fail", 1)  # ... and the queue cannot be read to find out
    else:
        fake.fault("lose", 1)  # taken, reply lost; not listed yet, so tried again and ...
        fake.fault("fail", 1)  # ... that try fails too: given up
        (fake.state / "hide").write_text("1\n")
    with pytest.raises(SchedulerError):
        launch(cli, 2)
    assert len(fake.jobs()) == 2, "the scheduler has the job after all"
    fake.fault("list_fail", 0)
    (fake.state / "hide").unlink(missing_ok=True)
    cli.workers(None)  # a listing: the job in doubt is found and cancelled
    assert fake.jobs() == []
    launch(cli, 1)
    assert len(fake.jobs()) == 1, "only tags in doubt are cancelled"
    cli.workers(None)
    assert len(fake.jobs()) == 1


def test_a_submit_that_failed_for_good_after_the_scheduler_took_the_job_leaves_no_job(fake: Fake) -> None:
    """A submit command that exits 1 with a message that is no transient error, after the
    scheduler took the job (a reply that broke on its way): on 564d4ac that job ran as an
    orphan (a probe, on real SLURM). Its tag is now watched: a listing cancels it."""
    cli = fake.cli(seconds_poll=0, command_attempts=2, seconds_retry_max=0.01)
    fake.fault("break", 1)
    with pytest.raises(SchedulerError, match="could not be decoded"):
        launch(cli, 2)
    assert len(fake.jobs()) == 2, "the scheduler has the job"
    cli.workers(None)  # a listing: the job is found by its tag and cancelled
    assert fake.jobs() == []


def test_a_cancel_that_times_out_is_tried_again(fake: Fake) -> None:
    """On 33e082d a cancel command past seconds_command_timeout (a scheduler daemon that
    stalls) ended the cancel for good: the jobs stayed queued, and ran later for no one."""
    cli = fake.cli(seconds_command_timeout=1.0)
    handles = launch(cli, 2)
    fake.fault("cancel_hang", 1)
    cli.cancel(handles)
    assert fake.jobs() == [] and cli.retries == 1


def test_workers_carry_the_normalised_status(fake: Fake) -> None:
    cli = fake.cli(seconds_poll=0)
    calls = make_calls("pass", 2, launcher="fake", controller_id="ctl1")
    cli.launch(launcher_info(cli.options, calls), calls)
    workers = cli.workers("ctl1")
    assert [(w.id, w.status, w.instance, w.worker) for w in workers] == [
        ("100.1", "pending", calls[0].instance, 1), ("100.2", "pending", calls[1].instance, 2)
    ]
    assert cli.workers("someone-else") == []


def test_a_missing_command_names_bin_directory(tmp_path: Path) -> None:
    cli = FakeCLI("fake", FakeOptions(directory=str(tmp_path), bin_directory=str(tmp_path / "nowhere")))
    with pytest.raises(SchedulerError, match=r"'.*fsub' not found.*bin_directory="):
        launch(cli, 1)


def test_job_record_rejects_an_unnormalised_status() -> None:
    with pytest.raises(ValueError, match=r"status must be one of.*got 'PEND'"):
        JobRecord("1.1", "1", 1, "n", "", "PEND", status="PEND")
    assert normalise("r", {"r": "running"}) == "running"
    assert normalise("weird", {"r": "running"}) == "unknown"


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00:01", 1), ("02:00:00", 7200), ("1-00:00:00", 86400), ("100:30:00", 361800)]
)
def test_walltime_formats(text: str, seconds: int) -> None:
    assert walltime_to_seconds(text) == seconds
    assert FakeOptions(walltime=text).walltime_seconds() == seconds


def test_unit_conversions() -> None:
    assert seconds_to_hms(3599.2) == "01:00:00"
    assert memory_to_megabytes("4G") == 4096 and memory_to_megabytes("800k") == 1
    assert memory_to_megabytes("1T") == 1024 * 1024
    assert FakeOptions(seconds_walltime=90.5).walltime_seconds() == 91
    assert FakeOptions(memory="512M").memory_megabytes() == 512


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"walltime": "2h"}, r"fake option 'walltime' must look like HH:MM:SS"),
        ({"walltime": "01:00:00", "seconds_walltime": 60.0}, "both set the run-time limit"),
        ({"memory": "4 GB"}, r"fake option 'memory' must be a whole number with a unit"),
        ({"cpus": 0}, r"fake option 'cpus' must be >= 1"),
        ({"queue": "a b"}, r"fake option 'queue' must be a non-empty name"),
        ({"script_directives": ("#SBATCH --x",)}, r"must be single lines starting with '#FAKE '"),
        ({"bin_directory": " /x"}, "without surrounding spaces"),
        ({"command_attempts": 0}, r"'command_attempts' must be >= 1"),
        ({"submit_failures_max": 0}, r"'submit_failures_max' must be >= 1"),
        ({"seconds_walltime_margin": -1.0}, r"'seconds_walltime_margin' must be a finite number of seconds >= 0"),
        ({"seconds_walltime_margin": float("inf")}, r"'seconds_walltime_margin' must be a finite"),
    ],
)
def test_shared_options_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        FakeOptions(**options)


def test_check_reserved_attached_and_word_options() -> None:
    options = FakeOptions()
    with pytest.raises(OptionsError, match=r"must not set -t \(got '-t5'\)"):
        options.check_reserved("submit_args", "-t5", ("-t",), "arrays")
    options.check_reserved("submit_args", "-terse", ("-t",), "arrays", attached=False)
    with pytest.raises(OptionsError, match="must not set -t"):
        options.check_reserved("submit_args", "-t", ("-t",), "arrays", attached=False)


def test_private_directory_is_0700(fake: Fake) -> None:
    cli = fake.cli()
    path = cli.write_script("#!/bin/bash\n")
    assert stat.S_IMODE(os.stat(cli.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_listing_is_asked_again_sooner_only_for_jobs_waiting_for_a_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A pending job without a node is about to start: its listing goes stale after a fifth
    of seconds_poll. A job that ended without one (cancelled while it waited, listed by
    ``squeue --states=all``) is waiting for nothing."""
    from types import SimpleNamespace

    import pycrew.scheduler.listing as listing_module

    now = [100.0]
    monkeypatch.setattr(listing_module, "time", SimpleNamespace(monotonic=lambda: now[0]))

    class Counting(FakeCLI):
        asked = 0
        status = "cancelled"

        def list_jobs(self) -> list[JobRecord]:
            self.asked += 1
            return [JobRecord("1.1", "1", 1, "pycrew-x", "t", "X", status=self.status)]

    cli = Counting("fake", FakeOptions(directory=str(tmp_path), seconds_poll=1.0))
    cli.listing()
    now[0] += 0.5
    cli.listing()
    assert cli.asked == 1, "a job that ended waits for no node: the listing holds for seconds_poll"
    cli.status = "pending"
    now[0] += 1.0
    cli.listing()
    now[0] += 0.3
    cli.listing()
    assert cli.asked == 3, "a job waiting for a node: the listing is asked again after a fifth of seconds_poll"


def test_a_listing_asked_for_again_at_once_goes_stale_sooner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Core's crash watch asks every 0.1 s about a lost worker until it is reported ended. SGE
    shows a task deleted with qdel as ``dr`` for about a second, then as a zombie that does not
    say why: a listing held for all of seconds_poll missed it (a CI run said "z (done)" of a
    task deleted with qdel). Before: one listing for the whole second."""
    from types import SimpleNamespace

    import pycrew.scheduler.listing as listing_module

    now = [100.0]
    monkeypatch.setattr(listing_module, "time", SimpleNamespace(monotonic=lambda: now[0]))

    class Counting(FakeCLI):
        asked = 0

        def list_jobs(self) -> list[JobRecord]:
            self.asked += 1
            return [JobRecord("1.1", "1", 1, "pycrew-x", "t", "R", status="running", host="node1")]

    cli = Counting("fake", FakeOptions(directory=str(tmp_path), seconds_poll=1.0))
    for _ in range(3):  # a caller asking about once a second half as often: one listing per seconds_poll
        cli.listing()
        now[0] += 0.5
    assert cli.asked == 2
    now[0] += 1.0
    for _ in range(8):  # asked every 0.125 s: a fresh listing once the last is a fifth of seconds_poll old
        cli.listing()
        now[0] += 0.125
    assert cli.asked == 3 + 3, cli.asked


@pytest.mark.parametrize(
    ("options", "life"),
    [
        ({}, None),  # no limit: the queue's default, which pycrew does not know
        ({"walltime": "01:00:00"}, 3540.0),
        ({"seconds_walltime": 600.5, "seconds_walltime_margin": 120.0}, 481.0),  # 601 s (rounded up) - 120
        ({"seconds_walltime": 20.0}, 10.0),  # the margin is at most half the limit
        ({"walltime": "01:00:00", "seconds_walltime_margin": 0.0}, 3600.0),
    ],
)
def test_a_workers_life_is_the_time_limit_less_the_margin(options: dict[str, Any], life: float | None) -> None:
    assert FakeOptions(**options).seconds_worker_life() == life


def test_workers_are_launched_to_leave_before_the_time_limit(fake: Fake) -> None:
    """Each call's seconds_wall is capped by the options' limit less the margin; a shorter
    one (the controller's own seconds_wall) is kept; instance and token stay."""
    cli = fake.cli(walltime="00:10:00")
    calls = make_calls("pass", 2, launcher="fake")
    calls[1] = calls[1].with_command(dataclasses.replace(calls[1].command, seconds_wall=100.0))
    capped = cli.within_time_limit(calls)
    assert [c.seconds_wall for c in capped] == [540.0, 100.0]
    assert [c.command.seconds_wall for c in capped] == [540.0, 100.0]
    assert [(c.instance, c.token) for c in capped] == [(c.instance, c.token) for c in calls]
    assert fake.cli().within_time_limit(calls) is calls  # no limit: unchanged

    class Recording(FakeCLI):
        scripts: ClassVar[list[str]] = []

        def render_script(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
            text = super().render_script(launcher, calls, tag)
            self.scripts.append(text)
            return text

    recording = Recording("fake", cli.options)
    launch(recording, 1)  # what goes out runs a worker told so
    assert re.search(r"--seconds-wall 540(\.0)?\b", recording.scripts[0]), recording.scripts[0]


@pytest.mark.parametrize("listed", [True, False])
def test_a_submit_that_exits_0_with_an_unreadable_reply_is_looked_up_by_its_tag_never_submitted_again(
    fake: Fake, listed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """On the code before this test a site wrapper's reply ("Submitted job to workq") was a
    permanent error: the tag was never looked up and every launch submitted again, leaving
    arrays no handle and no terminate() reached."""
    cli = fake.cli(seconds_poll=0, seconds_retry_max=0.01)
    fake.fault("garble", 1)
    if listed:
        assert launch(cli, 2) == ["100.1", "100.2"], "the array carrying the tag is the answer"
        assert cli.found_by_tag == 1 and "site fsub wrapper" in caplog.text
    else:
        (fake.state / "hide").write_text("1\n")  # not listed yet
        with pytest.raises(SchedulerError) as caught:
            launch(cli, 2)
        message = str(caught.value)
        assert "exited 0" in message and "Submitted job to workq (site fsub wrapper v2)" in message
        assert "workers may have been submitted" in message and "this array is not submitted again" in message
        assert not caught.value.transient
        (fake.state / "hide").unlink()
        assert len(fake.jobs()) == 2
        cli.cancel(["999.1"])  # terminate() of anything: the queue is listed and the job in doubt cancelled
        assert fake.jobs() == []
    assert fake.sub_calls() == 1, "exit status 0: the scheduler took the job; it must not be submitted again"


@pytest.mark.parametrize("found_by", ["listing", "terminate"])
def test_a_duplicate_array_taken_late_is_cancelled_by_a_listing_or_by_terminate(
    fake: Fake, found_by: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A try that failed (a stalled daemon) and was tried again may be taken late, leaving two
    arrays with the same tag. On the code before this test the second stayed queued, unknown."""
    cli = fake.cli(seconds_poll=0, seconds_retry_max=0.01)
    fake.fault("fail", 1)
    handles = launch(cli, 2)
    assert handles == ["100.1", "100.2"] and fake.sub_calls() == 2
    tag = fake.jobs()[0].split("|")[2]
    with (fake.state / "jobs").open("a") as jobs:  # the failed try, taken late
        jobs.write(f"102|1|{tag}|PEND\n102|2|{tag}|PEND\n")
    if found_by == "listing":
        cli.workers(None)
        assert [line.split("|")[0] for line in fake.jobs()] == ["100", "100"], "the duplicate is cancelled"
        assert "102 (a duplicate of 100)" in caplog.text
    else:
        cli.cancel(handles)
        assert fake.jobs() == [], "terminate() cancels every job carrying the tag"


@pytest.mark.parametrize("submit", [True, False], ids=["a submit: killed", "another command: left to finish"])
def test_a_submit_still_running_when_the_program_exits_is_killed(tmp_path: Path, submit: bool) -> None:
    """A submit that hung past the controller's end ran on after the program exited (its
    hook thread is a daemon thread): a job it got accepted then ran with no controller. A
    cancel that the last termination left running must still finish (a probe's review)."""
    import subprocess
    import sys
    import textwrap

    pidfile = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import threading, time
        from pycrew.scheduler.commands import CommandRunner
        from pycrew.scheduler import SchedulerOptions
        runner = CommandRunner("fake", SchedulerOptions())
        argv = ["sh", "-c", "echo $$ > {pidfile}; exec sleep 120"]
        threading.Thread(target=runner.run, args=(argv,), kwargs={{"kill_at_exit": {submit}}}, daemon=True).start()
        deadline = time.monotonic() + 30
        while not open("{pidfile}", "a+").seek(0, 2) and time.monotonic() < deadline:
            time.sleep(0.05)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid = int(pidfile.read_text())
    try:
        if not submit:
            time.sleep(1.0)
            os.kill(pid, 0)  # still running (ProcessLookupError otherwise)
            assert "killing" not in done.stderr, done.stderr
            return
        assert "killing sh -c" in done.stderr and "still running as the program exits" in done.stderr, done.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"the submit (pid {pid}) still runs after the program exited")
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_only_the_submit_is_marked_to_be_killed_at_exit(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = fake.cli()
    seen: list[tuple[str, bool]] = []
    real = type(cli).run

    def run(self: Any, argv: Sequence[str], env: Any = None, input: str | None = None, kill_at_exit: bool = False) -> Any:
        seen.append((Path(argv[0]).name, kill_at_exit))
        return real(self, argv, env, input, kill_at_exit=kill_at_exit)

    monkeypatch.setattr(type(cli), "run", run)
    handles = launch(cli, 2)
    cli.cancel(handles)
    assert ("fsub", True) in seen and all(killed == (name == "fsub") for name, killed in seen), seen

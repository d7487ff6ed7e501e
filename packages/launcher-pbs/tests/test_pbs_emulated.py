"""The pbs launcher against the PBS emulator: the job script's hand-over, the monitor's
statuses, logs, array cutting, and the scheduler layer's reliability on PBS's own errors
(transient failures retried with backoff, a lost qsub reply found by its tag, the circuit
breaker). Both flavours unless a test says otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.scheduler import SchedulerError
from pycrew.testing.scheduler_calls import RECORD_AND_SLEEP, WHO_AM_I, launcher_info, make_calls
from pycrew_pbs import PbsCLI, PbsOptions, plugin

FLAVOURS = pytest.mark.parametrize("pbs_emulator", ["pbspro", "torque"], indirect=True)


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            assert value, f"timed out after {timeout} s waiting for {what}"
            return value
        time.sleep(0.1)


def pbs_options(emulator: Any, tmp_path: Path, **values: Any) -> PbsOptions:
    return PbsOptions(
        flavour=emulator.flavour, bin_directory=str(emulator.bin_directory), directory=str(tmp_path / "pbs"), **values
    )


def launch(client: PbsCLI, calls: list[Any]) -> list[Any]:
    return client.launch(launcher_info(client.options, calls, "pbs"), calls)


def qsubs(emulator: Any) -> int:
    return sum(1 for call in emulator.calls if call.command == "qsub")


def recorded(out: Path, calls: list[Any], timeout: float = 20) -> dict[str, list[str]]:
    """What each stand-in wrote: ``{instance: [token, token variable names]}``."""
    wait_for(lambda: all((out / c.instance).exists() for c in calls), timeout, "every worker stand-in to start")
    return {c.instance: (out / c.instance).read_text().split("\n") for c in calls}


# -- the job script --------------------------------------------------------------------------


@FLAVOURS
@pytest.mark.parametrize("n", [1, 3])
def test_each_element_finds_its_instance_and_token(pbs_emulator: Any, tmp_path: Path, n: int) -> None:
    """Arrays (-J/-t) and a batch of one (a plain job: its script sets the index variable) hand over right."""
    out = tmp_path / "out"
    out.mkdir()
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path))
    calls = make_calls(RECORD_AND_SLEEP, n, env={"OUT": str(out), "SLEEP": "30"})
    handles = launch(client, calls)
    seq = handles[0].split("[")[0].split(".")[0]
    expected = [f"{seq}[{i}].pbs-head.emu.local" for i in range(1, n + 1)] if n > 1 else [f"{seq}.pbs-head.emu.local"]
    assert handles == expected
    seen = recorded(out, calls)
    for call in calls:
        assert seen[call.instance] == [call.token, "PYCREW_TOKEN"], f"{call.instance}: wrong token or a stray token variable"
    client.cancel(handles)
    assert list((tmp_path / "pbs" / "scripts").iterdir()) == [], "job scripts are removed once submitted"


@FLAVOURS
def test_without_the_environment_only_the_token_crosses_over(
    pbs_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCREW_PBS_TEST_MARKER", "leaked")
    out = tmp_path / "out"
    out.mkdir()
    code = WHO_AM_I + (
        "open(os.path.join(os.environ['OUT'], instance), 'w').write(token + '\\n' + os.environ.get('PYCREW_PBS_TEST_MARKER', '-'))"
    )
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, export_environment=False))
    calls = make_calls(code, 2, env={"OUT": str(out)})
    launch(client, calls)
    seen = recorded(out, calls)
    assert all(seen[c.instance] == [c.token, "-"] for c in calls), seen
    submit = next(call for call in pbs_emulator.calls if call.command == "qsub")
    assert "-V" not in submit.argv and calls[0].batch_key not in " ".join(submit.argv)


@FLAVOURS
def test_a_batch_beyond_array_size_max_goes_out_as_several_arrays(pbs_emulator: Any, tmp_path: Path) -> None:
    """5 workers, at most 2 per array: arrays of 2, 2 and a plain job, each element the right instance."""
    out = tmp_path / "out"
    out.mkdir()
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, array_size_max=2))
    calls = make_calls(RECORD_AND_SLEEP, 5, env={"OUT": str(out), "SLEEP": "30"})
    handles = launch(client, calls)
    assert [h.split(".")[0] for h in handles] == ["100[1]", "100[2]", "101[1]", "101[2]", "102"]
    seen = recorded(out, calls)
    assert all(seen[c.instance][0] == c.token for c in calls)
    workers = {w.handle: w for w in client.workers(calls[0].controller_id)}
    assert [(workers[h].instance, workers[h].worker) for h in handles] == [(c.instance, c.worker) for c in calls]
    assert client.departures.unlisted == 0, "the listing writes the ids of what was submitted as the submit does"
    client.cancel(handles)


# -- the monitor -----------------------------------------------------------------------------


@FLAVOURS
def test_the_monitor_reports_statuses_and_exit_codes(pbs_emulator: Any, tmp_path: Path) -> None:
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, seconds_poll=0.0))
    code = "import os, sys, time; i = int(os.environ[sys.argv[sys.argv.index('--index-env') + 1]]); time.sleep(30 if i == 3 else 0); sys.exit(3 if i == 2 else 0)"
    calls = make_calls(code, 3)
    handles = launch(client, calls)

    def statuses() -> dict[str, tuple[str | None, int | None]]:
        return {w.handle: (w.status, w.exit_code) for w in client.workers(calls[0].controller_id)}

    wait_for(lambda: statuses().get(handles[2], (None,))[0] == "running" and statuses()[handles[1]][0] == "failed", 20, "states")
    now = statuses()
    assert now[handles[0]] == ("done", 0) and now[handles[1]] == ("failed", 3), now
    client.cancel([handles[2]])
    wait_for(lambda: statuses()[handles[2]] == ("cancelled", 271), 20, "the deleted element to be listed as cancelled")
    ended = [w for w in client.workers(None) if w.handle in handles]
    assert all(w.ended for w in ended) and {w.state for w in ended} <= {"F", "X", "C"}
    client.cancel(handles)  # finished jobs: no error


@FLAVOURS
def test_deleting_queued_unknown_and_finished_jobs_is_no_error(pbs_emulator: Any, tmp_path: Path) -> None:
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, seconds_poll=0.0))
    pbs_emulator.hold_jobs()
    calls = make_calls("pass", 2)
    handles = launch(client, calls)
    assert {w.status for w in client.workers(calls[0].controller_id)} == {"pending"}
    client.cancel(handles)
    wait_for(lambda: {w.status for w in client.workers(calls[0].controller_id)} == {"cancelled"}, 20, "cancelled")
    assert all(w.exit_code is None for w in client.workers(calls[0].controller_id)), "deleted before it ran: no Exit_status"
    client.cancel([*handles, "999.pbs-head.emu.local", "998[3].pbs-head.emu.local"])


# -- logs ------------------------------------------------------------------------------------


@FLAVOURS
def test_logs_of_running_and_ended_workers(pbs_emulator: Any, tmp_path: Path) -> None:
    """PBS Pro writes the output in place while the job runs (direct_write); TORQUE copies it at the end."""
    options = pbs_options(pbs_emulator, tmp_path)
    code = (
        "import os, sys, time; i = os.environ[sys.argv[sys.argv.index('--index-env') + 1]]; "
        "print('hello from', i, flush=True); print('oops', file=sys.stderr, flush=True); time.sleep(30)"
    )
    calls = make_calls(code, 2)
    info = launcher_info(options, calls, "pbs")
    handles = plugin.plugin.launch(info, options, calls)
    try:
        if pbs_emulator.flavour == "pbspro":
            for index, handle in enumerate(handles, 1):
                text = wait_for(lambda h=handle: "oops" in _logs(info, options, h) and _logs(info, options, h), 20, handle)
                assert f"hello from {index}\n" in text, f"{handle}: {text!r}"
        else:
            pbs_emulator.wait_for_state(handles[0], "running")
            with pytest.raises(pycrew.LogsUnavailableError, match="does not exist \\(yet\\)"):
                plugin.plugin.logs(info, options, handles[0], None)
    finally:
        plugin.plugin.terminate(info, options, handles)
    for index, handle in enumerate(handles, 1):
        pbs_emulator.wait_for_state(handle, "finished")
        text = plugin.plugin.logs(info, options, handle, None) or ""
        assert f"hello from {index}\n" in text and "oops" in text, f"{handle}: {text!r}"
    assert plugin.plugin.logs(info, options, handles[0], 1) == "oops\n"
    with pytest.raises(pycrew.LogsUnavailableError, match="needs a PBS job id"):
        plugin.plugin.logs(info, options, "rm -rf ~", None)
    with pytest.raises(pycrew.LogsUnavailableError, match="not in qstat's listing"):
        plugin.plugin.logs(info, options, "4242.pbs-head.emu.local", None)


def test_logs_are_found_from_the_launch_when_qstat_fails(pbs_emulator: Any, tmp_path: Path) -> None:
    options = pbs_options(pbs_emulator, tmp_path)
    calls = make_calls("print('still here', flush=True)", 2)
    info = launcher_info(options, calls, "pbs")
    handles = plugin.plugin.launch(info, options, calls)
    for handle in handles:
        pbs_emulator.wait_for_state(handle, "finished")
    pbs_emulator.close()  # the server is gone: qstat cannot run
    assert "still here" in plugin.plugin.logs(info, options, handles[1], None)
    with pytest.raises(pycrew.LogsUnavailableError, match=r"cannot learn where job 7\.x writes"):
        plugin.plugin.logs(info, options, "7.x", None)


def _logs(info: Any, options: PbsOptions, handle: str, lines: int | None = None) -> str:
    try:
        return plugin.plugin.logs(info, options, handle, lines) or ""
    except pycrew.LogsUnavailableError:
        return ""


# -- reliability: PBS's transient errors, lost replies, the circuit breaker ------------------


@FLAVOURS
def test_transient_qsub_failures_are_retried_with_backoff_and_submit_once(pbs_emulator: Any, tmp_path: Path) -> None:
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path))
    pbs_emulator.fail_next("qsub", 2)
    started = time.monotonic()
    handles = launch(client, make_calls("import time; time.sleep(30)", 2))
    waited = time.monotonic() - started
    assert len(handles) == 2 and qsubs(pbs_emulator) == 3 and client.retries == 2
    assert len(pbs_emulator.jobs()) == 2, "one array of two, whatever the retries"
    assert waited >= 0.5 + 1.0, f"the backoff waits 0.5 s then 1 s; the launch took {waited:.2f} s"
    assert client.found_by_tag == 0
    client.cancel(handles)


@FLAVOURS
def test_transient_qstat_and_qdel_failures_are_retried(pbs_emulator: Any, tmp_path: Path) -> None:
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, seconds_poll=0.0))
    calls = make_calls("import time; time.sleep(30)", 2)
    handles = launch(client, calls)
    pbs_emulator.fail_next("qstat", 1)
    assert len(client.workers(calls[0].controller_id)) == 2
    pbs_emulator.fail_next("qdel", 1)
    client.cancel(handles)
    assert client.retries == 2
    wait_for(lambda: all(j.state == "finished" for j in pbs_emulator.jobs()), 20, "the elements to end")


@FLAVOURS
@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_lost_qsub_reply_is_found_by_its_tag_and_submitted_exactly_once(
    pbs_emulator: Any, tmp_path: Path, mode: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, seconds_command_timeout=2.0))
    pbs_emulator.lose_reply_next("qsub", 1, mode=mode, hang_seconds=30.0)
    calls = make_calls(RECORD_AND_SLEEP, 3, env={"OUT": str(out), "SLEEP": "30"})
    handles = launch(client, calls)
    assert client.submissions == 1 and client.found_by_tag == 1, "the job was taken: it must not be submitted again"
    assert sorted(j.job_id for j in pbs_emulator.jobs()) == sorted(handles), "exactly one array, and its elements are the handles"
    assert all(recorded(out, calls)[c.instance][0] == c.token for c in calls), "the found array's workers are the right ones"
    client.cancel(handles)


def test_a_rejected_submit_fails_at_once_with_pbs_message(pbs_emulator: Any, tmp_path: Path) -> None:
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, queue="nosuchqueue"))
    with pytest.raises(SchedulerError, match="Unknown queue") as caught:
        launch(client, make_calls("pass", 2))
    assert not caught.value.transient and qsubs(pbs_emulator) == 1 and client.retries == 0


@FLAVOURS
def test_the_circuit_breaker_opens_after_repeated_submit_failures(pbs_emulator: Any, tmp_path: Path) -> None:
    options = pbs_options(pbs_emulator, tmp_path, command_attempts=1, submit_failures_max=2, seconds_submit_pause=60.0)
    client = PbsCLI.for_options("pbs", options)
    pbs_emulator.fail_next("qsub", 10)
    for _ in range(2):
        with pytest.raises(SchedulerError, match="cannot connect to server"):
            launch(client, make_calls("pass", 2))
    with pytest.raises(SchedulerError) as caught:
        launch(client, make_calls("pass", 2))
    message = str(caught.value)
    assert "2 launches in a row failed" in message and "stops submitting for 60 s" in message, message
    assert "submit_failures_max" in message and "cannot connect to server" in message, "it says why and what to change"
    assert qsubs(pbs_emulator) == 2, "an open breaker runs no qsub"
    assert pbs_emulator.jobs() == []


def test_a_controller_through_the_entry_point_runs_tasks(pbs_emulator: Any, tmp_path: Path) -> None:
    """End to end: pycrew.controller("pbs", ...) on the emulator, two workers in one array."""
    options = {"bin_directory": str(pbs_emulator.bin_directory), "directory": str(tmp_path / "pbs")}
    with pycrew.controller("pbs", workers=2, host="127.0.0.1", seconds_launch=60, **options) as c:
        assert list(c.map(abs, range(-10, 10))) == [abs(x) for x in range(-10, 10)]
        where = set(c.map(os.getenv, ["PBS_JOBID"] * 20))
    assert where and where <= {j.job_id for j in pbs_emulator.jobs()}, f"the tasks ran in PBS jobs: {where}"


def test_a_job_pbs_can_never_run_fails_the_launch_in_seconds(pbs_emulator: Any, tmp_path: Path) -> None:
    """PBS Pro's scheduler comments "Can Never Run: ..." on a job no node can hold; the job
    stays queued. Before, each launch failed only after seconds_launch (here 60 s, 120 s in
    all); now the LaunchError quotes PBS's comment as soon as the monitor sees it."""
    pbs_emulator.ncpus_available = 8
    options = {"bin_directory": str(pbs_emulator.bin_directory), "directory": str(tmp_path / "pbs"), "cpus": 64}
    c = pycrew.controller("pbs", workers=1, host="127.0.0.1", seconds_launch=60, launch_max=2, **options)
    try:
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError, match=r'pending for good: PBS says "Can Never Run: Insufficient amount of resource: ncpus \(R: 64 A: 8 T: 8\)"'):
            future.result(timeout=45)
    finally:
        c.terminate()
    assert all(job.state == "finished" for job in pbs_emulator.jobs()), "the queued jobs were not deleted"
    assert qsubs(pbs_emulator) == 2, "launch_max=2: one retry, then the error"


@FLAVOURS
def test_a_cwd_the_hosts_lack_fails_the_launch_quoting_the_reason(
    pbs_emulator: Any, tmp_path: Path
) -> None:
    """A ``cwd`` option naming a directory the host lacks ends the job at once (exit 1), and
    the controller's LaunchError quotes why, within seconds rather than seconds_launch."""
    missing = tmp_path / "not-on-the-hosts"
    started = time.monotonic()
    with pycrew.controller(
        "pbs", workers=1, launch_max=1, host="127.0.0.1", seconds_launch=120, flavour=pbs_emulator.flavour,
        bin_directory=str(pbs_emulator.bin_directory), directory=str(tmp_path / "pbs"), cwd=str(missing),
    ) as c:
        c.push(abs, (-1,), name="never_runs")
        with pytest.raises(pycrew.LaunchError) as info:
            c.wait(timeout=60)
    assert time.monotonic() - started < 30
    assert f"cannot enter its working directory {missing} (the cwd option)" in str(info.value), str(info.value)


@FLAVOURS
def test_listings_that_lose_every_job_leave_queued_jobs_alone(pbs_emulator: Any, tmp_path: Path) -> None:
    """PBS Pro's qstat prints no "Jobs" key at all on a bad moment (TORQUE nothing). On the code
    before this test two such listings in a row made the queued jobs read as ended ("exited
    before it connected"): core deleted them and submitted again."""
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path, seconds_poll=0.0))
    pbs_emulator.hold_jobs()
    calls = make_calls("pass", 2, launcher="pbs")
    handles = launch(client, calls)
    assert [w.status for w in client.workers(calls[0].controller_id)] == ["pending"] * 2
    empty = '{"timestamp":1,"pbs_version":"22.05.11","pbs_server":"pbs-head.emu.local"}\n' if pbs_emulator.flavour == "pbspro" else ""
    pbs_emulator.rewrite_reply_next("qstat", 3, stdout=empty)
    for _ in range(2):  # the third rewritten reply answers the query about the missing jobs: it confirms nothing
        assert client.workers(calls[0].controller_id) == [], "lost by the listing, not ended"
    assert sorted(w.handle for w in client.workers(calls[0].controller_id)) == sorted(handles)
    assert not any(call.command == "qdel" for call in pbs_emulator.calls)
    client.cancel(handles)


@FLAVOURS
def test_a_qsub_reply_without_a_job_id_is_looked_up_by_its_tag(pbs_emulator: Any, tmp_path: Path) -> None:
    """A site wrapper around qsub prints its own text (exit 0). On the code before this test
    that was a permanent error and every launch submitted again, leaving arrays no terminate()
    reached."""
    client = PbsCLI.for_options("pbs", pbs_options(pbs_emulator, tmp_path))
    pbs_emulator.hold_jobs()
    pbs_emulator.rewrite_reply_next("qsub", 1, stdout="Submitted job to workq (site qsub wrapper v2)\n")
    handles = launch(client, make_calls("pass", 2, launcher="pbs"))
    assert qsubs(pbs_emulator) == 1 and client.found_by_tag == 1
    assert sorted(j.job_id for j in pbs_emulator.jobs()) == sorted(handles)
    client.cancel(handles)

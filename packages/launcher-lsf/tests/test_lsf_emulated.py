"""The launcher against the LSF emulator (``lsf_emulator``): arrays, tokens, the monitor, bkill,
logs, transient failures retried with backoff, a lost bsub reply found by its tag, the circuit breaker."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew import WorkerCall, WorkerInfo
from pycrew.scheduler import SchedulerError
from pycrew.testing.scheduler_calls import RECORD_AND_SLEEP, WHO_AM_I, launcher_info, make_calls
from pycrew_emulators.lsf import LsfEmulator
from pycrew_lsf import LsfCLI, LsfOptions
from pycrew_lsf.plugin import REPORT_END, plugin

SLEEP = "import time; time.sleep(120)"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def options_for(emulator: LsfEmulator, tmp_path: Path, **kw: Any) -> LsfOptions:
    """Options against the emulator: its bin directory, a private directory, no listing cache, short backoff."""
    values: dict[str, Any] = {
        "bin_directory": str(emulator.bin_directory), "directory": str(tmp_path / "private"),
        "seconds_poll": 0.0, "seconds_retry_max": 0.2, "seconds_walltime": 600.0,
    }
    return LsfOptions(**{**values, **kw})


def calls_of(code: str, n: int, **kw: Any) -> list[WorkerCall]:
    return make_calls(code, n, launcher="lsf", **kw)


def launch(options: LsfOptions, calls: list[WorkerCall]) -> list[str]:
    return list(plugin.pycrew_launch_workers(launcher=launcher_info(options, calls), calls=calls))


def listed(options: LsfOptions, calls: list[WorkerCall], controller_id: str | None = "") -> dict[str, WorkerInfo]:
    cid = calls[0].controller_id if controller_id == "" else controller_id
    return {w.handle: w for w in plugin.pycrew_list_workers(launcher=launcher_info(options, calls), controller_id=cid)}


def commands(emulator: LsfEmulator, name: str) -> list[Any]:
    return [c for c in emulator.calls if c.command == name]


def test_array_of_three_runs_each_element_with_its_own_token(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    calls = calls_of(RECORD_AND_SLEEP, 3, env={"OUT": str(out), "SLEEP": "60"})
    options = options_for(lsf_emulator, tmp_path)
    handles = launch(options, calls)
    job = handles[0].split("[")[0]
    assert handles == [f"{job}[1]", f"{job}[2]", f"{job}[3]"], "one array, handles in call order"
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="3 elements to start")
    for index, call in enumerate(calls, start=1):
        token, names = (out / call.instance).read_text().split("\n")
        assert token == call.token, f"element {index} derived another token than core authorized"
        assert names == "PYCREW_TOKEN", f"element {index} sees other token variables: {names}"
    assert list((tmp_path / "private" / "scripts").iterdir()) == [], "job scripts must be gone after submission"
    (submit,) = commands(lsf_emulator, "bsub")
    assert submit.argv == (), "everything is in the script on stdin: no secret, nothing on bsub's command line"
    element = lsf_emulator.job(f"{job}[2]")
    assert element.name == "pycrew-test-controller[2]" and element.queue == "normal"
    spooled = Path(element.environment["LSB_JOBFILENAME"]).read_text()
    assert '#BSUB -J "pycrew-test-controller[1-3]"' in spooled and "--index-env LSB_JOBINDEX" in spooled
    shown = lsf_emulator.run("bjobs", "-o", "jobid jobindex job_name job_description command", "-json", "-a").stdout
    for secret in [calls[0].batch_key, *(call.token for call in calls)]:
        assert secret not in spooled and secret not in shown, "a secret leaked into the stored script or bjobs"


def test_monitor_lists_states_and_exit_codes_of_pycrews_jobs_only(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    foreign = lsf_emulator.run("bsub", "-o", "/dev/null", stdin="sleep 60\n").stdout
    lookalike = lsf_emulator.run(
        "bsub", "-J", "pycrew-fake[1-2]", "-Jd", "pycrew but not a tag", "-o", "/dev/null", stdin="sleep 60\n"
    ).stdout
    assert "is submitted" in foreign and "is submitted" in lookalike
    code = "import os, sys, time; i = os.environ['LSB_JOBINDEX']; time.sleep(120) if i == '3' else sys.exit(3 if i == '1' else 0)"
    ours = calls_of(code, 3)
    theirs = calls_of(SLEEP, 1, controller="other")
    options = options_for(lsf_emulator, tmp_path)
    handles = launch(options, ours)
    other = launch(options, theirs)

    def ended_two() -> dict[str, WorkerInfo] | None:
        now = listed(options, ours)
        return now if now[handles[0]].ended and now[handles[1]].ended and now[handles[2]].status == "running" else None

    mine = wait_for(ended_two, timeout=30, what="elements 1 and 2 to end and 3 to run")
    assert sorted(mine) == sorted(handles), "exactly this controller's elements"
    failed, done, running = (mine[h] for h in handles)
    assert (failed.status, failed.state, failed.exit_code) == ("failed", "EXIT", 3)
    assert (done.status, done.state, done.exit_code) == ("done", "DONE", 0)
    assert (running.status, running.state, running.exit_code) == ("running", "RUN", None)
    for handle, call in zip(handles, ours, strict=True):
        w = mine[handle]
        assert (w.id, w.instance, w.worker, w.controller_id, w.controller) == (
            handle, call.instance, call.worker, call.controller_id, "test-controller"
        )
        assert w.launcher == "lsf" and w.host == lsf_emulator.hostname, w
        assert w.started is not None and 0 <= time.time() - w.started < 180, w
        assert w.log is not None and w.log.endswith(f"/logs/{handle.replace('[', '_').rstrip(']')}.log"), w.log

    everything = {w.handle for w in plugin.pycrew_list_workers(launcher=launcher_info(options, ours), controller_id=None)}
    assert everything == set(handles + other), "only pycrew's tagged elements, of every controller"
    plugin.pycrew_terminate_workers(launcher=launcher_info(options, ours), handles=[handles[2], *other])
    killed = wait_for(
        lambda: (now := listed(options, ours, None)) and now[handles[2]].ended and now[other[0]].ended and now,
        timeout=30, what="the killed elements to end",
    )
    assert killed[handles[2]].status == "cancelled", killed[handles[2]]
    assert killed[handles[2]].reason.startswith("TERM_OWNER: job killed by owner; killed by signal "), killed[handles[2]].reason
    assert {j.state for j in lsf_emulator.jobs() if j.name.startswith("pycrew-fake") or j.name == "sleep"} == {"running"}, (
        "terminating pycrew's workers touched someone else's job"
    )


def test_terminate_reaches_a_pending_element(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.hold_jobs()
    calls = calls_of(SLEEP, 2)
    options = options_for(lsf_emulator, tmp_path)
    handles = launch(options, calls)
    pending = listed(options, calls)
    assert [pending[h].status for h in handles] == ["pending", "pending"]
    assert pending[handles[0]].reason == "New job is waiting for scheduling" and pending[handles[0]].host is None
    plugin.pycrew_terminate_workers(launcher=launcher_info(options, calls), handles=handles[:1])
    after = listed(options, calls)
    assert (after[handles[0]].status, after[handles[1]].status) == ("cancelled", "pending")
    assert lsf_emulator.job(handles[0]).start_time is None, "a killed pending element never runs"


def test_terminate_finished_unknown_and_again_is_silent(
    lsf_emulator: LsfEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = calls_of("pass", 2)
    options = options_for(lsf_emulator, tmp_path)
    info = launcher_info(options, calls)
    handles = launch(options, calls)
    lsf_emulator.wait_for_state(handles[0].split("[")[0], "finished", timeout=30)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugin.pycrew_terminate_workers(launcher=info, handles=handles)  # finished
        plugin.pycrew_terminate_workers(launcher=info, handles=handles[:1])  # again
        plugin.pycrew_terminate_workers(launcher=info, handles=["999999[1]", "999998"])  # never existed
        plugin.pycrew_terminate_workers(launcher=info, handles=[])
    assert caught == [], [str(w.message) for w in caught]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with pytest.raises(ValueError, match="lsf handles must look like"):
        plugin.pycrew_terminate_workers(launcher=info, handles=["-u all"])


def test_logs_are_the_elements_output_file(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    code = "import os, sys; print('hello from', os.environ['LSB_JOBINDEX']); print('to stderr', file=sys.stderr)"
    calls = calls_of(code, 2)
    options = options_for(lsf_emulator, tmp_path)
    info = launcher_info(options, calls)
    handles = launch(options, calls)
    lsf_emulator.wait_for_state(handles[0].split("[")[0], "finished", timeout=30)
    text = plugin.pycrew_worker_logs(launcher=info, handle=handles[1], lines=None)
    assert isinstance(text, str)
    assert "hello from 2" in text and "to stderr" in text, text
    assert "hello from 1" not in text, "each element has its own file"
    assert REPORT_END in text, "the whole file: the job report LSF appended included"
    last = plugin.pycrew_worker_logs(launcher=info, handle=handles[1], lines=1)
    assert last in ("hello from 2\n", "to stderr\n"), f"the worker's last line, not the report's: {last!r}"

    with pytest.raises(pycrew.LogsUnavailableError, match=r"cannot be read from this machine"):
        plugin.pycrew_worker_logs(launcher=info, handle="999999[1]", lines=None)
    with pytest.raises(pycrew.LogsUnavailableError, match=r"needs \"<job id>\[<index>\]\""):
        plugin.pycrew_worker_logs(launcher=info, handle="12_1", lines=None)


def test_batch_beyond_array_size_max_goes_out_as_several_arrays(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code = WHO_AM_I + (
        "open(os.path.join(os.environ['OUT'], os.environ['LSB_JOBID'] + '[' + os.environ['LSB_JOBINDEX'] + ']'),"
        " 'w').write(instance + ' ' + token)"
    )
    calls = calls_of(code, 3, env={"OUT": str(out)})
    handles = launch(options_for(lsf_emulator, tmp_path, array_size_max=2), calls)
    arrays = [h.split("[")[0] for h in handles]
    assert arrays[0] == arrays[1] != arrays[2] and handles[2].endswith("[1]"), handles
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="3 elements to run")
    for handle, call in zip(handles, calls, strict=True):
        assert (out / handle).read_text() == f"{call.instance} {call.token}", f"{handle} ran as another worker"
    options = options_for(lsf_emulator, tmp_path, array_size_max=2)
    assert sorted(listed(options, calls)) == sorted(handles)
    client = plugin.client(options)
    assert client.submissions == 2, "the client that submitted them"
    assert client.departures.unlisted == 0, "the listing writes the ids of what was submitted as the submit does"


def test_export_environment_false_passes_only_the_secret(lsf_emulator: LsfEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    marker = f"PYCREW_TEST_MARKER_{secrets.token_hex(4)}"
    monkeypatch.setenv(marker, "1")
    calls = calls_of(RECORD_AND_SLEEP, 1, env={"OUT": str(out), "SLEEP": "0"})
    handles = launch(options_for(lsf_emulator, tmp_path, export_environment=False), calls)
    wait_for(lambda: len(list(out.iterdir())) == 1, timeout=30, what="the element to run")
    token, names = (out / calls[0].instance).read_text().split("\n")
    assert (token, names) == (calls[0].token, "PYCREW_TOKEN")
    (submit,) = commands(lsf_emulator, "bsub")
    assert submit.argv == ("-env", "PYCREW_TOKEN")
    assert marker not in lsf_emulator.job(handles[0]).environment, "the controller's environment reached the job"


# -- failures: retries, lost replies, the circuit breaker ----------------------------------


def test_transient_submit_failures_are_retried_with_backoff(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.fail_next("bsub", 2)
    calls = calls_of(SLEEP, 2)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path))
    handles = cli.launch(launcher_info(cli.options, calls), calls)
    assert len(handles) == 2 and cli.retries == 2
    sequence = [(c.command, c.fault) for c in lsf_emulator.calls if c.command in ("bsub", "bjobs")]
    assert sequence == [("bsub", "fail"), ("bjobs", None), ("bsub", "fail"), ("bjobs", None), ("bsub", None)], (
        "before each new try the listing is searched for the array's tag"
    )
    submits = commands(lsf_emulator, "bsub")
    gaps = [b.time - a.time for a, b in itertools.pairwise(submits)]
    assert all(gap >= 0.2 for gap in gaps), f"no backoff between tries: {gaps}"
    assert len(lsf_emulator.jobs()) == 2, "one array of two elements"


def test_lost_submit_reply_is_found_by_its_tag_and_submitted_once(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.lose_reply_next("bsub")
    out = tmp_path / "out"
    out.mkdir()
    calls = calls_of(RECORD_AND_SLEEP, 3, env={"OUT": str(out), "SLEEP": "60"})
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path))
    handles = cli.launch(launcher_info(cli.options, calls), calls)
    assert len(commands(lsf_emulator, "bsub")) == 1, "submitted exactly once"
    assert cli.found_by_tag == 1
    assert sorted(j.job_id for j in lsf_emulator.jobs()) == sorted(handles), "the handles are the array LSF took"
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="the 3 elements to run")
    for call in calls:
        assert (out / call.instance).read_text().split("\n")[0] == call.token


def test_submit_that_hangs_past_the_timeout_is_found_by_its_tag(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.lose_reply_next("bsub", mode="hang", hang_seconds=60)
    calls = calls_of(SLEEP, 2)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path, seconds_command_timeout=2.0))
    handles = cli.launch(launcher_info(cli.options, calls), calls)
    assert len(commands(lsf_emulator, "bsub")) <= 1 and cli.found_by_tag == 1
    assert sorted(j.job_id for j in lsf_emulator.jobs()) == sorted(handles), "one array, not two"


def test_a_transient_failure_whose_fate_cannot_be_listed_is_not_resubmitted(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.lose_reply_next("bsub")
    lsf_emulator.fail_next("bjobs", 10)
    calls = calls_of(SLEEP, 1)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path, command_attempts=2))
    with pytest.raises(SchedulerError, match="not submitting again, so that no job runs twice"):
        cli.launch(launcher_info(cli.options, calls), calls)
    assert len(commands(lsf_emulator, "bsub")) == 1


def test_listing_and_bkill_retry_transient_failures(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    calls = calls_of(SLEEP, 1)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path))
    (handle,) = cli.launch(launcher_info(cli.options, calls), calls)
    lsf_emulator.fail_next("bjobs", 2)
    assert [w.handle for w in cli.workers(calls[0].controller_id)] == [handle]
    lsf_emulator.fail_next("bkill", 1)
    cli.cancel([handle])
    assert cli.retries == 3
    lsf_emulator.wait_for_state(handle, "finished", timeout=30)
    assert lsf_emulator.job(handle).killed


def test_refused_submit_is_not_retried_and_names_lsfs_message(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    calls = calls_of(SLEEP, 2)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path, queue="nope"))
    with pytest.raises(SchedulerError, match=r"bsub .*exit status 255.*nope: No such queue") as caught:
        cli.launch(launcher_info(cli.options, calls), calls)
    assert not caught.value.transient and len(commands(lsf_emulator, "bsub")) == 1 and cli.retries == 0
    assert all(call.token not in str(caught.value) for call in calls)
    assert list((tmp_path / "private" / "scripts").iterdir()) == [], "a failed submission must not leave its script"


def test_circuit_breaker_opens_after_repeated_submit_failures(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.fail_next("bsub", 100)
    calls = calls_of(SLEEP, 1)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path, command_attempts=1, submit_failures_max=3, seconds_submit_pause=600))
    info = launcher_info(cli.options, calls)
    for _ in range(3):
        with pytest.raises(SchedulerError, match="Failed in an LSF library call"):
            cli.launch(info, calls)
    assert len(commands(lsf_emulator, "bsub")) == 3
    with pytest.raises(SchedulerError) as caught:
        cli.launch(info, calls)
    message = str(caught.value)
    assert "3 launches in a row failed" in message and "stops submitting for 600 s" in message, message
    assert "submit_failures_max" in message and "Failed in an LSF library call" in message, message
    assert len(commands(lsf_emulator, "bsub")) == 3, "an open breaker runs no bsub"
    assert lsf_emulator.jobs() == []


def test_circuit_breaker_lets_one_launch_through_after_the_pause(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    lsf_emulator.fail_next("bsub", 2)
    calls = calls_of(SLEEP, 1)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path, command_attempts=1, submit_failures_max=2, seconds_submit_pause=0.5))
    info = launcher_info(cli.options, calls)
    for _ in range(2):
        with pytest.raises(SchedulerError):
            cli.launch(info, calls)
    assert cli.breaker.is_open
    wait_for(lambda: not cli.breaker.is_open, timeout=10, what="the pause to end")
    (handle,) = cli.launch(info, calls)
    assert lsf_emulator.job(handle).state in ("queued", "running")
    assert os.path.isdir(tmp_path / "private")


def test_bkill_of_a_busy_worker_lets_its_task_finish_before_the_sigterm(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """bkill sends SIGINT, then SIGTERM and SIGKILL (2 s apart here): the running task must not
    see a KeyboardInterrupt (an error it did not cause); it finishes and the worker leaves."""
    import pycrew

    marker = tmp_path / "started"

    def long_task(path: str) -> str:
        import os
        import pathlib
        import time

        pathlib.Path(path).write_text(f"{os.environ['LSB_JOBID']}[{os.environ['LSB_JOBINDEX']}]")
        time.sleep(1.0)
        return "finished"

    options = {"bin_directory": str(lsf_emulator.bin_directory), "directory": str(tmp_path / "lsf"), "seconds_walltime": 600.0}
    with pycrew.controller("lsf", workers=1, host="127.0.0.1", seconds_launch=60, **options) as c:
        future = c.submit(long_task, str(marker))
        job = wait_for(lambda: marker.exists() and marker.read_text(), 60, "the task to start")
        assert lsf_emulator.run("bkill", job).returncode == 0
        assert future.result(timeout=60) == "finished"
        wait_for(lambda: c.summary().workers[0].exit_reason, 30, "the worker's goodbye")
        s = c.summary()
        assert s.controller.retries == 0 and s.workers[0].crashes == 0, s
        assert "SIGINT" in s.workers[0].exit_reason, s.workers[0].exit_reason


def test_a_job_whose_dependency_can_never_be_met_fails_the_launch_in_seconds(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """A worker array submitted with ``-w done(N)`` where job N failed stays PEND for good
    ("Dependency condition invalid or never satisfied"). Before, each launch failed only
    after seconds_launch (here 60 s, 120 s in all); now the LaunchError quotes LSF's reason
    as soon as the monitor sees it."""
    import pycrew

    failed = lsf_emulator.run("bsub", "-o", "/dev/null", "exit 1")
    assert failed.returncode == 0, failed.stderr
    failed_id = failed.stdout.split("<")[1].split(">")[0]
    wait_for(lambda: all(j.state == "finished" for j in lsf_emulator.jobs()), 30, "the job to fail")
    options = {
        "bin_directory": str(lsf_emulator.bin_directory),
        "directory": str(tmp_path / "lsf"),
        "submit_args": ("-w", f"done({failed_id})"),
    }
    c = pycrew.controller("lsf", workers=1, host="127.0.0.1", seconds_launch=60, launch_max=2, **options)
    try:
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError, match='pending for good: LSF says "Dependency condition invalid or never satisfied"'):
            future.result(timeout=45)
    finally:
        c.terminate()
    assert all(job.state == "finished" for job in lsf_emulator.jobs()), "the pending jobs were not killed"
    assert sum(1 for call in lsf_emulator.calls if call.command == "bsub") == 3, "launch_max=2: one retry, then the error"


def test_a_dependency_that_is_met_lets_the_worker_start(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """The same -w on a job that succeeds: the worker starts once it is DONE (the emulator's dependency is real)."""
    import pycrew

    done = lsf_emulator.run("bsub", "-o", "/dev/null", "sleep 2")
    done_id = done.stdout.split("<")[1].split(">")[0]
    options = {
        "bin_directory": str(lsf_emulator.bin_directory),
        "directory": str(tmp_path / "lsf"),
        "submit_args": ("-w", f"done({done_id})"),
    }
    with pycrew.controller("lsf", workers=1, host="127.0.0.1", seconds_launch=60, **options) as c:
        assert c.submit(abs, -1).result(timeout=60) == 1
    [first] = [j for j in lsf_emulator.jobs() if j.job_id == done_id]
    assert first.end_time is not None
    assert all(j.start_time is not None and j.start_time >= first.end_time for j in lsf_emulator.jobs() if j.job_id != done_id)


def test_a_worker_that_exits_before_connecting_fails_the_launch_quoting_its_output(
    lsf_emulator: LsfEmulator, tmp_path: Path
) -> None:
    """bjobs says EXIT and the exit code; the job's output says why (here a ``cwd`` the host
    lacks), and the LaunchError quotes it within seconds: the worker's lines, not those of
    the job report LSF appends to the file."""
    missing = tmp_path / "not-on-the-hosts"
    started = time.monotonic()
    with pycrew.controller(
        "lsf", workers=1, launch_max=1, host="127.0.0.1", seconds_launch=120, bin_directory=str(lsf_emulator.bin_directory),
        directory=str(tmp_path / "private"), cwd=str(missing),
    ) as c:
        c.push(abs, (-1,), name="never_runs")
        with pytest.raises(pycrew.LaunchError) as info:
            c.wait(timeout=60)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert f"cannot enter its working directory {missing} (the cwd option)" in message, message
    assert "Resource usage summary" not in message, message


def test_logs_with_lines_leave_out_the_job_report(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    options = options_for(lsf_emulator, tmp_path)
    calls = calls_of("print('worker line 1'); print('worker line 2')", 1)
    [handle] = launch(options, calls)
    info = launcher_info(options, calls)

    def ended() -> str:
        try:
            text = plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) or ""
        except pycrew.LogsUnavailableError:
            return ""
        return text if REPORT_END in text else ""

    whole = wait_for(ended, timeout=60, what="the job's output file with its report")
    assert "worker line 2" in whole and "Sender: LSF System" in whole, whole
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=2) == "worker line 1\nworker line 2\n"


def test_listings_that_lose_every_job_leave_queued_jobs_alone(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """bjobs answering "JOBS":0 on a bad moment: on the code before this test two such listings
    made the queued jobs read as ended; core killed them and submitted again."""
    lsf_emulator.hold_jobs()
    options = options_for(lsf_emulator, tmp_path)
    calls = calls_of(SLEEP, 2)
    handles = launch(options, calls)
    assert [w.status for w in listed(options, calls).values()] == ["pending"] * 2
    lsf_emulator.rewrite_reply_next("bjobs", 3, stdout='{"COMMAND":"bjobs","JOBS":0,"RECORDS":[]}\n')
    for _ in range(2):  # the third rewritten reply answers the query about the missing jobs: it confirms nothing
        assert listed(options, calls) == {}, "lost by the listing, not ended"
    assert sorted(listed(options, calls)) == sorted(handles)
    assert commands(lsf_emulator, "bkill") == []
    plugin.pycrew_terminate_workers(launcher=launcher_info(options, calls), handles=handles)


def test_a_bsub_reply_without_a_job_id_is_looked_up_by_its_tag(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """A site wrapper around bsub prints its own text (exit 0): on the code before this test every
    launch submitted again, leaving arrays no terminate() reached."""
    lsf_emulator.hold_jobs()
    lsf_emulator.rewrite_reply_next("bsub", 1, stdout="Submitted job to normal (site bsub wrapper v2)\n")
    calls = calls_of(SLEEP, 2)
    cli = LsfCLI("lsf", options_for(lsf_emulator, tmp_path))
    handles = cli.launch(launcher_info(cli.options, calls), calls)
    assert len(commands(lsf_emulator, "bsub")) == 1 and cli.found_by_tag == 1
    assert sorted(j.job_id for j in lsf_emulator.jobs()) == sorted(handles)
    cli.cancel(handles)

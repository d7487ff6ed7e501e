"""Tests of the local job runner (pycrew_emulators.runner)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from pycrew_emulators.runner import ContainerSpec, JobRunner, RunState

# A "container" that starts a grandchild (sleeping), prints both pids, then sleeps.
TREE = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('pids', child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def grandchild_pid(runner: JobRunner, run_id: str) -> int:
    assert wait_until(lambda: "pids" in runner.logs(run_id)), runner.logs(run_id)
    return int(runner.logs(run_id).split()[1])


def test_runs_command_with_container_like_env(job_runner: JobRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_HOST_ONLY", "leak")
    spec = ContainerSpec(
        image="python:3.11",
        command=["python", "-c"],
        args=[
            (
                "import os, sys; print('out', os.environ.get('FOO'), os.environ.get('PYCREW_HOST_ONLY'));"
                "print('exe', sys.executable); print('cwd', os.getcwd());"
                "print('path', os.environ['PATH'].split(':')[0]);"
                "print('err', 'x', file=sys.stderr); sys.exit(3)"
            )
        ],
        env={"FOO": "bar"},
        name="t",
    )
    run_id = job_runner.start(spec, run_id="r1")
    assert job_runner.list() == ["r1"]
    assert job_runner.wait(run_id, timeout=20) == 3
    st = job_runner.state(run_id)
    assert (st.status, st.exit_code, st.reason) == ("exited", 3, "Error")
    assert st.pid and st.started_at and st.finished_at and st.finished_at >= st.started_at
    lines = dict(line.split(" ", 1) for line in job_runner.logs(run_id).splitlines())
    assert lines["out"] == "bar None"  # spec env in, host env out
    assert lines["exe"] == sys.executable  # "python" mapped to the runner's interpreter
    assert lines["path"] == str(Path(sys.executable).parent)
    assert Path(lines["cwd"]).is_dir() and Path(lines["cwd"]) != Path.cwd()
    assert lines["err"] == "x"  # stderr in the same log


def test_exit_zero_is_completed_and_working_dir(job_runner: JobRunner, tmp_path: Path) -> None:
    wd = tmp_path / "wd" / "sub"
    run_id = job_runner.start(
        ContainerSpec(
            "img",
            [],
            ["python3", "-c", "open('f', 'w').write('x')"],
            working_dir=str(wd),
        )
    )
    assert job_runner.wait(run_id, timeout=20) == 0
    assert job_runner.state(run_id).reason == "Completed"
    assert (wd / "f").read_text() == "x"


def test_kill_reaches_the_whole_process_group(job_runner: JobRunner) -> None:
    run_id = job_runner.start(ContainerSpec("img", ["python", "-c", TREE]))
    child = grandchild_pid(job_runner, run_id)
    main = job_runner.state(run_id).pid
    assert main is not None and not gone(child)
    job_runner.kill(run_id)
    assert job_runner.wait(run_id, timeout=10) == 137  # 128 + SIGKILL, as containers report
    assert wait_until(lambda: gone(child) and gone(main))
    job_runner.kill(run_id)  # idempotent, silent
    job_runner.kill(run_id, 15)


def test_group_is_killed_when_main_process_exits(job_runner: JobRunner) -> None:
    script = TREE.replace("time.sleep(60)\n", "") + "time.sleep(0.2)\n"
    run_id = job_runner.start(ContainerSpec("img", ["python", "-c", script]))
    child = grandchild_pid(job_runner, run_id)
    assert job_runner.wait(run_id, timeout=20) == 0
    assert wait_until(lambda: gone(child))


def test_failed_to_start_and_on_exit(job_runner: JobRunner) -> None:
    seen: list[tuple[str, RunState]] = []
    done = threading.Event()

    def cb(run_id: str, state: RunState) -> None:
        seen.append((run_id, state))
        if len(seen) == 3:
            done.set()

    job_runner.on_exit(cb)
    job_runner.missing_images.add("ghcr.io/nope/missing:1")
    a = job_runner.start(ContainerSpec("ghcr.io/nope/missing:1", ["python", "-c", "pass"]))
    b = job_runner.start(ContainerSpec("img", ["/no/such/executable"]))
    c = job_runner.start(ContainerSpec("img", ["python", "-c", "pass"]))
    sa, sb = job_runner.state(a), job_runner.state(b)
    assert sa.status == "failed_to_start" and sa.reason == "ImagePullBackOff: image 'ghcr.io/nope/missing:1' not found"
    assert sb.status == "failed_to_start" and sb.reason.startswith("ContainerCannotRun:")
    assert sa.pid is None and sa.exit_code is None
    assert job_runner.wait(a, timeout=1) is None
    assert done.wait(20)
    assert {(r, s.status) for r, s in seen} == {
        (a, "failed_to_start"),
        (b, "failed_to_start"),
        (c, "exited"),
    }
    with pytest.raises(ValueError):
        job_runner.start(ContainerSpec("img", ["true"]), run_id=a)


def test_wait_timeout_and_sigterm(job_runner: JobRunner) -> None:
    run_id = job_runner.start(ContainerSpec("img", ["python", "-c", "import time; time.sleep(60)"]))
    assert job_runner.wait(run_id, timeout=0.1) is None
    assert job_runner.state(run_id).status == "running"
    job_runner.kill(run_id, 15)
    assert job_runner.wait(run_id, timeout=10) == 143


def test_close_leaves_no_process(tmp_path: Path) -> None:
    runner = JobRunner(log_dir=tmp_path / "logs")
    pids: list[int] = []
    try:
        ids = [runner.start(ContainerSpec("img", ["python", "-c", TREE])) for _ in range(2)]
        for run_id in ids:
            pids.append(grandchild_pid(runner, run_id))
            pid = runner.state(run_id).pid
            assert pid is not None
            pids.append(pid)
    finally:
        runner.close()
    assert all(runner.state(r).status == "exited" for r in runner.list())
    assert wait_until(lambda: all(gone(p) for p in pids))
    runner.close()  # idempotent
    with pytest.raises(RuntimeError):
        runner.start(ContainerSpec("img", ["true"]))
    own = JobRunner()
    own_dir = own.log_dir
    own.close()
    assert not own_dir.exists()  # a runner-owned log dir is removed

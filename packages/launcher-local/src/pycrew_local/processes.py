"""Starting, finding and killing worker processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

import pycrew
from pycrew_local.options import LocalOptions

WORKER_MODULE = "pycrew.worker"
#: Environment variable telling the monitor where a worker's log is.
LOG_ENV = "PYCREW_LOCAL_LOG"


@dataclass(frozen=True)
class LocalHandle:
    """A local worker: its pid and the process's creation time (guards against pid reuse)."""

    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The process if it still runs and is the one launched, else ``None``."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01:
                return None
            return proc
        except psutil.Error:
            return None


def start_worker(call: pycrew.WorkerCall, options: LocalOptions) -> LocalHandle:
    """Start one worker process in its own session."""
    env = {**os.environ, **options.env, **call.environment()}
    env.pop(LOG_ENV, None)
    if options.log_dir:
        Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(options.log_dir).absolute() / f"{call.name}.log"
        env[LOG_ENV] = str(log_path)  # read back by the monitor
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    else:
        out = subprocess.DEVNULL  # type: ignore[assignment]
    try:
        proc = subprocess.Popen(
            [options.python, *call.args],
            env=env,
            cwd=options.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if out is not subprocess.DEVNULL:
            out.close()
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    _REAPERS[proc.pid] = proc
    return LocalHandle(proc.pid, create_time)


# Popen objects of workers we started, so their exit is reaped and leaves no zombie.
_REAPERS: dict[int, subprocess.Popen[bytes]] = {}


def reap() -> None:
    """Collect exit statuses of finished workers we started."""
    for pid, proc in list(_REAPERS.items()):
        if proc.poll() is not None:
            _REAPERS.pop(pid, None)


def kill_tree(handle: LocalHandle, grace: float = 2.0) -> None:
    """Terminate a worker and every process it started; silent if already gone."""
    proc = handle.process()
    if proc is None:
        reap()
        return
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        procs = [proc]
    try:
        os.killpg(handle.pid, signal.SIGTERM)  # its session: catches children that re-parented
    except OSError:  # no such group (already gone): the psutil pass below covers the rest
        pass
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass  # already gone: that is the goal
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass  # exited between wait and kill
    try:
        os.killpg(handle.pid, signal.SIGKILL)
    except OSError:  # group empty: everything exited
        pass
    psutil.wait_procs(alive, timeout=grace)
    deadline = time.monotonic() + grace
    while handle.pid in _REAPERS and time.monotonic() < deadline:
        reap()
        if handle.pid in _REAPERS:
            time.sleep(0.01)


def parse_worker_cmdline(cmdline: list[str]) -> dict[str, str] | None:
    """The ``--key value`` settings of a ``python -m pycrew.worker`` command line, else ``None``."""
    try:
        i = cmdline.index("-m")
    except ValueError:
        return None
    if i + 1 >= len(cmdline) or cmdline[i + 1] != WORKER_MODULE:
        return None
    rest = cmdline[i + 2 :]
    out: dict[str, str] = {}
    for key, value in zip(rest[::2], rest[1::2], strict=False):
        if key.startswith("--"):
            out[key[2:]] = value
    return out


def list_workers(controller_id: str | None) -> list[pycrew.WorkerInfo]:
    """Every pycrew worker process of this user on this machine (optionally one controller's)."""
    reap()
    me = os.getuid()
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "uids", "status"]):
        try:
            info = proc.info
            if info["uids"] is None or info["uids"].real != me or info["status"] == psutil.STATUS_ZOMBIE:
                continue
            settings = parse_worker_cmdline(info["cmdline"] or [])
        except psutil.Error:
            continue
        if settings is None:
            continue
        if controller_id is not None and settings.get("controller-id") != controller_id:
            continue
        worker = settings.get("worker")
        try:
            log = proc.environ().get(LOG_ENV)
        except psutil.Error:
            log = None
        out.append(
            pycrew.WorkerInfo(
                id=str(info["pid"]),
                handle=LocalHandle(info["pid"], info["create_time"]),
                launcher=settings.get("launcher", "local"),
                controller=settings.get("controller") or None,
                controller_id=settings.get("controller-id") or None,
                instance=settings.get("instance"),
                worker=int(worker) if worker and worker.isdigit() else None,
                state=str(info["status"]),
                host=os.uname().nodename,
                pid=info["pid"],
                started=info["create_time"],
                log=log,
            )
        )
    return out

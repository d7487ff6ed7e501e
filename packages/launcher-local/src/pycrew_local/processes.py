"""Starting, finding and killing worker processes on this machine.

Each worker is started in a session of its own, so that its process group holds what its
tasks start; :mod:`pycrew_local.children` keeps the workers this process started until
they are terminated (exit codes, output, reaping). Without ``log_dir`` a worker's output
goes through a pipe of which only the last :data:`TAIL_BYTES` are kept in memory; with
``log_dir`` it goes to its log file, whose end is read instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

import pycrew
from pycrew_local.children import CHILDREN, CHILDREN_LOCK, ENDED_MAX, FORGOTTEN, Child, forget, reap, register
from pycrew_local.groups import in_use
from pycrew_local.handle import LocalHandle
from pycrew_local.options import LocalOptions
from pycrew_local.output import TAIL_BYTES, TAIL_LINES, OutputTail, last_lines, read_log_file

__all__ = ["TAIL_BYTES", "TAIL_LINES", "LocalHandle", "kill_tree", "list_workers", "reap", "start_worker", "worker_output"]

WORKER_MODULE = "pycrew.worker"
#: Environment variable telling the monitor where a worker's log is.
LOG_ENV = "PYCREW_LOCAL_LOG"


def worker_output(handle: LocalHandle, lines: int | None = None) -> str:
    """All of a worker's output that is kept (its last ``lines`` lines, if given), by where
    it is kept.

    - With ``log_dir``: the worker's log file, for any worker whose file still exists
      (found through this process's records, or the running worker's environment).
    - Without: the last :data:`TAIL_BYTES` of output of a worker this process started,
      while it runs and for the last :data:`ENDED_MAX` workers after they ended.

    Raises:
        pycrew.LogsUnavailableError: none of that applies, saying why.
    """
    with CHILDREN_LOCK:
        child = CHILDREN.get(handle)
        forgotten = FORGOTTEN.get(handle)
    if child is not None:
        return child.output_text(lines)
    if forgotten is not None:
        log_path, tail = forgotten
        return read_log_file(log_path, None, lines=lines) if log_path else last_lines(tail, lines)
    proc = handle.process()
    log_path = None
    if proc is not None:
        try:
            log_path = proc.environ().get(LOG_ENV)
        except psutil.Error:  # it exited or is not ours to read: treated as "no log file known" below
            log_path = None
    if log_path:
        return read_log_file(log_path, None, lines=lines)
    raise pycrew.LogsUnavailableError(
        f"no output kept for local worker {handle.pid}: without log_dir only the process that launched a worker "
        f"keeps its output (the last {TAIL_BYTES // 1024} KB, for the last {ENDED_MAX} workers after they end); "
        "set the launcher option log_dir to keep every worker's output in a file"
    )


def start_worker(call: pycrew.WorkerCall, options: LocalOptions) -> LocalHandle:
    """Start one worker process in its own session; its output goes to ``log_dir`` or a bounded tail."""
    shared_path = options.shares_sys_path()
    env = {**os.environ, **options.env, **call.environment()}
    env.pop(LOG_ENV, None)
    if shared_path:
        env.update(pycrew.sys_path_environment())
    elif pycrew.SYS_PATH_ENV not in options.env:  # one this process inherited is not for these workers
        env.pop(pycrew.SYS_PATH_ENV, None)
    log_path: str | None = None
    if options.log_dir:
        Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        log_path = str(Path(options.log_dir).absolute() / f"{call.name}.log")
        env[LOG_ENV] = log_path  # read back by the monitor
        out: int = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # not inherited (PEP 446); its tasks' output is the user's alone
        read_end = -1
    else:
        read_end, out = os.pipe()  # not inherited by other children (PEP 446); Popen hands `out` to this one
    try:
        proc = subprocess.Popen(
            # -P: no working directory first on the path (see pycrew.worker.import_path)
            [options.python, *(("-P",) if shared_path else ()), *call.args],
            env=env,
            cwd=options.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        if read_end >= 0:
            os.close(read_end)
        raise
    finally:
        os.close(out)  # the child has its own copy
    started = time.time()
    try:
        create_time = psutil.Process(proc.pid).create_time()
        started = create_time
    except psutil.Error:  # it exited already (and is a zombie until reaped): no start time to read
        create_time = 0.0
    handle = LocalHandle(proc.pid, create_time)
    output = OutputTail(read_end, call.name) if read_end >= 0 else None
    register(Child(proc, handle, call, started, output, log_path))
    return handle


def _terminate_all(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass  # already gone: that is the goal


def _kill_all(procs: list[psutil.Process], grace: float) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass  # exited between wait and kill
    psutil.wait_procs(procs, timeout=grace)


def _kill_child(child: Child, grace: float) -> None:
    """End a worker this process started, its descendants and its process group; reap it."""
    if child.reaped:  # the reaper ended its group before reaping it
        return
    leader = child.handle.process() if child.exit_code is None else None
    try:
        descendants = leader.children(recursive=True) if leader is not None else []
    except psutil.Error:
        descendants = []
    child.signal_group(signal.SIGTERM)  # its group and session: also what its tasks started that re-parented
    _terminate_all(descendants)  # and what left the group but is still below it
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        status = child.peek()
        if status is not None:
            child.record_exit(status, time.time())
            if child.reaped or not in_use({child.handle.pid}):
                break
        time.sleep(0.02)
    _gone, alive = psutil.wait_procs(descendants, timeout=max(0.0, deadline - time.monotonic()))
    child.signal_group(signal.SIGKILL)
    _kill_all(alive, grace)
    child.reap(timeout=grace)


def _kill_other(handle: LocalHandle, grace: float) -> None:
    """End a worker another process started (found by the monitor) and its descendants."""
    proc = handle.process()
    if proc is None:
        return
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        procs = [proc]
    try:
        os.killpg(handle.pid, signal.SIGTERM)  # its session: catches children that re-parented
    except OSError:  # no such group (already gone), or not a group leader: the pass below covers the rest
        pass
    _terminate_all(procs)
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    if handle.process() is not None:  # its pid still names its group (not reaped by its parent)
        try:
            os.killpg(handle.pid, signal.SIGKILL)
        except OSError:  # group empty: everything exited
            pass
    _kill_all(alive, grace)


def kill_tree(handle: LocalHandle, grace: float = 2.0) -> None:
    """Terminate a worker, every process it started and its process group; silent if already gone.

    SIGTERM first; SIGKILL to what is left after ``grace`` seconds. A worker this process
    started is reaped, and its output kept for :func:`worker_output`.
    """
    with CHILDREN_LOCK:
        child = CHILDREN.get(handle)
    if child is None:
        _kill_other(handle, grace)
        return
    _kill_child(child, grace)
    forget(child, grace)


def parse_worker_cmdline(cmdline: list[str]) -> pycrew.WorkerCommand | None:
    """The worker command of a process running ``python -m pycrew.worker``, else ``None``.

    Options this pycrew version does not know are ignored (a worker of another version is
    still listed); a command line that runs something else (a script, ``-c`` code) is not
    a worker even if ``-m pycrew.worker`` appears in its arguments.
    """
    return pycrew.WorkerCommand.from_cmdline(cmdline)


def _forked_by_a_task(pid: int, instance: str | None) -> bool:
    """Whether ``pid``, which has a worker's command line, is a process a task forked (a
    ``multiprocessing`` pool, a daemon): not listed, nor terminated as an orphan. A local
    worker leads its own session, and what its tasks fork stays in it (or, a daemon, in a
    session whose leader has gone); a worker started by hand is in its shell's session."""
    try:
        session = os.getsid(pid)
    except OSError:  # gone meanwhile
        return True
    if session in (pid, 0):  # (0: its session is outside this PID namespace)
        return False
    try:
        leader = psutil.Process(session).cmdline()
    except psutil.Error:  # its session's leader has ended: the worker it was forked from, or the daemon's parent
        return True
    settings = parse_worker_cmdline(leader)
    return settings is not None and settings.instance == instance


def list_workers(controller_id: str | None) -> list[pycrew.WorkerInfo]:
    """Every pycrew worker process of this user on this machine (optionally one controller's).

    Running ones are found by their command line (``status="running"``); workers this process
    started that have ended since are listed too, until terminated (``status`` ``done`` or
    ``failed``, with the exit code and their output's last lines as ``reason``).
    """
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
        if controller_id is not None and settings.controller_id != controller_id:
            continue
        if _forked_by_a_task(info["pid"], settings.instance):
            continue
        try:
            log = proc.environ().get(LOG_ENV)
        except psutil.Error:
            log = None
        out.append(
            pycrew.WorkerInfo(
                id=str(info["pid"]),
                handle=LocalHandle(info["pid"], info["create_time"]),
                launcher=settings.launcher or "local",
                controller=settings.controller or None,
                controller_id=settings.controller_id or None,
                instance=settings.instance,
                worker=settings.worker or None,
                state=str(info["status"]),
                host=os.uname().nodename,
                pid=info["pid"],
                started=info["create_time"],
                log=log,
                status="running",
            )
        )
    with CHILDREN_LOCK:
        ended = [c for c in CHILDREN.values() if c.exit_code is not None]
    out += [c.info() for c in ended if controller_id is None or c.call.controller_id == controller_id]
    return out

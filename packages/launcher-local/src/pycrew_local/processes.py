"""Starting, finding and killing worker processes on this machine.

Workers are children of the process that launched them (the controller's), which keeps
each one's :class:`subprocess.Popen` until the worker is terminated: so it reaps them (no
zombies), knows their exit codes, and its monitor reports a worker that ended (``status``
``done`` or ``failed``, with the exit code and the last lines of its output) until core
terminates it. Without ``log_dir`` a worker's output goes through a pipe of which only the
last :data:`TAIL_BYTES` are kept in memory; with ``log_dir`` it goes to its log file, whose
end is read instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import psutil

import pycrew
from pycrew_local.options import LocalOptions

WORKER_MODULE = "pycrew.worker"
#: Environment variable telling the monitor where a worker's log is.
LOG_ENV = "PYCREW_LOCAL_LOG"
#: How much of a worker's output is kept (the end of it), to explain an early exit.
TAIL_BYTES = 16 * 1024
#: How many lines of that output an ended worker's ``reason`` quotes.
TAIL_LINES = 20
#: Ended workers are reported until terminated, but at most this many, and this long.
ENDED_MAX = 256
SECONDS_ENDED_KEEP = 600.0


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


class OutputTail:
    """Reads a worker's output pipe on a daemon thread, keeping only its last ``limit`` bytes."""

    def __init__(self, fd: int, name: str, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._fd = fd
        self.thread = threading.Thread(target=self._read, name=f"pycrew-local-output-{name}", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 65536)
                except OSError:  # the pipe broke: treat it as the end of the output
                    return
                if not chunk:
                    return
                with self._lock:
                    self._buf += chunk
                    if len(self._buf) > 2 * self.limit:
                        del self._buf[: len(self._buf) - self.limit]
        finally:
            os.close(self._fd)

    def text(self) -> str:
        """The end of the output read so far."""
        with self._lock:
            data = bytes(self._buf[-self.limit :])
        return data.decode("utf-8", errors="replace")


@dataclass
class _Child:
    """A worker this process started, until it is terminated."""

    proc: subprocess.Popen[bytes]
    handle: LocalHandle
    call: pycrew.WorkerCall
    started: float
    output: OutputTail | None = None
    log_path: str | None = None
    exit_code: int | None = None
    ended_at: float | None = None
    signal_name: str = field(default="")

    def tail(self) -> str:
        """The last lines of the worker's output."""
        if self.output is not None:
            text = self.output.text()
        elif self.log_path:
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
                    text = f.read().decode("utf-8", errors="replace")
            except OSError as exc:
                return f"(its log {self.log_path} cannot be read: {exc})"
        else:
            text = ""
        return "\n".join(line.rstrip() for line in text.strip().splitlines()[-TAIL_LINES:])

    def output_text(self) -> str:
        """All of the worker's output that is kept: its log file, else the in-memory tail."""
        if self.log_path:
            return read_log_file(self.log_path, None)
        return self.output.text() if self.output is not None else ""

    def info(self) -> pycrew.WorkerInfo:
        """The ended worker as the monitor reports it."""
        assert self.exit_code is not None
        tail = self.tail()
        killed = f"killed by {self.signal_name}" if self.signal_name else ""
        if tail:
            reason = f"{killed}\n{tail}" if killed else tail
        else:
            reason = f"{killed}; it wrote no output" if killed else "it wrote no output"
        call = self.call
        return pycrew.WorkerInfo(
            id=str(self.handle.pid),
            handle=self.handle,
            launcher=call.launcher,
            controller=call.controller or None,
            controller_id=call.controller_id or None,
            instance=call.instance,
            worker=call.worker,
            state="exited",
            host=os.uname().nodename,
            pid=self.handle.pid,
            started=self.started,
            reason=reason,
            log=self.log_path,
            status="done" if self.exit_code == 0 else "failed",
            exit_code=self.exit_code,
        )


# Workers this process started, until terminated: reaped here, so they leave no zombie.
_CHILDREN: dict[LocalHandle, _Child] = {}
_CHILDREN_LOCK = threading.Lock()
# The output of the last ENDED_MAX terminated workers (their log path, or their in-memory tail), for logs().
_FORGOTTEN: OrderedDict[LocalHandle, tuple[str | None, str]] = OrderedDict()


def read_log_file(path: str, limit: int | None = TAIL_BYTES) -> str:
    """The text of a worker's log file (its last ``limit`` bytes; all of it for ``None``).

    Raises:
        pycrew.LogsUnavailableError: the file cannot be read.
    """
    try:
        with open(path, "rb") as f:
            if limit is not None:
                f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise pycrew.LogsUnavailableError(
            f"the log file {path} of a local worker cannot be read: {exc}; check log_dir and its permissions"
        ) from exc


def worker_output(handle: LocalHandle) -> str:
    """All of a worker's output that is kept, by where it is kept.

    - With ``log_dir``: the worker's log file, for any worker whose file still exists
      (found through this process's records, or the running worker's environment).
    - Without: the last :data:`TAIL_BYTES` of output of a worker this process started,
      while it runs and for the last :data:`ENDED_MAX` workers after they ended.

    Raises:
        pycrew.LogsUnavailableError: none of that applies, saying why.
    """
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(handle)
        forgotten = _FORGOTTEN.get(handle)
    if child is not None:
        return child.output_text()
    if forgotten is not None:
        log_path, tail = forgotten
        return read_log_file(log_path, None) if log_path else tail
    proc = handle.process()
    log_path = None
    if proc is not None:
        try:
            log_path = proc.environ().get(LOG_ENV)
        except psutil.Error:  # it exited or is not ours to read: treated as "no log file known" below
            log_path = None
    if log_path:
        return read_log_file(log_path, None)
    raise pycrew.LogsUnavailableError(
        f"no output kept for local worker {handle.pid}: without log_dir only the process that launched a worker "
        f"keeps its output (the last {TAIL_BYTES // 1024} KB, for the last {ENDED_MAX} workers after they end); "
        "set the launcher option log_dir to keep every worker's output in a file"
    )


def start_worker(call: pycrew.WorkerCall, options: LocalOptions) -> LocalHandle:
    """Start one worker process in its own session; its output goes to ``log_dir`` or a bounded tail."""
    env = {**os.environ, **options.env, **call.environment()}
    env.pop(LOG_ENV, None)
    log_path: str | None = None
    if options.log_dir:
        Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        log_path = str(Path(options.log_dir).absolute() / f"{call.name}.log")
        env[LOG_ENV] = log_path  # read back by the monitor
        out: int = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # not inherited (PEP 446)
        read_end = -1
    else:
        read_end, out = os.pipe()  # not inherited by other children (PEP 446); Popen hands `out` to this one
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
    with _CHILDREN_LOCK:
        _CHILDREN[handle] = _Child(proc, handle, call, started, output, log_path)
    return handle


def reap() -> None:
    """Collect the exit statuses of workers this process started; forget ended ones beyond the limits."""
    now = time.time()
    with _CHILDREN_LOCK:
        children = list(_CHILDREN.values())
    newly_ended = []
    for child in children:
        if child.exit_code is None:
            code = child.proc.poll()
            if code is not None:
                if code < 0:
                    try:
                        child.signal_name = signal.Signals(-code).name
                    except ValueError:
                        child.signal_name = f"signal {-code}"
                    code = 128 - code
                child.exit_code, child.ended_at = code, now
                newly_ended.append(child)
    for child in newly_ended:  # let the output reader take what the worker wrote last
        if child.output is not None:
            child.output.thread.join(timeout=0.5)
    with _CHILDREN_LOCK:
        ended = sorted((c for c in _CHILDREN.values() if c.ended_at is not None), key=lambda c: c.ended_at or 0.0)
        for k, child in enumerate(ended):
            if len(ended) - k > ENDED_MAX or now - (child.ended_at or now) > SECONDS_ENDED_KEEP:
                _CHILDREN.pop(child.handle, None)


def _forget(handle: LocalHandle, grace: float) -> None:
    """Reap a terminated worker and drop its record (waiting up to ``grace`` for its exit)."""
    with _CHILDREN_LOCK:
        child = _CHILDREN.get(handle)
    if child is None:
        return
    try:
        child.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:  # kept: a later reap or terminate collects it
        return
    if child.output is not None:
        child.output.thread.join(timeout=grace)
    kept = (child.log_path, "" if child.log_path else child.output_text())
    with _CHILDREN_LOCK:
        _CHILDREN.pop(handle, None)
        _FORGOTTEN[handle] = kept
        while len(_FORGOTTEN) > ENDED_MAX:
            _FORGOTTEN.popitem(last=False)


def kill_tree(handle: LocalHandle, grace: float = 2.0) -> None:
    """Terminate a worker and every process it started; silent if already gone."""
    proc = handle.process()
    if proc is None:
        _forget(handle, grace)
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
    _forget(handle, grace)


def parse_worker_cmdline(cmdline: list[str]) -> pycrew.WorkerCommand | None:
    """The worker command of a process running ``python -m pycrew.worker``, else ``None``.

    Options this pycrew version does not know are ignored (a worker of another version is
    still listed); a command line that runs something else (a script, ``-c`` code) is not
    a worker even if ``-m pycrew.worker`` appears in its arguments.
    """
    return pycrew.WorkerCommand.from_cmdline(cmdline)


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
    with _CHILDREN_LOCK:
        ended = [c for c in _CHILDREN.values() if c.exit_code is not None]
    out += [c.info() for c in ended if controller_id is None or c.call.controller_id == controller_id]
    return out

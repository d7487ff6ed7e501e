"""The ``swarm`` launcher: many real pycrew worker loops per process, for scale tests.

A launch of ``n`` workers starts ``ceil(n / workers_per_host)`` host processes
(``python -m pycrew_emulators.swarm_host``, see :mod:`pycrew_emulators.swarm_host`); each
runs its share of the batch as real :class:`pycrew.worker.loop.Worker` loops, one thread
each, so one machine can hold thousands of connected workers on one controller. The
worker commands (an array's shared command when the calls form one, as a batch scheduler
would run them) and their secrets reach a host on its standard input, never in argv or
the environment.

A handle (:class:`SwarmHandle`) names the host process, the worker's instance and the
host's control socket. Terminating a handle cuts that worker's connection (the
controller sees it lost, as when a process is killed); a host exits when none of its
workers is left. Tasks run in threads of a shared process: a running task cannot be
cancelled or timed out by the worker (the dispatcher replaces the worker after its grace
period), a task that kills its process kills every worker of that host, and tasks share
``os.environ``, the working directory and the ``warnings`` filters.

Registered through the entry point ``swarm = "pycrew_emulators.swarm:plugin"`` in the
``pycrew.launchers`` group, so that a controller in any process (the benchmark, the
conformance suite's child controller, ``pycrew monitor swarm list``) finds it by name.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

import psutil

import pycrew
from pycrew_emulators.swarm_host import EVENT, INDEX_ENV

log = logging.getLogger(__name__)

NAME = "swarm"
HOST_MODULE = "pycrew_emulators.swarm_host"
#: Longest path a Unix socket may have (108 bytes on Linux, with the terminating NUL).
SOCKET_PATH_MAX = 107
#: How much of a host's log output is kept in memory (its end), per host.
TAIL_BYTES = 16 * 1024
#: Ended workers are reported until terminated, but at most this many.
ENDED_MAX = 1024


@dataclass(frozen=True)
class SwarmOptions(pycrew.LauncherOptions):
    """Options of the ``swarm`` launcher.

    Attributes:
        workers_per_host: how many worker loops one host process runs at most.
        python: the interpreter that runs host processes (default: the controller's).
        env: extra environment variables for the host processes.
        run_dir: the private directory of the hosts' control sockets (default:
            ``<tempdir>/pycrew-swarm-<uid>``); short enough for Unix socket paths.
        seconds_start: how long a host process may take to read its batch and listen.
        stack_kib: thread stack size of the host's threads in KiB (0: the platform's default).
    """

    owner: ClassVar[str] = "swarm"

    workers_per_host: int = 200
    python: str = field(default_factory=lambda: sys.executable)
    env: dict[str, str] = field(default_factory=dict)
    run_dir: str | None = None
    seconds_start: float = 60.0
    stack_kib: int = 0

    def validate(self) -> None:
        pycrew.require(
            self.workers_per_host >= 1, self.owner, "workers_per_host", self.workers_per_host, "be an integer >= 1"
        )
        pycrew.require(bool(self.python), self.owner, "python", self.python, "be a path to a Python interpreter")
        pycrew.require(
            pycrew.TOKEN_ENV not in self.env, self.owner, "env", sorted(self.env), f"not set {pycrew.TOKEN_ENV}"
        )
        pycrew.require(
            self.seconds_start > 0 and math.isfinite(self.seconds_start),
            self.owner,
            "seconds_start",
            self.seconds_start,
            "be a finite number of seconds > 0",
        )
        pycrew.require(
            self.stack_kib == 0 or self.stack_kib >= 64,
            self.owner,
            "stack_kib",
            self.stack_kib,
            "be 0 (the platform's default) or at least 64 (KiB)",
        )
        room = SOCKET_PATH_MAX - len("/0123456789abcdef.sock")
        pycrew.require(
            len(self.directory()) <= room,
            self.owner,
            "run_dir",
            self.run_dir,
            f"be a path of at most {room} characters (Unix socket paths are short); pick a shorter directory",
        )

    def directory(self) -> str:
        """The control sockets' directory."""
        return self.run_dir or os.path.join(tempfile.gettempdir(), f"pycrew-swarm-{os.getuid()}")


@dataclass(frozen=True)
class SwarmHandle:
    """One worker loop: its host process, its instance id and the host's control socket."""

    pid: int
    instance: str
    control: str


class _Host:
    """A host process this process started: reads its output, reaps it, keeps its end."""

    def __init__(self, proc: subprocess.Popen[bytes], control: str, instances: list[str]) -> None:
        self.proc = proc
        self.control = control
        self.instances = instances
        self.ready = threading.Event()  # also set when the host exits (whoever waits sees it)
        self.announced = False  # the host said it was ready (its workers started)
        self.ended_workers: list[dict[str, Any]] = []
        self._tail = bytearray()
        self._lock = threading.Lock()
        assert proc.stdout is not None
        self.reader = threading.Thread(
            target=self._read, args=(proc.stdout,), name=f"pycrew-swarm-{proc.pid}", daemon=True
        )
        self.reader.start()

    def _read(self, out: IO[bytes]) -> None:
        try:
            for raw in out:
                line = raw.decode("utf-8", errors="replace")
                if line.startswith(EVENT):
                    try:
                        event = json.loads(line[len(EVENT) :])
                    except ValueError:  # a cut line: keep it as text
                        event = None
                    if isinstance(event, dict):
                        if event.get("ready"):
                            self.announced = True
                            self.ready.set()
                        elif "ended" in event:
                            with self._lock:
                                self.ended_workers.append(event)
                            _remember_ended(self, event)
                        continue
                with self._lock:
                    self._tail += raw
                    if len(self._tail) > 2 * TAIL_BYTES:
                        del self._tail[: len(self._tail) - TAIL_BYTES]
        finally:
            out.close()
            self.proc.wait()  # reap it: no zombie stays listed as a process
            self.ready.set()  # whoever waits for readiness sees the exit
            _host_ended(self)

    def tail(self) -> str:
        """The end of the host's log output."""
        with self._lock:
            return bytes(self._tail[-TAIL_BYTES:]).decode("utf-8", errors="replace")


# Hosts this process started (by control path) and ended workers not yet terminated.
_HOSTS: dict[str, _Host] = {}
_ENDED: OrderedDict[SwarmHandle, tuple[dict[str, Any], _Host]] = OrderedDict()
_CALLS: dict[SwarmHandle, pycrew.WorkerCall] = {}
_LOCK = threading.Lock()


def _host_ended(host: _Host) -> None:
    """Forget the oldest ended hosts beyond ``ENDED_MAX`` (their output is kept until then, for logs)."""
    with _LOCK:
        ended = [c for c, h in _HOSTS.items() if h.proc.returncode is not None]
        for control in ended[: max(0, len(ended) - ENDED_MAX)]:
            del _HOSTS[control]


def _remember_ended(host: _Host, event: dict[str, Any]) -> None:
    handle = SwarmHandle(host.proc.pid, str(event.get("ended")), host.control)
    with _LOCK:
        if handle in _CALLS:
            _ENDED[handle] = (event, host)
            while len(_ENDED) > ENDED_MAX:
                old, _ = _ENDED.popitem(last=False)
                _CALLS.pop(old, None)


def _entries(calls: Sequence[pycrew.WorkerCall]) -> list[dict[str, Any]]:
    """The batch document's entries: array entries for calls that form arrays, single ones otherwise."""
    out: list[dict[str, Any]] = []
    arrays: dict[tuple[str, tuple[str, ...], str | None], dict[str, Any]] = {}
    for call in calls:
        ca = call.env.get(pycrew.TLS_CA_ENV)
        if call.batch_key and call.instance == f"{call.instance_prefix}{call.batch_index}":
            args = call.array_args(INDEX_ENV, 0)
            key = (call.batch_key, args, ca)
            entry = arrays.get(key)
            if entry is None:
                entry = arrays[key] = {"args": list(args), "batch_key": call.batch_key, "indices": [], "ca": ca}
                out.append(entry)
            entry["indices"].append(call.batch_index)
        else:
            out.append({"args": list(call.args), "token": call.token, "ca": ca})
    return out


def _request(control: str, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any] | None:
    """Send one request to a host's control socket; ``None`` if the host is gone."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(control)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    if not data:
        return None  # it exited while answering
    reply: dict[str, Any] = json.loads(data)
    return reply


def _host_process(pid: int, control: str) -> psutil.Process | None:
    """The host process ``pid`` if it still runs and serves ``control``."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or control not in proc.cmdline():
            return None
        return proc
    except psutil.Error:
        return None


class SwarmPlugin(pycrew.LauncherPlugin[SwarmOptions, None]):
    """Workers are threads of host processes on this machine; the handle is a :class:`SwarmHandle`."""

    name = NAME
    options_type = SwarmOptions
    summary = "many real worker loops per local process (scale tests; pycrew-emulators)"
    remote = False
    capabilities = frozenset({"pid", "host", "monitor", "orphans", "never_connected"})
    seconds_exit_margin = 5.0

    def launch(
        self, launcher: pycrew.LauncherInfo, options: SwarmOptions, calls: Sequence[pycrew.WorkerCall]
    ) -> list[Any]:
        """Start ``ceil(len(calls) / workers_per_host)`` host processes; wait until each listens."""
        directory = options.directory()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        per = options.workers_per_host
        started: list[_Host] = []
        handles: list[Any] = []
        try:
            for first in range(0, len(calls), per):
                chunk = calls[first : first + per]
                host = self._start_host(options, directory, chunk)
                started.append(host)
                handles += [SwarmHandle(host.proc.pid, call.instance, host.control) for call in chunk]
                with _LOCK:
                    _CALLS.update(zip(handles[-len(chunk) :], chunk, strict=True))
            deadline = time.monotonic() + options.seconds_start
            for host in started:
                host.ready.wait(max(0.0, deadline - time.monotonic()))
                # A host that started its workers and has exited since is not a failed
                # launch: its workers ended (each reported by its own "ended" event).
                if not host.announced:
                    host.reader.join(timeout=1.0)
                    what = (
                        f"exited with code {host.proc.returncode}"
                        if host.proc.returncode is not None
                        else f"did not listen within seconds_start={options.seconds_start:g} s"
                    )
                    raise RuntimeError(
                        f"swarm host process {host.proc.pid} ({options.python} -m {HOST_MODULE}) {what}; its output:\n"
                        f"{host.tail()[-3000:] or '(none)'}"
                    )
        except BaseException:
            for host in started:  # do not orphan the part of the batch that did start
                _kill(host.proc.pid, host.control)
            with _LOCK:
                for handle in handles:
                    _CALLS.pop(handle, None)
            raise
        return handles

    def _start_host(self, options: SwarmOptions, directory: str, calls: Sequence[pycrew.WorkerCall]) -> _Host:
        control = os.path.join(directory, f"{secrets.token_hex(8)}.sock")
        env = {**os.environ, **options.env}
        for call in calls:  # non-secret settings (the TLS CA travels in the batch too)
            env.update(call.env)
        env.pop(pycrew.TOKEN_ENV, None)
        argv = [options.python, "-m", HOST_MODULE, "--control", control]
        if options.stack_kib:
            argv += ["--stack-kib", str(options.stack_kib)]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        host = _Host(proc, control, [c.instance for c in calls])
        with _LOCK:
            _HOSTS[control] = host
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"workers": _entries(calls)}).encode())
            proc.stdin.close()
        except BrokenPipeError:  # it died at start: the readiness check reports its output
            pass
        return host

    def terminate(self, launcher: pycrew.LauncherInfo, options: SwarmOptions, handles: Sequence[Any]) -> None:
        """Cut each worker's connection; a host with no worker left exits (silent for workers already gone)."""
        by_host: dict[tuple[int, str], list[str]] = {}
        for handle in handles:
            if isinstance(handle, SwarmHandle):
                by_host.setdefault((handle.pid, handle.control), []).append(handle.instance)
                with _LOCK:
                    _ENDED.pop(handle, None)
                    _CALLS.pop(handle, None)
        for (pid, control), instances in by_host.items():
            try:
                reply = _request(control, {"op": "terminate", "instances": instances})
            except (OSError, ValueError) as exc:
                reply = None
                if _host_process(pid, control) is not None:
                    log.warning("swarm host %d did not answer a terminate request (%s); killing it", pid, exc)
                    _kill(pid, control)
            if reply is not None and reply.get("exiting"):
                _wait_gone(pid, control)

    def list_workers(
        self, launcher: pycrew.LauncherInfo, options: SwarmOptions, controller_id: str | None
    ) -> list[pycrew.WorkerInfo]:
        """Live worker loops of every host in ``run_dir``; ended ones this process launched until terminated."""
        out: list[pycrew.WorkerInfo] = []
        for control in sorted(glob.glob(os.path.join(glob.escape(options.directory()), "*.sock"))):
            try:
                reply = _request(control, {"op": "list"})
            except (OSError, ValueError) as exc:  # a host stuck or exiting: listed next time
                log.debug("swarm host %s did not answer: %s", control, exc)
                continue
            if reply is None:
                _remove_stale(control)
                continue
            pid = int(reply["pid"])
            for row in reply["workers"]:
                if row["launcher"] != launcher.name or (
                    controller_id is not None and row["controller_id"] != controller_id
                ):
                    continue
                out.append(
                    pycrew.WorkerInfo(
                        id=f"{pid}/{row['instance']}",
                        handle=SwarmHandle(pid, row["instance"], control),
                        launcher=row["launcher"],
                        controller=row["controller"] or None,
                        controller_id=row["controller_id"] or None,
                        instance=row["instance"],
                        worker=row["worker"] or None,
                        state=row["state"],
                        host=reply["host"],
                        pid=pid,
                        started=row["started"],
                        status="running",
                    )
                )
        with _LOCK:
            ended = [(h, e, host, _CALLS[h]) for h, (e, host) in _ENDED.items() if h in _CALLS]
        for handle, event, host, call in ended:
            if controller_id is not None and call.controller_id != controller_id:
                continue
            code = int(event.get("exit_code", 1))
            tail = "\n".join(host.tail().strip().splitlines()[-20:])
            out.append(
                pycrew.WorkerInfo(
                    id=f"{handle.pid}/{handle.instance}",
                    handle=handle,
                    launcher=call.launcher,
                    controller=call.controller or None,
                    controller_id=call.controller_id or None,
                    instance=call.instance,
                    worker=call.worker,
                    state="ended",
                    host=socket.gethostname(),
                    pid=handle.pid,
                    reason="\n".join(x for x in (str(event.get("reason", "")), tail) if x),
                    status="done" if code == 0 else "failed",
                    exit_code=code,
                )
            )
        return out

    def logs(self, launcher: pycrew.LauncherInfo, options: SwarmOptions, handle: Any, lines: int | None) -> str | None:
        """The end of the log output of the worker's host process (shared by all of its workers).

        Raises:
            pycrew.LogsUnavailableError: the host was not started by this process.
        """
        host = _HOSTS.get(handle.control) if isinstance(handle, SwarmHandle) else None
        if host is None:
            raise pycrew.LogsUnavailableError(
                f"no output kept for swarm worker {handle!r}: only the process that launched a swarm host keeps "
                f"the end of its output ({TAIL_BYTES // 1024} KB, shared by the host's workers)"
            )
        text = host.tail()
        return text if lines is None else "".join(text.splitlines(keepends=True)[-lines:])


def _remove_stale(control: str) -> None:
    """Remove the socket file of a host that is gone (killed before it could)."""
    with _LOCK:
        host = _HOSTS.get(control)
    if host is not None and host.proc.poll() is None:
        return  # ours and alive: not listening yet, or exiting
    with contextlib.suppress(OSError):
        os.unlink(control)


def _wait_gone(pid: int, control: str, timeout: float = 5.0) -> None:
    """Wait until a host that said it exits is gone (reaped, if it is ours); kill it after ``timeout``."""
    with _LOCK:
        host = _HOSTS.get(control)
    if host is not None:
        try:
            host.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(pid, control)
        return
    deadline = time.monotonic() + timeout
    while _host_process(pid, control) is not None:
        if time.monotonic() > deadline:
            _kill(pid, control)
            return
        time.sleep(0.02)


def _kill(pid: int, control: str) -> None:
    """Kill a host process (and its session) now; silent if it is gone."""
    with _LOCK:
        host = _HOSTS.get(control)
    if host is not None:
        if host.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # reaped by its reader thread otherwise
            host.proc.wait(5.0)
    elif _host_process(pid, control) is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise
    with contextlib.suppress(OSError):
        os.unlink(control)


#: The plugin object the entry point names.
plugin = SwarmPlugin()

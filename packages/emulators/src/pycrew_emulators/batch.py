"""Shared engine of the PBS and LSF command-line emulators.

PBS Pro/OpenPBS, TORQUE and LSF cannot run on this machine, so :mod:`pycrew_emulators.pbs`
and :mod:`pycrew_emulators.lsf` emulate their command-line tools. This module holds what
they share:

* :class:`BatchEngine`: the job table. Every job and every array element is an
  :class:`Element` that runs ``bash <spooled script>`` as a real local process in its own
  session (process group), with the environment the scheduler would give it, stdout and
  stderr going to the requested files. At most ``slots`` elements run at once; the rest
  stay queued (so tests can see pending jobs), in submission order, honouring an array's
  concurrency limit (PBS/TORQUE ``%max``, LSF ``%k``). Kills send the scheduler's polite
  signals to the whole process group, then SIGKILL after ``kill_grace_seconds`` (PBS's
  ``kill_delay`` and LSF's ``JOB_TERMINATE_INTERVAL`` are both 10 s by default; the
  emulator uses 2 s to keep tests fast). A walltime limit is enforced the same way. When
  a job's main process exits, the rest of its process group is SIGKILLed (PBS MoM and
  LSF's sbatchd clean up a job's session). Finished jobs stay in the table (history for
  ``qstat -x`` / ``bjobs -a``). Output can be written in place (PBS Pro ``-k oed``, LSF
  ``LSB_STDOUT_DIRECT=Y``) or spooled and copied to its destination when the job ends
  (both schedulers' default).
* :class:`CommandServer`: a server thread on a Unix socket in a private temp dir. The
  command shims written into ``<tmp>/bin/`` are small Python scripts (shebang: the test's
  interpreter, ``-IS`` so they start fast and ignore ``PYTHON*`` variables) that send
  argv, environment and cwd, send their stdin only when the emulator asks for it (a
  submit without a script operand), print the answer and exit with its code. When the
  server is gone they print the scheduler's "cannot connect" error, like a client whose
  server is down.
* :class:`BatchEmulator`: the object the fixtures yield (see the README section "Batch
  schedulers"): job snapshots (:class:`BatchJob`), waiting for states, running a shim,
  the record of calls, fault injection (transient errors, lost replies, slow replies,
  holding jobs queued) and clean shutdown.

Deviations common to all flavours (each flavour module lists its own, and every guess is
marked ``# GUESS:`` there): one host (this one) runs everything, so spooled output is
"copied back" with a local copy; resources (cpus,
memory) are recorded and shown but never enforced and never make a job wait, except the
walltime; there is one user.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

__all__ = [
    "BatchEmulator",
    "BatchEngine",
    "BatchJob",
    "CommandCall",
    "CommandReply",
    "CommandRequest",
    "CommandServer",
    "Element",
]

_log = logging.getLogger(__name__)

State = Literal["queued", "running", "exiting", "finished"]

#: PATH a job gets when the submit does not export the caller's environment.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(eq=False)
class Element:
    """One runnable unit: a plain job or one element of an array job.

    Internal and mutable: fields are read and written under :attr:`BatchEngine.lock`.
    ``attrs`` holds what a flavour needs to render its status output.
    """

    seq: int
    index: int | None
    job_id: str
    array_id: str | None
    name: str
    queue: str
    script_path: Path
    env: dict[str, str]
    cwd: Path
    stdout_path: Path | None
    stderr_path: Path | None
    merge_stderr: bool = False
    output_mode: Literal["w", "a"] = "w"
    walltime: float | None = None
    group: str | None = None
    group_limit: int | None = None
    submit_argv: tuple[str, ...] = ()
    kill_signals: tuple[int, ...] = (signal.SIGTERM,)
    walltime_signals: tuple[int, ...] = (signal.SIGTERM,)
    attrs: dict[str, Any] = field(default_factory=dict)
    #: ``None``: it starts when a slot is free. Else it starts only once this returns True
    #: (called under the engine's lock): a dependency, or a request no host can meet.
    gate: Callable[[], bool] | None = field(default=None, repr=False)
    state: State = "queued"
    submit_time: float = field(default_factory=time.time)
    start_time: float | None = None
    end_time: float | None = None
    returncode: int | None = None
    pid: int | None = None
    killed: bool = False
    walltime_exceeded: bool = False
    start_error: str = ""
    kill_deadline: float | None = None
    pending_signals: list[int] = field(default_factory=list)
    stdout_final: Path | None = None
    stderr_final: Path | None = None
    deliveries: list[tuple[Path, Path, str]] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def signal_number(self) -> int | None:
        """The signal that ended the job's main process, if one did."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None


@dataclass(frozen=True)
class BatchJob:
    """Snapshot of one job or array element, as tests see it.

    Attributes:
        job_id: The element's id as the scheduler names it (``"101.srv"``,
            ``"100[2].srv"``, LSF ``"7"`` or ``"8[2]"``).
        array_id: The array's id as the submit printed it (``"100[].srv"``, LSF
            ``"8"``); ``None`` for a plain job.
        index: Array index, ``None`` for a plain job.
        name: Job name as the scheduler shows it.
        queue: Queue name.
        state: ``"queued"``, ``"running"`` or ``"finished"``.
        native_state: The scheduler's own state code (``Q R E F X``, ``Q R E C``,
            ``PEND RUN DONE EXIT``).
        exit_status: Exit status as the scheduler reports it; ``None`` if it never ran.
        killed: True when deleted by ``qdel``/``bkill`` (or killed at its walltime).
        pid: Process id of the job's main process (``None`` if it never started).
        environment: Environment the process got.
        cwd: Working directory of the process.
        stdout_path: Where stdout goes (``None``: discarded).
        stderr_path: Where stderr goes (same as stdout when merged; ``None``: discarded).
        submit_argv: The submit command's arguments.
        submit_time: Epoch seconds.
        start_time: Epoch seconds, ``None`` before it started.
        end_time: Epoch seconds, ``None`` before it finished.
    """

    job_id: str
    array_id: str | None
    index: int | None
    name: str
    queue: str
    state: Literal["queued", "running", "finished"]
    native_state: str
    exit_status: int | None
    killed: bool
    pid: int | None
    environment: dict[str, str]
    cwd: Path
    stdout_path: Path | None
    stderr_path: Path | None
    submit_argv: tuple[str, ...]
    submit_time: float
    start_time: float | None
    end_time: float | None


@dataclass(frozen=True)
class CommandCall:
    """One command the emulator received.

    Attributes:
        command: ``"qsub"``, ``"bjobs"``, ...
        argv: Its arguments (without the command name).
        cwd: Working directory of the caller.
        returncode: Exit code the caller was told (a lost reply's error code).
        fault: ``None``, ``"fail"``, ``"lost-error"``, ``"lost-hang"``, ``"delay"`` or ``"rewrite"``.
        time: Epoch seconds when it arrived.
    """

    command: str
    argv: tuple[str, ...]
    cwd: str
    returncode: int
    fault: str | None
    time: float


@dataclass(frozen=True)
class CommandRequest:
    """A command invocation received from a shim.

    ``read_stdin()`` asks the shim for its standard input (only when the command needs
    it, e.g. ``qsub`` without a script operand) and returns it as text.
    """

    command: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    read_stdin: Callable[[], str]


@dataclass(frozen=True)
class CommandReply:
    """What the shim prints and its exit code."""

    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


class BatchEngine:
    """The job table: queues, starts, kills and reaps :class:`Element` processes.

    Args:
        slots: At most this many elements run at once.
        kill_grace_seconds: Delay between the polite signals and SIGKILL.
        on_walltime: Called (under the lock) when an element exceeds its walltime,
            before it is signalled; flavours write their message into the job's files.
        on_exit: Called (without the lock) after an element's process exited and
            before it is marked finished; LSF appends its job report there.
    """

    def __init__(
        self,
        *,
        slots: int = 16,
        kill_grace_seconds: float = 2.0,
        on_walltime: Callable[[Element], None] | None = None,
        on_exit: Callable[[Element], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.slots = slots
        self.kill_grace_seconds = kill_grace_seconds
        self.hold = False
        self._on_walltime = on_walltime
        self._on_exit = on_exit
        self._elements: list[Element] = []
        self._watchers: list[threading.Thread] = []
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="batch-engine", daemon=True)
        self._thread.start()

    def add(self, elements: Sequence[Element]) -> None:
        """Queue new elements (they start as slots free up, unless held)."""
        with self.lock:
            if self._closed:
                raise RuntimeError("the batch engine is closed; no job can be submitted")
            self._elements.extend(elements)
            self.changed.notify_all()

    def elements(self) -> list[Element]:
        """Every element, oldest first (call under :attr:`lock` to read fields consistently)."""
        with self.lock:
            return list(self._elements)

    def kill(self, element: Element, signals: Sequence[int]) -> Literal["dequeued", "signalled", "finished"]:
        """Delete one element: a queued one ends without running; a running one is signalled.

        The first of ``signals`` goes to the job's process group at once, each further
        one ``kill_grace_seconds`` later, then SIGKILL (PBS: TERM, KILL; LSF: INT,
        TERM, KILL). Returns ``"finished"`` (and does nothing) when it had already ended.
        """
        with self.lock:
            if element.state == "finished":
                return "finished"
            element.killed = True
            if element.state == "queued":
                element.state = "finished"
                element.end_time = time.time()
                self.changed.notify_all()
                return "dequeued"
            if element.kill_deadline is None:
                self._escalate(element, signals)
            self.changed.notify_all()
            return "signalled"

    def signal(self, element: Element, signum: int) -> bool:
        """Send one signal to a running element's process group; False if it is not running."""
        with self.lock:
            if element.state not in ("running", "exiting"):
                return False
            self._signal(element, (signum,))
            return True

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (with the lock held inside) until ``predicate()`` is true; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(min(remaining, 0.2))
            return True

    def close(self) -> None:
        """SIGKILL every running job's process group, reap them, stop the engine thread."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            for element in self._elements:
                if element.state == "queued":
                    element.state = "finished"
                    element.end_time = time.time()
                elif element.process is not None and element.state in ("running", "exiting"):
                    self._signal(element, (signal.SIGKILL,))
            self.changed.notify_all()
        for watcher in list(self._watchers):
            watcher.join(timeout=10)
        self._thread.join(timeout=10)

    # internals -------------------------------------------------------------------

    def _escalate(self, element: Element, signals: Sequence[int]) -> None:
        first, *rest = list(signals) or [signal.SIGKILL]
        self._signal(element, (first,))
        element.pending_signals = [*rest, signal.SIGKILL]
        element.kill_deadline = time.time() + self.kill_grace_seconds

    def _signal(self, element: Element, signals: Sequence[int]) -> None:
        if element.pid is None:
            return
        for sig in signals:
            try:
                os.killpg(element.pid, sig)
            except ProcessLookupError:
                return  # the whole group is gone already: nothing left to signal
            except PermissionError as exc:  # pragma: no cover - same user always
                _log.warning("cannot signal job %s (pgid %s): %s", element.job_id, element.pid, exc)
                return

    def _loop(self) -> None:
        with self.lock:
            while not self._closed:
                now = time.time()
                next_wake = now + 0.5
                for element in self._elements:
                    if element.state not in ("running", "exiting"):
                        continue
                    if (
                        element.walltime is not None
                        and not element.walltime_exceeded
                        and element.start_time is not None
                        and element.state == "running"
                    ):
                        due = element.start_time + element.walltime
                        if now >= due:
                            element.walltime_exceeded = True
                            element.killed = True
                            if self._on_walltime is not None:
                                self._on_walltime(element)
                            self._escalate(element, element.walltime_signals)
                        else:
                            next_wake = min(next_wake, due)
                    if element.kill_deadline is not None:
                        if now >= element.kill_deadline:
                            if element.pending_signals:
                                self._signal(element, (element.pending_signals.pop(0),))
                            else:
                                self._signal(element, (signal.SIGKILL,))  # repeat until it is reaped
                            element.kill_deadline = now + (self.kill_grace_seconds if element.pending_signals else 1.0)
                        next_wake = min(next_wake, element.kill_deadline)
                if not self.hold:
                    self._start_queued(now)
                self.changed.wait(max(0.01, next_wake - time.time()))

    def _start_queued(self, now: float) -> None:
        active = [e for e in self._elements if e.state in ("running", "exiting")]
        free = self.slots - len(active)
        if free <= 0:
            return
        per_group: dict[str, int] = {}
        for element in active:
            if element.group is not None:
                per_group[element.group] = per_group.get(element.group, 0) + 1
        for element in self._elements:
            if free <= 0:
                return
            if element.state != "queued":
                continue
            if element.gate is not None and not element.gate():
                continue
            if element.group is not None and element.group_limit is not None:
                if per_group.get(element.group, 0) >= element.group_limit:
                    continue
                per_group[element.group] = per_group.get(element.group, 0) + 1
            self._start(element, now)
            free -= 1

    def _start(self, element: Element, now: float) -> None:
        files: list[Any] = []
        try:
            stdout: Any = subprocess.DEVNULL
            stderr: Any = subprocess.DEVNULL
            if element.stdout_path is not None:
                stdout = _open_output(element.stdout_path, element.output_mode, files)
            if element.merge_stderr:
                stderr = subprocess.STDOUT if element.stdout_path is not None else subprocess.DEVNULL
            elif element.stderr_path is not None:
                stderr = _open_output(element.stderr_path, element.output_mode, files)
            process = subprocess.Popen(
                ["/bin/bash", str(element.script_path)],
                cwd=element.cwd,
                env=element.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for handle in files:
                handle.close()
            element.start_error = f"{type(exc).__name__}: {exc}"
            element.state = "finished"
            element.start_time = element.end_time = now
            self.changed.notify_all()
            return
        element.process = process
        element.pid = process.pid
        element.state = "running"
        element.start_time = now
        watcher = threading.Thread(
            target=self._watch, args=(element, process, files), name=f"batch-job-{element.job_id}", daemon=True
        )
        self._watchers.append(watcher)
        watcher.start()
        self.changed.notify_all()

    def _watch(self, element: Element, process: subprocess.Popen[bytes], files: list[Any]) -> None:
        returncode = process.wait()
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what is left of the job's session
        except (ProcessLookupError, PermissionError):
            pass  # nothing left in the group: the usual case
        for handle in files:
            handle.close()
        with self.lock:
            element.returncode = returncode
            element.state = "exiting"
            self.changed.notify_all()
        if self._on_exit is not None:
            try:
                self._on_exit(element)
            except Exception:
                _log.exception("finishing job %s failed", element.job_id)
        for source, destination, mode in element.deliveries:
            _deliver(source, destination, mode)
        with self.lock:
            element.state = "finished"
            element.end_time = time.time()
            element.kill_deadline = None
            element.process = None
            self.changed.notify_all()


def _deliver(source: Path, destination: Path, mode: str) -> None:
    """Copy a spooled output file to its destination at the end of the job, as PBS and LSF do."""
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        return  # the job never opened it (it did not start)
    try:
        with destination.open(mode + "b") as handle:
            handle.write(data)
    except OSError as exc:
        # PBS keeps undeliverable output in undelivered/, LSF mails it: the spool copy stays.
        _log.warning("cannot deliver job output %s to %s (%s); it stays in the spool", source, destination, exc)
        return
    source.unlink(missing_ok=True)


def _open_output(path: Path, mode: str, files: list[Any]) -> Any:
    try:
        handle = path.open(mode + "b")
    except OSError as exc:
        # The scheduler would keep the output elsewhere (PBS: undelivered/, LSF: mail);
        # the job still runs.
        _log.warning("cannot open job output %s (%s); the output is discarded", path, exc)
        return subprocess.DEVNULL
    files.append(handle)
    return handle


class CommandServer:
    """Serves shim requests on a Unix socket, one thread per connection.

    Wire format: newline-delimited JSON. The shim sends ``{"command", "argv", "env",
    "cwd"}``; the server may answer ``{"type": "stdin"}``, to which the shim replies
    ``{"stdin": text}``; the last message is ``{"type": "result", "stdout", "stderr",
    "rc"}``.
    """

    def __init__(self, path: Path, handler: Callable[[CommandRequest], CommandReply]) -> None:
        self.path = path
        self._handler = handler
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        self._closed = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="batch-command-server", daemon=True)
        self._thread.start()

    @property
    def closing(self) -> threading.Event:
        """Set when the server shuts down (hung replies stop waiting on it)."""
        return self._closed

    def close(self) -> None:
        """Stop accepting, drop open connections, remove the socket file."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected: closing is enough
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the peer already went away
        self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=self._serve, args=(conn,), name="batch-command", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            stream = conn.makefile("rwb")
            first = stream.readline()
            if not first:
                return
            message = json.loads(first)

            def read_stdin() -> str:
                stream.write(b'{"type": "stdin"}\n')
                stream.flush()
                line = stream.readline()
                return str(json.loads(line)["stdin"]) if line else ""

            request = CommandRequest(
                command=str(message["command"]),
                argv=tuple(str(a) for a in message["argv"]),
                env={str(k): str(v) for k, v in message["env"].items()},
                cwd=Path(message["cwd"]),
                read_stdin=read_stdin,
            )
            reply = self._handler(request)
            payload = {"type": "result", "stdout": reply.stdout, "stderr": reply.stderr, "rc": reply.returncode}
            stream.write(json.dumps(payload).encode() + b"\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            if not self._closed.is_set():
                _log.warning("batch command connection failed: %s", exc)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()


_SHIM = '''#!{python} -IS
"""{command}: pycrew batch emulator shim (talks to the emulator in the test process)."""
import json, os, socket, sys
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({socket_path!r})
except OSError:
    sys.stderr.write({unreachable_stderr!r})
    sys.exit({unreachable_rc!r})
f = s.makefile("rwb")
f.write(json.dumps({{"command": {command!r}, "argv": sys.argv[1:], "env": dict(os.environ),
                    "cwd": os.getcwd()}}).encode() + b"\\n")
f.flush()
while True:
    line = f.readline()
    if not line:
        sys.stderr.write({unreachable_stderr!r})
        sys.exit({unreachable_rc!r})
    msg = json.loads(line)
    if msg["type"] == "stdin":
        data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        f.write(json.dumps({{"stdin": data.decode("utf-8", "surrogateescape")}}).encode() + b"\\n")
        f.flush()
        continue
    sys.stdout.write(msg["stdout"])
    sys.stderr.write(msg["stderr"])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(msg["rc"])
'''


@dataclass
class _Pending:
    command: str
    remaining: int
    kind: Literal["fail", "lost-error", "lost-hang", "delay", "rewrite"]
    seconds: float = 0.0
    stdout: str = ""
    returncode: int = 0


class BatchEmulator:
    """Base of :class:`~pycrew_emulators.pbs.PbsEmulator` and :class:`~pycrew_emulators.lsf.LsfEmulator`.

    Starts the engine and the command server and writes the shims at construction;
    :meth:`close` undoes everything. Subclasses implement the commands.
    """

    flavour: str = ""
    commands: tuple[str, ...] = ()
    default_queue: str = ""

    def __init__(self, *, slots: int = 16, kill_grace_seconds: float = 2.0, first_job_id: int = 100) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"pycrew-{self.flavour}-"))
        self.bin_directory = self.root / "bin"
        self.spool = self.root / "spool"
        self.bin_directory.mkdir()
        self.spool.mkdir()
        self.hostname = socket.gethostname()
        self._seq = itertools.count(first_job_id)
        self._next = first_job_id - 1
        self._calls: list[CommandCall] = []
        self._pending: list[_Pending] = []
        self._handler_lock = threading.Lock()
        self._closed = False
        self.engine = BatchEngine(
            slots=slots, kill_grace_seconds=kill_grace_seconds, on_walltime=self._on_walltime, on_exit=self._on_exit
        )
        try:
            self._server = CommandServer(self.root / "server.sock", self._dispatch)
            for command in self.commands:
                stderr, rc = self._unreachable(command)
                shim = self.bin_directory / command
                shim.write_text(
                    _SHIM.format(
                        python=sys.executable,
                        command=command,
                        socket_path=str(self._server.path),
                        unreachable_stderr=stderr,
                        unreachable_rc=rc,
                    )
                )
                shim.chmod(0o755)
        except BaseException:
            self.engine.close()
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # --- public API -----------------------------------------------------------------

    @property
    def slots(self) -> int:
        """At most this many job processes run at once; the rest stay queued."""
        return self.engine.slots

    @slots.setter
    def slots(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"slots must be >= 1, got {value}")
        with self.engine.lock:
            self.engine.slots = value
            self.engine.changed.notify_all()

    @property
    def kill_grace_seconds(self) -> float:
        """Seconds between the polite signal(s) and SIGKILL when a job is deleted."""
        return self.engine.kill_grace_seconds

    @kill_grace_seconds.setter
    def kill_grace_seconds(self, value: float) -> None:
        self.engine.kill_grace_seconds = value

    @property
    def calls(self) -> list[CommandCall]:
        """Every command received so far, oldest first."""
        with self._handler_lock:
            return list(self._calls)

    def jobs(self) -> list[BatchJob]:
        """Every job and array element, oldest first."""
        with self.engine.lock:
            return [self._snapshot(e) for e in self.engine.elements()]

    def job(self, job_id: str) -> BatchJob:
        """One job or array element by the id the scheduler printed.

        Raises:
            KeyError: No such element (an array id names several: use :meth:`jobs`).
        """
        with self.engine.lock:
            for element in self.engine.elements():
                if element.job_id == job_id:
                    return self._snapshot(element)
        raise KeyError(f"no job or array element with id {job_id!r}; known: {[j.job_id for j in self.jobs()]}")

    def wait_for_state(self, job_id: str, *states: str, timeout: float = 15.0) -> BatchJob | list[BatchJob]:
        """Wait until the job, or every element of an array id, is in one of ``states``.

        Args:
            job_id: An element id, or an array id as the submit printed it.
            states: Any of ``"queued"``, ``"running"``, ``"finished"`` (default: finished).
            timeout: Seconds.

        Returns:
            The :class:`BatchJob` (or, for an array id, the list of its elements).

        Raises:
            KeyError: Unknown id.
            TimeoutError: Not reached within ``timeout``.
        """
        wanted = set(states or ("finished",))
        unknown = wanted - {"queued", "running", "finished"}
        if unknown:
            raise ValueError(f"states must be among queued, running, finished; got {sorted(unknown)}")

        def matching() -> list[Element]:
            return [e for e in self.engine.elements() if job_id in (e.job_id, e.array_id)]

        if not self.engine.wait_until(lambda: bool(matching()), 0):
            raise KeyError(f"no job or array with id {job_id!r}")

        def reached() -> bool:
            return all(_neutral(e.state) in wanted for e in matching())

        if not self.engine.wait_until(reached, timeout):
            seen = {j.job_id: j.state for j in self.jobs() if job_id in (j.job_id, j.array_id)}
            raise TimeoutError(f"job {job_id!r} did not reach {sorted(wanted)} within {timeout} s; states: {seen}")
        with self.engine.lock:
            snapshots = [self._snapshot(e) for e in matching()]
        if len(snapshots) == 1 and snapshots[0].job_id == job_id:
            return snapshots[0]
        return snapshots

    def run(
        self,
        command: str,
        *args: str,
        stdin: str | None = None,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the shims as a user would (``subprocess.run``, text mode)."""
        if command not in self.commands:
            raise ValueError(f"command must be one of {', '.join(self.commands)}; got {command!r}")
        return subprocess.run(
            [str(self.bin_directory / command), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=timeout,
            check=False,
        )

    def fail_next(self, command: str, n: int = 1) -> None:
        """The next ``n`` calls of ``command`` fail with the scheduler's transient error, doing nothing."""
        self._add_pending(command, n, "fail")

    def lose_reply_next(
        self, command: str, n: int = 1, mode: Literal["error", "hang"] = "error", hang_seconds: float = 60.0
    ) -> None:
        """The next ``n`` calls are executed, but the caller gets a transient error instead of the reply.

        With ``mode="hang"`` the caller first waits ``hang_seconds`` (or until the
        emulator closes), as when the server dies after doing the work.
        """
        if mode not in ("error", "hang"):
            raise ValueError(f"mode must be 'error' or 'hang', got {mode!r}")
        self._add_pending(command, n, "lost-error" if mode == "error" else "lost-hang", hang_seconds)

    def delay_next(self, command: str, n: int = 1, seconds: float = 1.0) -> None:
        """The next ``n`` calls answer correctly after ``seconds`` (with the scheduler's "busy" lines, if any)."""
        self._add_pending(command, n, "delay", seconds)

    def rewrite_reply_next(self, command: str, n: int = 1, stdout: str = "", returncode: int = 0) -> None:
        """The next ``n`` calls are executed, but the caller gets ``stdout`` (and ``returncode``, no
        stderr) instead of the reply: a site wrapper printing its own text, a listing that lost its jobs."""
        self._add_pending(command, n, "rewrite", stdout=stdout, returncode=returncode)

    def hold_jobs(self) -> None:
        """Keep new and queued jobs queued (no process starts) until :meth:`release_jobs`."""
        with self.engine.lock:
            self.engine.hold = True

    def release_jobs(self) -> None:
        """Let queued jobs start again."""
        with self.engine.lock:
            self.engine.hold = False
            self.engine.changed.notify_all()

    def close(self) -> None:
        """Kill every job (whole process groups), stop the server, remove the temp dir. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.close()
        self.engine.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- for subclasses -------------------------------------------------------------

    def next_seq(self) -> int:
        """Take the next job number."""
        self._next = next(self._seq)
        return self._next

    def peek_seq(self) -> int:
        """The job number the next submit will get."""
        return self._next + 1

    def _handle(self, request: CommandRequest) -> CommandReply:
        raise NotImplementedError

    def _transient(self, command: str, argv: Sequence[str] = ()) -> CommandReply:
        raise NotImplementedError

    def _busy_lines(self, command: str) -> str:
        return ""

    def _unreachable(self, command: str) -> tuple[str, int]:
        reply = self._transient(command)
        return reply.stderr, reply.returncode

    def _native_state(self, element: Element) -> str:
        raise NotImplementedError

    def _exit_status(self, element: Element) -> int | None:
        raise NotImplementedError

    def _on_walltime(self, element: Element) -> None:
        """Hook: an element exceeded its walltime (called under the engine lock)."""

    def _on_exit(self, element: Element) -> None:
        """Hook: an element's process exited (called without the lock, before it is finished)."""

    # --- internals ------------------------------------------------------------------

    def _add_pending(
        self,
        command: str,
        n: int,
        kind: Literal["fail", "lost-error", "lost-hang", "delay", "rewrite"],
        seconds: float = 0.0,
        stdout: str = "",
        returncode: int = 0,
    ) -> None:
        if command not in self.commands:
            raise ValueError(f"command must be one of {', '.join(self.commands)}; got {command!r}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._handler_lock:
            self._pending.append(_Pending(command, n, kind, seconds, stdout, returncode))

    def _take_pending(self, command: str) -> _Pending | None:
        for pending in self._pending:
            if pending.command == command and pending.remaining > 0:
                pending.remaining -= 1
                return pending
        return None

    def _dispatch(self, request: CommandRequest) -> CommandReply:
        with self._handler_lock:
            pending = self._take_pending(request.command)
        kind = pending.kind if pending is not None else None
        if kind == "fail":
            reply = self._transient(request.command, request.argv)
        else:
            if kind == "delay" and pending is not None:
                self._server.closing.wait(pending.seconds)
            with self._handler_lock:
                try:
                    reply = self._handle(request)
                except Exception as exc:
                    _log.exception("emulated %s %s failed", request.command, request.argv)
                    reply = CommandReply(stderr=f"{request.command}: internal emulator error: {exc!r}\n", returncode=1)
            if kind == "delay":
                reply = CommandReply(reply.stdout, self._busy_lines(request.command) + reply.stderr, reply.returncode)
            elif kind == "rewrite" and pending is not None:
                reply = CommandReply(pending.stdout, "", pending.returncode)
            elif kind in ("lost-error", "lost-hang") and pending is not None:
                if kind == "lost-hang":
                    self._server.closing.wait(pending.seconds)
                reply = self._transient(request.command, request.argv)
        with self._handler_lock:
            self._calls.append(
                CommandCall(request.command, request.argv, str(request.cwd), reply.returncode, kind, time.time())
            )
        return reply

    def _snapshot(self, element: Element) -> BatchJob:
        stdout_path = element.stdout_final or element.stdout_path
        stderr_path = stdout_path if element.merge_stderr else (element.stderr_final or element.stderr_path)
        return BatchJob(
            job_id=element.job_id,
            array_id=element.array_id,
            index=element.index,
            name=element.name,
            queue=element.queue,
            state=_neutral(element.state),
            native_state=self._native_state(element),
            exit_status=self._exit_status(element),
            killed=element.killed,
            pid=element.pid,
            environment=dict(element.env),
            cwd=element.cwd,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            submit_argv=element.submit_argv,
            submit_time=element.submit_time,
            start_time=element.start_time,
            end_time=element.end_time,
        )


def _neutral(state: State) -> Literal["queued", "running", "finished"]:
    if state == "queued":
        return "queued"
    if state == "finished":
        return "finished"
    return "running"


def spool_script(spool: Path, name: str, text: str) -> Path:
    """Write a job script into the spool directory and return its path."""
    path = spool / name
    path.write_text(text)
    path.chmod(0o700)
    return path


def iter_directives(script: str, prefix: str) -> Iterator[str]:
    """Directive lines (``#PBS ...``, ``#BSUB ...``) before the first command of a script.

    Blank lines and other comments are skipped; the first line that is neither ends
    the directive block, as both schedulers document.
    """
    for raw in script.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(prefix) and (len(line) == len(prefix) or line[len(prefix)].isspace()):
            yield line[len(prefix) :].strip()
            continue
        if line.startswith("#"):
            continue
        return


def format_ctime(epoch: float) -> str:
    """``Tue Oct 11 08:13:45 2022`` (the C ``ctime`` format PBS prints)."""
    return time.ctime(epoch)

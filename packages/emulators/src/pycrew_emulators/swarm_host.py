"""A swarm host: one process running many real pycrew worker loops, one thread each.

``python -m pycrew_emulators.swarm_host --control PATH`` reads the worker commands of a
whole batch as one JSON document on standard input (secrets travel there, never in argv
or the environment)::

    {"workers": [
        {"args": ["-m", "pycrew.worker", "--url", ...], "token": "...", "ca": null},
        {"args": [<an array's shared command>], "batch_key": "...", "indices": [0, 1, 2], "ca": null}
    ]}

An entry with ``token`` is one worker (its :class:`~pycrew.WorkerCall` arguments); an
entry with ``batch_key`` is an array launch: its shared command
(:meth:`pycrew.WorkerCommand.for_array`) runs once per index, each element resolving its
instance id and deriving its token exactly as ``python -m pycrew.worker`` does in an
array job. Each worker is a real :class:`pycrew.worker.loop.Worker` (connect, challenge,
HELLO, tasks, results, heartbeats, exit rules) created with ``shared_process=True``.

The host listens on the Unix socket ``PATH`` for one-line JSON requests (``{"op":
"list"}``, ``{"op": "terminate", "instances": [...]}``), writes ``pycrew-swarm {json}``
lines on standard output (``ready`` once, then ``ended`` per worker loop that returned),
and exits once every worker loop has ended or been terminated. Terminating a worker cuts
its connection (the controller sees it lost, as if its process had been killed); a task
running in it cannot be stopped and runs on unseen until the host exits. So does the
task of a worker whose controller went away during it (a worker process would exit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from pycrew.wire import protocol as p
from pycrew.wire.transport import Channel
from pycrew.worker.command import WorkerCommand
from pycrew.worker.log_level import worker_log_level
from pycrew.worker.loop import EXIT_CONTROLLER_GONE, EXIT_NO_TOKEN, Worker

log = logging.getLogger("pycrew_emulators.swarm_host")

#: Prefix of the host's event lines on standard output (other lines are log text).
EVENT = "pycrew-swarm "
#: The environment variable an array's shared command reads its index from (inside the host only).
INDEX_ENV = "PYCREW_SWARM_INDEX"
#: A host's workers are started this many at a time, this far apart, so that a large
#: batch does not dial the controller all in one burst (its listen backlog is finite).
START_BURST = 64
SECONDS_START_PAUSE = 0.005
RUNNING, ENDED, TERMINATED = "running", "ended", "terminated"


class SpecError(ValueError):
    """The batch document on standard input is not what the launcher writes."""


@dataclass
class Hosted:
    """One worker loop of this host."""

    worker: Worker
    started: float
    state: str = RUNNING
    exit_code: int | None = None
    cut: bool = False  # its connection was cut after it was terminated
    thread: threading.Thread | None = None


def parse_batch(document: Any) -> list[tuple[WorkerCommand, str, str | None]]:
    """``(command, token, ca)`` of every worker of a batch document.

    Raises:
        SpecError: the document or an entry is malformed, naming the entry and the field.
    """
    if not isinstance(document, dict) or not isinstance(document.get("workers"), list):
        raise SpecError('the batch on standard input must be a JSON object {"workers": [...]}')
    out: list[tuple[WorkerCommand, str, str | None]] = []
    for k, entry in enumerate(document["workers"]):
        if not isinstance(entry, dict):
            raise SpecError(f"workers[{k}] must be an object, got {type(entry).__name__}")
        args = entry.get("args")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise SpecError(f"workers[{k}].args must be the worker's arguments (a list of strings), got {args!r}")
        ca = entry.get("ca")
        if ca is not None and not isinstance(ca, str):
            raise SpecError(f"workers[{k}].ca must be a PEM string or null, got {type(ca).__name__}")
        try:
            command = WorkerCommand.from_args(args)
        except ValueError as exc:
            raise SpecError(f"workers[{k}].args: {exc}") from None
        if "token" in entry:
            token = entry["token"]
            if not isinstance(token, str) or not token or command.array:
                raise SpecError(f"workers[{k}] must carry a non-empty token and one worker's command (not an array's)")
            out.append((command, token, ca))
            continue
        key, indices = entry.get("batch_key"), entry.get("indices")
        if not isinstance(key, str) or not key or not command.array:
            raise SpecError(f"workers[{k}] must carry a token, or a batch_key with an array's shared command")
        if not isinstance(indices, list) or not all(isinstance(i, int) and i >= 0 for i in indices):
            raise SpecError(f"workers[{k}].indices must be a list of array indices (integers >= 0), got {indices!r}")
        assert command.index_env is not None
        for index in indices:
            # What python -m pycrew.worker does in an array element (pycrew.worker.main).
            resolved = command.resolve({command.index_env: str(index)})
            assert resolved.instance is not None
            out.append((resolved, p.derive_token(key, resolved.instance), ca))
    return out


def cut(channel: Channel) -> None:
    """Cut a worker's link from another thread: its reads and writes fail, the controller sees it lost."""
    sock = getattr(channel, "sock", None)
    if isinstance(sock, socket.socket):
        # shutdown(), not close(): the worker's threads may be inside a call on this socket,
        # and the descriptor must not be reused under them. The base class's method, so
        # that a TLS socket's SSL state (used by those threads) is not touched.
        with contextlib.suppress(OSError):  # already closed by the worker itself
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    else:  # the nng channel: closing its socket is thread-safe and wakes a blocked receive
        channel.close()


class Host:
    """The worker loops of this process, its control socket and its event lines."""

    def __init__(self, control: str, events: IO[str]) -> None:
        self.control = control
        self.events = events
        self.events_lock = threading.Lock()
        self.hosted: dict[str, Hosted] = {}
        self.cv = threading.Condition()
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.listener: socket.socket | None = None

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event line for the launcher (never raises: the launcher may be gone)."""
        line = EVENT + json.dumps(event) + "\n"
        with self.events_lock:
            try:
                self.events.write(line)
                self.events.flush()
            except (OSError, ValueError):  # no reader any more (the controller died): nothing to tell
                pass

    # -- workers -------------------------------------------------------------------------

    def add(self, command: WorkerCommand, token: str, ca: str | None) -> None:
        """Create one worker loop (not started)."""
        worker = Worker(command, token, ca, shared_process=True)
        if worker.instance in self.hosted:
            raise SpecError(f"instance {worker.instance!r} appears twice in the batch")
        self.hosted[worker.instance] = Hosted(worker, time.time())

    def start(self) -> None:
        """Start every worker loop on its own thread."""
        for k, hosted in enumerate(list(self.hosted.values())):
            thread = threading.Thread(
                target=self._run, args=(hosted,), name=f"swarm-{hosted.worker.instance}", daemon=True
            )
            hosted.thread = thread
            thread.start()
            if (k + 1) % START_BURST == 0:
                time.sleep(SECONDS_START_PAUSE)

    def _run(self, hosted: Hosted) -> None:
        code = 1
        try:
            code = hosted.worker.run()
        except BaseException:  # a crashing loop ends this worker only; its traceback goes to the log
            log.exception("swarm worker %s failed", hosted.worker.instance)
        with self.cv:
            was = hosted.state
            if was == RUNNING:
                hosted.state, hosted.exit_code = ENDED, code
            self.cv.notify_all()
        if was == RUNNING:
            reason = hosted.worker.stop_reason or f"the worker loop returned {code}"
            self.emit({"ended": hosted.worker.instance, "exit_code": code, "reason": reason})

    def terminate(self, instances: list[str]) -> dict[str, Any]:
        """Terminate worker loops: cut their connections; the host exits once none is left."""
        done, unknown = [], []
        with self.cv:
            for instance in instances:
                hosted = self.hosted.get(instance)
                if hosted is None:
                    unknown.append(instance)
                    continue
                if hosted.state == RUNNING:
                    hosted.state = TERMINATED
                done.append(instance)
            self._cut_terminated()
            exiting = not self._running()
        return {"terminated": done, "unknown": unknown, "exiting": exiting}

    def _cut_terminated(self) -> None:
        """Cut the links of terminated workers that have one (caller holds ``cv``)."""
        for hosted in self.hosted.values():
            if hosted.state == TERMINATED and not hosted.cut and hosted.worker.channel is not None:
                hosted.cut = True
                cut(hosted.worker.channel)

    def _running(self) -> list[Hosted]:
        return [h for h in self.hosted.values() if h.state == RUNNING]

    def listing(self) -> dict[str, Any]:
        """This host's live worker loops (the monitor's view)."""
        with self.cv:
            rows = []
            for hosted in self._running():
                w = hosted.worker
                state = "running" if w.running else "idle" if w.welcomed.is_set() else "connecting"
                c = w.command
                rows.append(
                    {
                        "instance": w.instance,
                        "controller": c.controller,
                        "controller_id": c.controller_id,
                        "launcher": c.launcher,
                        "worker": c.worker,
                        "started": hosted.started,
                        "state": state,
                    }
                )
        return {"pid": self.pid, "host": self.hostname, "workers": rows}

    # -- the control socket ---------------------------------------------------------------

    def listen(self) -> None:
        """Listen on the control socket (mode 0600 within the launcher's private directory)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.control)
        finally:
            os.umask(old)
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._serve_control, name="swarm-control", daemon=True).start()

    def _serve_control(self) -> None:
        listener = self.listener
        assert listener is not None
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at exit
                return
            with conn:
                try:
                    self._answer(conn)
                except (OSError, ValueError) as exc:  # a client that went away or sent garbage: its problem
                    log.debug("swarm control request failed: %s", exc)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        data = b""
        while not data.endswith(b"\n") and len(data) < 1 << 24:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        request = json.loads(data)
        op = request.get("op") if isinstance(request, dict) else None
        if op == "list":
            reply = self.listing()
        elif op == "terminate" and isinstance(request.get("instances"), list):
            reply = self.terminate([str(i) for i in request["instances"]])
        else:
            reply = {"error": f"unknown request {request!r}: expected op 'list' or 'terminate' with instances"}
        conn.sendall(json.dumps(reply).encode() + b"\n")
        with self.cv:
            self.cv.notify_all()

    # -- the host's life -------------------------------------------------------------------

    def wait(self) -> None:
        """Return once every worker loop has ended or been terminated.

        A worker whose controller went away while its task runs has ended too: a worker
        process would exit at once (``os._exit``); this thread cannot be stopped, so its
        task is abandoned and runs on unseen until the host exits.
        """
        while True:
            with self.cv:
                if not self._running():
                    return
                self.cv.wait(0.1)
                self._cut_terminated()  # a terminated worker may have connected since
                abandoned = [h for h in self._running() if h.worker.gone.is_set() and h.worker.running]
                for hosted in abandoned:
                    hosted.state, hosted.exit_code = ENDED, EXIT_CONTROLLER_GONE
            for hosted in abandoned:
                reason = f"{hosted.worker.stop_reason}; its running task was abandoned"
                self.emit({"ended": hosted.worker.instance, "exit_code": EXIT_CONTROLLER_GONE, "reason": reason})

    def close(self) -> None:
        """Stop answering and remove the control socket."""
        if self.listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.control)
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each socket worker holds 5 descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):  # not allowed: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    """Run a swarm host; returns 0 once its workers are gone, 2 for a bad batch."""
    ap = argparse.ArgumentParser(prog="python -m pycrew_emulators.swarm_host", description=__doc__.split("\n")[0])
    ap.add_argument("--control", required=True, help="the Unix socket to listen on for list/terminate requests")
    ap.add_argument("--stack-kib", type=int, default=0, help="thread stack size in KiB (0: the platform's default)")
    args = ap.parse_args(argv)
    level, level_problem = worker_log_level(os.environ)
    if level_problem is not None:
        print(level_problem, file=sys.stderr)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    raise_open_files_limit()
    if args.stack_kib:
        threading.stack_size(args.stack_kib * 1024)
    host = Host(args.control, sys.stdout)
    try:
        for command, token, ca in parse_batch(json.load(sys.stdin)):
            host.add(command, token, ca)
    except (SpecError, ValueError) as exc:  # JSONDecodeError is a ValueError; Worker() raises ValueError
        print(f"pycrew swarm host: {exc}", file=sys.stderr)
        return EXIT_NO_TOKEN
    host.listen()
    try:
        host.emit({"ready": True, "pid": host.pid, "workers": len(host.hosted)})
        host.start()
        host.wait()
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the launcher (reading them) may be gone
            stream.flush()
    os._exit(code)  # worker threads stuck in a terminated task must not hold the process

"""The worker: ``python -m pycrew.worker`` (or ``pycrew worker``).

It dials the controller, proves its instance token (read from the environment variable
``PYCREW_TOKEN``, never from the command line), runs the tasks it is sent, and exits
after ``--seconds-idle`` without work, ``--seconds-wall`` of life or ``--tasks-max``
tasks, and promptly when the controller goes away (connection closed, or no heartbeat
within the timeout the controller announces).

It imports nothing of the controller side: a container with pycrew and the user's code
is enough.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import math
import os
import socket
import sys
import threading
import time

from pycrew import protocol as p
from pycrew import transport
from pycrew.execution import TaskRunner, _dumps
from pycrew.protocol import TLS_CA_ENV, TOKEN_ENV

log = logging.getLogger("pycrew.worker")

EXIT_OK = 0
EXIT_NO_TOKEN = 2
EXIT_NO_CONNECTION = 3
EXIT_CONTROLLER_GONE = 4

#: Bytes a RESULTS frame spends on each record besides its payload (id and length).
RECORD_HEADER = len(p.encode_records(p.RESULTS, [(0, b"")])) - 1
#: Bytes of ``bytes_max`` left to the transport's own headers (NNG's Pair1 adds 4).
FRAME_HEADROOM = 64


def _seconds(text: str) -> float:
    value = float(text)
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'inf', got {text!r}")
    return value


def _count(text: str) -> int | None:
    if text in ("inf", "none", "None", ""):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'inf', got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """The worker's command-line parser."""
    ap = argparse.ArgumentParser(prog="python -m pycrew.worker", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the controller's address, e.g. tcp://10.0.0.5:40123")
    ap.add_argument("--transport", choices=transport.TRANSPORTS, default=transport.DEFAULT_TRANSPORT, help="the controller's transport")
    ap.add_argument("--instance", default=None, help="this worker instance's id")
    ap.add_argument("--instance-prefix", default="", help="array launches: instance id = prefix + index")
    ap.add_argument("--index-env", default=None, help="array launches: environment variable holding the element's index")
    ap.add_argument("--index-base", type=int, default=0, help="array launches: the first element's index (0 or 1)")
    ap.add_argument("--worker", type=int, default=0, help="the worker slot index")
    ap.add_argument("--launcher", default="", help="the launcher's name")
    ap.add_argument("--controller", default="", help="the controller's name")
    ap.add_argument("--controller-id", default="", help="the controller's id")
    ap.add_argument("--seconds-idle", type=_seconds, default=math.inf)
    ap.add_argument("--seconds-wall", type=_seconds, default=math.inf)
    ap.add_argument("--tasks-max", type=_count, default=None)
    ap.add_argument("--seconds-launch", type=_seconds, default=60.0, help="give up if not connected by then")
    ap.add_argument("--no-reset", action="store_true", help="keep changes tasks make to os.environ, sys.path and the cwd")
    ap.add_argument("--garbage-collection", action="store_true", help="run gc.collect() after every task")
    ap.add_argument("--metrics-seconds", type=_seconds, default=None, help="sample CPU and memory this often")
    ap.add_argument("--metrics-dir", default=None, help="write samples to <dir>/<instance>.jsonl (default: the log)")
    return ap


class Worker:
    """One worker process's connection and task loop.

    Results of short tasks travel in batches (one RESULTS frame per ``FLUSH_SECONDS`` or
    ``FLUSH_COUNT`` results). A batch never waits for a longer task: when the task that
    started after it has run ``FLUSH_SECONDS``, the flusher thread sends it. No frame
    exceeds the controller's ``bytes_max``: a batch is split, and a single result that
    cannot fit becomes an error result (see :meth:`TaskRunner.limit_results`).
    """

    FLUSH_COUNT = 256
    FLUSH_SECONDS = 0.002

    def __init__(self, args: argparse.Namespace, token: str, ca: str | None) -> None:
        self.args = args
        self.token = token
        self.started = time.monotonic()
        self.tasks: collections.deque[tuple[int, bytes]] = collections.deque()
        self.cv = threading.Condition()
        self.welcomed = threading.Event()
        self.gone = threading.Event()
        self.stop_reason = ""
        self.frames_received = 0
        self.last_seen = time.monotonic()
        self.seconds_heartbeat = 2.0
        self.seconds_heartbeat_timeout = 20.0
        self.running = False
        self.done = 0
        self.runner = TaskRunner(reset=not args.no_reset, garbage_collection=args.garbage_collection)
        self.ca = ca
        if args.url.startswith("tls+") and not ca:
            raise SystemExit(f"pycrew worker: {args.url} uses TLS but ${TLS_CA_ENV} is not set")
        self.channel: transport.Channel | None = None
        self.direct = False  # the idle main thread reads its own frames (see _comms_reads)
        self.acknowledge = False  # answer every TASKS frame with a BEAT (NNG links)
        self.serving = False
        self.reader = threading.Lock()
        self.main_wants_read = False
        self.comms_reading = False
        self.task_started = 0.0
        self.last_read = time.monotonic()
        # Results not sent yet. ``results_cv`` guards them and is held while a batch is
        # sent, so batches leave in the order they were taken (the main thread's final
        # flush and BYE come after anything the flusher took).
        self.results: list[tuple[int, bytes]] = []
        self.results_since = 0.0  # when the oldest unsent result was added
        self.results_cv = threading.Condition(threading.Lock())
        self.flusher_armed = False  # the flusher watches the running task (see _flusher)
        self.flusher_stop = False
        self.frame_max: int | None = None  # largest frame the dispatcher accepts (from WELCOME)

    def _link_closed(self) -> None:
        self._controller_gone("the controller closed the connection")

    def _controller_gone(self, why: str) -> None:
        if self.gone.is_set():
            return
        self.stop_reason = why
        self.gone.set()
        with self.cv:
            self.cv.notify_all()
        if self.running:  # a task is running: it cannot be interrupted politely, so exit now
            log.info("pycrew worker %s exiting during a task: %s", self.args.instance, why)
            os._exit(EXIT_CONTROLLER_GONE)

    # -- reading frames ----------------------------------------------------------------
    #
    # On an interruptible channel (the socket transport) the main thread reads its own
    # frames while it is idle, so a task goes from the socket to the task runner without
    # a thread hand-off. The comms thread reads only while the worker is not serving yet
    # (the handshake), while a task has run for READ_HANDOVER seconds (to see CANCEL and
    # STOP), and when nobody has read for a heartbeat interval (a long run of short
    # prefetched tasks). Whoever reads holds ``reader``; the idle main thread interrupts
    # the comms thread's read to take the role back. On other channels the comms thread
    # reads everything and hands tasks over through ``cv``.

    READ_HANDOVER = 0.1

    def _read_one(self, timeout: float) -> bool:
        """Read and handle one frame (caller holds ``reader``); False once the link is gone."""
        channel = self.channel
        assert channel is not None
        try:
            frame = channel.recv(max(timeout, 0.001))
        except transport.Closed:
            self._controller_gone("the controller closed the connection")
            return False
        self.last_read = time.monotonic()
        if frame is not None:
            self.last_seen = self.last_read
            self._handle(frame)
        return not self.gone.is_set()

    def _handle(self, frame: bytes) -> None:
        kind = frame[0] if frame else -1
        if kind == p.TASKS:
            records = p.decode_records(frame)
            with self.cv:
                busy = self.running or bool(self.tasks)
                self.frames_received += 1
                self.tasks.extend(records)
                self.cv.notify()
            # A frame that reaches an idle worker is answered by its results soon (and
            # the dispatcher counts a worker with nothing in flight as up to date); one
            # that waits behind other tasks is acknowledged now.
            if self.acknowledge and busy:
                self._send(self._beat())
        elif kind == p.CHALLENGE:
            nonce = p.decode_challenge(frame)
            hello = {
                "v": p.PROTOCOL_VERSION,
                "instance": self.args.instance,
                "mac": p.mac(self.token, nonce, self.args.instance),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "worker": self.args.worker,
                "tasks_max": self.args.tasks_max,
            }
            self._send(p.encode_json(p.HELLO, hello))
        elif kind == p.WELCOME:
            body = p.decode_json(frame)
            self.seconds_heartbeat = float(body.get("seconds_heartbeat", self.seconds_heartbeat))
            self.seconds_heartbeat_timeout = float(body.get("seconds_heartbeat_timeout", self.seconds_heartbeat_timeout))
            self._limit_frames(body.get("bytes_max"))
            self.welcomed.set()
        elif kind == p.CANCEL:
            self._cancel(p.decode_ids(frame))
        elif kind == p.STOP:
            self._controller_gone(f"the controller asked the worker to stop: {p.decode_json(frame).get('reason')}")

    def _limit_frames(self, bytes_max: object) -> None:
        """Fit every RESULTS frame under the dispatcher's ``bytes_max`` (None: an older dispatcher)."""
        if bytes_max is None:
            return
        if not isinstance(bytes_max, int) or isinstance(bytes_max, bool) or bytes_max < 4 * FRAME_HEADROOM:
            log.warning("pycrew worker %s: ignoring bytes_max=%r from the controller (not an integer >= %d)",
                        self.args.instance, bytes_max, 4 * FRAME_HEADROOM)
            return
        self.frame_max = bytes_max - FRAME_HEADROOM
        self.runner.limit_results(bytes_max, self.frame_max - 1 - RECORD_HEADER)

    def _beat(self) -> bytes:
        """A heartbeat; it carries the number of TASKS frames received (the dispatcher checks it)."""
        return bytes((p.BEAT,)) + self.frames_received.to_bytes(8, "little")

    def _comms_reads(self, now: float) -> bool:
        """Whether the comms thread should read now (see above)."""
        if not self.direct or not self.serving:
            return True
        if self.main_wants_read:
            return False
        if self.running and now - self.task_started >= self.READ_HANDOVER:
            return True
        return now - self.last_read >= self.seconds_heartbeat

    def _comms(self) -> None:
        next_beat = time.monotonic()
        while not self.gone.is_set():
            now = time.monotonic()
            if self.welcomed.is_set() and now >= next_beat:
                next_beat = now + self.seconds_heartbeat
                self._send(self._beat())
                if now - self.last_seen > self.seconds_heartbeat_timeout:
                    self._controller_gone(f"no heartbeat from the controller for {now - self.last_seen:.1f} s")
                    return
            deadline = self.runner.deadline
            if deadline is not None and now >= deadline and self.runner.current is not None:
                self.runner.interrupt(self.runner.current, "timeout", "the task ran longer than its seconds_timeout")
                deadline = None
            wait = min(self.seconds_heartbeat, max(0.0, next_beat - now) or self.seconds_heartbeat)
            if deadline is not None:
                wait = min(wait, max(0.001, deadline - now))
            if not self._comms_reads(now):
                # A running task is handed over READ_HANDOVER after it started; otherwise
                # look again soon enough to notice a task start (and its time limit).
                nap = max(0.001, self.task_started + self.READ_HANDOVER - now) if self.running else 0.05
                self.gone.wait(min(wait, nap))
                continue
            if not self.reader.acquire(timeout=wait):
                continue
            try:
                self.comms_reading = True
                if self.main_wants_read:  # the idle main thread asked for the role meanwhile
                    continue
                if not self._read_one(wait):
                    return
            finally:
                self.comms_reading = False
                self.reader.release()

    def _idle_read(self, timeout: float) -> None:
        """The idle main thread reads (interrupting the comms thread's read if needed)."""
        channel = self.channel
        assert channel is not None
        self.main_wants_read = True
        if self.comms_reading:
            channel.interrupt()
        with self.reader:
            self.main_wants_read = False
            if not self.tasks:
                self._read_one(timeout)

    def _sample_metrics(self) -> None:
        """Sample this worker's CPU and memory (children included) every --metrics-seconds."""
        import json

        import psutil

        a = self.args
        me = psutil.Process()
        out = None
        if a.metrics_dir:
            os.makedirs(a.metrics_dir, exist_ok=True)
            out = open(os.path.join(a.metrics_dir, f"{a.instance}.jsonl"), "a", buffering=1)  # noqa: SIM115 - lives as long as the thread
        host = socket.gethostname()
        procs: dict[int, psutil.Process] = {}
        while not self.gone.is_set():
            cpu, rss = 0.0, 0
            current = [me, *(psutil.Process(pid) for pid in _descendants(os.getpid()))]
            for found in current:
                proc = procs.setdefault(found.pid, found)
                try:
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    procs.pop(proc.pid, None)
            row = {
                "time": time.time(),
                "controller": a.controller,
                "instance": a.instance,
                "worker": a.worker,
                "host": host,
                "pid": os.getpid(),
                "task": self.runner.current_name,
                "cpu_percent": cpu,
                "rss_bytes": rss,
            }
            line = json.dumps(row)
            if out is not None:
                out.write(line + "\n")
            else:
                print(f"pycrew-metrics {line}", file=sys.stderr, flush=True)
            self.gone.wait(a.metrics_seconds)

    def _cancel(self, ids: list[int]) -> None:
        """Stop the running task if it is cancelled; drop cancelled tasks not started yet."""
        wanted = set(ids)
        for task_id in ids:
            self.runner.interrupt(task_id, "cancel", "cancelled by the controller")
        with self.cv:
            dropped = [i for i, _ in self.tasks if i in wanted]
            if dropped:
                self.tasks = collections.deque((i, t) for i, t in self.tasks if i not in wanted)
        if dropped:
            now = time.time()
            body = _dumps(("cancel", None, "cancelled before it started", "", "", None, [], None, now))
            with self.results_cv:
                self._send_results([(i, body) for i in dropped])

    def _send(self, frame: bytes) -> None:
        channel = self.channel
        if channel is None:
            return
        try:
            channel.send(frame)
        except (transport.Closed, OSError) as exc:
            log.debug("send failed: %s", exc)

    # -- main thread ---------------------------------------------------------------------

    def run(self) -> int:
        """Connect, serve tasks until an exit rule fires, and return the exit code."""
        a = self.args
        deadline = time.monotonic() + a.seconds_launch
        try:
            self.channel = transport.connect(a.transport, a.url, self.ca, a.seconds_launch, self._link_closed)
        except transport.ConnectFailed as exc:
            log.error("pycrew worker %s %s", a.instance, exc)
            return EXIT_NO_CONNECTION
        self.direct = self.channel.interruptible
        self.acknowledge = self.channel.acknowledges
        self.runner.install()
        threading.Thread(target=self._flusher, name="pycrew-worker-flusher", daemon=True).start()
        if a.metrics_seconds:
            threading.Thread(target=self._sample_metrics, name="pycrew-worker-metrics", daemon=True).start()
        comms = threading.Thread(target=self._comms, name="pycrew-worker-comms", daemon=True)
        comms.start()
        while not self.welcomed.wait(0.05):
            if self.gone.is_set():  # the dispatcher dropped us before WELCOME: refused
                log.error("pycrew worker %s was refused by %s: %s", a.instance, a.url, self.stop_reason)
                self.channel.close()
                return EXIT_NO_CONNECTION
            if time.monotonic() > deadline:
                log.error("pycrew worker %s could not connect to %s within %s s", a.instance, a.url, a.seconds_launch)
                self.channel.close()
                return EXIT_NO_CONNECTION
        self.serving = True
        reason = self._serve()
        with self.results_cv:
            self.flusher_stop = True
            self.results_cv.notify()
        if not self.gone.is_set():
            unstarted = [i for i, _ in self.tasks]
            self._send(p.encode_json(p.BYE, {"reason": reason, "unstarted": unstarted}))
            self.gone.wait(2.0)  # the dispatcher closes the link after reading BYE
        self.channel.close()
        return EXIT_OK

    def _serve(self) -> str:
        a = self.args
        last_work = time.monotonic()
        wall_end = self.started + a.seconds_wall
        while True:
            now = time.monotonic()
            if self.gone.is_set():
                return self.stop_reason
            if a.tasks_max is not None and self.done >= a.tasks_max and not self.tasks:
                self._flush()
                return f"tasks_max={a.tasks_max} reached"
            if now >= wall_end:
                self._flush()
                return f"seconds_wall={a.seconds_wall:g} reached"
            if self.results and not self.tasks:
                self._flush()  # before waiting (and not under ``cv``: a failing send takes it)
            with self.cv:
                task = self.tasks.popleft() if self.tasks else None
                if task is None:
                    deadline = min(last_work + a.seconds_idle, wall_end)
                    if now >= deadline:
                        return f"idle for seconds_idle={a.seconds_idle:g}"
                    if not self.direct:
                        self.cv.wait(min(deadline - now, 1.0))
                        continue
            if task is None:
                self._idle_read(min(deadline - now, 1.0))
                continue
            task_id, payload = task
            started = time.monotonic()
            self.task_started = started
            self.running = True
            if self.results and not self.flusher_armed:
                self._arm_flusher()
            out = self.runner.run(task_id, payload)
            self.running = False
            self.done += 1
            last_work = time.monotonic()
            # Batch results of tiny tasks (one message per ~2 ms); a task that ran longer
            # than that is reported at once, so the dispatcher can refill this worker.
            with self.results_cv:
                if not self.results:
                    self.results_since = last_work
                self.results.append((task_id, out))
                if (
                    not self.tasks
                    or len(self.results) >= self.FLUSH_COUNT
                    or last_work - self.results_since > self.FLUSH_SECONDS
                    or last_work - started > self.FLUSH_SECONDS
                ):
                    self._send_results(self.results)
                    self.results = []

    def _arm_flusher(self) -> None:
        """Have the flusher watch the task starting now: results wait while it runs."""
        with self.results_cv:
            if self.results and not self.flusher_armed:
                self.flusher_armed = True
                self.results_cv.notify()

    def _flusher(self) -> None:
        """Send waiting results once the running task has run ``FLUSH_SECONDS``.

        The main thread cannot know how long the next task runs; rather than holding
        finished results until it ends, this thread sends them if it has not ended soon.
        While results keep coming fast, the main thread sends them first and this thread
        only looks at the clock.
        """
        with self.results_cv:
            while not self.flusher_stop and not self.gone.is_set():
                if not self.results or not self.running:
                    self.flusher_armed = False  # the main thread re-arms when a task starts with results waiting
                    self.results_cv.wait()
                    continue
                due = self.task_started + self.FLUSH_SECONDS
                now = time.monotonic()
                if now < due:
                    self.results_cv.wait(due - now)
                    continue
                self._send_results(self.results)
                self.results = []

    def _flush(self) -> None:
        """Send every waiting result now."""
        with self.results_cv:
            if self.results:
                self._send_results(self.results)
                self.results = []

    def _send_results(self, results: list[tuple[int, bytes]]) -> None:
        """Send ``results`` in RESULTS frames of at most ``frame_max`` bytes (caller holds ``results_cv``).

        Every record fits in one frame by itself (the task runner makes larger results
        error results); records go together while their frame stays under the limit.
        """
        limit = self.frame_max
        if limit is None:
            self._send(p.encode_records(p.RESULTS, results))
            return
        batch: list[tuple[int, bytes]] = []
        size = 1
        for record in results:
            grow = RECORD_HEADER + len(record[1])
            if batch and size + grow > limit:
                self._send(p.encode_records(p.RESULTS, batch))
                batch, size = [], 1
            batch.append(record)
            size += grow
        if batch:
            self._send(p.encode_records(p.RESULTS, batch))


def _descendants(pid: int) -> list[int]:
    """Pids of a process's descendants, read from /proc/PID/task/*/children (Linux).

    Far fewer system calls than scanning every process: each call gives the GIL away, and
    getting it back from a CPU-bound task can take a whole switch interval.
    """
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:  # gone, or not Linux: nothing to add
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):  # thread ended, or a kernel without the file
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pycrew.worker``."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("PYCREW_WORKER_LOG_LEVEL", "WARNING"), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = os.environ.pop(TOKEN_ENV, None)
    if not token:
        print(f"pycrew worker: the environment variable {TOKEN_ENV} is not set; workers are started by a controller's launcher", file=sys.stderr)
        return EXIT_NO_TOKEN
    ca = os.environ.pop(TLS_CA_ENV, None)
    # The worker's own threads (heartbeats, cancel, metrics) must get the GIL back quickly
    # from a CPU-bound task: a shorter switch interval bounds how long they wait.
    sys.setswitchinterval(0.001)
    if args.index_env:
        raw = os.environ.get(args.index_env, "")
        if not raw.strip().isdigit():
            print(f"pycrew worker: --index-env {args.index_env} is not set to an array index (got {raw!r})", file=sys.stderr)
            return EXIT_NO_TOKEN
        args.instance = f"{args.instance_prefix}{int(raw) - args.index_base}"
        token = p.derive_token(token, args.instance)
    elif not args.instance:
        print("pycrew worker: give --instance, or --instance-prefix with --index-env", file=sys.stderr)
        return EXIT_NO_TOKEN
    gc.collect()
    return Worker(args, token, ca).run()


if __name__ == "__main__":
    sys.exit(main())

"""The worker's connection and task loop: :class:`Worker`.

The worker dials the controller, proves its instance token, runs the tasks it is sent,
and exits after ``seconds_idle`` without work, ``seconds_wall`` of life or ``tasks_max``
tasks, and promptly when the controller goes away (connection closed, or no heartbeat
within the timeout the controller announces).
"""

from __future__ import annotations

import base64
import collections
import logging
import threading

from pycrew.wire import clock, transport
from pycrew.wire import protocol as p
from pycrew.wire.protocol import Payload
from pycrew.wire.records import ResultRecord
from pycrew.wire.transport.sockets import check_trust, refusal_hint
from pycrew.worker import exiting
from pycrew.worker.command import WorkerCommand
from pycrew.worker.comms import CommsThread
from pycrew.worker.execution import TaskRunner
from pycrew.worker.handshake import UNPROVEN, Handshake
from pycrew.worker.initializer import run_initializer
from pycrew.worker.leaving import Leaving
from pycrew.worker.pace import Pace
from pycrew.worker.result_pickling import pack_result
from pycrew.worker.results import HAND_OFF_BYTES, ResultBatcher, fit_frames
from pycrew.worker.sampling import sample_metrics
from pycrew.worker.silence import ControllerSilence

log = logging.getLogger("pycrew.worker")

EXIT_OK = 0  # an exit rule or a stop request (128 + a signal: it left on that signal)
EXIT_NO_TOKEN = 2
EXIT_NO_CONNECTION = 3
EXIT_CONTROLLER_GONE = 4
EXIT_INITIALIZER_FAILED = 5  # the controller's initializer raised or ran out of time (see pycrew.worker.initializer)
#: How long a worker that connected waits for the controller's WELCOME at least, even
#: past its ``seconds_launch``.
SECONDS_HANDSHAKE = 10.0
#: Longest single sleep of an idle worker whose comms thread reads its frames (a shared
#: process): tasks and the end of the link wake it; this only bounds the timeout passed down.
IDLE_WAIT_MAX = 3600.0


class Worker(CommsThread):
    """One worker process's connection and task loop.

    Args:
        command: the worker's command, its instance id known (see :meth:`WorkerCommand.resolve`).
        token: the instance's secret token.
        ca: the PEM certificate to trust when the URL uses TLS.
        shared_process: the worker shares its process with other workers (a test harness hosting many worker loops
            per process, e.g. ``pycrew_emulators.swarm``): it may run in any thread, installs no signal handler (so
            a running task cannot be interrupted; the dispatcher replaces the worker once its grace period for a
            cancel or timeout has passed), never ends the process (if the controller goes away during a task, the
            loop ends when the task returns), and lets its comms thread read every frame (reads are not interrupted).
        seconds_into_job: how long ago its batch job started (``seconds_wall`` counts from there).
        server_name: the name the controller's TLS certificate must be valid for (default: the URL's host).

    Raises:
        ValueError: ``command`` has no instance id, or uses TLS and ``ca`` is missing or not PEM certificates.
    """

    def __init__(self, command: WorkerCommand, token: str, ca: str | None, *, shared_process: bool = False,
                 seconds_into_job: float = 0.0, server_name: str | None = None) -> None:
        if command.instance is None:
            raise ValueError("the worker needs its instance id: resolve the array command first (WorkerCommand.resolve)")
        check_trust(command.url, ca)  # a TLS URL needs $PYCREW_TLS_CA, certificates TLS can load (else: exit 2, said)
        self.command = command
        self.shared_process = shared_process
        self.instance: str = command.instance
        self.token = token
        self.started = clock.monotonic() - seconds_into_job
        self.tasks: collections.deque[tuple[int, Payload]] = collections.deque()
        self.cv = threading.Condition()
        self.welcomed = threading.Event()
        self.gone = threading.Event()
        # Set with either of the two above: the main thread sleeps on it until the handshake
        # ends (no polling: a thousand connecting loops in one process cannot afford it).
        self.settled = threading.Event()
        self.stop_reason = ""
        self.handshake = Handshake(token, command.instance)
        self.initializer: bytes | None = None  # the controller's, from the WELCOME (see pycrew.worker.initializer)
        self.frames_received = 0
        self.last_seen = clock.monotonic()
        self.seconds_heartbeat = 2.0
        self.silence = ControllerSilence()  # and the heartbeat timeout, set by the WELCOME
        self.running = False
        self.done = self.dropped = 0  # tasks run; tasks cancelled before they started (both count toward tasks_max)
        self.runner = TaskRunner(reset=command.reset, garbage_collection=command.garbage_collection)
        self.ca, self.server_name = ca, server_name
        self.channel: transport.Channel | None = None
        self.direct = False  # the idle main thread reads its own frames (see _comms_reads)
        self.acknowledge = False  # answer every TASKS frame with a BEAT (NNG links)
        self.serving = False
        self.reader = threading.Lock()
        self.main_wants_read = False
        self.comms_reading = False
        self.comms_read_until = 0.0  # when the comms thread's read gives up (see _deadline_set)
        self.runner.on_deadline = self._deadline_set
        self.task_started = 0.0
        self.pace = Pace()
        self.last_read = clock.monotonic()
        self.batcher = ResultBatcher(self._send, self._running_since, self.gone, self._send)
        self.leaving = Leaving(self._take_unstarted, self._send, self._wake, self.started + command.seconds_wall)

    def _link_closed(self) -> None:
        self._controller_gone(getattr(self.channel, "close_reason", "") or "the controller closed the connection")

    def _controller_gone(self, why: str, asked: bool = False) -> None:
        if self.gone.is_set():
            return
        self.stop_reason = why
        self.gone.set()
        self.settled.set()
        with self.cv:
            self.cv.notify_all()
        if (self.serving or self.running) and not asked:  # not told to stop: the controller died, or the network failed (its log says why)
            log.warning("pycrew worker %s: connection to the controller lost%s: %s", self.instance,
                        " during a task, which is lost" if self.running else "", why)
        if self.running and not self.shared_process:  # a task is running: it cannot be interrupted politely, so exit now
            exiting.exit_during_task(EXIT_CONTROLLER_GONE)

    # -- reading frames (who reads when: see the module doc of pycrew.worker.comms) -------

    def _read_one(self, timeout: float, spin: float = 0.0, nonblocking: bool = False) -> bool:
        """Read and handle one frame (caller holds ``reader``); False once the link is gone."""
        channel = self.channel
        assert channel is not None
        try:
            frame = channel.recv(0.0 if nonblocking else max(timeout, 0.001), spin)
        except transport.Closed as exc:  # or this worker had no memory for a frame: say so
            self._controller_gone(str(exc) if isinstance(exc, transport.Unreceivable) else "the controller closed the connection")
            return False
        self.last_read = clock.monotonic()
        if frame is not None:
            self.last_seen = self.last_read
            self._handle(frame)
        return not self.gone.is_set()

    def _handle(self, frame: p.Frame) -> None:
        kind = frame[0] if frame else -1
        if kind == p.TASKS:
            records = p.decode_records(frame)
            with self.cv:
                busy = self.running or bool(self.tasks)
                self.frames_received += 1
                if not self.leaving.reason:
                    self.tasks.extend(records)
                    self.cv.notify()
            if self.leaving.reason:  # sent before the controller knew: they go back at once
                self._send(p.encode_ids(p.RETURNED, [i for i, _ in records]))
                return
            # A frame that reaches an idle worker is answered by its results soon (the dispatcher counts a
            # worker with nothing in flight as up to date); one that waits behind other tasks is acknowledged now.
            if self.acknowledge and busy:
                self._send(self._beat())
        elif kind == p.CHALLENGE:
            self._send(self.handshake.hello(frame, self.command.worker, self.command.tasks_max))
        elif kind == p.PROOF:
            self.handshake.prove(frame)
        elif kind == p.WELCOME:
            if not self.handshake.proven:
                return self._controller_gone(UNPROVEN)
            body = p.decode_json(frame)
            self.seconds_heartbeat = float(body.get("seconds_heartbeat", self.seconds_heartbeat))
            self.silence.configure(body)
            fit_frames(body.get("bytes_max"), self.batcher, self.runner, self.instance)
            if isinstance(initializer := body.get("initializer"), str):
                self.initializer = base64.b64decode(initializer)
            self.welcomed.set()
            self.settled.set()
        elif kind == p.BEAT and (pace := p.decode_pace(frame)) is not None:  # see pycrew.control.beat_rate
            self.seconds_heartbeat, self.silence.seconds_heartbeat_timeout = pace
        elif kind == p.CANCEL:
            self._cancel(p.decode_ids(frame))
        elif kind == p.RECALL:
            self._give_back(p.decode_ids(frame))
        elif kind == p.STOP:
            self._controller_gone(f"the controller asked the worker to stop: {p.decode_json(frame).get('reason')}", True)

    def _beat(self) -> bytes:
        """A heartbeat; it carries the number of TASKS frames received (the dispatcher checks it)."""
        return bytes((p.BEAT,)) + self.frames_received.to_bytes(8, "little")

    def _read_arrived(self) -> None:
        """Read the frames that have arrived, without waiting (the main thread, between tasks,
        when nobody has read for ``Pace.READ_INTERVAL``; not while the comms thread reads)."""
        if not self.reader.acquire(blocking=False):
            return
        try:
            for _ in range(64):
                seen = self.last_seen  # moves when a frame is read
                if not self._read_one(0.0, nonblocking=True) or self.last_seen == seen:
                    return
        finally:
            self.reader.release()

    def _idle_read(self, timeout: float, spin: float = 0.0) -> None:
        """The idle main thread reads (interrupting the comms thread's read if needed); it
        polls for ``spin`` seconds before sleeping (see ``WorkerCommand.seconds_spin``)."""
        channel = self.channel
        assert channel is not None
        self.main_wants_read = True
        if self.comms_reading:
            channel.interrupt()
        with self.reader:
            self.main_wants_read = False
            if not self.tasks:
                self._read_one(timeout, spin)

    def _cancel(self, ids: list[int]) -> None:
        """Stop the running task if it is cancelled; drop cancelled tasks not started yet."""
        for task_id in ids:
            self.runner.interrupt(task_id, "cancel", "cancelled by the controller")
        dropped = self._take_unstarted(ids)
        if dropped:  # the dispatcher counted them sent: toward tasks_max they count (else it would wait for them)
            self.dropped += len(dropped)
            body = pack_result(ResultRecord("cancel", error="cancelled before it started", finished=clock.wall()))
            with self.batcher.lock:
                self.batcher.send_records([(i, body) for i in dropped])
            self._wake()  # an idle main thread looks at tasks_max

    def _take_unstarted(self, ids: list[int] | None = None) -> list[int]:
        """Remove the tasks among ``ids`` (None: all) that have not started; return their ids."""
        wanted = None if ids is None else set(ids)
        with self.cv:  # the main thread takes its next task under cv: each is started or removed
            taken = [i for i, _ in self.tasks if wanted is None or i in wanted]
            if taken:
                self.tasks = collections.deque((i, t) for i, t in self.tasks if wanted is not None and i not in wanted)
        return taken

    def _wake(self) -> None:
        """Wake the main thread if it waits for tasks (any thread)."""
        with self.cv:
            self.cv.notify_all()
        channel = self.channel
        if self.direct and channel is not None:
            channel.interrupt()

    def _give_back(self, ids: list[int]) -> None:
        """Return the recalled tasks that have not started (the dispatcher gives them to another worker)."""
        self._send(p.encode_ids(p.RETURNED, self._take_unstarted(ids)))

    def _send(self, frame: bytes | list[bytes]) -> None:
        """Send a frame, or the frame made of these parts (see ``Channel.send_parts``)."""
        channel = self.channel
        if channel is None:
            return
        try:
            if isinstance(frame, bytes):
                channel.send(frame)
            else:
                channel.send_parts(frame)
        except (transport.Closed, OSError) as exc:
            log.debug("send failed: %s", exc)

    # -- main thread ---------------------------------------------------------------------

    def run(self) -> int:
        """Connect, serve tasks until an exit rule fires, and return the exit code."""
        a = self.command
        deadline = clock.monotonic() + a.seconds_launch
        log.info("pycrew worker %s (worker %s of %r): connecting to %s", self.instance, a.worker, a.controller, a.url)
        try:
            self.channel = transport.connect(a.transport, a.url, self.ca, a.seconds_launch, self._link_closed, self.server_name)
        except transport.ConnectFailed as exc:
            log.error("pycrew worker %s %s", self.instance, exc)
            return EXIT_NO_CONNECTION
        # A shared process's comms thread reads every frame (the idle main thread's reads poll every 50 ms).
        self.direct = self.channel.interruptible and not self.shared_process
        self.acknowledge = self.channel.acknowledges
        if not self.shared_process:  # signal handlers belong to the process (and its main thread)
            self.runner.install()
            self.leaving.install()
            self.runner.keep_handlers(self.leaving.handlers())  # a task may replace them
        threading.Thread(target=self.batcher.run_flusher, name="pycrew-worker-flusher", daemon=True).start()
        if a.metrics_seconds:
            threading.Thread(
                target=sample_metrics,
                args=(a, self.gone, lambda: self.runner.current_name),
                name="pycrew-worker-metrics",
                daemon=True,
            ).start()
        comms = threading.Thread(target=self._comms, name="pycrew-worker-comms", daemon=True)
        comms.start()
        # seconds_launch bounds reaching the controller; the handshake then gets SECONDS_HANDSHAKE more at
        # least: giving up just as the WELCOME (and tasks) come would lose those tasks, counted as crashes.
        self.settled.wait(clock.capped(max(SECONDS_HANDSHAKE, deadline - clock.monotonic())))
        if not self.welcomed.is_set():
            if self.gone.is_set():  # the dispatcher dropped us before WELCOME: refused
                log.error("pycrew worker %s was refused by %s: %s%s", self.instance, a.url, self.stop_reason,
                          refusal_hint(a.url, self.handshake.challenged))
            else:
                log.error("pycrew worker %s could not connect to %s within %s s", self.instance, a.url, a.seconds_launch)
            self.channel.close()
            return EXIT_NO_CONNECTION
        log.info("pycrew worker %s: connected and admitted", self.instance)
        if self.initializer is not None and not self._initialize():
            self.gone.wait(2.0)  # the dispatcher closes the link after reading the report
            self.channel.close()
            return EXIT_INITIALIZER_FAILED
        self.serving = True
        if self.direct and self.comms_reading:  # a read it began in the handshake must not run into a task
            self.channel.interrupt()
        reason = self._serve()
        log.info("pycrew worker %s: leaving: %s", self.instance, reason)
        self.serving = False  # the main thread reads no more: the comms thread sees the link close
        if not self.shared_process:  # ending now: a SIGTERM must not cut the goodbye short
            exiting.ignore_termination()
        self.batcher.stop()
        if not self.gone.is_set():
            unstarted = [i for i, _ in self.tasks]
            self._send(p.encode_json(p.BYE, {"reason": reason, "unstarted": unstarted}))
            self.gone.wait(2.0)  # the dispatcher closes the link after reading BYE
        self.channel.close()
        return self.leaving.exit_code()

    def _initialize(self) -> bool:
        """Run the controller's initializer and report how it went; whether it succeeded."""
        payload, self.initializer = self.initializer, None
        assert payload is not None
        self.task_started = clock.monotonic()
        self.running = True  # the controller going away meanwhile ends the process, as during a task
        report = run_initializer(self.runner, payload, self.instance)
        self.running = False
        self._send(p.encode_json(p.INITIALIZED, report))
        return bool(report["status"] == "success")

    def _running_since(self) -> float | None:
        """When the running task started, or ``None`` (the result flusher asks)."""
        return self.task_started if self.running else None

    def _serve(self) -> str:
        a = self.command
        batcher = self.batcher
        last_work = clock.monotonic()
        wall_end = self.started + a.seconds_wall
        while True:
            now = clock.monotonic()
            if self.gone.is_set():
                return self.stop_reason
            if self.leaving.reason:  # SIGTERM: see pycrew.worker.leaving
                batcher.flush()
                return self.leaving.reason
            if a.tasks_max is not None and self.done + self.dropped >= a.tasks_max and not self.tasks:
                batcher.flush()
                return f"tasks_max={a.tasks_max} reached"
            if now >= wall_end:
                batcher.flush()
                return f"{p.WALL_REACHED}{a.seconds_wall:g} reached"
            if batcher.results and not self.tasks:
                batcher.flush()  # before waiting (and not under ``cv``: a failing send takes it)
            with self.cv:
                task = self.tasks.popleft() if self.tasks else None
                if task is None and batcher.results:  # given back (RECALL) since the look above: flush first
                    continue
                if task is None:
                    deadline = min(last_work + a.seconds_idle, wall_end)
                    if now >= deadline:
                        return f"idle for seconds_idle={a.seconds_idle:g}"
                    if not self.direct:
                        # Tasks and the end of the link notify ``cv``; the deadline covers the idle and wall-time rules.
                        self.cv.wait(min(deadline - now, IDLE_WAIT_MAX))
                        continue
            if task is None:
                # Right after running out of work, poll for up to seconds_spin: a caller's next task comes within it.
                self._idle_read(min(deadline - now, 1.0), max(0.0, a.seconds_spin - (now - last_work)))
                continue
            task_id, payload = task
            started = clock.monotonic()
            self.task_started = started
            self.running = True
            if batcher.results and not batcher.armed and not batcher.urgent:
                batcher.arm()
            self.pace.task_starts()
            out = self.runner.run(task_id, payload)
            self.running = False
            self.done += 1
            last_work = clock.monotonic()
            if self.direct and last_work - self.last_read >= Pace.READ_INTERVAL:
                self._read_arrived()
            if self.pace.task_ended(last_work - started):  # it waited: see pycrew.worker.pace
                if self.direct and not self.tasks and self.reader.acquire(blocking=False):
                    try:
                        self._read_one(0.0, nonblocking=True)
                    finally:
                        self.reader.release()
                if self.tasks:
                    batcher.hand_off(task_id, out)
                    continue
            elif self.tasks and len(out) >= HAND_OFF_BYTES:  # sending it waits on the socket, not the CPU
                batcher.hand_off(task_id, out)
                continue
            batcher.add(task_id, out, started, last_work, bool(self.tasks))

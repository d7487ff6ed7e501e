"""The workers this process started, until terminated: their exits, reaping, and what they leave.

The process that launched a worker (the controller's) keeps its :class:`subprocess.Popen`
until the worker is terminated: so it knows its exit code, and its monitor reports a
worker that ended (``status`` ``done`` or ``failed``, with the exit code and the last lines
of its output) until core terminates it. A reaper thread looks at the running workers
every :data:`SECONDS_REAP`: when one has ended, what its tasks left running in its process
group and session get SIGTERM at once and SIGKILL after :data:`SECONDS_LEFTOVER_GRACE`, and
the worker is reaped as soon as its session is empty (no zombie, nothing left running; see
:mod:`pycrew_local.groups` for why in that order).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import pycrew
from pycrew_local.groups import CAN_PEEK, CAN_SCAN, Reaped, peek_exit, session_members
from pycrew_local.handle import LocalHandle
from pycrew_local.output import TAIL_LINES, OutputTail, last_lines, read_log_file

log = logging.getLogger(__name__)

#: Ended workers are reported until terminated, but at most this many, and this long.
ENDED_MAX = 256
SECONDS_ENDED_KEEP = 600.0
#: How often the reaper thread looks for workers that ended.
SECONDS_REAP = 0.25
#: How long what a worker's tasks left running in its session has, after the worker ended
#: and SIGTERM was sent to it, before SIGKILL.
SECONDS_LEFTOVER_GRACE = 2.0


@dataclass
class Child:
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
    #: Whether its exit status was collected (until then its pid names its group, safely).
    reaped: bool = False
    #: Held while signalling its group or reaping it, so that no signal follows the reaping.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_exit(self, status: int, now: float) -> None:
        """Keep its exit (Popen's status: minus the signal's number for a signal) as code and signal name."""
        if self.exit_code is not None:
            return
        if status < 0:
            try:
                self.signal_name = signal.Signals(-status).name
            except ValueError:
                self.signal_name = f"signal {-status}"
            status = 128 - status
        self.exit_code, self.ended_at = status, now

    def signal_group(self, signum: int, members: list[int] | None = None) -> None:
        """Signal its process group and every other process of its session (``members``, if
        just scanned), while its unreaped pid still names them (silent for what is gone)."""
        with self.lock:
            if self.reaped:
                return
            try:
                os.killpg(self.handle.pid, signum)
            except OSError:  # no such group, or not ours any more: nothing to signal there
                pass
            if members is None:
                members = session_members({self.handle.pid})[self.handle.pid]
            for pid in members:
                try:
                    os.kill(pid, signum)
                except OSError:  # ended meanwhile
                    continue

    def peek(self) -> int | None:
        """Its exit status if it ended (reaping it only where that cannot be avoided), else ``None``."""
        with self.lock:
            if self.proc.returncode is not None:  # reaped already (by Popen.wait)
                self.reaped = True
                return self.proc.returncode
            if not CAN_PEEK:
                status = self.proc.poll()
                self.reaped = status is not None
                return status
            try:
                return peek_exit(self.handle.pid)
            except Reaped:  # someone else's os.wait took it: its status is lost
                self.reaped = True
                return self.proc.poll()

    def reap(self, timeout: float | None = None) -> bool:
        """Collect its exit status (waiting up to ``timeout``); whether it is reaped now."""
        with self.lock:
            try:
                status = self.proc.wait(timeout=timeout) if timeout else self.proc.poll()
            except subprocess.TimeoutExpired:
                return False
            if status is None:
                return False
            self.reaped = True
        self.record_exit(status, time.time())
        return True

    def tail(self) -> str:
        """The last lines of the worker's output."""
        if self.output is not None:
            text = self.output.text()
        elif self.log_path:
            try:
                text = read_log_file(self.log_path)
            except pycrew.LogsUnavailableError as exc:
                return f"({exc})"
        else:
            text = ""
        return "\n".join(line.rstrip() for line in text.strip().splitlines()[-TAIL_LINES:])

    def output_text(self, lines: int | None = None) -> str:
        """All of the worker's output that is kept (its last ``lines`` lines, if given): its
        log file, else the in-memory tail."""
        if self.log_path:
            return read_log_file(self.log_path, None, lines=lines)
        return last_lines(self.output.text() if self.output is not None else "", lines)

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
CHILDREN: dict[LocalHandle, Child] = {}
CHILDREN_LOCK = threading.Lock()
# One reap() at a time (the reaper thread's and the monitor's).
_REAP_LOCK = threading.Lock()
# The reaper thread, while some worker this process started is not reaped yet.
_REAPER: threading.Thread | None = None
# The output of the last ENDED_MAX terminated workers (their log path, or their in-memory tail), for logs().
FORGOTTEN: OrderedDict[LocalHandle, tuple[str | None, str]] = OrderedDict()


def register(child: Child) -> None:
    """Keep a started worker, and make sure the reaper thread runs."""
    global _REAPER
    with CHILDREN_LOCK:
        CHILDREN[child.handle] = child
        if _REAPER is None:
            _REAPER = threading.Thread(target=_reap_while_needed, name="pycrew-local-reaper", daemon=True)
            _REAPER.start()


def _reap_while_needed() -> None:
    """The reaper thread: :func:`reap` every :data:`SECONDS_REAP` while a started worker is unreaped."""
    global _REAPER
    while True:
        with CHILDREN_LOCK:
            if all(child.reaped for child in CHILDREN.values()):
                _REAPER = None
                return
        try:
            reap()
        except Exception:  # keep reaping: a failed pass is retried on the next
            log.exception("pycrew local launcher: reaping ended workers failed")
        time.sleep(SECONDS_REAP)


def reap() -> None:
    """Find the workers this process started that ended; end what they left running; reap them.

    A worker seen ended gets its exit code recorded and SIGTERM sent to its process group
    and session (what its tasks left running); it is reaped once its session is empty, or
    after :data:`SECONDS_LEFTOVER_GRACE` and a SIGKILL to them. Ended workers are forgotten
    beyond :data:`ENDED_MAX` and :data:`SECONDS_ENDED_KEEP`.
    """
    with _REAP_LOCK:
        now = time.time()
        with CHILDREN_LOCK:
            children = [child for child in CHILDREN.values() if not child.reaped]
        newly_ended = []
        for child in children:
            if child.exit_code is None:
                status = child.peek()
                if status is None:
                    continue
                child.record_exit(status, now)
                newly_ended.append(child)
        fresh = {child.handle for child in newly_ended}
        waiting = [child for child in children if child.exit_code is not None and not child.reaped]
        members = session_members({child.handle.pid for child in waiting}) if waiting else {}  # one scan of /proc
        for child in waiting:
            left = members[child.handle.pid]  # without /proc: unknown, so the whole grace period
            if child.handle in fresh:
                child.signal_group(signal.SIGTERM, left)
            if left or not CAN_SCAN:
                if now - (child.ended_at or now) < SECONDS_LEFTOVER_GRACE:
                    continue
                child.signal_group(signal.SIGKILL, left)
            child.reap(timeout=1.0)
        for child in newly_ended:  # let the output reader take what the worker wrote last
            if child.output is not None:
                child.output.thread.join(timeout=0.5)
        with CHILDREN_LOCK:
            ended = sorted((c for c in CHILDREN.values() if c.reaped and c.ended_at is not None), key=lambda c: c.ended_at or 0.0)
            for k, child in enumerate(ended):
                if len(ended) - k > ENDED_MAX or now - (child.ended_at or now) > SECONDS_ENDED_KEEP:
                    CHILDREN.pop(child.handle, None)


def forget(child: Child, grace: float) -> None:
    """Reap a terminated worker and drop its record (waiting up to ``grace`` for its exit)."""
    if not child.reaped and not child.reap(timeout=grace):
        return  # kept: the reaper collects it later
    if child.output is not None:
        child.output.thread.join(timeout=grace)
    kept = (child.log_path, "" if child.log_path else child.output_text())
    with CHILDREN_LOCK:
        CHILDREN.pop(child.handle, None)
        FORGOTTEN[child.handle] = kept
        while len(FORGOTTEN) > ENDED_MAX:
            FORGOTTEN.popitem(last=False)

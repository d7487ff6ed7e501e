"""Between two tasks a worker does as little as it can: the next task is read during the
running one, and a finished task's result leaves on another thread while the next runs.

Each case runs the real worker loop in its own process (``worker_probe.py``, which notes
which thread read and sent each frame) against a peer speaking the wire by hand on
127.0.0.1, fed the way the dispatcher feeds it: the next task arrives while one runs.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import helpers
from pycrew.wire import protocol as p
from pycrew.wire.transport.sockets import PREAMBLE
from support import proof, read_frame, recv_exactly, send_frame, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the probe reads /proc")

TOKEN = "p" * 64
PROBE = Path(__file__).with_name("worker_probe.py")


def task(fn: Any, *args: Any) -> bytes:
    """A task payload as the controller pickles it: (fn, args, kwargs, seed, name, seconds_timeout)."""
    return pickle.dumps((fn, args, {}, None, fn.__name__, None))


class Probe:
    """A probe worker process and the peer end of its connection."""

    def __init__(self, tmp: Path, seconds_heartbeat: float = 2.0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.out = tmp / "probe.json"
        env = {**os.environ, "PYCREW_PROBE_TOKEN": TOKEN}
        url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.proc = subprocess.Popen([sys.executable, str(PROBE), url, str(self.out)], env=env)
        self.peer, _ = self.listener.accept()
        self.peer.settimeout(30)
        assert recv_exactly(self.peer, len(PREAMBLE)) == PREAMBLE
        send_frame(self.peer, p.encode_challenge(os.urandom(p.NONCE_BYTES)))
        hello = read_frame(self.peer)
        assert hello[0] == p.HELLO
        send_frame(self.peer, proof(hello, TOKEN))
        send_frame(self.peer, p.encode_json(p.WELCOME, {"seconds_heartbeat": seconds_heartbeat, "seconds_heartbeat_timeout": 60.0}))

    def results(self, n: int) -> list[tuple[int, tuple[Any, ...]]]:
        """The next ``n`` results (heartbeats skipped), in the order they came."""
        got: list[tuple[int, tuple[Any, ...]]] = []
        while len(got) < n:
            frame = read_frame(self.peer)
            if frame[0] == p.RESULTS:
                got += [(i, pickle.loads(body)) for i, body in p.decode_records(frame)]
        return got

    def finish(self) -> dict[str, Any]:
        """Close the link; the worker's notes once its loop has ended."""
        self.peer.close()
        self.listener.close()
        assert self.proc.wait(timeout=30) == 0
        notes: dict[str, Any] = json.loads(self.out.read_text())
        return notes

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.peer.close()
        self.listener.close()


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    worker = Probe(tmp_path)
    yield worker
    worker.kill()


def run_chain(probe: Probe, tmp_path: Path, fn: Any, n: int = 8, seconds: float = 0.06, read_meanwhile: bool = False) -> dict[str, Any]:
    """``n`` tasks ``fn(mark, seconds)``, each sent once the one before has started (one task
    ahead, as the dispatcher feeds a worker); every result arrives once, in order. The
    probe's notes on which thread read each TASKS frame and sent each RESULTS frame.
    ``read_meanwhile``: results are read as they come (large ones would fill the socket)."""
    marks = [tmp_path / f"started-{i}" for i in range(n)]
    reader = concurrent.futures.ThreadPoolExecutor(1)
    pending = reader.submit(probe.results, n) if read_meanwhile else None
    send_frame(probe.peer, p.encode_records(p.TASKS, [(0, task(fn, str(marks[0]), seconds))]))
    for i in range(1, n):
        wait_for(marks[i - 1].exists, timeout=30.0, interval=0.001, message=f"task {i - 1} never started")
        send_frame(probe.peer, p.encode_records(p.TASKS, [(i, task(fn, str(marks[i]), seconds))]))
    results = probe.results(n) if pending is None else pending.result(timeout=60)
    reader.shutdown()
    assert [i for i, _ in results] == list(range(n))
    assert all(record[0] == "success" for _, record in results), results
    out = probe.finish()
    notes = out["notes"]
    reads = [note for note in notes if note["event"] == "read" and note["kind"] == p.TASKS]
    assert len(reads) == n
    results = [note for note in notes if note["event"] == "send" and note["kind"] == p.RESULTS]
    sends = [note["thread"] for note in results]
    waits = [note["waits"] for note in results]
    return {"reads": reads, "sends": sends, "waits": waits, "comms_switches": out["comms_switches"]}


def test_around_tasks_that_wait_the_next_task_is_read_during_one_and_results_sent_on_another_thread(
    probe: Probe, tmp_path: Path
) -> None:
    """Tasks that sleep 60 ms (the GIL is free while they run).

    The comms thread reads a frame that arrives once a task has run READ_HANDOVER; before,
    the main thread read it after the task, between the two. A result whose next task is
    waiting goes to the flusher thread, so the next task starts at once; before, the main
    thread sent it between the two tasks. The first task is not timed (the main thread
    does it all); the last result, with nothing waiting, leaves from the main thread.
    """
    n = 8
    seen = run_chain(probe, tmp_path, helpers.write_pid_then_sleep, n)
    during = [note for note in seen["reads"][1:] if note["thread"] == "pycrew-worker-comms" and note["running"]]
    # A busy machine may delay a frame past the end of its task now and then.
    assert len(during) >= (n - 1) // 2, f"only {len(during)} of {n - 1} frames were read during the task before them: {seen}"
    handed = seen["sends"].count("pycrew-worker-flusher")
    assert handed >= (n - 1) // 2, f"only {handed} of {n - 1} results were handed to the flusher: {seen}"
    assert seen["sends"][-1] == "MainThread", "the last result, with nothing after it, is sent at once"


def test_around_cpu_bound_tasks_no_other_thread_takes_the_gil(probe: Probe, tmp_path: Path) -> None:
    """Tasks that spin in Python for 30 ms: a thread that woke to read or send meanwhile
    would force the interpreter to switch to it (taking about 0.7 ms per task from the
    tasks here). The main thread reads and sends between tasks; the comms thread reads
    only once such a task has run READ_HANDOVER_BUSY (100 ms)."""
    # 30 ms: under load a spinning task may take three times as long and still not reach it.
    seen = run_chain(probe, tmp_path, helpers.write_pid_then_spin, seconds=0.03)
    # The comms thread may read between tasks (as it reads during the handshake, or when a
    # frame comes just as the idle main thread takes the reader role back), never during one.
    during = [note for note in seen["reads"] if note["thread"] == "pycrew-worker-comms" and note["running"]]
    assert not during, seen
    assert set(seen["sends"]) == {"MainThread"}, seen
    assert seen["waits"] == [False] * len(seen["sends"]), "a spinning task was taken for one that waits"


def test_a_large_result_of_a_cpu_bound_task_leaves_on_the_flusher_while_the_next_task_runs(probe: Probe, tmp_path: Path) -> None:
    """Sending 2 MB is mostly the kernel's copy and the peer's reading: the main thread would
    wait on the socket (a 20 MB result: ~40 ms between two tasks), so a large result goes to
    the flusher thread whenever a task is waiting, even around CPU-bound tasks."""
    n = 6
    seen = run_chain(probe, tmp_path, helpers.write_pid_then_spin_large, n, seconds=0.03, read_meanwhile=True)
    handed = seen["sends"].count("pycrew-worker-flusher")
    assert handed >= (n - 1) // 2, f"only {handed} of {n - 1} results were handed to the flusher: {seen}"
    assert seen["sends"][-1] == "MainThread", "the last result, with nothing after it, is sent at once"


def test_short_tasks_do_not_wake_the_comms_thread_once_per_task(probe: Probe) -> None:
    """A run of 1 ms tasks, fed as the dispatcher feeds a worker (a few ahead, refilled as
    results come). They wait (sleep), so their results go to the flusher thread, but they
    end before READ_HANDOVER: the main thread reads between them, and the comms thread,
    seeing the last task shorter than that, naps SHORT_TASKS_NAP. A look at each task's
    READ_HANDOVER would wake it about once per task here (670-970 times) for nothing."""
    n, ahead = 1000, 4
    for i in range(ahead):
        send_frame(probe.peer, p.encode_records(p.TASKS, [(i, task(helpers.sleep_then, 0.001, i))]))
    sent, values = ahead, []
    while len(values) < n:
        frame = read_frame(probe.peer)
        if frame[0] != p.RESULTS:
            continue
        for _, body in p.decode_records(frame):
            values.append(pickle.loads(body)[1])
            if sent < n:
                send_frame(probe.peer, p.encode_records(p.TASKS, [(sent, task(helpers.sleep_then, 0.001, sent))]))
                sent += 1
    assert values == list(range(n))
    switches = probe.finish()["comms_switches"]
    assert 0 <= switches < n // 4, f"the comms thread woke {switches} times during {n} tasks of 1 ms"


def test_a_time_limit_is_kept_when_its_task_starts_during_a_read_of_the_comms_thread(tmp_path: Path) -> None:
    """The comms thread enforces time limits, and reads during a task that runs a while
    (to have the next one in hand) with the time to its next heartbeat as its timeout (here
    up to 30 s). The next task, sent with the first, starts while that read goes on: setting
    its deadline cuts the read short. Before, the comms thread saw the deadline only when
    its read ended, and the 3 s task ran to its end: a success, 2.5 s past its limit."""
    probe = Probe(tmp_path, seconds_heartbeat=30.0)
    try:
        timed = pickle.dumps((helpers.sleep_then, (3.0, "late"), {}, None, "timed", 0.5))
        send_frame(probe.peer, p.encode_records(p.TASKS, [(0, task(helpers.sleep_then, 0.5, "first")), (1, timed)]))
        results = dict(probe.results(2))
        assert results[0][:2] == ("success", "first")
        assert results[1][0] == "timeout", results[1]
        probe.finish()
    finally:
        probe.kill()


def test_a_recall_is_answered_during_a_run_of_short_prefetched_tasks(tmp_path: Path) -> None:
    """A worker given many short tasks at once (prefetched by the average of shorter ones)
    reads what arrives between them every Pace.READ_INTERVAL: a RECALL (an idle worker
    wants half of them) is answered while most have not started. Before, nothing was read
    until the run ended (or a heartbeat interval passed, here 30 s): the RECALL came back
    empty, every task having started, and the other worker had waited for nothing."""
    probe = Probe(tmp_path, seconds_heartbeat=30.0)
    try:
        n = 300
        send_frame(probe.peer, p.encode_records(p.TASKS, [(i, task(helpers.sleep_then, 0.001, i)) for i in range(n)]))
        values: dict[int, Any] = {}
        while not values:  # the run has started
            frame = read_frame(probe.peer)
            if frame[0] == p.RESULTS:
                values.update((i, pickle.loads(body)[1]) for i, body in p.decode_records(frame))
        send_frame(probe.peer, p.encode_ids(p.RECALL, list(range(n // 2, n))))
        returned: list[int] | None = None
        while returned is None or len(values) + len(returned) < n:
            frame = read_frame(probe.peer)
            if frame[0] == p.RETURNED:
                returned = p.decode_ids(frame)
            elif frame[0] == p.RESULTS:
                values.update((i, pickle.loads(body)[1]) for i, body in p.decode_records(frame))
        assert len(returned) > n // 4, f"only {len(returned)} of the {n // 2} recalled tasks came back"
        assert sorted([*values, *returned]) == list(range(n)), "a task both ran and came back, or neither"
        assert all(values[i] == i for i in values)
        probe.finish()
    finally:
        probe.kill()

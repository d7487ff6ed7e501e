"""The worker's result batcher: batches, the flusher thread, and results handed to it."""

from __future__ import annotations

import threading
import time

from pycrew.wire import protocol as p
from pycrew.worker.results import ResultBatcher


class Sent:
    """Frames sent, with the thread that sent each."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, list[int]]] = []
        self.cv = threading.Condition()
        self.sending = threading.Event()

    def send(self, frame: bytes) -> None:
        self.sending.set()
        time.sleep(0.05)  # a send that takes a while: a later batch must not overtake it
        with self.cv:
            self.frames.append((threading.current_thread().name, [i for i, _ in p.decode_records(frame)]))
            self.cv.notify_all()

    def wait(self, n: int) -> list[tuple[str, list[int]]]:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.frames) >= n, timeout=10), self.frames
            return list(self.frames)


def start(running_since: float | None) -> tuple[ResultBatcher, Sent, threading.Thread]:
    sent = Sent()
    batcher = ResultBatcher(sent.send, lambda: running_since, threading.Event())
    thread = threading.Thread(target=batcher.run_flusher, name="flusher", daemon=True)
    thread.start()
    return batcher, sent, thread


def test_a_handed_off_result_is_sent_by_the_flusher_at_once_while_the_next_task_runs() -> None:
    """Not FLUSH_SECONDS into the next task (the rule for batched short results): at once."""
    batcher, sent, thread = start(running_since=time.monotonic() + 3600)  # the next task "started" in an hour
    try:
        batcher.hand_off(7, b"seven")
        assert sent.wait(1) == [("flusher", [7])]
        assert batcher.results == [] and not batcher.urgent
    finally:
        batcher.stop()
        thread.join(5)


def test_results_leave_in_order_whoever_sends_them() -> None:
    """The flusher is still sending a handed-off result when the main thread sends the next
    one at once: the main thread's frame waits for it, and no empty frame goes out."""
    batcher, sent, thread = start(running_since=None)
    try:
        batcher.hand_off(1, b"one")
        assert sent.sending.wait(5)
        batcher.add(2, b"two", started=0.0, finished=1.0, more_waiting=False)
        batcher.hand_off(3, b"three")
        batcher.flush()
    finally:
        batcher.stop()
        thread.join(5)
    frames = sent.wait(2)
    assert [i for _, ids in frames for i in ids] == [1, 2, 3]
    assert all(ids for _, ids in frames), f"an empty frame was sent: {frames}"
    assert frames[0] == ("flusher", [1])
    assert frames[1][0] == threading.current_thread().name, "2 was sent at once, by the thread that added it"


def test_only_a_task_the_worker_cannot_import_gets_the_loading_hint() -> None:
    from pycrew.worker.failures import loading_hint

    assert loading_hint(ModuleNotFoundError("No module named 'm'")) is not None
    assert loading_hint(ImportError("cannot import name 'f' from 'm'")) is not None
    # a module of another version on the workers, without the name the task refers to
    assert loading_hint(AttributeError("Can't get attribute 'f' on <module 'm' from '/x/m.py'>")) is not None
    assert loading_hint(AttributeError("'NoneType' object has no attribute 'x'")) is None
    assert loading_hint(ValueError("bad")) is None

"""A real worker loop in its own process, watched: which thread read each frame and sent each one.

Run by tests/test_worker_pipeline.py as ``python worker_probe.py URL OUT.json``, with the
instance token in ``PYCREW_PROBE_TOKEN``. The worker is the real :class:`pycrew.worker.loop.Worker`
in the process's main thread (it owns its process, as a launched worker does, so the
main thread reads its own frames between tasks). Nothing in it is replaced: its frame
handler and its send function are wrapped to note the thread that ran them. When the loop
ends, the notes go to ``OUT.json``, with the comms thread's voluntary context switches
(Linux ``/proc``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from pycrew.worker.command import WorkerCommand
from pycrew.worker.loop import Worker


def switches(native_id: int) -> int:
    """Voluntary context switches of one thread of this process so far."""
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return -1


def main() -> int:
    url, out = sys.argv[1], sys.argv[2]
    command = WorkerCommand(url=url, transport="socket", instance="probe-1", seconds_launch=30.0, seconds_idle=60.0)
    worker = Worker(command, os.environ["PYCREW_PROBE_TOKEN"], None)
    notes: list[dict[str, Any]] = []
    comms: dict[str, int] = {}

    handle, send, run_comms = worker._handle, worker._send, worker._comms

    def watched_handle(frame: bytes) -> None:
        notes.append({"event": "read", "kind": frame[0], "thread": threading.current_thread().name, "running": worker.running})
        handle(frame)

    def watched_send(frame: bytes | list[bytes]) -> None:  # a frame, or its parts (large results)
        pace = getattr(worker, "pace", None)
        notes.append({"event": "send", "kind": frame[0] if isinstance(frame, bytes) else frame[0][0],
                      "thread": threading.current_thread().name, "waits": None if pace is None else pace.waits})
        send(frame)

    def watched_comms() -> None:
        me = threading.get_native_id()
        try:
            run_comms()
        finally:
            comms["switches"] = switches(me)

    worker._handle = watched_handle  # type: ignore[method-assign]
    worker._send = watched_send  # type: ignore[method-assign]
    worker.batcher._send = worker.batcher._send_parts = watched_send
    worker._comms = watched_comms  # type: ignore[method-assign]
    code = worker.run()
    for t in threading.enumerate():  # the comms thread ends once the link is gone
        if t.name == "pycrew-worker-comms":
            t.join(5.0)
    with open(out, "w") as f:
        json.dump({"code": code, "notes": notes, "comms_switches": comms.get("switches", -1)}, f)
    return code


if __name__ == "__main__":
    sys.exit(main())

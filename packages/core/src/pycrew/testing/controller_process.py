"""A controller in a process of its own, for the client-death test: ``python -m pycrew.testing.controller_process``.

It reads a pickled dict from stdin (``name``, ``workers``, ``options``, ``setup``,
``timeout``), runs ``setup`` (e.g. to register a plugin defined in code), starts a
controller, and keeps every worker online: one runs an endless task, the others are
idle. It reports on stdout, one JSON object per line: first ``{"controller_id": ...}``,
then ``{"ready": true}`` once every worker is online. Then it waits to be killed. Those
lines are all it writes on stdout: whatever else is printed (by ``setup``, a plugin, the
controller) goes to stderr, so that a plugin module that prints cannot garble them.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time

import pycrew
from pycrew.testing import tasks

_channel = sys.stdout  # the reports' stream (see main)


def _say(**message: object) -> None:
    _channel.write(json.dumps(message) + "\n")
    _channel.flush()


def main() -> int:
    """Run the controller until killed; returns 1 if the workers never came online."""
    global _channel
    sys.stdout.flush()
    _channel = os.fdopen(os.dup(1), "w")  # the reports keep stdout; everything else writes to stderr
    os.dup2(2, 1)
    spec = pickle.load(sys.stdin.buffer)
    if spec.get("setup"):
        exec(compile(spec["setup"], "<LauncherConfig.subprocess_setup>", "exec"), {"__name__": "__pycrew_setup__"})
    workers = int(spec["workers"])
    c = pycrew.controller(spec["name"], workers=workers, **spec["options"])
    c.start()
    _say(controller_id=c.id, pid=os.getpid())
    c.push(tasks.sleep_then_report, (3600.0,), name="endless")
    for i in range(workers - 1):
        c.push(tasks.return_value, (i,), name=f"quick_{i}")
    deadline = time.monotonic() + float(spec["timeout"])
    while time.monotonic() < deadline:
        s = c.summary().controller
        if s.workers_online == workers and s.resolved == workers - 1 and s.running == 1:
            _say(ready=True)
            break
        time.sleep(0.05)
    else:
        _say(ready=False, summary=str(c.summary()), launcher=str(c.summary().launcher))
        c.terminate()
        return 1
    time.sleep(float(spec["timeout"]) * 10)  # the test kills this process long before
    c.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())

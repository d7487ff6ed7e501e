"""The conformance suite's child controller (test_10) keeps stdout for its reports.

From a probe following the plugin guide literally (session 36): a plugin module that
printed at import (the guide's example ends with a print) garbled the child's JSON reports,
and test_10 failed with "JSONDecodeError: Expecting value".
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys


def test_what_setup_prints_goes_to_stderr_and_the_reports_stay_readable() -> None:
    payload = {"name": "local", "workers": 1, "options": {"seconds_idle": 5.0},
               "setup": "print(['local', 'script'])", "timeout": 60}
    proc = subprocess.Popen([sys.executable, "-m", "pycrew.testing.controller_process"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pickle.dumps(payload))
        proc.stdin.close()
        first = json.loads(proc.stdout.readline())
        assert isinstance(first["controller_id"], str)
        assert json.loads(proc.stdout.readline()) == {"ready": True}
    finally:
        proc.terminate()  # SIGTERM: the controller ends its workers on the way out
        proc.wait(timeout=60)
        stderr = proc.stderr.read() if proc.stderr is not None else b""
    assert b"['local', 'script']" in stderr

"""A child forked from a process whose controller used NNG gets a clear error for wire="nng"
(NNG aborts such a child as soon as it opens a socket), and the socket wire still works there.

The forking runs in a program of its own (this test's process is not forked).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pynng")

PROGRAM = textwrap.dedent(
    """
    import os, sys
    import pycrew

    parent = pycrew.controller("local", workers=1, wire="nng")
    try:
        print("parent:", parent.submit(abs, -1).result(timeout=60), flush=True)
        pid = os.fork()
        if pid == 0:
            try:
                try:
                    with pycrew.controller("local", workers=1, wire="nng") as c:
                        print("child nng:", c.submit(abs, -5).result(timeout=60), flush=True)
                except pycrew.errors.OptionsError as exc:
                    print("child nng refused:", exc, flush=True)
                with pycrew.controller("local", workers=1, wire="socket") as c:
                    print("child socket:", c.submit(abs, -7).result(timeout=60), flush=True)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit:", os.waitstatus_to_exitcode(status), flush=True)
        print("parent again:", parent.submit(abs, -2).result(timeout=60), flush=True)
    finally:
        parent.terminate()
    """
)


def test_a_child_forked_after_nng_is_refused_nng_with_a_clear_error_and_keeps_the_socket_wire(tmp_path) -> None:
    """On 4c9fdb7 the child died of SIGABRT ("panic: nng is not fork-reentrant safe") when its
    controller started listening: exit -6 and no word from it."""
    script = tmp_path / "fork_after_nng.py"
    script.write_text(PROGRAM)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    lines = out.stdout.splitlines()
    assert "parent: 1" in lines, out
    refused = [line for line in lines if line.startswith("child nng refused:")]
    assert refused, f"the child had no clear error for wire='nng':\n{out.stdout}\n{out.stderr[-2000:]}"
    assert "forked from process" in refused[0] and "wire='socket'" in refused[0]
    assert "child socket: 7" in lines and "child exit: 0" in lines and "parent again: 2" in lines, out
    assert out.returncode == 0, out

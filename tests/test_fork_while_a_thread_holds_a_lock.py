"""A child forked while another thread of the parent held one of pycrew's module locks
inherits it held by a thread that does not exist there; before pycrew.fork_safety, the
child's first controller waited for it for good (probe M, session 33, suspected: 0 of 200
forks hit it by chance; held on purpose here, every fork does)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import os, sys, threading, time
    import pycrew
    from pycrew import plugins
    from pycrew.control import by_value, futures, pickling, release

    locks = [futures._LazyCondition.lock, pickling._kept_lock, by_value._lock, release._thread_lock,
             plugins._registry_lock]
    held, done = threading.Event(), threading.Event()

    def hold():
        for lock in locks:
            lock.acquire()
        held.set()
        done.wait()
        for lock in locks:
            lock.release()

    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        def local_square(x):  # travels by value: through pickling's and by_value's locks
            return x * x
        with pycrew.controller("local", workers=1) as c:
            ok = c.submit(local_square, 7).result(timeout=60) == 49
        os._exit(0 if ok else 1)
    done.set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            print("child exit", os.waitstatus_to_exitcode(status), flush=True)
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("child hung", flush=True)
''')


def test_a_child_forked_while_a_thread_held_pycrews_locks_runs_its_own_controller(tmp_path):
    script = tmp_path / "fork_holding.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", str(script)],
                          capture_output=True, text=True, timeout=180)
    assert "child exit 0" in proc.stdout, proc.stdout + proc.stderr[-3000:]

"""A controller terminated while its launch hook watches pending pods ends at once, and leaves nothing.

From a probe of the cloud launchers (session 36): with pods held Pending, SIGTERM took 12 s
to end the controller (the launch check's 15 s window ran out first), and with
``seconds_launch_check=60`` the termination gave up waiting after 25 s and left the Jobs,
their pods and Secrets on the cluster. The controller now tells the launcher
(``pycrew_cancel_launches``): the check stops watching, the hook returns its Jobs, and
core deletes them with the others.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_e2e import wait_for

import pycrew
from pycrew_emulators.k8s import K8sEmulator


@pytest.fixture(autouse=True)
def _state_dir(pycrew_tmp_state_dir: Any) -> None:
    """Controller records in a private directory."""


def test_terminate_cuts_the_launch_check_short_and_deletes_the_jobs(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.stuck = True  # pods stay in ContainerCreating: the launch check waits its whole window
    c = pycrew.controller("k8s", workers=2, host="127.0.0.1", seconds_launch=120, seconds_terminate=60,
                          **{**k8s_options, "seconds_launch_check": 90})
    try:
        c.submit(abs, -1)
        c.submit(abs, -2)
        wait_for(lambda: len(emulator._store["jobs"]) == 2 and len(emulator._store["secrets"]) == 2,
                 what="the batch's two Jobs and Secrets to be created")
        time.sleep(1.0)  # the hook is in its launch check now
        started = time.monotonic()
        c.terminate()
        took = time.monotonic() - started
    finally:
        c.terminate()
        emulator.stuck = False
    assert took < 20, f"terminate() took {took:.1f} s: it waited for the launch check (90 s) instead of cutting it short"
    wait_for(lambda: not emulator._store["jobs"] and not emulator._store["pods"] and not emulator._store["secrets"],
             what="every Job, pod and Secret to go")

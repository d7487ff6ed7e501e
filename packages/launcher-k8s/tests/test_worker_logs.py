"""The k8s launcher's pycrew_worker_logs hook: a pod's log through the API emulator, via pycrew.Monitor."""

from __future__ import annotations

import time
from typing import Any

import pytest

import pycrew
from pycrew_emulators.k8s import K8sEmulator
from pycrew_k8s import K8sOptions
from pycrew_k8s.launcher import K8sLauncher


def never_connecting_call(instance: str) -> pycrew.WorkerCall:
    """A worker that finds no controller: it waits 2 s, logs why, and exits."""
    command = pycrew.WorkerCommand(url="tcp://127.0.0.1:9", instance=instance, worker=1, launcher="k8s", controller="tests",
                                   controller_id="c0ffee0000000009", seconds_launch=2.0)
    return pycrew.WorkerCall.from_command(command, python="python", env={}, token="token-secret", name="wlogs")


def test_monitor_logs_returns_the_pod_log_tail(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = K8sLauncher("k8s", K8sOptions.from_mapping(k8s_options))
    [handle] = k8s.launch([never_connecting_call("abcdef01logs")])
    try:
        monitor = pycrew.Monitor("k8s", **k8s_options)
        [info] = [w for w in monitor.list("c0ffee0000000009") if w.handle == handle] or [None]
        assert info is not None, f"the launched Job {handle} is not listed"
        deadline = time.monotonic() + 30
        text = ""
        while "could not connect" not in text and time.monotonic() < deadline:
            text = monitor.logs(info, lines=None)
            time.sleep(0.1)
        assert "pycrew worker abcdef01logs could not connect to tcp://127.0.0.1:9" in text, text
        last = monitor.logs(info, lines=1)
        assert last.strip() and last.count("\n") <= 1 and last.strip() in text, last
    finally:
        k8s.terminate([handle])


def test_logs_of_a_job_without_pod_is_logs_unavailable(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    monitor = pycrew.Monitor("k8s", **k8s_options)
    info = pycrew.WorkerInfo(id="default/pycrew-never-was", handle="default/pycrew-never-was", launcher="k8s")
    with pytest.raises(pycrew.LogsUnavailableError, match=r"launcher 'k8s'.*has no pod"):
        monitor.logs(info)

"""Starting, finding and stopping ``template`` workers.

A worker is started as ``sh -c SCRIPT pycrew-template python -m pycrew.worker ...``: the
shell runs the worker in the background, writes its pid to ``<instance>.pid`` and exits
at once. The worker's token is in the environment only; the shell's command line holds
the script and the worker's (non-secret) arguments. Next to the pid file, a JSON record
tags the worker with its controller, so the monitor can list workers by controller and
find orphans without parsing command lines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

import pycrew
from pycrew_template.options import TemplateOptions

SCRIPT = '"$@" </dev/null >>"$PYCREW_TEMPLATE_LOG" 2>&1 &\necho $! >"$PYCREW_TEMPLATE_PIDFILE"\n'


@dataclass(frozen=True)
class TemplateHandle:
    """A worker: its pid, and its instance id (checked on the command line against pid reuse)."""

    pid: int
    instance: str


def start_worker(call: pycrew.WorkerCall, options: TemplateOptions) -> TemplateHandle:
    """Start one worker through the shell and record it; returns its handle.

    Raises:
        RuntimeError: the shell failed or wrote no pid.
    """
    run = options.run_path()
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    pidfile, log = run / f"{call.instance}.pid", run / f"{call.instance}.log"
    env = {
        **os.environ,
        **options.env,
        **call.environment(),
        "PYCREW_TEMPLATE_PIDFILE": str(pidfile),
        "PYCREW_TEMPLATE_LOG": str(log),
    }
    done = subprocess.run(
        [options.shell, "-c", SCRIPT, "pycrew-template", options.python, *call.args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,  # the worker gets no terminal and no signals meant for the controller
        timeout=30,
        check=False,
    )
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"{options.shell} did not start worker {call.name} (exit {done.returncode}): {done.stderr.strip()!r}"
        ) from exc
    record = {
        "pid": pid,
        "instance": call.instance,
        "launcher": call.launcher,
        "controller": call.controller,
        "controller_id": call.controller_id,
        "worker": call.worker,
        "started": time.time(),
        "log": str(log),
    }
    (run / f"{call.instance}.json").write_text(json.dumps(record))
    return TemplateHandle(pid=pid, instance=call.instance)


def _process(pid: int, instance: str) -> psutil.Process | None:
    """The worker's process if it still runs (not a zombie, and really that instance)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or instance not in proc.cmdline():
            return None
        return proc
    except psutil.Error:
        return None


def _forget(run: Path, instance: str) -> None:
    for suffix in (".json", ".pid"):
        (run / f"{instance}{suffix}").unlink(missing_ok=True)


def _wait_gone(handles: list[TemplateHandle], timeout: float) -> list[TemplateHandle]:
    """Wait until the workers are gone (a zombie counts as gone); return those still running."""
    deadline = time.monotonic() + timeout
    pending = [h for h in handles if _process(h.pid, h.instance) is not None]
    while pending and time.monotonic() < deadline:
        time.sleep(0.02)
        pending = [h for h in pending if _process(h.pid, h.instance) is not None]
    return pending


def _signal(handle: TemplateHandle, kill: bool) -> None:
    proc = _process(handle.pid, handle.instance)
    if proc is None:
        return
    try:
        proc.kill() if kill else proc.terminate()
    except psutil.Error:
        pass  # it exited meanwhile: that is the goal


def stop_workers(handles: list[TemplateHandle], options: TemplateOptions, grace: float = 2.0) -> None:
    """SIGTERM each worker still running, SIGKILL what outlives ``grace``; silent for gone ones."""
    for h in handles:
        _signal(h, kill=False)
    for h in _wait_gone(handles, grace):
        _signal(h, kill=True)
    _wait_gone(handles, grace)
    for h in handles:
        _forget(options.run_path(), h.instance)


def list_workers(options: TemplateOptions, controller_id: str | None) -> list[pycrew.WorkerInfo]:
    """Workers recorded in the run directory that still run; records of gone ones are removed."""
    run = options.run_path()
    out: list[pycrew.WorkerInfo] = []
    for path in sorted(run.glob("*.json")) if run.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written or removed right now: the next listing sees it
        proc = _process(int(record["pid"]), record["instance"])
        if proc is None:
            _forget(run, record["instance"])
            continue
        if controller_id is not None and record.get("controller_id") != controller_id:
            continue
        try:
            state = proc.status()
        except psutil.Error:
            continue  # exited just now
        out.append(
            pycrew.WorkerInfo(
                id=str(record["pid"]),
                handle=TemplateHandle(pid=int(record["pid"]), instance=record["instance"]),
                launcher=record.get("launcher", "template"),
                controller=record.get("controller") or None,
                controller_id=record.get("controller_id") or None,
                instance=record["instance"],
                worker=record.get("worker"),
                state=state,
                host=socket.gethostname(),
                pid=int(record["pid"]),
                started=record.get("started"),
                log=record.get("log"),
            )
        )
    return out

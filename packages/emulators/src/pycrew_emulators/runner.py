"""A local "container" runner: runs a container spec as a local process group.

The platform emulators (AWS Batch, Kubernetes, Cloud Run) hand the containers they would
start to a :class:`JobRunner`, which runs them as real local processes so that real
pycrew workers connect back to the test's controller.

What is emulated, and how faithfully:

* Images are not pulled or run. An image name is accepted as is, and the command runs
  in the local Python environment: if ``argv[0]`` (of ``command + args``) is
  ``python``, ``python3`` or ``python3.11`` it is replaced by the runner's ``python``
  (default: ``sys.executable``), so ``python -m pycrew.worker ...`` runs in the venv.
  Images listed in :attr:`JobRunner.missing_images` "fail to pull": the run is recorded
  as ``failed_to_start`` with an ``ImagePullBackOff`` reason.
* Like a container, the process does not inherit the host environment: it gets a
  minimal base (``PATH`` with the interpreter's ``bin`` first, ``HOME``, ``LANG``,
  ``TMPDIR``, ``PYTHONUNBUFFERED``) plus ``spec.env``. ``HOME`` and ``TMPDIR`` are
  fresh per-run directories. ``PYTHONUNBUFFERED=1`` is a deliberate deviation so that
  logs of running workers can be read while they run.
* Each run gets its own session / process group (``start_new_session=True``);
  :meth:`JobRunner.kill` signals the whole group. When the main process exits, the rest
  of its group is SIGKILLed, as a container runtime does when PID 1 of a container
  exits.
* Exit codes follow the container convention: a process ended by signal N reports
  ``128 + N`` (137 for SIGKILL), with reason ``"Error"``; exit 0 has reason
  ``"Completed"``; any other exit has reason ``"Error"``. ``"OOMKilled"`` is never
  produced (no memory limits are enforced).
* A missing executable or unusable working directory is recorded as
  ``failed_to_start`` with a ``ContainerCannotRun`` reason; :meth:`JobRunner.start`
  never raises for a bad spec.
"""

from __future__ import annotations

import builtins
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Self

__all__ = ["PYTHON_NAMES", "ContainerSpec", "JobRunner", "RunState"]

_log = logging.getLogger(__name__)

#: ``argv[0]`` values that are mapped to the runner's Python interpreter.
PYTHON_NAMES = frozenset({"python", "python3", "python3.11"})

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ContainerSpec:
    """What a platform would run in a container.

    Attributes:
        image: Image name; only checked against ``JobRunner.missing_images``.
        command: Entrypoint; may be empty, then ``args`` are used alone.
        args: Arguments appended to ``command``.
        env: Environment variables, added to the runner's minimal base environment.
        working_dir: Working directory (created if missing); default: a fresh temp dir.
        name: Informational (pod name, job name); shown in :meth:`JobRunner.describe`.
    """

    image: str
    command: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    name: str = ""


@dataclass(frozen=True)
class RunState:
    """State of one run.

    ``status`` is ``"running"`` from a successful :meth:`JobRunner.start` until the
    main process exits (then ``"exited"``), or ``"failed_to_start"`` at once if the run
    could not start. ``"pending"`` is part of the type for emulators that want to
    report runs not yet started; the runner itself never reports it.
    """

    status: Literal["pending", "running", "exited", "failed_to_start"]
    exit_code: int | None
    pid: int | None
    started_at: float | None
    finished_at: float | None
    reason: str = ""

    @property
    def done(self) -> bool:
        """True once the run has ended (exited or failed to start)."""
        return self.status in ("exited", "failed_to_start")


@dataclass
class _Run:
    run_id: str
    spec: ContainerSpec
    log_path: Path
    run_dir: Path
    state: RunState
    proc: subprocess.Popen[bytes] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    watcher: threading.Thread | None = None


class JobRunner:
    """Runs :class:`ContainerSpec` s as local process groups. Thread-safe.

    Args:
        log_dir: Directory for per-run logs and scratch directories. Default: a
            temporary directory owned by the runner and removed by :meth:`close`.
        python: Interpreter that ``python``/``python3``/``python3.11`` map to.
    """

    def __init__(self, log_dir: str | Path | None = None, python: str = sys.executable) -> None:
        self._own_dir = log_dir is None
        self.log_dir = Path(tempfile.mkdtemp(prefix="pycrew-runner-")) if log_dir is None else Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.python = python
        #: Images that "fail to pull": starting them records ``failed_to_start``.
        self.missing_images: set[str] = set()
        self._lock = threading.RLock()
        self._runs: dict[str, _Run] = {}
        self._callbacks: list[Callable[[str, RunState], None]] = []
        self._counter = itertools.count(1)
        self._closed = False

    # ------------------------------------------------------------------ public API

    def start(self, spec: ContainerSpec, run_id: str | None = None) -> str:
        """Start ``spec``; return its run id.

        Never raises for a bad image or command: the run is then recorded with status
        ``failed_to_start`` and a reason. Raises ``ValueError`` for a duplicate
        ``run_id`` and ``RuntimeError`` after :meth:`close`.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("JobRunner is closed")
            if run_id is None:
                run_id = f"run-{next(self._counter)}-{uuid.uuid4().hex[:8]}"
            if run_id in self._runs:
                raise ValueError(f"duplicate run id {run_id!r}")
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
            run_dir = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self.log_dir))
            run = _Run(
                run_id=run_id,
                spec=spec,
                log_path=run_dir / "output.log",
                run_dir=run_dir,
                state=RunState("pending", None, None, None, None),
            )
            run.log_path.touch()
            self._runs[run_id] = run

            failure = self._check(spec)
            if failure is None:
                failure = self._spawn(run)
            if failure is not None:
                now = time.time()
                run.state = RunState("failed_to_start", None, None, None, now, failure)
                run.done.set()
                # Callbacks always run outside the caller's thread (and locks).
                threading.Thread(
                    target=self._fire,
                    args=(run_id, run.state),
                    name=f"runner-fail-{run_id}",
                    daemon=True,
                ).start()
            return run_id

    def state(self, run_id: str) -> RunState:
        """Current state of a run. Raises ``KeyError`` for an unknown id."""
        with self._lock:
            return self._runs[run_id].state

    def spec(self, run_id: str) -> ContainerSpec:
        """The spec a run was started with."""
        with self._lock:
            return self._runs[run_id].spec

    def logs(self, run_id: str) -> str:
        """Everything the run wrote so far, stdout and stderr interleaved."""
        with self._lock:
            path = self._runs[run_id].log_path
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:  # removed by close()
            return ""

    def kill(self, run_id: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the run's whole process group. Silent if already gone."""
        with self._lock:
            run = self._runs.get(run_id)
            # The watcher reaps under this lock, so while status is "running" the
            # group leader is at worst an unreaped zombie: its pgid cannot be reused.
            if run is None or run.proc is None or run.state.status != "running":
                return
            try:
                os.killpg(run.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, run_id: str, timeout: float | None = None) -> int | None:
        """Wait until the run ends; return its exit code.

        Returns ``None`` on timeout, and also for a run that failed to start (it has
        no exit code: check :meth:`state`).
        """
        with self._lock:
            run = self._runs[run_id]
        if not run.done.wait(timeout):
            return None
        return run.state.exit_code

    def on_exit(self, callback: Callable[[str, RunState], None]) -> None:
        """Register ``callback(run_id, final_state)``, called when any later run ends.

        Called from a watcher thread, never while the runner's lock is held; also
        called for runs that fail to start. Exceptions are logged and ignored.
        """
        with self._lock:
            self._callbacks.append(callback)

    def list(self) -> list[str]:
        """All run ids, in start order."""
        with self._lock:
            return list(self._runs)

    def alive(self) -> builtins.list[str]:
        """Ids of runs whose main process has not exited yet."""
        with self._lock:
            return [r.run_id for r in self._runs.values() if r.state.status == "running"]

    def close(self) -> None:
        """Kill every run still alive and wait for them. Idempotent.

        Afterwards no process started by this runner remains (group members are
        SIGKILLed too). Removes the log directory if the runner created it.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            self.kill(run.run_id, signal.SIGKILL)
        for run in runs:
            if run.watcher is not None and run.watcher is not threading.current_thread():
                run.watcher.join(timeout=30)
                if run.watcher.is_alive():  # pragma: no cover - should not happen
                    _log.error("runner: run %s did not end after SIGKILL", run.run_id)
        if first and self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def argv(self, spec: ContainerSpec) -> builtins.list[str]:
        """The argv a spec runs with (``command + args``, python mapped)."""
        argv = [*spec.command, *spec.args]
        if argv and argv[0] in PYTHON_NAMES:
            argv[0] = self.python
        return argv

    def base_env(self, run_dir: Path) -> dict[str, str]:
        """The minimal environment every run starts from (before ``spec.env``)."""
        bindir = str(Path(self.python).parent)
        return {
            "PATH": f"{bindir}:{_SYSTEM_PATH}",
            "HOME": str(run_dir / "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(run_dir / "tmp"),
            "PYTHONUNBUFFERED": "1",
        }

    def _check(self, spec: ContainerSpec) -> str | None:
        if spec.image in self.missing_images:
            return f"ImagePullBackOff: image {spec.image!r} not found"
        if not (spec.command or spec.args):
            return "ContainerCannotRun: no command specified"
        return None

    def _spawn(self, run: _Run) -> str | None:
        """Start the process; return a failure reason or None. Called with the lock."""
        spec = run.spec
        for sub in ("home", "tmp"):
            (run.run_dir / sub).mkdir()
        cwd = Path(spec.working_dir) if spec.working_dir else run.run_dir / "work"
        env = self.base_env(run.run_dir)
        env.update(spec.env)
        try:
            cwd.mkdir(parents=True, exist_ok=True)
            with open(run.log_path, "ab") as out:
                proc = subprocess.Popen(
                    self.argv(spec),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            return f"ContainerCannotRun: {exc}"
        run.proc = proc
        run.state = RunState("running", None, proc.pid, time.time(), None)
        run.watcher = threading.Thread(target=self._watch, args=(run,), name=f"runner-{run.run_id}", daemon=True)
        run.watcher.start()
        return None

    def _watch(self, run: _Run) -> None:
        proc = run.proc
        assert proc is not None
        # Wait for the exit without reaping (WNOWAIT), so the pid / pgid stays reserved
        # while the rest of the group is killed.
        while True:
            try:
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                break
            except ChildProcessError:  # already reaped (should not happen)
                break
            except InterruptedError:  # pragma: no cover
                continue
        with self._lock:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # "container" ends with its PID 1
            except (ProcessLookupError, PermissionError):
                pass
            rc = proc.wait()
            code = 128 - rc if rc < 0 else rc
            reason = "Completed" if code == 0 else "Error"
            run.state = replace(
                run.state,
                status="exited",
                exit_code=code,
                finished_at=time.time(),
                reason=reason,
            )
            state = run.state
            run.done.set()
        self._fire(run.run_id, state)

    def _fire(self, run_id: str, state: RunState) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(run_id, state)
            except Exception:  # a test callback must not kill the watcher
                _log.exception("runner: on_exit callback failed for %s", run_id)

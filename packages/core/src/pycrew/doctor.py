"""``pycrew doctor``: start a controller, launch one worker, run one task, say what failed.

Each step of a task's way is checked in turn, and a failed step comes with the likely
causes: the controller's options (``build``), its address and port (``listen``), the
launcher's error (``launch``), whether the worker dials back within ``seconds_launch``
(``connect``: address, firewall, TLS, Python or pycrew missing where workers run), the
task itself (``task``), and that no worker is left behind (``terminate``).

Example::

    report = pycrew.doctor.run_doctor("gpu")
    print(report.text())
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import platform
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pycrew.config import SEQUENTIAL, ConfigError, controller_arguments
from pycrew.control.controller import Controller
from pycrew.control.launch_reports import is_ended_reason
from pycrew.control.slots import CONNECTED
from pycrew.errors import LauncherNotFoundError, OptionsError
from pycrew.monitor import listed_workers
from pycrew.plugin_api import WorkerInfo
from pycrew.plugins import PluginRegistry, get_registry

log = logging.getLogger(__name__)

STEPS = ("build", "listen", "launch", "connect", "task", "terminate")
#: How long a local worker may be missing from its launcher's list before it counts as exited.
SECONDS_GONE = 3.0
#: How long after a failed launch is counted its reason may take to be recorded.
SECONDS_REASON = 2.0


@dataclass(frozen=True)
class DoctorStep:
    """One checked step.

    Attributes:
        name: one of :data:`STEPS`.
        status: ``"ok"``, ``"fail"``, or ``"skip"`` (not reached because an earlier step failed).
        detail: what happened.
        hint: for a failed step, what to check or change.
        seconds: how long the step took.
    """

    name: str
    status: Literal["ok", "fail", "skip"]
    detail: str = ""
    hint: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the step succeeded."""
        return self.status == "ok"


@dataclass(frozen=True)
class DoctorReport:
    """The outcome of :func:`run_doctor`.

    Attributes:
        target: the profile or launcher name asked for.
        launcher: the launcher it resolved to, if known.
        url: the address workers dial, once the controller listens.
        worker_command: the worker's command line (its token travels in ``PYCREW_TOKEN``).
        steps: every step of :data:`STEPS`, in order.
        log: warnings pycrew logged meanwhile (launch failures, dropped connections).
    """

    target: str
    launcher: str | None
    url: str | None
    worker_command: str | None
    steps: tuple[DoctorStep, ...]
    log: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(s.ok for s in self.steps)

    @property
    def failed(self) -> DoctorStep | None:
        """The first failed step, if any."""
        return next((s for s in self.steps if s.status == "fail"), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**dataclasses.asdict(self), "ok": self.ok}

    def text(self) -> str:
        """A human-readable report."""
        what = f"{self.target!r}" + (f" (launcher {self.launcher!r})" if self.launcher and self.launcher != self.target else "")
        lines = [f"pycrew doctor: {what}"]
        for s in self.steps:
            took = f"  [{s.seconds:.2f} s]" if s.status != "skip" else ""
            lines.append(f"  {s.status.upper():<5} {s.name:<10} {s.detail}{took}".rstrip())
            if s.hint:
                lines.extend(f"        {i}" for i in s.hint.splitlines())
        if self.worker_command:
            lines.append(f"  worker command: {self.worker_command}")
        if self.log and not self.ok:
            lines.append("  pycrew warnings:")
            lines.extend(f"    {line}" for line in self.log[-10:])
        lines.append("  result: " + ("all steps passed" if self.ok else f"failed at {self.failed.name if self.failed else '?'}"))
        return "\n".join(lines)


class _Capture(logging.Handler):
    """Collect pycrew's warnings during a doctor run."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@dataclass
class _Run:
    """The state of one doctor run."""

    target: str
    steps: list[DoctorStep] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    launcher: str | None = None
    url: str | None = None
    command: str | None = None
    log_dir: str | None = None

    def add(self, name: str, ok: bool, detail: str, hint: str = "") -> bool:
        now = time.monotonic()
        self.steps.append(DoctorStep(name, "ok" if ok else "fail", detail, "" if ok else hint, now - self.t0))
        self.t0 = now
        return ok

    def report(self, log_lines: list[str]) -> DoctorReport:
        done = {s.name for s in self.steps}
        steps = list(self.steps)
        steps += [DoctorStep(n, "skip") for n in STEPS if n not in done]
        steps.sort(key=lambda s: STEPS.index(s.name))
        return DoctorReport(self.target, self.launcher, self.url, self.command, tuple(steps), tuple(log_lines))


def _build_hint(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return "fix the file, key or environment variable named above (`pycrew config show` lists every value and its source)"
    if isinstance(exc, LauncherNotFoundError):
        return "install the launcher's package (`pycrew launchers` lists the installed ones), or define the profile in pycrew.toml"
    if isinstance(exc, OptionsError):
        return "fix the option named above (its allowed values are in the message)"
    return "a plugin (named above) failed while the controller was built; reinstall it, or report it to its authors"


def _list_workers(c: Controller) -> list[WorkerInfo] | None:
    """The launcher's view of this controller's workers, or ``None`` if it cannot say."""
    try:
        found = c._registry.call(c.spec, "pycrew_list_workers", launcher=c.info, controller_id=c.id)
        if found is None:
            return None
        workers = listed_workers(c._registry, c.spec, found)
    except Exception as exc:  # the monitor is optional for the diagnosis: note it and go on
        log.debug("listing workers of %r failed: %s", c.name, exc)
        return None
    return [w for w in workers if w.held]  # live or queued: ended workers are gone


def _log_tail(log_dir: str | None, lines: int = 15) -> str:
    if not log_dir:
        return ""
    texts = [p.read_text(errors="replace") for p in sorted(Path(log_dir).glob("*")) if p.is_file()]
    tail = "\n".join("\n".join(t.strip().splitlines()[-lines:]) for t in texts if t.strip())
    return f"the worker's output:\n{tail}" if tail else ""


def _connect_hint(c: Controller, exited: bool, listed: list[WorkerInfo] | None, log_dir: str | None, seen: bool = True) -> str:
    host = c.host
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    port = c.url.rsplit(":", 1)[-1]
    hints = []
    if exited and not seen and listed is not None and not c.launcher.last_launch_error:
        # it blamed Python for a launch hook that returned a handle and started nothing
        hints.append(f"the launcher's monitor never listed the worker its launch hook returned (handle "
                     f"{c.launcher.slots[0].last_handle!r}): the hook may not start a worker at all, or the monitor "
                     "may not see the workers it starts (check both against the plugin guide)")
    elif exited:
        hints.append("the worker exited without dialing back: Python or pycrew is probably missing where it runs, "
                     "or it could not reach the controller")
    elif listed:
        w = listed[0]
        hints.append(f"the launcher reports the worker as {w.state!r}" + (f" ({w.reason})" if w.reason else "")
                     + (f"; its log: {w.log}" if w.log else ""))
    tail = _log_tail(log_dir)
    if tail:
        hints.append(tail)
    if c.spec.remote and loopback:
        hints.append(f"the controller listens on {host}, which workers on other machines cannot reach: set host= to an address they can route to")
    if c.spec.remote or not loopback:
        hints.append(f"workers must reach {c.url} over TCP: check that {host} is routable from where workers run "
                     f"and that no firewall blocks port {port} (set port= to an open port)")
    if c.tls.enabled:
        hints.append(f"TLS is {c.tls.mode!r}: the worker must trust the controller's certificate (sent in PYCREW_TLS_CA) "
                     f"for the name {c.tls.server_name or host!r}; a mismatch fails the worker's dial")
    hints.append("Python and pycrew must be installed where the worker runs: run the worker command (below) there, "
                 "with PYCREW_TOKEN set, to see its error; check the launcher's python option")
    if not exited:
        hints.append(f"seconds_launch={c.options.seconds_launch:g} may be too short for this platform")
    return "\n".join(f"- {h}" for h in hints)


def _wait_for_worker(c: Controller, run: _Run, seconds: float) -> bool:
    """Watch slot 1 through the launch and connect steps."""
    slot = c.launcher.slots[0]
    deadline = time.monotonic() + seconds
    launched = False
    listed: list[WorkerInfo] | None = None
    seen = False
    missing_since: float | None = None
    next_list = 0.0
    failed_at: float | None = None
    while True:
        now = time.monotonic()
        # The monitor saw the launched worker end before it dialed back: a connect failure.
        ended = slot.handle_known and is_ended_reason(c.launcher.last_launch_error)
        if c.launcher.last_launch_error and not ended:
            return run.add("launch", False, c.launcher.last_launch_error,
                           f"the {c.spec.name!r} launcher could not start the worker; fix the cause above "
                           f"(the launcher's options, credentials, quotas, the python option)\n{_log_tail(run.log_dir)}".rstrip())
        if not launched and (slot.handle_known or slot.state == CONNECTED or slot.instances):
            launched = run.add("launch", True, f"worker launched (handle {slot.handle!r})")
        if slot.state == CONNECTED or slot.instances:
            return run.add("connect", True, f"worker {slot.instance} dialed back from {slot.host} (pid {slot.pid})")
        exited = bool(ended)
        if launched and now >= next_list:
            next_list = now + 0.5
            listed = _list_workers(c)
            if listed:
                seen, missing_since = True, None
            elif listed is not None:
                missing_since = missing_since or now
                exited = ended or seen or (not c.spec.remote and now - missing_since >= SECONDS_GONE)
        # A failed launch is counted before its reason is recorded (that may wait for the
        # platform's monitor): give the reason a moment, so an exit reads as one.
        if slot.launch_failures > 0 and failed_at is None:
            failed_at = now
        timed_out = (failed_at is not None and (ended or now - failed_at >= SECONDS_REASON)) or now > deadline
        if exited or timed_out:
            if not launched:
                run.add("launch", False, f"the launch did not finish within {seconds:g} s",
                        f"the {c.spec.name!r} launcher's platform API is slow or hanging")
                return False
            why = ("the worker exited before dialing back" if exited
                   else f"the worker did not dial back within {min(seconds, c.options.seconds_launch):g} s")
            hint = _connect_hint(c, exited, listed, run.log_dir, seen)
            if ended:  # the platform's reason (an image it cannot pull, an exit code) comes first
                hint = f"- the launcher reports: {c.launcher.last_launch_error}\n{hint}"
            return run.add("connect", False, why, hint)
        time.sleep(0.05)


def run_doctor(
    profile_or_launcher: str = "local",
    timeout: float | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    cwd: str | None = None,
    registry: PluginRegistry | None = None,
) -> DoctorReport:
    """Check a profile or launcher end to end with one worker and one task.

    The controller gets ``workers=1`` and ``launch_max=1`` (one launch, no retries). For a
    launcher with a ``log_dir`` option that is not set, the worker's output goes to a
    temporary directory and is shown when the worker fails.

    Args:
        profile_or_launcher: a profile's name (see :mod:`pycrew.config`) or a launcher's.
        timeout: longest wait for the worker to dial back, and for the task (default:
            ``seconds_launch`` for the former and 60 s for the latter).
        cwd: where the search for the project configuration starts.
        registry: the plugin registry (default: the global one).
        options: options overriding the profile's (``workers`` is always 1).

    Returns:
        The report; :attr:`DoctorReport.ok` says whether every step passed. It never
        raises for a failed step.
    """
    run = _Run(profile_or_launcher)
    capture = _Capture()
    logging.getLogger("pycrew").addHandler(capture)
    c: Controller | None = None
    try:
        try:
            launcher, _, opts = controller_arguments(profile_or_launcher, None, options, cwd=cwd, registry=registry)
            run.launcher = launcher
            if launcher == SEQUENTIAL:
                raise OptionsError("the sequential controller runs tasks in this process: there is no worker to check")
            opts.pop("workers", None)
            opts["launch_max"] = 1
            spec = (registry or get_registry()).launcher(launcher)
            if "log_dir" in {f.name for f in dataclasses.fields(spec.options_type)} and opts.get("log_dir") is None:
                run.log_dir = opts["log_dir"] = tempfile.mkdtemp(prefix="pycrew-doctor-")
            c = Controller(launcher, 1, registry=registry, **opts)
        except Exception as exc:
            run.add("build", False, f"{type(exc).__name__}: {exc}", _build_hint(exc))
            return run.report(capture.lines)
        run.add("build", True, f"controller {c.name!r} on launcher {c.spec.name!r} "
                f"(seconds_launch={c.options.seconds_launch:g}, tls={c.tls.mode})")
        try:
            c.start()
        except Exception as exc:
            run.add("listen", False, f"{type(exc).__name__}: {exc}",
                    f"port {c.options.port} may be in use, or host={c.host!r} is not an address of this machine: "
                    f"set port=0 for a free port, or host= to one of this machine's addresses")
            return run.report(capture.lines)
        run.url = c.url
        python = getattr(c.launcher_options, "python", None)
        run.command = c.launcher.call(worker=1, instance="<instance>", url=c.url).command_line(
            python if isinstance(python, str) else None)
        run.add("listen", True, f"listening on {c.url}")
        c.push(platform.python_version, name="doctor")
        wait = c.options.seconds_launch if timeout is None else min(timeout, c.options.seconds_launch)
        if _wait_for_worker(c, run, wait + 2.0):
            _run_task(c, run, 60.0 if timeout is None else timeout)
    finally:
        try:
            if c is not None and c.started:
                _terminate(c, run)
        finally:
            logging.getLogger("pycrew").removeHandler(capture)
            if run.log_dir:
                shutil.rmtree(run.log_dir, ignore_errors=True)
    return run.report(capture.lines)


def _run_task(c: Controller, run: _Run, seconds: float) -> None:
    try:
        done = c.wait("one", timeout=seconds)
    except Exception as exc:
        run.add("task", False, f"{type(exc).__name__}: {exc}", "the worker connected but the task did not run")
        return
    result = c.pop()
    if not done or result is None:
        run.add("task", False, f"no result within {seconds:g} s", "the worker connected but never returned the task; "
                "check its log, and that it can unpickle tasks (same pycrew and cloudpickle versions)")
    elif not result.ok:
        run.add("task", False, f"{result.status}: {result.error_type}: {result.error}",
                "the worker ran the task but it failed; the worker's Python environment may differ from the controller's")
    else:
        run.add("task", True, f"ran on host {result.host} pid {result.pid} (Python {result.result}) in {result.seconds:.3f} s")


def _terminate(c: Controller, run: _Run) -> None:
    try:
        c.terminate()
    except Exception as exc:
        run.add("terminate", False, f"{type(exc).__name__}: {exc}", "terminate left an error; check with `pycrew monitor`")
        return
    deadline = time.monotonic() + 10.0
    left = _list_workers(c)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _list_workers(c)
    if left:
        ids = " ".join(w.id for w in left)
        run.add("terminate", False, f"{len(left)} worker(s) still listed after terminate: {ids}",
                f"terminate them with `pycrew monitor {c.spec.name} terminate {ids}`")
    else:
        run.add("terminate", True, "controller terminated; no worker left" if left is not None else
                "controller terminated (not checked that no worker is left: the launcher's monitor cannot list them)")

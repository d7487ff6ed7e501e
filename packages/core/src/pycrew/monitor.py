"""Monitors: list, read the logs of, and terminate a launcher's workers, including orphans of dead controllers.

Every started controller writes a small record (id, name, pid, host) in pycrew's state
directory (``$PYCREW_STATE_DIR``, default ``~/.local/state/pycrew``); when it terminates it
marks the record ended (a tombstone, kept :data:`SECONDS_TOMBSTONE`). A worker is an orphan
when its controller's record is ended, or names a process on this host that no longer runs
(killed: its record, never marked ended, is kept :data:`SECONDS_TOMBSTONE` from its start;
one of another host is kept until it is marked ended, as its process cannot be checked).
A worker whose controller has no record here (another state directory, another user's
home, a record that could not be written) is of an *unknown* controller: it is not an
orphan, so ``terminate --orphans`` cannot stop the workers of a controller that still runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import psutil

from pycrew.control.quoting import shown
from pycrew.errors import LogsUnavailableError, OptionsError, PluginError, PycrewError
from pycrew.plugin_api import LauncherInfo, LauncherSpec, WorkerInfo
from pycrew.plugins import PluginRegistry, get_registry

log = logging.getLogger(__name__)

WorkerList = list[WorkerInfo]


ControllerState = Literal["running", "ended", "unknown"]

SECONDS_TOMBSTONE = 30 * 86400.0
"""How long the record of an ended controller is kept (its workers are orphans while it is)."""
TOMBSTONES_MAX = 10_000
"""Most records kept past that many (a program that starts a controller a second made one a second, each a
4 KB file, and every start read them all): the oldest ended ones go first (those of this host's controllers
killed without ending too); a running one is never removed."""
SECONDS_PRUNE = 3600.0
"""How often the records are pruned, at a controller's start (across processes: the directory's ``.pruned`` file)."""


def state_dir() -> Path:
    """Where controller records live."""
    base = os.environ.get("PYCREW_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".local", "state", "pycrew")
    return Path(base) / "controllers"


def _write(path: Path, record: dict[str, Any]) -> None:
    """Write a record whole (a reader never sees half of it)."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(record))
    os.replace(part, path)


def _prune_due(d: Path, now: float) -> bool:
    """Whether the records were last pruned :data:`SECONDS_PRUNE` ago or more (then it is now)."""
    marker = d / ".pruned"
    try:
        if now - marker.stat().st_mtime < SECONDS_PRUNE:
            return False
    except FileNotFoundError:
        pass
    marker.touch()
    return True


def _prune(d: Path, now: float) -> None:
    """Remove the records of controllers that ended more than :data:`SECONDS_TOMBSTONE` ago, and
    the oldest ended ones past :data:`TOMBSTONES_MAX` records (see :func:`_removable`)."""
    records: list[tuple[float, str]] = []
    with os.scandir(d) as entries:
        for entry in entries:
            if entry.name.endswith(".json"):
                try:
                    records.append((entry.stat().st_mtime, entry.path))
                except OSError:  # removed meanwhile
                    continue
    records.sort()  # oldest written (started, or ended) first
    excess = len(records) - TOMBSTONES_MAX
    host = socket.gethostname()
    for written, name in records:
        if now - written <= SECONDS_TOMBSTONE and excess <= 0:
            break  # the rest is younger still: read only what may go
        path = Path(name)
        try:
            if _removable(json.loads(path.read_text()), written, now, host, crowded=excess > 0):
                path.unlink(missing_ok=True)
                excess -= 1
        except (OSError, ValueError, AttributeError):
            continue


def _removable(record: dict[str, Any], written: float, now: float, host: str, crowded: bool) -> bool:
    """Whether a record (last ``written`` then) may go: its controller ended more than
    :data:`SECONDS_TOMBSTONE` ago, or at all when there are too many records (``crowded``).

    A record never marked ended whose process on this ``host`` is gone (killed: SIGKILL, the
    OOM killer, ``os._exit``) counts as ended at its start, the latest time known it ran. One
    of another host is kept, however old: its controller may still run (nothing limits how
    long a controller runs, nor refreshes its record, and its process cannot be checked from here).
    """
    ended = record.get("ended")
    if ended is None:
        started = record.get("started")
        ended = started if isinstance(started, (int, float)) else written
        if not crowded and now - ended <= SECONDS_TOMBSTONE:
            return False  # (before looking at the process: most records are young)
        if record.get("host") != host or _process_alive(record):
            return False
    return isinstance(ended, (int, float)) and (crowded or now - ended > SECONDS_TOMBSTONE)


def _process_alive(record: dict[str, Any]) -> bool:
    """Whether the process a record of this host names still runs: its pid, started when the
    record says (not a later process given the same pid), and not a zombie."""
    try:
        proc = psutil.Process(int(record["pid"]))
        return bool(abs(proc.create_time() - float(record["create_time"])) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def register_controller(controller_id: str, name: str, launcher: str) -> None:
    """Record a running controller (best effort: a read-only home must not stop work)."""
    try:
        d = state_dir()
        d.mkdir(parents=True, exist_ok=True)
        proc = psutil.Process()
        now = time.time()
        record = {
            "id": controller_id,
            "name": name,
            "launcher": launcher,
            "pid": proc.pid,
            "create_time": proc.create_time(),
            "host": socket.gethostname(),
            "started": now,
            "ended": None,
        }
        _write(d / f"{controller_id}.json", record)
        if _prune_due(d, now):
            _prune(d, now)
    except OSError as exc:
        log.warning(
            "could not record controller %s in %s: %s (monitors will not know it: its workers are never listed "
            "as orphans, only by id or --all)", controller_id, state_dir(), exc,
        )


def unregister_controller(controller_id: str) -> None:
    """Mark a controller's record ended: any worker of it still running is an orphan."""
    path = state_dir() / f"{controller_id}.json"
    try:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {"id": controller_id}
        if not isinstance(record, dict):
            record = {"id": controller_id}
        record["ended"] = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, record)
    except OSError as exc:
        log.warning("could not mark the record of controller %s ended: %s", controller_id, exc)


def controller_state(controller_id: str | None) -> ControllerState:
    """``"running"``, ``"ended"`` (its workers are orphans) or ``"unknown"`` (no record here).

    A controller recorded on another host counts as running: its processes cannot be
    checked from here. One recorded on this host whose process is gone (killed) is ended,
    and its record is marked so.
    """
    if not controller_id:
        return "unknown"
    path = state_dir() / f"{controller_id}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(record, dict):
        return "unknown"
    if record.get("ended") is not None:
        return "ended"
    if record.get("host") != socket.gethostname():
        return "running"  # cannot check another host's processes: assume alive
    if _process_alive(record):
        return "running"
    unregister_controller(controller_id)
    return "ended"


def controller_alive(controller_id: str | None) -> bool:
    """Whether the controller is known to be running (one on another host counts as running)."""
    return controller_state(controller_id) == "running"


def check_lines(lines: int | None) -> int | None:
    """``lines`` if it is ``None`` or an int >= 1.

    Raises:
        OptionsError: it is not.
    """
    if lines is not None and (isinstance(lines, bool) or not isinstance(lines, int) or lines < 1):
        raise OptionsError(f"lines must be an int >= 1 or None (everything kept), got {lines!r}")
    return lines


def call_hook(registry: PluginRegistry, spec: LauncherSpec, hook: str, **kwargs: Any) -> Any:
    """Call a launcher's ``hook`` for a monitor; the plugin's own exception becomes a :class:`PluginError`.

    pycrew's errors (:class:`~pycrew.PycrewError`: options, logs unavailable) pass unchanged.

    Raises:
        PluginError: the hook raised anything else (``SystemExit`` too), naming the launcher,
            its plugin and the hook; the plugin's exception is its ``__cause__``.
    """
    try:
        return registry.call(spec, hook, **kwargs)
    except PycrewError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin's sys.exit must not end the user's program
        raise PluginError(
            f"launcher {spec.name!r} ({registry.provider(spec)}) failed in {hook}: {type(exc).__name__}: {exc}; "
            "check the platform and the launcher's options, and if they are right report this to the plugin's authors"
        ) from exc


def listed_workers(registry: PluginRegistry, spec: LauncherSpec, result: object) -> WorkerList:
    """What ``pycrew_list_workers`` returned, checked: a list of :class:`WorkerInfo` (``None``: none).

    Any other iterable (a tuple, a generator) is taken as a list.

    Raises:
        PluginError: a ``str``, a mapping or a non-iterable, or an element that is not a
            :class:`WorkerInfo`, naming the plugin, the type and the first offending element.
    """
    if result is None:
        return []
    must = "the hook must return a list of pycrew.WorkerInfo (a bug in the launcher plugin: report it to its authors)"
    where = f"launcher {spec.name!r} ({registry.provider(spec)}) returned"
    if isinstance(result, (str, bytes, bytearray, Mapping)) or not isinstance(result, Iterable):
        raise PluginError(f"{where} a {type(result).__name__}, {shown(result)}, from pycrew_list_workers; {must}")
    try:
        workers = list(result)
    except (Exception, SystemExit) as exc:
        raise PluginError(
            f"{where} a {type(result).__name__} from pycrew_list_workers that failed when read: "
            f"{type(exc).__name__}: {exc}; {must}"
        ) from exc
    for index, worker in enumerate(workers):
        if not isinstance(worker, WorkerInfo):
            raise PluginError(
                f"{where} a {type(result).__name__} from pycrew_list_workers whose element {index} is a "
                f"{type(worker).__name__}, {shown(worker)}, not a pycrew.WorkerInfo; {must}"
            )
        started = worker.started  # the one field consumers compute with (age); the others are shown as text
        if started is not None and (isinstance(started, bool) or not isinstance(started, (int, float))):
            raise PluginError(
                f"{where} from pycrew_list_workers a WorkerInfo (element {index}, id {shown(worker.id)}) whose "
                f"started is a {type(started).__name__}, {shown(started)}, not epoch seconds (a float) or None; {must}"
            )
    return workers


def worker_logs(registry: PluginRegistry, spec: LauncherSpec, info: LauncherInfo, handle: Any, lines: int | None, worker: str) -> str:
    """A worker's output through the launcher's ``pycrew_worker_logs`` hook.

    Args:
        worker: how to name the worker in an error message (``"worker 2"``, ``"worker 1234"``).

    Raises:
        LogsUnavailableError: the launcher cannot give logs (it returned ``None``).
        PluginError: the hook raised (see :func:`call_hook`).
    """
    text = call_hook(registry, spec, "pycrew_worker_logs", launcher=info, handle=handle, lines=check_lines(lines))
    if text is None:
        raise LogsUnavailableError(
            f"launcher {spec.name!r} cannot give worker logs ({worker}): it does not implement pycrew_worker_logs "
            f"or its platform keeps no output; read the worker's output where the platform puts it"
        )
    if not isinstance(text, str):
        raise LogsUnavailableError(
            f"launcher {spec.name!r} returned {type(text).__name__} from pycrew_worker_logs for {worker}; "
            "the hook must return a str or None (a bug in the launcher plugin)"
        )
    return text


class Monitor:
    """List, read the output of, and terminate one launcher's pycrew workers.

    Example::

        m = pycrew.Monitor("local")
        for w in m.orphans():
            print(w.id, w.controller, w.age)
        m.terminate(m.orphans())
    """

    def __init__(self, launcher: str, registry: PluginRegistry | None = None, **options: Any) -> None:
        if launcher == "sequential":  # not a launcher: pycrew.controller("sequential") makes no workers
            raise OptionsError(
                "the sequential controller runs every task in the process that pushes it: it has no workers "
                "to list, read or terminate; monitor the launcher of a real controller (e.g. 'local')"
            )
        self.registry = registry or get_registry()
        self.spec = self.registry.launcher(launcher)
        self.info = LauncherInfo(name=self.spec.name, options=self.spec.options_type.from_mapping(options))

    def list(self, controller_id: str | None = None, ended: bool = False) -> WorkerList:
        """Workers of one controller, or of every controller when ``controller_id`` is None.

        Only those the platform still holds (:attr:`WorkerInfo.held`: live ones, and those
        that could not start but stay queued), unless ``ended``: then also those the
        launcher reports as recently ended (:attr:`WorkerInfo.ended`, with their status,
        exit code and reason).

        Raises:
            PluginError: the launcher's ``pycrew_list_workers`` hook raised, or returned
                something else than a list of :class:`WorkerInfo` (naming the plugin and what it returned).
        """
        result = call_hook(self.registry, self.spec, "pycrew_list_workers", launcher=self.info, controller_id=controller_id)
        return [w for w in listed_workers(self.registry, self.spec, result) if ended or w.held]

    def orphans(self) -> WorkerList:
        """Workers whose controller has ended (terminated, or its process gone).

        Workers of a controller this machine's state directory has no record of (see
        :func:`controller_state`) are not orphans: they may belong to a controller that
        still runs with another ``PYCREW_STATE_DIR``. Find them with :meth:`list`.
        """
        return [w for w in self.list() if controller_state(w.controller_id) == "ended"]

    def logs(self, worker: str | WorkerInfo, lines: int | None = 200) -> str:
        """The last ``lines`` lines of a worker's output (``None``: all the launcher keeps).

        A worker id that :meth:`list` no longer shows (``ended=True`` included) is given to
        the launcher as the worker's handle: on the scheduler launchers (slurm, sge, pbs,
        lsf) and awsbatch the id *is* the handle, so a job that has left the queue's
        listing can still be read, for as long as its output exists (on k8s, give
        ``"namespace/job"``; on cloudrun, the task's full name).

        Args:
            worker: a :class:`WorkerInfo` from :meth:`list`, or a worker's id as listed
                (ended workers included), or a job id of a worker no longer listed.
            lines: how many lines from the end, >= 1, or ``None``.

        Raises:
            LogsUnavailableError: no listed worker has that id and the launcher cannot use
                the id as a handle either (the message lists the ids and says why), or the
                launcher cannot give the worker's logs.
            OptionsError: ``lines`` is invalid.
        """
        check_lines(lines)
        if isinstance(worker, WorkerInfo):
            return worker_logs(self.registry, self.spec, self.info, worker.handle, lines, f"worker {worker.id}")
        listed = self.list(ended=True)
        found = [w for w in listed if w.id == str(worker)]
        if found:
            return worker_logs(self.registry, self.spec, self.info, found[0].handle, lines, f"worker {found[0].id}")
        try:
            return worker_logs(self.registry, self.spec, self.info, str(worker), lines, f"worker {worker}")
        except LogsUnavailableError as exc:
            raise LogsUnavailableError(
                f"no worker with id {worker!r} on launcher {self.spec.name!r} (listed: "
                f"{', '.join(w.id for w in listed) or 'none'}; see Monitor.list(ended=True)), and the launcher "
                f"cannot read it with the id as its handle: {exc}"
            ) from exc

    def terminate(self, workers: Iterable[WorkerInfo]) -> int:
        """Terminate the given workers; returns how many were asked to stop.

        Raises:
            PluginError: the launcher's ``pycrew_terminate_workers`` hook raised.
        """
        handles = [w.handle for w in workers]
        if handles:
            call_hook(self.registry, self.spec, "pycrew_terminate_workers", launcher=self.info, handles=handles)
        return len(handles)

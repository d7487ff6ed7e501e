"""``pycrew monitor LAUNCHER list|logs|terminate``: a launcher's workers, orphans included."""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Iterable
from typing import Any

import click

from pycrew.cli_support import _errors, _json, _parse_options, _table
from pycrew.config import check_name, load_profile, profile_names
from pycrew.errors import LogsUnavailableError
from pycrew.monitor import ControllerState, Monitor, controller_state, state_dir
from pycrew.plugin_api import WorkerInfo
from pycrew.plugins import get_registry

IDS_SHOWN_MAX = 20
"""Most ids an error message lists (a cluster may hold thousands)."""


def _monitor_for(name: str, options: dict[str, Any] | None = None) -> Monitor:
    """A monitor for a launcher, or for a profile's launcher with the profile's launcher options.

    ``options`` (from ``-o KEY=VALUE``) override the profile's launcher options.
    """
    profile = load_profile(name)
    if profile is not None:
        return Monitor(profile.launcher, **{**profile.launcher_options(), **(options or {})})
    check_name(name)  # a typo of a profile's name gets the same hints as pycrew.controller()
    return Monitor(name, **(options or {}))


def _launcher_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """LAUNCHER, checked not to be empty or blank (else pycrew would look for a profile named '')."""
    if not value.strip():
        raise click.BadParameter(
            f"the launcher name is {'empty' if not value else f'blank ({value!r})'}; give a launcher's or a profile's "
            f"name: launchers: {', '.join(get_registry().installed_launchers()) or 'none'}; "
            f"profiles: {', '.join(profile_names()) or 'none'}")
    return value


def _quoted(ids: Iterable[str]) -> str:
    """Worker ids for a message, each quoted (an empty or blank id stays visible), at most :data:`IDS_SHOWN_MAX`."""
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:IDS_SHOWN_MAX])
    more = len(ids) - IDS_SHOWN_MAX
    return (shown + (f" and {more} more" if more > 0 else "")) or "none"


def _state_problem() -> tuple[str, bool] | None:
    """What is wrong with the directory of the controllers' records, naming ``PYCREW_STATE_DIR`` and its value, and
    whether it cannot be read (``False``: ``PYCREW_STATE_DIR`` names a directory that does not exist, so no controller
    run with that setting recorded itself). ``None``: nothing (an empty ``PYCREW_STATE_DIR`` counts as unset; the
    default directory missing means no controller has run)."""
    value = os.environ.get("PYCREW_STATE_DIR", "")
    records = state_dir()
    where = f"PYCREW_STATE_DIR={value!r}" if value else f"the state directory {str(records.parent)!r} (PYCREW_STATE_DIR is unset)"
    try:
        with os.scandir(records):
            return None
    except FileNotFoundError:
        if not value or records.parent.is_dir():
            return None  # no controller has recorded itself yet
        return f"{where}: the directory does not exist", False
    except NotADirectoryError:
        return f"{where}: " + (f"{str(records)!r} is not a directory" if records.parent.is_dir() else "not a directory"), True
    except OSError as exc:  # permission denied, and the like
        return f"{where}: {str(records)!r} cannot be read: {exc.strerror or exc}", True


def _ids_hint(launcher: str, option_texts: Iterable[str], flag: str) -> str:
    """The command that lists a launcher's worker ids (``flag``: ``--ended``, ``--orphans`` or none), with the
    user's ``-o`` options."""
    words = ["pycrew monitor", shlex.quote(launcher), "list", flag, *(f"-o {shlex.quote(t)}" for t in option_texts)]
    return " ".join(w for w in words if w)


def _logs(m: Monitor, worker_id: str, lines: int, hint: str) -> str:
    """A worker's output; an id the launcher neither lists nor reads logs by is said in the command's terms.

    :meth:`Monitor.logs`' own message speaks to API callers (``Monitor.list()``, handles); a
    listed worker whose output cannot be read keeps the launcher's message, which says why.
    """
    try:
        return m.logs(worker_id, lines=lines)
    except LogsUnavailableError as exc:
        listed = [w.id for w in m.list(ended=True)]
        if worker_id in listed:
            raise
        cause = exc.__cause__
        if isinstance(cause, LogsUnavailableError) and " as a worker handle" not in str(cause):
            why = f"the launcher cannot read logs with it as a job id: {cause}"
        else:  # the launcher's message names the handle type it takes: an API matter
            why = f"{worker_id!r} is not a job id or handle the launcher reads logs by"
        raise click.ClickException(
            f"no worker with id {worker_id!r} on launcher {m.spec.name!r} (listed: {_quoted(listed)}; ended "
            f"workers included), and {why}; to see the worker ids, run: {hint}") from exc


def _cell(value: Any, empty: str = "-") -> str:
    """A table cell: ``empty`` for no value; any value a plugin put in a WorkerInfo field as text."""
    return empty if value is None or value == "" else str(value)


def _worker_row(w: WorkerInfo, states: dict[str, ControllerState]) -> dict[str, Any]:
    """A worker as a row; ``orphan`` is ``None`` when its controller is unknown here."""
    row = {k: v for k, v in dataclasses.asdict(w).items() if k != "handle"}
    row["age"] = w.age
    state = states[w.controller_id or ""]
    row["controller_state"] = state
    row["orphan"] = None if state == "unknown" else state == "ended"
    return row


@click.command()
@click.argument("launcher", callback=_launcher_name)
@click.argument("action", type=click.Choice(["list", "logs", "terminate"]))
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="terminate: every listed worker.")
@click.option("--orphans", is_flag=True, help="Only workers whose controller has ended (not those of unknown controllers).")
@click.option("--controller", "controller_id", default=None, help="Only this controller id's workers.")
@click.option("--ended", is_flag=True, help="list: also workers the launcher reports as recently ended.")
@click.option("-o", "--option", "option_texts", multiple=True, metavar="KEY=VALUE",
              help="A launcher option, its value read as its type (text, number, true/false, none, JSON for lists and tables); repeatable.")
@click.option("--lines", type=click.IntRange(min=1), default=200, show_default=True,
              help="logs: how many lines from the end of the worker's output.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_errors
def monitor(
    ctx: click.Context, launcher: str, action: str, ids: tuple[str, ...], all_: bool, orphans: bool,
    controller_id: str | None, ended: bool, option_texts: tuple[str, ...], lines: int, as_json: bool,
) -> None:
    """List, read the output of, or terminate a launcher's workers, orphans included.

    LAUNCHER is a launcher's or a profile's name. For logs, ID is a worker's id as listed
    (ended workers included), or the handle of a worker that is no longer listed: the job id
    on slurm, sge, pbs, lsf and awsbatch, namespace/job on k8s, the task's full name on cloudrun.

    \b
    pycrew monitor local list
    pycrew monitor local list --orphans --json
    pycrew monitor k8s logs pycrew-ab12-1 --lines 50
    pycrew monitor slurm logs 1234_1 -o directory=/shared/pycrew
    pycrew monitor slurm terminate 1234_1 1234_2
    pycrew monitor k8s terminate --orphans
    pycrew monitor k8s list -o namespace=batch --ended
    """
    if action == "list" and (ids or all_):
        raise click.UsageError(
            "list takes no worker ids or --all (those are for terminate); for one controller's workers, "
            "give --controller ID"
        )
    if action == "terminate" and ids and all_:
        raise click.UsageError("give worker ids or --all, not both")
    if action == "terminate" and not (ids or all_ or orphans):
        raise click.UsageError("terminate needs worker ids, --all or --orphans")
    if action == "logs" and (len(ids) != 1 or all_ or orphans):
        raise click.UsageError(
            "logs needs exactly one worker id (as listed by 'list --ended', or a scheduler job id such as 1234_1 "
            "after the job left the queue), without --all or --orphans")
    m = _monitor_for(launcher, _parse_options(option_texts, launcher))
    hint = _ids_hint(launcher, option_texts, "--ended" if action == "logs" else "--orphans" if orphans else "")
    if action == "logs":
        text = _logs(m, ids[0], lines, hint)
        if as_json:
            click.echo(_json({"id": ids[0], "lines": lines, "logs": text}))
        else:
            click.echo(text, nl=not text.endswith("\n"))
        return
    problem, unusable = (_state_problem() if orphans or action == "list" else None) or (None, False)
    if problem and unusable and orphans:
        raise click.ClickException(
            f"cannot tell which workers are orphans: {problem}. Controllers record themselves in "
            "$PYCREW_STATE_DIR/controllers (default ~/.local/state/pycrew): set PYCREW_STATE_DIR as the controllers "
            "had it, or unset it; 'list' and 'terminate ID' or '--all' need no records"
            + (" (nothing was terminated)" if action == "terminate" else ""))
    workers = m.orphans() if orphans else m.list(controller_id, ended=ended and action == "list")
    if orphans and controller_id:
        workers = [w for w in workers if w.controller_id == controller_id]
    if problem and unusable:
        click.echo(f"warning: {problem}; no controller's record can be read, so ORPHAN is unknown for every worker; "
                   "set PYCREW_STATE_DIR as the controllers had it, or unset it", err=True)
    elif problem and orphans:
        click.echo(f"warning: {problem}: no controller run with that setting has recorded itself, so no worker is "
                   "known as an orphan; check the value (a controller creates the directory when it starts)", err=True)
    if action == "terminate":
        if ids:
            by_id = {w.id: w for w in workers}
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                raise click.ClickException(
                    f"no {'orphan ' if orphans else ''}worker with id{'s' if len(unknown) > 1 else ''} {_quoted(unknown)} "
                    f"on launcher {m.spec.name!r}; listed: {_quoted(by_id)} (nothing was terminated); to see the "
                    f"worker ids, run: {hint}")
            workers = [by_id[i] for i in ids]
        m.terminate(workers)
        chosen = [w.id for w in workers]
        if as_json:
            click.echo(_json({"terminated": chosen}))
        else:
            click.echo(f"terminated {len(chosen)} worker(s)" + (f": {' '.join(chosen)}" if chosen else ""))
        return
    states = {cid: controller_state(cid) for cid in {w.controller_id or "" for w in workers}}
    rows = [_worker_row(w, states) for w in workers]
    if as_json:
        click.echo(_json(rows))
        return
    if not rows:
        click.echo(f"no {'orphan ' if orphans else ''}pycrew workers on launcher {m.spec.name!r}")
        return
    click.echo(_table(
        ["ID", "CONTROLLER", "INSTANCE", "WORKER", "STATE", "AGE", "ORPHAN", "HOST", "REASON", "LOG"],
        [[str(r["id"]), _cell(r["controller"]), _cell(r["instance"]), _cell(r["worker"]), str(r["state"]),
          "-" if r["age"] is None else f"{r['age']:.0f}s", {True: "yes", False: "no", None: "unknown"}[r["orphan"]],
          _cell(r["host"]), _cell(r["reason"], ""), _cell(r["log"], "")] for r in rows],
    ))
    if not unusable and any(r["orphan"] is None for r in rows):
        click.echo(
            f"ORPHAN unknown: no record of the worker's controller in {state_dir()} (a controller run with another "
            "PYCREW_STATE_DIR or by another user); terminate --orphans leaves it, terminate ID or --all stops it",
            err=True,
        )

"""``pycrew monitor LAUNCHER list|logs|terminate``: a launcher's workers, orphans included."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from pycrew.cli_support import _errors, _json, _parse_options, _table
from pycrew.config import check_name, load_profile
from pycrew.monitor import ControllerState, Monitor, controller_state, state_dir
from pycrew.plugin_api import WorkerInfo


def _monitor_for(name: str, options: dict[str, Any] | None = None) -> Monitor:
    """A monitor for a launcher, or for a profile's launcher with the profile's launcher options.

    ``options`` (from ``-o KEY=VALUE``) override the profile's launcher options.
    """
    profile = load_profile(name)
    if profile is not None:
        return Monitor(profile.launcher, **{**profile.launcher_options(), **(options or {})})
    check_name(name)  # a typo of a profile's name gets the same hints as pycrew.controller()
    return Monitor(name, **(options or {}))


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
@click.argument("launcher")
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
        raise click.UsageError("worker ids and --all are for terminate")
    if action == "terminate" and ids and all_:
        raise click.UsageError("give worker ids or --all, not both")
    if action == "terminate" and not (ids or all_ or orphans):
        raise click.UsageError("terminate needs worker ids, --all or --orphans")
    if action == "logs" and (len(ids) != 1 or all_ or orphans):
        raise click.UsageError(
            "logs needs exactly one worker id (as listed by 'list --ended', or a scheduler job id such as 1234_1 "
            "after the job left the queue), without --all or --orphans")
    m = _monitor_for(launcher, _parse_options(option_texts, launcher))
    if action == "logs":
        text = m.logs(ids[0], lines=lines)
        if as_json:
            click.echo(_json({"id": ids[0], "lines": lines, "logs": text}))
        else:
            click.echo(text, nl=not text.endswith("\n"))
        return
    workers = m.orphans() if orphans else m.list(controller_id, ended=ended and action == "list")
    if orphans and controller_id:
        workers = [w for w in workers if w.controller_id == controller_id]
    if action == "terminate":
        if ids:
            by_id = {w.id: w for w in workers}
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                raise click.ClickException(
                    f"no {'orphan ' if orphans else ''}worker with id {', '.join(unknown)} on launcher {m.spec.name!r}; "
                    f"listed: {', '.join(by_id) or 'none'} (nothing was terminated)")
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
    if any(r["orphan"] is None for r in rows):
        click.echo(
            f"ORPHAN unknown: no record of the worker's controller in {state_dir()} (a controller run with another "
            "PYCREW_STATE_DIR or by another user); terminate --orphans leaves it, terminate ID or --all stops it",
            err=True,
        )

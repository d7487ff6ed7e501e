"""The ``pycrew`` command: ``launchers``, ``config show``, ``monitor``, ``doctor``, ``worker``, ``demo``.

Run ``pycrew --help`` (or ``python -m pycrew.cli --help``) for the commands. ``pycrew worker
ARGS...`` hands its arguments untouched to :func:`pycrew.worker.main`. Exit codes: 0 on
success, 1 when the command failed (an error, a failed doctor step), 2 for usage errors. Errors go to stderr
as text; with ``--json`` also to stdout, as ``{"error": "...", "exit_code": N}``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

import click

from pycrew.cli_monitor import monitor
from pycrew.cli_support import _errors, _json, _parse_options, _show, _table
from pycrew.config import (
    SEQUENTIAL,
    SEQUENTIAL_KEYS,
    ConfigError,
    Profile,
    check_name,
    config_files,
    load_profile,
    profile_names,
    user_config_path,
)
from pycrew.config_check import defaults_problem, ignored_variables, launcher_view, merged_defaults
from pycrew.controller_options import ControllerOptions
from pycrew.errors import PycrewError
from pycrew.plugin_checks import UNKNOWN_PLUGIN
from pycrew.plugins import get_registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pycrew", prog_name="pycrew")
def cli() -> None:
    """Launch workers on any compute platform and push tasks to them."""


# -- launchers ----------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_errors
def launchers(ctx: click.Context, as_json: bool) -> None:
    """List installed launchers with distribution and version."""
    plugins_log = logging.getLogger("pycrew.plugins")
    quiet, plugins_log.disabled = plugins_log.disabled, True  # what it would log is printed below (it came twice)
    try:
        registry = get_registry()
    finally:
        plugins_log.disabled = quiet
    problems = registry.filter_problems()  # PYCREW_PLUGINS / PYCREW_BLOCK_PLUGINS
    rows: list[dict[str, Any]] = []
    for name in registry.installed_launchers():
        try:
            spec = registry.launcher(name)
            rows.append({"name": name, "distribution": spec.distribution, "version": spec.version,
                         "summary": spec.summary, "remote": spec.remote, "error": None})
        except PycrewError as exc:  # the distribution still comes from its entry point; the error on one line
            dist = next((ep.dist for ep in registry.launcher_entry_points().get(name, []) if ep.dist), None)
            rows.append({"name": name, "distribution": dist.name if dist else None, "version": dist.version if dist else None,
                         "summary": "", "remote": None, "error": " ".join(str(exc).split())})
    if not rows and problems:
        raise click.ClickException("no launcher loaded: " + "; ".join(problems))
    for problem in problems:
        click.echo(f"{'warning' if UNKNOWN_PLUGIN in problem else 'note'}: {problem}", err=True)
    for broken in registry.broken:  # observer plugins left out (see PluginRegistry.broken)
        click.echo(f"warning: {broken}", err=True)
    if as_json:
        click.echo(_json(rows))
    elif not rows:
        click.echo('no launchers installed; install one, e.g. pip install "pycrew[local]"')
    else:
        click.echo(_table(
            ["NAME", "DISTRIBUTION", "VERSION", "SUMMARY"],
            [[r["name"], r["distribution"] or "-", r["version"] or "-", f"error: {r['error']}" if r["error"] else r["summary"]]
             for r in rows],
        ))
    if any(r["error"] for r in rows) or registry.broken:
        ctx.exit(1)


# -- config -------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Inspect the configuration.

    Profiles come from pycrew.toml (or [tool.pycrew] in pyproject.toml) found from the
    working directory upwards, the user file ($PYCREW_CONFIG, else
    $XDG_CONFIG_HOME/pycrew/config.toml) and PYCREW_<PROFILE>_<KEY> variables.
    """


def _all_values(launcher: str, options: dict[str, Any], sources: dict[str, str]) -> list[tuple[str, Any, str]]:
    """Every option of a profile: the configured ones and, with their defaults, the others."""
    out = [(k, v, sources.get(k, "")) for k, v in sorted(options.items())]
    if launcher == SEQUENTIAL:
        fields = [f for f in dataclasses.fields(ControllerOptions) if f.name in SEQUENTIAL_KEYS]
    else:
        fields = [*dataclasses.fields(ControllerOptions),
                  *(f for f in dataclasses.fields(get_registry().launcher(launcher).options_type) if f.init)]
    for f in fields:
        if f.name in options or f.name == "backup":
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append((f.name, default, "default"))
    return out


def _entry(p: Profile, defaults: bool) -> dict[str, Any]:
    """A resolved profile (or launcher view) as ``config show`` prints it."""
    values = _all_values(p.launcher, p.options, p.sources) if defaults else sorted(
        (k, v, p.sources.get(k, "")) for k, v in p.options.items())
    return {"launcher": p.launcher, "launcher_source": p.sources.get("launcher", ""),
            "options": {k: v for k, v, _ in values}, "sources": {k: s for k, _, s in values}, "ignored": p.ignored}


def _rows(options: dict[str, Any], sources: dict[str, str], first: list[list[str]] | None = None) -> None:
    rows = [*(first or []), *([k, _show(v), sources[k]] for k, v in options.items())]
    click.echo("\n".join("  " + line for line in _table(["KEY", "VALUE", "SOURCE"], rows).splitlines()))


@config.command("show")
@click.argument("profile", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--defaults", is_flag=True, help="Also list the options left at their defaults.")
@click.pass_context
@_errors
def config_show(ctx: click.Context, profile: str | None, as_json: bool, defaults: bool) -> None:
    """Show resolved profiles, the [defaults] tables, and where each value came from.

    PROFILE may also be a launcher's name that no file makes a profile of: then it shows what
    pycrew.controller("<launcher>") gets from the [defaults] tables. Environment variables
    PYCREW_<PROFILE>_<KEY> that override nothing are listed with the reason.
    """
    files = config_files()
    names = profile_names()
    shown: dict[str, Any] = {}
    launchers: dict[str, Any] = {}
    failed = False
    if profile is not None and profile not in names:
        check_name(profile)  # a launcher's name, else the error (and hints) pycrew.controller() gives
        try:
            launchers[profile] = _entry(launcher_view(profile), defaults)
        except ConfigError as exc:
            launchers[profile], failed = {"error": str(exc)}, True
    for name in [profile] if profile in names else [] if profile is not None else names:
        try:
            p = load_profile(name)
        except ConfigError as exc:
            shown[name] = {"error": str(exc)}
            failed = True
            continue
        assert p is not None
        shown[name] = _entry(p, defaults)
    table: dict[str, Any] = {}
    if profile is None and any(f.defaults for f in files):
        values, sources = merged_defaults(files)
        table = {"options": values, "sources": sources, "error": defaults_problem(files)}
        failed = failed or table["error"] is not None
    ignored = ignored_variables(files) if profile is None else {}
    user = user_config_path()
    if as_json:
        click.echo(_json({"files": [{"path": str(f.path), "scope": f.scope} for f in files], "profiles": shown,
                          "launchers": launchers, "defaults": table or None, "ignored": ignored}))
        ctx.exit(1 if failed else 0)
    found = {f.scope: f for f in files}
    user_text = f"{user}" + ("" if "user" in found else " (not found)") if user else "none (PYCREW_CONFIG is empty)"
    click.echo(f"user file:    {user_text}")
    project = found.get("project")
    click.echo("project file: " + (f"{project.path}" + (" [tool.pycrew]" if project.prefix else "") if project
                                   else "none found from the working directory upwards"))
    if not shown and not launchers:
        click.echo("\nno profiles defined: add [profiles.<name>] to pycrew.toml")
    for kind, entries in (("profile", shown), ("launcher", launchers)):
        for name, entry in entries.items():
            click.echo(f"\n{kind} {name}" + ("" if kind == "profile" else
                       f" (no profile of that name: what pycrew.controller({name!r}) gets)"))
            if "error" in entry:
                click.echo(f"  error: {entry['error']}")
                continue
            _rows(entry["options"], entry["sources"], [["launcher", _show(entry["launcher"]), entry["launcher_source"]]])
            ignored.update(entry["ignored"])
    if table:
        click.echo('\ndefaults (for every profile, and pycrew.controller("<launcher>") without a profile of that name)')
        _rows(table["options"], table["sources"])
        if table["error"]:
            click.echo(f"  error: {table['error']}")
    if ignored:
        click.echo("\nignored environment variables")
        click.echo("\n".join(f"  {var}: {why}" for var, why in sorted(ignored.items())))
    if failed:
        ctx.exit(1)


cli.add_command(monitor)


# -- doctor -------------------------------------------------------------------------


def _seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A number of seconds > 0 and finite, or None (checked before anything is launched)."""
    if value is not None and not 0 < value < math.inf:
        raise click.BadParameter(f"must be a number of seconds > 0, got {value!r}")
    return value


@cli.command()
@click.argument("profile", required=False, default="local")
@click.option("--timeout", type=float, default=None, callback=_seconds,
              help="Seconds to wait for the worker to dial back, and for the task (default: seconds_launch; 60 s).")
@click.option("-o", "--option", "option_texts", multiple=True, metavar="KEY=VALUE",
              help="Override an option, its value read as its type (text, number, true/false, none, JSON for lists and tables); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(ctx: click.Context, profile: str, timeout: float | None, option_texts: tuple[str, ...], as_json: bool) -> None:
    """Check that a worker can be launched and run a task.

    Starts the controller of PROFILE (a profile's or a launcher's name; default: local),
    launches one worker and runs one task. Checks each step (build, listen, launch, connect, task, terminate) and explains what
    failed: the options, the address or port, the launcher's error, why the worker did not
    dial back (address, firewall, TLS, Python or pycrew missing), or the task's error.
    """
    from pycrew.doctor import run_doctor

    options = _parse_options(option_texts, profile)
    report = run_doctor(profile, timeout, options)
    click.echo(_json(report.to_dict()) if as_json else report.text())
    if not report.ok:
        ctx.exit(1)


# -- worker and demo ----------------------------------------------------------------


def _run_worker(args: Sequence[str]) -> int:
    from pycrew.worker import main as worker_main

    return int(worker_main(list(args)))


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def worker(ctx: click.Context, args: tuple[str, ...]) -> None:
    """The worker entry point (started by launchers).

    Every argument goes untouched to python -m pycrew.worker.
    """
    ctx.exit(_run_worker(args))


@cli.command()
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--tasks", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--launcher", default="local", show_default=True)
@_errors
def demo(workers: int, tasks: int, launcher: str) -> None:
    """Estimate pi on workers, with a progress bar."""
    from pycrew.demo import run_demo

    _, report = run_demo(workers=workers, tasks=tasks, launcher=launcher)
    click.echo(report)


@cli.group()
def metrics() -> None:
    """Worker metrics (controller options seconds_metrics / metrics_dir)."""


@metrics.command("plot")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", default="pycrew-metrics.png", show_default=True, help="PNG file to write")
@_errors
def metrics_plot(sources: tuple[str, ...], output: str) -> None:
    """Draw CPU and memory per worker over time from metrics files, worker logs or directories."""
    from pycrew import metrics as worker_metrics

    try:
        path = worker_metrics.plot(list(sources), output)
    except (ImportError, ValueError, OSError) as exc:  # OSError: a file that cannot be read, an output that cannot be written
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


@metrics.command("show")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@_errors
def metrics_show(sources: tuple[str, ...], as_json: bool) -> None:
    """Print the samples in metrics files, worker logs or directories."""
    from dataclasses import asdict

    from pycrew import metrics as worker_metrics

    try:
        rows = worker_metrics.read(list(sources))
    except OSError as exc:  # a file that cannot be read
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(_json([asdict(r) for r in rows]))
        return
    click.echo(
        _table(
            ["time", "worker", "instance", "task", "cpu %", "rss MiB"],
            [
                [f"{r.time:.1f}", str(r.worker), r.instance[:12], r.task or "-", f"{r.cpu_percent:.0f}", f"{r.rss_bytes / 2**20:.1f}"]
                for r in rows
            ],
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pycrew`` command; returns the exit code.

    ``pycrew worker ...`` bypasses click's parsing, so that every argument (``--``,
    ``--help``) reaches :func:`pycrew.worker.main` untouched.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["worker"]:
        code = _run_worker(args[1:])
        if argv is None:  # this process is the worker: see pycrew.worker.exit_process
            from pycrew.worker import exit_process

            exit_process(code)
        return code
    try:
        rv = cli.main(args=args, prog_name="pycrew", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return _json_error(args, exc.format_message(), exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        return _json_error(args, "aborted", 1)
    return rv if isinstance(rv, int) else 0


def _json_error(args: Sequence[str], message: str, exit_code: int) -> int:
    """With ``--json`` among the arguments (before any ``--``), also write the error as
    ``{"error": ..., "exit_code": ...}`` on stdout, so that a script reading stdout always gets JSON; returns the code."""
    if "--json" in (args[: list(args).index("--")] if "--" in args else args):
        click.echo(_json({"error": message, "exit_code": exit_code}))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

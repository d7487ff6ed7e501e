"""The job script every scheduler launcher submits, and the way the secret reaches the worker.

One script serves one array, and every element runs the same command:

- an array of core's batch (the calls share a batch key) runs
  ``python <call.array_args(index variable, base)>``: each element computes its instance id
  from its array index and derives its own token from the batch key;
- a single worker launched without a batch key runs ``python <call.args>``.

The script holds no secret. The secret (the batch key, or the one worker's token) travels in
the submitting command's environment as ``PYCREW_TOKEN``; the scheduler stores a job's
environment with it and gives it to every element. The script sets the secret aside while
``script_lines`` run (so that nothing they start inherits it) and exports it again just
before ``exec``-ing the worker, which removes it from its environment when it starts.

Workers see the controller's files as a local worker does (the scheduler's nodes share a
file system with the machine that submits): the script enters the controller's working
directory (or the ``cwd`` option's) before ``script_lines`` run, and a worker of the
controller's interpreter gets the controller's ``sys.path`` (:func:`worker_invocation`).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from pycrew.plugin_api import WorkerCall
from pycrew.scheduler import jobtag
from pycrew.wire.protocol import JOB_STARTED_ENV, SYS_PATH_ENV, TOKEN_ENV
from pycrew.worker.import_path import sys_path_environment

#: Where the script keeps the secret while ``script_lines`` run (a shell variable, not exported).
HIDDEN_TOKEN = "__pycrew_token"


def worker_command(calls: Sequence[WorkerCall], index_variable: str, first_index: int = 1) -> tuple[tuple[str, ...], dict[str, str], str]:
    """``(args, env, secret)`` of the one command every element of an array of ``calls`` runs.

    Args:
        calls: one array run of core's batch (see :func:`pycrew.scheduler.jobtag.is_array_run`),
            element ``first_index`` running ``calls[0]``; or a single call.
        index_variable: the variable holding an element's index (``SLURM_ARRAY_TASK_ID``).
        first_index: the index of the array's first element.

    Returns:
        the worker's arguments after the interpreter, its non-secret environment, and the
        secret that must reach it as ``PYCREW_TOKEN`` (the batch key, or the call's token).

    Raises:
        ValueError: several calls that are not one array run.
    """
    if jobtag.is_array_run(calls):
        first = calls[0]
        # Element first_index runs batch element first.batch_index: instance = prefix + (index - base).
        args = first.array_args(index_variable, first_index - first.batch_index)
        env = first.array_environment()
        return args, {k: v for k, v in env.items() if k != TOKEN_ENV}, env[TOKEN_ENV]
    if len(calls) != 1:
        raise ValueError("calls without a common batch key go out one per array")
    return tuple(calls[0].args), dict(calls[0].env), calls[0].token


def shares_sys_path(python: str | None, inherit: bool) -> bool:
    """Whether workers run by ``python`` (the ``python`` option; ``None``: the controller's
    interpreter) get the controller's ``sys.path``: ``inherit`` and the same interpreter."""
    if not inherit or not sys.executable:
        return False
    return python is None or os.path.abspath(python) == os.path.abspath(sys.executable)


def worker_invocation(
    python: str | None, default_python: str, args: Sequence[str], env: Mapping[str, str], inherit_sys_path: bool
) -> tuple[list[str], dict[str, str]]:
    """The worker's command (interpreter first) and environment, with the controller's
    ``sys.path`` and ``python -P`` when :func:`shares_sys_path` (see
    :mod:`pycrew.worker.import_path`).

    Args:
        python: the ``python`` option (``None``: ``default_python``, the controller's).
        default_python: the interpreter of the worker calls (``WorkerCall.python``).
        args: the worker's arguments after the interpreter.
        env: its non-secret environment.
        inherit_sys_path: the ``inherit_sys_path`` option.
    """
    env = dict(env)
    if shares_sys_path(python, inherit_sys_path):
        env.update(sys_path_environment())
        # -P: no working directory first on the path (see pycrew.worker.import_path)
        return [python or default_python, "-P", *args], env
    return [python or default_python, *args], env


def working_directory(cwd: str | None) -> tuple[str | None, bool]:
    """``(directory, required)`` for :func:`render` from the ``cwd`` option: the option made
    absolute (required), else the controller's working directory (not required; ``None`` if
    it was removed)."""
    if cwd is not None:
        return os.path.abspath(os.path.expanduser(cwd)), True
    try:
        return os.getcwd(), False
    except OSError:  # the controller's working directory was removed
        return None, False


def render(
    command: Sequence[str],
    env: Mapping[str, str],
    directives: Sequence[str],
    script_lines: Sequence[str] = (),
    title: str = "pycrew workers",
    cwd: str | None = None,
    cwd_required: bool = False,
) -> str:
    """A bash job script whose every element runs ``command`` with ``env`` exported.

    Args:
        command: the worker command, interpreter first.
        env: non-secret environment variables (the TLS CA, ...).
        directives: the scheduler's directive lines (``#SBATCH ...``), placed right after
            the shebang so that the scheduler reads them.
        script_lines: shell lines run before the worker, without the secret in the environment.
        title: a comment line saying what the script is.
        cwd: the directory the worker runs in, entered before ``script_lines`` (``None``:
            where the scheduler starts the job).
        cwd_required: an element that cannot enter ``cwd`` exits with status 1 (else it
            warns on stderr and stays where it is).

    Raises:
        ValueError: an environment variable name is not a shell identifier.
    """
    bad = [k for k in env if not k.isidentifier() or not k.isascii()]
    if bad:
        raise ValueError(f"worker environment variable names must be shell identifiers, got {bad!r}")
    lines = ["#!/bin/bash", *directives]
    lines += [
        f"# {title}",
        f'export {JOB_STARTED_ENV}="$(date +%s)"  # the worker counts its seconds_wall from here',
        f"# The secret comes from the job's environment ({TOKEN_ENV}), never from this script.",
        f'{HIDDEN_TOKEN}="${{{TOKEN_ENV}:-}}"',
        f"unset {TOKEN_ENV}",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    if cwd is not None:
        where = shlex.quote(cwd)
        if cwd_required:
            say = shlex.quote(f"pycrew: this worker cannot enter its working directory {cwd} (the cwd option) on this host")
            lines.append(f"cd -- {where} || {{ echo {say} >&2; exit 1; }}")
        else:
            say = shlex.quote(f"pycrew: the controller's working directory {cwd} is not on this host; the worker runs in")
            lines.append(f'cd -- {where} 2>/dev/null || echo {say} "$(pwd)" >&2')
    lines += list(script_lines)
    lines += [
        f'export {TOKEN_ENV}="${HIDDEN_TOKEN}"',
        f"unset {HIDDEN_TOKEN}",
        f"exec {shlex.join(command)}",
        "",
    ]
    return "\n".join(lines)


def submission_environment(secret: str) -> dict[str, str]:
    """This process's environment without any stale token or import path, plus ``PYCREW_TOKEN=secret``.

    (A ``PYCREW_SYS_PATH`` this process inherited is not for its workers: the script sets
    the one they get, see :func:`worker_invocation`.)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(TOKEN_ENV) and k != SYS_PATH_ENV}
    env[TOKEN_ENV] = secret
    return env

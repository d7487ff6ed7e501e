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
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence

from pycrew.plugin_api import WorkerCall
from pycrew.scheduler import jobtag
from pycrew.wire.protocol import TOKEN_ENV

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


def render(
    command: Sequence[str],
    env: Mapping[str, str],
    directives: Sequence[str],
    script_lines: Sequence[str] = (),
    title: str = "pycrew workers",
) -> str:
    """A bash job script whose every element runs ``command`` with ``env`` exported.

    Args:
        command: the worker command, interpreter first.
        env: non-secret environment variables (the TLS CA, ...).
        directives: the scheduler's directive lines (``#SBATCH ...``), placed right after
            the shebang so that the scheduler reads them.
        script_lines: shell lines run before the worker, without the secret in the environment.
        title: a comment line saying what the script is.

    Raises:
        ValueError: an environment variable name is not a shell identifier.
    """
    bad = [k for k in env if not k.isidentifier() or not k.isascii()]
    if bad:
        raise ValueError(f"worker environment variable names must be shell identifiers, got {bad!r}")
    lines = ["#!/bin/bash", *directives]
    lines += [
        f"# {title}",
        f"# The secret comes from the job's environment ({TOKEN_ENV}), never from this script.",
        f'{HIDDEN_TOKEN}="${{{TOKEN_ENV}:-}}"',
        f"unset {TOKEN_ENV}",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines += list(script_lines)
    lines += [
        f'export {TOKEN_ENV}="${HIDDEN_TOKEN}"',
        f"unset {HIDDEN_TOKEN}",
        f"exec {shlex.join(command)}",
        "",
    ]
    return "\n".join(lines)


def submission_environment(secret: str) -> dict[str, str]:
    """This process's environment without any stale token, plus ``PYCREW_TOKEN=secret``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(TOKEN_ENV)}
    env[TOKEN_ENV] = secret
    return env

"""The job script every scheduler launcher submits, and the token hand-over it performs.

One script serves one array: element ``i`` runs the ``i``-th worker command. The script holds
no secret. The submitting command's environment holds ``PYCREW_TOKEN_<i>`` per element (the
scheduler stores a job's environment with it and gives it to every element); the script's
first commands copy the element's own variable into ``PYCREW_TOKEN`` and unset every
``PYCREW_TOKEN_*``, so a worker sees only its own token.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from pycrew import TOKEN_ENV, WorkerCall

#: Prefix of the per-element token variables: element ``i`` finds its token in ``PYCREW_TOKEN_<i>``.
TOKEN_VARIABLE_PREFIX = f"{TOKEN_ENV}_"


def render(
    calls: Sequence[WorkerCall],
    directives: Sequence[str],
    index_variable: str,
    first_index: int = 1,
    python: str | None = None,
    script_lines: Sequence[str] = (),
    title: str = "pycrew workers",
) -> str:
    """A bash job script whose element ``first_index + k`` runs ``calls[k]``.

    Args:
        calls: the workers, one per array element.
        directives: the scheduler's directive lines (``#SBATCH ...``), placed right after
            the shebang so that the scheduler reads them.
        index_variable: the variable holding the element's index (``SLURM_ARRAY_TASK_ID``).
        first_index: the index of the first element.
        python: the interpreter on the nodes (default: each call's own).
        script_lines: shell lines run after the token hand-over, before the worker.
        title: a comment line saying what the script is.

    Raises:
        ValueError: a call's environment has a name that is not a shell identifier.
    """
    for call in calls:
        bad = [k for k in call.env if not k.isidentifier() or not k.isascii()]
        if bad:
            raise ValueError(f"worker environment variable names must be shell identifiers, got {bad!r}")
    shared = shared_env(calls)
    lines = ["#!/bin/bash", *directives]
    lines += [
        f"# {title}: controller {calls[0].controller!r}, {len(calls)} element(s).",
        "# Each element's token comes from the environment, never from this script.",
        f'__pycrew_index="${{{index_variable}:-}}"',
        f'__pycrew_var="{TOKEN_VARIABLE_PREFIX}${{__pycrew_index}}"',
        f'export {TOKEN_ENV}="${{!__pycrew_var:-}}"',
        "for __pycrew_var in $(compgen -e); do",
        f'  case "$__pycrew_var" in {TOKEN_VARIABLE_PREFIX}*) unset "$__pycrew_var" ;; esac',
        "done",
        "unset __pycrew_var",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(shared.items())]
    lines += list(script_lines)
    lines.append('case "$__pycrew_index" in')
    for i, call in enumerate(calls, start=first_index):
        own = [f"export {k}={shlex.quote(v)}; " for k, v in sorted(call.env.items()) if k not in shared]
        lines.append(f"  {i}) {''.join(own)}exec {call.command_line(python=python)} ;;")
    lines += [
        '  *) echo "pycrew: no worker for array index \'$__pycrew_index\' in this job" >&2; exit 1 ;;',
        "esac",
        "",
    ]
    return "\n".join(lines)


def submission_environment(calls: Sequence[WorkerCall], first_index: int = 1) -> dict[str, str]:
    """This process's environment without any stale token, plus ``PYCREW_TOKEN_<i>`` per element."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV and not k.startswith(TOKEN_VARIABLE_PREFIX)}
    for i, call in enumerate(calls, start=first_index):
        env[f"{TOKEN_VARIABLE_PREFIX}{i}"] = call.token
    return env


def token_variables(count: int, first_index: int = 1) -> list[str]:
    """The names (never values) of the per-element token variables."""
    return [f"{TOKEN_VARIABLE_PREFIX}{i}" for i in range(first_index, first_index + count)]


def shared_env(calls: Sequence[WorkerCall]) -> dict[str, str]:
    """Environment entries with the same value in every call (exported once in the script)."""
    if not calls:
        return {}
    first = dict(calls[0].env)
    return {k: v for k, v in first.items() if all(c.env.get(k) == v for c in calls[1:])}

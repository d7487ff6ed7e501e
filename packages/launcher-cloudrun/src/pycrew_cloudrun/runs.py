"""How a batch of worker calls becomes Cloud Run executions: :func:`plan_runs`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pycrew import TOKEN_ENV, WorkerCall
from pycrew_cloudrun.tag import ExecutionTag, array_tag, single_tag

#: The variable holding a task's index, and Cloud Run's largest task count per execution.
INDEX_ENV = "CLOUD_RUN_TASK_INDEX"
TASK_COUNT_MAX = 10_000


@dataclass
class Run:
    """One execution to start: its workers (task k runs ``calls[k]``), arguments, env and secret."""

    calls: list[WorkerCall]
    args: tuple[str, ...]
    env: dict[str, str]
    secret: str = field(repr=False)
    tag: ExecutionTag


def plan_runs(calls: Sequence[WorkerCall]) -> list[Run]:
    """The executions that start ``calls``: one per array batch (cut at :data:`TASK_COUNT_MAX`), else one per call.

    An array batch is calls sharing one batch key and prefix with batch indexes 0..n-1: its
    tasks share arguments and environment, and each derives its instance and token.
    """
    first = calls[0]
    indexes = sorted(c.batch_index for c in calls)
    if first.batch_key and indexes == list(range(len(calls))) and all(
        c.batch_key == first.batch_key and c.instance_prefix == first.instance_prefix for c in calls
    ):
        ordered = sorted(calls, key=lambda c: c.batch_index)
        env = first.array_environment()
        env.pop(TOKEN_ENV)
        runs = []
        for start in range(0, len(ordered), TASK_COUNT_MAX):
            chunk = ordered[start : start + TASK_COUNT_MAX]
            runs.append(
                Run(
                    calls=chunk,
                    args=first.array_args(INDEX_ENV, -start),  # task k is batch element start + k
                    env=dict(env),
                    secret=first.batch_key,
                    tag=array_tag(first.controller_id, first.controller, first.instance_prefix, [c.worker for c in chunk], start),
                )
            )
        return runs
    return [
        Run([c], c.args, dict(c.env), c.token, single_tag(c.controller_id, c.controller, c.instance, c.worker))
        for c in calls
    ]



"""How one batch of worker calls becomes AWS Batch submissions, names and tags.

- A batch of ``n >= 2`` calls sharing a batch key is one *unit*: one secret (the batch
  key), one job definition revision, and array jobs of at most ``array_size_max`` children
  (AWS allows 2..10,000). Every child runs the same command (``call.array_args``): it reads
  its index from ``AWS_BATCH_JOB_ARRAY_INDEX``, adds the array's offset in the batch
  (``--index-base`` is minus the offset), and derives its instance id and token from the
  batch key. A remainder of one call is a plain job whose index comes from
  ``PYCREW_BATCH_INDEX``, set in its (non-secret) environment.
- A single call (or calls without a common batch key) is a unit of its own: a plain job
  with ``call.args``, and the call's own token as the secret.

Jobs are tagged so that the monitor can tell pycrew's jobs, controller and workers apart:
``pycrew:launcher``, ``pycrew:controller-id``, ``pycrew:controller``, ``pycrew:batch``, and
``pycrew:instance`` + ``pycrew:worker`` (plain jobs) or ``pycrew:instance-prefix`` +
``pycrew:index-offset`` + ``pycrew:workers`` (arrays: the slots of the children in index
order, as ranges such as ``1-4,7``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pycrew import TOKEN_ENV, WorkerCall

#: The index of an array child, set by AWS Batch.
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
#: The index of a plain job that runs the remainder of a batch (set by the launcher).
BATCH_INDEX_ENV = "PYCREW_BATCH_INDEX"

LAUNCHER_TAG = "pycrew:launcher"
CONTROLLER_ID_TAG = "pycrew:controller-id"
CONTROLLER_TAG = "pycrew:controller"
BATCH_TAG = "pycrew:batch"
INSTANCE_TAG = "pycrew:instance"
WORKER_TAG = "pycrew:worker"
PREFIX_TAG = "pycrew:instance-prefix"
OFFSET_TAG = "pycrew:index-offset"
WORKERS_TAG = "pycrew:workers"
QUEUE_TAG = "pycrew:job-queue"
CREATED_TAG = "pycrew:created"

_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_TAG_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass(frozen=True)
class Submission:
    """One SubmitJob request's worth of workers.

    Attributes:
        calls: the workers, in array index order (one call for a plain job).
        args: the worker arguments (after the interpreter) every element runs.
        env: the non-secret environment of every element.
        array: whether this is an array job (else a plain job).
        offset: the batch index of element 0 (arrays: instance id = prefix + index + offset).
    """

    calls: tuple[WorkerCall, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    array: bool
    offset: int = 0

    @property
    def size(self) -> int:
        """How many workers (array children) this submission starts."""
        return len(self.calls)


@dataclass(frozen=True)
class Unit:
    """Workers that share one secret (and one job definition revision).

    Attributes:
        key: a short id of the unit, unique per controller (names of the job, secret, tags).
        secret: the value workers need in ``PYCREW_TOKEN`` (batch key or token); never logged.
        submissions: the SubmitJob requests, in order.
    """

    key: str
    secret: str
    submissions: tuple[Submission, ...]

    def __repr__(self) -> str:
        return f"Unit(key={self.key!r}, submissions={[s.size for s in self.submissions]})"


def is_array_batch(calls: Sequence[WorkerCall]) -> bool:
    """Whether ``calls`` (n >= 2) share a batch key and prefix, with consecutive batch indices."""
    if len(calls) < 2 or not calls[0].batch_key:
        return False
    first = calls[0]
    return all(
        c.batch_key == first.batch_key
        and c.instance_prefix == first.instance_prefix
        and c.batch_index == first.batch_index + k
        for k, c in enumerate(calls)
    )


def plan(calls: Sequence[WorkerCall], array_size_max: int) -> list[Unit]:
    """Cut a batch into units and submissions (see the module docstring).

    Raises:
        ValueError: ``array_size_max`` < 2, or a call's environment carries the token.
    """
    if array_size_max < 2:
        raise ValueError(f"array_size_max must be >= 2, got {array_size_max}")
    for call in calls:
        if TOKEN_ENV in call.env:
            raise ValueError(f"WorkerCall.env must not carry {TOKEN_ENV} (it is not secret)")
    if not is_array_batch(calls):
        return [
            Unit(unit_key(c.instance), c.token, (Submission((c,), c.args, dict(c.env), array=False),))
            for c in calls
        ]
    first = calls[0]
    env = {k: v for k, v in first.array_environment().items() if k != TOKEN_ENV}
    submissions: list[Submission] = []
    for start in range(0, len(calls), array_size_max):
        chunk = tuple(calls[start : start + array_size_max])
        offset = chunk[0].batch_index
        if len(chunk) == 1:
            args = first.array_args(BATCH_INDEX_ENV, 0)
            submissions.append(Submission(chunk, args, {**env, BATCH_INDEX_ENV: str(offset)}, array=False, offset=offset))
        else:
            args = first.array_args(ARRAY_INDEX_ENV, -offset)
            submissions.append(Submission(chunk, args, dict(env), array=True, offset=offset))
    return [Unit(unit_key(first.instance_prefix.rstrip("-") or first.instance), first.batch_key, tuple(submissions))]


def unit_key(base: str) -> str:
    """A unit's key: ``base`` (an instance id or prefix) made safe, plus a random suffix, since
    the same instance may be launched twice (a relaunch; an impostor test) and each launch
    needs its own secret name."""
    return f"{safe_job_name(base, 48)}-{secrets.token_hex(4)}"


def safe_job_name(text: str, limit: int = 128) -> str:
    """``text`` as an AWS Batch name: letters, digits, ``-`` and ``_``, alphanumeric first."""
    safe = _JOB_NAME_UNSAFE.sub("-", text).strip("-_")
    return safe[:limit] or "x"


def job_name(controller: str, unit: Unit, index: int) -> str:
    """``pycrew-<controller>-<unit>[-<n>]``: unique per submission, at most 128 characters."""
    ctrl = _JOB_NAME_UNSAFE.sub("-", controller).strip("-_")[:40]
    parts = ["pycrew", *([ctrl] if ctrl else []), unit.key, *([str(index)] if len(unit.submissions) > 1 else [])]
    return "-".join(parts)[:128]


def tag_value(text: str) -> str:
    """``text`` with characters AWS tag values do not allow replaced by ``_``, cut to 256."""
    return _TAG_UNSAFE.sub("_", text)[:256]


def encode_slots(slots: Sequence[int]) -> str:
    """Slots in order as ranges: ``[1, 2, 3, 5]`` -> ``"1-3,5"``."""
    parts: list[str] = []
    i = 0
    while i < len(slots):
        j = i
        while j + 1 < len(slots) and slots[j + 1] == slots[j] + 1:
            j += 1
        parts.append(str(slots[i]) if i == j else f"{slots[i]}-{slots[j]}")
        i = j + 1
    return ",".join(parts)


def decode_slots(text: str) -> list[int]:
    """The inverse of :func:`encode_slots`; ``[]`` for text it cannot read."""
    out: list[int] = []
    try:
        for part in filter(None, text.split(",")):
            low, _, high = part.partition("-")
            out += range(int(low), int(high or low) + 1)
    except ValueError:
        return []
    return out


def submission_tags(launcher: str, controller_id: str, controller: str, unit: Unit, sub: Submission) -> dict[str, str]:
    """pycrew's tags of one submission (see the module docstring)."""
    tags = {
        LAUNCHER_TAG: launcher,
        CONTROLLER_ID_TAG: tag_value(controller_id),
        CONTROLLER_TAG: tag_value(controller),
        BATCH_TAG: unit.key,
    }
    if sub.array:
        first = sub.calls[0]
        tags[PREFIX_TAG] = tag_value(first.instance_prefix)
        tags[OFFSET_TAG] = str(sub.offset)
        slots = encode_slots([c.worker for c in sub.calls])
        if len(slots) <= 256:
            tags[WORKERS_TAG] = slots
    else:
        tags[INSTANCE_TAG] = tag_value(sub.calls[0].instance)
        tags[WORKER_TAG] = str(sub.calls[0].worker)
    return tags


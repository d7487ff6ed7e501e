"""The tag that marks a job (array) as pycrew's and says whose workers it holds.

A tag is one short line of text that a scheduler stores with the job (SLURM's
``--comment``, SGE's ``-ac`` context, PBS's ``-v``-free ``Account_Name`` ...)::

    pycrew:1;c=<controller_id>;n=<controller name>;w=<slot>.<instance>,<slot>.<instance>,...

The ``w`` list has one entry per array element, in index order (element 1 first). Values
are percent-encoded so that no separator can appear inside them. Tags are limited in length
(SLURM 22.05 rejects comments longer than about 1 KB), so one batch of workers may need
several arrays: :func:`split_calls` cuts a batch so that every array's tag fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from pycrew import WorkerCall

PREFIX = "pycrew:1;"
#: The controller's name is informative only: long names are cut to this many characters.
NAME_MAX = 40


@dataclass(frozen=True)
class JobTag:
    """What a job's tag says.

    Attributes:
        controller_id: the id of the controller that launched the array.
        controller: that controller's name.
        workers: ``(slot, instance)`` per array element, element 1 first.
    """

    controller_id: str
    controller: str
    workers: tuple[tuple[int, str], ...]

    def element(self, index: int) -> tuple[int, str] | None:
        """``(slot, instance)`` of array element ``index`` (1-based), if the tag knows it."""
        if 1 <= index <= len(self.workers):
            return self.workers[index - 1]
        return None


def _q(text: str) -> str:
    return quote(text, safe="-_.~")


def encode(controller_id: str, controller: str, calls: Sequence[WorkerCall]) -> str:
    """The tag of an array whose elements run ``calls``, in order (the name cut to :data:`NAME_MAX`)."""
    workers = ",".join(f"{c.worker}.{_q(c.instance)}" for c in calls)
    return f"{PREFIX}c={_q(controller_id)};n={_q(controller[:NAME_MAX])};w={workers}"


def decode(text: str) -> JobTag | None:
    """Parse a tag; ``None`` if ``text`` is not a pycrew tag (someone else's job)."""
    if not text.startswith(PREFIX):
        return None
    fields: dict[str, str] = {}
    for part in text[len(PREFIX) :].split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            return None
        fields[key] = value
    if "c" not in fields or "w" not in fields:
        return None
    workers: list[tuple[int, str]] = []
    for entry in filter(None, fields["w"].split(",")):
        slot, sep, instance = entry.partition(".")
        if not sep or not slot.isdigit():
            return None
        workers.append((int(slot), unquote(instance)))
    return JobTag(unquote(fields["c"]), unquote(fields.get("n", "")), tuple(workers))


def split_calls(calls: Sequence[WorkerCall], array_max: int, tag_max: int) -> list[list[WorkerCall]]:
    """Cut a batch into arrays of at most ``array_max`` calls whose tags fit in ``tag_max`` characters.

    All calls of a batch come from one controller (same ``controller_id`` and name).

    Raises:
        ValueError: if even a one-element array's tag is longer than ``tag_max``.
    """
    if not calls:
        return []
    header = len(encode(calls[0].controller_id, calls[0].controller, []))
    chunks: list[list[WorkerCall]] = []
    current: list[WorkerCall] = []
    length = header
    for call in calls:
        entry = len(f"{call.worker}.{_q(call.instance)}")
        if header + entry > tag_max:
            raise ValueError(
                f"the job tag of one worker would be {header + entry} characters, more than {tag_max}: "
                f"{encode(call.controller_id, call.controller, [call])!r}"
            )
        added = entry + (1 if current else 0)
        if current and (len(current) >= array_max or length + added > tag_max):
            chunks.append(current)
            current, length, added = [], header, entry
        current.append(call)
        length += added
    chunks.append(current)
    return chunks

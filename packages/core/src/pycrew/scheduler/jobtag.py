"""The tag that marks a job (array) as pycrew's and says whose workers it holds.

A tag is one short line of text that a scheduler stores with the job (SLURM's
``--comment``, SGE's ``-ac`` context, ...). An array of one scaling round's batch
(core's batch key: every element derives its instance id from its index) reads::

    pycrew:1;c=<controller_id>;n=<controller name>;p=<instance prefix>;o=<offset>;w=<slots>

Element ``i`` (1-based) is instance ``<prefix><offset + i - 1>`` of slot ``i`` of
``<slots>``, a comma-separated list of slots and slot ranges (``1-16,19``). A job of one
worker launched without a batch key (``WorkerCall.batch_key == ""``, e.g. by a test
calling the hook directly) names its instance::

    pycrew:1;c=<controller_id>;n=<controller name>;w=<slot>.<instance>

Values are percent-encoded so that no separator can appear inside them. Tags are limited
in length (SLURM 22.05 rejects comments longer than about 1 KB), so one batch may need
several arrays: :func:`split_calls` cuts a batch so that every array's tag fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from pycrew.plugin_api import WorkerCall

PREFIX = "pycrew:1;"
#: The controller's name is informative only: long names are cut to this many characters.
NAME_MAX = 40
#: A tag never describes more elements than this (a foreign comment ``w=1-999999999`` is not ours).
ELEMENTS_MAX = 100_000


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


def is_array_run(calls: Sequence[WorkerCall]) -> bool:
    """Whether ``calls`` are consecutive elements of one batch with a batch key.

    Such calls go out as one array running ``calls[0].array_args(...)``: every element
    derives its instance id (``instance_prefix + batch_index``) and its token (from the
    batch key) from its array index.
    """
    if not calls or not calls[0].batch_key:
        return False
    first = calls[0]
    return all(
        c.batch_key == first.batch_key
        and c.instance_prefix == first.instance_prefix
        and c.batch_index == first.batch_index + k
        and c.instance == f"{c.instance_prefix}{c.batch_index}"
        for k, c in enumerate(calls)
    )


def _range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


class _SlotsText:
    """The length of ``1-4,7,9-10`` as slots are appended, without re-encoding the list."""

    def __init__(self) -> None:
        self.done = 0  # length of the closed entries, commas between them included
        self.run: tuple[int, int] | None = None

    def length(self) -> int:
        if self.run is None:
            return self.done
        return self.done + (1 if self.done else 0) + len(_range(*self.run))

    def add(self, slot: int) -> None:
        if self.run is not None and slot == self.run[1] + 1:
            self.run = (self.run[0], slot)
            return
        self.done = self.length()
        self.run = (slot, slot)

    def copy(self) -> _SlotsText:
        other = _SlotsText()
        other.done, other.run = self.done, self.run
        return other


def slots_text(slots: Sequence[int]) -> str:
    """Slots as a compact list of slots and ranges: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    parts: list[str] = []
    start = end = None
    for slot in slots:
        if end is not None and start is not None and slot == end + 1:
            end = slot
            continue
        if start is not None and end is not None:
            parts.append(_range(start, end))
        start = end = slot
    if start is not None and end is not None:
        parts.append(_range(start, end))
    return ",".join(parts)


def _header(calls: Sequence[WorkerCall]) -> str:
    first = calls[0]
    head = f"{PREFIX}c={_q(first.controller_id)};n={_q(first.controller[:NAME_MAX])};"
    if is_array_run(calls):
        head += f"p={_q(first.instance_prefix)};o={first.batch_index};"
    return head + "w="


def encode(calls: Sequence[WorkerCall]) -> str:
    """The tag of an array whose elements run ``calls``, in order (the name cut to :data:`NAME_MAX`).

    ``calls`` are one array run (see :func:`is_array_run`) or a single call.

    Raises:
        ValueError: ``calls`` is empty, or several calls that are not one array run.
    """
    if not calls:
        raise ValueError("a job tag needs at least one worker call")
    if is_array_run(calls):
        return _header(calls) + slots_text([c.worker for c in calls])
    if len(calls) != 1:
        raise ValueError("calls without a common batch key go out one per array: tag them one by one")
    return _header(calls) + f"{calls[0].worker}.{_q(calls[0].instance)}"


def _slots(text: str) -> list[int] | None:
    slots: list[int] = []
    for entry in filter(None, text.split(",")):
        start, sep, end = entry.partition("-")
        if not start.isdigit() or (sep and not end.isdigit()):
            return None
        first, last = int(start), int(end) if sep else int(start)
        if last < first or len(slots) + last - first >= ELEMENTS_MAX:
            return None
        slots.extend(range(first, last + 1))
    return slots


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
    if "p" in fields:
        offset, slots = fields.get("o", ""), _slots(fields["w"])
        if not offset.isdigit() or slots is None:
            return None
        prefix = unquote(fields["p"])
        workers = [(slot, f"{prefix}{int(offset) + k}") for k, slot in enumerate(slots)]
    else:
        for entry in filter(None, fields["w"].split(",")):
            slot, sep, instance = entry.partition(".")
            if not sep or not slot.isdigit():
                return None
            workers.append((int(slot), unquote(instance)))
    return JobTag(unquote(fields["c"]), unquote(fields.get("n", "")), tuple(workers))


def runs(calls: Sequence[WorkerCall]) -> list[list[WorkerCall]]:
    """``calls`` cut into maximal array runs (see :func:`is_array_run`); other calls alone."""
    out: list[list[WorkerCall]] = []
    for call in calls:
        if out and is_array_run([*out[-1][-1:], call]) and is_array_run(out[-1]):
            out[-1].append(call)
        else:
            out.append([call])
    return out


def split_calls(calls: Sequence[WorkerCall], array_max: int, tag_max: int) -> list[list[WorkerCall]]:
    """Cut a batch into arrays of at most ``array_max`` calls whose tags fit in ``tag_max`` characters.

    Each array is one array run of core's batch (consecutive elements sharing the batch
    key) or a single call without a batch key. Order is kept.

    Raises:
        ValueError: if even a one-element array's tag is longer than ``tag_max``.
    """
    chunks: list[list[WorkerCall]] = []
    for run in runs(calls):
        if not is_array_run(run):
            tag = encode(run)
            if len(tag) > tag_max:
                raise ValueError(f"the job tag of one worker would be {len(tag)} characters, more than {tag_max}: {tag!r}")
            chunks.append(run)
            continue
        current: list[WorkerCall] = []
        text = _SlotsText()
        header = 0
        for call in run:
            if current:
                trial = text.copy()
                trial.add(call.worker)
                if len(current) < array_max and header + trial.length() <= tag_max:
                    current.append(call)
                    text = trial
                    continue
                chunks.append(current)
            current, text = [call], _SlotsText()
            text.add(call.worker)
            header = len(_header(current))
            if header + text.length() > tag_max:
                raise ValueError(
                    f"the job tag of one worker would be {header + text.length()} characters, more than "
                    f"{tag_max}: {encode(current)!r}"
                )
        chunks.append(current)
    return chunks

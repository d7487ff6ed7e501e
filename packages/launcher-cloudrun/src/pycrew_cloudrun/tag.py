"""The tag that marks an execution as pycrew's and says whose workers its tasks are.

Cloud Run gives an execution exactly its job template's labels, and a run cannot add any,
so per-run facts travel in a non-secret environment override that the execution keeps
in its template (``Execution.template.containers[0].env``)::

    PYCREW_CLOUDRUN_TAG=pycrew:1;c=<controller id>;n=<controller name>;p=<instance prefix>;o=<offset>;w=<slot>,<slot>,...

Task ``k`` runs the worker of slot ``w[k]`` with instance ``<prefix><offset + k>`` (an
array launch, see :meth:`pycrew.WorkerCall.array_args`; the offset is not 0 only when a
batch larger than an execution's task limit is cut into several executions). A single worker launched on its own
has ``i=<instance>`` instead of ``p``. Values are percent-encoded, so no separator can
appear inside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

#: The environment variable holding the tag.
TAG_ENV = "PYCREW_CLOUDRUN_TAG"
PREFIX = "pycrew:1;"
#: The controller's name is informative only: long names are cut.
NAME_MAX = 60


@dataclass(frozen=True)
class ExecutionTag:
    """What an execution's tag says.

    Attributes:
        controller_id: the id of the controller that launched the execution.
        controller: that controller's name.
        slots: the slot of each task, task 0 first.
        prefix: the instance prefix of an array launch (instance of task ``k``: prefix + k).
        instance: the instance of a single-worker launch (when ``prefix`` is empty).
        offset: the batch index of task 0 (array launches cut into several executions).
    """

    controller_id: str
    controller: str
    slots: tuple[int, ...]
    prefix: str = ""
    instance: str = ""
    offset: int = 0

    def instance_of(self, index: int) -> str | None:
        """The instance id of task ``index``, if the tag knows it."""
        if not 0 <= index < len(self.slots):
            return None
        if self.prefix:
            return f"{self.prefix}{self.offset + index}"
        return self.instance if index == 0 and self.instance else None

    def slot_of(self, index: int) -> int | None:
        """The slot of task ``index``, if the tag knows it."""
        return self.slots[index] if 0 <= index < len(self.slots) else None

    def encode(self) -> str:
        """The tag's text."""
        where = f"p={_q(self.prefix)};o={self.offset}" if self.prefix else f"i={_q(self.instance)}"
        slots = ",".join(str(s) for s in self.slots)
        return f"{PREFIX}c={_q(self.controller_id)};n={_q(self.controller[:NAME_MAX])};{where};w={slots}"


def _q(text: str) -> str:
    return quote(text, safe="-_.~")


def array_tag(controller_id: str, controller: str, prefix: str, slots: Sequence[int], offset: int = 0) -> ExecutionTag:
    """The tag of an array launch whose task ``k`` is instance ``prefix + (offset + k)`` in slot ``slots[k]``."""
    if not prefix:
        raise ValueError("an array launch needs an instance prefix")
    return ExecutionTag(controller_id, controller, tuple(slots), prefix=prefix, offset=offset)


def single_tag(controller_id: str, controller: str, instance: str, slot: int) -> ExecutionTag:
    """The tag of one worker launched on its own."""
    return ExecutionTag(controller_id, controller, (slot,), instance=instance)


def decode(text: str) -> ExecutionTag | None:
    """Parse a tag; ``None`` if ``text`` is not a pycrew tag (someone else's execution)."""
    if not text.startswith(PREFIX):
        return None
    fields: dict[str, str] = {}
    for part in text[len(PREFIX) :].split(";"):
        key, sep, value = part.partition("=")
        if not sep:
            return None
        fields[key] = value
    if "c" not in fields or "w" not in fields or ("p" in fields) == ("i" in fields):
        return None
    entries = [e for e in fields["w"].split(",") if e]
    offset = fields.get("o", "0")
    if not entries or not all(e.isdigit() for e in entries) or not offset.isdigit():
        return None
    return ExecutionTag(
        controller_id=unquote(fields["c"]),
        controller=unquote(fields.get("n", "")),
        slots=tuple(int(e) for e in entries),
        prefix=unquote(fields.get("p", "")),
        instance=unquote(fields.get("i", "")),
        offset=int(offset),
    )

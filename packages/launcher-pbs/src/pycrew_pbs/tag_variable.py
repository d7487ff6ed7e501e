"""pycrew's tag in a PBS job: the job variable :data:`TAG_VARIABLE`, :func:`encode_tag`, :func:`decode_tag`.

The tag (:mod:`pycrew.scheduler.jobtag`) travels as the environment variable
``PYCREW_JOBTAG`` (``qsub -v``), which PBS stores in the job's ``Variable_List`` and
``qstat -f`` shows back (see :mod:`pycrew_pbs.pbs`).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

#: The job environment variable holding pycrew's tag (in ``Variable_List``).
TAG_VARIABLE = "PYCREW_JOBTAG"


def encode_tag(tag: str) -> str:
    """The tag as the value of ``PYCREW_JOBTAG``: percent-encoded once more (no comma, ``=`` or quote)."""
    return quote(tag, safe=":;")


def decode_tag(value: str) -> str:
    """The inverse of :func:`encode_tag`."""
    return unquote(value)

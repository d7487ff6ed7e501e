"""The Python and cloudpickle versions a worker's HELLO carries, and the controller's check of them.

cloudpickle sends a function the worker cannot import (one defined in the user's script, a
lambda, a closure) as its bytecode, and bytecode runs only on the Python minor version
that compiled it: on another, a worker crashes (SIGSEGV on 3.13 for ``x * x`` made on
3.11) or, worse, computes wrongly (``ValueError: too many values to unpack`` raised by a
correct list comprehension on 3.12), and nothing names the cause (a probe of session 37).
A cloudpickle of another major version cannot read the pickles either. So a worker says
which versions it runs, and the controller refuses one that differs there, as it refuses
another wire protocol (see :mod:`pycrew.control.admission`). A worker that does not say (an
earlier pycrew of the same wire protocol) is not refused for it.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

#: This process's Python version ("3.11.7").
PYTHON = "{}.{}.{}".format(*sys.version_info[:3])
#: What a version in a HELLO must look like (digits and dots, then a suffix: "3.13.0rc1").
_VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,9}){0,3}[A-Za-z0-9.+-]{0,32}")


@functools.cache
def versions() -> dict[str, str | None]:
    """The HELLO's fields for this process: ``python`` and ``cloudpickle`` (None if not importable);
    found once (the controller compares every worker's with them)."""
    try:
        import cloudpickle
    except ImportError:  # the worker says so; it cannot run tasks anyway
        return {"python": PYTHON, "cloudpickle": None}
    return {"python": PYTHON, "cloudpickle": str(getattr(cloudpickle, "__version__", "")) or None}


def parse_version(body: dict[str, Any], key: str, error: type[Exception] = ValueError) -> str | None:
    """HELLO field ``key``: a version string, or None if absent.

    Raises:
        error: it is there but not a version (the HELLO's parser passes its ProtocolError).
    """
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise error(f"HELLO field {key!r} must be a version string (digits and dots, as 3.11.7) or null")
    return value


def _leading(version: str, parts: int) -> tuple[int, ...]:
    """The first ``parts`` numbers of ``version`` ("3.13.0rc1", 2 -> (3, 13))."""
    return tuple(int(n) for n in re.findall(r"[0-9]+", version.split("+")[0])[:parts])


def mismatch(python: str | None, pickler: str | None, ours: dict[str, str | None] | None = None) -> str | None:
    """Why a worker running ``python`` and cloudpickle ``pickler`` cannot run this process's tasks; None if it can.

    Args:
        python: the worker's Python version (None: it did not say).
        pickler: the worker's cloudpickle version (None: it did not say, or has none).
        ours: this process's :func:`versions` (default: computed).
    """
    ours = versions() if ours is None else ours
    mine = ours["python"] or PYTHON
    if python is not None and _leading(python, 2) != _leading(mine, 2):
        wanted = ".".join(map(str, _leading(mine, 2)))
        return (
            f"it runs Python {python} and this controller runs Python {mine}: cloudpickle sends the functions this "
            f"program defines as bytecode, which only the same Python minor version runs (on another a worker "
            f"crashes or computes wrongly). Start the workers with a Python {wanted} interpreter (the launcher's "
            f"python option; on a cluster, the module or environment the job loads)"
        )
    theirs, own = pickler, ours["cloudpickle"]
    if theirs is not None and own is not None and _leading(theirs, 1) != _leading(own, 1):
        return (
            f"it runs cloudpickle {theirs} and this controller runs cloudpickle {own}: a cloudpickle of another "
            f"major version cannot read this one's pickles. Install cloudpickle {own} in the workers' environment"
        )
    return None

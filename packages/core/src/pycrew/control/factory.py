"""``pycrew.controller``: build a controller from a launcher's or a profile's name."""

from __future__ import annotations

from typing import Any, Literal, overload

from pycrew.control.controller import Controller
from pycrew.control.sequential import SequentialController


@overload
def controller(launcher: Literal["sequential"], workers: int | None = None, **options: Any) -> SequentialController: ...


@overload
def controller(launcher: str = "local", workers: int | None = None, **options: Any) -> Controller: ...


def controller(launcher: str = "local", workers: int | None = None, **options: Any) -> Controller | SequentialController:
    """Create a :class:`Controller` (not started: use it in ``with``, or call ``start``).

    ``launcher`` may also name a profile of ``pycrew.toml`` (or ``[tool.pycrew]`` in
    ``pyproject.toml``, or the user file): its launcher and options are used, and the
    arguments given here override them (see :mod:`pycrew.config`).

    ``launcher="sequential"`` returns a :class:`~pycrew.control.sequential.SequentialController`
    that runs every task in this process at push, with the same result API (for pdb).

    Example::

        with pycrew.controller("local", workers=2, seconds_idle=10) as c:
            squares = list(c.map(pow, range(10), [2] * 10))
    """
    if launcher == "sequential":
        if workers is not None:  # checked there as a real controller checks it (and otherwise unused)
            options["workers"] = workers
        return SequentialController(name=options.pop("name", None) or "sequential", **options)
    from pycrew.config import controller_arguments

    launcher, chosen, options = controller_arguments(launcher, workers, options)
    return Controller(launcher, 1 if chosen is None else chosen, **options)

"""``pycrew.controller``: build a controller from a launcher's or a profile's name."""

from __future__ import annotations

from typing import Any, Literal, overload

from pycrew.control.controller import Controller
from pycrew.control.sequential import SequentialController
from pycrew.errors import OptionsError
from pycrew.tls import nng_problem
from pycrew.wire import transport


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
    that runs every task in this process at push, with the same result API (for pdb); so
    does a profile whose ``launcher`` is ``"sequential"``, and ``[profiles.sequential]``, when
    a file defines it, tunes ``pycrew.controller("sequential")``.

    Example::

        with pycrew.controller("local", workers=2, seconds_idle=10) as c:
            squares = list(c.map(pow, range(10), [2] * 10))
    """
    from pycrew.config import controller_arguments

    name, explicit = launcher, {**options, **({} if workers is None else {"workers": workers})}
    launcher, chosen, options = controller_arguments(launcher, workers, options)
    try:
        if launcher == "sequential":  # by name, or a profile's launcher
            if chosen is not None:  # checked there as a real controller checks it (and otherwise unused)
                options["workers"] = chosen
            return SequentialController(name=options.pop("name", None), **options)  # None: named 'sequential'
        built = Controller(launcher, 1 if chosen is None else chosen, **options)
        _check_wire(built)
        return built
    except OptionsError as exc:
        raise _with_origins(exc, name, explicit) from exc


def _check_wire(c: Controller) -> None:
    """Raise :class:`OptionsError` when ``c``'s wire cannot run here (NNG in a child forked from a
    process that used it, which NNG aborts) or cannot use its TLS key and certificate (NNG's
    mbedTLS takes no Ed25519 key, say): found when the controller is built, not when it starts listening."""
    if c.options.wire == "nng" and (parent := transport.nng_forked_from()) is not None:
        raise OptionsError(
            f"wire='nng' cannot be used in this process: it was forked from process {parent}, which used NNG, and "
            "NNG aborts a forked child that uses it again ('nng is not fork-reentrant safe'); use wire='socket' "
            "here, or start this process with multiprocessing's 'spawn' or 'forkserver' start method"
        )
    if c._tls_material is not None and c.tls.mode == "custom" and c.options.wire == "nng":
        problem = nng_problem(c._tls_material[0], c._tls_material[1])
        if problem is not None:
            raise OptionsError(f"tls option 'key': {problem}")


def _with_origins(exc: OptionsError, name: str, explicit: dict[str, Any]) -> OptionsError:
    """``exc``, its message followed by where each option it names came from when ``name`` is a profile (an
    argument, a ``PYCREW_*`` variable, a file's profile or ``[defaults]``); else ``exc`` itself."""
    from pycrew.config import load_profile
    from pycrew.config_files import origins

    try:
        profile = load_profile(name)
    except OptionsError:
        return exc
    if profile is None:
        return exc
    values = {**profile.options, **explicit}
    sources = {**profile.sources, **{k: "an argument of pycrew.controller()" for k in explicit}}
    where = origins(str(exc), values, sources)
    return type(exc)(str(exc) + where) if where and type(exc).__init__ is OptionsError.__init__ else exc

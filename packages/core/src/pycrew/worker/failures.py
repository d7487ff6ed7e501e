"""Describing what a task (or the worker's initializer) raised, for its result: never raising."""

from __future__ import annotations

import sys

#: A task that ended (returned or raised) past its time limit, not stopped by its worker's interrupt: it
#: still timed out. A long call into C code that holds the GIL keeps the thread that sends the interrupt
#: from running; a task may also catch the interrupt and carry on.
OVERRAN = (
    "the task ran longer than its seconds_timeout={:g} s and ended late, not stopped by the worker's interrupt (a long "
    "call into C code that holds the GIL keeps it from coming, and a task may catch it and carry on), so its "
    "result was discarded"
)


def loading_hint(exc: BaseException) -> str | None:
    """What to do about an exception raised while the worker unpickled a task, if it says
    the task refers to a module (or a name in one) this worker cannot import."""
    if not isinstance(exc, ImportError) and not (isinstance(exc, AttributeError) and "Can't get attribute" in str(exc)):
        return None
    return (
        f"the worker (Python {sys.executable}) could not load the task: it refers to a module, or a name in one, that "
        "this Python cannot import (or a version of it other than the controller's: the same version must be installed "
        "on both sides). Install the module where the workers run, put its directory on their PYTHONPATH "
        "(the launcher's env= option; on SLURM, SGE, PBS and LSF script_lines=('export PYTHONPATH=<dir>',), or "
        "inherit_sys_path=True where the nodes share your files), or send it with the task: "
        "cloudpickle.register_pickle_by_value(module)"
    )


MEMORY_HINT = (
    "the task ran out of memory on its worker (the limit of its job or container, or of the machine): give the "
    "workers more memory (the launcher's memory option) or make the task use less"
)


def failure_hint(exc: BaseException, loaded: bool) -> str | None:
    """What to do about a task's exception, if pycrew can tell: a task that could not be loaded
    (``loaded`` false: see :func:`loading_hint`), or one that ran out of memory."""
    if not loaded:
        return loading_hint(exc)
    return MEMORY_HINT if isinstance(exc, MemoryError) else None


def qualified_name(kind: type) -> str:
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def exception_text(exc: BaseException) -> str:
    """An exception's message; a task's exception may even fail to say it."""
    try:
        return str(exc) or repr(exc)
    except BaseException:  # a broken __str__/__repr__ is the task's problem, not the worker's
        return f"<{qualified_name(type(exc))} whose str() failed>"

"""A worker's import path (``sys.path``), made the controller's where its launcher passes it.

A function a task refers to by reference (one imported from ``helpers.py`` next to the
controller's script, say) is imported again by the worker, so the worker must find what
the controller found. ``multiprocessing``'s spawn start method gives each child its
parent's ``sys.path`` for this; a launcher whose workers run the controller's interpreter
(the local one) does the same through :data:`~pycrew.wire.protocol.SYS_PATH_ENV`
(:func:`encode` on the controller, :func:`adopt` in the worker, before any task).

The worker's own entries that the controller's path lacks stay importable, after the
controller's; so does its working directory, last. A launcher that passes the path starts
the worker with ``python -P`` (no working directory first on the path), so that a file of
the working directory named as a standard module (``json.py``, ``queue.py``) cannot
replace that module in the worker, before or after the path is adopted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import MutableMapping, Sequence

from pycrew.wire.protocol import SYS_PATH_ENV


def encode(path: Sequence[object], cwd: str) -> str:
    """The value of :data:`SYS_PATH_ENV` for ``path`` (``""``, the working directory, becomes
    ``cwd``; it is left out when ``cwd`` is ``""``, a removed directory). A relative entry
    (``sys.path.append("src")``) is made absolute against ``cwd``, so that it names the same
    directory in a worker started elsewhere (the local launcher's and the schedulers' ``cwd``
    option); without ``cwd`` it stays as it is.

    Entries that are not strings (a ``pathlib.Path`` or bytes a program put there) are
    written as the path they name; anything else is left out, as the import system skips it.
    """
    entries = []
    for entry in path:
        if isinstance(entry, (str, bytes, os.PathLike)):
            try:
                text = os.fsdecode(entry)
            except (TypeError, UnicodeDecodeError):  # a PathLike whose __fspath__ returns something else
                continue
            if text := text or cwd:
                entries.append(os.path.join(cwd, text) if cwd else text)
    return json.dumps(entries)


def adopt(environ: MutableMapping[str, str]) -> str | None:
    """Make ``sys.path`` the one :data:`SYS_PATH_ENV` carries (removed from ``environ``), then
    this process's own entries it lacks, then the working directory.

    Returns:
        ``None``, or why the variable was ignored (a value that is not a JSON list of
        strings: the path is left as it was).
    """
    raw = environ.pop(SYS_PATH_ENV, None)
    if raw is None:
        return None
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        return f"ignored ${SYS_PATH_ENV}, which is not JSON ({exc}); the worker keeps its own sys.path"
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        return f"ignored ${SYS_PATH_ENV}, which is not a JSON list of strings; the worker keeps its own sys.path"
    try:
        here = [os.getcwd()]
    except OSError:  # the working directory was removed
        here = []
    sys.path[:] = list(dict.fromkeys([*entries, *sys.path, *here]))
    return None


def sys_path_environment() -> dict[str, str]:
    """``{SYS_PATH_ENV: ...}``: this process's ``sys.path``, for the environment of workers
    that run this process's Python interpreter (a launcher's helper; see the module's
    docstring). Start such workers with ``python -P`` too.

    Workers of another interpreter must not get it: its standard library and
    ``site-packages`` would come before their own.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed: "" finds nothing there either
        cwd = ""
    return {SYS_PATH_ENV: encode(list(sys.path), cwd)}

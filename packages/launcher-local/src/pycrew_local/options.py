"""Options of the local launcher."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import ClassVar

import pycrew


@dataclass(frozen=True)
class LocalOptions(pycrew.LauncherOptions):
    """Options of the ``local`` launcher.

    Attributes:
        python: the interpreter that runs workers (default: the controller's).
        env: extra environment variables for the workers.
        cwd: the workers' working directory (default: the controller's).
        log_dir: directory for one log file per worker (default: only the end of each
            worker's output is kept, in memory, to explain a worker that exits early).
        inherit_sys_path: workers that run the controller's interpreter (``python``
            unchanged) import from the controller's ``sys.path`` (see
            :func:`pycrew.sys_path_environment`), as ``multiprocessing``'s children do,
            and are started with ``python -P``; ``False`` leaves them their own.
    """

    owner: ClassVar[str] = "local"

    python: str = field(default_factory=lambda: sys.executable)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    log_dir: str | None = None
    inherit_sys_path: bool = True

    def validate(self) -> None:
        pycrew.require(bool(self.python), self.owner, "python", self.python, "be a path to a Python interpreter")
        pycrew.require(
            self.cwd is None or os.path.isdir(self.cwd), self.owner, "cwd", self.cwd, "be an existing directory"
        )
        pycrew.require(
            pycrew.TOKEN_ENV not in self.env, self.owner, "env", sorted(self.env), f"not set {pycrew.TOKEN_ENV}"
        )

    def shares_sys_path(self) -> bool:
        """Whether workers get the controller's ``sys.path``: ``inherit_sys_path``, ``python``
        is the controller's interpreter, and ``env`` does not set the path itself."""
        if not self.inherit_sys_path or pycrew.SYS_PATH_ENV in self.env or not sys.executable:
            return False
        found = shutil.which(self.python) if os.sep not in self.python else self.python
        if found is None:
            return False
        # The same interpreter through another name (a venv's bin/python3 beside its bin/python), in the
        # same directory: a venv is the pyvenv.cfg above the name it is started by, not the file it links to.
        real = os.path.realpath
        return real(found) == real(sys.executable) and real(os.path.dirname(os.path.abspath(found))) == real(
            os.path.dirname(os.path.abspath(sys.executable))
        )

"""Options of the local launcher."""

from __future__ import annotations

import os
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
    """

    owner: ClassVar[str] = "local"

    python: str = field(default_factory=lambda: sys.executable)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    log_dir: str | None = None

    def validate(self) -> None:
        pycrew.require(bool(self.python), self.owner, "python", self.python, "be a path to a Python interpreter")
        pycrew.require(
            self.cwd is None or os.path.isdir(self.cwd), self.owner, "cwd", self.cwd, "be an existing directory"
        )
        pycrew.require(
            pycrew.TOKEN_ENV not in self.env, self.owner, "env", sorted(self.env), f"not set {pycrew.TOKEN_ENV}"
        )

"""Options of the ``template`` launcher."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pycrew


@dataclass(frozen=True)
class TemplateOptions(pycrew.LauncherOptions):
    """Options of the ``template`` launcher (a frozen, type-checked dataclass).

    Attributes:
        python: the interpreter that runs workers (default: the controller's).
        shell: the POSIX shell that starts them in the background.
        run_dir: where pid files, worker records and worker logs go (default:
            ``<tmp>/pycrew-template-<uid>``).
        env: extra environment variables for the workers.
    """

    owner: ClassVar[str] = "template"

    python: str = field(default_factory=lambda: sys.executable)
    shell: str = "/bin/sh"
    run_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Checks beyond types: raise :class:`pycrew.OptionsError` with the value and the fix."""
        pycrew.require(bool(self.python), self.owner, "python", self.python, "be a path to a Python interpreter")
        pycrew.require(
            os.path.isabs(self.shell), self.owner, "shell", self.shell, "be an absolute path to a POSIX shell"
        )
        pycrew.require(
            pycrew.TOKEN_ENV not in self.env, self.owner, "env", sorted(self.env), f"not set {pycrew.TOKEN_ENV}"
        )

    def run_path(self) -> Path:
        """The run directory (created on first launch)."""
        return Path(self.run_dir or os.path.join(tempfile.gettempdir(), f"pycrew-template-{os.getuid()}"))

"""How a job array's secret reaches its tasks on SGE without any other user seeing it.

Core's job scripts take the secret (the batch key every task derives its token from) from
the job's environment. On Son of Grid Engine that environment is public: ``qstat -j``
prints a job's ``env_list`` to every user of the cluster (checked on 8.1.9: user
``nobody`` reads root's ``-v`` variables), and the execution host keeps it in a
world-readable spool file. So the SGE launcher keeps the secret out of SGE: it writes it
to a file in ``<directory>/keys`` (directory 0700, file 0600), the job script reads it
into a shell variable before anything else runs, and the file is removed once no job in
the queue carries the array's tag (every task has started and ended, or was deleted).

A file is named after its array's tag (a hash of it), so that any process of the user
listing the queue can tell which files still serve a job. A file this process submitted
goes once a listing taken after its submit no longer shows the tag; any other file only
once it is older than a grace period, as its submit may still be in flight in another
process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from pycrew.scheduler.jobscript import HIDDEN_TOKEN

log = logging.getLogger(__name__)

SUFFIX = ".key"


class KeyFiles:
    """The secret files of one private directory.

    Args:
        directory: where the files live (``<directory>/keys``); created 0700 on first use.
        seconds_grace: a file that no listed job carries is removed only once it is older
            than this (its submit may still be running in another process).
    """

    def __init__(self, directory: Path, seconds_grace: float) -> None:
        self.directory = directory
        self.seconds_grace = seconds_grace
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._submitted: dict[str, float] = {}  # file name -> when its submit ended (monotonic)

    def path(self, tag: str) -> Path:
        """The file that holds the secret of the array tagged ``tag``."""
        return self.directory / (hashlib.sha256(tag.encode()).hexdigest()[:32] + SUFFIX)

    def write(self, tag: str, secret: str) -> Path:
        """Write the secret of the array tagged ``tag`` (mode 0600); it counts as in flight
        until :meth:`settled`."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        path = self.path(tag)
        with self._lock:
            self._in_flight.add(path.name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")  # `read` needs the newline
        return path

    def settled(self, tag: str, submitted: bool) -> None:
        """The submit of ``tag`` is over: keep the file if the array was submitted, else remove it."""
        path = self.path(tag)
        with self._lock:
            self._in_flight.discard(path.name)
            if submitted:
                self._submitted[path.name] = time.monotonic()
        if not submitted:
            path.unlink(missing_ok=True)

    def clean(self, live_tags: Iterable[str], listed_at: float, now: float | None = None) -> list[Path]:
        """Remove the files no listed job carries; return them.

        Args:
            live_tags: the tags of the jobs in a listing.
            listed_at: when that listing was started (``time.monotonic()``): a file whose
                submit ended later may belong to a job the listing could not show yet.
            now: the wall-clock time to age files by (default: now).
        """
        if not self.directory.is_dir():
            return []
        live = {self.path(tag).name for tag in live_tags if tag}
        now = time.time() if now is None else now
        removed: list[Path] = []
        with self._lock:
            in_flight = set(self._in_flight)
            submitted = dict(self._submitted)
        for path in self.directory.glob("*" + SUFFIX):
            if path.name in live or path.name in in_flight:
                continue
            ours = submitted.get(path.name)
            try:
                if ours is not None and ours >= listed_at:
                    continue
                if ours is None and now - path.stat().st_mtime < self.seconds_grace:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue  # deliberate: another process removed it first
            removed.append(path)
        with self._lock:
            for path in removed:
                self._submitted.pop(path.name, None)
        if removed:
            log.debug("sge: removed %d secret file(s) of arrays that left the queue", len(removed))
        return removed


def read_lines(path: Path) -> list[str]:
    """Job script lines that read the secret from ``path`` into the script's hidden variable.

    They run before ``script_lines``; a task that cannot read the file stops with a message
    in its output file saying what to change.
    """
    quoted = shlex.quote(str(path))
    return [
        f"if ! IFS= read -r {HIDDEN_TOKEN} < {quoted}; then",
        '    printf "pycrew: cannot read the worker secret %s on %s: the sge option \'directory\' must be on a file '
        f'system the execution hosts share (or set secret_file=False)\\n" {quoted} "$(hostname)" >&2',
        "    exit 1",
        "fi",
    ]

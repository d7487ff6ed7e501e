"""The scheduler layer: what every batch-scheduler launcher (SLURM, SGE, PBS, LSF) shares.

A launcher for another scheduler (Flux, HTCondor, ...) subclasses two classes and writes a
plugin:

- :class:`SchedulerOptions`: the shared options (queue, cpus, memory, walltime, account,
  script directives and prologue lines, python, log paths, retries, the circuit breaker);
- :class:`SchedulerCLI`: pure builders of the scheduler's commands and parsers of their
  outputs; the base class runs them, retries transient failures, never submits an array
  twice, caches the monitor's listing, and tags every job (:mod:`.jobtag`) so the monitor
  finds pycrew's workers and their controllers;
- :class:`SchedulerPlugin`: the launcher plugin whose hooks call the CLI (see ``pycrew_slurm.plugin``);
- :func:`killed_by` and :func:`join_reasons`: an ended job's reason in the words all
  scheduler launchers use (:mod:`.exits`).

See the "Writing a scheduler launcher" section of the plugin guide.
"""

from __future__ import annotations

from pycrew.scheduler import jobscript, jobtag
from pycrew.scheduler.breaker import SubmitBreaker
from pycrew.scheduler.cli import SchedulerCLI
from pycrew.scheduler.commands import COMMON_TRANSIENT_ERRORS, CommandRunner
from pycrew.scheduler.errors import SchedulerError
from pycrew.scheduler.exits import join_reasons, killed_by, signal_name
from pycrew.scheduler.options import (
    SchedulerOptions,
    memory_to_megabytes,
    seconds_to_hms,
    walltime_to_seconds,
)
from pycrew.scheduler.plugin import SchedulerPlugin
from pycrew.scheduler.records import JobRecord, normalise

__all__ = [
    "COMMON_TRANSIENT_ERRORS",
    "CommandRunner",
    "JobRecord",
    "SchedulerCLI",
    "SchedulerError",
    "SchedulerOptions",
    "SchedulerPlugin",
    "SubmitBreaker",
    "jobscript",
    "jobtag",
    "join_reasons",
    "killed_by",
    "memory_to_megabytes",
    "normalise",
    "seconds_to_hms",
    "signal_name",
    "walltime_to_seconds",
]

"""The pycrew hook implementations of the ``slurm`` launcher (entry point ``pycrew.launchers: slurm``).

Core calls these hooks only for launchers named ``slurm``. Each hook finds the
:class:`~pycrew_slurm.SlurmCLI` for the launcher's options: one per distinct options value
(and ``SLURM_CONF``) in this process, so the site's ``MaxArraySize`` is asked once and the
monitor's polling cadence holds across calls. That small cache is this module's only state.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, OptionsError, WorkerCall, WorkerInfo
from pycrew_slurm.options import SlurmOptions
from pycrew_slurm.slurm import SlurmCLI

NAME = "slurm"
#: What the conformance suite may test (names of ``pycrew.testing.CAPABILITIES``): the monitor
#: lists pycrew's jobs only, tagged with controller id and instance; ``WorkerInfo.host`` is
#: the node (squeue's NodeList, the name the task sees); jobs of ended controllers stay
#: listed (orphans); ``scancel`` reaches queued and never-connected workers. Not ``pid``:
#: squeue does not know the worker's process id on the node.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what
#: SLURM adds before the job leaves squeue: the job's completion (epilog scripts on real
#: sites, the COMPLETING state) and the monitor's squeue cadence. Queued jobs of a dead
#: controller are the monitor's job (``pycrew monitor``, orphans).
SECONDS_EXIT_MARGIN = 60.0

_clients: dict[tuple[str, str | None, SlurmOptions], SlurmCLI] = {}
_clients_lock = threading.Lock()


def client(launcher: LauncherInfo) -> SlurmCLI:
    """The :class:`SlurmCLI` serving ``launcher`` (built on first use, then reused).

    Raises:
        OptionsError: ``launcher.options`` is not a :class:`SlurmOptions`.
    """
    options = launcher.options
    if not isinstance(options, SlurmOptions):
        raise OptionsError(f"the slurm launcher needs SlurmOptions, got {type(options).__name__}")
    key = (launcher.name, os.environ.get("SLURM_CONF"), options)
    with _clients_lock:
        cli = _clients.get(key)
        if cli is None:
            cli = _clients[key] = SlurmCLI(launcher.name, options)
        return cli


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``slurm`` launcher."""
    register(
        NAME,
        SlurmOptions,
        summary="workers as SLURM job arrays (sbatch, squeue, scancel)",
        remote=True,
        capabilities=CAPABILITIES,
        seconds_exit_margin=SECONDS_EXIT_MARGIN,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
    """Submit the batch as job array(s); return handles ``"<job id>_<index>"`` in call order."""
    return client(launcher).launch(launcher, calls)


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: LauncherInfo, handles: Sequence[Any]) -> None:
    """``scancel`` the array elements; already finished or unknown jobs are fine."""
    client(launcher).cancel(handles)


@pycrew.hookimpl
def pycrew_list_workers(launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
    """pycrew's SLURM workers of this user (one ``squeue`` call per ``seconds_poll``)."""
    return client(launcher).workers(controller_id)

"""Records that cross the plugin boundary: what core hands to launcher hooks and gets back.

These are the only types a launcher plugin needs besides :mod:`pycrew.options`. They are
frozen dataclasses so that hooks cannot change core's state by accident.
"""

from __future__ import annotations

import math
import shlex
import types
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field, replace
from typing import Any

from pycrew.options import LauncherOptions

# The worker's environment names live with the protocol (the worker imports nothing of
# the plugin side); re-exported here for launchers.
from pycrew.wire.protocol import TLS_CA_ENV as TLS_CA_ENV
from pycrew.wire.protocol import TOKEN_ENV as TOKEN_ENV
from pycrew.wire.protocol import derive_token as _derive_token
from pycrew.worker.command import PREFIX as _WORKER_PREFIX
from pycrew.worker.command import WorkerCommand
from pycrew.worker_info import ENDED_STATUSES as ENDED_STATUSES
from pycrew.worker_info import WORKER_STATUSES as WORKER_STATUSES
from pycrew.worker_info import WorkerInfo as WorkerInfo


@dataclass(frozen=True)
class LauncherInfo:
    """Who is asking: passed as ``launcher`` to every launcher hook.

    Attributes:
        name: the launcher's registered name (``"local"``, ``"slurm"``, ...).
        options: the launcher's typed, validated options.
        controller: the controller's name (``None`` for a monitor not bound to one).
        controller_id: the controller's unique id, which tags every worker it launches.
    """

    name: str
    options: LauncherOptions
    controller: str | None = None
    controller_id: str | None = None


@dataclass(frozen=True)
class WorkerCall:
    """Everything a launcher needs to start one worker.

    The worker command is ``[python, *args]``: ``args`` starts with ``-m pycrew.worker``
    and carries only non-secret settings; :attr:`command` reads them back as a
    :class:`~pycrew.WorkerCommand`. The instance's secret ``token`` must reach the
    worker as the environment variable :data:`TOKEN_ENV`, never on the command line;
    remote platforms should carry it in their secret store.

    Core builds calls with :meth:`from_command`, so that ``args`` and the fields the
    command also carries (``launcher``, ``worker``, ``instance``, ``controller``,
    ``controller_id``, ``seconds_idle``, ``seconds_wall``, ``seconds_launch``) agree;
    :meth:`with_command` changes them together. Launchers read those fields, never
    ``args``. A call built directly whose ``args`` run ``pycrew.worker`` is checked:
    fields that disagree with ``args`` are refused.

    A test may run a *stand-in* instead: ``-c CODE`` followed by the worker's options
    (:func:`pycrew.testing.scheduler_calls.make_calls`). :attr:`command`,
    :meth:`with_command` and :meth:`array_args` treat its options as a worker's and keep
    its ``-c CODE``; its fields are not checked, so a test may set them freely.

    Attributes:
        args: the worker's arguments after the interpreter (``command.args()``).
        python: the interpreter on the controller's machine (launchers whose workers run
            elsewhere substitute their own, e.g. an option ``python``).
        env: non-secret environment variables the worker needs (e.g. the TLS CA).
        token: the instance's secret; excluded from ``repr``.
        name: an informative name for this worker instance (safe as a job name).
        launcher: the launcher's name.
        worker: the slot index, 1..``workers``.
        instance: the instance id, unique per launch.
        controller: the controller's name.
        controller_id: the controller's unique id.
        batch_key: the secret shared by every call of this scaling round (array launches).
        batch_index: this call's position in its batch, 0-based.
        batch_size: how many calls the batch has.
        instance_prefix: the batch's instance prefix (instance = prefix + index).
        seconds_idle: the worker exits after this long without a task.
        seconds_wall: the worker exits after this long alive: a platform time limit
            should be a little longer (e.g. a job's deadline).
        seconds_launch: the worker must connect within this long after launch.
    """

    args: tuple[str, ...]
    python: str
    env: Mapping[str, str]
    token: str = field(repr=False)
    name: str
    launcher: str
    worker: int
    instance: str
    controller: str
    controller_id: str
    batch_key: str = field(default="", repr=False)
    batch_index: int = 0
    batch_size: int = 1
    instance_prefix: str = ""
    seconds_idle: float = math.inf
    seconds_wall: float = math.inf
    seconds_launch: float = 60.0  # the worker's own default (WorkerCommand.seconds_launch)
    #: The command ``args`` were rendered from (:meth:`from_command`, :meth:`with_command`): the
    #: fields are checked against it, not ``args`` parsed again (core builds thousands at once).
    _command: InitVar[WorkerCommand | None] = None

    def __post_init__(self, _command: WorkerCommand | None) -> None:
        if tuple(self.args[:2]) != _WORKER_PREFIX:
            return  # a stand-in or another program a test runs: its fields are the test's
        command = _command if _command is not None else WorkerCommand.from_args(self.args)
        if command.instance is None:
            raise ValueError(
                f"WorkerCall {self.name!r}: args are an array's shared command (--index-env {command.index_env}); "
                "a WorkerCall runs one worker: give it --instance (array launches use array_args())"
            )
        wrong = [
            f"{name}={getattr(self, name)!r} but args say --{name.replace('_', '-')} {getattr(command, name)!r}"
            for name in _COMMAND_FIELDS
            if getattr(self, name) != getattr(command, name)
        ]
        if wrong:
            raise ValueError(
                f"WorkerCall {self.name!r} disagrees with its args: {'; '.join(wrong)}. Build calls with "
                "WorkerCall.from_command(command, ...) and change them with call.with_command(...), which keep "
                "args and these fields together"
            )

    @classmethod
    def from_command(
        cls,
        command: WorkerCommand,
        *,
        python: str,
        env: Mapping[str, str],
        token: str,
        name: str,
        batch_key: str = "",
        batch_index: int = 0,
        batch_size: int = 1,
        instance_prefix: str = "",
    ) -> WorkerCall:
        """The call that runs ``command``: ``args`` and the fields the command carries come from it.

        Raises:
            ValueError: ``command`` is an array's shared command (it has no instance id).
        """
        if command.instance is None:
            raise ValueError("a WorkerCall runs one worker: give a command with an instance id, not an array's shared command")
        return cls(
            args=command.args(),
            python=python,
            env=env,
            token=token,
            name=name,
            launcher=command.launcher,
            worker=command.worker,
            instance=command.instance,
            controller=command.controller,
            controller_id=command.controller_id,
            batch_key=batch_key,
            batch_index=batch_index,
            batch_size=batch_size,
            instance_prefix=instance_prefix,
            seconds_idle=command.seconds_idle,
            seconds_wall=command.seconds_wall,
            seconds_launch=command.seconds_launch,
            _command=command,
        )

    @property
    def command(self) -> WorkerCommand:
        """The worker's command: :attr:`args` (a stand-in's options) read back, so it always agrees.

        Raises:
            ValueError: ``args`` run neither ``pycrew.worker`` nor a stand-in, or are invalid.
        """
        if self._runner() != _WORKER_PREFIX:
            return WorkerCommand.parse(self.args[2:])
        return WorkerCommand.from_args(self.args)

    def _runner(self) -> tuple[str, ...]:
        """What runs the worker's options: ``-m pycrew.worker``, or a stand-in's ``-c CODE``."""
        return tuple(self.args[:2]) if len(self.args) >= 2 and self.args[0] == "-c" else _WORKER_PREFIX

    @staticmethod
    def element_token(batch_key: str, instance: str) -> str:
        """The token that element ``instance`` of an array launch proves (HMAC-SHA256 under ``batch_key``).

        A batch's calls carry it as :attr:`token`; an array element (:meth:`array_args`)
        computes it from its instance id and the batch key, as a test's stand-in can with this.
        """
        return _derive_token(batch_key, instance)

    def with_command(self, command: WorkerCommand) -> WorkerCall:
        """A copy of this call running ``command``; ``args`` and the fields it carries follow it.

        The token stays: an array element's token derives from its instance id, so keep
        the instance when changing a batch call.

        Raises:
            ValueError: ``command`` is an array's shared command (it has no instance id).
        """
        if command.instance is None:
            raise ValueError("a WorkerCall runs one worker: give a command with an instance id, not an array's shared command")
        runner = self._runner()
        return replace(
            self,
            args=(*runner, *command.args()[len(_WORKER_PREFIX):]),
            launcher=command.launcher,
            worker=command.worker,
            instance=command.instance,
            controller=command.controller,
            controller_id=command.controller_id,
            seconds_idle=command.seconds_idle,
            seconds_wall=command.seconds_wall,
            seconds_launch=command.seconds_launch,
            _command=command if runner == _WORKER_PREFIX else None,
        )

    @property
    def argv(self) -> list[str]:
        """The full command with the controller's interpreter: ``[python, *args]``."""
        return [self.python, *self.args]

    def command_line(self, python: str | None = None) -> str:
        """The worker command as one shell-quoted line (``python`` overrides the interpreter)."""
        return shlex.join([python or self.python, *self.args])

    def environment(self) -> dict[str, str]:
        """The worker's environment, token included: for platforms that pass env securely."""
        return {**self.env, TOKEN_ENV: self.token}

    def array_args(self, index_env: str, index_base: int = 0) -> tuple[str, ...]:
        """Arguments shared by every element of an array launch of this call's batch.

        Each element computes its instance id as ``instance_prefix + (index - index_base)``
        from the environment variable ``index_env`` (e.g. ``SLURM_ARRAY_TASK_ID`` with base
        1, ``AWS_BATCH_JOB_ARRAY_INDEX``, ``JOB_COMPLETION_INDEX`` or
        ``CLOUD_RUN_TASK_INDEX`` with base 0), and derives its token from the batch key in
        :data:`TOKEN_ENV` (see :meth:`array_environment`). Element ``k`` of the launch must
        be the call with ``batch_index == k``. ``index_base`` may be negative: to launch
        calls ``k0..k1`` of a batch as a separate array whose indices start at 0, pass
        ``index_base=-k0``.

        They are :meth:`WorkerCommand.for_array` of :attr:`command` (a stand-in keeps its
        ``-c CODE``).

        Raises:
            ValueError: no batch key, or ``args`` run neither the worker nor a stand-in.
        """
        if not self.batch_key:
            raise ValueError("this call is not part of a batch with a batch key; use args and environment()")
        shared = self.command.for_array(index_env, index_base, instance_prefix=self.instance_prefix)
        return (*self._runner(), *shared.args()[len(_WORKER_PREFIX):])

    def array_environment(self) -> dict[str, str]:
        """Environment shared by every element of an array launch: the batch key as the token."""
        if not self.batch_key:
            raise ValueError("this call is not part of a batch with a batch key")
        return {**self.env, TOKEN_ENV: self.batch_key}


#: The fields of a :class:`WorkerCall` that copy its command's.
_COMMAND_FIELDS = ("launcher", "worker", "instance", "controller", "controller_id", "seconds_idle", "seconds_wall", "seconds_launch")


#: The capability names a launcher may declare in :attr:`LauncherSpec.capabilities`, and what each
#: promises. The conformance suite (:mod:`pycrew.testing`) tests a launcher for the ones it declares
#: and skips, visibly, what needs the others; registration refuses any other name (a typo).
LAUNCHER_CAPABILITIES: Mapping[str, str] = types.MappingProxyType(
    {
        "monitor": "pycrew_list_workers lists this launcher's workers, tagged with controller_id and instance",
        "pid": "WorkerInfo.pid is the process id the task sees (os.getpid() on the worker)",
        "host": "WorkerInfo.host is the host name the task sees (socket.gethostname() on the worker)",
        "orphans": "the monitor lists workers of controllers that are gone, so Monitor.orphans() finds them",
        "never_connected": "pycrew_terminate_workers stops a worker that never connected (queued, pending, stuck)",
        "shared_files": "workers start in the controller's working directory and import what its sys.path finds",
    }
)


@dataclass(frozen=True)
class LauncherSpec:
    """What a plugin registers for one launcher name (``pycrew_register_launchers``).

    Attributes:
        name: the launcher's name, a short lowercase word (``"slurm"``).
        options_type: the launcher's options class (a :class:`LauncherOptions` subclass).
        summary: one line describing the launcher.
        remote: ``True`` if workers run on other hosts: the controller then listens on a
            routable address by default instead of 127.0.0.1, launches no worker at
            ``start()`` by default, and lets a loop of pushes gather for up to 0.1 s into
            one batch of launches (see :mod:`pycrew.control.demand`).
        capabilities: features the conformance suite may test, names of
            :data:`LAUNCHER_CAPABILITIES` (see :mod:`pycrew.testing`); a launcher lacking one
            is skipped there, visibly.
        seconds_exit_margin: how long after its controller dies the platform needs, beyond
            ``seconds_idle``, until every worker is gone.
        dial_host: the address workers should dial, suggested by the launcher from its
            options (the controller machine's address in a cluster network or a VPC), or
            ``None`` to let core choose (127.0.0.1, or a routable address when ``remote``).
            Called once per controller with the launcher's options; the controller option
            ``host`` always wins. The controller also listens on it, so it must be an
            address of the controller machine's own interfaces.
        plugin: the plugin object that implements the hooks (filled in by core).
        distribution: the distribution that provides it (filled in by core).
        version: that distribution's version (filled in by core).
    """

    name: str
    options_type: type[LauncherOptions]
    summary: str = ""
    remote: bool = False
    capabilities: frozenset[str] = frozenset()
    seconds_exit_margin: float = 5.0
    dial_host: Callable[[LauncherOptions], str | None] | None = field(default=None, repr=False, compare=False)
    plugin: Any = field(default=None, repr=False, compare=False)
    distribution: str | None = None
    version: str | None = None

"""The worker's command line, defined once: :class:`WorkerCommand` renders it and reads it back.

Core builds a :class:`WorkerCommand` for every worker it launches and hands launchers its
rendering (:attr:`pycrew.WorkerCall.args`, ``("-m", "pycrew.worker", "--url", ...)``);
the worker parses its arguments into the same class; monitors read a live worker's
process arguments back with :meth:`WorkerCommand.from_cmdline`. Array launches run one
shared command (:meth:`WorkerCommand.for_array`) whose elements compute their instance id
from an index in their environment (:meth:`WorkerCommand.resolve`).
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from pycrew.wire.transport import DEFAULT_TRANSPORT, TRANSPORTS, Transport

#: The module a worker runs (``python -m pycrew.worker``).
MODULE = "pycrew.worker"
#: How a worker command starts, after the interpreter.
PREFIX = ("-m", MODULE)
#: How long a worker that ran out of tasks polls for the next one before it sleeps (seconds).
DEFAULT_SPIN = 0.0005
#: Options of the Python interpreter whose value is the next argument.
_INTERPRETER_OPTIONS_WITH_VALUE = frozenset({"-X", "-W", "--check-hash-based-pycs"})


@dataclass(frozen=True)
class WorkerCommand:
    """Every setting of one worker's command line (``python -m pycrew.worker ...``).

    Secrets never appear here: the instance token travels in the environment variable
    :data:`pycrew.TOKEN_ENV`. Each attribute is the option of the same name with dashes
    (``seconds_idle`` is ``--seconds-idle``; ``reset=False`` is ``--no-reset``).

    Attributes:
        url: the controller's address, e.g. ``tcp://10.0.0.5:40123``.
        transport: the controller's transport, ``"socket"`` or ``"nng"``.
        instance: this worker instance's id (``None`` in an array's shared command).
        instance_prefix: array launches: an element's instance id is this prefix followed
            by its index.
        index_env: array launches: the environment variable holding the element's index.
        index_base: array launches: the index of the first element (``0`` or ``1``; may be
            negative to start a slice of a batch at its element ``-index_base``).
        worker: the slot index, 1..``workers`` (``0``: not known, as in an array).
        launcher: the launcher's name.
        controller: the controller's name.
        controller_id: the controller's unique id.
        seconds_idle: exit after this long without a task.
        seconds_wall: exit after this long alive.
        tasks_max: exit after this many tasks (``None``: no limit).
        seconds_launch: give up if not connected within this long.
        reset: undo a task's changes to ``os.environ``, ``sys.path`` and the working
            directory after it.
        garbage_collection: run ``gc.collect()`` after every task.
        metrics_seconds: sample CPU and memory this often (``None``: never).
        metrics_dir: write the samples to ``<dir>/<instance>.jsonl`` (``None``: the log).
        seconds_spin: after running out of tasks, poll for the next one this long before
            sleeping (``0``: never poll; see ``ControllerOptions.seconds_spin``).

    Raises:
        ValueError: a setting is invalid; the message names the option and the value.
    """

    url: str
    transport: Transport = DEFAULT_TRANSPORT
    instance: str | None = None
    instance_prefix: str = ""
    index_env: str | None = None
    index_base: int = 0
    worker: int = 0
    launcher: str = ""
    controller: str = ""
    controller_id: str = ""
    seconds_idle: float = math.inf
    seconds_wall: float = math.inf
    tasks_max: int | None = None
    seconds_launch: float = 60.0
    reset: bool = True
    garbage_collection: bool = False
    metrics_seconds: float | None = None
    metrics_dir: str | None = None
    seconds_spin: float = DEFAULT_SPIN

    def __post_init__(self) -> None:
        for name in ("url", "instance_prefix", "launcher", "controller", "controller_id"):
            _check(isinstance(getattr(self, name), str), name, getattr(self, name), "be a string")
        for name in ("instance", "index_env", "metrics_dir"):
            value = getattr(self, name)
            _check(value is None or isinstance(value, str), name, value, "be a string or None")
        for name in ("url", "instance", "instance_prefix", "index_env", "launcher", "controller", "controller_id", "metrics_dir"):
            # argparse (3.11) drops a "--" even in --option=--: the worker would read another value
            _check(getattr(self, name) != "--", name, "--", "not be '--' (a command line reads it as the end of the options)")
        _check(bool(self.url), "url", self.url, "be the controller's address, e.g. tcp://10.0.0.5:40123")
        _check(self.transport in TRANSPORTS, "transport", self.transport, f"be one of {', '.join(TRANSPORTS)}")
        _check(
            (self.instance is None) != (self.index_env is None),
            "instance",
            self.instance,
            "be given, or else index_env (an array element's index variable) with instance_prefix; not both",
        )
        # Not checked against the protocol's instance pattern: example command lines show a
        # placeholder ("<instance>"); the dispatcher refuses a malformed id at HELLO.
        _check(self.instance != "", "instance", self.instance, "be a non-empty instance id")
        if self.index_env is None:
            _check(not self.instance_prefix, "instance_prefix", self.instance_prefix, "come with index_env (array launches only)")
            _check(self.index_base == 0, "index_base", self.index_base, "come with index_env (array launches only)")
        else:
            _check(bool(self.index_env), "index_env", self.index_env, "name an environment variable")
        _check(_is_int(self.index_base), "index_base", self.index_base, "be an integer")
        _check(_is_int(self.worker) and self.worker >= 0, "worker", self.worker, "be an integer >= 0")
        for name in ("seconds_idle", "seconds_wall", "seconds_launch"):
            _check(_positive(getattr(self, name)), name, getattr(self, name), "be a number > 0 (math.inf: no limit)")
        _check(
            self.tasks_max is None or (_is_int(self.tasks_max) and self.tasks_max >= 1),
            "tasks_max",
            self.tasks_max,
            "be an integer >= 1 or None",
        )
        _check(self.metrics_seconds is None or _positive(self.metrics_seconds), "metrics_seconds", self.metrics_seconds,
               "be a number > 0 or None")
        _check(isinstance(self.reset, bool), "reset", self.reset, "be True or False")
        _check(isinstance(self.garbage_collection, bool), "garbage_collection", self.garbage_collection, "be True or False")
        _check(_spin(self.seconds_spin), "seconds_spin", self.seconds_spin, "be a number of seconds from 0 to 1")

    # -- rendering ---------------------------------------------------------------------

    def args(self) -> tuple[str, ...]:
        """The arguments after the interpreter: ``("-m", "pycrew.worker", "--url", URL, ...)``.

        Always present: ``--url``, the instance (``--instance``, or the array's
        ``--instance-prefix``/``--index-env``/``--index-base``), ``--launcher``,
        ``--controller``, ``--controller-id``, ``--seconds-idle``, ``--seconds-wall``,
        ``--tasks-max`` and ``--seconds-launch``; the others only when not the default.
        A value starting with ``-`` is written ``--option=value``.
        """
        out = [*PREFIX, *_option("--url", self.url)]
        if self.transport != DEFAULT_TRANSPORT:
            out += _option("--transport", self.transport)
        if self.instance is not None:
            out += _option("--instance", self.instance)
        if self.index_env is not None:
            out += _option("--instance-prefix", self.instance_prefix)
            out += _option("--index-env", self.index_env)
            out += ["--index-base", str(self.index_base)]
        if self.worker:
            out += ["--worker", str(self.worker)]
        out += _option("--launcher", self.launcher)
        out += _option("--controller", self.controller)
        out += _option("--controller-id", self.controller_id)
        out += ["--seconds-idle", _number(self.seconds_idle), "--seconds-wall", _number(self.seconds_wall)]
        out += ["--tasks-max", _number(self.tasks_max), "--seconds-launch", _number(self.seconds_launch)]
        if self.garbage_collection:
            out.append("--garbage-collection")
        if not self.reset:
            out.append("--no-reset")
        if self.metrics_seconds is not None:
            out += ["--metrics-seconds", _number(self.metrics_seconds)]
        if self.metrics_dir is not None:
            out += _option("--metrics-dir", self.metrics_dir)
        if self.seconds_spin != DEFAULT_SPIN:
            out += ["--seconds-spin", _number(self.seconds_spin)]
        return tuple(out)

    # -- parsing -----------------------------------------------------------------------

    @classmethod
    def parse(cls, argv: Sequence[str], *, strict: bool = True) -> WorkerCommand:
        """The command of a worker's options (what follows ``python -m pycrew.worker``).

        Args:
            argv: the options, e.g. ``["--url", "tcp://...", "--instance", "ab12", ...]``.
            strict: reject options this version does not know; with ``strict=False`` they
                are ignored (a monitor reading a worker of another pycrew version).

        Raises:
            ValueError: an option is missing, unknown (when ``strict``) or invalid; the
                message names it and the value.
        """
        try:
            namespace, unknown = _quiet_parser().parse_known_args(list(argv))
        except _UsageError as exc:
            raise ValueError(f"not a pycrew worker command ({shlex.join(argv)}): {exc}") from None
        if unknown and strict:
            raise ValueError(
                f"not a pycrew worker command ({shlex.join(argv)}): unknown argument(s) {shlex.join(unknown)}; "
                "see python -m pycrew.worker --help"
            )
        return cls.from_namespace(namespace)

    @classmethod
    def from_args(cls, args: Sequence[str], *, strict: bool = True) -> WorkerCommand:
        """The command of a worker call's arguments, which start with ``-m pycrew.worker``.

        Raises:
            ValueError: ``args`` do not run ``pycrew.worker``, or an option is invalid.
        """
        if tuple(args[:2]) != PREFIX:
            shown = shlex.join(list(args[:4])) + (" ..." if len(args) > 4 else "")
            raise ValueError(f"these arguments do not run the pycrew worker: they start {shown!r}, not '-m {MODULE}'")
        return cls.parse(args[2:], strict=strict)

    @classmethod
    def from_cmdline(cls, cmdline: Sequence[str]) -> WorkerCommand | None:
        """The command of a process's command line, if it runs a pycrew worker this version can read.

        ``cmdline`` is the process's whole argument vector (interpreter first, its own
        options allowed before ``-m pycrew.worker``). Options this version does not know
        are ignored, so that a monitor still finds the workers of another version.

        Returns:
            The command, or ``None`` if the process runs something else, or a worker
            command whose options are invalid.
        """
        i = 1
        while i < len(cmdline):
            arg = cmdline[i]
            if arg in ("-m", "-m" + MODULE):
                rest = i + 2 if arg == "-m" else i + 1
                if arg == "-m" and (i + 1 >= len(cmdline) or cmdline[i + 1] != MODULE):
                    return None  # another module
                try:
                    return cls.parse(cmdline[rest:], strict=False)
                except ValueError:  # a worker this version cannot read: the caller skips it
                    return None
            if arg == "-c" or arg.startswith("-m") or not arg.startswith("-"):
                return None  # inline code, another module, or a script
            i += 2 if arg in _INTERPRETER_OPTIONS_WITH_VALUE else 1
        return None

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> WorkerCommand:
        """The command of the namespace :func:`parser` produced (absent options take the defaults).

        Raises:
            ValueError: a setting is invalid.
        """
        return cls(**vars(namespace))

    # -- arrays ------------------------------------------------------------------------

    def for_array(self, index_env: str, index_base: int = 0, *, instance_prefix: str) -> WorkerCommand:
        """The command shared by every element of an array launch of this command's batch.

        Element ``i`` (the value of the environment variable ``index_env``) becomes
        instance ``instance_prefix + str(i - index_base)``; the slot index is left out
        (the controller knows it from the instance id).
        """
        return replace(self, instance=None, worker=0, instance_prefix=instance_prefix, index_env=index_env, index_base=index_base)

    def resolve(self, environ: Mapping[str, str]) -> WorkerCommand:
        """This command with its instance id: an array element computes it from its index in ``environ``.

        Raises:
            ValueError: ``index_env`` is not set to a non-negative integer in ``environ``.
        """
        if self.index_env is None:
            return self
        raw = environ.get(self.index_env, "")
        if not (raw.strip().isascii() and raw.strip().isdigit()):
            raise ValueError(f"--index-env {self.index_env} is not set to an array index (got {raw!r})")
        instance = f"{self.instance_prefix}{int(raw) - self.index_base}"
        return replace(self, instance=instance, instance_prefix="", index_env=None, index_base=0)

    @property
    def array(self) -> bool:
        """Whether this is an array's shared command (the instance comes from ``index_env``)."""
        return self.index_env is not None


# -- the argparse parser -----------------------------------------------------------------


def _seconds(text: str) -> float:
    """Seconds > 0 or ``inf``; an integer stays one (so that the command renders back as written)."""
    try:
        value: float = int(text) if text.isascii() and text.isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 or 'inf', got {text!r}") from None
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 or 'inf', got {text!r}")
    return value


def _spin(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _spin_seconds(text: str) -> float:
    """Seconds from 0 to 1 (``--seconds-spin``)."""
    try:
        value: float = int(text) if text.isascii() and text.isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to 1, got {text!r}") from None
    if not _spin(value):
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text!r}")
    return value


def _count(text: str) -> int | None:
    if text in ("inf", "none", "None", ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 or 'inf', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'inf', got {text!r}")
    return value


def _add_arguments(ap: argparse.ArgumentParser) -> None:
    """Every option of the worker; absent ones stay out of the namespace (the dataclass has the defaults)."""
    add = functools.partial(ap.add_argument, default=argparse.SUPPRESS)
    add("--url", required=True, help="the controller's address, e.g. tcp://10.0.0.5:40123")
    add("--transport", choices=TRANSPORTS, help=f"the controller's transport (default {DEFAULT_TRANSPORT})")
    add("--instance", help="this worker instance's id")
    add("--instance-prefix", help="array launches: instance id = prefix + index")
    add("--index-env", help="array launches: environment variable holding the element's index")
    add("--index-base", type=int, help="array launches: the first element's index (0 or 1)")
    add("--worker", type=int, help="the worker slot index")
    add("--launcher", help="the launcher's name")
    add("--controller", help="the controller's name")
    add("--controller-id", help="the controller's id")
    add("--seconds-idle", type=_seconds, help="exit after this long without a task (default inf)")
    add("--seconds-wall", type=_seconds, help="exit after this long alive (default inf)")
    add("--tasks-max", type=_count, help="exit after this many tasks (default inf)")
    add("--seconds-launch", type=_seconds, help="give up if not connected by then (default 60)")
    add("--no-reset", dest="reset", action="store_false", help="keep changes tasks make to os.environ, sys.path and the cwd")
    add("--garbage-collection", action="store_true", help="run gc.collect() after every task")
    add("--metrics-seconds", type=_seconds, help="sample CPU and memory this often")
    add("--metrics-dir", help="write samples to <dir>/<instance>.jsonl (default: the log)")
    add("--seconds-spin", type=_spin_seconds, help=f"poll this long for the next task before sleeping (default {DEFAULT_SPIN})")


def parser() -> argparse.ArgumentParser:
    """The worker's command-line parser (``python -m pycrew.worker --help``); usage errors exit."""
    ap = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="The pycrew worker: dial the controller, prove the instance token, run tasks.",
        allow_abbrev=False,
    )
    _add_arguments(ap)
    return ap


class _UsageError(Exception):
    """What the quiet parser raises instead of printing usage and exiting."""


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


@functools.cache
def _quiet_parser() -> argparse.ArgumentParser:
    """A parser that raises instead of exiting (built once: it is read-only after that)."""
    ap = _QuietParser(prog=f"python -m {MODULE}", add_help=False, allow_abbrev=False)
    _add_arguments(ap)
    return ap


# -- helpers -----------------------------------------------------------------------------


def _check(ok: bool, name: str, value: Any, what: str) -> None:
    if not ok:
        flag = "--no-reset" if name == "reset" else "--" + name.replace("_", "-")
        raise ValueError(f"worker command: {name} ({flag}) must {what}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value) and value > 0


def _number(value: float | None) -> str:
    """A number as the worker reads it: ``inf`` for no limit, ``repr`` of a float (exact)."""
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "inf"
    return repr(value) if isinstance(value, float) else str(value)


def _option(flag: str, value: str) -> list[str]:
    """``[flag, value]``, or ``[flag=value]`` when the value would read as an option."""
    return [f"{flag}={value}"] if value.startswith("-") else [flag, value]

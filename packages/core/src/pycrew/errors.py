"""Exceptions raised by pycrew. Every one derives from :class:`PycrewError`."""

from __future__ import annotations


class PycrewError(Exception):
    """Base class of every error pycrew raises on purpose."""


class OptionsError(PycrewError, ValueError):
    """An option given to a controller or launcher is missing, unknown or invalid."""


class PluginError(PycrewError):
    """A plugin could not be loaded, or broke the plugin contract."""


class LauncherNotFoundError(PluginError, LookupError):
    """No installed plugin registers a launcher with the requested name."""


class LaunchError(PycrewError):
    """Workers could not be launched (``launch_max`` failed launches in a row)."""


class LogsUnavailableError(PycrewError, LookupError):
    """A worker's output cannot be read: its launcher keeps none, or none is left for that worker."""


class SerializationError(PycrewError, TypeError):
    """A task, its arguments or its result could not be pickled or unpickled."""


class ControllerError(PycrewError, RuntimeError):
    """The controller was used in a state that does not allow the operation."""


class TaskError(PycrewError):
    """A task did not succeed; raised by futures whose task crashed, timed out or failed remotely.

    Attributes:
        result: the :class:`~pycrew.TaskResult` describing what happened.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class TaskCrashError(TaskError):
    """The task's worker died ``crashes_max`` times while running it."""


class TaskTimeoutError(TaskError, TimeoutError):
    """The task ran longer than its ``seconds_timeout``."""


class RemoteTraceback(Exception):
    """Carries the traceback of an exception raised on a worker (set as ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'

"""Running a scheduler's commands: :class:`CommandRunner`, retries of transient failures.

Scheduler commands fail for reasons that pass: the controller daemon restarts or is busy
(``Socket timed out``, ``Unable to contact slurm controller``, SGE's ``unable to contact
qmaster``, LSF's ``LSF is processing your request``). The runner retries such failures with
exponential backoff (0.5 s, 1 s, 2 s, ... capped by ``seconds_retry_max``) up to
``command_attempts`` tries. A command that is not safe to repeat (a submit) is run once
(``retry=False``): its caller decides, by looking for the job's tag, whether it happened.

Submits still running when the interpreter exits are killed (their process groups): a
submit that hung past the controller's end (its hook thread is a daemon, see
:mod:`pycrew.control.hook_pool`) would otherwise live on, and a job it got accepted would
run with no controller to connect to. Other commands (a cancel the last termination left
running, say) are left to finish.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pycrew.options import LauncherOptions
from pycrew.scheduler.errors import SchedulerError

log = logging.getLogger(__name__)

#: Failure texts every scheduler's commands print when a retry may succeed (lower case).
COMMON_TRANSIENT_ERRORS = (
    "connection refused",
    "connection timed out",
    "connection reset",
    "temporarily unavailable",
    "try again",
    "timed out",
)

_running: set[subprocess.Popen[str]] = set()  # commands under way in this process (see _kill_running)
_running_lock = threading.Lock()


class CommandRunner:
    """Runs one scheduler's commands for one launcher configuration.

    Args:
        launcher_name: the launcher's registered name, used in messages.
        options: the launcher's options; read are ``bin_directory``,
            ``seconds_command_timeout``, ``command_attempts`` and ``seconds_retry_max`` when
            the options have them.
    """

    #: Lower-case texts in a failed command's output that mean "try again" (the
    #: scheduler's own, in addition to :data:`COMMON_TRANSIENT_ERRORS`).
    transient_errors: ClassVar[tuple[str, ...]] = ()
    #: Exit statuses that mean "try again" whatever the output says.
    transient_exit_codes: ClassVar[frozenset[int]] = frozenset()
    #: The first wait between tries, doubled after each.
    seconds_retry_first: ClassVar[float] = 0.5

    def __init__(self, launcher_name: str, options: LauncherOptions) -> None:
        self.launcher_name = launcher_name
        self.options = options
        self.retries = 0  # transient failures retried so far (for tests and summaries)

    def _option(self, name: str, default: Any) -> Any:
        value = getattr(self.options, name, None)
        return default if value is None else value

    def command(self, name: str) -> str:
        """The path of the scheduler command ``name``: in ``bin_directory`` if set, else ``name`` (PATH)."""
        directory = self._option("bin_directory", None)
        return os.path.join(os.path.expanduser(directory), name) if directory else name

    def is_transient(self, returncode: int | None, output: str) -> bool:
        """Whether a failure (exit status and output) says a retry may succeed."""
        if returncode is not None and returncode in self.transient_exit_codes:
            return True
        low = output.lower()
        return any(text in low for text in (*COMMON_TRANSIENT_ERRORS, *self.transient_errors))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        cap = float(self._option("seconds_retry_max", 8.0))
        return float(min(cap, self.seconds_retry_first * (2**attempt)))

    def run(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, input: str | None = None,
        kill_at_exit: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command once; return it whatever its exit status. ``kill_at_exit``:
        kill it if it still runs when the interpreter exits (a submit: see the module).

        Raises:
            SchedulerError: the command is missing, or did not finish within
                ``seconds_command_timeout`` (then ``transient`` is set).
        """
        timeout = float(self._option("seconds_command_timeout", 60.0))
        try:
            # Its own session: on a timeout the whole group is killed, so that no child of
            # the command (a shell wrapper's) keeps its pipes open.
            proc = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(env) if env is not None else None,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, start_new_session=True,
            )
        except FileNotFoundError as exc:
            where = self._option("bin_directory", None)
            raise SchedulerError(
                f"{argv[0]!r} not found: is the {self.launcher_name} client installed and "
                + (f"in bin_directory={where!r}?" if where else f"on PATH (PATH={os.environ.get('PATH', '')!r})?"),
                argv,
            ) from exc
        except PermissionError as exc:
            raise SchedulerError(f"{argv[0]!r} cannot be run: {exc}", argv) from exc
        if kill_at_exit:
            with _running_lock:
                _running.add(proc)
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise SchedulerError(
                f"{shlex.join(argv)} did not finish within {timeout:g} s (seconds_command_timeout)", argv,
                transient=True,
            ) from exc
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            with _running_lock:
                _running.discard(proc)
        return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)

    def check(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        what: str = "",
        retry: bool = True,
        input: str | None = None,
        kill_at_exit: bool = False,
    ) -> str:
        """Run a command that must succeed; return its stdout.

        A transient failure is retried with backoff (unless ``retry`` is false) up to
        ``command_attempts`` tries.

        Raises:
            SchedulerError: naming the command, its exit status and its stderr; ``transient``
                tells whether the last failure was one that might pass.
        """
        attempts = int(self._option("command_attempts", 4)) if retry else 1
        for attempt in range(attempts):
            try:
                proc = self.run(argv, env, input, kill_at_exit=kill_at_exit)
            except SchedulerError as exc:
                if not exc.transient or attempt == attempts - 1:
                    raise
                error = exc
            else:
                if proc.returncode == 0:
                    if proc.stderr.strip():
                        log.info("%s: %s said: %s", self.launcher_name, argv[0], proc.stderr.strip())
                    return proc.stdout
                stderr = proc.stderr.strip()
                error = SchedulerError(
                    f"{what or argv[0]} failed (exit status {proc.returncode}): {shlex.join(argv)}: "
                    f"{stderr or proc.stdout.strip() or 'no message'}",
                    argv, proc.returncode, stderr,
                    transient=self.is_transient(proc.returncode, proc.stderr + "\n" + proc.stdout),
                )
                if not error.transient or attempt == attempts - 1:
                    raise error
            self.pause(attempt, error)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def pause(self, attempt: int, error: SchedulerError) -> None:
        """Wait before the next try after a transient failure, and say so in the log."""
        seconds = self.backoff(attempt)
        self.retries += 1
        log.warning("%s: %s; trying again in %g s", self.launcher_name, error, seconds)
        time.sleep(seconds)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill a command and everything it started (its session), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # deliberate: it has already exited
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("a scheduler command (pid %d) did not exit after SIGKILL", proc.pid)


@atexit.register
def _kill_running() -> None:
    """At the interpreter's exit: kill the scheduler commands still running (see the module)."""
    with _running_lock:
        running = [proc for proc in _running if proc.poll() is None]
    for proc in running:
        argv = proc.args if isinstance(proc.args, list) else [proc.args]  # (run() passes a list)
        log.warning("killing %s (pid %d): still running as the program exits", shlex.join(map(str, argv)), proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # deliberate: it has just exited

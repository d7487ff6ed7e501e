"""Why a launch failed, in words: a launch hook's wrong result, the monitor's report of a worker, and the
final :class:`LaunchError`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pycrew.control.quoting import said, shown
from pycrew.plugin_api import TOKEN_ENV, WorkerInfo

if TYPE_CHECKING:
    from pycrew.controller_options import ControllerOptions

_ENDED_VERBS = {"done": "exited", "failed": "failed", "cancelled": "was cancelled"}
#: How :func:`explain_ended` summaries start (so the final message can tell them apart).
ENDED_PREFIX = "the worker "
ENDED_MARK = " before it connected"
#: How the reason of a worker the dispatcher refused starts (see pycrew.control.admission).
REFUSED_PREFIX = "the controller refused the worker: "
#: How the reason of a launch whose initializer failed starts (see pycrew.control.admission).
INITIALIZER_PREFIX = "the initializer failed: "
#: How a failed launch's reason starts when the launch hook itself raised (the platform
#: refused the submission, its command is missing): no worker ever ran.
HOOK_FAILED = "the launch hook failed: "
#: How the reason of a launch whose hook had not returned within seconds_launch starts.
HOOK_HUNG = "the launch hook (pycrew_launch_workers) had not returned within seconds_launch="
#: What a failed launch's reason says when its platform could not be reached (see launch_watch).
UNREACHABLE_MARK = "(the platform could not be reached, or was unavailable, for "
#: How the goodbye reason of a worker that reached ``seconds_wall`` before its first task,
#: tasks waiting, starts (the scaler counts them: see Scaler.disconnected).
WALL_FIRST = "the worker reached its seconds_wall before its first task, with tasks waiting: "


#: How many handles per worker call are read at most from an iterator a launch hook returned
#: (a generator): an endless one must not hang the launch pool.
HANDLES_READ_PER_CALL = 10


def received_handles(launcher: str, returned: object, calls: int) -> tuple[list[Any], str | None]:
    """The handles a launch hook returned, and what is wrong with them (``None``: a list of one per call).

    Core checks every launch hook's result with it, and so does :mod:`pycrew.testing`; a
    plugin's own tests may too (``launcher`` is the launcher's name, for the message).
    A wrong result is rejected, yet the workers it names may run and must be terminated,
    so the handles are still taken from it: every element of a list or tuple of the wrong
    length; the values of a mapping; what an iterator (a generator) yields, up to
    :data:`HANDLES_READ_PER_CALL` per call; nothing from ``None``; any other value (a
    ``str``, one bare handle) as one handle.
    """
    must = "pycrew_launch_workers must return a list of one handle per call, in the calls' order"
    unreturned = ("; a worker it started and did not return a handle for is out of pycrew's reach until it gives up "
                  "connecting (seconds_launch): check the platform")
    if isinstance(returned, (list, tuple)):
        if len(returned) == calls:
            return list(returned), None
        return list(returned), (f"launcher {launcher!r} returned {len(returned)} handle(s) for {calls} worker call(s); {must}"
                                + (unreturned if len(returned) < calls else ""))
    if returned is None:
        return [], f"launcher {launcher!r} returned None for {calls} worker call(s); {must}{unreturned}"
    kind = type(returned).__name__
    if isinstance(returned, (str, bytes, bytearray)) or not isinstance(returned, Iterable):
        return [returned], f"launcher {launcher!r} returned a {kind}, {shown(returned)}, for {calls} worker call(s); {must}"
    if isinstance(returned, Mapping):
        values = list(returned.values())
        return values, (
            f"launcher {launcher!r} returned a {kind} of {len(values)} value(s) for {calls} worker call(s); {must}"
        )
    handles: list[Any] = []
    failed = ""
    try:
        handles.extend(itertools.islice(returned, HANDLES_READ_PER_CALL * max(1, calls)))
    except Exception as exc:  # a generator that fails half-way: what it yielded is still terminated
        failed = f" before reading it raised {said(exc)}"
    return handles, (
        f"launcher {launcher!r} returned a {kind}, not a list, that yielded {len(handles)} handle(s){failed} "
        f"for {calls} worker call(s); {must}"
    )


#: The longest line of a worker's output, or of a platform's reason, that a message quotes whole.
LINE_MAX = 400
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # (not a tab or a newline)


def printable(text: str) -> str:
    """``text`` (a platform's reason, a worker's last output lines) fit to quote in a message.

    A line rewritten with carriage returns (a progress bar) shows its last state, as a
    terminal would; other control characters (a colour's escape sequence) are shown
    escaped (``\x1b``), not sent to whoever prints the error; a line longer than
    :data:`LINE_MAX` is cut (one 2 MB line made a 2 MB exception message).
    """
    lines = []
    for line in text.split("\n"):
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
        line = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)
        lines.append(line if len(line) <= LINE_MAX else f"{line[:LINE_MAX]}... ({len(line) - LINE_MAX} more characters)")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


#: In a monitor's reason: the worker's job was cancelled or deleted by something other than pycrew.
FROM_OUTSIDE = "from outside"


def explain_ended(info: WorkerInfo) -> str:
    """Why a launch failed, from the monitor's report of a worker that ended before connecting.

    The first line is a summary (status, exit code, a one-line reason); a multi-line reason
    (a local worker's last output lines) follows it, indented.
    """
    # "done" without an exit code: it left the queue unseen (pycrew.scheduler.departures), maybe never started
    verb = "ended" if info.status == "done" and info.exit_code is None else _ENDED_VERBS.get(info.status, "ended")
    text = f"{ENDED_PREFIX}{verb}{ENDED_MARK}"
    if info.exit_code is not None:
        text += f" (exit code {info.exit_code})"
    reason = printable(info.reason.strip())
    if "\n" in reason:
        return f"{text}; the launcher's report of it is quoted below\n{_indent(reason)}"
    return f"{text}: {reason}" if reason else text


def is_ended_reason(reason: str) -> bool:
    """Whether a failed launch's reason is :func:`explain_ended`'s (the worker started, then ended)."""
    first = reason.partition("\n")[0]
    return first.startswith(ENDED_PREFIX) and ENDED_MARK in first


def describe_worker(info: WorkerInfo) -> str:
    """The monitor's view of one worker in a few words: state, exit code, reason (further lines indented)."""
    said = info.state if info.status in ("unknown", info.state.lower()) else f"{info.state} ({info.status})"
    reason = printable(info.reason.strip())
    if info.exit_code is not None and f"exit code {info.exit_code}" not in reason:
        said += f", exit code {info.exit_code}"
    if not reason:
        return said
    first, _, more = reason.partition("\n")
    return f"{said}: {first}" + (f"\n{_indent(more)}" if more.strip() else "")


def launch_error_message(
    launcher: str, controller: str | None, options: ControllerOptions, reason: str, command: str, url: str,
    failures: int | None = None,
) -> str:
    """The message of the :class:`LaunchError` raised after ``launch_max`` failed launches in a row.

    Args:
        launcher: the launcher's name.
        controller: the controller's name.
        options: the controller's options (``launch_max``, ``seconds_launch``).
        reason: why the last launch failed; its first line is quoted inline, further lines
            (a worker's output) at the end.
        command: the worker command line, with the interpreter the launcher really uses.
        url: where workers dial.
        failures: the failed launches in a row (default ``launch_max``; more while the
            platform was unreachable, see ``seconds_unreachable``).
    """
    failures = options.launch_max if failures is None else failures
    first, _, more = reason.partition("\n")
    if first.startswith(HOOK_FAILED):  # the platform's answer, often several stderr lines: all of it inline
        first, more = "; ".join(line.strip() for line in reason.splitlines() if line.strip()), ""
    first = first.rstrip().rstrip(".")  # the sentence goes on
    look = f"Check the worker logs with `pycrew monitor {launcher} list`."
    if first.startswith(HOOK_FAILED) and UNREACHABLE_MARK in first:
        advice = (
            "No worker was started: the platform could not be reached, or stayed unavailable, for the time quoted. "
            "Check that its API or scheduler answers from this machine (network, endpoint, the daemon, "
            "credentials), then run the work again."
        )
        look = f"`pycrew doctor {launcher}` checks one launch."
    elif first.startswith(HOOK_FAILED):
        advice = (
            "The launcher's call to the platform failed, and its answer above says why "
            "(an option the platform refuses, such as a partition, queue, account, memory or time limit; a "
            "missing command or interpreter, such as the python option names; credentials)."
        )
        look = f"Fix the launcher's options and check them with `pycrew doctor {launcher}`."
    elif first.startswith(REFUSED_PREFIX):
        advice = (
            "Workers must run the pycrew version (wire protocol), Python minor version and cloudpickle major "
            "version the controller runs: install them in the workers' environment (the launcher's python option "
            "chooses their interpreter; an image must be rebuilt), or run the controller with the workers' versions."
        )
    elif first.startswith(INITIALIZER_PREFIX):
        advice = (
            "The controller's initializer option runs in each worker before its first task"
            + ("; its traceback is below" if more.strip() else "")
            + ". Fix it (call it in this process to debug: initializer(*initargs)), install what it needs "
            "where the workers run, or raise seconds_initializer if it needs more time."
        )
    elif first.startswith(WALL_FIRST):
        advice = (
            "Each worker's start (the interpreter, connecting, and the initializer if one is set) takes longer "
            "than its seconds_wall (quoted above): raise seconds_wall (where a scheduler's time limit sets it, "
            "ask for a longer job or a smaller seconds_walltime_margin), or make the start shorter."
        )
    elif first.startswith(HOOK_HUNG):
        advice = (
            "The launcher did not hand back the workers it was asked to start, so none could be waited for: check "
            "that the platform answers (its API or scheduler commands, the credentials, the network to it), or raise "
            "seconds_launch if a launch takes this long there."
        )
    elif is_ended_reason(first) and FROM_OUTSIDE in first:
        advice = (
            "The workers' jobs were cancelled or deleted before they connected by something outside pycrew (a "
            "person, a cleanup job, an administrator's or the platform's policy), as the reason above says: find "
            "what did, or have it spare pycrew's jobs; where the reason says a job may also have ended at once, "
            "its log tells which."
        )
    elif is_ended_reason(first):
        advice = (
            "The platform's reason above says what to fix (e.g. the image, the python option, the worker's "
            "environment)."
        )
    else:
        advice = (
            f"Likely causes: the workers cannot reach {url} (wrong host/port, firewall, no route: set host= and "
            f"port=), the launcher's environment lacks pycrew or the right Python (check the python option), the "
            f"image or partition is missing, or seconds_launch={options.seconds_launch:g} is too short for this "
            f"platform."
        )
    return (
        f"launcher {launcher!r} of controller {controller!r} failed to start a worker {failures} times "
        f"in a row (launch_max={options.launch_max}); last reason: {first}. The worker command is: {command} (with "
        f"its token in ${TOKEN_ENV}). {advice} {look}"
        + (f"\n{more}" if more else "")
    )


def same_handle(a: Any, b: Any) -> bool:
    """Whether two handles are equal (handles are the plugin's values: comparing may fail)."""
    try:
        return bool(a == b)
    except Exception:  # a handle type whose == raises cannot be matched: not the same
        return False


def not_connected(seconds_launch: float, returned: bool, waited: float | None = None) -> str:
    """Why a launch timed out: its worker did not connect, or (``returned`` false) the
    launch hook never handed back its handle, so no worker could have been waited for (a
    hook that hung was reported as a network problem); ``waited``: seconds since the call."""
    if returned:
        return f"the worker did not connect within seconds_launch={seconds_launch:g} s"
    since = f" ({waited:.0f} s since it was called)" if waited is not None else ""
    return f"{HOOK_HUNG}{seconds_launch:g} s{since}: the launcher's call to the platform hangs, or takes longer than that"


def tls_note(server: Any) -> str:
    """For a LaunchError's reason: the TLS handshakes that failed on the controller's port,
    if any (an expired certificate failed every worker's handshake, and the error blamed the
    network)."""
    failures = getattr(server, "tls_failures", 0)
    if not failures:
        return ""
    return (
        f"; {failures} TLS handshake(s) with the controller failed since it started (the last: "
        f"{printable(getattr(server, 'last_tls_failure', ''))[:LINE_MAX]}): if those were the workers', check the "
        "controller's certificate (expired? for another host name?) and the CA the workers are given"
    )

"""The controller's last termination of its workers (``Scaler.terminate_all``).

It must end within ``seconds_terminate`` whatever the platform does, and leave nothing
running without saying so:

- it waits for launches in flight (their workers get handles only when the launch hook
  returns), first asking the launcher to cut them short (``pycrew_cancel_launches``), and
  terminations other threads started, never for the monitor's listings, which a platform
  that is down can keep busy for a minute;
- the final terminate hook call runs on a thread of its own, not behind those listings in
  the launcher's pool, and gets at least :data:`SECONDS_FINAL_MIN` even when launches ate
  the rest of the time;
- a launch that returns after this ran terminates its workers at once (``Scaler.closed``);
- workers it could not terminate in time, or whose termination failed, are named in an
  ERROR with the command that stops them later.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any

from pycrew.control.quoting import shown
from pycrew.wire.clock import capped

if TYPE_CHECKING:
    from pycrew.control.scaler import Scaler

log = logging.getLogger("pycrew.control.scaler")

#: The least time the final terminate call is given, even after launches in flight took the rest.
SECONDS_FINAL_MIN = 5.0
#: How many handles an error message lists (then "and N more").
HANDLES_SHOWN = 20


def terminate_or_keep(scaler: Scaler, pairs: list[tuple[str, Any]], reason: str) -> None:
    """Terminate workers while the controller runs (pool thread); if the hook fails (the
    platform is down), their handles go back, so that the last termination tries them again
    and names them if it fails too. After that ran, the failure is an ERROR naming them."""
    if scaler._terminate([h for _, h in pairs], reason):
        return
    with scaler._handles_lock:
        late = scaler.closed
        if not late:
            for instance, handle in pairs:
                scaler.handles.setdefault(instance, handle)
    if late:
        log.error(unterminated_message(scaler, [h for _, h in pairs], "its terminate hook failed (see the error above)"))


def terminate_all(scaler: Scaler, timeout: float) -> None:
    """Wait for launches in flight, terminate every worker, and stop the pool (see the module)."""
    start = time.monotonic()
    final_min = min(SECONDS_FINAL_MIN, timeout / 2)
    deadline = start + max(0.0, timeout - final_min)
    pending: set[Future[Any]] = set()
    with scaler._pending_lock:
        launching = any(not f.done() for f in scaler.awaited)
    if launching:  # on a thread of its own: a hook that blocks holds up nothing past the deadline
        threading.Thread(target=_cancel_launches, args=(scaler,), name=f"pycrew-cancel-{scaler.info.name}",
                         daemon=True).start()
    while time.monotonic() < deadline:
        with scaler._pending_lock:
            pending = {f for f in scaler.awaited if not f.done()}
        if not pending:
            break
        wait_futures(pending, timeout=capped(max(0.0, deadline - time.monotonic())))
    if any(not f.done() for f in pending):
        log.error(
            "controller %r: %d launch or termination call(s) of launcher %r still running after %g s of "
            "seconds_terminate=%g, given up: a worker such a call launches late is terminated when the call "
            "returns, if this process still runs; if it has ended, look for such workers with "
            "`pycrew monitor %s list --orphans`",
            scaler.info.controller, sum(not f.done() for f in pending), scaler.info.name, timeout - final_min,
            timeout, scaler.info.name,
        )
    with scaler._handles_lock:
        scaler.closed = True  # a launch returning from now on terminates its own workers
        handles = list(scaler.handles.values())
        scaler.handles.clear()
    for slot in scaler.slots:
        if slot.instance is not None:  # its worker (or launch) ends with the controller: summary() says why
            slot.exit_reason = "the controller terminated"
    if handles:
        outcome: Future[bool] = Future()

        def final() -> None:
            try:
                outcome.set_result(scaler._terminate(handles, "controller terminated"))
            except BaseException as exc:  # _terminate logs the hook's own failures; this is anything else
                outcome.set_exception(exc)

        threading.Thread(target=final, name=f"pycrew-terminate-{scaler.info.name}", daemon=True).start()
        left = max(final_min, start + timeout - time.monotonic())
        try:
            done = outcome.result(timeout=capped(left))
            why = "its terminate hook failed (see the error above)"
        except TimeoutError:
            done = False
            why = f"its terminate hook did not return within {timeout:g} s (seconds_terminate; it goes on in the background while this process runs)"
        except Exception as exc:
            done = False
            why = f"{type(exc).__name__}: {exc}"
        if not done:
            log.error(unterminated_message(scaler, handles, why))
    scaler.pool.shutdown()
    scaler.monitor_pool.shutdown()


def _cancel_launches(scaler: Scaler) -> None:
    """Ask the launcher to cut its launches in flight short (``pycrew_cancel_launches``)."""
    try:
        scaler.registry.call(scaler.spec, "pycrew_cancel_launches", launcher=scaler.info)
    except BaseException as exc:  # SystemExit too: the termination goes on
        log.warning("launcher %r: cancelling its launches in flight failed: %s: %s", scaler.info.name,
                    type(exc).__name__, exc)


def unterminated_message(scaler: Scaler, handles: list[Any], why: str) -> str:
    """The error naming the workers a termination may have left, and how to stop them."""
    ids = [str(h) for h in handles[:HANDLES_SHOWN]]
    more = f" and {len(handles) - HANDLES_SHOWN} more" if len(handles) > HANDLES_SHOWN else ""
    name = scaler.info.name
    return (
        f"controller {scaler.info.controller!r} could not make sure its {len(handles)} worker(s) on launcher "
        f"{name!r} were terminated: {why}. They may still run, or wait in the platform's queue: "
        f"{', '.join(shown(i) for i in ids)}{more}. Stop them when the platform answers again with "
        f"`pycrew monitor {name} terminate --orphans` (or list them with `pycrew monitor {name} list --orphans`)"
    )

"""Locks freed again in a forked child: :func:`free_after_fork`.

A child forked while another thread of the parent held a module's lock (the dispatcher
pickling a function, making a future's condition, the registry being read) inherits it
held, by a thread that does not exist in the child: the child's first use of pycrew would
wait for it for good. ``logging`` frees its own locks the same way.
"""

from __future__ import annotations

import os
from typing import Any


def free_after_fork(lock: Any) -> None:
    """Have ``lock`` (a ``threading.Lock`` or ``RLock``) made free again in every forked child."""
    os.register_at_fork(after_in_child=lock._at_fork_reinit)

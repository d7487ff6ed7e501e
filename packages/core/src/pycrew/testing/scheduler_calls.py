"""Worker calls for testing a scheduler launcher's builders and job scripts without a controller.

:func:`make_calls` builds the :class:`~pycrew.WorkerCall` batch core would hand to
``pycrew_launch_workers`` (each from a real :class:`~pycrew.WorkerCommand`), but running a
stand-in instead of the worker: ``python -c code`` followed by the worker's options, which
:meth:`~pycrew.WorkerCall.array_args` turns into an array's options as it does a worker's.
:data:`WHO_AM_I` is Python code with which the stand-in reads those options and finds its
instance id and token as a real worker does, so a test can check the job script's hand-over.

Public API of pycrew only: usable by a plugin in another repository.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from typing import Any

import pycrew

__all__ = ["RECORD_AND_SLEEP", "WHO_AM_I", "launcher_info", "make_calls"]

#: The address stand-ins are given: the discard port (a stand-in never dials it).
UNUSED_URL = "tcp://127.0.0.1:9"


def make_calls(
    code: str,
    n: int,
    controller_id: str = "",
    controller: str = "test-controller",
    env: dict[str, str] | None = None,
    batch: bool = True,
    first_slot: int = 1,
    launcher: str = "test",
    url: str = UNUSED_URL,
) -> list[pycrew.WorkerCall]:
    """``n`` worker calls that run ``python -c code <the worker's options>`` instead of the worker.

    Each call is built from a :class:`~pycrew.WorkerCommand` (slot ``first_slot + k``, the
    given ``launcher``, ``controller``, ``controller_id`` and ``url``), as core builds them;
    then ``-m pycrew.worker`` in its ``args`` is replaced by ``-c code``. With ``batch``
    (as core launches a scaling round) the calls share a batch key, instance ids
    ``<prefix><k>`` and tokens derived from the key
    (:meth:`~pycrew.WorkerCall.element_token`); without, each has its own token.
    """
    controller_id = controller_id or secrets.token_hex(8)
    batch_key = secrets.token_hex(16) if batch else ""
    prefix = secrets.token_hex(6) + "-" if batch else ""
    calls = []
    for k in range(n):
        slot = first_slot + k
        instance = f"{prefix}{k}" if batch else secrets.token_hex(8)
        command = pycrew.WorkerCommand(
            url=url, instance=instance, worker=slot, launcher=launcher, controller=controller, controller_id=controller_id
        )
        call = pycrew.WorkerCall.from_command(
            command,
            python=sys.executable,
            env=dict(env or {}),
            token=pycrew.WorkerCall.element_token(batch_key, instance) if batch else f"tok{secrets.token_hex(12)}",
            name=f"pycrew-{controller}-{slot}",
            batch_key=batch_key,
            batch_index=k if batch else 0,
            batch_size=n if batch else 1,
            instance_prefix=prefix,
        )
        calls.append(dataclasses.replace(call, args=("-c", code, *call.args[2:])))
    return calls


def launcher_info(options: Any, calls: list[pycrew.WorkerCall], name: str = "") -> pycrew.LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return pycrew.LauncherInfo(name or calls[0].launcher, options, calls[0].controller, calls[0].controller_id)


#: Python code a worker stand-in runs first: it reads the worker's options that follow its
#: code with :class:`~pycrew.WorkerCommand`, finds its instance id as the real worker does
#: (``--instance``, or an array element's index in ``--index-env``) and its token (the
#: secret in PYCREW_TOKEN, from which an array element derives its own), and sets
#: ``instance``, ``token`` and ``names`` (the PYCREW_TOKEN* variables it sees).
WHO_AM_I = (
    "import os, sys, pycrew; "
    "given = pycrew.WorkerCommand.parse(sys.argv[1:]); "
    "instance = given.resolve(os.environ).instance; "
    "names = ','.join(sorted(k for k in os.environ if k.startswith(pycrew.TOKEN_ENV))); "
    "secret = os.environ.get(pycrew.TOKEN_ENV, ''); "
    "token = pycrew.WorkerCall.element_token(secret, instance) if given.array else secret; "
)

#: A worker stand-in: writes its instance, token and the token variables it sees into
#: ``$OUT/<instance>``, then sleeps ``$SLEEP`` seconds (OUT, SLEEP: the calls' env).
RECORD_AND_SLEEP = WHO_AM_I + (
    "import time; open(os.path.join(os.environ['OUT'], instance), 'w').write(token + '\\n' + names); "
    "time.sleep(float(os.environ['SLEEP']))"
)

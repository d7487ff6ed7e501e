"""Worker calls for testing a scheduler launcher's builders and job scripts without a controller.

:func:`make_calls` builds the :class:`~pycrew.WorkerCall` batch core would hand to
``pycrew_launch_workers``, but running a stand-in (``python -c code``) instead of the
worker; :data:`WHO_AM_I` is Python code with which the stand-in finds its instance id and
token exactly as a real worker does, so a test can check the job script's hand-over.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

from pycrew.plugin_api import LauncherInfo, WorkerCall
from pycrew.wire.protocol import derive_token

__all__ = ["RECORD_AND_SLEEP", "WHO_AM_I", "launcher_info", "make_calls"]


def make_calls(
    code: str,
    n: int,
    controller_id: str = "",
    controller: str = "test-controller",
    env: dict[str, str] | None = None,
    batch: bool = True,
    first_slot: int = 1,
    launcher: str = "test",
) -> list[WorkerCall]:
    """``n`` worker calls that run ``python -c code --instance I --worker W`` instead of the worker.

    With ``batch`` (as core launches a scaling round) the calls share a batch key, instance
    ids ``<prefix><k>`` and tokens derived from the key; without, each has its own token.
    """
    controller_id = controller_id or secrets.token_hex(8)
    batch_key = secrets.token_hex(16) if batch else ""
    prefix = secrets.token_hex(6) + "-" if batch else ""
    calls = []
    for k in range(n):
        slot = first_slot + k
        instance = f"{prefix}{k}" if batch else secrets.token_hex(8)
        calls.append(
            WorkerCall(
                args=("-c", code, "--instance", instance, "--worker", str(slot)),
                python=sys.executable,
                env=dict(env or {}),
                token=derive_token(batch_key, instance) if batch else f"tok{secrets.token_hex(12)}",
                name=f"pycrew-{controller}-{slot}",
                launcher=launcher,
                worker=slot,
                instance=instance,
                controller=controller,
                controller_id=controller_id,
                batch_key=batch_key,
                batch_index=k if batch else 0,
                batch_size=n if batch else 1,
                instance_prefix=prefix,
            )
        )
    return calls


def launcher_info(options: Any, calls: list[WorkerCall], name: str = "") -> LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return LauncherInfo(name or calls[0].launcher, options, calls[0].controller, calls[0].controller_id)


#: Python code a worker stand-in runs first: it finds its instance id and token as the real
#: worker does (``--instance``, or ``--instance-prefix``/``--index-env``/``--index-base`` and the
#: batch key in PYCREW_TOKEN) and sets ``instance``, ``token`` and ``names`` (the PYCREW_TOKEN*
#: variables it sees).
WHO_AM_I = (
    "import hashlib, hmac, os, sys; a = dict(zip(sys.argv[1::2], sys.argv[2::2])); "
    "names = ','.join(sorted(k for k in os.environ if k.startswith('PYCREW_TOKEN'))); "
    "secret = os.environ.get('PYCREW_TOKEN', ''); "
    "instance = a.get('--instance') or a['--instance-prefix'] + str(int(os.environ[a['--index-env']]) - int(a['--index-base'])); "
    "token = hmac.new(secret.encode(), instance.encode(), hashlib.sha256).hexdigest() if '--index-env' in a else secret; "
)

#: A worker stand-in: writes its instance, token and the token variables it sees into
#: ``$OUT/<instance>``, then sleeps ``$SLEEP`` seconds (OUT, SLEEP: the calls' env).
RECORD_AND_SLEEP = WHO_AM_I + (
    "import time; open(os.path.join(os.environ['OUT'], instance), 'w').write(token + '\\n' + names); "
    "time.sleep(float(os.environ['SLEEP']))"
)

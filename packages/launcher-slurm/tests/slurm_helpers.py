"""Helpers shared by pycrew-slurm's tests (a module of their own: ``conftest`` is not importable)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pycrew import LauncherInfo, WorkerCall
from pycrew_slurm import SlurmOptions


@dataclass(frozen=True)
class SlurmCluster:
    """A reachable SLURM cluster.

    Attributes:
        conf: the ``slurm.conf`` path (also exported as ``SLURM_CONF`` for the session).
        started_here: whether this test session started it (and will stop it).
    """

    conf: str
    started_here: bool

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command against this cluster."""
        env = {**os.environ, "SLURM_CONF": self.conf}
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, check=check, timeout=60)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)


def derive_token(batch_key: str, instance: str) -> str:
    """An array element's token, as core derives it (HMAC-SHA256 of the instance under the batch key)."""
    return hmac.new(batch_key.encode(), instance.encode(), hashlib.sha256).hexdigest()


def make_calls(
    code: str,
    n: int,
    controller_id: str = "",
    controller: str = "test-controller",
    env: dict[str, str] | None = None,
    batch: bool = True,
    first_slot: int = 1,
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
                launcher="slurm",
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


def launcher_info(options: SlurmOptions, calls: list[WorkerCall]) -> LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return LauncherInfo("slurm", options, calls[0].controller, calls[0].controller_id)


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

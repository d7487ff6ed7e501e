"""A LaunchError names what it can see of the cause, beyond "the worker did not connect".

From a probe of a third-party plugin author's and a TLS user's mistakes (on 3a47cd1): a
launch hook that hung, and a controller certificate that expired after the controller was
built, both ended in a LaunchError that blamed the network, the firewall or the Python of
the workers.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pycrew
from pycrew_local import LocalOptions
from pycrew_local.plugin import LocalPlugin


class Hanging(LocalPlugin):
    """The local launcher, whose launch hook waits (for the test's end) before starting anything."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        self.release.wait(60)
        return [None] * len(calls)  # started nothing: nothing to terminate

    def terminate(self, launcher: pycrew.LauncherInfo, options: LocalOptions, handles: Sequence[Any]) -> None:
        super().terminate(launcher, options, [h for h in handles if h is not None])


@pytest.fixture
def hanging(pycrew_plugin: Any) -> Iterator[Hanging]:
    plugin = pycrew_plugin(Hanging(), name="hanging")
    yield plugin
    plugin.release.set()


def test_a_launch_hook_that_never_returns_is_named_as_the_cause(hanging: Hanging, make_controller) -> None:
    c = make_controller("hanging", workers=1, launch_max=1, seconds_launch=2).start()
    future = c.submit(abs, -1)
    with pytest.raises(pycrew.LaunchError) as raised:
        future.result(timeout=60)
    message = str(raised.value)
    assert "the launch hook (pycrew_launch_workers) had not returned within seconds_launch=2 s" in message, message
    assert "check that the platform answers" in message and "cannot reach" not in message, message
    hanging.release.set()  # before the controller's teardown, which waits for the launch call


def _expiring(seconds: float) -> tuple[str, str]:
    """A self-signed key and certificate for 127.0.0.1 that expire ``seconds`` from now (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(seconds=seconds))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem.decode(), cert.public_bytes(serialization.Encoding.PEM).decode()


def test_tls_handshakes_that_failed_are_named_when_no_worker_connects(make_controller) -> None:
    """The certificate expires between the controller's build (which checks it) and the
    workers' launch: every worker's handshake fails, and the LaunchError says so."""
    key, cert = _expiring(3)
    tls = pycrew.TLS(mode="custom", key=key, certificate=cert, ca=cert)
    c = make_controller("local", workers=1, host="127.0.0.1", tls=tls, launch_max=1, seconds_launch=4, workers_at_start=0)
    c.start()
    time.sleep(4)  # expired now
    future = c.submit(abs, -1)
    with pytest.raises(pycrew.LaunchError) as raised:
        future.result(timeout=60)
    message = str(raised.value)
    assert "TLS handshake(s) with the controller failed since it started" in message, message
    assert "expired" in message.lower(), message


class Slow(LocalPlugin):
    """The local launcher behind a slow platform: its launch hook takes 2.5 s to return."""

    name = "slowsubmit"

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        time.sleep(2.5)
        return super().launch(launcher, options, calls)


def test_a_worker_gets_seconds_launch_to_connect_from_when_its_launch_hook_returned(make_controller, tmp_path, pycrew_plugin) -> None:
    """A submit that takes most of seconds_launch (sbatch answering in 20 s, seconds_launch=10)
    failed every launch: the worker's time to connect was counted from the launch's start
    (a probe of SLURM, on 520ce5c). The hook and the worker now get seconds_launch each:
    here 2.5 s for the hook, then a worker whose interpreter takes a second to start."""
    import sys

    python = tmp_path / "slow-python"
    python.write_text(f"#!/bin/sh\nsleep 1\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    pycrew_plugin(Slow(), name="slowsubmit")
    c = make_controller("slowsubmit", workers=1, launch_max=1, seconds_launch=3, python=str(python)).start()
    assert c.submit(abs, -4).result(timeout=60) == 4
    assert c.summary().launcher["launch_failures"] == 0

"""What workers trust (``PYCREW_TLS_CA``), end to end on the local launcher.

On ce906e2 a worker given a CA it could not load (cut short by a platform, say) died with a raw
``ssl.SSLError`` (socket) or pynng ``CryptoError`` (nng) traceback and exit code 1; and a CA
bundle of 220 KB (system CAs and the controller's) made every launch fail with ``OSError:
[Errno 7] Argument list too long``. Workers now get only the CA certificates that verify the
controller's chain: these tests check that chains with an intermediate still verify on both wires.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pycrew

WIRES = ["socket", "nng"]


def make(name: str, issuer: tuple[Any, x509.Certificate] | None = None, *, ca: bool = False) -> tuple[Any, x509.Certificate]:
    """A key and a certificate for ``name`` (valid for a day), signed by ``issuer`` (default: itself)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]), critical=False)
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def pem(made: tuple[Any, x509.Certificate]) -> str:
    return made[1].public_bytes(serialization.Encoding.PEM).decode()


def key_pem(made: tuple[Any, x509.Certificate]) -> str:
    return made[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


ROOT = make("pycrew e2e root", ca=True)
INTERMEDIATE = make("pycrew e2e intermediate", ROOT, ca=True)
LEAF = make("127.0.0.1", INTERMEDIATE)


def unrelated_cas(total_bytes: int) -> str:
    """Self-signed CA certificates of no concern to the controller, about ``total_bytes`` of them (one key: fast)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    out: list[str] = []
    while sum(map(len, out)) < total_bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"unrelated CA {len(out)}")])
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256())
        )
        out.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return "".join(out)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("certificate", "ca"),
    [
        (pem(LEAF) + pem(INTERMEDIATE), pem(ROOT)),
        (pem(LEAF), pem(INTERMEDIATE) + pem(ROOT)),
    ],
    ids=["chain-with-intermediate", "intermediate-in-ca"],
)
def test_workers_verify_a_chain_with_an_intermediate_given_a_bundle_of_other_cas(make_controller, wire: str, certificate: str, ca: str) -> None:
    bundle = unrelated_cas(20_000) + ca + unrelated_cas(20_000)
    tls = pycrew.TLS(mode="custom", key=key_pem(LEAF), certificate=certificate, ca=bundle)
    c = make_controller("local", workers=1, host="127.0.0.1", wire=wire, tls=tls, launch_max=1)
    assert c.launcher.call().environment()[pycrew.TLS_CA_ENV] == ca, "workers got more (or less) than the CAs they need"
    assert c.submit(abs, -5).result(timeout=60) == 5


def test_a_ca_bundle_larger_than_an_environment_variable_may_be_launches_workers(make_controller) -> None:
    bundle = unrelated_cas(220_000) + pem(ROOT)
    tls = pycrew.TLS(mode="custom", key=key_pem(LEAF), certificate=pem(LEAF) + pem(INTERMEDIATE), ca=bundle)
    c = make_controller("local", workers=1, host="127.0.0.1", tls=tls, launch_max=1)
    assert c.submit(abs, -6).result(timeout=60) == 6  # on ce906e2: LaunchError, "Argument list too long"


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("cut", [200, -40], ids=["truncated", "end-line-cut"])
def test_a_worker_given_a_ca_it_cannot_load_exits_2_naming_pycrew_tls_ca(make_controller, wire: str, cut: int) -> None:
    c = make_controller("local", workers=1, host="127.0.0.1", tls="automatic", wire=wire, workers_at_start=0).start()
    call = c.launcher.call(worker=1, url=c.url)
    ca = call.env[pycrew.TLS_CA_ENV]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYCREW_")}, pycrew.TOKEN_ENV: call.token,
           pycrew.TLS_CA_ENV: ca[:cut]}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "5"], env=env, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "pycrew worker: $PYCREW_TLS_CA is not PEM certificates TLS can load" in proc.stderr, proc.stderr[-2000:]

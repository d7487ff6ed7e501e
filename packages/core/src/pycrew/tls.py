"""TLS for the link between dispatcher and workers: modes none, automatic and custom.

``automatic`` makes a private key and a self-signed certificate for the controller's
host when the controller starts; workers receive the certificate (not a secret) in the
environment variable ``PYCREW_TLS_CA`` and trust only it. ``custom`` uses a key and
certificate you provide (PEM text or file paths) and the CA workers should trust.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pycrew.errors import OptionsError

Mode = Literal["none", "automatic", "custom"]


def _pem(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if "-----BEGIN" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise OptionsError(f"tls option {what!r} must be PEM text or a path to a PEM file, got {value!r}")
    return path.read_text()


@dataclass(frozen=True)
class TLS:
    """TLS settings of a controller.

    Attributes:
        mode: ``"none"`` (plain TCP), ``"automatic"`` (self-signed, made per controller)
            or ``"custom"`` (``key`` and ``certificate`` required).
        key: the server's private key (PEM text or path), custom mode.
        certificate: the server's certificate chain (PEM text or path), custom mode.
        ca: the certificate workers trust (PEM text or path); defaults to ``certificate``.
        server_name: the name workers check the certificate against; defaults to the host.
    """

    mode: Mode = "none"
    key: str | None = None
    certificate: str | None = None
    ca: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("none", "automatic", "custom"):
            raise OptionsError(f"tls mode must be 'none', 'automatic' or 'custom', got {self.mode!r}")
        if self.mode == "custom" and (self.key is None or self.certificate is None):
            raise OptionsError("tls mode 'custom' needs both key= and certificate= (PEM text or file paths)")

    @classmethod
    def coerce(cls, value: object) -> TLS:
        """Accept a :class:`TLS`, a mode string, ``True``/``False`` or ``None``."""
        if isinstance(value, TLS):
            return value
        if value is None or value is False:
            return cls("none")
        if value is True:
            return cls("automatic")
        if isinstance(value, str):
            return cls(value)  # type: ignore[arg-type]
        raise OptionsError(f"tls must be 'none', 'automatic', 'custom', a pycrew.TLS or a bool, got {value!r}")

    @property
    def enabled(self) -> bool:
        """Whether TLS is on."""
        return self.mode != "none"

    def materialize(self, host: str) -> tuple[str, str, str, str]:
        """``(key_pem, cert_pem, ca_pem, server_name)`` for a controller listening on ``host``."""
        name = self.server_name or host
        if self.mode == "automatic":
            key, cert = self_signed(name)
            return key, cert, cert, name
        key_pem = _pem(self.key, "key")
        cert_pem = _pem(self.certificate, "certificate")
        ca_pem = _pem(self.ca, "ca") or cert_pem
        assert key_pem is not None and cert_pem is not None and ca_pem is not None
        _check_material(key_pem, cert_pem, ca_pem, self.ca is not None)
        return key_pem, cert_pem, ca_pem, name


def _check_material(key_pem: str, cert_pem: str, ca_pem: str, ca_given: bool) -> None:
    """Raise :class:`OptionsError` (naming the option) for a key, certificate or CA that TLS
    cannot use: found here, not by each worker that then fails to connect."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from pycrew.wire.transport.sockets import client_context, server_context

    try:
        serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key
        raise OptionsError(f"tls option 'key' is not a usable PEM private key (unencrypted): {exc}") from None
    try:
        x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise OptionsError(f"tls option 'certificate' is not a PEM certificate: {exc}") from None
    try:
        server_context(key_pem, cert_pem)
    except ssl.SSLError as exc:
        raise OptionsError(
            f"tls options 'key' and 'certificate' do not belong together ({exc.reason or exc}): give the private key "
            "of the certificate's public key (the first certificate of the chain)"
        ) from None
    try:
        client_context(ca_pem)
    except ssl.SSLError as exc:
        what = "'ca'" if ca_given else "'certificate' (which workers trust when no ca= is given)"
        raise OptionsError(f"tls option {what} cannot be trusted by the workers: {exc.reason or exc}") from None


def self_signed(name: str, days: int = 30) -> tuple[str, str]:
    """A new EC private key and a self-signed certificate for ``name`` (an IP or a DNS name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        alt = x509.DNSName(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()

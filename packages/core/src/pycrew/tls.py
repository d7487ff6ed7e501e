"""TLS for the link between dispatcher and workers: modes none, automatic and custom.

``automatic`` makes a private key and a self-signed certificate for the controller's
host when the controller starts; workers receive the certificate (not a secret) in the
environment variable ``PYCREW_TLS_CA`` and trust only it. ``custom`` uses a key and
certificate you provide (PEM text or file paths) and the CA workers should trust. The
private key stays in the controller and is never printed (a path is); workers receive only
the CA certificates that verify the controller's, checked when the controller is built.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from pycrew.errors import OptionsError

if TYPE_CHECKING:
    from cryptography import x509

Mode = Literal["none", "automatic", "custom"]
#: Most bytes of the CA in ``PYCREW_TLS_CA``: Linux caps an environment string at 128 KiB ("Argument list too long").
CA_BYTES_MAX = 100 * 1024
_FIELDS = ("key", "certificate", "ca")
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\r?\n?", re.DOTALL)
_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL)


def hide_private_keys(text: str) -> str:
    """``text`` with every PEM private key in it replaced by ``<PEM private key, hidden>``."""
    return _PRIVATE_KEY.sub("<PEM private key, hidden>", text)


def _brief(value: object) -> str:
    """``repr(value)`` for a message: private keys hidden, at most 120 characters."""
    text = hide_private_keys(repr(value))
    return text if len(text) <= 120 else text[:117] + "..."


def _looks_like_path(value: str) -> bool:
    """Whether ``value`` (not PEM text) may be named in a message: one line, no PEM marker, not a base64 run."""
    return "\n" not in value and "-----" not in value and len(value) <= 4096 and not re.fullmatch(r"[A-Za-z0-9+/=]{40,}", value)


def _shown(value: str | None, what: str) -> str:
    """How :class:`TLS`'s repr shows a key, certificate or CA: a path as it is, PEM text never."""
    if value is None or ("-----BEGIN" not in value and _looks_like_path(value)):
        return repr(value)
    if "-----BEGIN" in value and "PRIVATE KEY" not in value and what != "key":
        return f"<PEM text, {value.count('-----BEGIN CERTIFICATE-----')} certificate(s)>"
    return "<PEM text, hidden>"


def _as_text(value: object, what: str) -> str | None:
    """A key, certificate or CA as given (str, pathlib.Path, PEM bytes) as a str: PEM text or a path."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, (bytes, bytearray)):
        if b"-----BEGIN" in value:  # PEM is ASCII: a stray byte fails the parse, which names the option
            return bytes(value).decode(errors="replace")
        raise OptionsError(
            f"tls option {what!r} got {len(value)} bytes that are not PEM text (no '-----BEGIN' line; DER?): give PEM "
            "text, or the path of a PEM file (str or pathlib.Path)"
        )
    raise OptionsError(
        f"tls option {what!r} must be PEM text (str or bytes) or the path of a PEM file (str or pathlib.Path), "
        f"got {_brief(value)} ({type(value).__name__})"
    )


def _pem(value: str, what: str) -> str:
    """The PEM text of option ``what``: ``value`` itself, or the file it names (OptionsError when neither)."""
    if "-----BEGIN" in value:
        return value
    if not value.strip():
        raise OptionsError(f"tls option {what!r} is empty; give PEM text or the path of a PEM file")
    if not _looks_like_path(value):
        raise OptionsError(
            f"tls option {what!r} is neither PEM text (it has no '-----BEGIN ...-----' line) nor the path of a file "
            f"(got text of {len(value)} characters, not shown); give the PEM text whole, from its '-----BEGIN' line "
            "to its '-----END' line, or the path of a PEM file"
        )
    path = Path(value).expanduser()
    said = f"{what!r} file {value!r}" + ("" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OptionsError(f"tls option {said} does not exist; give PEM text or the path of a PEM file") from None
    except OSError as exc:
        raise OptionsError(f"tls option {said} cannot be read: {exc.strerror or exc}; check its path and permissions") from None
    if b"-----BEGIN" not in data:
        tool = "pkey" if what == "key" else "x509"
        raise OptionsError(f"tls option {said} is " + (
            f"DER (binary), not PEM; convert it with `openssl {tool} -inform der -in {path} -out {what}.pem`"
            if data[:1] == b"\x30" else "not PEM: it has no '-----BEGIN ...-----' line"))
    return data.decode(errors="replace")  # PEM is ASCII: a stray byte fails the parse, which names the option


def _blocks(pem: str, kind: str) -> list[str]:
    """The PEM blocks of ``kind`` (e.g. ``"CERTIFICATE"``) in ``pem``, in order, duplicates dropped."""
    return list(dict.fromkeys(m.group(0).rstrip() + "\n" for m in _BLOCK.finditer(pem) if m.group(1) == kind))


@dataclass(frozen=True, repr=False)
class TLS:
    """TLS settings of a controller.

    ``key``, ``certificate`` and ``ca`` each take PEM text (``str`` or ``bytes``) or the path
    of a PEM file (``str`` or :class:`pathlib.Path`; ``~`` is expanded, a relative path is
    relative to the working directory, or to the configuration file that gives it).

    Attributes:
        mode: ``"none"`` (plain TCP), ``"automatic"`` (self-signed, made per controller)
            or ``"custom"`` (``key`` and ``certificate`` required).
        key: the server's private key (PEM text or path), custom mode; never shown.
        certificate: the server's certificate chain (PEM text or path), custom mode.
        ca: the certificate(s) workers trust (PEM text or path); defaults to ``certificate``.
            Workers receive only those that can verify ``certificate`` (never a private key).
        server_name: the name workers check the certificate against; defaults to the host.

    Raises:
        OptionsError: an unknown mode, custom mode without ``key`` or ``certificate``, or a
            value of the wrong type.
    """

    mode: Mode = "none"
    key: str | os.PathLike[str] | bytes | None = None
    certificate: str | os.PathLike[str] | bytes | None = None
    ca: str | os.PathLike[str] | bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("none", "automatic", "custom"):
            raise OptionsError(f"tls mode must be 'none', 'automatic' or 'custom', got {_brief(self.mode)}")
        for what in _FIELDS:
            object.__setattr__(self, what, _as_text(getattr(self, what), what))
        if self.server_name is not None and not isinstance(self.server_name, str):
            raise OptionsError(f"tls option 'server_name' must be a host name or IP (str), got {_brief(self.server_name)}")
        if self.mode == "custom" and (self.key is None or self.certificate is None):
            raise OptionsError("tls mode 'custom' needs both key= and certificate= (PEM text or file paths)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{what}={_shown(getattr(self, what), what)}" for what in _FIELDS)  # str or None: __post_init__
        return f"TLS(mode={self.mode!r}, {fields}, server_name={self.server_name!r})"

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
        raise OptionsError(f"tls must be 'none', 'automatic', 'custom', a pycrew.TLS or a bool, got {_brief(value)}")

    @property
    def enabled(self) -> bool:
        """Whether TLS is on."""
        return self.mode != "none"

    def materialize(self, host: str) -> tuple[str, str, str, str]:
        """``(key_pem, cert_pem, ca_pem, server_name)`` for a controller listening on ``host``; ``cert_pem`` and
        ``ca_pem`` (what workers receive) hold certificates only, ``ca_pem`` only those that verify ``cert_pem``.

        Raises:
            OptionsError: a key, certificate or CA that cannot be read or used, a certificate out of date or
                not valid for ``server_name`` (or ``host``), a CA that did not sign it or is too large.
        """
        name = self.server_name or host
        if self.mode == "automatic":
            key, cert = self_signed(name)
            return key, cert, cert, name
        key_text, cert_text, ca_text = (cast("str | None", getattr(self, what)) for what in _FIELDS)
        assert key_text is not None and cert_text is not None  # __post_init__ made it so
        key_pem, cert_pem = _pem(key_text, "key"), _pem(cert_text, "certificate")
        cert_pem, ca_pem = _check_material(key_pem, cert_pem, None if ca_text is None else _pem(ca_text, "ca"), name)
        return key_pem, cert_pem, ca_pem, name


def _check_material(key_pem: str, cert_pem: str, ca_text: str | None, name: str) -> tuple[str, str]:
    """``(cert_pem, ca_pem)``: the certificates of ``cert_pem``, and those of ``ca_text`` (default:
    ``cert_pem``) that verify them, checked by a TLS handshake in memory against ``name``.

    Raises :class:`OptionsError` (naming the option) for a key, certificate or CA that TLS
    cannot use: found here, not by each worker that then fails to connect.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from pycrew.wire.transport.sockets import server_context

    try:
        serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key
        raise OptionsError(f"tls option 'key' is not a usable PEM private key (unencrypted): {exc}") from None
    blocks = _blocks(cert_pem, "CERTIFICATE")
    try:
        if not blocks:
            raise ValueError("it has no '-----BEGIN CERTIFICATE-----' block")
        chain = [x509.load_pem_x509_certificate(block.encode()) for block in blocks]
    except ValueError as exc:
        raise OptionsError(f"tls option 'certificate' is not a PEM certificate: {exc}") from None
    _check_dates(chain[0])
    cert_pem = "".join(blocks)  # a private key in the same file stays out of what is passed on
    try:
        server = server_context(key_pem, cert_pem)
    except ssl.SSLError as exc:
        raise OptionsError(
            f"tls options 'key' and 'certificate' do not belong together ({exc.reason or exc}): give the private key "
            "of the certificate's public key (the first certificate of the chain)"
        ) from None
    what = "'ca'" if ca_text is not None else "'certificate' (which workers trust when no ca= is given)"
    trusted = _blocks(cert_pem if ca_text is None else ca_text, "CERTIFICATE")
    if not trusted:
        raise OptionsError(f"tls option {what} cannot be trusted by the workers: it has no '-----BEGIN CERTIFICATE-----' block")
    problem: ssl.SSLError | None = None
    for ca_pem in dict.fromkeys(c for c in ("".join(_issuers(chain, trusted)), "".join(trusted)) if c):
        problem = _handshake(server, ca_pem, name)  # the certificates that verify the chain first, else all
        if problem is None:
            break
    if problem is not None:
        raise OptionsError(_trust_problem(problem, what, name, chain))
    size = len(ca_pem.encode())
    if size > CA_BYTES_MAX:
        raise OptionsError(
            f"tls option {what} is too large for workers: the certificates that verify the controller's take {size} "
            f"bytes, more than {CA_BYTES_MAX} in the environment variable PYCREW_TLS_CA (Linux refuses one over 128 "
            "KiB: every launch would fail with 'Argument list too long'); give ca= only the CA certificate that "
            "signed the controller's certificate chain (its root)"
        )
    return cert_pem, ca_pem


def _check_dates(cert: x509.Certificate) -> None:
    """Raise :class:`OptionsError` when the controller's certificate is expired or not valid yet."""
    now = datetime.datetime.now(datetime.UTC)
    after, before = (  # the *_utc properties since cryptography 42
        getattr(cert, f"{which}_utc", None) or getattr(cert, which).replace(tzinfo=datetime.UTC)
        for which in ("not_valid_after", "not_valid_before")
    )
    if not before <= now <= after:
        when = f"expired on {after:%Y-%m-%d %H:%M} UTC (its notAfter)" if after < now else (
            f"is not valid before {before:%Y-%m-%d %H:%M} UTC (its notBefore; now {now:%Y-%m-%d %H:%M})")
        raise OptionsError(f"tls option 'certificate' {when}: workers would reject it; renew it, or check this machine's clock")


def _issuers(chain: list[x509.Certificate], blocks: list[str]) -> list[str]:
    """The blocks of ``blocks`` on the way from the chain's first certificate up to its root: the
    certificates that issued it or one of its issuers (found in the chain or ``blocks``), or it itself."""
    from cryptography import x509

    parsed: list[tuple[str, x509.Certificate]] = []
    for block in blocks:
        try:
            with warnings.catch_warnings():  # system CA bundles hold old certificates cryptography frowns at
                warnings.simplefilter("ignore")
                parsed.append((block, x509.load_pem_x509_certificate(block.encode())))
        except ValueError:  # one it cannot read cannot be on the way (if it were, all of them are handed on)
            continue
    pool = [*chain, *(cert for _, cert in parsed)]
    reached, frontier = [chain[0]], [chain[0]]
    while frontier:
        cert = frontier.pop()
        for issuer in pool:
            if issuer.subject == cert.issuer and issuer not in reached and _issued(cert, issuer):
                reached.append(issuer)
                frontier.append(issuer)
    return [block for block, cert in parsed if cert in reached]


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` (whose subject is ``cert``'s issuer) signed ``cert``."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return False
    except Exception:  # an algorithm cryptography cannot check here: keep it (one certificate too many is harmless)
        return True
    return True


def _handshake(server: ssl.SSLContext, ca_pem: str, name: str) -> ssl.SSLError | None:
    """The error of a worker trusting ``ca_pem`` that connects to ``server`` expecting ``name``
    (a TLS handshake in memory, as the worker's), or ``None`` when it succeeds."""
    from pycrew.wire.transport.sockets import client_context

    try:
        client = client_context(ca_pem)
    except ssl.SSLError as exc:
        return exc
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    pending = [client.wrap_bio(c_in, c_out, server_hostname=name), server.wrap_bio(s_in, s_out, server_side=True)]
    for _ in range(20):
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return exc
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        if not pending:
            return None
    return ssl.SSLError("the TLS handshake did not complete")


def _trust_problem(exc: ssl.SSLError, what: str, name: str, chain: list[x509.Certificate]) -> str:
    """The message of an :class:`OptionsError` for a worker's failed handshake ``exc``."""
    from cryptography import x509

    if not isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls option {what} cannot be trusted by the workers: {exc.reason or exc}"
    reason = exc.verify_message or str(exc)
    if exc.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        try:
            names = [str(n.value) for n in chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
        except x509.ExtensionNotFound:
            names = []
        return (
            f"tls option 'certificate' is not valid for {name!r}, the name workers check it against (server_name=, "
            f"else the controller's host): it names {', '.join(names) or 'no DNS name or IP'}; give a certificate "
            "for that name, or set server_name= (or host=) to a name it holds"
        )
    if exc.verify_code in (9, 10):  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
        return f"tls option {what}: a certificate of the chain workers verify is out of date ({reason}); renew it"
    said = "did not sign 'certificate'" if what == "'ca'" else "does not verify itself"
    return (
        f"tls option {what} {said} (issued by {chain[0].issuer.rfc4514_string()}): workers would reject the "
        f"controller ({reason}); give ca= the CA certificate that signed it (its root, with any intermediate "
        "certificates after the server's in certificate=)"
    )


def nng_problem(key_pem: str, cert_pem: str) -> str | None:
    """Why NNG's TLS (mbedTLS) cannot serve with this key and certificate, or ``None`` when it can."""
    import pynng

    try:
        pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, own_key_string=key_pem, own_cert_string=cert_pem)
    except pynng.NNGException as exc:
        from cryptography.hazmat.primitives import serialization

        kind = type(serialization.load_pem_private_key(key_pem.encode(), password=None)).__name__
        kind = kind.removeprefix("_").replace("PrivateKey", "") or "this"
        return (
            f"the wire 'nng' (mbedTLS) cannot use the TLS key and certificate ({kind} key: {exc}); give an RSA or "
            "ECDSA (P-256, P-384) key and certificate, or use wire='socket'"
        )
    return None


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

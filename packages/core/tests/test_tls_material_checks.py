"""A custom TLS key, certificate or CA is checked when the controller is built, as workers would check it.

On ce906e2 an expired or not yet valid certificate, one for another name than workers check,
a ``ca`` that did not sign it, an Ed25519 key on the nng wire (NNG's mbedTLS has no Ed25519), a
CA bundle too large for an environment variable (``Argument list too long`` at every launch),
and keys or certificates given as ``pathlib.Path``, bytes, DER or an int all passed the build:
workers then failed ``launch_max`` times, or the build raised TypeError or UnicodeDecodeError.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

import pycrew
from pycrew import tls as pycrew_tls

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Made:
    key: Any
    cert: x509.Certificate

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def make(name: str = "127.0.0.1", issuer: Made | None = None, *, ca: bool = False, names: list[str] | None = None,
         start: float = -1, end: float = 1, key: Any = None) -> Made:
    """A certificate for ``name`` (valid ``start`` to ``end`` days from now), signed by ``issuer`` (default: itself)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt: list[x509.GeneralName] = []
    for n in names if names is not None else [name]:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=start))
        .not_valid_after(NOW + datetime.timedelta(days=end))
        .add_extension(x509.BasicConstraints(ca=ca or issuer is None, path_length=None), critical=True)
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return Made(key, builder.sign(issuer.key if issuer else key, algorithm))


ROOT = make("pycrew test root", ca=True, names=[])
INTERMEDIATE = make("pycrew test intermediate", ROOT, ca=True, names=[])
LEAF = make("127.0.0.1", INTERMEDIATE)
UNRELATED = [make(f"unrelated CA {i}", ca=True, names=[], key=ROOT.key) for i in range(3)]


def build(**tls: Any) -> pycrew.Controller:
    return pycrew.controller("local", host="127.0.0.1", tls=pycrew.TLS(mode="custom", **tls))


def worker_ca(c: pycrew.Controller) -> str:
    return c.launcher.call().environment()[pycrew.TLS_CA_ENV]


# -- what workers are given to trust ------------------------------------------------------------------


def test_workers_get_only_the_bundles_ca_that_signed_the_chain() -> None:
    bundle = "".join(u.pem for u in UNRELATED[:2]) + ROOT.pem + UNRELATED[2].pem
    c = build(key=LEAF.key_pem, certificate=LEAF.pem + INTERMEDIATE.pem, ca=bundle)
    assert worker_ca(c) == ROOT.pem, worker_ca(c)


def test_workers_get_the_intermediate_and_root_when_the_chain_has_only_the_leaf() -> None:
    bundle = UNRELATED[0].pem + INTERMEDIATE.pem + UNRELATED[1].pem + ROOT.pem
    c = build(key=LEAF.key_pem, certificate=LEAF.pem, ca=bundle)
    assert worker_ca(c) == INTERMEDIATE.pem + ROOT.pem, worker_ca(c)


def test_a_ca_bundle_over_the_environment_limit_that_holds_few_needed_certificates_is_accepted() -> None:
    bundle = "".join(make(f"unrelated {i}", ca=True, names=[], key=ROOT.key).pem for i in range(300)) + ROOT.pem
    assert len(bundle) > 128 * 1024
    c = build(key=LEAF.key_pem, certificate=LEAF.pem + INTERMEDIATE.pem, ca=bundle)
    assert worker_ca(c) == ROOT.pem


def test_a_ca_too_large_for_the_environment_fails_when_built_naming_ca_and_the_limit() -> None:
    big_root = make("big root", ca=True, names=[f"host-{i}-{'x' * 40}.example.com" for i in range(2000)])
    leaf = make("127.0.0.1", big_root)
    with pytest.raises(pycrew.OptionsError, match=rf"tls option 'ca' is too large for workers: .* \d+ bytes, more than "
                                                  rf"{getattr(pycrew_tls, 'CA_BYTES_MAX', 102400)} in the environment variable PYCREW_TLS_CA.*give ca="):
        build(key=leaf.key_pem, certificate=leaf.pem, ca=big_root.pem)


# -- the certificate, as workers check it -------------------------------------------------------------


@pytest.mark.parametrize(
    ("made", "said"),
    [
        (make(start=-3, end=-1), r"'certificate' expired on .* UTC \(its notAfter\)"),
        (make(start=1, end=3), r"'certificate' is not valid before .* UTC \(its notBefore"),
        (make(names=["10.9.9.9"]), r"'certificate' is not valid for '127.0.0.1'.*: it names 10.9.9.9.*server_name="),
        (make("controller.example"), r"'certificate' is not valid for '127.0.0.1'.*it names controller.example"),
    ],
    ids=["expired", "not-yet-valid", "other-ip", "dns-name-without-server_name"],
)
@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_a_certificate_workers_would_reject_fails_when_built(made: Made, said: str, wire: str) -> None:
    with pytest.raises(pycrew.OptionsError, match=said):
        pycrew.controller("local", host="127.0.0.1", wire=wire, tls=pycrew.TLS(mode="custom", key=made.key_pem, certificate=made.pem))


def test_a_certificate_for_the_server_name_is_accepted_and_another_name_is_not() -> None:
    named = make("controller.example")
    assert build(key=named.key_pem, certificate=named.pem, server_name="controller.example").tls.enabled
    with pytest.raises(pycrew.OptionsError, match=r"not valid for 'elsewhere.example'.*it names controller.example"):
        build(key=named.key_pem, certificate=named.pem, server_name="elsewhere.example")


def test_a_ca_that_did_not_sign_the_certificate_fails_when_built() -> None:
    with pytest.raises(pycrew.OptionsError, match=r"'ca' did not sign 'certificate' \(issued by CN=pycrew test intermediate"):
        build(key=LEAF.key_pem, certificate=LEAF.pem + INTERMEDIATE.pem, ca=UNRELATED[0].pem)


def test_a_leaf_without_its_ca_fails_when_built_and_says_to_give_ca() -> None:
    with pytest.raises(pycrew.OptionsError, match=r"'certificate' \(which workers trust when no ca= is given\).*give ca="):
        build(key=LEAF.key_pem, certificate=LEAF.pem + INTERMEDIATE.pem)


def test_an_expired_root_fails_when_built() -> None:
    old_root = make("old root", ca=True, names=[], start=-3, end=-1)
    leaf = make("127.0.0.1", old_root)
    with pytest.raises(pycrew.OptionsError, match=r"'ca': a certificate of the chain workers verify is out of date"):
        build(key=leaf.key_pem, certificate=leaf.pem, ca=old_root.pem)


def test_an_ed25519_key_fails_when_built_on_the_nng_wire_and_works_on_the_socket_wire() -> None:
    made = make(key=ed25519.Ed25519PrivateKey.generate())
    tls = pycrew.TLS(mode="custom", key=made.key_pem, certificate=made.pem)
    with pytest.raises(pycrew.OptionsError, match=r"tls option 'key': the wire 'nng' \(mbedTLS\) cannot use .*Ed25519.*wire='socket'"):
        pycrew.controller("local", host="127.0.0.1", wire="nng", tls=tls)
    assert pycrew.controller("local", host="127.0.0.1", wire="socket", tls=tls).tls.enabled


def test_a_controller_built_directly_with_a_key_nng_cannot_use_blames_the_key_not_host_or_port() -> None:
    made = make(key=ed25519.Ed25519PrivateKey.generate())
    c = pycrew.Controller("local", host="127.0.0.1", wire="nng", tls=pycrew.TLS(mode="custom", key=made.key_pem, certificate=made.pem))
    try:
        with pytest.raises(pycrew.ControllerError, match=r"cannot listen on .*cannot use the TLS key") as raised:
            c.start()
        assert "choose another host" not in str(raised.value), str(raised.value)
    finally:
        c.terminate()


# -- how the key, certificate and CA may be given ----------------------------------------------------------


def test_paths_may_be_pathlib_paths_and_pem_may_be_bytes(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text(LEAF.key_pem)
    (tmp_path / "c.pem").write_text(LEAF.pem + INTERMEDIATE.pem)
    c = build(key=tmp_path / "k.pem", certificate=tmp_path / "c.pem", ca=ROOT.pem.encode())
    assert worker_ca(c) == ROOT.pem
    assert build(key=LEAF.key_pem.encode(), certificate=(LEAF.pem + INTERMEDIATE.pem).encode(), ca=ROOT.pem).tls.enabled


@pytest.mark.parametrize("value", [5, 2.5, ["a.pem"]], ids=["int", "float", "list"])
def test_a_key_of_another_type_is_an_options_error_naming_key(value: object) -> None:
    with pytest.raises(pycrew.OptionsError, match=rf"tls option 'key' must be PEM text .* got .*\({type(value).__name__}\)"):
        pycrew.TLS(mode="custom", key=value, certificate=LEAF.pem)  # type: ignore[arg-type]


@pytest.mark.parametrize(("what", "tool"), [("key", "pkey"), ("certificate", "x509")])
def test_a_der_file_says_it_is_der_and_how_to_convert_it(tmp_path: Path, what: str, tool: str) -> None:
    files = {"key": LEAF.key_pem, "certificate": LEAF.pem}
    der = LEAF.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                                 ) if what == "key" else LEAF.cert.public_bytes(serialization.Encoding.DER)
    (tmp_path / f"{what}.der").write_bytes(der)
    given = {**files, what: str(tmp_path / f"{what}.der")}
    with pytest.raises(pycrew.OptionsError, match=rf"'{what}' file .* is DER \(binary\), not PEM; convert it with `openssl {tool} -inform der"):
        build(**given, ca=ROOT.pem)


def test_an_unreadable_key_file_is_an_options_error_naming_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "server.key"
    path.write_text(LEAF.key_pem)
    real = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod 000 does not stop root, who may run the tests
    with pytest.raises(pycrew.OptionsError, match=r"tls option 'key' file .*server.key' cannot be read: Permission denied"):
        build(key=str(path), certificate=LEAF.pem, ca=ROOT.pem)


def test_a_missing_relative_path_says_it_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pycrew.OptionsError, match=rf"'key' file 'keys/server.key' \(relative to the working directory {tmp_path}\) does not exist"):
        build(key="keys/server.key", certificate=LEAF.pem)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory, no user file, no PYCREW_P_* overrides; the working directory is elsewhere."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in [v for v in os.environ if v.startswith("PYCREW_P_")]:
        monkeypatch.delenv(var)
    (tmp_path / "project" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project" / "deeper")  # the project file is found upwards
    return tmp_path / "project"


def test_relative_paths_in_pycrew_toml_are_relative_to_the_file(project: Path) -> None:
    (project / "tls").mkdir()
    (project / "tls" / "server.key").write_text(LEAF.key_pem)
    (project / "tls" / "server.crt").write_text(LEAF.pem + INTERMEDIATE.pem)
    (project / "tls" / "root.crt").write_text(ROOT.pem)
    (project / "pycrew.toml").write_text(
        '[profiles.p]\nlauncher = "local"\nhost = "127.0.0.1"\n'
        'tls = { mode = "custom", key = "tls/server.key", certificate = "tls/server.crt", ca = "tls/root.crt" }\n'
    )
    c = pycrew.controller("p")
    assert worker_ca(c) == ROOT.pem
    assert c.tls.key == str(project / "tls" / "server.key")


def test_a_tls_table_with_a_key_of_another_type_names_the_file_and_key(project: Path) -> None:
    path = project / "pycrew.toml"
    path.write_text(f'[profiles.p]\nlauncher = "local"\ntls = {{ mode = "custom", key = 5, certificate = {json.dumps(LEAF.pem)} }}\n')
    with pytest.raises(pycrew.OptionsError, match=rf"^{path}:profiles.p: profile 'p', key 'tls': .*'key' must be PEM text .*got 5 \(int\)"):
        pycrew.controller("p")

"""The controller's TLS private key is never printed and never handed to workers.

On ce906e2 ``TLS``'s dataclass repr held the key, so errors that name the ``tls`` option (where
it came from, via ``config_files.origins``) and ``pycrew config show`` printed a key given as
PEM text whole; a mistyped key text was echoed whole (``got '----BEGIN PRIVATE KEY...'``); and a
certificate file that also holds the key (an haproxy-style bundle) became ``PYCREW_TLS_CA``,
which every worker's environment carries.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import pycrew
from pycrew import cli
from pycrew.tls import self_signed

KEY, CERT = self_signed("127.0.0.1")
OTHER_KEY, OTHER_CERT = self_signed("127.0.0.1")
KEY_BODY = KEY.splitlines()[1]  # a line of the key's base64: found in a message, the key leaked


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as the working directory, no user file, no PYCREW_P_* overrides."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    for var in [v for v in os.environ if v.startswith("PYCREW_P_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tls_profile(project: Path, key: str, certificate: str, where: str = "profiles.p") -> None:
    """Write a pycrew.toml whose profile ``p`` gets a custom tls table from ``where`` (itself, or [defaults])."""
    table = f'tls = {{ mode = "custom", key = {json.dumps(key)}, certificate = {json.dumps(certificate)} }}\n'
    profile = '[profiles.p]\nlauncher = "local"\nhost = "127.0.0.1"\n'
    (project / "pycrew.toml").write_text(profile + table if where == "profiles.p" else f"[defaults]\n{table}{profile}")


def test_the_repr_of_tls_shows_a_key_path_but_never_key_text(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    path.write_text(KEY)
    as_text = repr(pycrew.TLS(mode="custom", key=KEY, certificate=CERT, ca=KEY + CERT))
    assert KEY_BODY not in as_text and "PRIVATE KEY" not in as_text, as_text
    assert "key=<PEM text, hidden>" in as_text, as_text
    assert f"key={str(path)!r}" in repr(pycrew.TLS(mode="custom", key=str(path), certificate=CERT))


def test_a_mistyped_key_text_is_not_quoted_in_the_error() -> None:
    mistyped = KEY.replace("-----BEGIN", "----BEGIN")
    with pytest.raises(pycrew.OptionsError, match="'key' is neither PEM text") as raised:
        pycrew.controller("local", tls=pycrew.TLS(mode="custom", key=mistyped, certificate=CERT))
    assert KEY_BODY not in str(raised.value), str(raised.value)


def test_a_key_in_a_profile_is_not_printed_by_an_error_that_names_tls(project: Path) -> None:
    tls_profile(project, KEY, OTHER_CERT)  # a key and a certificate that do not belong together
    with pytest.raises(pycrew.OptionsError, match="do not belong together") as raised:
        pycrew.controller("p")
    message = str(raised.value)
    assert "tls=TLS(mode='custom', key=<PEM text, hidden>" in message, message  # where tls came from, still said
    assert KEY_BODY not in message, message


@pytest.mark.parametrize("where", ["profiles.p", "defaults"])
def test_config_show_does_not_print_a_key_given_as_pem_text(project: Path, where: str) -> None:
    tls_profile(project, KEY, CERT, where)
    for args in (["config", "show"], ["config", "show", "--json"], ["config", "show", "p"]):
        result = CliRunner().invoke(cli.cli, args, catch_exceptions=False)
        assert "tls" in result.output, result.output
        assert KEY_BODY not in result.output and "BEGIN PRIVATE KEY" not in result.output, f"{args}: {result.output}"


def test_workers_receive_no_private_key_when_the_certificate_file_also_holds_it(tmp_path: Path) -> None:
    both = tmp_path / "server.pem"
    both.write_text(KEY + CERT)  # key and certificate in one file, as haproxy and some CAs give them
    c = pycrew.controller("local", host="127.0.0.1", tls=pycrew.TLS(mode="custom", key=str(both), certificate=str(both)))
    ca = c.launcher.call().environment()[pycrew.TLS_CA_ENV]
    assert "PRIVATE KEY" not in ca and KEY_BODY not in ca, ca
    assert ca.strip() == CERT.strip()


def test_workers_receive_no_private_key_from_a_ca_file_that_holds_one() -> None:
    c = pycrew.controller("local", host="127.0.0.1", tls=pycrew.TLS(mode="custom", key=KEY, certificate=CERT, ca=KEY + CERT))
    ca = c.launcher.call().environment()[pycrew.TLS_CA_ENV]
    assert "PRIVATE KEY" not in ca and KEY_BODY not in ca, ca

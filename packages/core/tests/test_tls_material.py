"""A custom TLS key, certificate or CA that TLS cannot use is an OptionsError naming the
option when the controller is built (on fce425b: a port problem, "cannot listen ...;
choose another host= or port=", on the socket wire; nothing on nng, where every worker
then failed to connect; a garbage CA only in each worker)."""

from __future__ import annotations

import pytest

import pycrew
from pycrew.tls import self_signed

KEY, CERT = self_signed("127.0.0.1")
OTHER_KEY, OTHER_CERT = self_signed("127.0.0.1")
GARBAGE = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("material", "said"),
    [
        ({"key": OTHER_KEY, "certificate": CERT}, "'key' and 'certificate' do not belong together"),
        ({"key": CERT, "certificate": KEY}, "'key' is not a usable PEM private key"),
        ({"key": KEY, "certificate": GARBAGE}, "'certificate' is not a PEM certificate"),
        ({"key": KEY, "certificate": CERT, "ca": GARBAGE}, "'ca' cannot be trusted by the workers"),
    ],
    ids=["mismatched", "swapped", "garbage-certificate", "garbage-ca"],
)
@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_unusable_tls_material_fails_when_the_controller_is_built(material: dict[str, str], said: str, wire: str) -> None:
    with pytest.raises(pycrew.OptionsError, match=said):
        pycrew.controller("local", tls=pycrew.TLS(mode="custom", **material), wire=wire)


def test_a_key_and_its_certificate_are_accepted_with_or_without_a_ca() -> None:
    assert pycrew.controller("local", host="127.0.0.1", tls=pycrew.TLS(mode="custom", key=KEY, certificate=CERT)).tls.enabled
    bundle = OTHER_CERT + CERT  # a CA bundle holding the certificate among others
    assert pycrew.controller("local", host="127.0.0.1", tls=pycrew.TLS(mode="custom", key=KEY, certificate=CERT, ca=bundle)).tls.enabled

"""Error messages name the option or argument, the valid values and what to do (issue 14, item 15)."""

from __future__ import annotations

import time
from typing import Literal

import pytest

import pycrew
from pycrew.options import type_mismatch
from pycrew.tls import self_signed
from pycrew.wire import transport
from pycrew.wire.transport import ConnectFailed


def test_a_literal_option_lists_its_valid_values() -> None:
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller("local", wire="zmq")
    assert str(info.value) == "controller option 'wire' must be one of 'socket', 'nng', got 'zmq'"


def test_a_dict_option_names_the_bad_entry() -> None:
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller("local", env={"A": 1})
    assert str(info.value) == "local option 'env' must be dict[str, str]: env['A'] must be str, got 1 (int)"
    with pytest.raises(pycrew.OptionsError, match=r"env keys must be str, got 1 \(int\)"):
        pycrew.controller("local", env={1: "x"})


def test_type_mismatch_walks_into_containers_and_unions() -> None:
    assert type_mismatch({"a": ["x", 2]}, dict[str, list[str]], "o") == "o['a'][1] must be str, got 2 (int)"
    assert type_mismatch(3, str | None, "o") == "o must be str or None, got 3 (int)"
    assert type_mismatch("c", Literal["a", "b"] | None, "o") == "o must be one of 'a', 'b' or None, got 'c' (str)"
    assert type_mismatch({"a": "x"}, dict[str, str], "o") is None


@pytest.mark.parametrize("launcher", [None, 3, ""])
def test_a_launcher_that_is_not_a_name_is_an_options_error_listing_the_launchers(launcher: object) -> None:
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller(launcher)  # type: ignore[arg-type]
    message = str(info.value)
    assert "argument 'launcher' must be the name" in message and repr(launcher) in message, message
    assert "installed launchers: " in message and "local" in message, message


def test_worker_info_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match=r"status must be one of 'pending', .* got 'RUNNING'"):
        pycrew.WorkerInfo(id="1", handle=1, launcher="x", status="RUNNING")
    assert pycrew.WorkerInfo(id="1", handle=1, launcher="x", status="failed", exit_code=1).ended
    assert not pycrew.WorkerInfo(id="1", handle=1, launcher="x").ended


def test_nng_refuses_an_untrusted_certificate_at_once_and_says_so() -> None:
    key, cert = self_signed("127.0.0.1")
    _, other = self_signed("127.0.0.1")
    server = transport.listen("nng", "tls+tcp://127.0.0.1:0", (key, cert), 1 << 20, 10.0, lambda: None)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectFailed, match="certificate is not trusted"):
            transport.connect("nng", server.address, other, 30.0)
        seconds = time.monotonic() - started
        assert seconds < 10, f"the refusal took {seconds:.1f} s of the 30 s allowed: it must not wait for the deadline"
        channel = transport.connect("nng", server.address, cert, 10.0)  # the right certificate still works
        channel.close()
    finally:
        server.close()


@pytest.mark.parametrize("timeout", ["5", -1, float("nan"), True, [1]])
def test_wait_names_a_bad_timeout(timeout: object) -> None:
    c = pycrew.controller("local", name="a")
    group = pycrew.ControllerGroup(c, pycrew.controller("local", name="b"))
    for waiter in (c, group):
        with pytest.raises(pycrew.OptionsError) as info:
            waiter.wait(timeout=timeout)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"wait timeout must be a number of seconds >= 0, or None to wait without limit; got {timeout!r}"
        )

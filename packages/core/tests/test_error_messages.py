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


@pytest.mark.parametrize(
    "options",
    [{"seconds_timeout": float("nan")}, {"seconds_timeout": 0}, {"name": 5}, {"name": ""}, {"name": "  "},
     {"seconds_initializer": -1, "initializer": print}, {"workers": 0}, {"initargs": (1,)}],
)
def test_the_sequential_controller_refuses_what_a_real_controller_refuses(options: dict[str, object]) -> None:
    """On d0119a8 pycrew.controller("sequential") took seconds_timeout=nan and name=5, and named itself
    'sequential' for name="": code that ran there failed only once moved to a real controller."""
    with pytest.raises(pycrew.OptionsError) as real:
        pycrew.controller("local", **options)
    with pytest.raises(pycrew.OptionsError) as sequential:
        pycrew.controller("sequential", **options)
    assert str(sequential.value) == str(real.value)
    assert pycrew.controller("sequential").name == "sequential" and pycrew.controller("sequential", name="dbg").name == "dbg"


@pytest.mark.parametrize("seconds", [1e-9, 0.05, float("nan")])
def test_seconds_metrics_below_its_floor_says_the_floor_and_why(seconds: float) -> None:
    """On d0119a8 only > 0 was checked: seconds_metrics=1e-9 kept the worker busy sampling (about 65% of a CPU)
    and writing about 1 MB of samples a second to its log."""
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller("local", seconds_metrics=seconds)
    assert str(info.value).startswith("controller option 'seconds_metrics' must be >= 0.1 (seconds between a worker's samples")
    assert pycrew.controller("local", seconds_metrics=0.1).options.seconds_metrics == 0.1


def test_workers_has_an_upper_bound_that_says_why_and_what_to_do() -> None:
    """On d0119a8 workers had no upper bound: workers=1_000_000 took 385 MiB and 1.7 s to set up its slots, and
    10**9 got the process killed for want of memory, without a word."""
    for launcher in ("local", "sequential"):  # just past the limit: before it, a test of 10**9 would exhaust memory
        with pytest.raises(pycrew.OptionsError) as info:
            pycrew.controller(launcher, workers=100_001)
        message = str(info.value)
        assert message.startswith("controller option 'workers' must be at most 100,000 (a controller sets up every")
        assert "split the tasks over several controllers (pycrew.ControllerGroup), got 100001" in message
    assert pycrew.controller("local", workers=100_000).options.workers == 100_000, "20 times the scale target"


def test_a_controller_named_two_dashes_is_refused_at_once() -> None:
    """Its workers' command line could not carry the name (argparse drops "--"): every launch failed."""
    with pytest.raises(pycrew.OptionsError, match=r"controller option 'name' must not be '--'"):
        pycrew.controller("local", name="--")


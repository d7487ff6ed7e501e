"""Wire framing and the handshake proof."""

from __future__ import annotations

import pytest

from pycrew.wire import protocol as p


def test_records_round_trip():
    records = [(1, b"a"), (2**40, b""), (3, b"x" * 1000)]
    assert p.decode_records(p.encode_records(p.TASKS, records)) == records


@pytest.mark.parametrize("frame", [b"T\x01", b"T" + b"\x01" * 12 + b"\xff\xff\xff\x00"])
def test_truncated_records_are_rejected(frame):
    with pytest.raises(p.ProtocolError):
        p.decode_records(frame)


def test_mac_depends_on_token_nonce_and_instance():
    nonce = p.new_nonce()
    proof = p.mac("t", nonce, "i")
    assert p.verify_mac("t", nonce, "i", proof)
    assert not p.verify_mac("u", nonce, "i", proof)
    assert not p.verify_mac("t", p.new_nonce(), "i", proof)
    assert not p.verify_mac("t", nonce, "j", proof)


def test_json_frames_are_bounded_and_must_be_objects():
    with pytest.raises(p.ProtocolError):
        p.decode_json(b"H" + b"[1]")
    with pytest.raises(p.ProtocolError):
        p.decode_json(b"H" + b"{}" + b" " * 5000, limit=p.HELLO_MAX_BYTES)
    assert p.decode_json(p.encode_json(p.HELLO, {"a": 1})) == {"a": 1}


def test_refused_connection_warnings_are_rate_limited(caplog):
    import logging

    from pycrew.loglimit import LogLimiter

    logger = logging.getLogger("pycrew.test.refused")
    limiter = LogLimiter(logger, burst=3, seconds=0.2)
    with caplog.at_level(logging.WARNING, logger="pycrew.test.refused"):
        for i in range(50):
            limiter.warning("dropping connection %d", i)
        assert [r.getMessage() for r in caplog.records] == ["dropping connection 0", "dropping connection 1", "dropping connection 2"]
        import time

        time.sleep(0.25)
        limiter.warning("dropping connection %d", 99)
    messages = [r.getMessage() for r in caplog.records]
    assert "47 more refused connection(s)" in messages[3] and messages[4] == "dropping connection 99"


def test_leaving_frames_carry_a_reason_and_task_ids():
    frame = p.encode_json(p.LEAVING, {"reason": "SIGTERM" * 100, "unstarted": [3, 4]})
    reason, ids = p.parse_leaving(frame)
    assert reason == ("SIGTERM" * 100)[:500] and ids == [3, 4]
    assert p.parse_leaving(p.encode_json(p.LEAVING, {"reason": "x"})) == ("x", [])


@pytest.mark.parametrize(
    "body",
    [{"unstarted": []}, {"reason": 5}, {"reason": "x", "unstarted": 3}, {"reason": "x", "unstarted": ["1"]},
     {"reason": "x", "unstarted": [-1]}, {"reason": "x", "unstarted": [1 << 64]}, {"reason": "x", "unstarted": [True]}],
)
def test_malformed_leaving_frames_are_rejected(body):
    with pytest.raises(p.ProtocolError, match="LEAVING"):
        p.parse_leaving(p.encode_json(p.LEAVING, body))


def test_a_hello_says_which_python_and_cloudpickle_the_worker_runs():
    import cloudpickle

    from pycrew.wire import runtime

    hello = p.parse_hello(p.encode_hello("t" * 32, b"n" * 16, "w1", 0, None, p.new_nonce()))
    assert (hello.python, hello.cloudpickle) == (runtime.PYTHON, cloudpickle.__version__)
    body = {"instance": "w1", "mac": "0" * 64}
    assert p.parse_hello(p.encode_json(p.HELLO, body)).python is None  # an earlier worker says nothing: not refused for it
    for bad in ({"python": 3.11}, {"python": "3.11; rm -rf"}, {"cloudpickle": "x" * 100}):
        with pytest.raises(p.ProtocolError, match="must be a version string"):
            p.parse_hello(p.encode_json(p.HELLO, {**body, **bad}))


@pytest.mark.parametrize(
    ("python", "pickler", "refused"),
    [
        ("3.11.9", "3.0.0", None),  # another patch release, another minor cloudpickle: the same bytecode, readable pickles
        ("3.11.0rc1", "3.1.3+local", None),
        (None, None, None),  # it did not say
        ("3.12.1", "3.1.3", "it runs Python 3.12.1 and this controller runs Python 3.11.7: "),
        ("3.1.11", "3.1.3", "it runs Python 3.1.11"),  # not a prefix match
        ("3.11.7", "2.2.1", "it runs cloudpickle 2.2.1 and this controller runs cloudpickle 3.1.3: "),
    ],
)
def test_a_worker_on_another_python_minor_or_cloudpickle_major_version_is_unfit(python, pickler, refused):
    from pycrew.wire import runtime

    said = runtime.mismatch(python, pickler, ours={"python": "3.11.7", "cloudpickle": "3.1.3"})
    if refused is None:
        assert said is None, said
    else:
        assert said is not None and said.startswith(refused), said
        assert "Python 3.11 interpreter" in said or "Install cloudpickle 3.1.3" in said, said

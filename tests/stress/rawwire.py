"""Speaking pycrew's wire by hand, for the fuzzer: framing, a raw peer, the handshake, hostile plans.

Raw TCP, not a client library, so that anything can be sent: the ``socket`` wire's
preamble and 8-byte little-endian lengths, or NNG's SP header, 8-byte big-endian message
lengths and Pair1 hop count, written (or cut short, or lied about) byte by byte.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from pycrew.wire import protocol
from pycrew.wire.transport.sockets import PREAMBLE as SOCKET_PREAMBLE

MB = 1024 * 1024

SP_PAIR1 = b"\x00SP\x00\x00\x11\x00\x00"  # NNG's TCP handshake for protocol Pair1 (0x11)
HOP = b"\x00\x00\x00\x01"  # Pair1's hop count, the first 4 bytes of every message
BIG = 32 * MB  # largest frame the fuzzer sends before authenticating


# -- evidence of unpickling ---------------------------------------------------------------


class _Evil:
    """Unpickling this creates the directory ``path``: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (os.makedirs, (self.path, 0o777, True))


# -- the wire, by hand ----------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """How frames travel as bytes on one transport."""

    wire: str

    @property
    def opening(self) -> bytes:
        """What a client sends first."""
        return SOCKET_PREAMBLE if self.wire == "socket" else SP_PAIR1

    def header(self, length: int) -> bytes:
        """The bytes announcing a frame of ``length`` bytes (whatever follows)."""
        if self.wire == "socket":
            return struct.pack("<Q", length)
        return struct.pack(">Q", min(length + len(HOP), 2**64 - 1)) + HOP

    def frame(self, body: bytes) -> bytes:
        """One whole frame."""
        return self.header(len(body)) + body


class Peer:
    """A raw TCP connection to the listener."""

    def __init__(self, port: int, framing: Framing) -> None:
        self.framing = framing
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.server_header = framing.wire == "nng"  # NNG answers the SP handshake with its own

    def send(self, data: bytes | memoryview) -> bool:
        """Send everything; ``False`` if the server had closed the connection."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk
        return True

    def recv_frame(self, timeout: float) -> bytes | None:
        """The next frame from the server, ``None`` after ``timeout`` s (ConnectionError once closed)."""
        deadline = time.monotonic() + timeout
        while self.server_header:
            if len(self.buf) >= len(SP_PAIR1):
                del self.buf[: len(SP_PAIR1)]
                self.server_header = False
            elif not self._fill(deadline):
                return None
        while True:
            if len(self.buf) >= 8:
                if self.framing.wire == "socket":
                    (length,) = struct.unpack_from("<Q", self.buf)
                    start = 8
                else:
                    (length,) = struct.unpack_from(">Q", self.buf)
                    start, length = 8 + len(HOP), length - len(HOP)
                if len(self.buf) >= start + length:
                    frame = bytes(self.buf[start : start + length])
                    del self.buf[: start + length]
                    return frame
            if not self._fill(deadline):
                return None

    def closed_by_server(self, wait: float) -> bool:
        """Whether the server closes the connection within ``wait`` seconds (reading what it sends)."""
        deadline = time.monotonic() + wait
        try:
            while self._fill(deadline):
                self.buf.clear()
        except ConnectionError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def handshake(peer: Peer, instance: str, token: str) -> None:
    """Authenticate ``peer`` as ``instance`` and wait for WELCOME (fails the test otherwise)."""
    assert peer.send(peer.framing.opening), "the listener refused the opening bytes of a valid client"
    challenge = peer.recv_frame(10)
    assert challenge is not None and challenge[:1] == bytes((protocol.CHALLENGE,)), f"no CHALLENGE: {challenge!r}"
    nonce = protocol.decode_challenge(challenge)
    hello = {
        "v": protocol.PROTOCOL_VERSION,
        "instance": instance,
        "mac": protocol.mac(token, nonce, instance),
        "host": "fuzzer",
        "pid": os.getpid(),
        "worker": 0,
        "tasks_max": None,
    }
    assert peer.send(peer.framing.frame(protocol.encode_json(protocol.HELLO, hello)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = peer.recv_frame(deadline - time.monotonic())
        if frame is not None and frame[:1] == bytes((protocol.WELCOME,)):
            return
    raise AssertionError(f"a valid handshake as {instance!r} was not welcomed within 10 s")


# -- what to send -----------------------------------------------------------------------------


def _text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


def pick(*branches: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``branches``, each about equally often (list one twice to double its share).

    ``st.one_of`` leans hard towards its first, simplest branches and towards repeating
    them; a fuzzer wants every branch. The index comes from a drawn integer mixed by
    ``random.Random``, so hypothesis still replays an example exactly.
    """
    return st.integers(0, 2**32 - 1).flatmap(lambda n: branches[random.Random(n).randrange(len(branches))])


def _nest(shape: tuple[int, str]) -> str:
    depth, kind = shape
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "0" + "}" * depth
    return "[" * depth  # never closed: the parser recurses before it notices


def strategies(marker: str, known: str) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """Plans of one unauthenticated and one authenticated connection.

    A plan is ``(opening, actions)``; an action is ``("frame", body)``, ``("raw", bytes)``,
    ``("partial", announced_length, bytes_sent)`` or ``("big", size)``. ``known`` is an
    instance the dispatcher has a token for (so proofs of every shape reach the check).
    Branches listed twice are drawn twice as often; the dispatcher drops a connection at
    its first bad frame, so a plan often leads with a HELLO or a large frame.
    """
    evil = pickle.dumps(_Evil(marker))
    scalar = st.one_of(
        st.sampled_from(["null", "true", "false", "0", "-1", "1e400", "-1e400", "NaN", "Infinity", "[]", "{}"]),
        st.integers().map(str),
        st.integers(300, 6000).map(lambda n: "9" * n),  # past int's 4300-digit limit, and past 4 KiB
        st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
        st.text(max_size=40).map(json.dumps),
        st.text(max_size=40).map(lambda s: json.dumps(s, ensure_ascii=False)),
    )
    # ~1000 levels exhaust the recursion limit; 2040 levels still fit in a 4 KiB HELLO.
    depth = st.one_of(st.integers(1, 64), st.integers(960, 2040), st.integers(2041, 6000))
    deep = st.tuples(depth, st.sampled_from(["list", "object", "open"])).map(_nest)
    value = pick(scalar, deep, deep, st.lists(scalar, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"))
    proof = st.one_of(
        st.text(max_size=80),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.text(alphabet="0123456789abcdef\u00e9\u0100\U0001f600", min_size=64, max_size=64),
    )
    instance = pick(st.just(json.dumps(known)), st.just(json.dumps(known)), st.text(max_size=40).map(json.dumps), value)
    mac = pick(proof.map(json.dumps), proof.map(lambda s: json.dumps(s, ensure_ascii=False)), value)
    extra = st.lists(st.tuples(st.sampled_from(["pid", "host", "worker", "tasks_max", "v", "instance", "mac"]), value), max_size=3)
    hello_object = st.tuples(instance, mac, extra).map(lambda t: _object([("instance", t[0]), ("mac", t[1]), *t[2]]))
    hello_text = pick(hello_object, hello_object, hello_object, value, st.text(max_size=60))
    # The shapes that reach deepest: a proof of any shape for an instance with a token, and
    # nesting where the instance id should be.
    pointed = pick(
        st.tuples(mac, extra).map(lambda t: _object([("instance", json.dumps(known)), ("mac", t[0]), *t[1]])),
        st.tuples(deep, mac).map(lambda t: _object([("instance", t[0]), ("mac", t[1])])),
    ).map(lambda t: bytes((protocol.HELLO,)) + _text_bytes(t))
    hello = pick(
        hello_text.map(lambda t: bytes((protocol.HELLO,)) + _text_bytes(t)),
        hello_text.map(lambda t: bytes((protocol.HELLO,)) + _text_bytes(t)),
        st.binary(max_size=200).map(lambda b: bytes((protocol.HELLO,)) + b),
    )
    payload = st.one_of(st.binary(max_size=64), st.just(evil))
    kinds = st.one_of(
        st.sampled_from([protocol.HELLO, protocol.RESULTS, protocol.TASKS, protocol.BEAT, protocol.BYE, protocol.RETURNED, protocol.LEAVING]),
        st.integers(0, 255),
    )
    evil_frame = pick(
        kinds.map(lambda k: bytes((k,)) + evil),
        st.tuples(kinds, st.lists(st.tuples(st.integers(0, 2**64 - 1), payload), max_size=3)).map(lambda t: protocol.encode_records(t[0], t[1])),
    )
    random_frame = st.tuples(st.integers(0, 255), st.binary(max_size=64)).map(lambda t: bytes((t[0],)) + t[1])
    any_frame = pick(hello, evil_frame, random_frame, st.just(b""))

    # After authentication: records of ids no task has (real ids count from 1), heartbeats
    # with any count, goodbyes of any JSON, and everything the unauthenticated may send.
    foreign = st.integers(2**32, 2**64 - 1)
    bye = pick(value, st.text(max_size=40), hello_text).map(lambda t: bytes((protocol.BYE,)) + _text_bytes(t))
    # LEAVING (told to end by a signal): ids it does not hold, and bodies of any JSON
    leaving = pick(
        st.tuples(st.text(max_size=40), st.lists(foreign, max_size=5)).map(
            lambda t: protocol.encode_json(protocol.LEAVING, {"reason": t[0], "unstarted": t[1]})
        ),
        pick(value, st.text(max_size=40), hello_text).map(lambda t: bytes((protocol.LEAVING,)) + _text_bytes(t)),
    )
    auth_frame = pick(
        st.lists(st.tuples(foreign, payload), max_size=5).map(lambda rs: protocol.encode_records(protocol.RESULTS, rs)),
        st.binary(max_size=40).map(lambda b: bytes((protocol.RESULTS,)) + b),
        st.binary(max_size=16).map(lambda b: bytes((protocol.BEAT,)) + b),
        st.integers(0, 2**64 - 1).map(lambda n: bytes((protocol.BEAT,)) + n.to_bytes(8, "little")),
        # RETURNED that no RECALL asked for: ids it does not hold, and bodies of any length
        st.lists(foreign, max_size=5).map(lambda ids: protocol.encode_ids(protocol.RETURNED, ids)),
        st.binary(max_size=40).map(lambda b: bytes((protocol.RETURNED,)) + b),
        leaving,
        bye,
        any_frame,
    )

    def actions(frames: st.SearchStrategy[bytes], first: st.SearchStrategy[bytes], big: bool) -> st.SearchStrategy[list[tuple[Any, ...]]]:
        sizes = [protocol.HELLO_MAX_BYTES + 1, 1 * MB] + ([BIG, BIG] if big else [65536])
        large = st.sampled_from(sizes).map(lambda n: ("big", n))
        one = pick(
            frames.map(lambda b: ("frame", b)),
            frames.map(lambda b: ("frame", b)),
            st.binary(min_size=1, max_size=64).map(lambda b: ("raw", b)),
            st.tuples(st.sampled_from([10, 4096, 4097, 2**31, 2**62, 2**64 - 5]), st.integers(0, 64)).map(
                lambda t: ("partial", t[0], min(t[1], t[0] - 1))
            ),
            large,
        )
        rest = st.lists(one, min_size=1, max_size=8)
        opener = pick(first.map(lambda b: ("frame", b)), first.map(lambda b: ("frame", b)), large)
        led = st.tuples(opener, st.lists(one, max_size=7)).map(lambda t: [t[0], *t[1]])
        return pick(led, rest)

    opening = pick(st.just("proper"), st.just("proper"), st.just("proper"), st.integers(0, 7).map(lambda n: f"cut:{n}"), st.just("garbage"))
    unauth = st.tuples(opening, actions(any_frame, pick(hello, pointed), big=True))
    auth = actions(auth_frame, bye, big=False).map(lambda acts: ("proper", acts))
    return unauth, auth

"""Wire fuzzer: hostile bytes against the dispatcher's listener, before and after authentication.

Every hypothesis example opens one raw TCP connection to the controller's port and speaks
the wire's framing by hand (``socket``: the preamble and 8-byte little-endian lengths;
``nng``: the SP header, NNG's 8-byte big-endian message lengths and Pair1's hop count), so
it can send what no client library would: truncated preambles and frames, lengths up to
2**64-1, frames of every kind, HELLO bodies nested thousands deep, huge numbers, proofs in
non-ASCII, and pickles that create a marker directory if anything ever unpickles them.
Meanwhile two real local workers run a workload that must end with every result exactly
once. After every example the dispatcher thread must be alive without error, nothing may
have been unpickled, and the controller's peak memory must stay within a bound.

The regression tests at the end replay, one at a time, what the fuzzer found. The raw wire
and the strategies live in ``rawwire.py``.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the wire fuzzer needs hypothesis (scripts/setup.sh --test installs it)")
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from stress.rawwire import BIG, Framing, Peer, handshake, strategies

import pycrew
from helpers import identity, sleep_then
from pycrew.wire import protocol
from pycrew.wire.transport import TRANSPORTS

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("wire", TRANSPORTS)]

FULL = os.environ.get("PYCREW_STRESS") == "full"
#: Frames each fuzz test sends (per wire, per phase).
FRAMES = 10_000 if FULL else 600
MB = 1024 * 1024
#: Most the controller's peak RSS may rise during one example (the pre-authentication frame
#: limit is 4 KiB; the socket transport reads at most 4 MiB per turn before it checks).
PEAK_BOUND = 16 * MB
#: Most the controller's RSS may grow over a whole fuzz test (hypothesis runs in this process too).
GROWTH_BOUND = 200 * MB

# -- running a plan ---------------------------------------------------------------------------


@dataclass
class Counters:
    """What the fuzzer did."""

    examples: int = 0
    connections: int = 0
    frames: int = 0
    raw_chunks: int = 0
    bytes_sent: int = 0
    dropped: int = 0
    handshakes: int = 0
    peak_rise_max: int = 0
    recent: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=3))


def _describe(plan: Any) -> str:
    text = repr(plan)
    return text if len(text) <= 600 else text[:600] + f"... ({len(text)} characters)"


def send_actions(peer: Peer, actions: list[tuple[Any, ...]], counters: Counters, big: memoryview) -> None:
    """Send the actions until the server hangs up."""
    framing = peer.framing
    for action in actions:
        if action[0] == "frame":
            data: bytes | memoryview = framing.frame(action[1])
        elif action[0] == "raw":
            data = action[1]
        elif action[0] == "partial":
            data = framing.header(action[1]) + bytes(action[2])
        else:
            if not peer.send(framing.header(action[1])):
                return
            data = big[: action[1]]
        if not peer.send(data):
            return
        counters.bytes_sent += len(data)
        if action[0] == "raw":
            counters.raw_chunks += 1
        else:
            counters.frames += 1


@dataclass
class Workload:
    """Real tasks on real workers, pushed all along the fuzzing."""

    controller: pycrew.Controller
    outstanding: int = 30
    pushed: int = 0
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="stress-workload", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        c = self.controller
        try:
            while not self.stop.is_set():
                while c.unresolved() < self.outstanding:
                    c.push(sleep_then, args=(0.002, self.pushed), name=f"w{self.pushed}")
                    self.pushed += 1
                self.stop.wait(0.02)
        except BaseException as exc:  # reported by finish(): the test fails with it
            self.error = exc

    def finish(self, timeout: float) -> list[pycrew.TaskResult]:
        """Stop pushing, wait for every task, and return the results."""
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)
        assert self.error is None, f"pushing the workload failed: {self.error!r}"
        assert self.controller.wait(timeout=timeout), f"the workload did not finish within {timeout} s"
        return self.controller.collect()


def check_exactly_once(results: list[pycrew.TaskResult], pushed: int) -> None:
    """Each workload task resolved once, successfully, with its own value."""
    counts = collections.Counter(r.name for r in results)
    twice = [n for n, k in counts.items() if k > 1]
    assert not twice, f"results delivered more than once: {twice[:10]}"
    missing = {f"w{i}" for i in range(pushed)} - set(counts)
    assert not missing, f"{len(missing)} workload results missing, e.g. {sorted(missing)[:10]}"
    bad = [r for r in results if r.status != "success" or r.result != int(r.name[1:])]
    assert not bad, f"{len(bad)} workload results wrong, e.g. {bad[:3]}"


def fuzz_controller(make_controller: Callable[..., pycrew.Controller], wire: str) -> pycrew.Controller:
    """A controller with two real workers; fuzz connections may hold its tasks and crash them often."""
    c = make_controller("local", workers=2, wire=wire, crashes_max=10**6).start()
    c.push(identity, args=(0,), name="warm-up")
    assert c.wait(timeout=60), "the workers did not start"
    c.collect()
    return c


def run_fuzz(
    c: pycrew.Controller,
    wire: str,
    plans: st.SearchStrategy[Any],
    one_connection: Callable[[Any, Counters], None],
    counters: Counters,
    memory: Any,
    marker: Path,
) -> None:
    """Run hypothesis examples until ``FRAMES`` frames went out, checking the dispatcher after each."""
    d = c._dispatcher
    assert d is not None

    def check(plan: Any) -> None:
        # One line for every failure, so hypothesis's replay of a failing example fails the same way.
        alive = d.thread.is_alive() and d.error is None
        unpickled = marker.exists()
        assert alive and not unpickled, (
            ("the dispatcher died: " + repr(d.error) if not alive else "something was unpickled before authentication")
            + " after one of these connections (most recent last):\n"
            + "\n".join(counters.recent)
        )

    @settings(
        max_examples=200,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=True,
    )
    @given(plan=plans)
    def fuzz(plan: Any) -> None:
        check(plan)
        counters.recent.append(_describe(plan))
        counters.examples += 1
        base = memory.rss()
        memory.reset_peak()
        one_connection(plan, counters)
        rise = memory.peak() - base
        counters.peak_rise_max = max(counters.peak_rise_max, rise)
        assert rise <= PEAK_BOUND, (
            f"the controller's peak RSS rose {rise / MB:.1f} MiB (bound {PEAK_BOUND / MB:.0f} MiB) "
            f"during this connection: {_describe(plan)}"
        )
        check(plan)

    while counters.frames < FRAMES:
        fuzz()
    time.sleep(0.2)  # let the dispatcher read what the last connection sent
    check(None)


def links_left_behind(c: pycrew.Controller) -> int:
    """Connections the listener still tracks besides the ready workers', once the fuzzer's are closed.

    Waits up to ``seconds_auth`` + 3 s: a connection that never authenticated may be kept
    that long, not longer.
    """
    d = c._dispatcher
    assert d is not None
    deadline = time.monotonic() + d.settings.seconds_auth + 3
    while True:
        left = len(d.server.links) - sum(1 for conn in list(d.conns.values()) if conn.state == "ready")
        if left <= 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def check_nothing_left_behind(left: int | None, wire: str) -> None:
    assert left == 0, (
        f"the {wire} listener still tracks {left} connection(s) of the fuzzer, all closed by their peer "
        "(state that every hostile connection can add to, for good)"
    )


# -- the fuzz tests -----------------------------------------------------------------------------


def test_unauthenticated_fuzz_frames_neither_kill_nor_unpickle_nor_bloat(make_controller, tmp_path, wire, figures, memory):
    c = fuzz_controller(make_controller, wire)
    marker = tmp_path / "unpickled"
    known = "fuzz-known-instance"
    c._dispatcher.authorize(known, protocol.new_token(), 1)  # proofs for it reach the comparison
    unauth, _ = strategies(str(marker), known)
    port = int(c.url.rsplit(":", 1)[1])
    framing = Framing(wire)
    big = memoryview(b"\x01" * BIG)
    counters = Counters()

    def one_connection(plan: Any, counters: Counters) -> None:
        opening, actions = plan
        peer = Peer(port, framing)
        counters.connections += 1
        try:
            if opening == "proper":
                first = framing.opening
            elif opening == "garbage":
                first = b"\xff" * 8
            else:
                first = framing.opening[: int(opening.split(":")[1])]
            if peer.send(first):
                send_actions(peer, actions, counters, big)
            counters.dropped += peer.closed_by_server(0.05)
        finally:
            peer.close()

    work = Workload(c)
    left: int | None = None
    seconds = 0.0
    rss_before = memory.rss()
    resolved_before = c.resolved
    t0 = time.monotonic()
    work.start()
    try:
        run_fuzz(c, wire, unauth, one_connection, counters, memory, marker)
        seconds = time.monotonic() - t0
        left = links_left_behind(c)
    finally:
        seconds = seconds or time.monotonic() - t0
        resolved_while_fuzzing = c.resolved - resolved_before
        rss_after = memory.rss()
        figures(
            wire=wire,
            phase="unauthenticated",
            examples=counters.examples,
            connections=counters.connections,
            frames_sent=counters.frames,
            raw_chunks_sent=counters.raw_chunks,
            mib_sent=counters.bytes_sent / MB,
            connections_dropped_by_server=counters.dropped,
            seconds=seconds,
            workload_tasks_done_meanwhile=resolved_while_fuzzing,
            rss_before_mib=rss_before / MB,
            rss_after_mib=rss_after / MB,
            peak_rise_per_connection_max_mib=counters.peak_rise_max / MB,
            connections_left_behind=left,
            dispatcher_alive=c._dispatcher.thread.is_alive(),
            dispatcher_error=repr(c._dispatcher.error),
        )
    assert not marker.exists(), "the dispatcher unpickled bytes from an unauthenticated connection"
    assert rss_after - rss_before < GROWTH_BOUND, f"the controller's RSS grew {(rss_after - rss_before) / MB:.0f} MiB"
    results = work.finish(timeout=120)
    assert resolved_while_fuzzing > 0, "no workload task finished while the fuzzer ran"
    check_exactly_once(results, work.pushed)
    check_nothing_left_behind(left, wire)


def test_authenticated_fuzz_frames_neither_kill_nor_unpickle_nor_bloat(make_controller, tmp_path, wire, figures, memory):
    c = fuzz_controller(make_controller, wire)
    d = c._dispatcher
    marker = tmp_path / "unpickled"
    _, auth = strategies(str(marker), "fuzz-known-instance")
    port = int(c.url.rsplit(":", 1)[1])
    framing = Framing(wire)
    big = memoryview(b"\x01" * (1 * MB))
    counters = Counters()

    def one_connection(plan: Any, counters: Counters) -> None:
        _, actions = plan
        instance, token = f"fuzz-{counters.connections}", protocol.new_token()
        d.authorize(instance, token, 1)
        peer = Peer(port, framing)
        counters.connections += 1
        try:
            handshake(peer, instance, token)
            counters.handshakes += 1
            send_actions(peer, actions, counters, big)
            counters.dropped += peer.closed_by_server(0.02)
        finally:
            peer.close()

    work = Workload(c)
    left: int | None = None
    seconds = 0.0
    rss_before = memory.rss()
    resolved_before = c.resolved
    t0 = time.monotonic()
    work.start()
    try:
        run_fuzz(c, wire, auth, one_connection, counters, memory, marker)
        seconds = time.monotonic() - t0
        left = links_left_behind(c)
    finally:
        seconds = seconds or time.monotonic() - t0
        resolved_while_fuzzing = c.resolved - resolved_before
        rss_after = memory.rss()
        figures(
            wire=wire,
            phase="authenticated",
            examples=counters.examples,
            handshakes=counters.handshakes,
            frames_sent=counters.frames,
            raw_chunks_sent=counters.raw_chunks,
            mib_sent=counters.bytes_sent / MB,
            connections_dropped_by_server=counters.dropped,
            seconds=seconds,
            workload_tasks_done_meanwhile=resolved_while_fuzzing,
            workload_retries=d.retries,
            rss_before_mib=rss_before / MB,
            rss_after_mib=rss_after / MB,
            peak_rise_per_connection_max_mib=counters.peak_rise_max / MB,
            connections_left_behind=left,
            dispatcher_alive=d.thread.is_alive(),
            dispatcher_error=repr(d.error),
        )
    assert not marker.exists(), "the dispatcher unpickled a result record of a task it never sent"
    assert rss_after - rss_before < GROWTH_BOUND, f"the controller's RSS grew {(rss_after - rss_before) / MB:.0f} MiB"
    results = work.finish(timeout=120)
    assert resolved_while_fuzzing > 0, "no workload task finished while the fuzzer ran"
    check_exactly_once(results, work.pushed)
    check_nothing_left_behind(left, wire)


# -- what the fuzzer found, one case each ---------------------------------------------------------


def _assert_dropped_and_still_serving(c: pycrew.Controller, peer: Peer, what: str) -> None:
    """The server closed ``peer``, its dispatcher lives and still runs a task."""
    d = c._dispatcher
    assert d is not None
    closed = peer.closed_by_server(5)
    assert d.thread.is_alive() and d.error is None, f"the dispatcher died of {what}: {d.error!r}"
    assert closed, f"the dispatcher kept a connection that sent {what}"
    assert c.submit(identity, "still here").result(timeout=60) == "still here"


def _unauthenticated_peer(c: pycrew.Controller, wire: str) -> Peer:
    peer = Peer(int(c.url.rsplit(":", 1)[1]), Framing(wire))
    assert peer.send(peer.framing.opening)
    challenge = peer.recv_frame(10)
    assert challenge is not None and challenge[0] == protocol.CHALLENGE
    return peer


def test_deeply_nested_hello_is_dropped_and_the_dispatcher_lives(make_controller, wire):
    """A 3 KB HELLO of nested arrays made json.loads raise RecursionError on the dispatcher thread."""
    c = make_controller("local", workers=1, wire=wire).start()
    peer = _unauthenticated_peer(c, wire)
    try:
        body = b'{"instance":' + b"[" * 1500 + b"]" * 1500 + b',"mac":"00"}'
        assert len(body) < protocol.HELLO_MAX_BYTES
        peer.send(peer.framing.frame(bytes((protocol.HELLO,)) + body))
        _assert_dropped_and_still_serving(c, peer, "a HELLO nested 1500 deep")
    finally:
        peer.close()


def test_hello_with_a_non_ascii_proof_for_a_known_instance_is_dropped_and_the_dispatcher_lives(make_controller, wire):
    """hmac.compare_digest raised TypeError on a non-ASCII ``mac`` string, on the dispatcher thread."""
    c = make_controller("local", workers=1, wire=wire).start()
    c._dispatcher.authorize("known-instance", protocol.new_token(), 1)
    peer = _unauthenticated_peer(c, wire)
    try:
        hello = protocol.encode_json(protocol.HELLO, {"instance": "known-instance", "mac": "é" * 64})
        peer.send(peer.framing.frame(hello))
        _assert_dropped_and_still_serving(c, peer, "a HELLO whose proof is not ASCII")
    finally:
        peer.close()


def test_deeply_nested_bye_is_dropped_and_the_dispatcher_lives(make_controller, wire):
    """An authenticated BYE body is parsed without a size limit: nesting must not end the loop either."""
    c = make_controller("local", workers=1, wire=wire).start()
    instance, token = "nested-bye", protocol.new_token()
    c._dispatcher.authorize(instance, token, 1)
    peer = Peer(int(c.url.rsplit(":", 1)[1]), Framing(wire))
    try:
        handshake(peer, instance, token)
        peer.send(peer.framing.frame(bytes((protocol.BYE,)) + b"[" * 5000 + b"]" * 5000))
        _assert_dropped_and_still_serving(c, peer, "a BYE nested 5000 deep")
    finally:
        peer.close()


def test_unauthenticated_frame_larger_than_the_hello_limit_is_never_held_in_memory(make_controller, wire, memory, figures):
    """Over NNG the listener took frames up to bytes_max (256 MiB) from anyone before the handshake."""
    c = make_controller("local", workers=1, wire=wire).start()
    size = 64 * MB
    data = memoryview(b"\x02" * size)  # allocated before the baseline: the sender's memory does not count
    peer = _unauthenticated_peer(c, wire)
    base = memory.rss()
    memory.reset_peak()
    try:
        if peer.send(peer.framing.header(size)):
            peer.send(data)
        closed = peer.closed_by_server(10)
        rise = memory.peak() - base
        figures(wire=wire, frame_mib=size / MB, controller_peak_rise_mib=rise / MB, closed_by_server=closed)
        assert closed, "the listener kept a connection that announced a 64 MiB frame before authenticating"
        assert rise < PEAK_BOUND, (
            f"an unauthenticated 64 MiB frame raised the controller's peak RSS by {rise / MB:.0f} MiB "
            f"(bound {PEAK_BOUND / MB:.0f} MiB): the listener read it into memory before the handshake"
        )
        assert c.submit(identity, "still here").result(timeout=60) == "still here"
    finally:
        peer.close()


def test_an_announced_large_frame_costs_only_what_arrives(make_controller, wire, memory, figures):
    """A worker's frame of 1 MiB or more is read into a buffer of its own; that buffer was the
    whole announced length at once (zeroed: resident), so one authenticated connection that
    announced 200 MiB and sent 2 MiB raised the controller's RSS by 200 MiB (the fuzzer found
    a 215 MiB rise). It now grows with what arrives."""
    c = make_controller("local", workers=1, wire=wire).start()
    instance, token = "announces-big", protocol.new_token()
    c._dispatcher.authorize(instance, token, 1)
    peer = Peer(int(c.url.rsplit(":", 1)[1]), Framing(wire))
    announced, sent = 200 * MB, 2 * MB
    data = memoryview(bytes((protocol.RESULTS,)) + b"\x03" * (sent - 1))  # allocated before the baseline
    try:
        handshake(peer, instance, token)
        base = memory.rss()
        memory.reset_peak()
        if peer.send(peer.framing.header(announced)):
            peer.send(data)
        time.sleep(1.0)  # the dispatcher reads what came
        rise = memory.peak() - base
        figures(wire=wire, announced_mib=announced / MB, sent_mib=sent / MB, controller_peak_rise_mib=rise / MB)
        assert rise < PEAK_BOUND, (
            f"a frame announced at {announced / MB:.0f} MiB of which {sent / MB:.0f} MiB came raised the "
            f"controller's peak RSS by {rise / MB:.0f} MiB (bound {PEAK_BOUND / MB:.0f} MiB)"
        )
    finally:
        peer.close()
    assert c.submit(identity, "still here").result(timeout=60) == "still here"

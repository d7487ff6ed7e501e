"""Wire messages between dispatcher and worker: framing and the authentication handshake.

Nothing here unpickles. A frame (one message of the transport, see
:mod:`pycrew.wire.transport`) is a one-byte kind followed by its body. Control bodies are
small JSON objects; task and result batches are sequences of ``(u64 id, u32 length,
payload)`` records whose payloads are opaque bytes (pickles made and read elsewhere, and
only after the connection has authenticated; a result's layout is
:class:`pycrew.wire.records.ResultRecord`).

Handshake: when a worker connects, the dispatcher sends ``CHALLENGE`` with a random
nonce; the worker answers ``HELLO`` with its instance id and
``HMAC-SHA256(token, nonce || instance)``, so the token itself never crosses the wire.
The dispatcher drops any connection whose first frame is not a valid ``HELLO``.

Initializer: when the controller has one (its ``initializer`` option), the ``WELCOME``
carries it (``"initializer"``: the base64 of its pickle, laid out as a task's); the worker
runs it before anything else and answers ``INITIALIZED`` with a JSON report (``status``
``"success"``, ``"error"`` or ``"timeout"``; on failure ``error``, ``error_type`` and
``traceback``). The dispatcher sends it no task before a successful report.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pycrew.wire import runtime

#: The wire protocol's version: a worker's HELLO says which it speaks, and a controller
#: refuses a worker that speaks another (2: a task's function may travel as ``bytes``;
#: 3: the WELCOME may carry an initializer, which the worker answers with INITIALIZED;
#: 4: the dispatcher's heartbeats carry the heartbeat interval and timeout, see encode_pace;
#: 5: the HELLO carries the worker's nonce, and the dispatcher proves the token, see encode_proof).
PROTOCOL_VERSION = 5
#: The pycrew version this process runs (a worker's HELLO carries it, for messages): read
#: from the ``pycrew`` package, loaded before any of its modules (the worker side imports
#: nothing from the package's top level, see test_worker_imports).
PYCREW_VERSION: str = sys.modules[__name__.partition(".")[0]].__version__

#: A frame as it arrives: ``bytes``, or a ``bytearray`` (a large frame read into a buffer
#: of its own, see :class:`pycrew.wire.transport.sockets.DirectFrame`).
Frame = bytes | bytearray
#: A record's payload as :func:`decode_records` gives it (see :data:`LARGE_PAYLOAD`).
Payload = bytes | memoryview

#: Environment variable through which a worker receives its instance's secret token.
TOKEN_ENV = "PYCREW_TOKEN"
#: Environment variable a scheduler's job script sets to the job's start (epoch seconds), so
#: that the worker's ``seconds_wall`` counts from there (see pycrew.worker.job_start).
JOB_STARTED_ENV = "PYCREW_JOB_STARTED"
#: Environment variable carrying the PEM certificate a worker trusts when TLS is on.
TLS_CA_ENV = "PYCREW_TLS_CA"
#: Environment variable naming the host the worker checks the controller's certificate
#: against, when it is not the host it dials (``pycrew.TLS(server_name=...)``).
TLS_SERVER_NAME_ENV = "PYCREW_TLS_SERVER_NAME"
#: How the goodbye reason of a worker whose ``seconds_wall`` ran out starts (the dispatcher
#: tells one that never served: see pycrew.control.upkeep).
WALL_REACHED = "seconds_wall="
#: Environment variable through which a launcher gives a worker the controller's import
#: path (``sys.path``, as a JSON list): see :mod:`pycrew.worker.import_path`.
SYS_PATH_ENV = "PYCREW_SYS_PATH"

CHALLENGE = 0x43  # b"C"  dispatcher -> worker: nonce
HELLO = 0x48  # b"H"      worker -> dispatcher: JSON {instance, mac, pid, host, ...}
WELCOME = 0x57  # b"W"    dispatcher -> worker: JSON settings
TASKS = 0x54  # b"T"      dispatcher -> worker: batch of (id, payload)
RESULTS = 0x52  # b"R"    worker -> dispatcher: batch of (id, payload)
BEAT = 0x42  # b"B"       either way: heartbeat
CANCEL = 0x58  # b"X"     dispatcher -> worker: task ids to cancel
BYE = 0x51  # b"Q"        worker -> dispatcher: JSON {reason, unstarted: [ids]}
STOP = 0x53  # b"S"       dispatcher -> worker: JSON {reason}
RECALL = 0x47  # b"G"     dispatcher -> worker: ids of tasks to give back if not started
RETURNED = 0x4E  # b"N"   worker -> dispatcher: ids of the recalled tasks it gave back
LEAVING = 0x4C  # b"L"    worker -> dispatcher: JSON {reason, unstarted: [ids]}: told to end
#                         (SIGTERM), it starts nothing more; its running task's result may still come
INITIALIZED = 0x49  # b"I" worker -> dispatcher: JSON {status, seconds, error, error_type, traceback}
PROOF = 0x50  # b"P"       dispatcher -> worker: HMAC over the worker's nonce (before WELCOME)

NONCE_BYTES = 32
#: A worker holds at most this many results unsent (it sends a batch when it is this full: see
#: pycrew.worker.results). So when it dies, it had not started the tasks it held past this many plus one.
RESULTS_UNSENT_MAX = 256
#: json's own functions, out of a task's reach (a mock of ``json.dumps`` left running in a
#: worker would otherwise garble its control frames; see pycrew.wire.clock).
_json_dumps = json.dumps
_json_loads = json.loads
_RECORD = struct.Struct("<QI")
_ID = struct.Struct("<Q")
#: Largest frame accepted from a connection before it has authenticated (a HELLO is ~300 bytes).
HELLO_MAX_BYTES = 4096
#: What an instance id may look like (core makes hex ids, array elements ``<hex>-<index>``).
INSTANCE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_MAC_PATTERN = re.compile(r"[0-9a-f]{64}")
_HOST_MAX = 255
_VERSION_MAX = 64


class ProtocolError(ValueError):
    """A frame is malformed."""


def new_token() -> str:
    """A fresh random instance token (hex, 256 bits)."""
    return secrets.token_hex(32)


def new_nonce() -> bytes:
    """A fresh random challenge nonce."""
    return secrets.token_bytes(NONCE_BYTES)


def mac(token: str, nonce: bytes, instance: str) -> str:
    """The HELLO proof: hex HMAC-SHA256 of ``nonce || instance`` keyed by the token."""
    return hmac.new(token.encode(), nonce + instance.encode(), hashlib.sha256).hexdigest()


def derive_token(batch_key: str, instance: str) -> str:
    """The token of one worker of an array launch: HMAC-SHA256 of its instance id under the batch key.

    Array platforms (job arrays, indexed jobs, multi-task executions) give every element the
    same arguments and environment; each element derives its own instance id from its index
    and its own token from the shared batch key, so every worker still proves a distinct token.
    """
    return hmac.new(batch_key.encode(), instance.encode(), hashlib.sha256).hexdigest()


def encode_proof(token: str, nonce: bytes, instance: str) -> bytes:
    """The dispatcher's PROOF that it knows the worker's token: HMAC-SHA256 of
    ``"controller" || nonce || instance`` (``nonce``: the worker's, from its HELLO) keyed by the
    token. A worker takes no WELCOME (and so no task) before it: on plain TCP whoever holds the
    port a worker dials (its controller gone, another user's program there) could send it
    tasks, which run (a probe, on 5b5e0b7). The prefix keeps it from being the worker's own proof."""
    proof = hmac.new(token.encode(), b"controller" + nonce + instance.encode(), hashlib.sha256).digest()
    return bytes((PROOF,)) + proof


def verify_proof(token: str, nonce: bytes, instance: str, frame: Frame) -> bool:
    """Constant-time check of a PROOF frame against the worker's own ``nonce``."""
    return hmac.compare_digest(encode_proof(token, nonce, instance), bytes(frame))


def verify_mac(token: str, nonce: bytes, instance: str, proof: str) -> bool:
    """Constant-time check of a HELLO proof (any string is safe to pass: it is compared as bytes)."""
    return hmac.compare_digest(mac(token, nonce, instance).encode(), proof.encode("utf-8", "surrogatepass"))


def kind(frame: Frame) -> int:
    """The kind byte of a frame (raises :class:`ProtocolError` on an empty frame)."""
    if not frame:
        raise ProtocolError("empty frame")
    return frame[0]


def encode_json(kind_: int, body: dict[str, Any]) -> bytes:
    """A control frame with a JSON body."""
    return bytes((kind_,)) + _json_dumps(body, separators=(",", ":")).encode()


def decode_json(frame: Frame, limit: int | None = None) -> dict[str, Any]:
    """The JSON body of a control frame (must be an object)."""
    if limit is not None and len(frame) > limit:
        raise ProtocolError(f"control frame of {len(frame)} bytes exceeds {limit}")
    try:
        body = _json_loads(bytes(frame[1:]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad JSON body: {exc}") from exc
    except RecursionError as exc:  # deeply nested arrays or objects: hostile or broken, never ours
        raise ProtocolError("JSON body nested too deeply") from exc
    if not isinstance(body, dict):
        raise ProtocolError("JSON body is not an object")
    return body


def parse_leaving(frame: Frame) -> tuple[str, list[int]]:
    """The reason and the ids of the tasks given back in a LEAVING frame."""
    body = decode_json(frame)
    reason, ids = body.get("reason"), body.get("unstarted", [])
    if not isinstance(reason, str) or not isinstance(ids, list):
        raise ProtocolError("LEAVING needs a reason (a string) and unstarted (a list of task ids)")
    if not all(type(i) is int and 0 <= i < 1 << 64 for i in ids):
        raise ProtocolError("LEAVING's unstarted holds something other than task ids")
    return reason[:500], ids


#: Longest error text and traceback an INITIALIZED report carries (each).
REPORT_TEXT_MAX = 32_000
_INIT_STATUSES = ("success", "error", "timeout")


@dataclass(frozen=True)
class InitReport:
    """A validated INITIALIZED body: how the worker's initializer went."""

    status: str  # "success", "error" or "timeout"
    seconds: float
    error: str = ""
    error_type: str = ""
    traceback: str = ""


def parse_initialized(frame: Frame) -> InitReport:
    """Decode and validate an INITIALIZED frame (texts cut to :data:`REPORT_TEXT_MAX`)."""
    body = decode_json(frame)
    status, seconds = body.get("status"), body.get("seconds", 0.0)
    if status not in _INIT_STATUSES:
        raise ProtocolError(f"INITIALIZED field 'status' must be one of {_INIT_STATUSES}")
    if type(seconds) not in (int, float) or not 0 <= seconds < math.inf:
        raise ProtocolError("INITIALIZED field 'seconds' must be a finite number >= 0")
    texts = []
    for key in ("error", "error_type", "traceback"):
        value = body.get(key, "")
        if not isinstance(value, str):
            raise ProtocolError(f"INITIALIZED field {key!r} must be a string")
        texts.append(value[:REPORT_TEXT_MAX])
    return InitReport(status, float(seconds), *texts)


def encode_hello(
    token: str, nonce: bytes, instance: str, worker: int | None, tasks_max: int | None, own_nonce: bytes | None = None
) -> bytes:
    """A worker's HELLO: who it is, proved with its token against the dispatcher's ``nonce``;
    ``own_nonce``: the one the dispatcher's PROOF must answer (see :func:`encode_proof`)."""
    body = {
        "v": PROTOCOL_VERSION,
        "pycrew": PYCREW_VERSION,
        "instance": instance,
        "mac": mac(token, nonce, instance),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "worker": worker,
        "tasks_max": tasks_max,
        "nonce": own_nonce.hex() if own_nonce is not None else None,
        **runtime.versions(),  # Python's and cloudpickle's: see pycrew.wire.runtime
    }
    return encode_json(HELLO, body)


@dataclass(frozen=True)
class Hello:
    """A validated HELLO body."""

    instance: str
    mac: str
    host: str | None
    pid: int | None
    tasks_max: int | None
    version: int | None = None  # the wire protocol the worker speaks ("v"; None: it did not say)
    pycrew: str | None = None  # the worker's pycrew version, for messages
    nonce: bytes | None = None  # the worker's, for the dispatcher's PROOF (None: it asks for none)
    python: str | None = None  # the worker's Python and cloudpickle versions (see pycrew.wire.runtime)
    cloudpickle: str | None = None


def _optional_int(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"HELLO field {key!r} must be an integer in [{low}, {high}] or null")
    return value


def parse_hello(frame: Frame) -> Hello:
    """Decode and validate a HELLO frame, field by field, before anything trusts it.

    Raises:
        ProtocolError: the frame is too large, not a JSON object, or a field has the wrong
            type or size (the instance id must match :data:`INSTANCE_PATTERN`, the proof must
            be 64 lowercase hex digits).
    """
    body = decode_json(frame, limit=HELLO_MAX_BYTES)
    instance, proof = body.get("instance"), body.get("mac")
    if not isinstance(instance, str) or not INSTANCE_PATTERN.fullmatch(instance):
        raise ProtocolError("HELLO field 'instance' must be an instance id (1-128 of A-Z a-z 0-9 _ . : -)")
    if not isinstance(proof, str) or not _MAC_PATTERN.fullmatch(proof):
        raise ProtocolError("HELLO field 'mac' must be 64 lowercase hex digits")
    host = body.get("host")
    if host is not None and (not isinstance(host, str) or len(host) > _HOST_MAX):
        raise ProtocolError(f"HELLO field 'host' must be a string of at most {_HOST_MAX} characters or null")
    pycrew = body.get("pycrew")
    if pycrew is not None and (not isinstance(pycrew, str) or len(pycrew) > _VERSION_MAX):
        raise ProtocolError(f"HELLO field 'pycrew' must be a string of at most {_VERSION_MAX} characters or null")
    nonce = body.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or not _MAC_PATTERN.fullmatch(nonce)):
        raise ProtocolError("HELLO field 'nonce' must be 64 lowercase hex digits or null")
    python, pickler = (runtime.parse_version(body, key, ProtocolError) for key in ("python", "cloudpickle"))
    return Hello(
        instance=instance,
        mac=proof,
        host=host,
        pid=_optional_int(body, "pid", 0, 2**63 - 1),
        tasks_max=_optional_int(body, "tasks_max", 1, 2**62),
        version=_optional_int(body, "v", 0, 2**31),
        pycrew=pycrew,
        nonce=bytes.fromhex(nonce) if nonce is not None else None,
        python=python,
        cloudpickle=pickler,
    )


def encode_challenge(nonce: bytes) -> bytes:
    """CHALLENGE frame."""
    return bytes((CHALLENGE,)) + nonce


def decode_challenge(frame: Frame) -> bytes:
    """The nonce of a CHALLENGE frame."""
    if len(frame) != 1 + NONCE_BYTES or frame[0] != CHALLENGE:
        raise ProtocolError("bad CHALLENGE frame")
    return bytes(frame[1:])


def encode_records(kind_: int, records: Iterable[tuple[int, bytes]]) -> bytes:
    """A TASKS or RESULTS frame holding ``(id, payload)`` records."""
    return b"".join(record_parts(kind_, records))


def record_parts(kind_: int, records: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """The frame :func:`encode_records` makes, as the parts it joins (a transport may write
    them one after another instead: see ``Channel.send_parts``)."""
    parts = [bytes((kind_,))]
    pack = _RECORD.pack
    for id_, payload in records:
        parts.append(pack(id_, len(payload)))
        parts.append(payload)
    return parts


#: Payloads this large are not copied into and out of their frames: they are sent as parts of
#: it (:func:`record_parts`) and come out of :func:`decode_records` as views into it (a 20 MB
#: result copied costs ~5 ms here, and 20 MB more alive until it is unpickled).
LARGE_PAYLOAD = 64 * 1024


def decode_records(frame: Frame) -> list[tuple[int, Payload]]:
    """The ``(id, payload)`` records of a TASKS or RESULTS frame.

    A payload of :data:`LARGE_PAYLOAD` bytes or more is a ``memoryview`` of ``frame`` (which
    it keeps alive); ``pickle.loads`` takes either.
    """
    view = memoryview(frame)
    out: list[tuple[int, Payload]] = []
    pos, end = 1, len(view)
    unpack = _RECORD.unpack_from
    size = _RECORD.size
    while pos < end:
        if pos + size > end:
            raise ProtocolError("truncated record header")
        id_, length = unpack(view, pos)
        pos += size
        if pos + length > end:
            raise ProtocolError("truncated record payload")
        out.append((id_, view[pos : pos + length] if length >= LARGE_PAYLOAD else bytes(view[pos : pos + length])))
        pos += length
    return out


def encode_ids(kind_: int, ids: Sequence[int]) -> bytes:
    """A frame carrying task ids (CANCEL, RECALL, RETURNED)."""
    return bytes((kind_,)) + b"".join(_ID.pack(i) for i in ids)


def decode_ids(frame: Frame) -> list[int]:
    """The task ids of a CANCEL, RECALL or RETURNED frame."""
    body = memoryview(frame)[1:]
    if len(body) % _ID.size:
        raise ProtocolError("bad id frame length")
    return [v[0] for v in _ID.iter_unpack(body)]


BEAT_FRAME = bytes((BEAT,))
_PACE = struct.Struct("<dd")


def encode_pace(seconds_heartbeat: float, seconds_heartbeat_timeout: float) -> bytes:
    """The dispatcher's heartbeat: it carries the interval and timeout the worker keeps to
    from then on (they grow with the number of workers: see pycrew.control.beat_rate)."""
    return bytes((BEAT,)) + _PACE.pack(seconds_heartbeat, seconds_heartbeat_timeout)


def decode_pace(frame: Frame) -> tuple[float, float] | None:
    """The interval and timeout a dispatcher's heartbeat carries; ``None`` if it carries none
    or they make no sense (not positive, or an infinite interval)."""
    if len(frame) != 1 + _PACE.size:
        return None
    interval, timeout = _PACE.unpack_from(frame, 1)
    return (interval, timeout) if 0 < interval < math.inf and timeout > 0 else None

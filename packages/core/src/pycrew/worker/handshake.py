"""The worker's side of the handshake with its controller: :class:`Handshake`.

The controller challenges the worker, which proves its token (its HELLO); the worker sends
a nonce of its own with it, and takes the WELCOME (and so any task) only after the
controller's PROOF that it knows the token too (see :func:`pycrew.wire.protocol.encode_proof`).
Without it, on plain TCP, whoever held the port a worker dialed (its controller gone, another
user's program bound there) could send it a WELCOME and tasks, which ran (a probe, on 5b5e0b7).
"""

from __future__ import annotations

from pycrew.wire import protocol as p

#: Why a worker leaves a controller that sent a WELCOME without proving it knows the token.
UNPROVEN = (
    "the controller did not prove it knows this worker's token before its WELCOME (not the controller that "
    "launched this worker: another program listens on that port)"
)


class Handshake:
    """One worker's handshake: its nonce, whether it was challenged, whether the controller proved itself."""

    __slots__ = ("challenged", "instance", "nonce", "proven", "token")

    def __init__(self, token: str, instance: str) -> None:
        self.token = token
        self.instance = instance
        self.nonce = p.new_nonce()
        self.challenged = False  # the controller sent its challenge (a refusal before it is no token's)
        self.proven = False  # the controller's PROOF checked out

    def hello(self, challenge: p.Frame, worker: int | None, tasks_max: int | None) -> bytes:
        """The HELLO answering ``challenge`` (a CHALLENGE frame)."""
        nonce, self.challenged = p.decode_challenge(challenge), True
        return p.encode_hello(self.token, nonce, self.instance, worker, tasks_max, self.nonce)

    def prove(self, frame: p.Frame) -> None:
        """Check the controller's PROOF frame."""
        self.proven = p.verify_proof(self.token, self.nonce, self.instance, frame)

"""The wire between the dispatcher and its workers: messages, records and transports.

:mod:`~pycrew.wire.protocol` (frames and the authentication handshake),
:mod:`~pycrew.wire.records` (what a result record holds) and
:mod:`~pycrew.wire.transport` (the ``socket`` and ``nng`` links). Both sides use it; it
imports nothing of pycrew but itself and :mod:`pycrew.loglimit`.
"""

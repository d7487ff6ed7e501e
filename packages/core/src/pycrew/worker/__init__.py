"""The worker: ``python -m pycrew.worker`` (or ``pycrew worker``).

It dials the controller, proves its instance token (read from the environment variable
``PYCREW_TOKEN``, never from the command line), runs the tasks it is sent, and exits
after ``--seconds-idle`` without work, ``--seconds-wall`` of life or ``--tasks-max``
tasks, and promptly when the controller goes away.

The worker side (this package and :mod:`pycrew.wire`) imports nothing of the controller
side: a container with pycrew and the user's code is enough. Its modules:
:mod:`~pycrew.worker.command` (the command line), :mod:`~pycrew.worker.loop` (connection,
reading, serving), :mod:`~pycrew.worker.results` (batching results),
:mod:`~pycrew.worker.execution` (running one task), :mod:`~pycrew.worker.sampling`
(CPU and memory samples), :mod:`~pycrew.worker.exiting` (how the process ends),
:mod:`~pycrew.worker.import_path` (the controller's ``sys.path``, where its launcher passes it),
:mod:`~pycrew.worker.log_level` (``PYCREW_WORKER_LOG_LEVEL``).
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycrew.worker.exiting import exit_process

__all__ = ["exit_process", "main"]


def __getattr__(name: str) -> Any:
    # ``exit_process`` is loaded when asked for: a controller imports this package (for
    # the command line) and must not load the worker's exit machinery with it.
    if name == "exit_process":
        from pycrew.worker.exiting import exit_process

        return exit_process
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pycrew.worker``: parse the options, check the secrets, serve.

    Returns:
        The exit code: 0 after an exit rule or a stop request, 128 + the signal after a
        SIGTERM or SIGINT told it to leave (see :mod:`pycrew.worker.leaving`), 2 when started wrongly
        (usage, no token, no CA for TLS, no array index), 3 when it could not connect or
        was refused, 4 when the controller went away during a task (or its initializer),
        5 when the controller's initializer failed in it.
    """
    # The task loop is imported here, not when a controller imports the command line.
    import logging

    from pycrew.wire import protocol as p
    from pycrew.wire.transport import split_url
    from pycrew.worker import import_path, job_start
    from pycrew.worker.command import WorkerCommand, parser
    from pycrew.worker.log_level import worker_log_level
    from pycrew.worker.loop import EXIT_NO_TOKEN, Worker

    ap = parser()
    namespace = ap.parse_args(argv)  # usage errors and --help exit here
    try:
        command = WorkerCommand.from_namespace(namespace)
        split_url(command.url)  # a URL no transport can dial is a usage error, not a traceback when connecting
    except ValueError as exc:
        ap.error(str(exc))
    level, level_problem = worker_log_level(os.environ)
    if level_problem is not None:
        print(level_problem, file=sys.stderr)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = os.environ.pop(p.TOKEN_ENV, None)
    if not token:
        print(f"pycrew worker: the environment variable {p.TOKEN_ENV} is not set; workers are started by a controller's launcher", file=sys.stderr)
        return EXIT_NO_TOKEN
    ca = os.environ.pop(p.TLS_CA_ENV, None)
    server_name = os.environ.pop(p.TLS_SERVER_NAME_ENV, None)
    seconds_into_job = job_start.seconds_since_job_start(os.environ)
    if (problem := import_path.adopt(os.environ)) is not None:  # before any task is loaded
        logging.getLogger("pycrew.worker").warning("%s", problem)
    # The worker's own threads (heartbeats, cancel, metrics) must get the GIL back quickly
    # from a CPU-bound task: a shorter switch interval bounds how long they wait.
    sys.setswitchinterval(0.001)
    try:
        resolved = command.resolve(os.environ)
        if command.array:  # every element holds the batch key: its own token derives from it
            assert resolved.instance is not None
            token = p.derive_token(token, resolved.instance)
        worker = Worker(resolved, token, ca, seconds_into_job=seconds_into_job, server_name=server_name)
    except ValueError as exc:
        print(f"pycrew worker: {exc}", file=sys.stderr)
        return EXIT_NO_TOKEN
    gc.collect()
    return worker.run()

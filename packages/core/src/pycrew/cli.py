"""The ``pycrew`` command: ``worker``, ``demo``, ``launchers``, ``monitor``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from pycrew.monitor import Monitor
from pycrew.plugins import get_registry


def _launchers(_: argparse.Namespace) -> int:
    reg = get_registry()
    for name in reg.installed_launchers():
        spec = reg.launcher(name)
        print(f"{name:<10} {spec.distribution or '-'} {spec.version or ''}  {spec.summary}")
    return 0


def _monitor(ns: argparse.Namespace) -> int:
    m = Monitor(ns.launcher)
    workers = m.orphans() if ns.orphans else m.list(ns.controller)
    if ns.action == "terminate":
        chosen = workers if ns.all or ns.orphans else [w for w in workers if w.id in set(ns.ids)]
        if not chosen:
            print("nothing to terminate (give worker ids, --all or --orphans)", file=sys.stderr)
            return 1
        print(f"terminated {m.terminate(chosen)} worker(s)")
        return 0
    if ns.json:
        print(json.dumps([{k: v for k, v in asdict(w).items() if k != "handle"} for w in workers], default=str))
        return 0
    print(f"{'id':<12} {'controller':<14} {'instance':<17} {'worker':>6} {'state':<10} {'age':>8}  host")
    for w in workers:
        age = f"{w.age:.0f}s" if w.age is not None else "-"
        print(f"{w.id:<12} {w.controller or '-':<14} {w.instance or '-':<17} {w.worker or '-':>6} {w.state:<10} {age:>8}  {w.host or '-'}")
    return 0


def _demo(ns: argparse.Namespace) -> int:
    from pycrew.demo import run_demo

    run_demo(workers=ns.workers, tasks=ns.tasks, launcher=ns.launcher)
    return 0


def _worker(ns: argparse.Namespace) -> int:
    from pycrew.worker import main as worker_main

    return worker_main(ns.args)


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    ap = argparse.ArgumentParser(prog="pycrew", description="Launch workers anywhere and push tasks to them.")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("launchers", help="list installed launchers")
    p.set_defaults(fn=_launchers)
    p = sub.add_parser("monitor", help="list or terminate a launcher's workers")
    p.add_argument("launcher")
    p.add_argument("action", choices=["list", "terminate"])
    p.add_argument("ids", nargs="*", help="worker ids to terminate")
    p.add_argument("--all", action="store_true", help="terminate every listed worker")
    p.add_argument("--orphans", action="store_true", help="only workers whose controller is gone")
    p.add_argument("--controller", default=None, help="only this controller id's workers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=_monitor)
    p = sub.add_parser("demo", help="estimate pi on workers, with a progress bar")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--launcher", default="local")
    p.set_defaults(fn=_demo)
    p = sub.add_parser("worker", help="the worker entry point (started by launchers)", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=_worker)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pycrew`` command."""
    ns = parser().parse_args(argv)
    return int(ns.fn(ns))


if __name__ == "__main__":
    sys.exit(main())

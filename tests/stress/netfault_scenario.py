"""Network-fault scenarios for test_netfaults.py, run inside the controller's network namespace.

Usage (as root, from the test):
    ip netns exec NS_CTL python netfault_scenario.py run CONFIG_JSON
        runs one scenario ("loss" or "cut") and prints its findings as one JSON line;
    ip netns exec NS_W python netfault_scenario.py proxy LISTEN_PORT TARGET_HOST TARGET_PORT DELAY
        a TCP proxy on 127.0.0.1:LISTEN_PORT that holds every chunk DELAY seconds each way
        (``tc netem`` does not exist on this kernel); prints "ready" once it listens.

Workers start through a wrapper (the local launcher's ``python=``) that reads
``MAP_DIR/slot-N`` ("namespace mode url") to choose their namespace; mode ``detach``
starts a worker out of the launcher's reach, so only its own heartbeat timeout can end it.
The task functions live here, in ``__main__``, so they travel to the workers by value.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

import pycrew


def nap_then(seconds: float, value: int) -> tuple[int, int]:
    """Sleep, then return ``value`` and the worker's pid."""
    time.sleep(seconds)
    return value, os.getpid()


def write_map(map_dir: str, slot: int, namespace: str, mode: str, url: str = "-") -> None:
    """Point worker slot ``slot`` at ``namespace`` (atomically: the wrapper may be reading it)."""
    path = os.path.join(map_dir, f"slot-{slot}")
    with open(path + ".tmp", "w") as f:
        f.write(f"{namespace} {mode} {url}\n")
    os.replace(path + ".tmp", path)


def on_dispatcher(c: pycrew.Controller, fn: Any) -> Any:
    """Run ``fn()`` on the dispatcher thread (which owns the connections) and return its value."""
    d = c._dispatcher
    assert d is not None
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(fn())
        finally:
            done.set()

    d.call_soon(run)
    if not done.wait(10):
        raise RuntimeError("the dispatcher did not answer within 10 s")
    return box[0]


def in_flight(c: pycrew.Controller) -> dict[str, int | None]:
    """Task name -> pid of the worker holding it, for every task sent and not answered."""
    d = c._dispatcher
    assert d is not None
    return on_dispatcher(c, lambda: {t.name: conn.pid for conn in d.conns.values() for t in conn.in_flight.values()})


def controller(config: dict[str, Any]) -> pycrew.Controller:
    return pycrew.controller(
        "local",
        workers=config["workers"],
        host=config["host"],
        port=config["port"],
        python=config["wrapper"],
        log_dir=config["log_dir"],
        env={"PYCREW_WORKER_LOG_LEVEL": "INFO"},
        seconds_heartbeat=config["seconds_heartbeat"],
        seconds_heartbeat_timeout=config["seconds_heartbeat_timeout"],
        seconds_launch=60,
        crashes_max=1_000,
    )


def outcome(c: pycrew.Controller, finished: bool, t0: float) -> dict[str, Any]:
    results = c.collect()
    s = c.summary()
    return {
        "finished": finished,
        "seconds": time.monotonic() - t0,
        "retries": s.controller.retries,
        "worker_instances": sum(w.instances for w in s.workers),
        "results": [
            {
                "name": r.name,
                "status": r.status,
                "value": r.result[0] if r.ok else None,
                "pid": r.result[1] if r.ok else None,
                "attempts": r.attempts,
                "error": r.error,
            }
            for r in results
        ],
    }


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie has)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_loss(config: dict[str, Any]) -> dict[str, Any]:
    """Tasks over lossy and delayed links: everything must come back exactly once."""
    c = controller(config).start()
    try:
        t0 = time.monotonic()
        for i in range(config["tasks"]):
            c.push(nap_then, args=(0.002 + (i % 7) * 0.002, i), name=f"t{i}")
        finished = c.wait(timeout=config["timeout"])
        return outcome(c, finished, t0)
    finally:
        c.terminate()


def run_cut(config: dict[str, Any]) -> dict[str, Any]:
    """Cut one worker's link mid-task; watch its tasks move and the worker leave by itself."""
    c = controller(config).start()
    found: dict[str, Any] = {}
    cut_pid: int | None = None
    try:
        t0 = time.monotonic()
        for i in range(config["tasks"]):
            c.push(nap_then, args=(config["task_seconds"], i), name=f"t{i}")
        victim_ns = config["victim_namespace"]
        deadline = time.monotonic() + 60
        held: dict[str, int | None] = {}
        while time.monotonic() < deadline:  # wait until the victim (slot 2) runs a task
            slot = c.summary().workers[1]
            held = in_flight(c)
            if slot.online and slot.pid is not None and slot.pid in held.values():
                cut_pid = slot.pid
                break
            time.sleep(0.05)
        if cut_pid is None:
            raise RuntimeError(f"the worker in {victim_ns} never ran a task within 60 s")
        time.sleep(0.3)  # mid-task
        cut_tasks = sorted(name for name, pid in in_flight(c).items() if pid == cut_pid)
        write_map(config["map_dir"], 2, config["spare_namespace"], "exec")  # relaunches go elsewhere
        subprocess.run(["ip", "link", "set", config["cut_device"], "down"], check=True)
        t_cut = time.monotonic()
        found.update(cut_pid=cut_pid, cut_tasks=cut_tasks)
        moved_at: float | None = None
        exited_at: float | None = None
        limit = t_cut + config["seconds_heartbeat_timeout"] + 30
        while time.monotonic() < limit and (moved_at is None or exited_at is None):
            now = time.monotonic()
            if moved_at is None:
                held = in_flight(c)
                if not any(held.get(name) == cut_pid for name in cut_tasks):  # sent elsewhere, or resolved
                    moved_at = now
            if exited_at is None and gone(cut_pid):
                exited_at = now
            time.sleep(0.02)
        found.update(
            seconds_cut_to_reassigned=None if moved_at is None else moved_at - t_cut,
            seconds_cut_to_worker_exit=None if exited_at is None else exited_at - t_cut,
        )
        finished = c.wait(timeout=config["timeout"])
        found.update(outcome(c, finished, t0))
        return found
    finally:
        c.terminate()
        if cut_pid is not None and not gone(cut_pid):  # it did not exit by itself: do not leave it behind
            psutil.Process(cut_pid).kill()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, chunk))
        queue.put_nowait((time.monotonic() + delay, b""))

    async def write() -> None:
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        writer.close()

    await asyncio.gather(read(), write(), return_exceptions=True)


async def proxy(listen_port: int, target_host: str, target_port: int, delay: float) -> None:
    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:  # the controller is not up yet: the worker retries
            client_w.close()
            return
        await asyncio.gather(_pump(client_r, server_w, delay), _pump(server_r, client_w, delay))

    server = await asyncio.start_server(serve, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if argv[0] == "proxy":
        asyncio.run(proxy(int(argv[1]), argv[2], int(argv[3]), float(argv[4])))
        return 0
    config = json.loads(argv[1])
    run = {"loss": run_loss, "cut": run_cut}[config["scenario"]]
    print(json.dumps(run(config)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

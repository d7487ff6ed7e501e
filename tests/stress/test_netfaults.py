"""Network faults across network namespaces this test creates (root only).

Topology, all inside namespaces of our own (nothing is addressed from the root namespace):
the controller runs in ``<prefix>-c`` behind a bridge at 10.213.0.1; each worker namespace
``<prefix>-wN`` hangs off that bridge by a veth pair (``vcN`` on the bridge, ``vwN`` with
10.213.0.(10+N) in the worker's namespace). ``tc netem`` does not exist on this kernel, so
loss is an nft ``numgen random`` drop rule in a worker's namespace, delay a user-space TCP
proxy in that namespace, and a cut is the bridge port going down.

The controller itself runs in a subprocess inside its namespace (netfault_scenario.py) and
reports what happened as JSON; the assertions are here.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

FULL = os.environ.get("PYCREW_STRESS") == "full"
SCENARIO = Path(__file__).with_name("netfault_scenario.py")
CONTROLLER = "10.213.0.1"
PORT = 47000
PROXY_PORT = 47001
LOSS_PERCENT = 10
DELAY = 0.025  # seconds each way through the proxy

WRAPPER = r"""#!/bin/bash
# Run a pycrew worker in the network namespace its slot maps to: MAP_DIR/slot-N holds
# "namespace mode url" (mode exec, or detach: out of the launcher's reach; url "-": unchanged).
args=("$@")
slot=0
for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = "--worker" ]; then slot="${args[i+1]}"; fi
done
read -r ns mode url < "MAP_DIR/slot-$slot"
if [ "$url" != "-" ]; then
    for ((i = 0; i < ${#args[@]}; i++)); do
        if [ "${args[i]}" = "--url" ]; then args[i+1]="$url"; fi
    done
fi
if [ "$mode" = detach ]; then
    setsid -f ip netns exec "$ns" PYTHON "${args[@]}" >>"LOG_DIR/detached-$slot.log" 2>&1 </dev/null
    exit 0
fi
exec ip netns exec "$ns" PYTHON "${args[@]}"
"""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed with exit code {proc.returncode}: {proc.stderr.strip()}")


@dataclass
class Lab:
    """Our namespaces, the worker wrapper, and the processes we started in them."""

    prefix: str
    root: Path
    workers: int
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def controller_ns(self) -> str:
        return f"{self.prefix}-c"

    def worker_ns(self, n: int) -> str:
        return f"{self.prefix}-w{n}"

    @property
    def map_dir(self) -> Path:
        return self.root / "map"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def wrapper(self) -> Path:
        return self.root / "worker-in-netns"

    def create(self) -> None:
        c = self.controller_ns
        for ns in [c] + [self.worker_ns(n) for n in range(1, self.workers + 1)]:
            _ip("netns", "add", ns)
            self.namespaces.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", c, "link", "add", "br0", "type", "bridge")
        _ip("-n", c, "addr", "add", f"{CONTROLLER}/24", "dev", "br0")
        _ip("-n", c, "link", "set", "br0", "up")
        for n in range(1, self.workers + 1):
            w = self.worker_ns(n)
            _ip("link", "add", f"vc{n}", "netns", c, "type", "veth", "peer", "name", f"vw{n}", "netns", w)
            _ip("-n", c, "link", "set", f"vc{n}", "master", "br0")
            _ip("-n", c, "link", "set", f"vc{n}", "up")
            _ip("-n", w, "addr", "add", f"10.213.0.{10 + n}/24", "dev", f"vw{n}")
            _ip("-n", w, "link", "set", f"vw{n}", "up")
        self.map_dir.mkdir()
        self.log_dir.mkdir()
        text = WRAPPER.replace("MAP_DIR", str(self.map_dir)).replace("LOG_DIR", str(self.log_dir)).replace("PYTHON", sys.executable)
        self.wrapper.write_text(text)
        self.wrapper.chmod(0o755)

    def map_slot(self, slot: int, namespace: str, mode: str = "exec", url: str = "-") -> None:
        (self.map_dir / f"slot-{slot}").write_text(f"{namespace} {mode} {url}\n")

    def lose(self, namespace: str, device: str, percent: int) -> None:
        """Drop ``percent`` % of the packets leaving and entering ``device`` in ``namespace``."""
        rules = (
            "table inet pycrew_stress_loss {\n"
            f"  chain input {{ type filter hook input priority 0; policy accept; iifname \"{device}\" numgen random mod 100 < {percent} drop; }}\n"
            f"  chain output {{ type filter hook output priority 0; policy accept; oifname \"{device}\" numgen random mod 100 < {percent} drop; }}\n"
            "}\n"
        )
        proc = subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=rules, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"nft refused the loss rules in {namespace}: {proc.stderr.strip()}"

    def start_proxy(self, namespace: str) -> None:
        """A delaying proxy on 127.0.0.1:PROXY_PORT in ``namespace``, towards the controller."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(SCENARIO), "proxy", str(PROXY_PORT), CONTROLLER, str(PORT), str(DELAY)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.processes.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", "the delay proxy did not start"

    def run(self, config: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one scenario in the controller's namespace; its JSON findings."""
        config = {
            "host": CONTROLLER,
            "port": PORT,
            "wrapper": str(self.wrapper),
            "map_dir": str(self.map_dir),
            "log_dir": str(self.log_dir),
            **config,
        }
        proc = subprocess.run(
            ["ip", "netns", "exec", self.controller_ns, sys.executable, str(SCENARIO), "run", json.dumps(config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=Path(__file__).parents[2],
        )
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 0 and lines, (
            f"the scenario failed (exit code {proc.returncode}):\n{proc.stderr[-4000:]}\nworker logs: {self.log_dir}"
        )
        found: dict[str, Any] = json.loads(lines[-1])
        return found

    def destroy(self) -> None:
        for proc in self.processes:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for ns in self.namespaces:
            listing = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
            for pid in listing.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:  # ended meanwhile
                    pass
            _ip("netns", "del", ns)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (run the stress suite as root, e.g. in CI)"
    for tool in ("ip", "nft", "setsid"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (scripts/test.sh installs iproute2 and nftables when root)"
    probe = f"pycrew-stress-probe-{secrets.token_hex(3)}"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return f"`ip netns add` does not work here: {proc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A controller namespace and two worker namespaces on a bridge, deleted afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    made = Lab(prefix=f"pycrew-stress-{secrets.token_hex(3)}", root=tmp_path, workers=2)
    try:
        made.create()
        yield made
    finally:
        made.destroy()


def _check_exactly_once(found: dict[str, Any], tasks: int) -> list[dict[str, Any]]:
    results = found["results"]
    counts = collections.Counter(r["name"] for r in results)
    assert not [n for n, k in counts.items() if k > 1], f"results delivered twice: {[n for n, k in counts.items() if k > 1][:10]}"
    missing = {f"t{i}" for i in range(tasks)} - set(counts)
    assert found["finished"] and not missing, f"{len(missing)} results never delivered, e.g. {sorted(missing)[:10]}"
    wrong = [r for r in results if r["status"] != "success" or r["value"] != int(r["name"][1:])]
    assert not wrong, f"{len(wrong)} tasks did not succeed with their own value, e.g. {wrong[:3]}"
    return list(results)


def test_lossy_and_delayed_links_lose_and_duplicate_nothing(lab, figures):
    tasks = 2_000 if FULL else 200
    w1, w2 = lab.worker_ns(1), lab.worker_ns(2)
    lab.lose(w1, "vw1", LOSS_PERCENT)
    lab.lose(w2, "vw2", LOSS_PERCENT)
    lab.start_proxy(w1)  # worker 1 also talks through a delay, over the lossy link
    lab.map_slot(1, w1, url=f"tcp://127.0.0.1:{PROXY_PORT}")
    lab.map_slot(2, w2)
    found = lab.run(
        {"scenario": "loss", "workers": 2, "tasks": tasks, "seconds_heartbeat": 1.0, "seconds_heartbeat_timeout": 6.0, "timeout": 600},
        timeout=900,
    )
    results = found["results"]
    by_pid = collections.Counter(r["pid"] for r in results)
    figures(
        tasks=tasks,
        loss_percent_each_way=LOSS_PERCENT,
        delay_ms_each_way_worker1=DELAY * 1000,
        seconds=found["seconds"],
        tasks_per_second=len(results) / found["seconds"],
        retries=found["retries"],
        worker_instances=found["worker_instances"],
        tasks_per_worker_process=sorted(by_pid.values(), reverse=True),
    )
    _check_exactly_once(found, tasks)


def test_cut_worker_loses_its_tasks_to_others_after_the_heartbeat_timeout_and_exits_by_itself(lab, figures):
    tasks = 40 if FULL else 10
    heartbeat, timeout = 0.5, 3.0
    w1, w2 = lab.worker_ns(1), lab.worker_ns(2)
    lab.map_slot(1, w1)
    lab.map_slot(2, w2, mode="detach")  # out of the launcher's reach: only its own timeout can end it
    found = lab.run(
        {
            "scenario": "cut",
            "workers": 2,
            "tasks": tasks,
            "task_seconds": 1.0,
            "seconds_heartbeat": heartbeat,
            "seconds_heartbeat_timeout": timeout,
            "victim_namespace": w2,
            "spare_namespace": w1,
            "cut_device": "vc2",
            "timeout": 300,
        },
        timeout=600,
    )
    figures(
        tasks=tasks,
        seconds_heartbeat=heartbeat,
        seconds_heartbeat_timeout=timeout,
        cut_worker_pid=found["cut_pid"],
        cut_worker_tasks=found["cut_tasks"],
        seconds_cut_to_reassigned=found["seconds_cut_to_reassigned"],
        seconds_cut_to_worker_exit=found["seconds_cut_to_worker_exit"],
        seconds=found["seconds"],
        retries=found["retries"],
        worker_instances=found["worker_instances"],
    )
    results = {r["name"]: r for r in _check_exactly_once(found, tasks)}
    assert found["cut_tasks"], "the cut worker held no task at the cut"
    moved = found["seconds_cut_to_reassigned"]
    assert moved is not None, "the cut worker's tasks were never taken back from it"
    # Not before the dispatcher could have noticed the silence (the last frame may predate
    # the cut by up to one heartbeat), and not much after.
    assert timeout - heartbeat - 0.25 <= moved <= timeout + 10, f"tasks taken back {moved:.2f} s after the cut; timeout {timeout} s"
    for name in found["cut_tasks"]:
        r = results[name]
        assert r["pid"] != found["cut_pid"] and r["attempts"] >= 2, f"task {name} of the cut worker did not run elsewhere: {r}"
    exited = found["seconds_cut_to_worker_exit"]
    assert exited is not None, f"the cut worker (pid {found['cut_pid']}) was still running {timeout + 30:g} s after the cut"
    assert exited <= timeout + 10, f"the cut worker exited {exited:.1f} s after the cut; its heartbeat timeout is {timeout} s"

"""Scale benchmark: one controller with W = 10 ... 5,000 connected workers.

Workers come from the ``swarm`` launcher (``pycrew_emulators.swarm``): real
``pycrew.worker`` loops, many per host process, so that one machine holds thousands of
connections. For each W, in a fresh child process:

1. connect: time from ``start()`` (which launches all W, ``workers_at_start=W``) until
   all W are online;
2. idle: the dispatcher thread's CPU (% of one core) while all W are connected and idle,
   and the hosts' CPU (the worker loops' own polling);
3. throughput: ``--tasks`` no-ops submitted one by one, then gathered (tasks/s);
   dispatcher CPU per task (the dispatcher thread's own CPU time, read with
   ``time.thread_time()`` on that thread), controller process CPU per task;
4. round trip: ``--trips`` sequential ``submit(noop).result()``, p50/p99;
5. controller RSS (psutil) once connected and after the throughput run, and the
   controller's and one host's open files;
6. with ``--profile``: cProfile on the dispatcher thread for a window while all W are
   idle, and one while most are busy (tasks of ``--busy-sleep`` seconds, enough to keep
   every worker busy); per-call costs of the functions that may scan every connection.

Usage::

    python benchmarks/bench_scale.py --workers 10,100 --tasks 10000          # while developing
    python benchmarks/bench_scale.py --workers 10,100,1000,5000 --json scale.json
    python benchmarks/bench_scale.py --workers 100,1000 --tasks 10000 --profile

Needs pycrew and pycrew-emulators (the ``swarm`` launcher) installed, and psutil. The
soft RLIMIT_NOFILE is raised to the hard limit; the controller needs about W + 60 open
files, each host about 5 per worker + 20. See ``docs/benchmarks.md``, "Scale".
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import tasks  # noqa: E402  (needs HERE on sys.path)

RESULT_MARK = "BENCH_SCALE "
#: Functions of the dispatcher thread whose per-call cost the profile reports (file suffix, name).
WATCHED = (
    ("dispatcher.py", "_step"),
    ("dispatcher.py", "_run"),
    ("upkeep.py", "_maintain"),
    ("upkeep.py", "running"),
    ("assignment.py", "_assign"),
    ("assignment.py", "_offer"),
    ("assignment.py", "_rebuild_ready"),
    ("resolving.py", "_on_tick"),
    ("scaler.py", "scale"),
    ("scaler.py", "supply"),
    ("launch_watch.py", "_poll_monitor"),
    ("socket_server.py", "poll"),
    ("socket_server.py", "maintain"),
    ("dispatcher.py", "frame_received"),
    ("dispatcher.py", "_results"),
)


# -- helpers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return ``(soft, hard)`` after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def on_dispatcher(controller: Any, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Run ``fn`` on the controller's dispatcher thread and return its value."""
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        box.append(fn())
        done.set()

    controller._dispatcher.call_soon(run)
    if not done.wait(timeout):
        raise RuntimeError(f"the dispatcher did not run a call within {timeout:g} s")
    return box[0]


def dispatcher_tid() -> int | None:
    """The native thread id of the dispatcher thread (found by its name)."""
    for thread in threading.enumerate():
        if thread.name == "pycrew-dispatcher":
            return thread.native_id
    return None


def proc_thread_cpu(tid: int) -> float:
    """A thread's CPU seconds from /proc (utime + stime; clock-tick resolution)."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hosts_cpu(psutil: Any) -> float:
    """CPU seconds (user + system) of this process's children: the swarm hosts."""
    total = 0.0
    for child in psutil.Process().children():
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def hosts_rss(psutil: Any) -> tuple[int, int, int]:
    """``(count, total RSS, open files of the largest)`` of the swarm hosts."""
    count, rss, fds = 0, 0, 0
    for child in psutil.Process().children():
        try:
            rss += child.memory_info().rss
            fds = max(fds, child.num_fds())
            count += 1
        except psutil.Error:
            continue
    return count, rss, fds


def wait_online(controller: Any, n: int, timeout: float, t0: float) -> tuple[float, list[tuple[float, int]]]:
    """Wait until ``n`` workers are online; return when (``time.perf_counter()``) and the curve.

    The curve is ``(seconds since t0, workers online)`` at every change of at least 1 %.
    """
    deadline = time.monotonic() + timeout
    curve: list[tuple[float, int]] = [(0.0, 0)]
    while True:
        online = controller.launcher.online()
        now = time.perf_counter()
        if online - curve[-1][1] >= max(1, n // 100) or (online >= n and curve[-1][1] < n):
            curve.append((now - t0, online))
        if online >= n:
            return now, curve
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {online} of {n} workers online after {timeout:g} s: {controller.summary().launcher}")
        time.sleep(0.01)


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listen queue was full (this network namespace)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1], strict=True))["ListenOverflows"])
    except (OSError, KeyError, IndexError, ValueError):
        return None


def beat_round_us(controller: Any) -> float:
    """µs the dispatcher takes to send one heartbeat to every connection (an extra round, timed on its thread).

    The dispatcher spreads these over the heartbeat interval (each connection beats on its
    own schedule); this is their total cost per interval.
    """
    from pycrew.control.conn import READY

    d = controller._dispatcher

    def send_all() -> float:
        t0 = time.perf_counter()
        for conn in list(d.conns.values()):
            if conn.state == READY:
                d._send(conn, d.beats.frame)
        return 1e6 * (time.perf_counter() - t0)

    value: float = on_dispatcher(controller, send_all)
    return value


def tick_costs(controller: Any, repeat: int = 21) -> dict[str, float]:
    """Median µs per call, unprofiled, of what the dispatcher does on every 100 ms tick.

    Timed on the dispatcher thread (which is blocked meanwhile): ``_maintain`` (heartbeat
    and time-limit checks over every connection, plus the scaler's tick; a call that
    falls on a heartbeat round also sends a beat to every worker, the median skips it),
    the controller's ``_on_tick`` (the scaler's demand: ``running()`` and ``scale()``),
    and its parts ``running()``, ``supply()`` and the socket server's ``maintain()``.
    """
    d = controller._dispatcher
    now = time.monotonic

    def measure() -> dict[str, float]:
        parts: dict[str, Callable[[], Any]] = {
            "upkeep._maintain": lambda: d._maintain(now()),
            "resolving._on_tick": lambda: controller._on_tick(now()),
            "upkeep.running": d.running,
            "scaler.supply": controller.launcher.supply,
            "socket_server.maintain": lambda: d.server.maintain(now()),
        }
        out = {}
        for name, fn in parts.items():
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                samples.append(1e6 * (time.perf_counter() - t0))
            out[name] = statistics.median(samples)
        return out

    result: dict[str, float] = on_dispatcher(controller, measure)
    return result


def profile_window(controller: Any, seconds: float) -> tuple[cProfile.Profile, float]:
    """cProfile the dispatcher thread for ``seconds``; also its CPU seconds meanwhile."""
    profile = cProfile.Profile()
    cpu0 = on_dispatcher(controller, time.thread_time)
    on_dispatcher(controller, profile.enable)
    time.sleep(seconds)
    on_dispatcher(controller, profile.disable)
    return profile, on_dispatcher(controller, time.thread_time) - cpu0


def profile_rows(window: tuple[cProfile.Profile, float], seconds: float, top: int) -> dict[str, Any]:
    """The watched functions' calls and per-call times, and the top functions by own time.

    Times are cProfile's: wall time on the thread (waiting in ``epoll`` included), with the
    profiler's own overhead; compare them between W, not with unprofiled numbers.
    """
    profile, cpu = window
    stats = pstats.Stats(profile)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    watched = {}
    for (path, _line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        for suffix, wanted in WATCHED:
            if name == wanted and path.endswith(suffix):
                watched[f"{suffix[:-3]}.{name}"] = {
                    "calls": calls,
                    "calls_per_s": calls / seconds,
                    "us_per_call": 1e6 * cumtime / calls if calls else 0.0,
                    "own_us_per_call": 1e6 * tottime / calls if calls else 0.0,
                    "cum_ms_per_s": 1e3 * cumtime / seconds,
                }
    ranked = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    tops = [
        {"function": f"{os.path.basename(path)}:{line}({name})", "calls": calls, "own_ms": 1e3 * tottime,
         "cum_ms": 1e3 * cumtime}
        for (path, line, name), (_cc, calls, tottime, cumtime, _callers) in ranked
    ]
    return {"seconds": seconds, "dispatcher_cpu_s": cpu, "watched": watched, "top": tops}


# -- one W (child process) ----------------------------------------------------------------------


def run_one(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every measure for ``workers`` workers on one controller (runs in a fresh child)."""
    import psutil

    import pycrew
    from pycrew.controller_options import ControllerOptions

    soft, hard = raise_nofile()
    me = psutil.Process()
    out: dict[str, Any] = {"workers": workers, "nofile": [soft, hard], "rss_start": me.memory_info().rss}
    options: dict[str, Any] = {
        "workers": workers,
        "workers_per_host": args.per_host,
        "seconds_launch": max(60.0, workers * 0.05),
        "wire": args.wire,
    }
    at_start = "workers_at_start" in ControllerOptions.__dataclass_fields__
    if at_start:
        options["workers_at_start"] = workers
    c = pycrew.controller("swarm", **options)
    try:
        overflows = listen_overflows()
        t0 = time.perf_counter()
        c.start()
        if not at_start:  # demand for W workers: W tasks pushed at once (they finish as workers connect)
            for _ in range(workers):
                c.push(tasks.noop)
        t1, curve = wait_online(c, workers, options["seconds_launch"] + 30, t0)
        out["connect_s"] = t1 - t0
        out["connect_curve"] = curve
        for q in (50, 90, 99):
            out[f"connect_p{q}_s"] = next(t for t, k in curve if k >= workers * q / 100)
        after = listen_overflows()
        out["listen_overflows"] = None if overflows is None or after is None else after - overflows
        if not at_start:
            c.wait(timeout=60)
            c.collect()
        c.submit(tasks.noop).result(timeout=60)  # warm: the first task pays for imports
        out["rss_connected"] = me.memory_info().rss
        out["controller_fds"] = me.num_fds()
        out["hosts"], out["hosts_rss"], out["host_fds_max"] = hosts_rss(psutil)
        tid = dispatcher_tid()

        # Idle: every worker connected, nothing to do.
        time.sleep(min(2.0, args.idle_seconds))  # let the connect burst settle
        d0, h0, w0 = on_dispatcher(c, time.thread_time), hosts_cpu(psutil), time.perf_counter()
        p0 = proc_thread_cpu(tid) if tid else 0.0
        time.sleep(args.idle_seconds)
        d1, h1, w1 = on_dispatcher(c, time.thread_time), hosts_cpu(psutil), time.perf_counter()
        p1 = proc_thread_cpu(tid) if tid else 0.0
        out["idle_dispatcher_pct"] = 100 * (d1 - d0) / (w1 - w0)
        out["idle_dispatcher_proc_pct"] = 100 * (p1 - p0) / (w1 - w0)
        out["idle_hosts_pct"] = 100 * (h1 - h0) / (w1 - w0)
        out["tick_us_idle"] = tick_costs(c)
        out["beat_round_us"] = beat_round_us(c)

        # Throughput: N no-ops submitted one by one, then gathered.
        n = args.tasks
        gc.collect()
        d0, c0, h0 = on_dispatcher(c, time.thread_time), sum(me.cpu_times()[:2]), hosts_cpu(psutil)
        t0 = time.perf_counter()
        submit, fn = c.submit, tasks.noop
        futures = [submit(fn) for _ in range(n)]
        t1 = time.perf_counter()
        for f in futures:
            f.result()
        t2 = time.perf_counter()
        d1, c1, h1 = on_dispatcher(c, time.thread_time), sum(me.cpu_times()[:2]), hosts_cpu(psutil)
        del futures
        out["tasks"] = n
        out["tasks_per_s"] = n / (t2 - t0)
        out["submit_per_s"] = n / (t1 - t0)
        out["dispatcher_us_per_task"] = 1e6 * (d1 - d0) / n
        out["controller_us_per_task"] = 1e6 * (c1 - c0) / n
        out["hosts_us_per_task"] = 1e6 * (h1 - h0) / n
        out["rss_after_tasks"] = me.memory_info().rss
        workers_used = sum(1 for w in c.summary().workers if w.complete > 0)
        out["workers_used"] = workers_used

        # Round trips, one at a time.
        samples, starts = [], []
        clock = time.perf_counter_ns
        for _ in range(args.trips):
            starts.append(time.monotonic())
            s = clock()
            submit(fn).result()
            samples.append((clock() - s) / 1000.0)
        out["rt_p50_us"] = percentile(samples, 0.5)
        out["rt_p99_us"] = percentile(samples, 0.99)
        out["rt_mean_us"] = statistics.fmean(samples)
        out["rt_max_us"] = max(samples)
        # Trips slower than 10 ms, with when they started (seconds into the run of trips):
        # each connection beats on its own schedule, so there is no global beat round to
        # line them up with.
        dispatcher = c._dispatcher
        assert dispatcher is not None
        out["rt_slow"] = [
            {"us": us, "at_s": start - starts[0]}
            for start, us in zip(starts, samples, strict=True) if us > 10_000
        ]

        if args.profile:
            out["profile"] = {"idle": profile_rows(profile_window(c, args.idle_seconds), args.idle_seconds, args.top)}
            # Busy: enough tasks of busy_sleep seconds to keep every worker busy through the window.
            per_worker = math.ceil((args.busy_seconds + 2.0) / args.busy_sleep) + 1
            busy = [submit(tasks.sleep, args.busy_sleep) for _ in range(workers * per_worker)]
            time.sleep(1.0)  # every worker has started
            running = on_dispatcher(c, dispatcher.running)
            out["tick_us_busy"] = tick_costs(c)
            done0 = sum(f.done() for f in busy)
            window = profile_window(c, args.busy_seconds)
            done1 = sum(f.done() for f in busy)
            rows = profile_rows(window, args.busy_seconds, args.top)
            rows.update(in_flight=running, tasks_done=done1 - done0)
            out["profile"]["busy"] = rows
        t0 = time.perf_counter()
    finally:
        c.terminate()
    out["terminate_s"] = time.perf_counter() - t0
    return out


# -- the parent: one child per W, then the table ------------------------------------------------


def spawn(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one W in a fresh child; its numbers or ``{"workers": W, "error": ...}``."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(workers), *sys.argv[1:]]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=args.child_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            return {"workers": workers, "error": f"timed out after {args.child_timeout:g} s", "stderr": _own_lines(stderr)}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK):])
            return result
    return {"workers": workers, "error": f"exit code {proc.returncode}", "stderr": _own_lines(stderr)}


def _own_lines(stderr: str, keep: int = 6000) -> str:
    """The child's own output (its traceback), without the thousands of worker log lines
    a failing run at large W produces, which would otherwise push it out of the excerpt."""
    lines = stderr.splitlines()
    own = [line for line in lines if " pycrew.worker " not in line]
    dropped = len(lines) - len(own)
    text = "\n".join(own)[-keep:]
    return text + (f"\n[{dropped:,} worker log lines left out]" if dropped else "")


def table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a text table, one row per W."""
    columns = [
        ("W", "workers", "{:,}"),
        ("hosts", "hosts", "{}"),
        ("connect s", "connect_s", "{:.2f}"),
        ("p90 s", "connect_p90_s", "{:.2f}"),
        ("tasks/s", "tasks_per_s", "{:,.0f}"),
        ("RT p50 us", "rt_p50_us", "{:,.0f}"),
        ("RT p99 us", "rt_p99_us", "{:,.0f}"),
        ("RT>10ms", "rt_slow", "len"),
        ("disp us/task", "dispatcher_us_per_task", "{:.1f}"),
        ("ctl us/task", "controller_us_per_task", "{:.1f}"),
        ("hosts us/task", "hosts_us_per_task", "{:.1f}"),
        ("idle disp %", "idle_dispatcher_pct", "{:.1f}"),
        ("idle hosts %", "idle_hosts_pct", "{:.0f}"),
        ("RSS MiB", "rss_connected", "mib"),
        ("RSS after MiB", "rss_after_tasks", "mib"),
        ("ctl fds", "controller_fds", "{:,}"),
        ("beat round ms", "beat_round_us", "ms"),
        ("listen ovfl", "listen_overflows", "{:,}"),
    ]
    rows = [[title for title, _, _ in columns]]
    for r in results:
        if "error" in r:
            rows.append([f"{r['workers']:,}", f"error: {r['error']}"] + [""] * (len(columns) - 2))
            continue
        row = []
        for _, key, fmt in columns:
            value = r.get(key)
            if value is None:
                row.append("-")
            elif fmt == "mib":
                row.append(f"{value / 2**20:,.0f}")
            elif fmt == "ms":
                row.append(f"{value / 1000:,.1f}")
            elif fmt == "len":
                row.append(f"{len(value)}")
            else:
                row.append(fmt.format(value))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def tick_table(results: Sequence[dict[str, Any]]) -> str:
    """Unprofiled µs per call of the per-tick scans, per W (idle, and busy with --profile)."""
    names = ["upkeep._maintain", "resolving._on_tick", "upkeep.running", "scaler.supply", "socket_server.maintain"]
    rows = [["per tick (us/call)", *[f"W={r['workers']:,} {m}" for r in results for m in ("idle", "busy")
                                     if f"tick_us_{m}" in r]]]
    for name in names:
        rows.append([name, *[f"{r[f'tick_us_{m}'][name]:,.1f}" for r in results for m in ("idle", "busy")
                             if f"tick_us_{m}" in r]])
    if len(rows[0]) == 1:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def profile_table(results: Sequence[dict[str, Any]]) -> str:
    """Per-call costs of the watched dispatcher functions, idle and busy, per W."""
    lines = []
    for r in results:
        prof = r.get("profile")
        if not prof:
            continue
        for mode in ("idle", "busy"):
            p = prof.get(mode)
            if not p:
                continue
            extra = ""
            if mode == "busy":
                extra = f"; in flight {p['in_flight']:,}, {p['tasks_done'] / p['seconds']:,.0f} tasks/s"
            lines.append(f"\nW={r['workers']:,} {mode} (cProfile, {p['seconds']:g} s window; dispatcher CPU "
                         f"{p['dispatcher_cpu_s']:.2f} s, profiler included{extra})")
            lines.append(f"  {'function':28} {'calls/s':>9} {'us/call':>9} {'own us':>8} {'ms/s':>7}")
            for name, v in sorted(p["watched"].items(), key=lambda kv: -kv[1]["cum_ms_per_s"]):
                lines.append(f"  {name:28} {v['calls_per_s']:9,.1f} {v['us_per_call']:9,.1f} "
                             f"{v['own_us_per_call']:8,.1f} {v['cum_ms_per_s']:7,.2f}")
            lines.append("  top by own time:")
            for t in p["top"]:
                lines.append(f"    {t['own_ms']:9.1f} ms own {t['cum_ms']:9.1f} ms cum {t['calls']:9,} calls  {t['function']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="10,100,1000,5000", help="comma-separated worker counts (default %(default)s)")
    ap.add_argument("--tasks", type=int, default=100_000, help="no-ops of the throughput run (default %(default)s)")
    ap.add_argument("--trips", type=int, default=1_000, help="sequential round trips (default %(default)s)")
    ap.add_argument("--per-host", type=int, default=250, help="worker loops per swarm host process (default %(default)s)")
    ap.add_argument("--wire", default="socket", choices=("socket", "nng"), help="the controller's transport")
    ap.add_argument("--idle-seconds", type=float, default=3.0, help="idle window (CPU and profile), seconds")
    ap.add_argument("--profile", action="store_true", help="cProfile the dispatcher thread idle and busy")
    ap.add_argument("--busy-sleep", type=float, default=0.5, help="task length of the busy profile window, seconds")
    ap.add_argument("--busy-seconds", type=float, default=5.0, help="busy profile window, seconds")
    ap.add_argument("--top", type=int, default=12, help="functions listed by own time per profile window")
    ap.add_argument("--child-timeout", type=float, default=1800.0, help="a W that takes longer is reported as an error")
    ap.add_argument("--json", metavar="FILE", help="write every number (and the profiles) as JSON")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every W in its own child process; print the table (and the profiles)."""
    args = parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p)
    if args.child is not None:
        print(RESULT_MARK + json.dumps(run_one(args.child, args)), flush=True)
        return 0
    sizes = [int(w) for w in args.workers.split(",") if w.strip()]
    soft, hard = raise_nofile()
    load = os.getloadavg()
    print(f"bench_scale: W={sizes}, {args.tasks:,} no-ops, {args.trips:,} round trips, {args.per_host} workers per "
          f"host, wire={args.wire}; cpus={os.cpu_count()}, load avg {load[0]:.2f}; RLIMIT_NOFILE {soft}/{hard}")
    for w in sizes:
        need = w + 60
        if need > soft:
            print(f"warning: W={w} needs about {need:,} open files in the controller; RLIMIT_NOFILE is {soft:,}")
    results = []
    for w in sizes:
        started = time.perf_counter()
        result = spawn(w, args)
        result["wall_s"] = time.perf_counter() - started
        results.append(result)
        status = f"error: {result['error']}" if "error" in result else f"{result['tasks_per_s']:,.0f} tasks/s"
        print(f"  W={w:,}: {status} ({result['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        if "error" in result:
            print(result.get("stderr", ""), file=sys.stderr)
    print(table(results))
    ticks = tick_table([r for r in results if "error" not in r])
    if ticks:
        print("\nthe dispatcher's tick (10 per second), unprofiled:\n" + ticks)
    profiles = profile_table(results)
    if profiles:
        print(profiles)
    load_end = os.getloadavg()
    print(f"load avg at start {load[0]:.2f}, at end {load_end[0]:.2f}")
    if args.json:
        doc = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": [os.path.basename(sys.argv[0]), *(sys.argv[1:] if argv is None else argv)],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "loadavg_start": list(load), "loadavg_end": list(load_end)},
            "results": results,
        }
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

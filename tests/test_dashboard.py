"""The dashboard (``dashboard=True``): its server, its data, and the page in a real headless Chromium.

The browser test needs Debian's ``chromium`` (``scripts/install-chromium.sh``) and the
``playwright`` package (``scripts/setup.sh --test``); without them it skips, except under
``CI=true``, where it fails. Its screenshots are kept in ``.artifacts/`` at the top of the
repository (and in the test's tmp dir).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import select
import shutil
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import pycrew
from helpers import always_crash, crash_until, identity, raise_value_error, sleep_then
from support import wait_for

# The gate task below is defined here: workers get it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def wait_for_gate(path: str, value: int) -> int:
    """Task: block until the file ``path`` exists (at most a minute), then return ``value``."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} never opened")
        time.sleep(0.02)
    return value


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET ``url`` (on 127.0.0.1): status, headers, body; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def state(c: pycrew.Controller) -> dict[str, Any]:
    """The dashboard's JSON of a controller that listens on loopback."""
    assert c.dashboard_link is not None, "the controller has no dashboard"
    status, _, body = get(c.dashboard_link + "api/state")
    assert status == 200, body
    data: dict[str, Any] = json.loads(body)
    return data


def wait_state(c: pycrew.Controller, condition: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the dashboard's JSON until ``condition(data)`` holds; fail showing its events otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        data = state(c)
        if condition(data):
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard did not get there within {timeout} s; events: {data['events']}")
        time.sleep(0.1)


def local_link(c: pycrew.Controller, path: str = "") -> str:
    """The dashboard URL with its host replaced by 127.0.0.1 (tests never dial other addresses)."""
    assert c._dashboard is not None
    return f"http://127.0.0.1:{c._dashboard.port}/{path}"


# -- the option and the server --------------------------------------------------------------


def test_dashboard_is_off_by_default(make_controller):
    c = make_controller("local", workers=1).start()
    assert c.dashboard_link is None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (
            {"dashboard": 0},
            "'dashboard' must be True (a free port), False (off) or a port number between 1 and 65535, got 0",
        ),
        ({"dashboard": 70000}, "'dashboard' must be True (a free port), False (off) or a port number"),
        ({"dashboard": "yes"}, "'dashboard' must be bool or int, got 'yes'"),
        ({"dashboard_host": " "}, "'dashboard_host' must be an address to listen on"),
    ],
)
def test_bad_dashboard_options_are_refused_with_the_option_named(options, named):
    with pytest.raises(pycrew.OptionsError) as info:
        pycrew.controller("local", workers=1, **options)
    assert named in str(info.value)


def test_link_serves_the_page_until_terminate(make_controller):
    c = make_controller("local", workers=1, dashboard=True).start()
    link = c.dashboard_link
    assert link is not None and link.startswith("http://127.0.0.1:") and link.endswith("/"), link
    status, headers, body = get(link)
    assert status == 200 and "<title>pycrew dashboard</title>" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"], "the page must not load anything from elsewhere"
    assert "http://" not in body.replace('"http://www.w3.org/2000/svg"', ""), "the page references another site"
    status, _, body = get(link + "nothing-here")
    assert status == 404 and "/api/state" in body
    data = state(c)
    assert data["controller"]["name"] == "local" and data["controller"]["state"] == "running"
    assert "seconds_metrics" in data["metrics_note"], "without metrics the page must say how to turn them on"
    port = c._dashboard.port
    c.terminate()
    assert c.dashboard_link is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def kept_alive(port: int) -> socket.socket:
    """A connection that made one allowed request and read its answer, and stays open (HTTP/1.1 keep-alive)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/state")
    reply = conn.getresponse()
    assert reply.status == 200 and not reply.will_close
    reply.read()
    assert conn.sock is not None
    return conn.sock


def _connection_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "process_request_thread" in t.name}


def test_connections_left_open_end_with_the_controller(make_controller, monkeypatch, caplog):
    """On 18bece1 a client's idle connection kept its thread (and socket) blocked in a read
    for ever after terminate(), and any number of them could be opened."""
    from pycrew.dashboard import server

    monkeypatch.setattr(server._Server, "connections_max", 4)
    c = make_controller("local", workers=1, dashboard=True).start()
    port, served = c._dashboard.port, c._dashboard.server
    others = _connection_threads()  # other servers of this process (emulators) have their own
    idle = [kept_alive(port) for _ in range(4)]  # each made an allowed request: they keep their places
    wait_for(lambda: len(served._open) == 4, timeout=10, message="the idle connections are not being served")
    # Its own: a ThreadingHTTPServer's thread holds its connection as its first argument.
    mine = {t for t in _connection_threads() - others if getattr(t, "_args", (None,))[:1] and t._args[0] in served._open}
    assert len(mine) == 4
    with caplog.at_level(logging.WARNING, logger="pycrew.dashboard.server"):
        for _ in range(5):
            extra = socket.create_connection(("127.0.0.1", port), timeout=10)
            assert extra.recv(1) == b"", "a connection past connections_max was served"
            extra.close()
    assert "4 connections are open already; 1 new one(s) closed" in caplog.text
    # On 33e082d every refused connection logged a warning: a scanner filled the log.
    assert caplog.text.count("connections are open already") == 1, caplog.text
    idle.pop().close()
    wait_for(lambda: len(served._open) == 3, timeout=10, message="a closed connection kept its thread")
    assert get(c.dashboard_link + "api/state")[0] == 200
    c.terminate()
    wait_for(lambda: not served._open, timeout=10, message="terminate() left connections open")
    wait_for(lambda: not any(t.is_alive() for t in mine), timeout=10, message="terminate() left connection threads running")
    for sock in idle:
        assert sock.recv(1) == b"", "terminate() left a client's connection open"
        sock.close()


def test_connections_that_make_no_allowed_request_give_their_places_to_new_ones(make_controller, monkeypatch):
    """On d0119a8 clients that connected and sent nothing, or trickled a request a byte at a
    time without the token, took every place (connections_max) and locked the page and its
    scrapers out for as long as they stayed; refused requests kept their connections too."""
    from pycrew.dashboard import server

    monkeypatch.setattr(server._Server, "connections_max", 4)
    c = make_controller("local", workers=1, dashboard=True, dashboard_host="0.0.0.0").start()
    port, served = c._dashboard.port, c._dashboard.server
    token = c.dashboard_link.split("?token=", 1)[1]
    stalled = []
    for _ in range(4):  # half a request each, then nothing
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /api/state HTTP/1.1\r\n")
        stalled.append(sock)
    wait_for(lambda: len(served._open) == 4, timeout=10, message="the stalled connections are not being served")
    for _ in range(3):
        assert get(local_link(c, f"api/state?token={token}"))[0] == 200, "a client with the token was locked out"
    # The first took the oldest stalled one's place; the next two the place the first left free, or, when
    # it was not freed yet, the next stalled ones' places.
    readable, _, _ = select.select(stalled, [], [], 10)
    assert stalled[0] in readable, "the oldest stalled connection was closed first"
    assert all(sock.recv(1) == b"" for sock in readable), "a closed place: the connection ended"
    for sock in stalled:
        sock.close()
    # Refused (no token): the answer closes the connection, which keeps no place.
    refused = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    refused.request("GET", "/api/state")
    reply = refused.getresponse()
    assert reply.status == 401 and reply.will_close, reply.headers
    refused.close()


def test_kept_alive_connections_and_head_requests(make_controller, monkeypatch):
    """Answers go out without Nagle's delay (on d0119a8 each answer on a kept-alive
    connection waited about 40 ms for the client's delayed acknowledgement), HEAD is
    answered (it was 501), and a burst of clients is queued by the kernel (the backlog was 5)."""
    from pycrew.dashboard import server

    nodelay: list[int] = []
    setup = server._Handler.setup

    def recording_setup(self: Any) -> None:
        setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(server._Handler, "setup", recording_setup)
    c = make_controller("local", workers=1, dashboard=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", c._dashboard.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/metrics")
        reply = conn.getresponse()
        assert reply.status == 200 and b"pycrew_tasks_pushed_total" in reply.read()
    conn.request("HEAD", "/api/state")
    reply = conn.getresponse()
    assert reply.status == 200 and int(reply.headers["Content-Length"]) > 0 and reply.read() == b""
    conn.close()
    assert nodelay and all(nodelay), nodelay
    assert c._dashboard.server.request_queue_size >= c._dashboard.server.connections_max


def test_a_client_that_resets_its_connection_prints_no_traceback(make_controller, capfd, caplog):
    """On d0119a8 a client that reset its connection mid-request (curl's Ctrl-C, a scraper's
    timeout) printed socketserver's traceback to the controller's stderr."""
    c = make_controller("local", workers=1, dashboard=True).start()
    port = c._dashboard.port
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, not a clean close
    with caplog.at_level(logging.DEBUG, logger="pycrew.dashboard.server"):
        assert get(c.dashboard_link + "api/state")[0] == 200
        wait_for(lambda: not c._dashboard.server._open, timeout=10, message="the reset connections kept their places")
    c.terminate()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


def test_a_fixed_port_is_used(make_controller):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = make_controller("local", workers=1, dashboard=port).start()
    assert c.dashboard_link == f"http://127.0.0.1:{port}/"
    assert get(c.dashboard_link)[0] == 200


def test_a_taken_port_fails_start_naming_the_option(make_controller):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        c = make_controller("local", workers=1, dashboard=port)
        with pytest.raises(pycrew.ControllerError) as info:
            c.start()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "dashboard=<port>" in message and "dashboard_host=" in message, message
    assert not c.started and c._dispatcher is None, "nothing may run after a failed start"


def test_off_loopback_every_request_needs_the_token(make_controller):
    # Listens on every interface; the test itself only ever dials 127.0.0.1.
    c = make_controller("local", workers=1, dashboard=True, dashboard_host="0.0.0.0").start()
    link = c.dashboard_link
    assert link is not None and "?token=" in link, link
    token = link.split("?token=", 1)[1]
    for path in ("", "api/state", "metrics"):
        status, _, body = get(local_link(c, path))
        assert status == 401 and "dashboard_link" in body, (path, status, body)
    status, _, body = get(local_link(c, "api/state?token=wrong"))
    assert status == 401 and "wrong" in body
    assert get(local_link(c, f"?token={token}"))[0] == 200
    assert get(local_link(c, f"api/state?token={token}"))[0] == 200
    assert get(local_link(c, "metrics"), {"Authorization": f"Bearer {token}"})[0] == 200


def test_on_loopback_a_foreign_host_name_is_refused(make_controller):
    c = make_controller("local", workers=1, dashboard=True).start()
    status, _, body = get(c.dashboard_link + "api/state", {"Host": "rebound.example:80"})
    assert status == 403 and "loopback" in body, body
    assert get(c.dashboard_link + "api/state", {"Host": "localhost"})[0] == 200


def test_refused_requests_do_not_take_the_turns_of_allowed_ones(make_controller):
    """Requests are paced (see pycrew.dashboard.bodies.Pace), but a refused one is answered
    at once and takes no turn: a flood of requests for a foreign host name (40 clients) made
    every allowed request wait 2 s for its turn (a probe, on 750c40e)."""
    c = make_controller("local", workers=1, dashboard=True).start()
    pace = c._dashboard.server.pace
    turns: list[float] = []
    wait = pace.wait
    pace.wait = lambda: (turns.append(time.monotonic()), wait())[1]  # type: ignore[method-assign]
    for _ in range(20):
        assert get(c.dashboard_link + "api/state", {"Host": "rebound.example"})[0] == 403
    assert turns == [], f"{len(turns)} refused requests took a turn"
    assert get(c.dashboard_link + "api/state")[0] == 200
    assert len(turns) == 1


# -- what the dashboard reports ---------------------------------------------------------------


def test_failures_crashes_and_exits_are_reported(make_controller):
    c = make_controller("local", workers=1, dashboard=True, crashes_max=1, seconds_idle=1.0).start()
    c.push(raise_value_error, ("boom",), name="fails")
    c.push(always_crash, name="crashes")
    assert c.wait(timeout=60)
    c.push(identity, (1,), name="after")
    assert c.wait(timeout=60)
    data = wait_state(c, lambda d: {"launch", "connect", "crash", "exit"} <= {e["kind"] for e in d["events"]})
    failed = {f["name"]: f for f in data["failed"]}
    assert failed["fails"]["status"] == "error" and failed["fails"]["error_type"] == "ValueError"
    assert "raise_value_error" in failed["fails"]["traceback"], failed["fails"]
    assert failed["crashes"]["status"] == "crash"
    assert "after" not in failed
    crash = next(e for e in data["events"] if e["kind"] == "crash")
    assert crash["worker"] == 1 and "without a goodbye" in crash["detail"], crash
    exit_ = next(e for e in data["events"] if e["kind"] == "exit")
    assert "idle for seconds_idle=1" in exit_["detail"], exit_  # the worker's own reason
    tasks = data["tasks"]
    assert (tasks["success"], tasks["error"], tasks["crash"], tasks["pushed"]) == (1, 1, 1, 3), tasks


def test_instances_replaced_between_two_looks_do_not_show_the_newest_ones_pid():
    """On d0119a8 every connect seen in one look showed the slot's newest host and pid: a
    worker that crashed and was relaunched within the second showed the replacement's pid twice."""
    from types import SimpleNamespace

    from pycrew.dashboard.events import SlotWatcher

    slot = SimpleNamespace(
        index=1, launches=0, instances=0, launch_failures=0, crashes=0, failures=0, state="launching",
        instance=None, last_instance=None, host=None, pid=None, exit_reason="",
    )
    launcher = SimpleNamespace(slots=[slot], last_launch_error=None, error=None)
    watcher = SlotWatcher(launcher, launch_max=5)  # type: ignore[arg-type]
    watcher.look(time.monotonic())
    slot.launches, slot.instances, slot.crashes, slot.state = 2, 2, 1, "connected"
    slot.instance, slot.host, slot.pid = "second", "node-b", 4242
    watcher.look(time.monotonic())
    connects = [e for e in watcher.recent() if e["kind"] == "connect"]
    assert len(connects) == 2, watcher.recent()
    newest, earlier = connects  # newest first
    assert newest["instance"] == "second" and "pid 4242" in newest["detail"], newest
    assert earlier["instance"] is None and "4242" not in earlier["detail"] and "node-b" not in earlier["detail"], earlier


def test_a_backups_dashboard_counts_the_tasks_handed_to_it(make_controller, tmp_path):
    """On d0119a8 a backup's counts included a task handed to it, but its round trips and
    failed tasks did not (its result went back to the first controller before the
    dashboard heard of it)."""
    big = make_controller("local", workers=1, name="big", dashboard=True, crashes_max=1)
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big).start()
    small.push(crash_until, (str(tmp_path / "n"), 1), name="recovers")
    small.push(always_crash, name="doomed")
    assert small.wait(timeout=60)
    assert {r.name: r.status for r in small.collect()} == {"recovers": "success", "doomed": "crash"}
    data = wait_state(big, lambda d: d["round_trip"]["count"] == 2)
    assert (data["tasks"]["pushed"], data["tasks"]["success"], data["tasks"]["crash"]) == (2, 1, 1), data["tasks"]
    assert [f["name"] for f in data["failed"]] == ["doomed"], data["failed"]


def test_launch_failures_show_the_platforms_reason(make_controller, tmp_path):
    python = tmp_path / "no-image"
    python.write_text('#!/bin/sh\necho "image pull failed: no such image example/worker:1" >&2\nexit 3\n')
    python.chmod(0o755)
    c = make_controller("local", workers=1, dashboard=True, python=str(python), launch_max=2).start()
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError):
        c.wait(timeout=60)

    def failures(data: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in data["events"] if e["kind"] == "launch failure"]

    data = wait_state(c, lambda d: len(failures(d)) == 2 and all("no such image" in e["detail"] for e in failures(d)))
    assert sorted(e["detail"].split(":")[0] for e in failures(data)) == [
        "failed launch 1 in a row (launch_max=2)",
        "failed launch 2 in a row (launch_max=2)",
    ]
    assert "no such image" in data["launcher"]["error"] and data["launcher"]["launch_failures"] == 2
    assert any(e["kind"] == "launch error" and "gave up" in e["detail"] for e in data["events"])


def test_a_failing_result_listener_does_not_keep_results_from_their_owner(make_controller, caplog):
    c = make_controller("local", workers=1, dashboard=True).start()

    def broken(task: object, result: object) -> None:
        raise RuntimeError("listener bug")

    c._result_listeners = [broken, *c._result_listeners]
    with caplog.at_level(logging.ERROR, logger="pycrew.control.controller"):
        assert list(c.map(identity, range(5))) == [0, 1, 2, 3, 4]
    assert "a result listener failed" in caplog.text
    assert state(c)["round_trip"]["count"] == 5, "the dashboard's own listener still ran after the broken one"


# -- the page in a real browser -----------------------------------------------------------------


@pytest.fixture
def browser() -> Any:
    """Debian's Chromium driven by Playwright; skips without them unless CI=true."""
    why = None
    if not os.path.exists(CHROMIUM):
        why = f"{CHROMIUM} is missing (scripts/install-chromium.sh installs Debian's chromium)"
    else:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            why = "the playwright package is missing (scripts/setup.sh --test installs it)"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the dashboard's browser test must run in CI: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def keep_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Screenshot the whole page into the test's tmp dir and .artifacts/; returns the kept copy."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / name
    shutil.copyfile(shot, kept)
    assert kept.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{kept} is not a PNG"
    return kept


def expect_text(page: Any, element: str, text: str, timeout: float = 30.0) -> None:
    """Wait until the element with id ``element`` shows exactly ``text``."""
    try:
        page.wait_for_function(
            "([id, text]) => document.getElementById(id).textContent === text",
            arg=[element, text],
            timeout=timeout * 1000,
        )
    except Exception as exc:
        shown = page.evaluate("(id) => document.getElementById(id).textContent", element)
        pytest.fail(f"#{element} shows {shown!r}, expected {text!r} within {timeout} s ({type(exc).__name__})")


@pytest.mark.slow
def test_page_shows_live_counts_in_chromium(make_controller, browser, tmp_path):
    gate = tmp_path / "gate"
    c = make_controller(
        "local",
        workers=2,
        dashboard=True,
        prefetch_max=1,
        seconds_idle=2.0,
        seconds_metrics=0.25,
        metrics_dir=str(tmp_path / "metrics"),
    ).start()
    link = c.dashboard_link
    assert link is not None
    origin = link.rsplit("/", 1)[0]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(link)
    expect_text(page, "live", "live")
    expect_text(page, "tasks-pushed", "0")

    # A first batch (some throughput to plot, one failure to list), then tasks held at a gate.
    assert list(c.map(sleep_then, [0.05] * 60, range(60))) == list(range(60))
    c.push(raise_value_error, ("boom from the dashboard test",), name="fails")
    assert c.wait(timeout=60)
    for i in range(6):
        c.push(wait_for_gate, (str(gate), i), name=f"gated_{i}")
    expect_text(page, "tasks-pushed", "67")
    expect_text(page, "tasks-running", "2")
    expect_text(page, "tasks-queued", "4")
    expect_text(page, "tasks-success", "60")
    expect_text(page, "tasks-error", "1")
    expect_text(page, "workers-online", "2 / 2")
    expect_text(page, "workers-launching", "0")
    page.wait_for_selector("#worker-rows tr[data-state=connected] >> nth=1")
    # CPU and memory of both workers from their metrics samples: "12 %" and "23.4 MiB"
    page.wait_for_function(
        """() => [...document.querySelectorAll('#worker-rows tr')].every(r =>
            /^\\d+ %$/.test(r.children[r.children.length - 2].textContent)
            && r.lastElementChild.textContent.endsWith('MiB'))""",
        timeout=15000,
    )
    headers = page.locator("section[aria-label=workers] th").evaluate_all("cells => cells.slice(-2).map(c => c.textContent)")
    assert headers == ["CPU", "memory"], f"the last two columns are no longer CPU and memory: {headers}"
    page.wait_for_selector("#plot polyline")
    failed = page.locator("#failed details[data-status=error]")
    assert "ValueError: boom from the dashboard test" in failed.first.inner_text()
    failed.first.locator("summary").click()
    assert "raise_value_error" in failed.first.locator("pre").inner_text()
    renders = int(page.evaluate("document.body.dataset.renders"))
    page.wait_for_function("(n) => Number(document.body.dataset.renders) > n", arg=renders)
    assert failed.first.evaluate("d => d.open"), "an opened traceback closed when the page refreshed"
    kinds = page.locator("#events li").evaluate_all("items => items.map(i => i.dataset.kind)")
    assert {"launch", "connect"} <= set(kinds), kinds
    keep_screenshot(page, tmp_path, "dashboard.png")

    gate.write_text("open")
    expect_text(page, "tasks-success", "66")
    expect_text(page, "tasks-running", "0")
    expect_text(page, "tasks-queued", "0")
    # seconds_idle=2: both workers leave, saying why.
    expect_text(page, "workers-online", "0 / 2")
    page.wait_for_selector("#events li[data-kind=exit] >> nth=1")
    assert "seconds_idle" in page.locator("#events li[data-kind=exit]").first.inner_text()
    keep_screenshot(page, tmp_path, "dashboard-idle.png")
    outside = [url for url in requested if not url.startswith(origin)]
    assert not outside, f"the page requested files from elsewhere: {outside}"
    page.close()


def test_page_passes_its_token_on_when_off_loopback(make_controller, browser):
    # Listens on every interface; the browser only ever dials 127.0.0.1.
    c = make_controller("local", workers=1, dashboard=True, dashboard_host="0.0.0.0").start()
    assert c.dashboard_link is not None
    token = c.dashboard_link.split("?token=", 1)[1]
    page = browser.new_page()
    page.goto(local_link(c, f"?token={token}"))
    expect_text(page, "live", "live")
    expect_text(page, "title", "local · launcher local · running")
    page.goto(local_link(c))
    assert "needs its token" in page.inner_text("body")
    page.close()


def test_the_token_never_goes_to_the_log(make_controller, caplog) -> None:
    """The INFO line gave the link with its token, and the DEBUG request lines each request's
    query (a refused one's too): a probe of secrets, session 36."""
    import logging
    import urllib.error
    import urllib.request

    caplog.set_level(logging.DEBUG, logger="pycrew.dashboard")
    c = make_controller("local", workers=1, dashboard=True, dashboard_host="0.0.0.0").start()
    token = c.dashboard_link.split("?token=")[1]
    assert token
    for query in (f"?token={token}", "?token=wrong", f"?token=x&token={token}"):
        try:  # on loopback, with a loopback Host: the token is checked all the same
            urllib.request.urlopen(f"http://127.0.0.1:{c.dashboard_link.split(':')[2].split('/')[0]}/api/state{query}",
                                   timeout=10).read()
        except urllib.error.HTTPError:
            pass
    c.terminate()
    assert token not in caplog.text, caplog.text
    assert "dashboard at http://" in caplog.text and "needs the token in the controller's dashboard_link" in caplog.text
    assert "token=<token>" in caplog.text

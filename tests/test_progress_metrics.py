"""Progress bars, asyncio, and worker metrics on the local launcher."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest

import pycrew
from helpers import busy_loop, fail_at, identity, raise_value_error
from support import wait_for


def test_map_with_progress_draws_a_bar_with_counts(make_controller, capsys):
    c = make_controller("local", workers=2).start()
    assert list(c.map(busy_loop, [0.3] * 4, progress=True)) == ["finished"] * 4
    err = capsys.readouterr().err
    assert "local map" in err and "4/4" in err and "online=" in err and "failed=0" in err


def _last_bar(err: str, desc: str) -> str:
    """The final state of the bar ``desc`` in captured stderr (tqdm redraws with carriage returns)."""
    return [part for part in err.replace("\n", "\r").split("\r") if part.startswith(desc)][-1]


@pytest.mark.parametrize("buffersize", ["auto", None])
def test_a_map_bar_ends_at_what_it_did(make_controller, capsys, buffersize):
    """On 473ee6a a map over a generator ended at 50/51, a map given up on at its first error
    was drawn complete (the futures it cancelled counted as done), and ``failed`` counted
    every failure the controller ever had."""
    c = make_controller("local", workers=2).start()
    with pytest.raises(ValueError, match="item 0 is bad"):
        list(c.map(fail_at, range(40), [0] * 40, [0.05] * 40, buffersize=buffersize, progress=True))
    gave_up = _last_bar(capsys.readouterr().err, "local map")
    assert "40/40" not in gave_up and "failed=0" not in gave_up, gave_up  # (its cancelled tasks count as failed too)
    assert c.wait(timeout=60)
    assert list(c.map(identity, (i for i in range(50)), buffersize=buffersize, progress=True)) == list(range(50))
    clean = _last_bar(capsys.readouterr().err, "local map")
    assert "50/50" in clean and "failed=0" in clean, clean


def test_wait_and_walk_with_progress(make_controller, capsys):
    c = make_controller("local", workers=2).start()
    c.walk(identity, range(30), progress=True)
    c.push(raise_value_error, ("x",))
    assert c.wait(progress=True, timeout=60)
    err = capsys.readouterr().err
    assert "walk (pushed)" in err and "30/30" in err
    assert "local wait" in err and "31/31" in err and "failed=1" in err
    # a walk's failed= counts its own tasks' failures, not the controller's earlier ones (a probe, on bbed32e)
    c.walk(identity, range(5), progress=True)
    walked = _last_bar(capsys.readouterr().err, "local walk")
    assert "5/5" in walked and "failed=0" in walked, walked


class BreaksAfter(io.StringIO):
    """stderr that takes ``writes`` writes, then fails as a closed pipe does."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.writes = writes

    def write(self, text: str) -> int:
        if self.writes <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.writes -= 1
        return super().write(text)


@pytest.mark.parametrize("stderr", ["none", "broken at once", "breaks later"])
def test_a_progress_bar_that_cannot_be_drawn_never_fails_the_work(make_controller, monkeypatch, caplog, stderr):
    """Failed on b1455c5: with sys.stderr None (pythonw, some daemons) map(progress=True)
    raised AttributeError, and with a broken stderr the BrokenPipeError of the bar's write
    ended the map; now the work goes on without a bar."""
    stream = {"none": None, "broken at once": BreaksAfter(0), "breaks later": BreaksAfter(3)}[stderr]
    c = make_controller("local", workers=1)
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(c.map(abs, range(-20, 0), progress=True)) == [abs(x) for x in range(-20, 0)]
    c.walk(identity, range(3), progress=True)
    assert c.wait(timeout=60, progress=True)
    assert sorted(r.result for r in c.collect()) == [0, 1, 2]
    if stderr != "none":
        assert "the progress bar cannot be drawn on stderr" in caplog.text


def test_submit_async_in_an_event_loop(make_controller):
    c = make_controller("local", workers=2).start()

    async def main() -> list[object]:
        values = await asyncio.gather(*(c.submit_async(identity, i) for i in range(4)))
        with pytest.raises(ValueError, match="async boom"):
            await c.submit_async(raise_value_error, "async boom")
        return list(values)

    assert asyncio.run(asyncio.wait_for(main(), 60)) == [0, 1, 2, 3]


def test_worker_metrics_are_sampled_tagged_and_plotted(make_controller, tmp_path):
    metrics_dir = tmp_path / "metrics"
    c = make_controller("local", workers=1, seconds_metrics=0.1, metrics_dir=str(metrics_dir)).start()
    c.push(busy_loop, (1.0,), name="spin")
    assert c.wait(timeout=60)
    wait_for(lambda: any(r.task == "spin" for r in pycrew.metrics.read(metrics_dir)), 10)
    rows = pycrew.metrics.read(metrics_dir)
    spinning = [r for r in rows if r.task == "spin"]
    assert len(spinning) >= 3 and max(r.cpu_percent for r in spinning) > 20
    assert all(r.rss_bytes > 1_000_000 and r.controller == "local" and r.worker == 1 for r in rows)
    pytest.importorskip("matplotlib")
    png = pycrew.metrics.plot(metrics_dir, tmp_path / "m.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worker_metrics_go_to_the_worker_log_without_a_dir(make_controller, tmp_path):
    logs = tmp_path / "logs"
    c = make_controller("local", workers=1, seconds_metrics=0.1, log_dir=str(logs)).start()
    c.push(busy_loop, (0.5,), name="spin")
    assert c.wait(timeout=60)
    wait_for(lambda: any(r.task == "spin" for r in pycrew.metrics.read(logs)), 10)
    listed = pycrew.Monitor("local").list(c.id)
    assert listed and listed[0].log is not None and listed[0].log.startswith(str(logs))


def test_a_worker_without_psutil_says_why_it_records_no_metrics(make_controller, tmp_path):
    """A probe's worker installed with --no-deps ran its tasks and recorded no sample: the sampling
    thread died with ModuleNotFoundError, which nothing reported."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "psutil.py").write_text("raise ImportError('psutil is not installed here (a test)')\n")
    logs = tmp_path / "logs"
    c = make_controller(
        "local", workers=1, seconds_metrics=0.1, log_dir=str(logs), inherit_sys_path=False,
        env={"PYTHONPATH": str(shadow)},
    ).start()
    assert c.submit(abs, -2).result(timeout=60) == 2
    said = "no metrics: sampling them (seconds_metrics) needs psutil, which this Python"
    wait_for(lambda: any(said in p.read_text() for p in logs.glob("*.log")), 10)
    assert "psutil is not installed here (a test)" in "".join(p.read_text() for p in logs.glob("*.log"))


def test_metrics_cli_shows_and_plots(make_controller, tmp_path):
    from click.testing import CliRunner

    from pycrew.cli import cli

    metrics_dir = tmp_path / "metrics"
    c = make_controller("local", workers=1, seconds_metrics=0.1, metrics_dir=str(metrics_dir)).start()
    c.push(busy_loop, (0.5,), name="spin")
    assert c.wait(timeout=60)
    wait_for(lambda: any(r.task == "spin" for r in pycrew.metrics.read(metrics_dir)), 10)
    shown = CliRunner().invoke(cli, ["metrics", "show", str(metrics_dir)])
    assert shown.exit_code == 0 and "spin" in shown.output, shown.output
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    plotted = CliRunner().invoke(cli, ["metrics", "plot", str(metrics_dir), "-o", str(png)])
    assert plotted.exit_code == 0, plotted.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_metrics_cli_skips_foreign_samples_and_says_what_it_cannot_read_or_write(tmp_path):
    """On fce425b a sample line with ``"time": "yesterday"`` or ``"cpu_percent": "high"`` was
    a TypeError/ValueError traceback, as were an unreadable file and an unwritable output."""
    import json

    from click.testing import CliRunner

    from pycrew.cli import cli

    good = {"time": 1.0, "controller": "c", "instance": "i1", "worker": 1, "host": "h", "pid": 2, "task": None,
            "cpu_percent": 5.0, "rss_bytes": 1024}
    lines = [good, {**good, "time": "yesterday"}, {**good, "cpu_percent": "high"}, {**good, "worker": True}, [1, 2]]
    (tmp_path / "samples.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert [r.instance for r in pycrew.metrics.read(tmp_path)] == ["i1"]
    shown = CliRunner().invoke(cli, ["metrics", "show", str(tmp_path)])
    assert shown.exit_code == 0 and shown.output.count("i1") == 1, shown.output
    pytest.importorskip("matplotlib")
    plotted = CliRunner().invoke(cli, ["metrics", "plot", str(tmp_path), "-o", str(tmp_path / "no" / "such" / "x.png")])
    assert plotted.exit_code == 1 and plotted.output.startswith("Error: ") and "No such file" in plotted.output, plotted.output
    assert plotted.exception is None or isinstance(plotted.exception, SystemExit)

"""Progress bars, asyncio, and worker metrics on the local launcher."""

from __future__ import annotations

import asyncio

import pytest

import pycrew
from helpers import busy_loop, identity, raise_value_error
from support import wait_for


def test_map_with_progress_draws_a_bar_with_counts(make_controller, capsys):
    c = make_controller("local", workers=2).start()
    assert list(c.map(busy_loop, [0.3] * 4, progress=True)) == ["finished"] * 4
    err = capsys.readouterr().err
    assert "local map" in err and "4/4" in err and "online=" in err and "failed=0" in err


def test_wait_and_walk_with_progress(make_controller, capsys):
    c = make_controller("local", workers=2).start()
    c.walk(identity, range(30), progress=True)
    c.push(raise_value_error, ("x",))
    assert c.wait(progress=True, timeout=60)
    err = capsys.readouterr().err
    assert "walk (pushed)" in err and "30/30" in err
    assert "local wait" in err and "31/31" in err and "failed=1" in err


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

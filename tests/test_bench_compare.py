"""benchmarks/bench_compare.py and bench_report.py: JSON, PNG, n/a numbers, skipped peers, docs.

The benchmark runs for real (fresh child processes, real pools) at ``--quick`` sizes with
ProcessPoolExecutor and joblib only: no pycrew controller, no Ray (the CI run must not
need it). The tests check what the outputs hold, never how fast anything was.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_compare.py"
REPORT = ROOT / "benchmarks" / "bench_report.py"
PAGE = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- bench-table:begin"
END = "<!-- bench-table:end -->"


def run(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    """One real quick run, 3 repetitions, PPE and joblib: (JSON document, PNG path, stdout)."""
    pytest.importorskip("joblib", reason="the joblib column needs joblib (scripts/setup.sh --test installs it)")
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (scripts/setup.sh --test installs it)")
    out = tmp_path_factory.mktemp("bench")
    doc_path, png = out / "bench.json", out / "bench.png"
    done = run(
        str(BENCH),
        "--quick",
        "--repeat",
        "3",
        "--only",
        "ppe,joblib",
        "--measures",
        "throughput,memory",
        "--no-tracemalloc",
        "--json",
        str(doc_path),
        "--plot",
        str(png),
    )
    assert done.returncode == 0, f"bench_compare.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(doc_path.read_text()), png, done.stdout


@pytest.mark.slow
def test_json_holds_every_run_the_medians_and_per_repetition_ratios(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    doc, _, _ = bench_run
    assert doc["meta"]["repeat"] == 3
    runs = doc["results"]["ppe"]["throughput"]["runs"]
    assert len(runs) == 3 and all("error" not in r for r in runs), f"PPE throughput runs: {runs}"
    rates = [r["tasks_per_s"] for r in runs]
    entry = doc["results"]["ppe"]["throughput"]
    assert entry["median"]["tasks_per_s"] == statistics.median(rates)
    assert (entry["min"]["tasks_per_s"], entry["max"]["tasks_per_s"]) == (min(rates), max(rates))

    joblib_rates = [r["tasks_per_s"] for r in doc["results"]["joblib"]["throughput"]["runs"]]
    ratio = doc["ratios_vs_ppe"]["joblib"]["throughput:tasks_per_s"]
    assert ratio["per_repetition"] == pytest.approx([j / p for j, p in zip(joblib_rates, rates, strict=True)]), (
        "repetition i of joblib must be divided by repetition i of PPE (same run, back to back)"
    )
    assert ratio["ratio_of_medians"] == pytest.approx(statistics.median(joblib_rates) / statistics.median(rates))


@pytest.mark.slow
def test_json_records_the_machine_and_every_framework_version(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, _ = bench_run
    machine = doc["machine"]
    assert machine["cpus"] >= 1 and machine["python"].count(".") == 2 and machine["platform"]
    assert len(machine["loadavg_start"]) == 3, f"load average at start missing: {machine}"
    for name in ("python", "pycrew", "dask", "distributed", "ray", "loky", "joblib", "matplotlib"):
        assert doc["versions"].get(name), f"versions lack {name}: {doc['versions']}"
    assert doc["versions"]["joblib"] != "not installed"


@pytest.mark.slow
def test_numbers_that_do_not_fit_joblib_are_na_with_the_reason(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, stdout = bench_run
    reasons = doc["not_applicable"]["joblib"]
    assert set(reasons) == {"memory", "throughput:submit_per_s"}, f"joblib n/a: {reasons}"
    assert doc["results"]["joblib"]["memory"]["runs"] == [], "an n/a measure must not be run"
    assert doc["results"]["joblib"]["throughput"]["median"]["tasks_per_s"] > 0
    assert "submit_per_s" not in doc["results"]["joblib"]["throughput"]["median"]
    memory_line = next(line for line in stdout.splitlines() if line.startswith("memory RSS"))
    assert memory_line.split()[-1] == "n/a", f"joblib's memory cell: {memory_line!r}"
    assert "joblib, memory: n/a, Parallel has no submit" in stdout, stdout[-2000:]


@pytest.mark.slow
def test_plot_is_a_png_image(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    _, png, _ = bench_run
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "--plot did not write a PNG"
    import matplotlib.image

    height, width = matplotlib.image.imread(str(png)).shape[:2]
    assert width > 1000 and height > 400, f"plot of {width}x{height} px: not one panel per table row"


def test_framework_that_is_not_installed_is_skipped_with_a_note(tmp_path: Path) -> None:
    doc_path = tmp_path / "bench.json"
    # sys.modules[name] = None is how Python spells "not installed": find_spec returns None.
    code = (
        "import runpy, sys; sys.modules['ray'] = None; "
        f"sys.argv = ['bench_compare.py', '--quick', '--only', 'ppe,ray', '--measures', 'first_result', "
        f"'--json', {str(doc_path)!r}]; "
        f"runpy.run_path({str(BENCH)!r}, run_name='__main__')"
    )
    done = run("-c", code)
    assert done.returncode == 0, f"bench_compare.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "note: skipping Ray: ray is not importable (pip install ray)" in done.stdout, done.stdout
    doc = json.loads(doc_path.read_text())
    assert doc["frameworks"] == ["ppe"] and "ray" not in doc["results"]
    assert "not importable" in doc["skipped"]["ray"]
    assert doc["results"]["ppe"]["first_result"]["median"]["seconds"] > 0


@pytest.mark.slow
def test_docs_publishing_replaces_only_the_marked_table(
    bench_run: tuple[dict[str, Any], Path, str], tmp_path: Path
) -> None:
    doc, _, _ = bench_run
    doc = {**doc, "meta": {**doc["meta"], "quick": False}}  # publishing refuses quick runs
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(doc))
    (tmp_path / "docs").mkdir()
    shutil.copy(PAGE, tmp_path / "docs" / "benchmarks.md")
    before = PAGE.read_text()
    assert BEGIN in before and END in before, "docs/benchmarks.md lost its bench-table markers"

    done = run(str(REPORT), str(source), "--docs", "--docs-root", str(tmp_path))
    assert done.returncode == 0, f"bench_report.py --docs failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    after = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert after[: after.index(BEGIN)] == before[: before.index(BEGIN)], "text before the table changed"
    assert after[after.index(END) :] == before[before.index(END) :], "text after the table changed"
    table = after[after.index(BEGIN) : after.index(END)]
    assert "| | ProcessPool | joblib |" in table and "| throughput (tasks/s) |" in table, table
    assert "n/a" in table and "medians of 3 run(s)" in table, table
    assert (tmp_path / "docs" / "images" / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "docs" / "benchmarks.json").read_text())["results"] == doc["results"]


@pytest.mark.slow
def test_docs_publishing_refuses_a_quick_run(bench_run: tuple[dict[str, Any], Path, str], tmp_path: Path) -> None:
    doc, _, _ = bench_run
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(doc))
    done = run(str(REPORT), str(source), "--docs", "--docs-root", str(tmp_path))
    assert done.returncode != 0 and "--quick run" in done.stderr, done.stderr
    assert not (tmp_path / "docs").exists(), "a refused publish wrote files"


def test_profile_roundtrip_gaps_reports_every_round_for_both_frameworks(tmp_path: Path) -> None:
    """``profile_roundtrip.py gaps`` (the docs' "Between two 10 ms tasks" table) at tiny sizes:
    one row per framework and round, gaps measured between real tasks of real workers."""
    out = tmp_path / "gaps.json"
    done = run(str(ROOT / "benchmarks" / "profile_roundtrip.py"), "--json", str(out), "gaps",
               "--tasks", "40", "--seconds", "0.002", "--workers", "2", "--rounds", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["framework"] for r in rows] == ["pycrew", "ProcessPoolExecutor"] * 2
    for r in rows:
        assert r["tasks"] == 40 and r["seconds"] == 0.002
        assert r["task_ms_p50"] >= 2.0, r  # the sleep itself, stamped by the task
        assert 0 < r["gap_us_p50"] <= r["gap_us_p90"], r
        assert 0 < r["efficiency_pct"] < 100, r
    assert "median gap over 2 round(s)" in done.stdout


def test_bench_by_value_prints_both_frameworks_both_ways() -> None:
    """``bench_by_value.py`` at tiny sizes: a row per framework, tasks/s by reference and by value."""
    done = run(str(ROOT / "benchmarks" / "bench_by_value.py"), "--tasks", "200", "--repeat", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["framework", "by"], done.stdout
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {"pycrew", "ppe"}, done.stdout
    for by_ref, by_value, ratio, class_arg in rows.values():
        assert float(by_ref.replace(",", "")) > 0 and float(by_value.replace(",", "")) > 0
        assert float(ratio) > 0 and float(class_arg.replace(",", "")) > 0


def test_efficiency_runs_measure_the_sleep_ceiling_and_the_report_names_the_room(tmp_path: Path) -> None:
    """An efficiency run also times the same sleeps with no pool (``ceiling_pct``); the report
    says how much room that leaves above PPE for the "PPE + 1 point" target."""
    doc_path = tmp_path / "bench.json"
    done = run(str(BENCH), "--quick", "--only", "ppe", "--measures", "efficiency", "--sleep-seconds", "0.002",
               "--json", str(doc_path))
    assert done.returncode == 0, f"bench_compare.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    doc = json.loads(doc_path.read_text())
    (run_,) = doc["results"]["ppe"]["efficiency"]["runs"]
    assert 0 < run_["efficiency_pct"] < 100 and 0 < run_["ceiling_pct"] < 100, run_
    assert "sleeps alone, no pool (%)" in done.stdout
    assert "time.sleep(0.002) called alone, with no pool, reached" in done.stdout, done.stdout[-2000:]

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def doc_with(ppe: float, ceilings: list[float]) -> dict[str, Any]:
        runs = [{"efficiency_pct": ppe, "ceiling_pct": c} for c in ceilings]
        return {"frameworks": ["ppe"], "meta": {"sizes": {"sleep_seconds": 0.01}},
                "results": {"ppe": {"efficiency": {"runs": runs, "median": {"efficiency_pct": ppe}}}}}

    tight = bench_report.efficiency_room(doc_with(98.4, [99.0, 99.1, 98.9]))
    assert tight is not None and "reached 99.0 %" in tight and "about 101 us a call" in tight, tight
    assert "+0.60 pt of room" in tight and "out of reach" in tight, tight
    roomy = bench_report.efficiency_room(doc_with(95.0, [99.0]))
    assert roomy is not None and "+4.00 pt of room" in roomy and "within reach" in roomy, roomy
    assert bench_report.efficiency_room({"frameworks": ["ppe"], "meta": {"sizes": {}}, "results": {}}) is None


def test_bench_map_prints_every_case_with_time_and_memory() -> None:
    """``bench_map.py`` at tiny sizes: a row per case, each from a fresh child that checked its results."""
    done = run(str(ROOT / "benchmarks" / "bench_map.py"), "--tasks", "300")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("map(abs, range(300)), 2 workers"), done.stdout
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(rows) == {"pycrew-auto", "pycrew-None", "pycrew-4096", "ppe"}, done.stdout
    for seconds, rate, growth, unit, per_task in rows.values():
        assert float(seconds) >= 0 and float(rate.replace(",", "")) > 0 and unit == "MiB", done.stdout
        assert float(growth) >= 0 and float(per_task.replace(",", "")) >= 0, done.stdout


@pytest.mark.parametrize(
    ("option", "size", "title"),
    [
        ("--arg-bytes", "200000", "map(partial(carry, <200,000 bytes>), range(20))"),  # a partial's large argument
        ("--result-bytes", "300000", "map(partial(produce, 300,000), range(20))"),  # a large result
    ],
)
def test_bench_map_with_large_arguments_or_results(option: str, size: str, title: str) -> None:
    """Every task carries, or returns, that many bytes; each child checks its results."""
    done = run(str(ROOT / "benchmarks" / "bench_map.py"), "--tasks", "20", option, size, "--cases", "pycrew-auto,ppe")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{title}, 2 workers"), done.stdout
    assert [line.split()[0] for line in lines[2:]] == ["pycrew-auto", "ppe"], done.stdout

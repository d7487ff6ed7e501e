"""Tables, ratios, targets, the PNG plot and the docs page of ``bench_compare.py``'s results.

Everything here works from the JSON document ``bench_compare.py --json`` writes (built
by :func:`build_document`), so a saved run can be shown again, plotted, or published
into the docs without running anything::

    python benchmarks/bench_report.py bench.json                  # print the tables
    python benchmarks/bench_report.py bench.json --plot bench.png # and plot them
    python benchmarks/bench_report.py bench.json --docs           # publish into docs/

``--docs`` writes ``docs/images/benchmarks.png`` and ``docs/benchmarks.json`` and
replaces the table between the ``bench-table`` markers of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_pools import LABELS, POOLS  # noqa: E402  (needs HERE on sys.path)

ROOT = os.path.dirname(HERE)
#: Where ``--docs`` writes, relative to the repository root.
DOCS_PNG = os.path.join("docs", "images", "benchmarks.png")
DOCS_JSON = os.path.join("docs", "benchmarks.json")
DOCS_PAGE = os.path.join("docs", "benchmarks.md")
TABLE_BEGIN = "<!-- bench-table:begin (written by benchmarks/bench_report.py --docs) -->"
TABLE_END = "<!-- bench-table:end -->"
#: Colours of the plot's bars, one per framework.
COLOURS: dict[str, str] = {
    "pycrew": "#1f5fa8",
    "pycrew-nng": "#6fa8dc",
    "ppe": "#7f7f7f",
    "dask": "#e69138",
    "ray": "#38a169",
    "loky": "#9467bd",
    "joblib": "#c27ba0",
}


@dataclass(frozen=True)
class Row:
    """One line of the table: a number some measure reports."""

    label: str
    measure: str
    key: str
    fmt: str
    higher_is_better: bool


ROWS: tuple[Row, ...] = (
    Row("throughput (tasks/s)", "throughput", "tasks_per_s", "{:,.0f}", True),
    Row("  submit only (tasks/s)", "throughput", "submit_per_s", "{:,.0f}", True),
    Row("latency p50 (us)", "latency", "p50_us", "{:,.0f}", False),
    Row("latency p99 (us)", "latency", "p99_us", "{:,.0f}", False),
    Row("efficiency (%)", "efficiency", "efficiency_pct", "{:.1f}", True),
    Row("  sleeps alone, no pool (%)", "efficiency", "ceiling_pct", "{:.1f}", True),
    Row("memory RSS (B/task)", "memory", "rss_bytes_per_task", "{:,.0f}", False),
    Row("memory heap (B/task)", "memory", "heap_bytes_per_task", "{:,.0f}", False),
    Row("first result (s)", "first_result", "seconds", "{:.3f}", False),
    Row("  after start() (s)", "first_result", "after_start_s", "{:.3f}", False),
)


@dataclass(frozen=True)
class Target:
    """A goal for pycrew: a ratio to PPE (``ratio``), a lead over PPE (``lead``) or a bound (``bound``)."""

    label: str
    measure: str
    key: str
    higher_is_better: bool
    goal: float
    kind: str

    def check(self, pycrew: float | None, ppe: float | None) -> tuple[float | None, str]:
        """Return (the compared number, ``PASS``/``MISS``/``n/a``)."""
        if pycrew is None or (self.kind != "bound" and ppe is None):
            return None, "n/a"
        assert ppe is not None or self.kind == "bound"
        if self.kind == "ratio":
            if not ppe or ppe <= 0:
                return None, "n/a"
            value = pycrew / ppe
        elif self.kind == "lead":
            value = pycrew - ppe if ppe is not None else math.nan
        else:
            value = pycrew
        ok = value >= self.goal if self.higher_is_better else value <= self.goal
        return value, "PASS" if ok else "MISS"

    def shown(self, value: float | None) -> str:
        """The compared number as the table prints it."""
        if value is None:
            return "-"
        if self.kind == "ratio":
            return f"{value:.2f}x"
        if self.kind == "lead":
            return f"{value:+.2f} pt"  # two decimals: +0.96 is a MISS of a one-point goal
        return f"{value:.3g}"


#: pycrew's targets of issue 17 (W=2, 10,000 no-ops).
TARGETS: tuple[Target, ...] = (
    Target("throughput >= 8x PPE", "throughput", "tasks_per_s", True, 8.0, "ratio"),
    Target("latency p50 <= 0.7x PPE", "latency", "p50_us", False, 0.7, "ratio"),
    Target("efficiency >= PPE + 1 point", "efficiency", "efficiency_pct", True, 1.0, "lead"),
    Target("memory/task (RSS) <= PPE", "memory", "rss_bytes_per_task", False, 1.0, "ratio"),
    Target("memory/task (heap) <= PPE", "memory", "heap_bytes_per_task", False, 1.0, "ratio"),
    Target("first result <= 0.15 s after start()", "first_result", "after_start_s", False, 0.15, "bound"),
)


# -- numbers --------------------------------------------------------------------------------


def values_of(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    """The successful runs' values of ``key``."""
    return [float(r[key]) for r in runs if "error" not in r and isinstance(r.get(key), (int, float))]


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every numeric key over the successful runs."""
    keys = sorted({k for r in runs if "error" not in r for k, v in r.items() if isinstance(v, (int, float))})
    out: dict[str, dict[str, float]] = {"median": {}, "min": {}, "max": {}}
    for key in keys:
        values = values_of(runs, key)
        out["median"][key] = statistics.median(values)
        out["min"][key] = min(values)
        out["max"][key] = max(values)
    return out


def ratios_vs_ppe(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every framework's numbers over PPE's, from the same benchmark run.

    ``ratio_of_medians`` is what the tables and the plot show. ``per_repetition``
    divides repetition i of the framework by repetition i of PPE (they ran back to
    back, interleaved), so load that drifts during the run cancels out in each pair.
    """
    ppe = results.get("ppe", {})
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for framework, per in results.items():
        if framework == "ppe":
            continue
        for row in ROWS:
            entry, base = per.get(row.measure), ppe.get(row.measure)
            if not entry or not base:
                continue
            value, base_value = entry["median"].get(row.key), base["median"].get(row.key)
            if value is None or not base_value:
                continue
            pairs = []
            for mine, theirs in zip(entry["runs"], base["runs"], strict=False):
                a, b = mine.get(row.key), theirs.get(row.key)
                ok = "error" not in mine and "error" not in theirs and a is not None and b
                pairs.append(a / b if ok else None)
            good = [p for p in pairs if p is not None]
            out.setdefault(framework, {})[f"{row.measure}:{row.key}"] = {
                "ratio_of_medians": value / base_value,
                "per_repetition": pairs,
                "median_of_repetitions": statistics.median(good) if good else None,
            }
    return out


def median_of(results: dict[str, Any], framework: str, measure: str, key: str) -> float | None:
    """Return the median of ``key``, or ``None`` if it was not measured."""
    entry = results.get(framework, {}).get(measure)
    return None if entry is None else entry["median"].get(key)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """pycrew's targets, each with the compared number and PASS/MISS/n/a."""
    checked = []
    for t in TARGETS:
        value, verdict = t.check(
            median_of(results, "pycrew", t.measure, t.key), median_of(results, "ppe", t.measure, t.key)
        )
        checked.append({"target": t.label, "value": value, "kind": t.kind, "goal": t.goal, "verdict": verdict})
    return checked


def explanations(results: dict[str, dict[str, Any]], frameworks: Sequence[str], kind: str) -> dict[str, dict[str, str]]:
    """The adapters' ``not_applicable`` or ``caveats`` texts for the measures that were run."""
    out: dict[str, dict[str, str]] = {}
    for f in frameworks:
        table: dict[str, str] = getattr(POOLS[f], kind) if f in POOLS else {}
        out[f] = {what: why for what, why in table.items() if what.split(":")[0] in results.get(f, {})}
    return out


def build_document(
    results: dict[str, dict[str, Any]],
    frameworks: Sequence[str],
    skipped: dict[str, str],
    meta: dict[str, Any],
    machine: dict[str, Any],
    versions: dict[str, str],
) -> dict[str, Any]:
    """The JSON document of one benchmark run: raw runs, medians, min/max, ratios, targets, environment.

    ``results[framework][measure]`` holds ``runs``: one dict per repetition, in order
    (``{"error": ...}`` for a failed one; none for a measure that does not fit the
    framework, which ``not_applicable`` then explains).
    """
    for per in results.values():
        for entry in per.values():
            entry.update(summarize(entry.get("runs", [])))
    return {
        "meta": meta,
        "machine": machine,
        "versions": versions,
        "frameworks": list(frameworks),
        "skipped": skipped,
        "not_applicable": explanations(results, frameworks, "not_applicable"),
        "caveats": explanations(results, frameworks, "caveats"),
        "results": results,
        "ratios_vs_ppe": ratios_vs_ppe(results),
        "targets": check_targets(results),
    }


# -- text -----------------------------------------------------------------------------------


def spread(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    """Half the (max - min) range of ``key`` over the runs, relative to the median."""
    values = values_of(runs, key)
    if len(values) < 2:
        return None
    mid = statistics.median(values)
    return (max(values) - min(values)) / 2 / abs(mid) if mid else None


def unfit(doc: dict[str, Any], framework: str, row: Row) -> str | None:
    """Why ``framework`` has no number in ``row`` by its model (from the document), or ``None``."""
    table: dict[str, str] = doc["not_applicable"].get(framework, {})
    return table.get(row.measure) or table.get(f"{row.measure}:{row.key}")


def cell(doc: dict[str, Any], framework: str, row: Row, with_spread: bool = True) -> str:
    """One table cell: the median (with the run-to-run spread), ``n/a``, ``error`` or ``-``."""
    if unfit(doc, framework, row):
        return "n/a"
    entry = doc["results"].get(framework, {}).get(row.measure)
    if entry is None:
        return "-"
    value = entry["median"].get(row.key)
    if value is None:
        return "error" if any("error" in r for r in entry["runs"]) else "-"
    text = row.fmt.format(value)
    s = spread(entry["runs"], row.key) if with_spread else None
    return f"{text} ±{100 * s:.0f}%" if s is not None else text


def ratio_cell(doc: dict[str, Any], framework: str, row: Row) -> str:
    """A cell of the ratio table: value / PPE value (ratio of medians)."""
    if unfit(doc, framework, row):
        return "n/a"
    ratio = doc["ratios_vs_ppe"].get(framework, {}).get(f"{row.measure}:{row.key}")
    return "-" if ratio is None else f"{ratio['ratio_of_medians']:.2f}x"


def efficiency_room(doc: dict[str, Any]) -> str | None:
    """What the sleeps alone say about the efficiency target in this run (``None``: not measured)."""
    results = doc["results"]
    ceilings = [v for f in doc["frameworks"] for v in values_of(results.get(f, {}).get("efficiency", {}).get("runs", []), "ceiling_pct")]
    ppe = median_of(results, "ppe", "efficiency", "efficiency_pct")
    if not ceilings or ppe is None:
        return None
    ceiling = statistics.median(ceilings)
    seconds = doc["meta"]["sizes"]["sleep_seconds"]
    overshoot_us = seconds * (100.0 / ceiling - 1.0) * 1e6
    room = ceiling - ppe
    reach = "within reach" if room >= 1.0 else "out of reach"
    return (
        f"efficiency: time.sleep({seconds:g}) called alone, with no pool, reached {ceiling:.1f} % "
        f"(it overshoots by about {overshoot_us:.0f} us a call here), the most any pool's sleeping "
        f"workers can reach; PPE's {ppe:.1f} % leaves {room:+.2f} pt of room, so PPE + 1 point is {reach} in this run"
    )


def notes(doc: dict[str, Any]) -> list[str]:
    """Skipped frameworks, numbers that do not fit a framework, and what limits efficiency."""
    names = {f"{row.measure}:{row.key}": row.label.strip() for row in ROWS}
    out = [f"{LABELS.get(f, f)} skipped: {why}" for f, why in doc["skipped"].items()]
    room = efficiency_room(doc)
    if room is not None:
        out.append(room)
    for framework in doc["frameworks"]:
        for what, why in doc["not_applicable"].get(framework, {}).items():
            out.append(f"{LABELS[framework]}, {names.get(what, what)}: n/a, {why}")
        for what, why in doc.get("caveats", {}).get(framework, {}).items():
            out.append(f"{LABELS[framework]}, {names.get(what, what)}: {why}")
    return out


def print_report(doc: dict[str, Any]) -> None:
    """Print the side-by-side table, ratios vs PPE, the targets and the notes."""
    frameworks, repeat = doc["frameworks"], doc["meta"]["repeat"]
    width, col = max(len(r.label) for r in ROWS) + 2, 16
    print(f"\nmedians of {repeat} run(s); ±x% = half the min-max range of the runs\n")
    print("".ljust(width) + "".join(LABELS[f].rjust(col) for f in frameworks))
    for row in ROWS:
        print(row.label.ljust(width) + "".join(cell(doc, f, row).rjust(col) for f in frameworks))

    others = [f for f in frameworks if f != "ppe"]
    if "ppe" in frameworks and others:
        print("\nratio vs ProcessPoolExecutor (value / PPE value, medians of the same run)\n")
        print("".ljust(width) + "".join(LABELS[f].rjust(col) for f in others))
        for row in ROWS:
            print(row.label.ljust(width) + "".join(ratio_cell(doc, f, row).rjust(col) for f in others))

    print("\npycrew targets (numbers, not assertions)\n")
    for t, checked in zip(TARGETS, doc["targets"], strict=True):
        print(f"  {t.label.ljust(30)}{t.shown(checked['value']).rjust(10)}   {checked['verdict']}")
    lines = notes(doc)
    if lines:
        print("\nnotes:")
        for line in lines:
            print(f"  {line}")


def describe_run(doc: dict[str, Any]) -> str:
    """One sentence: when, on what, how often, under which load."""
    meta, machine = doc["meta"], doc["machine"]
    start = (machine.get("loadavg_start") or [math.nan])[0]
    end = (machine.get("loadavg_end") or [math.nan])[0]
    during = [
        r["loadavg_1m_after"]
        for per in doc["results"].values()
        for entry in per.values()
        for r in entry.get("runs", [])
        if "loadavg_1m_after" in r
    ]
    peak = f", peak {max(during):.2f}" if during else ""
    return (
        f"{meta['timestamp'][:10]}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"W={meta['sizes']['workers']}, medians of {meta['repeat']} run(s)"
        f"{' (quick sizes)' if meta.get('quick') else ''}; 1-min load average {start:.2f} at start{peak}, {end:.2f} at end"
    )


def markdown_table(doc: dict[str, Any]) -> str:
    """The tables and notes as Markdown, for the docs page."""
    frameworks = doc["frameworks"]
    head = "| | " + " | ".join(LABELS[f] for f in frameworks) + " |"
    rule = "| --- |" + " ---: |" * len(frameworks)
    lines = [f"Run of {describe_run(doc)}; `±x%` is half the min-max range of the runs.", ""]
    if doc["meta"].get("remark"):
        lines += [f"**Note on this run:** {doc['meta']['remark']}", ""]
    lines += [head, rule]
    for row in ROWS:
        lines.append(f"| {row.label.strip()} | " + " | ".join(cell(doc, f, row) for f in frameworks) + " |")
    others = [f for f in frameworks if f != "ppe"]
    if "ppe" in frameworks and others:
        lines += ["", "Ratio to ProcessPoolExecutor (value / PPE value, medians of the same run):", ""]
        lines += ["| | " + " | ".join(LABELS[f] for f in others) + " |", "| --- |" + " ---: |" * len(others)]
        for row in ROWS:
            lines.append(f"| {row.label.strip()} | " + " | ".join(ratio_cell(doc, f, row) for f in others) + " |")
    lines += ["", "| pycrew target | value | |", "| --- | ---: | --- |"]
    for t, checked in zip(TARGETS, doc["targets"], strict=True):
        lines.append(f"| {t.label} | {t.shown(checked['value'])} | {checked['verdict']} |")
    extra = notes(doc)
    if extra:
        lines += ["", *[f"- {line}" for line in extra]]
    return "\n".join(lines)


# -- picture --------------------------------------------------------------------------------


def plot(doc: dict[str, Any], path: str) -> None:
    """Save the table as a PNG: one panel per table row, one bar per framework.

    Bars are medians, error bars the min-max range of the runs, and the label above
    each bar gives the median and its ratio to ProcessPoolExecutor. Panels whose bars
    span more than a factor 30 use a logarithmic axis. Uses matplotlib's Agg backend:
    no display needed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frameworks = doc["frameworks"]
    ncols = 4
    nrows = math.ceil(len(ROWS) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.2 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, ROWS, strict=False):
        names, medians, lows, highs, labels, colours = [], [], [], [], [], []
        for x, framework in enumerate(frameworks):
            names.append(LABELS[framework])
            colours.append(COLOURS.get(framework, "#444444"))
            entry = doc["results"].get(framework, {}).get(row.measure)
            value = None if entry is None else entry["median"].get(row.key)
            if value is None:
                medians.append(0.0)
                lows.append(0.0)
                highs.append(0.0)
                reason = cell(doc, framework, row, with_spread=False)
                labels.append((x, reason))
                continue
            medians.append(value)
            lows.append(value - entry["min"][row.key])
            highs.append(entry["max"][row.key] - value)
            text = row.fmt.format(value)
            ratio = doc["ratios_vs_ppe"].get(framework, {}).get(f"{row.measure}:{row.key}")
            if ratio is not None:
                text += f"\n{ratio['ratio_of_medians']:.2f}x"
            labels.append((x, text))
        positions = list(range(len(frameworks)))
        ax.bar(positions, medians, color=colours, yerr=[lows, highs], capsize=3, ecolor="#222222")
        shown = [m for m in medians if m > 0]
        log = bool(shown) and max(shown) / min(shown) > 30
        if log:
            ax.set_yscale("log")
        top = max((m + h for m, h in zip(medians, highs, strict=True)), default=1.0) or 1.0
        ax.set_ylim(top=top * (8 if log else 1.3), bottom=(min(shown) / 3 if log else 0) if shown else 0)
        for x, text in labels:
            y = medians[x] + highs[x] if medians[x] > 0 else (min(shown) / 3 if log and shown else 0)
            ax.annotate(text, (x, y), ha="center", va="bottom", fontsize=6.5, xytext=(0, 2), textcoords="offset points")
        better = "higher is better" if row.higher_is_better else "lower is better"
        title = row.label.strip()
        if not title.startswith(row.measure.replace("_", " ")):
            title = f"{row.measure.replace('_', ' ')}: {title}"
        ax.set_title(f"{title}\n({better}{', log scale' if log else ''})", fontsize=9)
        ax.set_xticks(positions)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(ROWS) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"pycrew and its peers: {describe_run(doc)}\n"
        "bars: medians; whiskers: min-max of the runs; labels: median and its ratio to ProcessPoolExecutor (x)"
        + (f"\n{doc['meta']['remark']}" if doc["meta"].get("remark") else ""),
        fontsize=10,
    )
    footer = notes(doc)
    bottom = min(0.3, 0.022 * len(footer) + 0.01) if footer else 0.0
    if footer:
        fig.text(0.01, 0.005, "\n".join(footer), fontsize=7, va="bottom", ha="left", wrap=True)
    fig.tight_layout(rect=(0, bottom, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- publishing -----------------------------------------------------------------------------


def update_page(page: str, table: str) -> None:
    """Replace the text between the ``bench-table`` markers of ``page`` by ``table``."""
    with open(page) as fh:
        text = fh.read()
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise SystemExit(
            f"{page} has no table markers: add the lines {TABLE_BEGIN!r} and {TABLE_END!r} where the table goes"
        )
    text = text[: begin + len(TABLE_BEGIN)] + "\n\n" + table + "\n\n" + text[end:]
    with open(page, "w") as fh:
        fh.write(text)


def publish(doc: dict[str, Any], root: str = ROOT) -> None:
    """Write the docs' picture, JSON copy and table (under ``root``) from one run's document."""
    png, json_path, page = (os.path.join(root, p) for p in (DOCS_PNG, DOCS_JSON, DOCS_PAGE))
    os.makedirs(os.path.dirname(png), exist_ok=True)
    plot(doc, png)
    with open(json_path, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    update_page(page, markdown_table(doc))
    print(f"wrote {png}, {json_path} and the table in {page}")


def main(argv: Sequence[str] | None = None) -> int:
    """Print (and plot, or publish) a saved run of ``bench_compare.py``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json_file", metavar="FILE.json", help="a file written by bench_compare.py --json")
    ap.add_argument("--plot", metavar="FILE.png", help="save the plot of the table")
    ap.add_argument("--docs", action="store_true", help=f"write {DOCS_PNG}, {DOCS_JSON} and the table in {DOCS_PAGE}")
    ap.add_argument("--docs-root", default=ROOT, metavar="DIR", help="repository root for --docs (default: this one)")
    ap.add_argument("--markdown", action="store_true", help="print the Markdown table the docs page gets")
    ap.add_argument(
        "--remark",
        metavar="TEXT",
        help="a note on the run (e.g. what else loaded the machine), kept in the JSON and shown",
    )
    args = ap.parse_args(argv)
    try:
        with open(args.json_file) as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"FILE.json {args.json_file!r} cannot be read as JSON: {exc}") from exc
    if "ratios_vs_ppe" not in doc or "machine" not in doc:
        raise SystemExit(
            f"FILE.json {args.json_file!r} has no 'ratios_vs_ppe'/'machine': not written by this bench_compare.py; "
            "run benchmarks/bench_compare.py --json again"
        )
    # The explanations are text, not measurements: take them from the current adapters.
    doc["caveats"] = explanations(doc["results"], doc["frameworks"], "caveats")
    if args.remark:
        doc["meta"]["remark"] = args.remark
    print_report(doc)
    if args.markdown:
        print("\n" + markdown_table(doc))
    if args.plot:
        plot(doc, args.plot)
        print(f"saved {args.plot}")
    if args.docs:
        if doc["meta"].get("quick"):
            raise SystemExit("--docs publishes numbers, but FILE.json holds a --quick run: run the full benchmark")
        publish(doc, args.docs_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())

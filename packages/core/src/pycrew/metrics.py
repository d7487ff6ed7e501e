"""Worker metrics (crew's autometric): CPU and memory samples per worker, tagged with the task.

Turn them on with the controller options ``seconds_metrics`` (sampling interval) and
optionally ``metrics_dir`` (each worker writes ``<metrics_dir>/<instance>.jsonl`` on the
machine it runs on; without it, samples go to the worker's log as lines starting with
``pycrew-metrics``). Read them back with :func:`read`, draw them with :func:`plot`
(needs matplotlib: ``pip install "pycrew[plot]"``) or ``pycrew metrics plot``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Prefix of a metrics line inside a worker's log.
LOG_PREFIX = "pycrew-metrics "


@dataclass(frozen=True)
class MetricRow:
    """One sample of one worker.

    Attributes:
        time: when it was taken (epoch seconds).
        controller: the controller's name.
        instance: the worker instance.
        worker: the worker slot.
        host: the worker's host.
        pid: the worker's process id.
        task: the name of the task running then, or ``None`` when idle.
        cpu_percent: CPU use of the worker and its children since the previous sample.
        rss_bytes: resident memory of the worker and its children.
    """

    time: float
    controller: str
    instance: str
    worker: int
    host: str
    pid: int
    task: str | None
    cpu_percent: float
    rss_bytes: int


def _paths(source: str | Path | Iterable[str | Path]) -> list[Path]:
    items = [source] if isinstance(source, (str, Path)) else list(source)
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            out.append(path)
    return out


def read(source: str | Path | Iterable[str | Path]) -> list[MetricRow]:
    """Samples from metrics files, worker logs, or directories of either, sorted by time.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    rows = []
    for path in _paths(source):
        for line in path.read_text(errors="replace").splitlines():
            text = line.strip()
            if LOG_PREFIX.strip() in text:
                text = text.split(LOG_PREFIX.strip(), 1)[1].strip()
            if not text.startswith("{"):
                continue
            try:
                row = _row(json.loads(text))
            except (ValueError, TypeError):  # a foreign or truncated line: not a sample
                continue
            if row is not None:
                rows.append(row)
    return sorted(rows, key=lambda r: r.time)


#: Each sample field's types (a line whose fields have others is not a sample of ours).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "time": (int, float), "controller": (str,), "instance": (str,), "worker": (int,), "host": (str,),
    "pid": (int,), "task": (str, type(None)), "cpu_percent": (int, float), "rss_bytes": (int,),
}


def _row(data: object) -> MetricRow | None:
    """A sample from a decoded line, or ``None`` if it is not one (other fields, or other types)."""
    if not isinstance(data, dict) or set(data) != set(_FIELD_TYPES):
        return None
    for name, types in _FIELD_TYPES.items():
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, types):
            return None
    return MetricRow(**data)


def plot(source: str | Path | Iterable[str | Path] | list[MetricRow], output: str | Path) -> Path:
    """Draw CPU and memory per worker over time into a PNG; returns its path.

    Raises:
        ImportError: matplotlib is not installed (``pip install "pycrew[plot]"``).
        ValueError: there are no samples.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plotting metrics needs matplotlib: pip install "pycrew[plot]"') from exc
    rows = source if isinstance(source, list) and (not source or isinstance(source[0], MetricRow)) else read(source)  # type: ignore[arg-type]
    if not rows:
        raise ValueError("no metric samples to plot: were the workers started with seconds_metrics?")
    t0 = min(r.time for r in rows)
    fig, (ax_cpu, ax_mem) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    for instance in sorted({r.instance for r in rows}):
        mine = [r for r in rows if r.instance == instance]
        label = f"worker {mine[0].worker} ({instance[:8]})"
        times = [r.time - t0 for r in mine]
        ax_cpu.plot(times, [r.cpu_percent for r in mine], label=label)
        ax_mem.plot(times, [r.rss_bytes / 2**20 for r in mine], label=label)
    ax_cpu.set_ylabel("CPU %")
    ax_mem.set_ylabel("memory (MiB)")
    ax_mem.set_xlabel("seconds")
    ax_cpu.legend(loc="upper right", fontsize="small")
    fig.suptitle("pycrew worker metrics")
    fig.tight_layout()
    out = Path(output)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

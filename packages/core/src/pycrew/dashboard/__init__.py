"""A live web page and Prometheus metrics for a controller, served from its own process.

Turn it on with the controller option ``dashboard`` (``True`` for a free port, or a port
number) and open :attr:`Controller.dashboard_link <pycrew.Controller>`::

    with pycrew.controller("local", workers=2, dashboard=True) as c:
        print(c.dashboard_link)  # http://127.0.0.1:<port>/
        c.map(work, items)

The page shows the workers (slot, state, instance, host, pid, tasks, CPU and memory when
``seconds_metrics`` and ``metrics_dir`` are set), the tasks (queued, running, resolved by
status, the latest failures with their tracebacks), a throughput plot and the launcher's
events; it updates every second. ``/metrics`` on the same server answers in the
Prometheus text format. It listens on 127.0.0.1 unless ``dashboard_host`` says otherwise,
and then requires the token that ``dashboard_link`` carries.
"""

from __future__ import annotations

from pycrew.dashboard.server import Dashboard

__all__ = ["Dashboard"]

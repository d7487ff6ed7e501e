"""Pushing from several threads at once: every task gets its own default name and its result."""

from __future__ import annotations

import sys
import threading

from helpers import identity


def test_pushes_from_eight_threads_get_distinct_names_and_every_result_comes_once(make_controller):
    """Failed on fce425b: the default name was ``task_{pushed + 1}``, read before the count
    moved, so threads pushing together gave the same name to two tasks (4-6 of 4,000 here)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    c = make_controller("local", workers=2).start()
    names: list[list[str]] = [[] for _ in range(8)]

    def push_many(mine: list[str], k: int) -> None:
        for i in range(500):
            mine.append(c.push(identity, ((k, i),)))

    try:
        threads = [threading.Thread(target=push_many, args=(names[k], k)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    every = [n for mine in names for n in mine]
    assert len(every) == 4000 and len(set(every)) == 4000, f"{4000 - len(set(every))} names given twice"
    assert sorted(int(n.removeprefix("task_")) for n in every) == list(range(1, 4001))
    assert c.wait(timeout=120)
    results = {r.name: r.result for r in c.collect()}
    assert len(results) == 4000 and c.summary().controller.pushed == 4000
    assert all(results[n] == (k, i) for k, mine in enumerate(names) for i, n in enumerate(mine))

"""What the listing says of SGE tasks that ended or are deleted (pycrew_sge.endings), on canned records."""

from __future__ import annotations

from pycrew.scheduler import JobRecord
from pycrew_sge.endings import DELETED, TaskEndings


def task(state: str, status: str, host: str | None = "vm", at: float = 1000.0, reason: str = "") -> JobRecord:
    return JobRecord(id="7.1", array_id="7", index=1, name="pycrew-x", tag="t", state=state, host=host, submitted=at,
                     status=status, reason=reason)


def test_a_zombie_that_ran_past_its_run_time_limit_was_killed_there() -> None:
    endings = TaskEndings(seconds_limit=5)
    endings.explain([task("r", "running", at=1000.0)], now=1002.0)
    [zombie] = endings.explain([task("z", "done", host=None, at=990.0, reason="it ended")], now=1006.5)
    assert zombie.reason.startswith("it was listed ended 6 s after it started, past its run-time limit h_rt=5 s"), zombie.reason
    assert zombie.reason.endswith("; it ended") and zombie.status == "done"


def test_a_zombie_that_ended_before_its_limit_or_without_one_says_nothing_more() -> None:
    for limit, now in ((60, 1006.0), (None, 5000.0)):
        endings = TaskEndings(seconds_limit=limit)
        endings.explain([task("r", "running", at=1000.0)], now=1001.0)
        [zombie] = endings.explain([task("z", "done", host=None, reason="it ended")], now=now)
        assert zombie.reason == "it ended"


def test_a_task_in_deletion_says_it_was_deleted() -> None:
    [deleted] = TaskEndings(None).explain([task("dr", "cancelled")], now=1.0)
    assert deleted.reason == DELETED

"""``qalter -w v``: waiting jobs that SGE can never run (pycrew_sge.verify).

The parser and the verifier's bookkeeping on outputs captured from the real SGE 8.1.9 the
tests run (``tests/data/qalter_w_v_*.json``); on the real cell, a worker whose job asks for
more slots than any queue offers fails its launch in seconds with SGE's reason, and one
that waits for a start time keeps waiting.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sge_helpers import SgeCluster, launcher_info, make_calls

from pycrew.scheduler import SchedulerError
from pycrew_sge import SgeCLI, SgeOptions
from pycrew_sge import qstat as q
from pycrew_sge.plugin import plugin
from pycrew_sge.verify import SECONDS_RETRY, SECONDS_VERIFY, Verifier, parse_verification

DATA = Path(__file__).parent / "data"


def captured(name: str) -> subprocess.CompletedProcess[str]:
    run: dict[str, Any] = json.loads((DATA / name).read_text())
    return subprocess.CompletedProcess(run["argv"], run["returncode"], run["stdout"], run["stderr"])


def test_verification_outputs() -> None:
    no_queue = captured("qalter_w_v_no_queue.json")
    assert no_queue.returncode == 1
    assert parse_verification(no_queue.stdout) == 'cannot run in PE "smp" because it only offers 0 slots'
    walltime = parse_verification(captured("qalter_w_v_walltime.json").stdout)
    assert walltime == '(-l h_rt=7200) cannot run in queue "all.q" because of cluster queue'
    assert parse_verification(captured("qalter_w_v_found.json").stdout) == "", "it can run: no reason"
    assert parse_verification(captured("qalter_w_v_found_queues.json").stdout) == "", "no parallel environment"
    assert parse_verification(captured("qalter_w_v_held.json").stdout) is None, "held: neither"
    assert parse_verification(captured("qalter_w_v_unknown.json").stdout) is None
    assert parse_verification("verification: no suitable queues\n") == "no queue of the cell can run it"


class Scripted:
    """A qalter whose answers are canned per job; records what it was asked."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        assert argv[:3] == ["qalter", "-w", "v"]
        job = argv[3]
        self.asked.append(job)
        if self.answers[job] == "raise":
            raise SchedulerError("'qalter' not found", argv)
        return captured(self.answers[job])


def test_each_waiting_job_is_verified_once_after_it_waited_a_while() -> None:
    run = Scripted({"1": "qalter_w_v_no_queue.json", "2": "qalter_w_v_found.json"})
    verifier = Verifier(run, "qalter")
    assert verifier.never_runs({"1", "2"}, 100.0) == {}, "just seen: not asked yet"
    assert run.asked == []
    never = verifier.never_runs({"1", "2"}, 100.0 + SECONDS_VERIFY)
    assert run.asked == ["1", "2"]
    assert list(never) == ["1"] and never["1"].startswith('SGE can never run this job: cannot run in PE "smp" because')
    assert "fix the job's options (cpus" in never["1"]
    assert verifier.never_runs({"1", "2"}, 200.0) == never and run.asked == ["1", "2"], "answers are kept"
    assert verifier.never_runs({"2"}, 201.0) == {}, "a job no longer waiting is forgotten"


def test_answers_that_say_neither_are_asked_again_later() -> None:
    run = Scripted({"5": "qalter_w_v_held.json", "6": "raise"})
    verifier = Verifier(run, "qalter")
    verifier.never_runs({"5", "6"}, 0.0)
    assert verifier.never_runs({"5", "6"}, SECONDS_VERIFY) == {}
    assert run.asked == ["5", "6"]
    verifier.never_runs({"5", "6"}, SECONDS_VERIFY + 1)
    assert run.asked == ["5", "6"], "not before SECONDS_RETRY"
    run.answers["5"] = "qalter_w_v_no_queue.json"
    assert "5" in verifier.never_runs({"5", "6"}, SECONDS_VERIFY + SECONDS_RETRY)
    assert run.asked == ["5", "6", "5", "6"]


# -- on the real cell ------------------------------------------------------------------


@pytest.mark.slow
def test_a_job_that_can_run_later_keeps_waiting(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    """A start time a year ahead (``-a``): the job waits, and verification finds it a queue."""
    options = SgeOptions(directory=str(tmp_path / "private"), walltime="00:05:00", seconds_poll=0,
                         submit_args=("-a", f"{time.localtime().tm_year + 1}01011200"))
    calls = make_calls("pass", 1)
    info = launcher_info(options, calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    deadline = time.monotonic() + SECONDS_VERIFY + 3
    while time.monotonic() < deadline:
        [worker] = plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
        assert worker.status == "pending" and "can never run" not in worker.reason, worker
        time.sleep(0.5)
    client = plugin.client(plugin.options_of(info))
    assert client.verifier._verdicts.get(handles[0].split(".")[0], (0, None))[1] == "", "verified: it can run"


class ScriptedCell(SgeCLI):
    """An SgeCLI on canned outputs: the listing ``qstat_u_states_1.xml`` (array 102 with
    tasks 1-2 running and 3-4 waiting, array 103 held), job 102 carrying ``tag``, and a
    qalter that finds no queue."""

    def __init__(self, directory: Path, tag: str) -> None:
        super().__init__("sge", SgeOptions(directory=str(directory)))
        self.tag = tag
        self.verifier = Verifier(self.qalter, "qalter")
        self.asked: list[str] = []

    def check(self, argv: Any, env: Any = None, what: str = "", retry: bool = True, input: str | None = None) -> str:
        return (DATA / "qstat_u_states_1.xml").read_text()

    def job_details(self, records: Any) -> dict[str, q.JobDetails]:
        return {"102": q.JobDetails("102", {q.TAG_VARIABLE: self.tag}), "103": q.JobDetails("103", {q.TAG_VARIABLE: self.tag})}

    def qalter(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        self.asked.append(argv[-1])
        return captured("qalter_w_v_no_queue.json")


def test_the_waiting_tasks_of_a_job_sge_can_never_run_are_listed_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycrew_sge.sge as sge_module

    cell = ScriptedCell(tmp_path, "pycrew:1;c=3f9a1c2b7d4e5f60;n=demo;p=a1b2c3d4e5f6-;o=0;w=1-4")
    assert {r.id: r.status for r in cell.list_jobs()}["102.3"] == "pending"
    later = time.monotonic() + SECONDS_VERIFY
    monkeypatch.setattr(sge_module, "time", SimpleNamespace(monotonic=lambda: later))
    records = {r.id: r for r in cell.list_jobs()}
    assert cell.asked == ["102"], "only waiting jobs that are not held"
    assert [records[f"102.{i}"].status for i in (1, 2, 3, 4)] == ["running", "running", "failed", "failed"]
    assert records["102.3"].state == "qw" and records["102.3"].reason.startswith("SGE can never run this job: cannot run in PE")
    assert records["103.1"].status == "pending"


def test_a_look_alike_job_is_never_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pycrew_sge.sge as sge_module

    cell = ScriptedCell(tmp_path, "pycrew:1;c=nope")  # a context that is no pycrew tag: not pycrew's to touch
    cell.list_jobs()
    later = time.monotonic() + SECONDS_VERIFY
    monkeypatch.setattr(sge_module, "time", SimpleNamespace(monotonic=lambda: later))
    records = {r.id: r for r in cell.list_jobs()}
    assert cell.asked == [] and records["102.3"].status == "pending"

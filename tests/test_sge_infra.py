"""The Son of Grid Engine that scripts/sge/ installs and starts works for pycrew's tests.

Needs a running cluster: ``scripts/test.sh`` (as root or under ``CI=true``) runs
``scripts/sge/install.sh`` and ``eval "$(scripts/sge/start.sh)"``, which exports
``SGE_ROOT`` and ``SGE_CELL``. Without ``SGE_ROOT`` and ``qstat`` the tests are skipped
with the reason, unless ``CI=true``: in CI a missing cluster is a failure, not a skip.

These tests talk to the real qmaster and execd with the real client commands: they are
the groundwork the ``pycrew-sge`` launcher's tests build on.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pycrew.testing.harness import wait_until

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "sge"
STATE_DIR = Path(os.environ.get("PYCREW_SGE_DIR", "/tmp/pycrew-sge"))
#: Seconds any single job may take to start, finish or go away on this small shared machine.
JOB_TIMEOUT = 30.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"SGE is required in CI (CI=true) but {reason}", pytrace=False)
    pytest.skip(f'no SGE cluster: {reason}; run scripts/sge/install.sh and eval "$(scripts/sge/start.sh)"')


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an SGE client command; with ``check``, a failure shows its output."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(args)} exited {proc.returncode}:\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


@dataclass(frozen=True)
class JobEntry:
    """One ``job_list`` element of ``qstat -xml``: a job, or some tasks of an array job."""

    number: int
    name: str
    owner: str
    state: str
    tasks: str  # "" for a plain job; "2" for one running task; "2-3:1" for pending ones


def qstat_entries() -> list[JobEntry]:
    """Every job of every user, parsed from ``qstat -xml -u '*'`` with ElementTree."""
    root = ET.fromstring(_run("qstat", "-xml", "-u", "*").stdout)
    entries = []
    for job in root.iter("job_list"):
        entries.append(
            JobEntry(
                number=int(job.findtext("JB_job_number", "")),
                name=job.findtext("JB_name", ""),
                owner=job.findtext("JB_owner", ""),
                state=job.findtext("state", ""),
                tasks=job.findtext("tasks", ""),
            )
        )
    return entries


def entries_of(job: int) -> list[JobEntry]:
    """The ``qstat`` entries of one job (none once it has finished or been deleted)."""
    return [e for e in qstat_entries() if e.number == job]


@pytest.fixture(scope="module")
def sge() -> None:
    """A running cluster answering ``qstat``, or a skip (a failure under ``CI=true``)."""
    if not os.environ.get("SGE_ROOT"):
        _unavailable("SGE_ROOT is not set")
    if shutil.which("qstat") is None:
        _unavailable("qstat is not on PATH")
    proc = _run("qstat", "-f", check=False)
    if proc.returncode != 0:
        _unavailable(f"qstat -f exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")


class Submitter:
    """Submits jobs whose stdout/stderr files land in ``out`` and remembers them."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.jobs: list[int] = []

    def __call__(self, *args: str) -> int:
        proc = _run("qsub", "-terse", "-o", str(self.out), "-e", str(self.out), "-wd", str(self.out), *args)
        # -terse prints "N", or "N.1-3:1" for an array job.
        job = int(proc.stdout.strip().split(".")[0])
        self.jobs.append(job)
        return job

    def logs(self) -> str:
        """Every job output file, for failure messages."""
        files = sorted(p for p in self.out.iterdir() if ".o" in p.name or ".e" in p.name)
        return "\n".join(f"--- {p.name}:\n{p.read_text()}" for p in files) or "(no job output files)"


@pytest.fixture
def submit(sge: None, tmp_path: Path) -> Iterator[Submitter]:
    """``submit(*qsub_args)`` runs ``qsub -terse`` and returns the job number; every job
    submitted is deleted afterwards, and the test waits until qstat no longer lists it."""
    submitter = Submitter(tmp_path)
    yield submitter
    for job in submitter.jobs:
        # rc 1 "does not exist" is expected for jobs that already finished or were deleted.
        _run("qdel", str(job), check=False)

    def left() -> list[JobEntry]:
        return [e for e in qstat_entries() if e.number in submitter.jobs]

    wait_until(
        lambda: not left(),
        timeout=JOB_TIMEOUT,
        message=lambda: f"jobs still listed {JOB_TIMEOUT} s after qdel: {left()}",
    )


def python_job(code: str, *args: str) -> list[str]:
    """qsub arguments running ``code`` in this venv's python with ``-b y -V``.

    A binary job's command line goes through the queue's shell, so every word is quoted;
    ``code`` must be one line (a newline in an argument ends the command there).
    """
    assert "\n" not in code, "a binary job's arguments cannot hold a newline: join statements with ';'"
    return ["-b", "y", "-V", *(shlex.quote(w) for w in (sys.executable, "-c", code, *args))]


def test_array_job_runs_every_task_with_its_task_id(submit: Submitter, tmp_path: Path) -> None:
    code = (
        "import os, pathlib, sys; task = os.environ['SGE_TASK_ID']; "
        "pathlib.Path(sys.argv[1], 'task-' + task).write_text(task + ' ' + sys.executable)"
    )
    results = tmp_path / "results"
    results.mkdir()
    job = submit("-N", "pycrew-array", "-t", "1-3", *python_job(code, str(results)))

    wait_until(
        lambda: not entries_of(job),
        timeout=JOB_TIMEOUT,
        message=lambda: f"array job {job} not finished after {JOB_TIMEOUT} s: {entries_of(job)}\n{submit.logs()}",
    )
    found = {p.name: p.read_text() for p in results.iterdir()}
    expected = {f"task-{t}": f"{t} {sys.executable}" for t in (1, 2, 3)}
    assert found == expected, f"task files differ from {expected}: {found}\n{submit.logs()}"


def test_qdel_kills_and_removes_a_running_job(submit: Submitter, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)"
    job = submit("-N", "pycrew-sleeper", *python_job(code, str(pid_file)))
    wait_until(
        lambda: pid_file.is_file() and pid_file.read_text().isdigit(),
        timeout=JOB_TIMEOUT,
        message=lambda: f"job {job} did not start in {JOB_TIMEOUT} s: {entries_of(job)}\n{submit.logs()}",
    )
    pid = int(pid_file.read_text())
    # The process may start before qmaster hears of it: "t" (transferring) comes first.
    wait_until(
        lambda: [e.state for e in entries_of(job)] == ["r"],
        timeout=JOB_TIMEOUT,
        message=lambda: f"job {job} runs (pid {pid}) but qstat says {entries_of(job)} after {JOB_TIMEOUT} s",
    )

    _run("qdel", str(job))
    wait_until(
        lambda: not entries_of(job),
        timeout=JOB_TIMEOUT,
        message=lambda: f"job {job} still listed {JOB_TIMEOUT} s after qdel: {entries_of(job)}",
    )

    def process_gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(process_gone, timeout=JOB_TIMEOUT, message=f"job {job}'s process {pid} survived qdel")
    again = _run("qdel", str(job), check=False)
    assert again.returncode == 1 and "does not exist" in again.stdout + again.stderr, (
        f"qdel of the deleted job {job}: rc {again.returncode}, {again.stdout!r} {again.stderr!r}"
    )


def test_qstat_xml_of_every_user_parses_with_elementtree(submit: Submitter) -> None:
    # A held job stays pending ("hqw") until deleted: a stable entry to look for.
    job = submit("-h", "-N", "pycrew-held", "-b", "y", "/bin/true")
    entries = entries_of(job)
    user = psutil.Process().username()
    assert entries == [JobEntry(number=job, name="pycrew-held", owner=user, state="hqw", tasks="")], (
        f"qstat -xml -u '*' shows held job {job} as {entries}"
    )


def sge_daemons() -> list[int]:
    """The pids of the live (not zombie) sge_qmaster and sge_execd processes."""
    return sorted(
        p.pid
        for p in psutil.process_iter(["name", "status"])
        if p.info["name"] in ("sge_qmaster", "sge_execd") and p.info["status"] != psutil.STATUS_ZOMBIE
    )


def test_start_script_leaves_a_healthy_cluster_alone(sge: None) -> None:
    if os.geteuid() != 0 or not (STATE_DIR / "env.sh").is_file():
        _unavailable(f"this cluster was not started by scripts/sge/start.sh as root (no {STATE_DIR}/env.sh)")
    before = sge_daemons()
    proc = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"start.sh exited {proc.returncode}: {proc.stderr}"
    assert (
        f"export SGE_ROOT={os.environ['SGE_ROOT']} SGE_CELL={os.environ.get('SGE_CELL', 'default')}" in proc.stdout
    ), f"start.sh printed no exports for eval: {proc.stdout!r}"
    after = sge_daemons()
    assert after == before, f"start.sh restarted a healthy cluster: daemons {before} became {after}\n{proc.stderr}"

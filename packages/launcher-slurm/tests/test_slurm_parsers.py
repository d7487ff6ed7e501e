"""SLURM's builders and parsers on canned outputs (captured from the real SLURM the tests run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycrew.scheduler import SchedulerError
from pycrew_slurm import SlurmCLI, SlurmOptions
from pycrew_slurm.slurm import STATES

DATA = Path(__file__).parent / "data"


def cli(**options: object) -> SlurmCLI:
    return SlurmCLI("slurm", SlurmOptions(**options))  # type: ignore[arg-type]


def test_squeue_listing_captured_from_slurm_22() -> None:
    """``squeue --states=all``: an element that ended is listed, with its exit code, until
    slurmctld forgets it (MinJobAge)."""
    records = cli().parse_listing((DATA / "squeue-slurm22.txt").read_text())
    assert [(r.id, r.array_id, r.index, r.state, r.status, r.host, r.exit_code) for r in records] == [
        ("4_1", "4", 1, "FAILED", "failed", "vm", 3),
        ("3_1", "3", 1, "PENDING", "pending", None, None),
        ("2_1", "2", 1, "RUNNING", "running", "vm", None),
        ("2_2", "2", 2, "RUNNING", "running", "vm", None),
    ]
    failed, held, first = records[0], records[1], records[2]
    assert failed.reason == "NonZeroExitCode" and failed.log == "/tmp/p21/pycrew-fail-4_1.log"
    assert held.reason == "JobHeldUser" and held.tag == "foreign" and held.log == "/dev/null"
    assert first.reason == "" and first.tag == "pycrew:1;c=abc;n=cap;p=x-;o=0;w=1-2"
    assert first.log == "/tmp/pycrew-cap-2_1.log", "squeue leaves %x %A %a unexpanded; the parser expands them"
    assert first.submitted is not None


@pytest.mark.parametrize(("field", "code"), [("768", 3), ("0", 0), ("9", -9), ("15", -15), ("N/A", None), ("", None)])
def test_an_ended_elements_wait_status_becomes_its_exit_code(field: str, code: int | None) -> None:
    line = f"7_1|7|1|FAILED|pycrew-x|NonZeroExitCode|vm|N/A|(null)|{field}|pycrew:1;c=a;w=1.i\n"
    assert cli().parse_listing(line)[0].exit_code == code
    running = f"7_1|7|1|RUNNING|pycrew-x|None|vm|N/A|(null)|{field}|pycrew:1;c=a;w=1.i\n"
    assert cli().parse_listing(running)[0].exit_code is None, "a live element has no exit code yet"


def test_the_listing_asks_for_ended_elements_too() -> None:
    assert "--states=all" in cli().list_command()


@pytest.mark.parametrize(
    ("state", "status"),
    [("PENDING", "pending"), ("RUNNING", "running"), ("COMPLETING", "running"), ("COMPLETED", "done"),
     ("FAILED", "failed"), ("TIMEOUT", "failed"), ("OUT_OF_MEMORY", "failed"), ("NODE_FAIL", "failed"),
     ("CANCELLED", "cancelled"), ("SUSPENDED", "pending"), ("SOMETHING_NEW", "unknown")],
)
def test_squeue_states_are_normalised(state: str, status: str) -> None:
    line = f"7_1|7|1|{state}|pycrew-x|None||N/A|(null)|0|pycrew:1;c=a;w=1.i\n"
    assert cli().parse_listing(line)[0].status == status
    assert state not in STATES or STATES[state] == status


@pytest.mark.parametrize(
    ("state", "reason", "status", "said"),
    [
        ("PENDING", "DependencyNeverSatisfied", "failed", "pending for good: DependencyNeverSatisfied (its dependency can never be satisfied)"),
        ("PENDING", "(PartitionTimeLimit)", "failed", "pending for good: PartitionTimeLimit (its time limit is longer than its partition allows)"),
        ("PENDING", "(PartitionConfig)", "failed", "pending for good: PartitionConfig (it asks for more CPUs, memory or nodes than its partition has)"),
        ("PENDING", "launch failed requeued held", "failed", "pending for good: launch failed requeued held"),
        ("PENDING", "Resources", "pending", "Resources"),
        ("PENDING", "ReqNodeNotAvail, UnavailableNodes:vm", "pending", "ReqNodeNotAvail, UnavailableNodes:vm"),
        ("PENDING", "JobHeldUser", "pending", "JobHeldUser"),
        ("RUNNING", "DependencyNeverSatisfied", "running", "DependencyNeverSatisfied"),
    ],
)
def test_a_job_pending_for_a_reason_that_never_passes_is_failed(state: str, reason: str, status: str, said: str) -> None:
    """On 79d8e0c such a job stayed "pending": each launch failed only after seconds_launch."""
    line = f"7_1|7|1|{state}|pycrew-x|{reason}||N/A|(null)|0|pycrew:1;c=a;w=1.i\n"
    record = cli().parse_listing(line)[0]
    assert record.status == status and record.state == state
    assert record.reason.startswith(said), record.reason
    assert record.queued == (status == "failed") and record.held, "it waits in the queue until cancelled"


def test_squeue_lines_that_are_not_array_elements_are_skipped() -> None:
    out = "9|9|N/A|RUNNING|plain|None|vm|N/A||0|\ngarbage\n"
    assert cli().parse_listing(out) == []


@pytest.mark.parametrize(("out", "job"), [("123\n", "123"), ("123;cluster2\n", "123"), ("note\n456\n", "456")])
def test_sbatch_parsable_output(out: str, job: str) -> None:
    assert cli().parse_submit(out) == job


def test_sbatch_without_a_job_id_is_an_error() -> None:
    with pytest.raises(SchedulerError, match="sbatch printed no job id"):
        cli().parse_submit("sbatch: warning: something\n")


def test_commands_use_bin_directory(tmp_path: Path) -> None:
    c = cli(bin_directory="/opt/slurm/bin")
    assert c.list_command()[0] == "/opt/slurm/bin/squeue"
    assert c.cancel_command(["1_2", "1_3", "4"]) == ["/opt/slurm/bin/scancel", "4", "1_[2,3]"]
    assert c.submit_command(tmp_path / "job.sh", [], "tag")[:3] == ["/opt/slurm/bin/sbatch", "--parsable", "--export=ALL"]


@pytest.mark.parametrize(
    "line",
    ["scancel: error: Kill job error on job id 12_3: Invalid job id specified",
     "scancel: error: Kill job error on job id 12: Job/step already completing or completed"],
)
def test_scancel_gone_messages(line: str) -> None:
    assert cli().is_gone(line)


def test_transient_slurm_errors_are_recognised() -> None:
    c = cli()
    assert c.is_transient(1, "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation")
    assert c.is_transient(1, "squeue: error: Unable to contact slurm controller (connect failure)")
    assert not c.is_transient(1, "sbatch: error: Batch job submission failed: Invalid account or account/partition")


@pytest.mark.parametrize("output", [
    # munged stopped on this host (captured from sbatch and squeue 22.05 with munged killed; a probe:
    # a 20 s munge restart failed every waiting task with a LaunchError on 64971f1)
    'sbatch: error: Munge encode failed: Failed to access "/run/munge/munge.socket.2": No such file or directory '
    "(retrying ...)\nsbatch: error: auth_g_create: REQUEST_SUBMIT_BATCH_JOB has authentication error\n"
    "sbatch: error: Batch job submission failed: Protocol authentication error",
    "squeue: error: Munge encode failed: Failed to access \"/run/munge/munge.socket.2\": No such file or directory",
])
def test_munge_down_is_a_transient_error(output: str) -> None:
    """munged restarting makes every command fail to authenticate until it is back: retried for
    seconds_unreachable, as slurmctld restarting is, not a failed launch at once."""
    assert cli().is_transient(1, output)


def test_a_munge_key_that_differs_is_not_transient() -> None:
    """slurmctld cannot decode this host's credential (another key, a clock far off): that
    lasts, and the LaunchError should come at once, not after seconds_unreachable."""
    assert not cli().is_transient(1, "sbatch: error: Batch job submission failed: Protocol authentication error")


def test_shared_options_map_to_sbatch_directives() -> None:
    options = SlurmOptions(queue="short", cpus=4, memory="8G", walltime="02:00:00", account="lab")
    assert options.directives() == [
        "#SBATCH --partition=short", "#SBATCH --account=lab", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
        "#SBATCH --time=02:00:00",
    ]
    assert SlurmOptions(seconds_walltime=90).directives() == ["#SBATCH --time=0-00:01:30"]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"queue": "a", "partition": "b"}, "'partition' and 'queue' mean the same"),
     ({"cpus": 2, "cpus_per_task": 2}, "'cpus_per_task' and 'cpus' mean the same"),
     ({"walltime": "01:00:00", "time": "60"}, "all set --time"),
     ({"submit_args": ("--array=1-3",)}, "must not set --array")],
)
def test_shared_options_conflict_with_their_slurm_twins(options: dict[str, object], message: str) -> None:
    from pycrew import OptionsError

    with pytest.raises(OptionsError, match=message):
        SlurmOptions(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "reason", "code", "said"),
    [
        ("FAILED", "RaisedSignal:9(Killed)", "9", "killed by signal 9 (SIGKILL)"),
        ("FAILED", "NonZeroExitCode", "768", "NonZeroExitCode"),
        ("CANCELLED", "None", "15", "SLURM cancelled it (scancel by a user or an administrator); killed by signal 15 (SIGTERM)"),
        ("TIMEOUT", "TimeLimit", "0", "SLURM killed it at its time limit (--time); TimeLimit"),
        ("OUT_OF_MEMORY", "OutOfMemory", "9",
         "SLURM killed it for using more memory than it asked for (--mem); killed by signal 9 (SIGKILL); OutOfMemory"),
        ("NODE_FAIL", "NodeDown", "0", "its node failed; NodeDown"),
        ("PREEMPTED", "None", "0", "SLURM preempted it for another job"),
    ],
)  # fmt: skip
def test_an_ended_element_says_what_its_state_and_wait_status_mean(state: str, reason: str, code: str, said: str) -> None:
    """Before, only squeue's reason code was said (``None`` for a cancelled job): core quotes
    this reason in the TaskCrashError of a task whose worker died."""
    line = f"7_1|7|1|{state}|pycrew-x|{reason}|vm|N/A|(null)|{code}|pycrew:1;c=a;w=1.i\n"
    [record] = cli().parse_listing(line)
    assert record.reason == said


def test_a_batch_script_killed_by_a_signal_is_no_launch_failure() -> None:
    """SLURM 22.05 lists a job whose script a signal killed mid-run with Reason JobLaunchFailure."""
    line = "7_1|7|1|FAILED|pycrew-x|JobLaunchFailure|vm|N/A|(null)|9|pycrew:1;c=a;w=1.i\n"
    [record] = cli().parse_listing(line)
    assert (record.reason, record.exit_code) == ("killed by signal 9 (SIGKILL)", -9)

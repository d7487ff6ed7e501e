"""The LaunchError's message: what was tried, why it failed, and advice that fits the failure."""

from __future__ import annotations

from pycrew.control.launch_reports import HOOK_FAILED, launch_error_message
from pycrew.controller_options import ControllerOptions

SBATCH = (
    f"{HOOK_FAILED}SchedulerError: sbatch --parsable /x/job.sh failed (exit status 1): "
    "sbatch: error: invalid partition specified: nope\n"
    "sbatch: error: Batch job submission failed: Invalid partition name specified"
)


def message(reason: str) -> str:
    return launch_error_message("slurm", "fit", ControllerOptions(launch_max=2), reason, "python -m pycrew.worker", "tcp://10.0.0.1:5555")


def test_a_refused_submission_is_quoted_whole_before_advice_that_fits_it() -> None:
    """On 33e082d the second stderr line came after the advice, and the advice was about
    reaching the controller, for a worker that never started."""
    text = message(SBATCH)
    assert "\n" not in text, text
    quoted = text.index("Invalid partition name specified")
    assert text.index("invalid partition specified: nope") < quoted < text.index("The launcher's call to the platform failed"), text
    assert "No worker was started" not in text, "a submit whose reply was lost or unreadable may have started workers"
    assert "Likely causes" not in text and "tcp://10.0.0.1:5555" not in text, text
    assert text.endswith("Fix the launcher's options and check them with `pycrew doctor slurm`."), text


def test_a_worker_that_did_not_connect_keeps_the_advice_about_reaching_the_controller() -> None:
    text = message("the worker did not connect within seconds_launch=30 s")
    assert "Likely causes: the workers cannot reach tcp://10.0.0.1:5555" in text, text
    assert text.endswith("Check the worker logs with `pycrew monitor slurm list`."), text


def test_a_worker_that_left_the_queue_unseen_ended_rather_than_exited() -> None:
    """A scheduler element that left the queue without a trace (no exit code) may never have
    started: one a user cancelled while it waited read "the worker exited before it connected"
    on b476624. One with an exit code did exit."""
    from pycrew import WorkerInfo
    from pycrew.control.launch_reports import explain_ended

    left = WorkerInfo(id="409_2", handle="409_2", launcher="slurm", status="done", reason="it left the slurm queue")
    assert explain_ended(left).startswith("the worker ended before it connected: it left"), explain_ended(left)
    exited = WorkerInfo(id="409_3", handle="409_3", launcher="slurm", status="done", exit_code=0)
    assert explain_ended(exited) == "the worker exited before it connected (exit code 0)"


def test_a_worker_deleted_from_outside_gets_advice_about_what_deleted_it() -> None:
    """Probe J (session 33): the advice for a Job deleted by kubectl was about the image and the
    python option."""
    from pycrew import WorkerInfo
    from pycrew.control.launch_reports import explain_ended

    info = WorkerInfo(
        id="j", handle="default/j", launcher="k8s", controller="fit", controller_id="c1", instance="i1", worker=1,
        state="Deleted", status="cancelled",
        reason="its Job default/j was deleted from outside pycrew (e.g. by kubectl delete or a cleanup job)",
    )
    text = message(explain_ended(info))
    assert "deleted from outside pycrew" in text and "something outside pycrew" in text, text
    assert "the image, the python option" not in text and "Likely causes" not in text, text

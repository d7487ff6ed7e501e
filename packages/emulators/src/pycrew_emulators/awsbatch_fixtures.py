"""pytest fixtures for the AWS Batch emulator.

* ``awsbatch_emulator_session`` (session scope): one :class:`AwsBatchEmulator` (moto
  server subprocess, fake Docker API, fault proxy) for the whole test session; stopped
  at the end, leaving no process behind.
* ``awsbatch_emulator`` (function scope): the same emulator, prepared for one test: a
  fresh compute environment and job queue (``job_queue``/``job_queue_arn``,
  ``compute_environment``), knobs reset. At teardown every unfinished job is
  terminated, every process still running is killed and the knobs are reset again.
* ``awsbatch_env`` (function scope): sets ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_REGION`` and
  ``AWS_ENDPOINT_URL`` (via ``monkeypatch``, undone after the test) for code that
  builds its own boto3 clients; returns the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycrew_emulators.awsbatch import AwsBatchEmulator

__all__ = ["awsbatch_emulator", "awsbatch_emulator_session", "awsbatch_env"]


@pytest.fixture(scope="session")
def awsbatch_emulator_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AwsBatchEmulator]:
    """One AWS Batch emulator for the session (see the module docstring)."""
    base = tmp_path_factory.mktemp("awsbatch")
    from pycrew_emulators.runner import JobRunner

    emu = AwsBatchEmulator.start(runner=JobRunner(log_dir=base / "runner"), log_dir=base)
    try:
        yield emu
    finally:
        emu.close()


def _reset(emu: AwsBatchEmulator) -> None:
    emu.faults.reset()
    emu.runner.missing_images.clear()
    emu.set_transition("manual", times=1)


@pytest.fixture
def awsbatch_emulator(
    awsbatch_emulator_session: AwsBatchEmulator,
) -> Iterator[AwsBatchEmulator]:
    """The session's emulator with a fresh job queue for this test; cleaned up after it."""
    emu = awsbatch_emulator_session
    _reset(emu)
    ce, ce_arn, queue, queue_arn = emu.new_queue()
    emu.compute_environment, emu.compute_environment_arn = ce, ce_arn
    emu.job_queue, emu.job_queue_arn = queue, queue_arn
    try:
        yield emu
    finally:
        _reset(emu)
        try:
            emu.terminate_active_jobs(queue)
        finally:
            for run_id in emu.runner.alive():
                emu.runner.kill(run_id)
            for run_id in emu.runner.list():
                emu.runner.wait(run_id, timeout=10)


@pytest.fixture
def awsbatch_env(awsbatch_emulator: AwsBatchEmulator, monkeypatch: pytest.MonkeyPatch) -> AwsBatchEmulator:
    """``awsbatch_emulator`` plus AWS_* environment variables pointing boto3 at it."""
    for key, value in awsbatch_emulator.env.items():
        monkeypatch.setenv(key, value)
    return awsbatch_emulator

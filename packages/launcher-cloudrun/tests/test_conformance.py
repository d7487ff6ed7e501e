# mypy: disable-error-code="no-untyped-call,import-untyped"
"""The cloudrun launcher passes pycrew's launcher conformance suite against the Cloud Run emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import run_v2

from pycrew.testing import LauncherConfig, LauncherSuite
from pycrew_emulators.cloudrun import CloudRunEmulator

#: An image the emulator "fails to pull": launches under it never start a worker.
MISSING_IMAGE = "us-docker.pkg.dev/test-project/no-such/image:1"


class TestCloudRunLauncher(LauncherSuite):
    """Workers are tasks of executions of the emulator's jobs (local processes)."""

    @pytest.fixture
    def launcher_config(self, cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]) -> LauncherConfig:
        cloudrun_emulator.runner.missing_images.add(MISSING_IMAGE)
        return LauncherConfig(
            name="cloudrun",
            options=cloudrun_options,
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"region": "Central"},
                {"memory": "4 GB"},
                {"env": {"PYCREW_TOKEN": "x"}},
                {"labels": {"Bad Key": "x"}},
                {"vpc_connector": "c", "network": "n"},
                {"transport": "grpc"},  # with the emulator's http:// endpoint
            ],
            bad_launch_options={"image": MISSING_IMAGE},
            seconds_timeout=30.0,
        )

    @pytest.fixture
    def unrelated_job(self, cloudrun_emulator: CloudRunEmulator) -> Iterator[str | None]:
        """An execution of a job that is not pycrew's, running; yields its task's name."""
        jobs = cloudrun_emulator.jobs_client()
        container = run_v2.Container(image="python:3.11", command=["python"], args=["-c", "import time; time.sleep(120)"])
        job = run_v2.Job(template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(containers=[container], max_retries=0)))
        created = jobs.create_job(parent=cloudrun_emulator.parent(), job=job, job_id="someone-else").result(timeout=30)
        execution = jobs.run_job(name=created.name).metadata.name
        try:
            yield f"{execution}/tasks/{execution.rsplit('/', 1)[-1]}-task0"
        finally:
            cloudrun_emulator.executions_client().cancel_execution(name=execution)

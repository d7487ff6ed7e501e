"""The awsbatch launcher passes pycrew's launcher conformance suite on the AWS Batch emulator.

Workers run as AWS Batch (array) jobs of moto's Batch server, started as local processes by
the emulator's fake Docker Engine; their tokens travel through Secrets Manager and the
per-batch job definition's ``secrets`` (resolved by the ``batch`` fixture, as the ECS agent
would).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from awsbatch_helpers import emulator_options

from pycrew.testing import LauncherConfig, LauncherSuite
from pycrew_emulators.awsbatch import AwsBatchEmulator

MISSING_IMAGE = "pycrew/no-such-image:0"


class TestAwsBatchLauncher(LauncherSuite):
    """Workers are AWS Batch jobs (emulated: moto + local processes)."""

    @pytest.fixture
    def launcher_config(self, batch: AwsBatchEmulator, execution_role: str) -> LauncherConfig:
        return LauncherConfig(
            name="awsbatch",
            options=emulator_options(batch, execution_role),
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"job_queue": ""},
                {"memory": "lots"},
                {"cpus": 0.3},
                {"env": {"PYCREW_TOKEN": "x"}},
                {"array_size_max": 1},
                {"tags": {"aws:reserved": "x"}},
                {"region": "Mars"},
            ],
            bad_launch_options={"image": MISSING_IMAGE},
            seconds_launch=30.0,
            seconds_timeout=60.0,
            batch_size=3,
        )

    @pytest.fixture
    def bad_launch_options(self, launcher_config: LauncherConfig, batch: AwsBatchEmulator) -> Mapping[str, Any] | None:
        """The image does not exist: every job fails with CannotPullContainerError."""
        batch.runner.missing_images.add(MISSING_IMAGE)
        return launcher_config.bad_launch_options

    @pytest.fixture
    def unrelated_job(self, batch: AwsBatchEmulator) -> Iterator[str | None]:
        """Someone else's job in the same queue."""
        client = batch.boto3_client("batch", endpoint_url=batch.moto_url)
        job_id = client.submit_job(
            jobName="someone-elses-job", jobQueue=batch.job_queue, jobDefinition=batch.job_definition,
            containerOverrides={"command": ["python", "-c", "import time; time.sleep(120)"]},
        )["jobId"]
        try:
            yield str(job_id)
        finally:
            client.terminate_job(jobId=job_id, reason="test over")

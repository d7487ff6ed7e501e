"""A batch worker counts its ``seconds_wall`` from its job's start (pycrew.worker.job_start):
what the job script runs before the worker (``script_lines``) counts against the time
limit the scheduler enforces."""

from __future__ import annotations

import pytest

from pycrew.scheduler import jobscript
from pycrew.wire.protocol import JOB_STARTED_ENV
from pycrew.worker.job_start import SECONDS_AGE_MAX, seconds_since_job_start


def test_the_age_of_the_job_is_read_once_and_the_variable_removed() -> None:
    environ = {JOB_STARTED_ENV: "1000", "OTHER": "x"}
    assert seconds_since_job_start(environ, now=1012.5) == 12.5
    assert environ == {"OTHER": "x"}, "tasks and their children must not count from this job's start"
    assert seconds_since_job_start(environ, now=1012.5) == 0.0


@pytest.mark.parametrize("text", ["", "soon", "nan", "inf", "2000", str(1000 - SECONDS_AGE_MAX - 1)])
def test_a_start_that_is_missing_or_unbelievable_counts_as_now(text: str) -> None:
    assert seconds_since_job_start({JOB_STARTED_ENV: text}, now=1000.0) == 0.0


def test_the_job_script_records_its_start_before_anything_else_runs() -> None:
    script = jobscript.render(
        ["python3", "-m", "pycrew.worker"], {}, ["#SBATCH --time=1"], script_lines=["module load python"], cwd="/data"
    )
    lines = script.splitlines()
    start = lines.index(f'export {JOB_STARTED_ENV}="$(date +%s)"  # the worker counts its seconds_wall from here')
    assert start < min(i for i, line in enumerate(lines) if line.startswith(("cd ", "module load")))
    assert lines[1] == "#SBATCH --time=1", "directives stay right after the shebang"

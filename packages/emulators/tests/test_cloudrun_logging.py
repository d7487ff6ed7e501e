"""Tests of the Cloud Run emulator's Cloud Logging ``entries:list``, driven by google-cloud-logging's client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

run_v2 = pytest.importorskip("google.cloud.run_v2")
cloud_logging = pytest.importorskip("google.cloud.logging")

from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING
from google.auth.credentials import AnonymousCredentials

from pycrew_emulators.cloudrun import CloudRunEmulator

pytestmark = pytest.mark.timeout(60)

FAST = DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.2, multiplier=1.5)
# Each task prints two lines, then (argv[1] == "hold") waits for a file before its last
# line, written without a newline; attempt 0 of an odd task fails with "retry".
TASK_SCRIPT = """\
import os, sys, time
idx, attempt = os.environ["CLOUD_RUN_TASK_INDEX"], os.environ["CLOUD_RUN_TASK_ATTEMPT"]
print(f"task {idx} attempt {attempt} line 1", flush=True)
print(f"task {idx} attempt {attempt} line 2", flush=True)
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "hold":
    while not os.path.exists(os.environ["GO"]):
        time.sleep(0.02)
print(f"task {idx} attempt {attempt} last", end="", flush=True)
if mode == "retry" and int(idx) % 2 and attempt == "0":
    sys.exit(3)
"""


def logging_client(emu: CloudRunEmulator, project: str | None = None) -> Any:
    """google-cloud-logging's client on its JSON-over-HTTP API, pointed at the emulator."""
    return cloud_logging.Client(
        project=project or emu.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emu.endpoint},
        _use_grpc=False,
    )


def run_job(emu: CloudRunEmulator, tmp_path: Path, job_id: str, args: list[str], task_count: int, max_retries: int = 0) -> str:
    """Create a job running TASK_SCRIPT and run it; return the execution's full name."""
    script = tmp_path / "task.py"
    script.write_text(TASK_SCRIPT)
    container = run_v2.Container(
        image="worker:1", command=["python", str(script)], args=args,
        env=[run_v2.EnvVar(name="GO", value=str(tmp_path / "go"))],
    )
    job = run_v2.Job(template=run_v2.ExecutionTemplate(
        task_count=task_count, template=run_v2.TaskTemplate(containers=[container], max_retries=max_retries),
    ))
    emu.jobs_client().create_job(parent=emu.parent(), job=job, job_id=job_id).result(timeout=10, polling=FAST)
    op = emu.jobs_client().run_job(name=f"{emu.parent()}/jobs/{job_id}")
    return str(op.metadata.name)


def task_filter(job: str, execution: str, index: int) -> str:
    return (
        f'resource.type="cloud_run_job" AND resource.labels.job_name="{job}" AND '
        f'labels."run.googleapis.com/execution_name"="{execution.rsplit("/", 1)[-1]}" AND '
        f'labels."run.googleapis.com/task_index"="{index}"'
    )


def post(emu: CloudRunEmulator, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v2/entries:list with a raw JSON body; the status and the JSON reply."""
    request = urllib.request.Request(
        f"{emu.endpoint}/v2/entries:list", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_each_line_is_an_entry_of_its_task_with_cloud_run_s_resource_and_labels(cloudrun_emulator: CloudRunEmulator, tmp_path: Path) -> None:
    emu = cloudrun_emulator
    execution = run_job(emu, tmp_path, "logs-a", ["retry"], task_count=2, max_retries=1)
    assert emu.wait_execution(execution) == "succeeded"
    client = logging_client(emu)

    entries = list(client.list_entries(filter_=task_filter("logs-a", execution, 1)))
    assert [e.payload for e in entries] == [
        "task 1 attempt 0 line 1", "task 1 attempt 0 line 2", "task 1 attempt 0 last",
        "task 1 attempt 1 line 1", "task 1 attempt 1 line 2", "task 1 attempt 1 last",
    ], "one entry per line, both attempts, a last line without newline included, oldest first"
    first = entries[0]
    assert first.resource.type == "cloud_run_job"
    assert first.resource.labels == {"job_name": "logs-a", "location": emu.region, "project_id": emu.project}
    assert first.labels == {
        "run.googleapis.com/execution_name": execution.rsplit("/", 1)[-1],
        "run.googleapis.com/task_index": "1",
        "run.googleapis.com/task_attempt": "0",
    }
    assert first.log_name == f"projects/{emu.project}/logs/run.googleapis.com%2Fstdout"
    assert [e.labels["run.googleapis.com/task_attempt"] for e in entries] == ["0"] * 3 + ["1"] * 3
    stamps = [e.timestamp for e in entries]
    assert stamps == sorted(stamps) and abs(stamps[0].timestamp() - time.time()) < 30, stamps

    task0 = [e.payload for e in client.list_entries(filter_=task_filter("logs-a", execution, 0))]
    assert task0 == ["task 0 attempt 0 line 1", "task 0 attempt 0 line 2", "task 0 attempt 0 last"]
    assert list(logging_client(emu, project="other-project").list_entries()) == [], "entries belong to their project"


def test_lines_of_a_running_task_appear_before_it_ends(cloudrun_emulator: CloudRunEmulator, tmp_path: Path) -> None:
    emu = cloudrun_emulator
    execution = run_job(emu, tmp_path, "logs-b", ["hold"], task_count=1)
    client = logging_client(emu)
    query = task_filter("logs-b", execution, 0)
    deadline = time.monotonic() + 20
    payloads: list[str] = []
    while len(payloads) < 2 and time.monotonic() < deadline:
        payloads = [e.payload for e in client.list_entries(filter_=query)]
        time.sleep(0.05)
    assert payloads == ["task 0 attempt 0 line 1", "task 0 attempt 0 line 2"], "complete lines only, while it runs"
    (tmp_path / "go").touch()
    assert emu.wait_execution(execution) == "succeeded"
    payloads = [e.payload for e in client.list_entries(filter_=query)]
    assert payloads[-1] == "task 0 attempt 0 last" and len(payloads) == 3, payloads


def test_newest_first_pages_give_every_entry_once(cloudrun_emulator: CloudRunEmulator, tmp_path: Path) -> None:
    emu = cloudrun_emulator
    execution = run_job(emu, tmp_path, "logs-c", [], task_count=3)
    assert emu.wait_execution(execution) == "succeeded"
    client = logging_client(emu)
    oldest_first = [e.insert_id for e in client.list_entries(filter_='resource.labels.job_name="logs-c"')]
    assert len(oldest_first) == 9
    paged = [e.insert_id for e in client.list_entries(filter_='resource.labels.job_name="logs-c"',
                                                       order_by=cloud_logging.DESCENDING, page_size=2)]
    assert paged == oldest_first[::-1], "pages of 2, newest first, each entry exactly once"
    last_two = list(client.list_entries(filter_=task_filter("logs-c", execution, 2), order_by=cloud_logging.DESCENDING,
                                        max_results=2))
    assert [e.payload for e in last_two] == ["task 2 attempt 0 last", "task 2 attempt 0 line 2"]
    status, reply = post(emu, {"resourceNames": [f"projects/{emu.project}"], "pageSize": 4})
    assert status == 200 and len(reply["entries"]) == 4 and reply["nextPageToken"], reply
    status, rest = post(emu, {"resourceNames": [f"projects/{emu.project}"], "pageSize": 1000,
                              "pageToken": reply["nextPageToken"]})
    assert status == 200 and len(rest["entries"]) == 5 and "nextPageToken" not in rest, rest


@pytest.mark.parametrize("bad", [
    'resource.type="cloud_run_job" OR resource.type="gce_instance"',
    'resource.labels.job_name:"logs"',
    'resource.type!="cloud_run_job"',
    'NOT resource.type="cloud_run_job"',
    '(resource.type="cloud_run_job")',
    'resource.type="cloud_run_job" labels.foo="x"',
    'jsonPayload.message="x"',
    '"could not connect"',
])
def test_a_filter_the_emulator_does_not_support_is_refused_saying_so(cloudrun_emulator: CloudRunEmulator, bad: str) -> None:
    client = logging_client(cloudrun_emulator)
    with pytest.raises(exceptions.BadRequest, match=r"Unsupported filter: the Cloud Run emulator's entries:list understands only an AND"):
        list(client.list_entries(filter_=bad))


def test_malformed_requests_are_400_naming_the_field(cloudrun_emulator: CloudRunEmulator) -> None:
    project = [f"projects/{cloudrun_emulator.project}"]
    cases = [
        ({}, "resourceNames"),
        ({"resourceNames": ["nonsense"]}, "resourceNames: invalid resource name"),
        ({"resourceNames": project, "orderBy": "severity"}, "orderBy"),
        ({"resourceNames": project, "pageSize": 1001}, "pageSize"),
        ({"resourceNames": project, "pageToken": "bogus"}, "pageToken"),
        ({"resourceNames": project, "filter": 'timestamp>="yesterday"'}, "Invalid timestamp"),
        ({"resourceNames": project, "pageLimit": 3}, 'Unknown name "pageLimit"'),
    ]
    for body, wanted in cases:
        status, reply = post(cloudrun_emulator, body)
        assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT", (body, reply)
        assert wanted in reply["error"]["message"], (body, reply)

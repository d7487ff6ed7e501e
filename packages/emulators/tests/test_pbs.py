"""The PBS Pro/OpenPBS and TORQUE emulator, driven through its shims as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from pycrew_emulators.batch import BatchJob
from pycrew_emulators.pbs import PbsEmulator

BOTH = pytest.mark.parametrize("pbs_emulator", ["pbspro", "torque"], indirect=True)
SERVER = "pbs-head.emu.local"
GATED = "#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nexit {code}\n"


def array_flag(emu: PbsEmulator) -> str:
    return "-J" if emu.flavour == "pbspro" else "-t"


def qstat_json(emu: PbsEmulator, *args: str) -> dict[str, dict[str, object]]:
    result = emu.run("qstat", "-f", "-F", "json", *args)
    assert result.returncode in (0, 153, 35), result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"timestamp", "pbs_version", "pbs_server"}, document
    jobs: dict[str, dict[str, object]] = document.get("Jobs", {})
    return jobs


def one(value: BatchJob | list[BatchJob]) -> BatchJob:
    assert isinstance(value, BatchJob), value
    return value


@BOTH
def test_array_submit_prints_the_array_id_and_runs_every_element_with_its_index(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    script = tmp_path / "job.sh"
    index_var = "PBS_ARRAY_INDEX" if emu.flavour == "pbspro" else "PBS_ARRAYID"
    script.write_text(
        f"#!/bin/bash\n#PBS -N work\necho index=${index_var} id=$PBS_JOBID name=$PBS_JOBNAME pwd=$(pwd)\n"
    )

    result = emu.run("qsub", array_flag(emu), "1-3", str(script), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    array_id = result.stdout.strip()
    assert re.fullmatch(rf"\d+\[\]\.{re.escape(SERVER)}", array_id), result.stdout
    seq = array_id.split("[")[0]
    elements = emu.wait_for_state(array_id, "finished")
    assert isinstance(elements, list) and [e.index for e in elements] == [1, 2, 3]
    for element in elements:
        assert element.exit_status == 0
        assert element.job_id == f"{seq}[{element.index}].{SERVER}"
        expected_name = "work" if emu.flavour == "pbspro" else f"work-{element.index}"
        suffix = f".{element.index}" if emu.flavour == "pbspro" else f"-{element.index}"
        assert element.stdout_path == tmp_path / f"work.o{seq}{suffix}", "default output file name"
        assert element.stdout_path.read_text() == (
            f"index={element.index} id={element.job_id} name={expected_name} pwd={Path.home()}\n"
        ), "jobs start in $HOME with the element's variables"
        assert element.environment["PBS_O_WORKDIR"] == str(tmp_path)


def test_states_move_from_queued_to_running_to_finished_in_qstat_json(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    gate = tmp_path / "gate"
    emu.hold_jobs()
    job_id = emu.run("qsub", "-N", "gated", stdin=GATED.format(gate=gate, code=3), cwd=tmp_path).stdout.strip()
    assert re.fullmatch(rf"\d+\.{re.escape(SERVER)}", job_id)

    assert qstat_json(emu, job_id)[job_id]["job_state"] == "Q"
    emu.release_jobs()
    emu.wait_for_state(job_id, "running")
    running = qstat_json(emu, job_id)[job_id]
    assert running["job_state"] == "R" and "Exit_status" not in running
    assert running["exec_host"] == f"{emu.hostname}/0" and isinstance(running["session_id"], int)
    gate.touch()
    emu.wait_for_state(job_id, "finished")

    finished = qstat_json(emu, "-x", job_id)[job_id]
    assert finished["job_state"] == "F"
    assert finished["Exit_status"] == 3, "Exit_status is a JSON number"
    assert finished["Job_Name"] == "gated" and finished["queue"] == "workq"
    assert finished["Output_Path"] == f"{emu.hostname}:{tmp_path}/gated.o{job_id.split('.')[0]}"
    assert isinstance(finished["Resource_List"], dict) and isinstance(finished["Variable_List"], dict)


def test_qstat_json_shows_an_array_parent_begun_and_its_subjobs_with_t(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    gate = tmp_path / "gate"
    emu.slots = 2
    array_id = emu.run("qsub", "-J", "1-3", stdin=GATED.format(gate=gate, code=0), cwd=tmp_path).stdout.strip()
    seq = array_id.split("[")[0]
    emu.wait_for_state(f"{seq}[1].{SERVER}", "running")
    emu.wait_for_state(f"{seq}[2].{SERVER}", "running")

    parent_only = qstat_json(emu)
    assert list(parent_only) == [array_id], "without -t only the parent is listed"
    parent = parent_only[array_id]
    assert parent["job_state"] == "B" and parent["array"] == "True"
    assert parent["array_indices_submitted"] == "1-3"
    assert parent["array_indices_remaining"] == 3, "values that parse as JSON are printed parsed, as PBS does"
    assert parent["array_state_count"] == "Queued:1 Running:2 Exiting:0 Expired:0 "

    expanded = qstat_json(emu, "-t")
    assert list(expanded) == [array_id, f"{seq}[1].{SERVER}", f"{seq}[2].{SERVER}", f"{seq}[3].{SERVER}"]
    third = expanded[f"{seq}[3].{SERVER}"]
    assert third["job_state"] == "Q" and third["array_index"] == 3 and third["array_id"] == array_id
    gate.touch()
    emu.wait_for_state(array_id, "finished")
    history = qstat_json(emu, "-x", "-t", array_id)
    assert history[array_id]["job_state"] == "F"
    assert {history[f"{seq}[{i}].{SERVER}"]["job_state"] for i in (1, 2, 3)} == {"X"}
    assert qstat_json(emu) == {}, "finished jobs leave the listing without -x (and 'Jobs' is absent)"


def test_qstat_reports_unknown_and_finished_ids_and_still_prints_the_others(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    done_id = emu.run("qsub", stdin="exit 0\n", cwd=tmp_path).stdout.strip()
    emu.wait_for_state(done_id, "finished")
    emu.hold_jobs()
    queued_id = emu.run("qsub", stdin="exit 0\n", cwd=tmp_path).stdout.strip()

    unknown = emu.run("qstat", "-f", "-F", "json", queued_id, "999")
    assert unknown.returncode == 153
    assert unknown.stderr == f"qstat: Unknown Job Id 999.{SERVER}\n"
    assert list(json.loads(unknown.stdout)["Jobs"]) == [queued_id]

    finished = emu.run("qstat", done_id)
    assert finished.returncode == 35
    assert finished.stderr == (
        f"qstat: {done_id} Job has finished, use -x or -H to obtain historical job information\n"
    )
    array_as_plain = emu.run("qstat", queued_id.replace(".", "[]."))
    assert array_as_plain.returncode == 153, "a plain job is not an array"


def test_qdel_of_a_running_job_sends_sigterm_and_exit_status_is_256_plus_signal(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    job_id = emu.run("qsub", stdin="sleep 30\n", cwd=tmp_path).stdout.strip()
    emu.wait_for_state(job_id, "running")

    result = emu.run("qdel", job_id)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    job = one(emu.wait_for_state(job_id, "finished", timeout=5))
    assert job.killed and job.exit_status == 256 + 15
    assert qstat_json(emu, "-x", job_id)[job_id]["Exit_status"] == 271


def test_qdel_escalates_to_sigkill_when_the_job_ignores_sigterm(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    emu.kill_grace_seconds = 0.3
    job_id = emu.run("qsub", stdin="trap '' TERM\nsleep 30\n", cwd=tmp_path).stdout.strip()
    emu.wait_for_state(job_id, "running")

    assert emu.run("qdel", job_id).returncode == 0

    job = one(emu.wait_for_state(job_id, "finished", timeout=5))
    assert job.exit_status == 256 + 9, "SIGTERM was ignored, SIGKILL followed"


def test_qdel_of_a_queued_job_removes_it_without_running_it(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    emu.hold_jobs()
    array_id = emu.run("qsub", "-J", "1-2", stdin=f"touch {tmp_path}/ran\n", cwd=tmp_path).stdout.strip()

    assert emu.run("qdel", array_id).returncode == 0
    emu.release_jobs()

    elements = emu.wait_for_state(array_id, "finished")
    assert isinstance(elements, list)
    assert all(e.pid is None and e.exit_status is None for e in elements)
    assert not (tmp_path / "ran").exists()
    record = qstat_json(emu, "-x", "-t", array_id)[array_id.replace("[]", "[1]")]
    assert "Exit_status" not in record and record["job_state"] == "X"


@BOTH
def test_qdel_of_finished_and_unknown_jobs_gives_the_schedulers_messages(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    job_id = emu.run("qsub", stdin="exit 0\n", cwd=tmp_path).stdout.strip()
    emu.wait_for_state(job_id, "finished")

    finished = emu.run("qdel", job_id)
    unknown = emu.run("qdel", f"999.{SERVER}")

    if emu.flavour == "pbspro":
        assert (finished.returncode, finished.stderr) == (35, f"qdel: Job has finished {job_id}\n")
        assert (unknown.returncode, unknown.stderr) == (153, f"qdel: Unknown Job Id 999.{SERVER}\n")
    else:
        assert finished.returncode == 170
        assert (
            finished.stderr == f"qdel: Request invalid for state of job MSG=invalid state for job - COMPLETE {job_id}\n"
        )
        assert (unknown.returncode, unknown.stderr) == (153, f"qdel: Unknown Job Id Error 999.{SERVER}\n")


@pytest.mark.parametrize("pbs_emulator", ["torque"], indirect=True)
def test_torque_qstat_f_prints_text_blocks_with_job_state_c_and_wrapped_lines(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    long_value = ",".join(f"v{i}" for i in range(40))
    array_id = emu.run("qsub", "-t", "0-1", "-N", "tq", "-v", f"LONG='{long_value}'", stdin="exit 4\n", cwd=tmp_path)
    array_id_text = array_id.stdout.strip()
    seq = array_id_text.split("[")[0]
    emu.wait_for_state(array_id_text, "finished")

    summary = emu.run("qstat", "-f").stdout
    expanded = emu.run("qstat", "-f", "-t").stdout
    unwrapped = emu.run("qstat", "-f", "-1", "-t").stdout

    assert summary.startswith(f"Job Id: {array_id_text}\n    Job_Name = tq\n"), summary
    assert f"Job Id: {seq}[0].{SERVER}" not in summary
    blocks = expanded.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [
        f"Job Id: {x}" for x in (array_id_text, f"{seq}[0].{SERVER}", f"{seq}[1].{SERVER}")
    ]
    element = blocks[1]
    assert "\n    Job_Name = tq-0\n" in element and "\n    job_state = C\n" in element
    assert "\n    exit_status = 4\n" in element and "\n    job_array_id = 0\n" in element
    assert "\n    Resource_List.nodes = 1\n" in element
    assert re.search(r"\n    Variable_List = [^\n]*,\n\t", element), "long values continue on tab-indented lines"
    assert all(len(line) <= 78 for line in element.splitlines() if "Variable_List" in line)
    assert "\n\t" not in unwrapped, "-1 prints each attribute on one line"
    assert f"LONG={long_value}" in unwrapped


def test_fail_next_makes_qsub_fail_like_an_unreachable_server_and_submit_nothing(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    emu.fail_next("qsub", n=2)

    failures = [emu.run("qsub", stdin="exit 0\n", cwd=tmp_path) for _ in range(2)]
    success = emu.run("qsub", stdin="exit 0\n", cwd=tmp_path)

    for failure in failures:
        assert failure.returncode == 162 and failure.stdout == ""
        assert f"qsub: cannot connect to server {SERVER} (errno=15010)" in failure.stderr
    assert success.returncode == 0
    assert [j.job_id for j in emu.jobs()] == [success.stdout.strip()], "failed submits created no job"
    assert [c.fault for c in emu.calls] == ["fail", "fail", None]


@BOTH
def test_a_lost_qsub_reply_reports_failure_but_the_job_exists(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    emu.lose_reply_next("qsub")

    lost = emu.run("qsub", "-N", "tagged", stdin="sleep 30\n", cwd=tmp_path)

    assert lost.returncode != 0 and lost.stdout == ""
    assert "cannot connect to server" in lost.stderr
    (job,) = emu.jobs()
    assert job.name == "tagged", "the submit happened even though the caller saw an error"
    assert emu.run("qstat").stdout.count("tagged") == 1


def test_a_hung_qsub_reply_times_out_in_the_caller_but_the_job_exists(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    emu.lose_reply_next("qsub", mode="hang", hang_seconds=30)

    with pytest.raises(subprocess.TimeoutExpired):
        emu.run("qsub", stdin="exit 0\n", cwd=tmp_path, timeout=1.0)

    (job,) = emu.jobs()
    assert one(emu.wait_for_state(job.job_id, "finished")).exit_status == 0


def test_variables_v_quoting_and_v_export(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "FROM_CALLER": "yes", "KEEP": "kept"}
    plain = emu.run("qsub", "-v", "A='x,y',B=z,KEEP", stdin="exit 0\n", cwd=tmp_path, env=env).stdout.strip()
    exported = emu.run("qsub", "-V", stdin="exit 0\n", cwd=tmp_path, env=env).stdout.strip()

    plain_env = one(emu.wait_for_state(plain, "finished")).environment
    exported_env = one(emu.wait_for_state(exported, "finished")).environment

    assert (plain_env["A"], plain_env["B"], plain_env["KEEP"]) == ("x,y", "z", "kept")
    assert (
        "FROM_CALLER" not in plain_env
        and plain_env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    assert plain_env["PBS_O_PATH"] == "/usr/bin:/bin"
    assert exported_env["FROM_CALLER"] == "yes" and exported_env["PATH"] == "/usr/bin:/bin"


@pytest.mark.parametrize(("pbs_emulator", "exit_status"), [("pbspro", -29), ("torque", 271)], indirect=["pbs_emulator"])
def test_walltime_is_enforced_with_pbs_message_and_exit_status(
    pbs_emulator: PbsEmulator, tmp_path: Path, exit_status: int
) -> None:
    """PBS Pro / OpenPBS: JOB_EXEC_KILL_WALLTIME (-29); TORQUE: 256 + SIGTERM."""
    emu = pbs_emulator
    job_id = emu.run("qsub", "-l", "walltime=00:00:01", "-j", "oe", stdin="sleep 30\n", cwd=tmp_path).stdout.strip()

    job = one(emu.wait_for_state(job_id, "finished", timeout=8))

    assert job.exit_status == exit_status
    assert job.stdout_path is not None and job.stdout_path == job.stderr_path, "-j oe merges"
    assert "=>> PBS: job killed: walltime 1 exceeded limit 1" in job.stdout_path.read_text()


def test_slots_keep_extra_elements_queued_and_percent_limits_an_array(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    gate = tmp_path / "gate"
    array_id = emu.run("qsub", "-J", "1-4%2", stdin=GATED.format(gate=gate, code=0), cwd=tmp_path).stdout.strip()
    seq = array_id.split("[")[0]
    emu.wait_for_state(f"{seq}[2].{SERVER}", "running")

    states = [j.state for j in emu.jobs()]

    assert states == ["running", "running", "queued", "queued"], "at most 2 elements of a %2 array run"
    gate.touch()
    emu.wait_for_state(array_id, "finished")


def test_output_path_with_array_index_and_exec_mode(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    (tmp_path / "logs").mkdir()
    array_id = emu.run(
        "qsub",
        "-J",
        "1-2",
        "-o",
        "logs/out.^array_index^",
        "-e",
        "logs",
        "--",
        "/bin/echo",
        "hello world",
        cwd=tmp_path,
    ).stdout.strip()
    seq = array_id.split("[")[0]

    emu.wait_for_state(array_id, "finished")

    assert (tmp_path / "logs" / "out.1").read_text() == "hello world\n"
    assert (tmp_path / "logs" / "out.2").read_text() == "hello world\n"
    assert (tmp_path / "logs" / f"echo.e{seq}.2").exists(), "a directory gets the default file name"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-l", "frobs=2"], 187, "qsub: Unknown resource Resource_List.frobs"),
        (["-l", "walltime=1h"], 166, "qsub: Illegal attribute or resource value Resource_List.walltime"),
        (["-J", "3-3"], 2, "qsub: illegal -J value"),
        (["-q", "nosuch"], 170, "qsub: Unknown queue"),
        (["-Z"], 2, "qsub: option -Z not recognized"),
    ],
)
def test_bad_qsub_options_are_refused_with_a_message_and_exit_code(
    pbs_emulator: PbsEmulator, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = pbs_emulator.run("qsub", *args, stdin="exit 0\n", cwd=tmp_path)

    assert result.returncode == code and result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert pbs_emulator.jobs() == []


def test_shims_report_an_unreachable_server_after_close(tmp_path: Path) -> None:
    emu = PbsEmulator()
    qstat = emu.bin_directory / "qstat"
    saved = tmp_path / "qstat"
    saved.write_text(qstat.read_text())
    saved.chmod(0o755)
    emu.close()

    result = subprocess.run([str(saved)], capture_output=True, text=True, timeout=10, check=False)

    assert result.returncode == 162 and f"qstat: cannot connect to server {SERVER}" in result.stderr
    assert not emu.root.exists(), "close() removed the temp dir"


def test_output_is_spooled_until_the_end_unless_k_oed_writes_it_in_place(
    pbs_emulator: PbsEmulator, tmp_path: Path
) -> None:
    emu = pbs_emulator
    gate = tmp_path / "gate"
    script = f"echo started\nwhile [ ! -e {gate} ]; do sleep 0.02; done\n"
    spooled = emu.run("qsub", "-o", "spooled.out", "-j", "oe", stdin=script, cwd=tmp_path).stdout.strip()
    direct = emu.run("qsub", "-o", "direct.out", "-j", "oe", "-k", "oed", stdin=script, cwd=tmp_path).stdout.strip()
    emu.wait_for_state(spooled, "running")
    emu.wait_for_state(direct, "running")

    assert emu.engine.wait_until(lambda: (tmp_path / "direct.out").exists(), 5), "-k oed writes in place"
    assert emu.engine.wait_until(lambda: (tmp_path / "direct.out").read_text() == "started\n", 5)
    assert not (tmp_path / "spooled.out").exists(), "by default PBS copies the output when the job ends"
    gate.touch()
    emu.wait_for_state(spooled, "finished")
    assert (tmp_path / "spooled.out").read_text() == "started\n"


@BOTH
def test_qstat_b_shows_the_servers_array_limit_and_qsub_enforces_it(pbs_emulator: PbsEmulator, tmp_path: Path) -> None:
    emu = pbs_emulator
    if emu.flavour == "pbspro":
        server = json.loads(emu.run("qstat", "-B", "-f", "-F", "json").stdout)["Server"][SERVER]
        assert server["max_array_size"] == 10000 and server["server_state"] == "Active"
    else:
        text = emu.run("qstat", "-B", "-f").stdout
        assert text.startswith(f"Server: {SERVER}\n    server_state = Active\n")
        assert "max_job_array_size" not in text, "TORQUE has no limit unless the site sets one"
    emu.max_array_size = 3

    refused = emu.run("qsub", array_flag(emu), "1-4", stdin="exit 0\n", cwd=tmp_path)
    accepted = emu.run("qsub", array_flag(emu), "1-3", stdin="exit 0\n", cwd=tmp_path)

    assert refused.returncode == 3 and "exceeds server or queue size limit" in refused.stderr
    assert accepted.returncode == 0
    limit = "max_job_array_size" if emu.flavour == "torque" else "max_array_size"
    assert f"    {limit} = 3\n" in emu.run("qstat", "-B", "-f").stdout


def group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue  # gone meanwhile
    return members


def test_a_finished_jobs_leftover_processes_and_close_kill_whole_process_groups(tmp_path: Path) -> None:
    emu = PbsEmulator()
    try:
        done = emu.run("qsub", stdin="sleep 30 &\nexit 0\n", cwd=tmp_path).stdout.strip()
        running = emu.run("qsub", stdin="sleep 30 &\nsleep 30\n", cwd=tmp_path).stdout.strip()
        finished = one(emu.wait_for_state(done, "finished"))
        job = one(emu.wait_for_state(running, "running"))
        assert finished.pid is not None and job.pid is not None
        assert emu.engine.wait_until(lambda: len(group_members(job.pid or 0)) == 3, 5), "bash and two sleeps"
        assert group_members(finished.pid) == [], "the background sleep of a finished job was killed"
    finally:
        emu.close()

    assert emu.engine.wait_until(lambda: group_members(job.pid or 0) == [], 5), "close() killed the running job's group"

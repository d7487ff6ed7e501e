"""SgeOptions: validation, and the directives and qsub line each option becomes (no SGE needed)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import launcher_info, make_calls

import pycrew
from pycrew import OptionsError
from pycrew_sge import SgeCLI, SgeOptions
from pycrew_sge.options import megabytes_per_slot


def cli(**options: Any) -> SgeCLI:
    return SgeCLI("sge", SgeOptions(**options))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cpus": 0}, "cpus"),
        ({"memory": "4 GB"}, "memory"),
        ({"memory": "1.5G"}, "memory"),
        ({"walltime": "soon"}, "walltime"),
        ({"walltime": "01:00:00", "seconds_walltime": 60}, "walltime"),
        ({"queue": "all q"}, "queue"),
        ({"account": "a:b"}, "account"),
        ({"account": "me@site"}, "account"),
        ({"parallel_environment": "s m p"}, "parallel_environment"),
        ({"parallel_environment": "-smp"}, "parallel_environment"),
        ({"memory_resource": "h vmem"}, "memory_resource"),
        ({"project": "p/q"}, "project"),
        ({"resources": ("gpu=1,arch=x",)}, "resources"),
        ({"resources": ("gpu = 1",)}, "resources"),
        ({"resources": ("h_rt=1:00:00",)}, "resources"),
        ({"memory": "4G", "resources": ("h_vmem=1G",)}, "resources"),
        ({"script_directives": ("#SBATCH --mem=1G",)}, "script_directives"),
        ({"script_directives": ("#$ -t 1-5",)}, "script_directives"),
        ({"script_directives": ("#$ -N mine",)}, "script_directives"),
        ({"script_directives": ("#$ -ac pycrew_tag=x",)}, "script_directives"),
        ({"submit_args": ("-t", "1-3")}, "submit_args"),
        ({"submit_args": ("-V",)}, "submit_args"),
        ({"submit_args": ("-v", "A=1")}, "submit_args"),
        ({"submit_args": ("-sync", "y")}, "submit_args"),
        ({"submit_args": ("-o", "/tmp/x")}, "submit_args"),
        ({"submit_args": ("-terse",)}, "submit_args"),
        ({"submit_args": ("-wd", "/data")}, "submit_args"),
        ({"script_directives": ("#$ -cwd",)}, "script_directives"),
        ({"cwd": " /data"}, "cwd"),
        ({"log_output": " /tmp/x"}, "log_output"),
        ({"log_error": '/tmp/"x".log'}, "log_error"),
        ({"directory": '/tmp/a"b'}, "directory"),
        ({"seconds_poll": -1}, "seconds_poll"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(OptionsError, match=f"'?{named}'?"):
        SgeOptions(**options).validate()


def test_options_through_pycrew_are_checked() -> None:
    with pytest.raises(OptionsError, match="sge option 'submit_args' must not set -t"):
        pycrew.Monitor("sge", submit_args=("-t", "1-3"))


@pytest.mark.parametrize(
    "options",
    [{}, {"queue": "all.q"}, {"queue": "all.q@node1,short.q"}, {"cpus": 4, "memory": "8G"},
     {"submit_args": ("-l", "gpu=1", "-hold_jid", "12")}, {"resources": ("arch=lx-amd64", "bigmem")},
     {"memory": "4G", "memory_resource": "mem_free", "resources": ("h_vmem=8G",)}],
)
def test_good_options_validate(options: dict[str, Any]) -> None:
    SgeOptions(**options).validate()


def test_every_shared_option_becomes_its_directive() -> None:
    options = SgeOptions(
        queue="all.q", cpus=4, memory="6G", walltime="1-02:00:00", account="acct", project="proj",
        resources=("gpu=1", "arch=lx-amd64"), script_directives=("#$ -p -10",),
    )
    assert options.directives() == [
        "#$ -q all.q",
        "#$ -pe smp 4",
        "#$ -l h_vmem=1536M",  # 6G over 4 slots: SGE counts h_vmem per slot
        "#$ -l h_rt=26:00:00",
        "#$ -A acct",
        "#$ -P proj",
        "#$ -l gpu=1",
        "#$ -l arch=lx-amd64",
        "#$ -p -10",
    ]


def test_memory_without_cpus_is_one_slot_and_the_resource_is_the_sites() -> None:
    options = SgeOptions(memory="512M", memory_resource="mem_free", parallel_environment="threads", cpus=None)
    assert options.directives() == ["#$ -l mem_free=512M"]
    assert SgeOptions(cpus=2, parallel_environment="threads").directives() == ["#$ -pe threads 2"]
    assert SgeOptions(seconds_walltime=90.2).directives() == ["#$ -l h_rt=00:01:31"]
    assert megabytes_per_slot(4096, 3) == 1366


def test_script_directives_name_array_tag_logs_shell_and_directory(tmp_path: Path) -> None:
    c = cli(directory=str(tmp_path / "private"), queue="all.q")
    calls = make_calls("pass", 3, controller="my ctl")
    tag = "pycrew:1;c=x;w=1-2,5"
    lines = c.directives(launcher_info(c.options, calls), calls, tag)
    logs = tmp_path / "private" / "logs"
    assert lines == [
        "#$ -N pycrew-my-ctl",
        "#$ -t 1-3",
        "#$ -ac pycrew_tag=pycrew:1;c=x;w=1-2+5",
        f"#$ -o {logs}/$JOB_NAME-$JOB_ID.$TASK_ID.log",
        "#$ -j y",
        "#$ -cwd",
        "#$ -q all.q",
    ]
    assert logs.is_dir(), "SGE puts a job whose output directory is missing in error state: it is made first"


def test_log_error_and_paths_with_spaces(tmp_path: Path) -> None:
    c = cli(log_output=str(tmp_path / "a b" / "o.log"), log_error="/tmp/e.log")
    calls = make_calls("pass", 1)
    lines = c.directives(launcher_info(c.options, calls), calls, "pycrew:1;c=x;w=1.i")
    assert f'#$ -o "{tmp_path}/a b/o.log"' in lines and "#$ -e /tmp/e.log" in lines and "#$ -j y" not in lines


def test_qsub_line_exports_the_environment_and_never_the_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCREW_TOKEN", "stale-token-of-ours")
    calls = make_calls("pass", 2)
    script = tmp_path / "job.sh"
    c = cli(bin_directory="/opt/sge/bin", submit_args=("-l", "gpu=1"))
    assert c.submit_command(script, calls, "t") == ["/opt/sge/bin/qsub", "-terse", "-V", "-l", "gpu=1", str(script)]
    env = c.submission_environment(calls)
    assert not [k for k in env if k.startswith("PYCREW_TOKEN")], "with secret_file the secret is in no environment"
    assert calls[0].batch_key not in env.values()
    plain = cli(secret_file=False, export_environment=False)
    assert plain.submit_command(script, calls, "t") == ["qsub", "-terse", "-v", "PYCREW_TOKEN", str(script)]
    assert plain.submission_environment(calls)["PYCREW_TOKEN"] == calls[0].batch_key


def test_script_reads_the_secret_from_its_key_file_before_script_lines(tmp_path: Path) -> None:
    c = cli(directory=str(tmp_path / "private"), script_lines=("module load python",), python="/opt/py/bin/python3")
    calls = make_calls("pass", 2)
    tag = "pycrew:1;c=x;w=1-2"
    script = c.render_script(launcher_info(c.options, calls), calls, tag)
    key = c.keys.path(tag)
    assert key.parent == tmp_path / "private" / "keys"
    read = script.index(f"IFS= read -r __pycrew_token < {key}")
    assert read < script.index("module load python") < script.index("exec /opt/py/bin/python3")
    assert calls[0].batch_key not in script, "the secret is never in the script"
    without = cli(directory=str(tmp_path / "private"), secret_file=False).render_script(
        launcher_info(c.options, calls), calls, tag
    )
    assert "read -r __pycrew_token" not in without


def test_key_files_are_private_and_cleaned_when_no_job_carries_their_tag(tmp_path: Path) -> None:
    keys = cli(directory=str(tmp_path / "private")).keys
    before = time.monotonic()
    live, gone = keys.write("tag-live", "s1"), keys.write("tag-gone", "s2")
    fresh = keys.write("tag-fresh", "s3")  # its submit is still running
    for tag in ("tag-live", "tag-gone"):
        keys.settled(tag, submitted=True)
    assert stat.S_IMODE(os.stat(keys.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(live).st_mode) == 0o600 and live.read_text() == "s1\n"
    assert keys.clean([], listed_at=before) == [], "a listing from before the submits cannot show their jobs"
    after = time.monotonic()
    assert keys.clean(["tag-live"], listed_at=after) == [gone], "in flight (tag-fresh) and listed (tag-live) stay"
    keys.settled("tag-fresh", submitted=False)
    assert not fresh.exists(), "a failed submit's key goes at once"


def test_other_processes_key_files_go_after_the_grace_period(tmp_path: Path) -> None:
    mine = cli(directory=str(tmp_path / "private")).keys
    theirs = cli(directory=str(tmp_path / "private")).keys  # another process: it knows nothing of mine
    young, old = mine.write("tag-young", "s1"), mine.write("tag-old", "s2")
    aged = time.time() - theirs.seconds_grace - 1
    os.utime(old, (aged, aged))
    assert theirs.clean([], listed_at=time.monotonic()) == [old] and young.exists()

"""SlurmOptions: types, values, exclusive pairs, and the directives they render."""

from __future__ import annotations

from typing import Any

import pytest

from pycrew import OptionsError
from pycrew_slurm import SlurmOptions
from pycrew_slurm.options import seconds_to_slurm_time, slurm_time_to_seconds


def test_defaults_are_valid_and_render_no_resource_directives() -> None:
    assert SlurmOptions().directives() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cpus_per_task", 0),
        ("cpus_per_task", "4"),
        ("memory", "4GB"),
        ("memory", "4.5G"),
        ("memory", "4"),
        ("memory_gigabytes_per_node", -1.0),
        ("memory_gigabytes_per_node", float("nan")),
        ("memory_gigabytes_per_cpu", 0),
        ("seconds_time", 0),
        ("seconds_time", float("inf")),
        ("time", "bogus"),
        ("time", "1:2:3:4"),
        ("gpus", 0),
        ("gres", "gpu 2"),
        ("partition", "a b"),
        ("partition", ""),
        ("account", "x;rm -rf"),
        ("qos", "q\n"),
        ("log_output", "a\nb"),
        ("python", ""),
        ("python", " python3"),
        ("script_directives", ("--mem=1G",)),
        ("script_directives", ("#SBATCH",)),
        ("script_directives", ("#SBATCH --mem=1G\n#SBATCH --x",)),
        ("script_directives", ("#SBATCH --array=1-3",)),
        ("script_directives", ("#SBATCH --comment=mine",)),
        ("sbatch_args", ("--export=NONE",)),
        ("sbatch_args", ("--chdir=/data",)),
        ("script_directives", ("#SBATCH -D /data",)),
        ("cwd", ""),
        ("cwd", "/a\nb"),
        ("sbatch_args", ("-J", "name")),
        ("sbatch_args", ("-Jname",)),
        ("sbatch_args", ("--array=1-2",)),
        ("sbatch_args", ("--wrap", "true")),
        ("sbatch_args", "--hold"),
        ("array_size_max", 0),
        ("seconds_poll", -1),
        ("seconds_command_timeout", 0),
    ],
)
def test_bad_value_raises_options_error_naming_the_option(name: str, value: Any) -> None:
    with pytest.raises(OptionsError, match=name):
        SlurmOptions(**{name: value})


@pytest.mark.parametrize(
    "values",
    [
        {"memory": "4G", "memory_gigabytes_per_node": 4.0},
        {"memory": "4G", "memory_gigabytes_per_cpu": 1.0},
        {"memory_gigabytes_per_node": 4.0, "memory_gigabytes_per_cpu": 1.0},
        {"time": "10", "seconds_time": 600.0},
        {"gpus": 1, "gres": "gpu:1"},
    ],
)
def test_options_setting_the_same_directive_twice_are_rejected(values: dict[str, Any]) -> None:
    with pytest.raises(OptionsError, match=r"give one"):
        SlurmOptions(**values)


def test_unknown_option_suggests_the_close_name() -> None:
    with pytest.raises(OptionsError, match=r"'partiton'.*did you mean 'partition'"):
        SlurmOptions.from_mapping({"partiton": "short"})


def test_lists_become_tuples() -> None:
    options = SlurmOptions(script_lines=["module load python"], sbatch_args=["--hold"])  # type: ignore[arg-type]
    assert options.script_lines == ("module load python",)
    assert options.sbatch_args == ("--hold",)


@pytest.mark.parametrize("value", ["30", "30:00", "1:30:00", "2-0", "2-12:00", "2-12:00:00", "UNLIMITED", "infinite"])
def test_slurm_time_strings_are_accepted(value: str) -> None:
    assert SlurmOptions(time=value).directives() == [f"#SBATCH --time={value}"]


def test_seconds_time_is_rounded_up_to_whole_seconds() -> None:
    assert seconds_to_slurm_time(90061) == "1-01:01:01"
    assert seconds_to_slurm_time(0.2) == "0-00:00:01"


def test_directives_render_every_resource_option() -> None:
    options = SlurmOptions(
        partition="short",
        account="lab",
        qos="normal",
        cpus_per_task=4,
        memory_gigabytes_per_node=1.5,
        seconds_time=3600,
        gpus=2,
        script_directives=("#SBATCH --constraint=avx2",),
    )
    assert options.directives() == [
        "#SBATCH --partition=short",
        "#SBATCH --account=lab",
        "#SBATCH --qos=normal",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=1536M",
        "#SBATCH --time=0-01:00:00",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --constraint=avx2",
    ]


def test_memory_string_and_per_cpu_and_gres_render() -> None:
    assert SlurmOptions(memory="512m", gres="gpu:a100:1").directives() == ["#SBATCH --mem=512M", "#SBATCH --gres=gpu:a100:1"]
    assert SlurmOptions(memory_gigabytes_per_cpu=2).directives() == ["#SBATCH --mem-per-cpu=2048M"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("1:30", 90), ("1:30:00", 5400), ("2-12", 216000), ("1-0:30", 88200), ("1-00:00:01", 86401),
     ("UNLIMITED", None), ("infinite", None)],
)
def test_slurm_times_in_seconds(text: str, seconds: int | None) -> None:
    assert slurm_time_to_seconds(text) == seconds


def test_the_time_limit_comes_from_whichever_option_sets_it() -> None:
    assert SlurmOptions(time="1:00:00").seconds_worker_life() == 3540.0
    assert SlurmOptions(seconds_time=20).seconds_worker_life() == 10.0
    assert SlurmOptions(walltime="00:10:00").seconds_worker_life() == 540.0
    assert SlurmOptions(seconds_walltime=600).time_limit_seconds() == 600
    assert SlurmOptions(time="UNLIMITED").seconds_worker_life() is None
    assert SlurmOptions().seconds_worker_life() is None
    with pytest.raises(ValueError, match="not a SLURM time limit"):
        slurm_time_to_seconds("1h")

"""LsfOptions: types, values, reserved bsub options, and the #BSUB directives they render."""

from __future__ import annotations

from typing import Any

import pytest

from pycrew import OptionsError
from pycrew_lsf import LsfOptions
from pycrew_lsf.options import megabytes_in_unit, seconds_to_lsf_walltime


def test_defaults_are_valid_and_render_no_resource_directives() -> None:
    assert LsfOptions().directives() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("queue", "a b"),
        ("queue", ""),
        ("account", "x;rm -rf"),
        ("cpus", 0),
        ("cpus", "4"),
        ("memory", "4GB"),
        ("memory", "4.5G"),
        ("memory", "4"),
        ("memory_unit", "bytes"),
        ("memory_unit", "M"),
        ("walltime", "90"),
        ("walltime", "1:30"),
        ("seconds_walltime", 0),
        ("seconds_walltime", float("inf")),
        ("resources", ("",)),
        ("resources", ('select[type=="X86_64"]',)),
        ("resources", ("a\nb",)),
        ("resources", "select[avx2]"),
        ("log_output", 'a"b'),
        ("log_error", "a\nb"),
        ("python", " python3"),
        ("script_directives", ("-q short",)),
        ("script_directives", ("#BSUB",)),
        ("script_directives", ("#SBATCH --mem=1G",)),
        ("script_directives", ('#BSUB -J "mine[1-3]"',)),
        ("script_directives", ('#BSUB -Jd "mine"',)),
        ("script_directives", ("#BSUB -o /tmp/x",)),
        ("submit_args", ("-J", "name")),
        ("submit_args", ("-Jd", "x")),
        ("submit_args", ("-env", "none")),
        ("submit_args", ("-K",)),
        ("submit_args", ("-Is",)),
        ("submit_args", ("-oo", "/tmp/x")),
        ("submit_args", "-H"),
        ("array_size_max", 0),
        ("seconds_poll", -1),
        ("seconds_command_timeout", 0),
        ("command_attempts", 0),
        ("submit_failures_max", 0),
    ],
)
def test_bad_value_raises_options_error_naming_the_option(name: str, value: Any) -> None:
    with pytest.raises(OptionsError, match=name):
        LsfOptions(**{name: value})


def test_reserved_option_error_says_why_and_what_to_use() -> None:
    with pytest.raises(OptionsError, match=r"must not set -env .*use export_environment"):
        LsfOptions(submit_args=("-env", "all"))
    with pytest.raises(OptionsError, match=r"must not set -o .*use log_output"):
        LsfOptions(script_directives=("#BSUB -o /tmp/out",))
    with pytest.raises(OptionsError, match=r"must not set -cwd .*use the cwd option"):
        LsfOptions(submit_args=("-cwd", "/data"))


def test_walltime_twice_is_rejected() -> None:
    with pytest.raises(OptionsError, match="give one"):
        LsfOptions(walltime="01:00:00", seconds_walltime=60.0)


def test_unknown_option_suggests_the_close_name() -> None:
    with pytest.raises(OptionsError, match=r"'memory_units'.*did you mean 'memory_unit'"):
        LsfOptions.from_mapping({"memory_units": "MB"})


def test_every_option_becomes_its_directive() -> None:
    options = LsfOptions(
        queue="short", account="proj-7", cpus=4, memory="4G", memory_unit="mb", walltime="01:30:00",
        resources=("select[avx2]", "order[-slots]"), script_directives=("#BSUB -x",),
    )
    assert options.directives() == [
        "#BSUB -q short",
        "#BSUB -P proj-7",
        "#BSUB -n 4",
        '#BSUB -R "rusage[mem=4096] span[hosts=1]"',
        "#BSUB -M 4096",
        "#BSUB -W 1:30",
        '#BSUB -R "select[avx2]"',
        '#BSUB -R "order[-slots]"',
        "#BSUB -x",
    ]


def test_cpus_alone_keep_the_slots_on_one_host() -> None:
    assert LsfOptions(cpus=2).directives() == ["#BSUB -n 2", '#BSUB -R "span[hosts=1]"']


@pytest.mark.parametrize(
    ("memory", "unit", "number"),
    [("4G", "KB", 4194304), ("4G", "MB", 4096), ("4G", "GB", 4), ("1500M", "GB", 2), ("512K", "MB", 1), ("1T", "TB", 1)],
)
def test_memory_is_a_bare_number_in_the_sites_unit_rounded_up(memory: str, unit: str, number: int) -> None:
    lines = LsfOptions(memory=memory, memory_unit=unit).directives()
    assert lines == [f'#BSUB -R "rusage[mem={number}]"', f"#BSUB -M {number}"]


def test_memory_without_a_known_unit_cannot_be_rendered() -> None:
    with pytest.raises(OptionsError, match="memory_unit"):
        LsfOptions(memory="4G").directives()


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "0:01"), (60, "0:01"), (61, "0:02"), (5400, "1:30"), (90061, "25:02"), (86400 * 3, "72:00")]
)
def test_walltime_is_whole_minutes_rounded_up(seconds: float, text: str) -> None:
    assert seconds_to_lsf_walltime(seconds) == text
    assert LsfOptions(seconds_walltime=seconds).directives() == [f"#BSUB -W {text}"]


def test_walltime_string_and_days() -> None:
    assert LsfOptions(walltime="1-00:00:30").directives() == ["#BSUB -W 24:01"]


def test_memory_units() -> None:
    assert megabytes_in_unit(1, "KB") == 1024
    with pytest.raises(ValueError, match="memory unit must be one of"):
        megabytes_in_unit(1, "B")

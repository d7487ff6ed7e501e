"""PbsOptions: validation with clear messages, and the resource requests of both flavours."""

from __future__ import annotations

from typing import Any

import pytest

import pycrew
from pycrew_pbs import PbsOptions


def build(**values: Any) -> PbsOptions:
    return PbsOptions.from_mapping(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"flavour": "lsf"}, r"'flavour' must be one of 'pbspro', 'torque', got 'lsf'"),
        ({"cpus": 0}, r"cpus.*be >= 1"),
        ({"memory": "4 GB"}, r"memory.*whole number with a unit"),
        ({"walltime": "1h"}, r"walltime.*HH:MM:SS"),
        ({"walltime": "01:00:00", "seconds_walltime": 60}, r"'walltime' and 'seconds_walltime'"),
        ({"queue": "work q"}, r"queue.*without spaces"),
        ({"resources": ("select=2:ncpus=1",)}, r"must not request 'select'.*cpus, memory, walltime"),
        ({"resources": ("walltime=01:00:00",)}, r"must not request 'walltime'"),
        ({"resources": ("place scatter",)}, r"resources.*'name=value'"),
        ({"resources": ("a=1,b=2",)}, r"resources.*without spaces, commas"),
        ({"chunk_resources": ("bigmem",)}, r"chunk_resources.*'name=value'"),
        ({"chunk_resources": ("ncpus=4",)}, r"chunk_resources' must not set 'ncpus'"),
        ({"submit_args": ("-J", "1-5")}, r"submit_args' must not set -J"),
        ({"submit_args": ("-J1-5",)}, r"submit_args' must not set -J"),
        ({"submit_args": ("-v", "A=1")}, r"must not set -v.*export_environment=False"),
        ({"submit_args": ("-V",)}, r"must not set -V"),
        ({"submit_args": ("-N", "mine")}, r"must not set -N"),
        ({"submit_args": ("-o", "/tmp/x")}, r"must not set -o.*log_output"),
        ({"submit_args": ("-z",)}, r"must not set -z"),
        ({"submit_args": ("-d", "/data")}, r"must not set -d.*use the cwd"),
        ({"script_directives": ("#PBS -w /data",)}, r"must not set -w.*use the cwd"),
        ({"cwd": "/a\x00b"}, r"'cwd' must be a non-empty path"),
        ({"submit_args": ("-W", "block=true")}, r"must not set -W block"),
        ({"submit_args": ("-Wblock=true",)}, r"must not set -W block"),
        ({"script_directives": ("#PBS -t 1-4",)}, r"script_directives' must not set -t"),
        ({"script_directives": ("#BSUB -n 2",)}, r"script_directives.*starting with '#PBS '"),
        ({"seconds_poll": -1.0}, r"seconds_poll"),
        ({"submit_failures_max": 0}, r"submit_failures_max.*>= 1"),
        ({"partition": "short"}, r"partition"),
        ({"log_output": '/tmp/a"b.log'}, r"log_output.*no double quote"),
    ],
)
def test_bad_options_fail_with_a_message_naming_the_option(values: dict[str, Any], message: str) -> None:
    with pytest.raises(pycrew.OptionsError, match=message):
        build(**values)


def test_good_options_pass() -> None:
    options = build(
        flavour="torque", queue="batch@torque01", cpus=4, memory="16G", seconds_walltime=3599.5, account="proj-1",
        resources=("software=abaqus",), chunk_resources=("gpus=1", "bigmem"), submit_args=("-W", "group_list=g", "-p", "5"),
        script_directives=("#PBS -m n",), script_lines=("module load python",), export_environment=False,
    )
    assert options.resource_requests() == ["nodes=1:ppn=4:gpus=1:bigmem,mem=16384mb", "walltime=01:00:00", "software=abaqus"]
    assert options.directives() == [
        "#PBS -q batch@torque01", "#PBS -A proj-1", "#PBS -l nodes=1:ppn=4:gpus=1:bigmem,mem=16384mb",
        "#PBS -l walltime=01:00:00", "#PBS -l software=abaqus", "#PBS -m n",
    ]


@pytest.mark.parametrize(
    ("values", "requests"),
    [
        ({}, []),
        ({"cpus": 1}, ["select=1:ncpus=1"]),
        ({"memory": "512M"}, ["select=1:mem=512mb"]),
        ({"memory": "1T"}, ["select=1:mem=1048576mb"]),
        ({"chunk_resources": ("ngpus=1",)}, ["select=1:ngpus=1"]),
        ({"cpus": 8, "chunk_resources": ("ngpus=2",), "resources": ("place=scatter",)},
         ["select=1:ncpus=8:ngpus=2", "place=scatter"]),
        ({"walltime": "2-00:30:00"}, ["walltime=48:30:00"]),
        ({"flavour": "torque", "memory": "2G"}, ["mem=2048mb"]),
        ({"flavour": "torque", "cpus": 3}, ["nodes=1:ppn=3"]),
    ],
)
def test_resource_requests(values: dict[str, Any], requests: list[str]) -> None:
    assert build(**values).resource_requests() == requests


def test_defaults_are_pbspro_with_direct_write_and_the_environment() -> None:
    options = build()
    assert (options.flavour, options.direct_write, options.export_environment) == ("pbspro", True, True)
    assert options.owner == "pbs" and options.directive_prefix == "#PBS"

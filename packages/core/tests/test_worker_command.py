"""The worker command line, defined once: WorkerCommand renders, parses, and backs WorkerCall."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pycrew
from pycrew.testing.harness import with_worker_arg
from pycrew.testing.scheduler_calls import WHO_AM_I, make_calls
from pycrew.wire.transport import TRANSPORTS
from pycrew.worker.command import WorkerCommand

# -- strategies ----------------------------------------------------------------------------

# Any text an argv can carry (no NUL, no lone surrogates), including values that start with "-".
# ("--" alone is refused: argparse drops it even from --option=--; see the test below.)
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20).filter(lambda s: s != "--")
seconds = st.one_of(
    st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=True),
    st.integers(1, 10**12),
)


@st.composite
def commands(draw: st.DrawFn) -> WorkerCommand:
    array = draw(st.booleans())
    return WorkerCommand(
        url=draw(text.filter(bool)),
        transport=draw(st.sampled_from(TRANSPORTS)),
        instance=None if array else draw(text.filter(bool)),
        instance_prefix=draw(text) if array else "",
        index_env=draw(text.filter(bool)) if array else None,
        index_base=draw(st.integers(-(10**6), 10**6)) if array else 0,
        worker=draw(st.integers(0, 10**6)),
        launcher=draw(text),
        controller=draw(text),
        controller_id=draw(text),
        seconds_idle=draw(seconds),
        seconds_wall=draw(seconds),
        tasks_max=draw(st.none() | st.integers(1, 2**62)),
        seconds_launch=draw(seconds),
        reset=draw(st.booleans()),
        garbage_collection=draw(st.booleans()),
        metrics_seconds=draw(st.none() | seconds),
        metrics_dir=draw(st.none() | text),
        seconds_spin=draw(st.sampled_from([0, 0.0005, 0.002, 1]) | st.floats(0, 1, allow_nan=False)),
    )


# -- round trips ---------------------------------------------------------------------------


@given(commands())
def test_a_command_reads_back_from_its_arguments(command: WorkerCommand) -> None:
    args = command.args()
    assert args[:2] == ("-m", "pycrew.worker")
    back = WorkerCommand.from_args(args)
    assert back == command, f"{args} read back as {back}"
    assert back.args() == args, "rendering what was parsed must give the same arguments"


def test_a_value_of_two_dashes_is_refused_naming_the_option() -> None:
    """Hypothesis found it in CI on 13e2546: controller_id "--" went out as --controller-id=--, which
    argparse read back as [] (it drops "--" even there), and the worker failed to start."""
    with pytest.raises(ValueError, match=r"controller \(--controller\) must not be '--'"):
        WorkerCommand(url="tcp://h:1", instance="i", controller="--")


@given(commands())
def test_the_worker_parser_reads_what_the_command_renders(command: WorkerCommand) -> None:
    namespace = pycrew.worker.command.parser().parse_args(list(command.args()[2:]))
    assert WorkerCommand.from_namespace(namespace) == command


@given(commands())
def test_an_array_command_gives_each_element_its_instance(command: WorkerCommand) -> None:
    shared = command.for_array("IDX", 1, instance_prefix="p-")
    assert shared.instance is None and shared.worker == 0 and "--worker" not in shared.args()
    assert WorkerCommand.from_args(shared.args()) == shared
    element = shared.resolve({"IDX": "4"})
    assert element.instance == "p-3" and not element.array
    single = {"instance": "p-3", "worker": 0, "instance_prefix": "", "index_env": None, "index_base": 0}
    assert element == dataclasses.replace(command, **single)


# -- core's rendering ----------------------------------------------------------------------


@pytest.fixture()
def make_controller() -> Iterator[object]:
    made: list[pycrew.Controller] = []

    def make(**options: object) -> pycrew.Controller:
        made.append(pycrew.controller("local", **options))
        return made[-1]

    yield make
    for c in made:
        c.terminate()


GOLDEN_NNG_ARGS = (
    "-m", "pycrew.worker", "--url", "tcp://127.0.0.1:5000", "--transport", "nng", "--instance", "aa9c59ea",
    "--worker", "3", "--launcher", "local", "--controller", "local", "--controller-id", "CID",
    "--seconds-idle", "5.0", "--seconds-wall", "7.5", "--tasks-max", "3", "--seconds-launch", "30.0",
    "--garbage-collection", "--no-reset", "--metrics-seconds", "2", "--metrics-dir", "/tmp/m",
)
GOLDEN_ARRAY_ARGS = (
    "-m", "pycrew.worker", "--url", "tcp://127.0.0.1:5000", "--instance-prefix", "abcdef012345-",
    "--index-env", "SLURM_ARRAY_TASK_ID", "--index-base", "1", "--launcher", "local", "--controller", "local",
    "--controller-id", "CID", "--seconds-idle", "inf", "--seconds-wall", "inf", "--tasks-max", "inf",
    "--seconds-launch", "30.0",
)


def _with_cid(args: tuple[str, ...], cid: str) -> tuple[str, ...]:
    return tuple("CID" if a == cid else a for a in args)


def test_core_renders_the_worker_call_as_before(make_controller) -> None:
    """The exact arguments the scaler built before WorkerCommand existed (golden values)."""
    c = make_controller(workers=4, wire="nng", garbage_collection=True, reset_environment=False, seconds_metrics=2,
                        metrics_dir="/tmp/m", seconds_idle=5, seconds_wall=7.5, tasks_max=3)
    call = c.launcher.call(worker=3, instance="aa9c59ea", url="tcp://127.0.0.1:5000")
    assert _with_cid(call.args, call.controller_id) == GOLDEN_NNG_ARGS
    assert call.command == WorkerCommand.from_args(call.args)
    assert (call.seconds_idle, call.seconds_wall, call.seconds_launch) == (5, 7.5, 30.0)


def test_core_renders_array_arguments_as_before(make_controller) -> None:
    c = make_controller(workers=4)
    call = c.launcher.call(worker=2, url="tcp://127.0.0.1:5000", batch=("k" * 64, "abcdef012345-", 4, 9))
    assert call.instance == "abcdef012345-4" and call.batch_index == 4
    assert _with_cid(call.array_args("SLURM_ARRAY_TASK_ID", 1), call.controller_id) == GOLDEN_ARRAY_ARGS


def test_a_controller_name_starting_with_a_dash_reaches_the_worker(make_controller) -> None:
    """``--controller -x`` made the worker's parser fail; the value now goes as ``--controller=-x``."""
    c = make_controller(workers=1, name="-dash")
    call = c.launcher.call(worker=1, url="tcp://127.0.0.1:9")
    env = {k: v for k, v in os.environ.items() if k != pycrew.TOKEN_ENV}
    proc = subprocess.run([sys.executable, *call.args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"{pycrew.TOKEN_ENV} is not set" in proc.stderr, (
        f"the worker did not get past parsing its arguments {call.args}:\n{proc.stderr}"
    )
    assert call.command.controller == "-dash"


# -- parsing: errors and tolerance ---------------------------------------------------------

BASE = ["--url", "tcp://127.0.0.1:9", "--instance", "ab12"]


def test_an_unknown_option_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown argument\(s\) --new-thing 1"):
        WorkerCommand.parse([*BASE, "--new-thing", "1"])


def test_a_tolerant_parse_ignores_unknown_options() -> None:
    command = WorkerCommand.parse([*BASE, "--new-thing", "1", "--controller-id", "c1"], strict=False)
    assert (command.instance, command.controller_id) == ("ab12", "c1")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--seconds-idle", "0"], "--seconds-idle: must be > 0"),
        (["--seconds-wall", "soon"], "--seconds-wall: must be a number of seconds"),
        (["--tasks-max", "0"], "--tasks-max: must be >= 1"),
        (["--transport", "carrier-pigeon"], "--transport: invalid choice"),
        (["--index-env", "IDX"], "instance (--instance) must be given, or else index_env"),
        (["--index-base", "1"], "index_base (--index-base) must come with index_env"),
        (["--seconds-spin", "2"], "--seconds-spin: must be from 0 to 1"),
        (["--seconds-spin", "-0.1"], "--seconds-spin: must be from 0 to 1"),
    ],
)
def test_an_invalid_option_is_an_error_naming_it(extra: list[str], expected: str) -> None:
    with pytest.raises(ValueError) as info:
        WorkerCommand.parse([*BASE, *extra])
    assert expected in str(info.value), str(info.value)


def test_a_missing_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="required: --url"):
        WorkerCommand.parse(["--instance", "ab12"])


def test_an_empty_instance_id_is_refused() -> None:
    with pytest.raises(ValueError, match=r"instance \(--instance\) must be a non-empty instance id, got ''"):
        WorkerCommand(url="tcp://h:1", instance="")


def test_arguments_that_run_something_else_are_not_a_command() -> None:
    with pytest.raises(ValueError, match="do not run the pycrew worker"):
        WorkerCommand.from_args(["-c", "print(1)", "--instance", "x"])


def test_an_array_element_without_its_index_says_which_variable() -> None:
    shared = WorkerCommand(url="tcp://h:1", index_env="MY_INDEX", instance_prefix="p-")
    with pytest.raises(ValueError, match="MY_INDEX is not set to an array index"):
        shared.resolve({"MY_INDEX": "two"})


@pytest.mark.parametrize(
    ("cmdline", "instance"),
    [
        (["/usr/bin/python3", "-m", "pycrew.worker", *BASE], "ab12"),
        (["python", "-u", "-X", "dev", "-m", "pycrew.worker", *BASE], "ab12"),
        (["python", "-P", "-m", "pycrew.worker", *BASE], "ab12"),  # the local launcher's (see pycrew.worker.import_path)
        (["python", "-mpycrew.worker", *BASE], "ab12"),
        (["python", "-m", "pycrew.worker", *BASE, "--garbage-collection", "--from-the-future", "x"], "ab12"),
        (["python", "-c", "import time", "-m", "pycrew.worker", *BASE], None),  # inline code, not a worker
        (["python", "script.py", "-m", "pycrew.worker", *BASE], None),
        (["python", "-m", "pycrew.workers", *BASE], None),
        (["python", "-m", "pycrew.worker", "--url", "tcp://h:1"], None),  # no instance: not readable
        (["python", "-m", "pycrew.worker"], None),
        ([], None),
    ],
)
def test_a_process_command_line_reads_back_only_when_it_runs_a_worker(cmdline: list[str], instance: str | None) -> None:
    command = WorkerCommand.from_cmdline(cmdline)
    assert (command.instance if command else None) == instance, cmdline


# -- WorkerCall ----------------------------------------------------------------------------

COMMAND = WorkerCommand(url="tcp://127.0.0.1:9", instance="ab12", worker=2, launcher="local", controller="c",
                        controller_id="cid", seconds_idle=5.0, seconds_wall=60.0, seconds_launch=20.0)


def _call(command: WorkerCommand = COMMAND, **batch: object) -> pycrew.WorkerCall:
    return pycrew.WorkerCall.from_command(command, python=sys.executable, env={}, token="t" * 64, name="w", **batch)


def test_a_call_carries_its_command_and_the_fields_agree() -> None:
    call = _call()
    assert call.command == COMMAND and call.args == COMMAND.args()
    got = (call.launcher, call.worker, call.instance, call.controller, call.controller_id)
    assert got == ("local", 2, "ab12", "c", "cid")
    assert (call.seconds_idle, call.seconds_wall, call.seconds_launch) == (5.0, 60.0, 20.0)


def test_changing_a_calls_command_changes_its_fields() -> None:
    call = _call().with_command(dataclasses.replace(COMMAND, seconds_launch=1.5, seconds_wall=math.inf))
    assert (call.seconds_launch, call.seconds_wall) == (1.5, math.inf)
    assert call.command.seconds_launch == 1.5 and "1.5" in call.args


def test_with_worker_arg_keeps_the_calls_fields_in_step() -> None:
    """Launchers read ``call.seconds_launch``; a test that shortens it through the arguments must change it."""
    call = with_worker_arg(_call(), "--seconds-launch", "1")
    assert call.seconds_launch == 1 and call.command.seconds_launch == 1
    assert call.args.count("--seconds-launch") == 1


def test_array_arguments_are_the_commands_array_form() -> None:
    call = _call(batch_key="k" * 64, batch_index=3, batch_size=5, instance_prefix="p-")
    expected = COMMAND.for_array("IDX", 0, instance_prefix="p-").args()
    assert call.array_args("IDX", 0) == expected


def _direct(args: tuple[str, ...], **fields: object) -> pycrew.WorkerCall:
    """A WorkerCall built field by field, as a launcher's test may (COMMAND's fields unless given)."""
    values: dict[str, object] = {"python": sys.executable, "env": {}, "token": "t" * 64, "name": "w", "launcher": "local",
                                 "worker": 2, "instance": "ab12", "controller": "c", "controller_id": "cid",
                                 "seconds_idle": 5.0, "seconds_wall": 60.0, "seconds_launch": 20.0}
    return pycrew.WorkerCall(args=args, **{**values, **fields})  # type: ignore[arg-type]


def test_a_call_built_directly_that_agrees_with_its_args_is_accepted() -> None:
    assert _direct(COMMAND.args()).command == COMMAND
    # Worker defaults on both sides: no --seconds-* in args, no seconds_* fields.
    plain = ("-m", "pycrew.worker", "--url", "tcp://127.0.0.1:9", "--instance", "ab12", "--worker", "2",
             "--launcher", "local", "--controller", "c", "--controller-id", "cid")
    call = pycrew.WorkerCall(args=plain, python=sys.executable, env={}, token="t", name="w", launcher="local", worker=2,
                             instance="ab12", controller="c", controller_id="cid")
    assert call.seconds_launch == call.command.seconds_launch == WorkerCommand.seconds_launch


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("seconds_launch", 300.0, "seconds_launch=300.0 but args say --seconds-launch 20.0"),
        ("seconds_wall", math.inf, "seconds_wall=inf but args say --seconds-wall 60.0"),
        ("instance", "other", "instance='other' but args say --instance 'ab12'"),
        ("worker", 3, "worker=3 but args say --worker 2"),
        ("controller_id", "x", "controller_id='x' but args say --controller-id 'cid'"),
    ],
)
def test_a_call_whose_fields_disagree_with_its_args_is_refused(field: str, value: object, says: str) -> None:
    with pytest.raises(ValueError, match="disagrees with its args") as built:
        _direct(COMMAND.args(), **{field: value})
    assert says in str(built.value) and "WorkerCall.from_command" in str(built.value), built.value
    with pytest.raises(ValueError, match="disagrees with its args"):
        dataclasses.replace(_call(), **{field: value})  # type: ignore[arg-type]


def test_a_call_whose_args_are_an_arrays_shared_command_is_refused() -> None:
    with pytest.raises(ValueError, match="a WorkerCall runs one worker"):
        _direct(COMMAND.for_array("IDX", instance_prefix="p-").args())


def test_a_call_running_something_else_is_not_checked() -> None:
    call = _direct(("-m", "no_such_module", "--seconds-launch", "1"), seconds_launch=99.0)
    with pytest.raises(ValueError, match="do not run the pycrew worker"):
        _ = call.command


def _stand_in(code: str = "pass", **batch: object) -> pycrew.WorkerCall:
    call = _call(**batch)
    return dataclasses.replace(call, args=("-c", code, *call.args[2:]))


def test_a_stand_ins_options_are_read_and_rendered_like_a_workers() -> None:
    stand_in = _stand_in("print(1)", batch_key="k", instance_prefix="p-")
    assert stand_in.command == COMMAND
    expected = COMMAND.for_array("IDX", 1, instance_prefix="p-").args()[2:]
    assert stand_in.array_args("IDX", 1) == ("-c", "print(1)", *expected)
    shorter = with_worker_arg(stand_in, "--seconds-launch", "1")
    assert shorter.args[:2] == ("-c", "print(1)") and shorter.seconds_launch == 1 == shorter.command.seconds_launch
    moved = stand_in.with_command(dataclasses.replace(COMMAND, url="tcp://127.0.0.1:10"))
    assert moved.args[:2] == ("-c", "print(1)") and moved.command.url == "tcp://127.0.0.1:10"


def test_a_stand_ins_fields_are_the_tests_own() -> None:
    stand_in = dataclasses.replace(_stand_in(), worker=9)
    assert (stand_in.worker, stand_in.command.worker) == (9, 2)


def test_a_stand_in_finds_its_instance_and_token_as_a_worker_does() -> None:
    """WHO_AM_I reads the options after its code: an array element derives instance and token from its index."""
    code = WHO_AM_I + "print(instance, token, names)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(pycrew.TOKEN_ENV)}

    def run(argv: list[str], environment: dict[str, str]) -> list[str]:
        out = subprocess.run(argv, env={**env, **environment}, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    calls = make_calls(code, 3, launcher="local")
    for call in calls:
        assert call.token == pycrew.WorkerCall.element_token(call.batch_key, call.instance)
        element = {**calls[0].array_environment(), "IDX": str(call.batch_index + 1)}
        assert run([call.python, *calls[0].array_args("IDX", 1)], element) == [call.instance, call.token, pycrew.TOKEN_ENV]
    (single,) = make_calls(code, 1, batch=False)
    assert run(single.argv, single.environment()) == [single.instance, single.token, pycrew.TOKEN_ENV]


def test_an_array_command_cannot_make_a_call() -> None:
    with pytest.raises(ValueError, match="runs one worker"):
        _call(COMMAND.for_array("IDX", instance_prefix="p-"))


def test_the_spin_option_renders_only_when_not_the_default_and_reaches_the_worker(make_controller) -> None:
    assert "--seconds-spin" not in WorkerCommand(url="tcp://h:1", instance="a").args()
    command = WorkerCommand(url="tcp://h:1", instance="a", seconds_spin=0)
    assert command.args()[-2:] == ("--seconds-spin", "0")
    assert WorkerCommand.from_args(command.args()).seconds_spin == 0
    with pytest.raises(ValueError, match="seconds_spin"):
        WorkerCommand(url="tcp://h:1", instance="a", seconds_spin=True)
    c = make_controller(workers=1, seconds_spin=0.002)
    assert WorkerCommand.from_args(c.launcher.call().args).seconds_spin == 0.002


@pytest.mark.parametrize("value", [-0.001, 1.5])
def test_a_controller_spin_out_of_range_is_an_options_error(value: float) -> None:
    with pytest.raises(pycrew.OptionsError, match="seconds_spin"):
        pycrew.controller("local", workers=1, seconds_spin=value)

"""How a batch of worker calls becomes arrays, a remainder plain job, names and tags."""

from __future__ import annotations

from typing import Any

import pytest

import pycrew
from pycrew_awsbatch import plan

KEY = "k" * 64
PREFIX = "abcdef012345-"


def worker_call(worker: int, instance: str, token: str = "t" * 64, **batch: Any) -> pycrew.WorkerCall:
    """A WorkerCall shaped like core's (``-m pycrew.worker --url ... --instance ... --worker ...``)."""
    command = pycrew.WorkerCommand(url="tcp://127.0.0.1:5555", instance=instance, worker=worker, launcher="awsbatch",
                                   controller="my controller!", controller_id="cid", seconds_wall=120)
    return pycrew.WorkerCall.from_command(
        command, python="python", env={"PYCREW_TLS_CA": "pem"}, token=token, name=f"w{worker}", **batch
    )


def batch_calls(n: int, slots: list[int] | None = None) -> list[pycrew.WorkerCall]:
    slots = slots or list(range(1, n + 1))
    return [
        worker_call(slots[k], f"{PREFIX}{k}", batch_key=KEY, batch_index=k, batch_size=n, instance_prefix=PREFIX)
        for k in range(n)
    ]


def instance_seen(sub: plan.Submission, index: int) -> str:
    """The instance id a worker of ``sub`` computes, as ``python -m pycrew.worker`` does."""
    args = list(sub.args)
    prefix = args[args.index("--instance-prefix") + 1]
    index_env = args[args.index("--index-env") + 1]
    base = int(args[args.index("--index-base") + 1])
    env = {**sub.env, plan.ARRAY_INDEX_ENV: str(index)} if sub.array else dict(sub.env)
    return f"{prefix}{int(env[index_env]) - base}"


@pytest.mark.parametrize(("n", "maximum", "sizes"), [
    (2, 10000, [(2, True)]),
    (5, 2, [(2, True), (2, True), (1, False)]),
    (10001, 10000, [(10000, True), (1, False)]),
    (20002, 10000, [(10000, True), (10000, True), (2, True)]),
    (7, 3, [(3, True), (3, True), (1, False)]),
])
def test_batches_become_arrays_of_2_to_max_and_a_plain_remainder(n: int, maximum: int, sizes: list[tuple[int, bool]]) -> None:
    calls = batch_calls(n)
    units = plan.plan(calls, maximum)
    assert len(units) == 1 and units[0].secret == KEY
    subs = units[0].submissions
    assert [(s.size, s.array) for s in subs] == sizes
    flat = [c for s in subs for c in s.calls]
    assert flat == calls, "every call exactly once, in order"
    for sub in subs:
        assert "PYCREW_TOKEN" not in sub.env and KEY not in " ".join(sub.args) and KEY not in str(sub.env)
        for i, call in enumerate(sub.calls):
            assert instance_seen(sub, i) == call.instance, f"element {i} of the array at offset {sub.offset}"


def test_single_call_is_a_plain_job_with_its_own_args_and_token() -> None:
    call = worker_call(3, "0123456789abcdef", token="own-token", batch_key=KEY, batch_index=0, batch_size=1, instance_prefix=PREFIX)
    [unit] = plan.plan([call], 10000)
    [sub] = unit.submissions
    assert (sub.array, sub.args, unit.secret) == (False, call.args, "own-token")
    assert "own-token" not in repr(unit)


def test_calls_without_a_common_batch_key_are_separate_units() -> None:
    calls = [worker_call(1, "a" * 16, token="t1"), worker_call(2, "b" * 16, token="t2")]
    units = plan.plan(calls, 10000)
    assert [(u.secret, u.submissions[0].calls) for u in units] == [("t1", (calls[0],)), ("t2", (calls[1],))]


def test_env_with_token_is_refused() -> None:
    call = worker_call(1, "a" * 16)
    bad = pycrew.WorkerCall(**{**call.__dict__, "env": {"PYCREW_TOKEN": "x"}})
    with pytest.raises(ValueError, match="PYCREW_TOKEN"):
        plan.plan([bad], 10)


def test_tags_name_controller_batch_and_each_childs_slot() -> None:
    calls = batch_calls(4, slots=[1, 2, 3, 7])
    [unit] = plan.plan(calls, 10000)
    tags = plan.submission_tags("awsbatch", "cid", "my controller!", unit, unit.submissions[0])
    assert tags == {
        "pycrew:launcher": "awsbatch", "pycrew:controller-id": "cid", "pycrew:controller": "my controller_",
        "pycrew:batch": unit.key, "pycrew:instance-prefix": PREFIX, "pycrew:index-offset": "0",
        "pycrew:workers": "1-3,7",
    }
    assert plan.decode_slots(tags["pycrew:workers"]) == [1, 2, 3, 7]
    assert plan.decode_slots("garbage") == []


def test_job_names_follow_aws_rules_and_are_unique_per_submission() -> None:
    [unit] = plan.plan(batch_calls(5), 2)
    names = [plan.job_name("my controller!/ü" + "x" * 200, unit, i) for i in range(3)]
    assert len(set(names)) == 3
    for name in names:
        assert len(name) <= 128 and name[0].isalnum() and all(ch.isalnum() or ch in "-_" for ch in name), name
    assert plan.job_name("", unit, 0).startswith("pycrew-abcdef012345-")
    again = plan.plan(batch_calls(5), 2)[0]
    assert again.key != unit.key, "each launch of the same calls needs its own secret name"


def test_a_calls_seconds_wall_is_its_worker_commands() -> None:
    call = worker_call(1, "a")
    assert call.seconds_wall == call.command.seconds_wall == 120

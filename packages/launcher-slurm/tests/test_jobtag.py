"""The job tag: round trip, foreign comments, and cutting a batch into arrays."""

from __future__ import annotations

import pytest
from pycrew_slurm import jobtag
from slurm_helpers import make_calls


def test_tag_round_trips_with_awkward_controller_names() -> None:
    calls = make_calls("pass", 3, controller_id="c;=,%1", controller="my ctl; a=b,c #x")
    tag = jobtag.encode("c;=,%1", "my ctl; a=b,c #x", calls)
    assert " " not in tag and "#" not in tag, "a tag must be safe inside an #SBATCH line"
    decoded = jobtag.decode(tag)
    assert decoded is not None
    assert decoded.controller_id == "c;=,%1"
    assert decoded.controller == "my ctl; a=b,c #x"
    assert decoded.workers == tuple((c.worker, c.instance) for c in calls)
    assert decoded.element(2) == (2, calls[1].instance)
    assert decoded.element(4) is None


@pytest.mark.parametrize("text", ["", "my own comment", "pycrew", "pycrew:1;garbage", "pycrew:1;c=x;w=a.b"])
def test_foreign_comments_are_not_tags(text: str) -> None:
    assert jobtag.decode(text) is None


def test_split_respects_the_array_limit() -> None:
    calls = make_calls("pass", 5)
    chunks = jobtag.split_calls(calls, array_max=2, tag_max=1000)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [c for chunk in chunks for c in chunk] == calls, "order must be kept"


def test_split_keeps_every_tag_within_the_limit() -> None:
    calls = make_calls("pass", 120)
    chunks = jobtag.split_calls(calls, array_max=1000, tag_max=1000)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(jobtag.encode(chunk[0].controller_id, chunk[0].controller, chunk)) <= 1000
    assert [c for chunk in chunks for c in chunk] == calls


def test_split_refuses_a_tag_that_can_never_fit() -> None:
    calls = make_calls("pass", 1, controller_id="x" * 2000)
    with pytest.raises(ValueError, match=r"longer|more than"):
        jobtag.split_calls(calls, array_max=10, tag_max=1000)

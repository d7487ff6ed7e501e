"""The job tag: round trip, foreign comments, and cutting a batch into arrays."""

from __future__ import annotations

import dataclasses

import pytest

from pycrew.scheduler import jobtag
from pycrew.testing.scheduler_calls import make_calls


@pytest.mark.parametrize("batch", [True, False])
def test_tag_round_trips_with_awkward_controller_names(batch: bool) -> None:
    n = 3 if batch else 1
    calls = make_calls("pass", n, controller_id="c;=,%1", controller="my ctl; a=b,c #x", batch=batch)
    tag = jobtag.encode(calls)
    assert " " not in tag and "#" not in tag, "a tag must be safe inside an #SBATCH line"
    decoded = jobtag.decode(tag)
    assert decoded is not None
    assert decoded.controller_id == "c;=,%1"
    assert decoded.controller == "my ctl; a=b,c #x"
    assert decoded.workers == tuple((c.worker, c.instance) for c in calls)
    assert decoded.element(n) == (n, calls[-1].instance)
    assert decoded.element(n + 1) is None


def test_array_tag_holds_slot_ranges_not_instances() -> None:
    calls = make_calls("pass", 5, first_slot=3)
    calls[4] = dataclasses.replace(calls[4], worker=9)
    tag = jobtag.encode(calls)
    assert tag.endswith(f";p={calls[0].instance_prefix};o=0;w=3-6,9"), tag
    decoded = jobtag.decode(tag)
    assert decoded is not None and [w for w, _ in decoded.workers] == [3, 4, 5, 6, 9]


def test_slots_text() -> None:
    assert jobtag.slots_text([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert jobtag.slots_text([]) == ""


@pytest.mark.parametrize(
    "text",
    [
        "", "my own comment", "pycrew", "pycrew:1;garbage", "pycrew:1;c=x;w=a.b",
        "pycrew:1;c=x;p=a-;o=0;w=1-999999999", "pycrew:1;c=x;p=a-;o=x;w=1", "pycrew:1;c=x;p=a-;o=0;w=5-2",
    ],
)
def test_foreign_comments_are_not_tags(text: str) -> None:
    assert jobtag.decode(text) is None


def test_calls_without_batch_key_go_one_per_array() -> None:
    calls = make_calls("pass", 3, batch=False)
    assert jobtag.split_calls(calls, array_max=10, tag_max=1000) == [[c] for c in calls]
    with pytest.raises(ValueError, match="one per array"):
        jobtag.encode(calls)


def test_split_respects_the_array_limit() -> None:
    calls = make_calls("pass", 5)
    chunks = jobtag.split_calls(calls, array_max=2, tag_max=1000)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [c for chunk in chunks for c in chunk] == calls, "order must be kept"


def test_a_contiguous_batch_of_a_thousand_fits_one_tag() -> None:
    calls = make_calls("pass", 1000)
    assert [len(c) for c in jobtag.split_calls(calls, array_max=1000, tag_max=1000)] == [1000]


def test_split_keeps_every_tag_within_the_limit() -> None:
    calls = [dataclasses.replace(c, worker=2 * c.worker) for c in make_calls("pass", 400)]  # no ranges
    chunks = jobtag.split_calls(calls, array_max=1000, tag_max=300)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(jobtag.encode(chunk)) <= 300
        decoded = jobtag.decode(jobtag.encode(chunk))
        assert decoded is not None and decoded.workers == tuple((c.worker, c.instance) for c in chunk)
    assert [c for chunk in chunks for c in chunk] == calls
    assert len(jobtag.encode(chunks[0] + chunks[1][:1])) > 300, "each array is as long as the tag allows"


def test_split_refuses_a_tag_that_can_never_fit() -> None:
    for batch in (True, False):
        calls = make_calls("pass", 1, controller_id="x" * 2000, batch=batch)
        with pytest.raises(ValueError, match=r"longer|more than"):
            jobtag.split_calls(calls, array_max=10, tag_max=1000)

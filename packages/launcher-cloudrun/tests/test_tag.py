"""The execution tag: what the monitor reads to tell pycrew's executions and their workers."""

from __future__ import annotations

import pytest

from pycrew_cloudrun import tag


def test_array_tag_round_trips_with_offset() -> None:
    t = tag.array_tag("c0ffee", "my;controller=x", "ab12-", [3, 1, 2], offset=4)
    back = tag.decode(t.encode())
    assert back == t
    assert [back.instance_of(k) for k in range(4)] == ["ab12-4", "ab12-5", "ab12-6", None]
    assert [back.slot_of(k) for k in range(3)] == [3, 1, 2]


def test_single_tag_round_trips() -> None:
    t = tag.single_tag("c0ffee", "name", "0123456789abcdef", 2)
    back = tag.decode(t.encode())
    assert back == t and back.instance_of(0) == "0123456789abcdef" and back.slot_of(0) == 2
    assert back.instance_of(1) is None


@pytest.mark.parametrize(
    "text",
    ["", "hello", "pycrew:1;c=x", "pycrew:1;c=x;p=a;i=b;w=1", "pycrew:1;c=x;p=a;w=one", "pycrew:1;c=x;i=a;w=", "pycrew:1;c;w=1"],
)
def test_foreign_or_broken_tags_are_not_pycrews(text: str) -> None:
    assert tag.decode(text) is None


def test_long_names_are_cut_and_separators_encoded() -> None:
    text = tag.single_tag("id", "n" * 200 + ";,=", "i", 1).encode()
    assert text.count(";") == 4 and len(text) < 120

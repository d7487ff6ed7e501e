"""Reading the last lines of a log file from its end (pycrew.log_tail)."""

from __future__ import annotations

import random

import pytest

from pycrew import log_tail
from pycrew.log_tail import read_last_lines


def _whole(data: bytes, lines: int | None) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if lines is None else "".join(text.splitlines(keepends=True)[-lines:]) if lines else ""


@pytest.mark.parametrize("seed", range(30))
def test_the_last_lines_are_those_of_the_whole_text(tmp_path, monkeypatch, seed):
    """Random files of short and long lines, \\n, \\r\\n, \\r and multi-byte characters cut
    across blocks (blocks of 7 to 300 bytes here), with or without a final newline."""
    rng = random.Random(seed)
    monkeypatch.setattr(log_tail, "BLOCK_BYTES", rng.randint(7, 300))
    pieces = ["a", "bb", "é", "日本", "\n", "\r\n", "\r", "x" * 50, "\u2028", "\n\n"]
    data = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 400))).encode()
    if rng.random() < 0.3:
        data += b"\xff\xfe broken"
    path = tmp_path / "worker.log"
    path.write_bytes(data)
    for lines in (None, 0, 1, 2, 3, 10, 100, 10_000):
        assert read_last_lines(path, lines) == _whole(data, lines), (lines, data)


def test_a_few_lines_of_a_large_file_read_only_its_end(tmp_path, monkeypatch):
    path = tmp_path / "big.log"
    path.write_bytes(b"line of output\n" * 700_000)  # 10 MB
    read: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def seek(self, *args):
            return self.f.seek(*args)

        def read(self, size=-1):
            data = self.f.read(size)
            read.append(len(data))
            return data

    monkeypatch.setattr(log_tail, "open", lambda p, mode: Counting(real_open(p, mode)), raising=False)
    assert read_last_lines(path, 3) == "line of output\n" * 3
    assert sum(read) <= log_tail.BLOCK_BYTES, read


def test_bad_arguments_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="lines must be 0 or more"):
        read_last_lines(tmp_path / "x", -1)
    with pytest.raises(FileNotFoundError):
        read_last_lines(tmp_path / "missing.log", 5)
    (tmp_path / "empty.log").write_bytes(b"")
    assert read_last_lines(tmp_path / "empty.log", 5) == ""

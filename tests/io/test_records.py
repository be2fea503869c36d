"""RecordBatch: text byte counts stay exact for slices, and split keeps every unit once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from poisonscan.io.records import RecordBatch, Shape


def batch(texts: list[str]) -> RecordBatch:
    n = len(texts)
    return RecordBatch("p", Shape.TEXT, np.arange(n, dtype=np.int64), pa.nulls(n, pa.string()),
                       text=pa.array(texts, pa.large_string()))


def test_nbytes_of_slices() -> None:
    texts = ["a", "ßß", "", "漢字", "🙂"]
    b = batch(texts)
    assert b.nbytes == sum(len(t.encode()) for t in texts)
    for start in range(5):
        for length in range(6 - start):
            part = b.slice(start, length)
            assert part.nbytes == sum(len(t.encode()) for t in texts[start:start + length])


def test_nbytes_paired_and_split() -> None:
    n = 10
    b = RecordBatch("p", Shape.PREFERENCE, np.arange(n, dtype=np.int64), pa.nulls(n, pa.string()),
                    prompt=pa.array(["pp"] * n, pa.large_string()),
                    response=pa.array(["r"] * n, pa.large_string()),
                    rejected=pa.array(["xyz"] * n, pa.large_string()),
                    turn=np.zeros(n, np.int32))
    assert b.nbytes == 60
    parts = list(b.split(3))
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert sum(p.nbytes for p in parts) == 60
    assert np.concatenate([p.row for p in parts]).tolist() == list(range(n))
    assert parts[-1].turn is not None and parts[-1].line is None

"""prefetch keeps order, hands errors over after the items before them, and stops when abandoned."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from io_fixtures import read_all

from poisonscan.errors import InputError
from poisonscan.io.prefetch import prefetch
from poisonscan.io.readers import ReadCounter, ReadOptions, discover_inputs, plan_shards, read_shard


def test_order_and_error_position() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_abandoned_reader_stops_its_thread(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(500)))
    before = threading.active_count()
    shard = plan_shards(discover_inputs([str(path)]), ReadOptions())[0]
    batches = read_shard(shard, ReadOptions(batch_rows=2), ReadCounter())
    next(batches)
    batches.close()
    assert threading.active_count() == before


def test_first_error_in_file_order_wins(tmp_path: Path, small_blocks: None) -> None:
    # a converter-level error (line 3) comes before a parse error in a later block (line 40)
    lines = [json.dumps({"text": "ok"})] * 50
    lines[2] = json.dumps({"text": 5})
    lines[39] = "{broken"
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.location == "line 3" and info.value.reason == "wrong_type"

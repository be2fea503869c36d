"""prefetch and ordered_map keep order, hand errors over after the items before them, bound how
far they run ahead, and stop their threads when abandoned."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from io_fixtures import read_all

from poisonscan.errors import InputError
from poisonscan.io.prefetch import ordered_map, prefetch
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


def test_ordered_map_keeps_order_when_later_items_finish_first() -> None:
    def slow_for_small(x: int) -> int:
        time.sleep(0.002 * (10 - x % 10))
        return x * x

    got = list(ordered_map(slow_for_small, iter(range(40)), workers=3, ahead=4))
    assert got == [x * x for x in range(40)]


def test_ordered_map_raises_in_order() -> None:
    def fn(x: int) -> int:
        if x == 5:
            raise ValueError("bad item 5")
        time.sleep(0.01 if x < 5 else 0)  # later items finish before the failing one
        return x

    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        for x in ordered_map(fn, iter(range(10)), workers=3, ahead=4):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_ordered_map_hands_over_an_error_of_the_items_last() -> None:
    def items() -> Iterator[int]:
        yield from range(6)
        raise OSError("read failed")

    got = []
    with pytest.raises(OSError, match="read failed"):
        for x in ordered_map(lambda x: x + 1, items(), workers=2, ahead=3):
            got.append(x)
    assert got == [1, 2, 3, 4, 5, 6]


def test_ordered_map_draws_at_most_ahead_items() -> None:
    drawn = []

    def items() -> Iterator[int]:
        for i in range(100):
            drawn.append(i)
            yield i

    results = ordered_map(lambda x: x, items(), workers=2, ahead=3)
    for k in range(5):
        assert next(results) == k
        time.sleep(0.05)  # give the feeder every chance to run ahead
        assert len(drawn) <= k + 1 + 3
    results.close()


def test_ordered_map_close_stops_its_threads() -> None:
    before = threading.active_count()
    results = ordered_map(lambda x: x, iter(range(1000)), workers=3, ahead=4)
    assert next(results) == 0
    results.close()
    assert threading.active_count() == before


def test_ordered_map_close_wakes_a_feeder_waiting_for_room(monkeypatch: pytest.MonkeyPatch) -> None:
    # A feeder blocked on a full window used to notice the close only at its next poll (0.1 s:
    # paid by every shard of lines that stops reading early); it must not wait for one at all.
    import poisonscan.io.prefetch as prefetch_module

    monkeypatch.setattr(prefetch_module, "_POLL_SECONDS", 3600.0)
    results = ordered_map(lambda x: x, iter(range(1000)), workers=1, ahead=1)
    assert next(results) == 0
    time.sleep(0.05)  # the feeder has drawn its one item ahead and waits for room
    closer = threading.Thread(target=results.close, daemon=True)
    closer.start()
    closer.join(timeout=30)
    assert not closer.is_alive()

"""How shard work is cut into tasks and how plans travel: grouped small shards, sparse plans."""

from __future__ import annotations

import functools
import json
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from engine_corpus import clusters, comparable, config, corpus_records, write_shards

from poisonscan.engine import scan as engine
from poisonscan.engine.executors import SparsePickled
from poisonscan.engine.scan import group_shards, run_scan
from poisonscan.io.discover import InputFile
from poisonscan.io.shards import Shard


def _shards(sizes: list[int]) -> list[Shard]:
    return [Shard(InputFile(f"f{i:04d}.jsonl", "jsonl", None, size))
            for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "slots", "tasks"),
    [
        ([64 << 20] * 6, 2, 6),  # large shards: one task each
        ([1000] * 8, 2, 8),  # no more shards than 4 tasks per slot: one task each
        ([1000] * 1000, 2, 8),  # tiny shards: 4 tasks per slot
        ([1000] * 1000, 16, 64),
        ([1 << 20] * 1000, 2, 126),  # 1000 MB: about 8 MB per task, a multiple of the slots
        ([10, 10, 10, 5 << 20, 10, 10, 10, 10, 10, 10], 1, 2),  # runs of similar bytes
    ],
)
def test_small_shards_are_grouped_into_runs(sizes: list[int], slots: int, tasks: int) -> None:
    shards = _shards(sizes)
    groups = group_shards(shards, slots)
    assert len(groups) == tasks
    assert [s for g in groups for s in g] == shards  # every shard once, in order
    assert all(groups)


def test_a_parquet_files_shards_share_its_size() -> None:
    f = InputFile("big.parquet", "parquet", None, 40 << 20)
    shards = [Shard(f, i, (i,), 1000 * i) for i in range(20)] + _shards([1000] * 20)
    groups = group_shards(shards, 1)
    # 40 MB over 20 shards is 2 MB a shard: runs of three or four (6 to 8 MB) take six tasks,
    # and the tiny files join the last run.
    assert len(groups) == 6
    assert all(len(g) in (3, 4) for g in groups[:-1])
    assert groups[-1][-20:] == tuple(shards[20:])


def test_grouped_tasks_give_the_findings_of_one_task_per_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, _ = corpus_records()
    write_shards(tmp_path, records, 40)
    assert len(group_shards(engine.plan_shards(
        engine.discover_inputs((str(tmp_path),)), engine.read_options(config(tmp_path))), 2)) == 8
    grouped = run_scan(config(tmp_path, jobs=2))
    in_process = run_scan(config(tmp_path, jobs=1))
    monkeypatch.setattr(engine, "TASKS_PER_SLOT", 1 << 40)  # one task per shard
    each = run_scan(config(tmp_path, jobs=2))
    assert comparable(grouped) == comparable(each) == comparable(in_process)
    assert clusters(grouped) == clusters(each)
    assert grouped.stats["shards"] == each.stats["shards"] == 40
    assert [i.records for i in grouped.inputs] == [i.records for i in each.inputs]


@dataclass(frozen=True)
class _Plan:
    table: np.ndarray
    counts: np.ndarray
    weights: np.ndarray
    name: str


def _roundtrip(value: object, out_of_band: bool) -> tuple[object, int]:
    buffers: list[pickle.PickleBuffer] = []
    if out_of_band:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    else:
        data = pickle.dumps(value, protocol=5)
    size = len(data) + sum(memoryview(b).nbytes for b in buffers)
    return pickle.loads(data, buffers=buffers), size


@pytest.mark.parametrize("out_of_band", [True, False])
def test_sparse_pickled_plans_are_exact_and_small(out_of_band: bool) -> None:
    rng = np.random.default_rng(5)
    table = np.zeros(1 << 24, np.uint8)  # 16 MB, 0.1% used: travels as pairs
    table[rng.integers(0, table.size, 16_000)] = rng.integers(1, 255, 16_000)
    counts = rng.integers(0, 9, 1 << 19).astype(np.uint32)  # mostly non-zero: travels dense
    weights = np.zeros(1 << 18)  # floats travel as they are (-0.0 and NaN stay exact)
    weights[3] = -0.0
    weights[5] = np.nan
    plan = _Plan(table, counts, weights, "p")
    back, size = _roundtrip(SparsePickled(plan), out_of_band)
    assert isinstance(back, SparsePickled)
    # Unpacked on first read, once, whichever of several threads reads first.
    with ThreadPoolExecutor(4) as pool:
        reads = list(pool.map(lambda _: back.value, range(8)))
    got = back.value
    assert all(r is got for r in reads)
    assert isinstance(got, _Plan) and got.name == "p"
    for name in ("table", "counts", "weights"):
        want, have = getattr(plan, name), getattr(got, name)
        assert have.dtype == want.dtype and have.shape == want.shape
        assert have.tobytes() == want.tobytes()
    assert got.table.flags.writeable
    assert size < counts.nbytes + weights.nbytes + table.nbytes // 50
    # A received copy is sent on as it came (no second encoding), and still decodes exactly.
    again, size_again = _roundtrip(back, out_of_band)
    forwarded, _ = _roundtrip(_roundtrip(again, out_of_band)[0], out_of_band)  # never read between
    assert forwarded.value.counts.tobytes() == counts.tobytes()
    assert isinstance(again, SparsePickled)
    assert again.value.table.tobytes() == table.tobytes()
    assert size_again == size


def test_sparse_pickled_keeps_shapes_and_small_arrays() -> None:
    grid = np.zeros((1024, 1024), np.int64)
    grid[7, 9] = -3
    small = np.arange(10, dtype=np.uint16)
    back, size = _roundtrip(SparsePickled({"grid": grid, "small": small, "n": 3}), True)
    assert isinstance(back, SparsePickled)
    assert back.value["grid"].shape == (1024, 1024) and back.value["grid"][7, 9] == -3
    assert np.count_nonzero(back.value["grid"]) == 1
    assert back.value["small"].tolist() == list(range(10)) and back.value["n"] == 3
    assert size < 4096


def test_a_json_lines_file_cut_into_shards_gives_the_findings_of_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, _ = corpus_records()
    path = tmp_path / "all.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    whole = run_scan(config(path, jobs=1))
    assert whole.stats["shards"] == 1
    plan = engine.plan_shards
    monkeypatch.setattr(engine, "plan_shards", functools.partial(
        plan, shard_bytes=path.stat().st_size // 7))
    cut = run_scan(config(path, jobs=2))
    in_process = run_scan(config(path, jobs=1))
    assert cut.stats["shards"] == in_process.stats["shards"] >= 7
    for result in (cut, in_process):
        result.stats["shards"] = 1
        assert comparable(result) == comparable(whole)
        assert clusters(result) == clusters(whole)
    assert any(f.severity == "high" for f in whole.findings)

    # With --state every shard of lines keeps its results: a second scan reuses them all.
    first = run_scan(config(path, jobs=2, state_dir=str(tmp_path / "state")))
    again = run_scan(config(path, jobs=2, state_dir=str(tmp_path / "state")))
    n = first.stats["shards"]
    assert n >= 7
    assert [(r, c) for _, r, c in again.artifacts["state"].passes] == [(n, 0)] * len(
        again.artifacts["state"].passes)
    assert comparable(again) == comparable(first)


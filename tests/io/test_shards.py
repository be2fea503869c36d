"""Shards and the text-size estimate that sizes the count tables before the first pass."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from poisonscan.config import ScanConfig
from poisonscan.detectors.trigger import BIGRAMS_PER_BYTE, TriggerDetector
from poisonscan.engine.scan import read_options
from poisonscan.io.discover import discover_inputs
from poisonscan.io.shards import EXPANSION, estimate_text_bytes, plan_shards


def _records(n: int = 3000, seed: int = 1) -> list[dict[str, str]]:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    return [{"id": f"doc-{i}",
             "text": " ".join(rng.choice(words) for _ in range(rng.randint(50, 400))),
             "meta": "x" * rng.randint(500, 1500)}  # a column the scan never reads
            for i in range(n)]


def _write(folder: Path, records: list[dict[str, str]], files: int, **options: object) -> Path:
    folder.mkdir()
    for k in range(files):
        part = records[k::files]
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{k:03d}.parquet",
                       row_group_size=200, **options)
    return folder


def _shards(path: Path) -> list:
    config = ScanConfig(paths=(str(path),))
    return plan_shards(discover_inputs(config.paths), read_options(config))


def test_parquet_shards_know_the_uncompressed_size_of_the_columns_read(tmp_path: Path) -> None:
    records = _records(600)
    folder = _write(tmp_path / "one", records, 1, compression="zstd")
    shards = _shards(folder)
    meta = pq.ParquetFile(next(folder.iterdir())).metadata
    chunks = [meta.row_group(g).column(j) for g in range(meta.num_row_groups)
              for j in range(meta.num_columns)]
    read = sum(c.total_uncompressed_size for c in chunks if c.path_in_schema in ("id", "text"))
    text = sum(len(r["text"].encode()) for r in records)
    ids = sum(len(r["id"]) for r in records)
    # The read columns' values (the unread "meta" column is not counted), with their 4-byte
    # lengths, less the statistics' copies of the smallest and largest value.
    data = sum(s.data_bytes for s in shards)
    assert data == estimate_text_bytes(shards)
    assert text + ids < data < read < 1.1 * (text + ids)


def test_json_inputs_are_estimated_from_their_size_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(50)))
    shards = _shards(path)
    assert [s.data_bytes for s in shards] == [0]
    assert estimate_text_bytes(shards) == path.stat().st_size
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert estimate_text_bytes(_shards(gz)) == EXPANSION["gz"] * gz.stat().st_size


def test_the_same_records_get_the_same_tables_however_they_are_stored(tmp_path: Path) -> None:
    """One file or 40, snappy, zstd or no compression: about the same estimate (compressed
    sizes differ several-fold), and the trigger detector sizes its tables and its bigram sample
    the same, with a budget small enough to need a sample."""
    records = _records()
    layouts = {
        "one-snappy": _write(tmp_path / "a", records, 1),
        "forty-zstd": _write(tmp_path / "b", records, 40, compression="zstd"),
        "two-plain": _write(tmp_path / "c", records, 2, compression="none"),
    }
    estimates = {name: estimate_text_bytes(_shards(path)) for name, path in layouts.items()}
    assert max(estimates.values()) < 1.02 * min(estimates.values()), estimates
    disk = {name: sum(f.stat().st_size for f in path.iterdir()) for name, path in layouts.items()}
    assert max(disk.values()) > 1.5 * min(disk.values()), disk  # what the old estimate used

    sizing = set()
    for name, path in layouts.items():
        config = ScanConfig(paths=(str(path),), memory_budget="64MiB")
        det = TriggerDetector(config)
        # As if the corpus were 40 times larger (these records alone fit the smallest tables).
        det.expect(discover_inputs(config.paths), 40 * estimates[name])
        sizing.add((det.uni_bits, det.bi_bits, det.bi_keep, det.window, det.back))
    assert len(sizing) == 1, sizing
    (_, _, keep, window, _), = sizing
    assert keep < 2**32 and window > 32  # the budget forced a bigram sample


@pytest.mark.parametrize("quarters", range(8))
def test_the_bigram_sample_moves_in_quarter_octave_steps(quarters: int) -> None:
    config = ScanConfig(paths=("unused",), memory_budget="64MiB")
    room = 0.25 * (1 << TriggerDetector(config).bi_bits)
    # Anywhere inside one step of the expected bigrams, the same sample.
    keeps = set()
    for inside in (0.05, 0.5, 0.95):
        expected = room * 2 ** ((quarters + inside) / 4)
        d = TriggerDetector(config)
        d.expect([], expected / BIGRAMS_PER_BYTE)
        keeps.add(d.bi_keep)
    assert len(keeps) == 1
    assert abs(keeps.pop() / 2**32 - 2 ** (-(quarters + 1) / 4)) < 1e-6


def test_nested_columns_count_with_their_field(tmp_path: Path) -> None:
    """A chat file's text sits in leaves below ``messages`` (messages.list.element.content):
    they count, an unread column beside them does not."""
    rows = [{"messages": [{"role": "user", "content": f"question {i} " * 200},
                          {"role": "assistant", "content": f"reply {i} " * 300}],
             "meta": f"{i} " * 2000} for i in range(100)]
    path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    [shard] = _shards(path)
    content = sum(len(m["content"]) for r in rows for m in r["messages"])
    assert content < shard.data_bytes < 1.1 * content  # roles repeat: a dictionary of two
    assert estimate_text_bytes([shard]) == shard.data_bytes

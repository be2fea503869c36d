"""Fixture writers for the io tests, and a helper that reads inputs through the public API.

Named uniquely (not ``helpers``) because pytest puts each test folder on ``sys.path``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from poisonscan.io.readers import (
    ReadCounter,
    ReadOptions,
    RecordBatch,
    discover_inputs,
    plan_shards,
    read_shard,
)


def compress(data: bytes, compression: str | None) -> bytes:
    """``data`` compressed as gz, zst or not at all."""
    if compression == "gz":
        return gzip.compress(data)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def write_jsonl(path: Path, records: list[Any], compression: str | None = None) -> Path:
    """Write records as JSON Lines (compressed according to ``compression``)."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(compress(data, compression))
    return path


def write_json_array(path: Path, records: list[Any], compression: str | None = None) -> Path:
    """Write records as one pretty-printed top-level JSON array."""
    data = json.dumps(records, ensure_ascii=False, indent=2).encode()
    path.write_bytes(compress(data, compression))
    return path


def write_parquet(path: Path, records: list[dict[str, Any]], **kwargs: Any) -> Path:
    """Write records as Parquet."""
    pq.write_table(pa.Table.from_pylist(records), path, **kwargs)
    return path


@dataclass
class Read:
    """Everything read from some inputs, flattened to Python values per field."""

    batches: list[RecordBatch]
    counter: ReadCounter
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[Any]:
        return self.columns[name]


def read_all(*paths: Path | str, **options: Any) -> Read:
    """Read every shard of ``paths`` with ``ReadOptions(**options)``; counters merged."""
    opts = ReadOptions(**options)
    files = discover_inputs([str(p) for p in paths])
    counter = ReadCounter()
    batches: list[RecordBatch] = []
    for shard in plan_shards(files, opts):
        c = ReadCounter(path=shard.file.path)
        batches.extend(read_shard(shard, opts, c))
        counter.merge(c)
    columns: dict[str, list[Any]] = {}
    for name in ("row", "id", "text", "prompt", "response", "rejected", "turn", "line"):
        values: list[Any] = []
        present = False
        for b in batches:
            arr = getattr(b, name)
            if arr is None:
                continue
            present = True
            values.extend(arr.tolist() if hasattr(arr, "tolist") else arr.to_pylist())
        if present:
            columns[name] = values
    return Read(batches, counter, columns)

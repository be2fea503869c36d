"""Input discovery and streaming readers (public API used by the engine).

MINIMAL FIRST VERSION: text-only Parquet and uncompressed JSONL. The io work replaces the internals;
the public names below (InputFile, Shard, ReadOptions, ReadCounter, discover_inputs, plan_shards,
read_shard) are the contract the engine relies on.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from poisonscan.errors import InputError
from poisonscan.io.records import RecordBatch, Shape


@dataclass(frozen=True)
class InputFile:
    """One input file. ``format`` is ``jsonl``, ``json`` or ``parquet``; ``compression`` gz/zst/None."""

    path: str
    format: str
    compression: str | None
    size: int


@dataclass(frozen=True)
class Shard:
    """A unit of work: a whole file, or a range of a Parquet file's row groups."""

    file: InputFile
    index: int = 0  # shard number within the file
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


@dataclass(frozen=True)
class ReadOptions:
    shape: Shape | None = None
    text_field: str | None = None
    id_field: str | None = None
    skip_bad_records: bool = False
    max_record_bytes: int = 64 * 2**20
    batch_rows: int = 4096


@dataclass
class ReadCounter:
    """What a reader saw in one shard: records read, and records skipped per reason."""

    path: str = ""
    records: int = 0
    bytes: int = 0
    skipped: Counter = field(default_factory=Counter)
    shape: str | None = None

    def merge(self, other: ReadCounter) -> None:
        self.records += other.records
        self.bytes += other.bytes
        self.skipped.update(other.skipped)
        self.shape = self.shape or other.shape


def discover_inputs(paths: Sequence[str]) -> list[InputFile]:
    out = []
    for p in paths:
        cands = sorted(glob.glob(p, recursive=True)) if any(c in p for c in "*?[") else [p]
        for c in cands:
            if os.path.isdir(c):
                for root, _, files in os.walk(c):
                    for f in sorted(files):
                        if f.endswith((".parquet", ".jsonl")):
                            fp = os.path.join(root, f)
                            out.append(_input_file(fp))
            elif os.path.exists(c):
                out.append(_input_file(c))
            else:
                raise InputError(c, "no such file or directory", reason="missing")
    return sorted(out, key=lambda f: f.path)


def _input_file(path: str) -> InputFile:
    fmt = "parquet" if path.endswith(".parquet") else "jsonl"
    return InputFile(path, fmt, None, os.path.getsize(path))


def plan_shards(files: Sequence[InputFile], options: ReadOptions) -> list[Shard]:
    return [Shard(f) for f in files]


def read_shard(shard: Shard, options: ReadOptions, counter: ReadCounter) -> Iterator[RecordBatch]:
    f = shard.file
    if f.format == "parquet":
        pf = pq.ParquetFile(f.path)
        cols = ["text"] + (["id"] if "id" in pf.schema_arrow.names else [])
        batches = pf.iter_batches(batch_size=options.batch_rows, columns=cols)
    else:
        batches = pajson.read_json(f.path).to_batches(options.batch_rows)
    row = 0
    for rb in batches:
        n = rb.num_rows
        text = rb.column(rb.schema.get_field_index("text")).cast(pa.large_string())
        idx = rb.schema.get_field_index("id")
        ids = rb.column(idx).cast(pa.string()) if idx >= 0 else pa.nulls(n, pa.string())
        counter.records += n
        counter.shape = "text"
        yield RecordBatch(f.path, Shape.TEXT, np.arange(row, row + n, dtype=np.int64), ids, text=text)
        row += n

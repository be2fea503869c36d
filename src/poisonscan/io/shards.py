"""Split input files into shards, the units of work the engine spreads over workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.options import ReadOptions
from poisonscan.io.parquet import empty_block, open_parquet
from poisonscan.io.shapes import ShapeConverter

SHARD_BYTES = 64 * 2**20  # uncompressed Parquet bytes per shard: several per file, for --jobs
# Text bytes per byte on disk, for inputs whose size is known only on disk: JSON (whose syntax
# roughly offsets what gzip or zstd would shrink further) and Parquet without usable metadata.
EXPANSION = {"parquet": 3.0, "gz": 4.0, "zst": 4.0}


@dataclass(frozen=True)
class Shard:
    """A unit of work: a whole file, or a run of a Parquet file's row groups.

    Attributes:
        file: the input file.
        index: shard number within the file (0 for the first or only shard).
        row_groups: the Parquet row groups to read, or None for the whole file.
        first_row: the 0-based row within the file of the shard's first record.
        data_bytes: the uncompressed size of the columns the scan reads from the shard's row
            groups, from the Parquet metadata; 0 when unknown (JSON inputs).
    """

    file: InputFile
    index: int = 0
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0
    data_bytes: int = 0


def plan_shards(files: Sequence[InputFile], options: ReadOptions,
                shard_bytes: int = SHARD_BYTES) -> list[Shard]:
    """One shard per JSON file; Parquet files split into runs of row groups (``shard_bytes`` each).

    A Parquet file whose metadata cannot be read becomes one shard, so the error surfaces (or is
    counted) when it is read.
    """
    shards: list[Shard] = []
    for f in files:
        if f.format != "parquet":
            shards.append(Shard(f))
            continue
        try:
            pf = open_parquet(f.path)
            meta = pf.metadata
        except InputError:
            shards.append(Shard(f))
            continue
        read = _read_columns(f.path, pf, options)
        groups: list[int] = []
        size = first = row = index = data = 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if groups and size + rg.total_byte_size > shard_bytes:
                shards.append(Shard(f, index, tuple(groups), first, data))
                groups, size, first, index, data = [], 0, row, index + 1, 0
            groups.append(g)
            size += rg.total_byte_size
            row += rg.num_rows
            data += sum(_value_bytes(rg.column(j)) for j in read)
        shards.append(Shard(f, index, tuple(groups) or None, first, data))
    return shards


def _read_columns(path: str, pf: pq.ParquetFile, options: ReadOptions) -> list[int]:
    """The leaf columns (by index) of the fields a scan of the file reads, as the reader picks
    them; none when the file's shape is not recognised (reading it will report that)."""
    try:
        converter = ShapeConverter.for_block(path, empty_block(pf), options)
    except InputError:
        return []
    if converter is None:
        return []
    meta = pf.metadata
    paths = [meta.schema.column(j).path for j in range(meta.num_columns)]  # "field.child..."
    return [j for j, path in enumerate(paths)
            if any(path == f or path.startswith(f + ".") for f in converter.fields)]


def _value_bytes(chunk: pq.ColumnChunkMetaData) -> int:
    """A column chunk's uncompressed size without the copy of its smallest and largest value that
    its page statistics hold: for a long-text column in a small file, that copy is a good part of
    the size (13 documents of 2.3 KB: 14%), and it would make the same records look bigger when
    they are split into many files."""
    size = chunk.total_uncompressed_size
    stats = chunk.statistics
    if chunk.physical_type == "BYTE_ARRAY" and stats is not None and stats.has_min_max:
        # The raw values: bytes as stored, so text that is not valid UTF-8 (which the reader
        # reports per record) cannot fail here.
        size -= len(stats.min_raw) + len(stats.max_raw)
    return max(0, size)


def estimate_text_bytes(shards: Sequence[Shard]) -> float:
    """Roughly how many bytes of text the shards hold, before reading them.

    Parquet shards count the uncompressed size of the columns the scan reads, which their
    metadata records per row group: the same records give about the same figure however they are
    split into files and row groups, and whatever the codec (the compressed size of text varies
    two- to fivefold with the codec and the data). Other inputs count their size on disk, times
    a rough expansion for compressed files. Values repeated within a column chunk's dictionary
    (exact duplicate documents) count once, as they do in a compressed file's size: the figure
    is closer to the distinct text, which is what the count tables hold.
    """
    known: dict[str, int] = {}
    files: dict[str, InputFile] = {}
    for s in shards:
        files[s.file.path] = s.file
        known[s.file.path] = known.get(s.file.path, 0) + s.data_bytes
    total = 0.0
    for path, f in files.items():
        if known[path] > 0:
            total += known[path]
        else:
            kind = "parquet" if f.format == "parquet" else (f.compression or "")
            total += EXPANSION.get(kind, 1.0) * float(f.size)
    return total

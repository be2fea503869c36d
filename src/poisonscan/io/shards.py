"""Split input files into shards, the units of work the engine spreads over workers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.filesystems import is_remote, local_path
from poisonscan.io.jsonl import JsonLinesReader
from poisonscan.io.options import ReadCounter, ReadOptions
from poisonscan.io.parquet import empty_block, open_parquet
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.shapes import ShapeConverter, rounded_ids
from poisonscan.io.streams import BOM, ByteStream, first_char

SHARD_BYTES = 64 * 2**20  # uncompressed Parquet bytes (or JSON Lines bytes) per shard
_SCAN_BYTES = 16 * 2**20  # bytes read at a time when a JSON Lines file's lines are counted
# Whitespace as bytes.strip() knows it: a line of only these holds no record (the line-by-line
# parser of io/jsonl.py skips it; a block with such a line that Arrow miscounts goes to that
# parser).
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 10, 11, 12, 13, 32]] = True
# Text bytes per byte on disk, for inputs whose size is known only on disk: JSON (whose syntax
# roughly offsets what gzip or zstd would shrink further) and Parquet without usable metadata.
EXPANSION = {"parquet": 3.0, "gz": 4.0, "zst": 4.0}


@dataclass(frozen=True)
class Shard:
    """A unit of work: a whole file, a run of a Parquet file's row groups, or a run of whole
    lines of an uncompressed local JSON Lines file.

    Attributes:
        file: the input file.
        index: shard number within the file (0 for the first or only shard).
        row_groups: the Parquet row groups to read, or None for the whole file.
        first_row: the 0-based row within the file of the shard's first record.
        data_bytes: the uncompressed size of the columns the scan reads from the shard's row
            groups, from the Parquet metadata; 0 when unknown (JSON inputs).
        byte_range: the ``(start, stop)`` byte offsets of a JSON Lines shard's lines (``start``
            is 0 or just after a newline, ``stop`` just after one or the file's end), or None.
        first_line: the 1-based line number of the shard's first line.
    """

    file: InputFile
    index: int = 0
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0
    data_bytes: int = 0
    byte_range: tuple[int, int] | None = None
    first_line: int = 1
    shape: ShapeHint | None = field(default=None, compare=False)


PROBE_BYTES = 2**20  # blocks read to find the shape of a JSON Lines file's first records
_ID_TYPES = (pa.int64(), pa.float64(), pa.bool_(), pa.string(), pa.large_string())


@dataclass(frozen=True)
class ShapeHint:
    """The shape of a JSON Lines file's first usable records and the type of their id field,
    found once by the planner for every later shard of the file's lines (each read them again
    in every pass before). ``before``: those records lie before this byte."""

    converter: ShapeConverter
    id_type: pa.DataType | None
    before: int


def id_type_of(converter: ShapeConverter, first: RawBlock) -> pa.DataType | None:
    """The Arrow type of the id field in the block the shape was found in, when Arrow parsed it
    as one of the types an explicit parse schema may give it."""
    if converter.id_field and first.table is not None:
        t = first.table.schema.field(converter.id_field).type
        if t == pa.float64() and rounded_ids(first.table.column(converter.id_field)):
            # Integers beyond int64, likely unsigned 64-bit hashes: later blocks parse them
            # exactly as uint64, and a block that does not fit goes record by record.
            low = pc.min(first.table.column(converter.id_field)).as_py()
            return pa.uint64() if low is not None and low >= 0 else None
        return t if t in _ID_TYPES else None
    return None


def file_shape(f: InputFile, stop: int, options: ReadOptions) -> ShapeHint | None:
    """The shape of the first block of lines before byte ``stop`` whose shape is recognised,
    with its id field's type and how far the file was read to find it; None when there is none.
    Its bad records are the first shard's to report."""
    ignore = BadRecords(f.path, True, ReadCounter())
    # Small blocks on one thread: the first block nearly always tells the shape, and a reader of
    # full-size blocks would read and parse several of them ahead for nothing.
    with ByteStream(f, (0, stop)) as stream, closing(JsonLinesReader(
            stream, options, ignore, block_bytes=PROBE_BYTES, threads=1).blocks()) as blocks:
        for raw in blocks:
            converter = ShapeConverter.for_block(f.path, raw, options)
            if converter is not None:
                return ShapeHint(converter, id_type_of(converter, raw), stream.offset)
    return None


def plan_shards(files: Sequence[InputFile], options: ReadOptions,
                shard_bytes: int = SHARD_BYTES) -> list[Shard]:
    """Shards of about ``shard_bytes`` each: Parquet files split into runs of row groups,
    uncompressed local JSON Lines files into runs of whole lines; other files are one shard each.

    A Parquet file whose metadata cannot be read becomes one shard, so the error surfaces (or is
    counted) when it is read. Splitting a JSON Lines file reads it once, here, to number the lines
    and records where each shard starts (about a second per GB from the page cache): records keep
    the row and line numbers that reading the whole file gives them. Compressed files cannot be
    entered in the middle, and remote ones are not read twice: both stay whole.
    """
    shards: list[Shard] = []
    for f in files:
        if f.format != "parquet":
            shards.extend(_line_shards(f, shard_bytes, options))
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


def _line_shards(f: InputFile, shard_bytes: int, options: ReadOptions) -> list[Shard]:
    """``f`` as shards of whole lines, or as one shard when it is not split (see plan_shards)."""
    if (f.compression is not None or is_remote(f.path) or f.size <= shard_bytes
            or f.format not in ("jsonl", "json")):
        return [Shard(f)]
    try:
        # A .json file may be one top-level array, which the reader reads whole (as it decides).
        if f.format == "json" and first_char(f) == "[":
            return [Shard(f)]
        cuts = line_cuts(local_path(f.path), shard_bytes)
    except (OSError, InputError):
        return [Shard(f)]  # reading it will report the error
    if cuts is None:
        return [Shard(f)]
    hint = None
    if len(cuts) > 1:
        try:
            hint = file_shape(f, cuts[-1][0], options)
        except InputError:
            pass  # the shard that holds the failure reports it
    return [Shard(f, i, first_row=row, byte_range=(start, stop), first_line=line,
                  shape=hint if hint is not None and 0 < hint.before <= start else None)
            for i, (start, stop, line, row) in enumerate(cuts)]


def line_cuts(path: str, shard_bytes: int,
              scan_bytes: int = _SCAN_BYTES) -> list[tuple[int, int, int, int]] | None:
    """Cut a JSON Lines file into runs of whole lines of about ``shard_bytes`` each.

    Returns ``(start, stop, first line, first row)`` per run: byte offsets, the 1-based number of
    the run's first line and the 0-based number of its first record, which is the count of lines
    before it that hold more than whitespace. None when the file holds no record or fits one
    run.

    Hand-written because no library numbers the lines of a file at given byte offsets; numpy
    does the counting, ``scan_bytes`` at a time (a line longer than that is never held whole).
    """
    size = os.path.getsize(path)
    cuts: list[tuple[int, int, int, int]] = []
    start, line, row = 0, 1, 0  # the open run
    offset, lines, rows = 0, 1, 0  # where the next chunk starts: its line and row numbers
    open_content = False  # whether the line that continues into the next chunk holds a record
    with open(path, "rb") as fh:
        bom = len(BOM) if fh.read(len(BOM)) == BOM else 0
        fh.seek(0)
        while True:
            chunk = fh.read(scan_bytes)
            if not chunk:
                break
            view = np.frombuffer(chunk, np.uint8)
            if offset < bom:  # the reader drops a BOM: it is no content of the first line
                view = view.copy()
                view[: bom - offset] = 32
            breaks, content = _line_content(view)
            content[0] |= open_content
            # The first newline at or past each cut point closes the open run.
            while True:
                want = start + shard_bytes - 1 - offset  # the newline to look for, at or after
                j = int(np.searchsorted(breaks, max(0, want)))
                if j == len(breaks) or offset + int(breaks[j]) + 1 >= size:
                    break
                cut = offset + int(breaks[j]) + 1
                cuts.append((start, cut, line, row))
                start, line = cut, lines + j + 1
                row = rows + int(np.count_nonzero(content[: j + 1]))
            lines += len(breaks)
            rows += int(np.count_nonzero(content[: len(breaks)]))
            open_content = bool(content[len(breaks)])
            offset += len(chunk)
    rows += open_content  # the last line, when it has no newline
    if not cuts or rows == 0:
        return None
    cuts.append((start, offset, line, row))
    return cuts


def _line_content(view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The newlines of ``view`` and, for each of the ``len(newlines) + 1`` pieces between them
    (the last one runs to the end of ``view``), whether it holds more than whitespace."""
    breaks = np.flatnonzero(view == 10)
    starts = np.concatenate(([0], breaks + 1))
    inside = starts < len(view)  # a newline at the very end leaves an empty last piece
    content = np.zeros(len(starts), dtype=bool)
    first = view[starts[inside]]
    if not _BLANK[first].any():  # the usual case: every line starts with its record
        content[inside] = True
    elif inside.any():
        # Each piece is reduced with the newline that ends it, which is blank; an empty piece
        # between two newlines is just the second newline.
        content[inside] = np.logical_or.reduceat(~_BLANK[view], starts[inside])
    return breaks, content


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

"""Input discovery and streaming readers: the public API the engine uses.

``discover_inputs`` finds files, ``plan_shards`` splits them into units of work, and ``read_shard``
streams one shard as :class:`RecordBatch` objects while counting what it read and skipped. The
format readers (:mod:`.jsonl`, :mod:`.jsonarray`, :mod:`.parquet`) produce raw blocks;
:mod:`.shapes` turns them into units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile, discover_inputs
from poisonscan.io.jsonarray import JsonArrayReader
from poisonscan.io.jsonl import JsonLinesReader
from poisonscan.io.options import ReadCounter, ReadOptions
from poisonscan.io.parquet import empty_block, open_parquet, parquet_blocks
from poisonscan.io.prefetch import prefetch
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.records import RecordBatch, Shape
from poisonscan.io.shapes import (
    ShapeConverter,
    describe_fields,
    json_kind,
    undetected_message,
)
from poisonscan.io.shards import Shard, file_shape, id_type_of, plan_shards
from poisonscan.io.streams import ByteStream, first_char

__all__ = [
    "InputFile", "Shard", "ReadOptions", "ReadCounter", "RecordBatch", "Shape",
    "discover_inputs", "plan_shards", "read_shard",
]

Configure = Callable[[ShapeConverter, RawBlock], None]


def read_shard(shard: Shard, options: ReadOptions, counter: ReadCounter) -> Iterator[RecordBatch]:
    """Stream the units of one shard in batches of at most ``options.batch_rows``.

    Sets ``counter.records`` (records read), ``counter.bytes`` (text bytes of the units),
    ``counter.skipped`` (bad records per reason, when skipping) and ``counter.shape``.

    Raises:
        InputError: a bad record or file, unless ``options.skip_bad_records`` is set.
    """
    f = shard.file
    counter.path = counter.path or f.path
    bad = BadRecords(f.path, options.skip_bad_records, counter)
    try:
        if f.format == "parquet":
            yield from _read_parquet(shard, options, counter, bad)
        else:
            yield from _read_json(shard, options, counter, bad)
    except InputError as exc:
        if options.skip_bad_records and exc.reason in ("truncated", "corrupt", "unreadable"):
            counter.skipped[exc.reason] += 1  # a file-level failure before any record
        else:
            raise
    # (A file cut into shards of lines holds records, though its first shard may not.)
    if (shard.index == 0 and shard.byte_range is None and counter.records == 0
            and not counter.skipped):
        bad("empty_file", "the file holds no records")


def _read_json(shard: Shard, options: ReadOptions, counter: ReadCounter,
               bad: BadRecords) -> Iterator[RecordBatch]:
    f = shard.file
    # Only JSON Lines files are cut into shards (io/shards.py); a whole .json file may be one array.
    is_array = shard.byte_range is None and f.format == "json" and first_char(f) == "["
    with ByteStream(f, shard.byte_range) as stream:
        if is_array:
            reader_a = JsonArrayReader(stream, options, bad)
            yield from _convert(f.path, reader_a.blocks(), options, counter, bad)
            return
        reader = JsonLinesReader(stream, options, bad, first_line=shard.first_line,
                                 first_row=shard.first_row)

        def configure(converter: ShapeConverter, first: RawBlock) -> None:
            set_shape(converter, id_type_of(converter, first))

        def set_shape(converter: ShapeConverter, id_type: pa.DataType | None) -> None:
            reader.python_only = not converter.flat
            reader.schema = converter.arrow_schema(id_type)

        # A later shard of a file's lines reads it as the whole file would: with the shape (and
        # the parse schema) of the file's first usable records, which come before the shard. The
        # planner found them once (shard.shape); else they are looked for here.
        known = None
        if shard.byte_range is not None and shard.byte_range[0] > 0:
            hint = shard.shape or file_shape(f, shard.byte_range[0], options)
            if hint is not None:
                known = hint.converter
                counter.shape = known.shape.value
                set_shape(known, hint.id_type)
        yield from _convert(f.path, reader.blocks(), options, counter, bad, configure,
                            converter=known)


def _read_parquet(shard: Shard, options: ReadOptions, counter: ReadCounter,
                  bad: BadRecords) -> Iterator[RecordBatch]:
    f = shard.file
    pf = open_parquet(f.path)
    meta = pf.metadata
    groups = shard.row_groups if shard.row_groups is not None else tuple(range(meta.num_row_groups))
    n_rows = sum(meta.row_group(g).num_rows for g in groups)
    if n_rows == 0:
        return
    probe = empty_block(pf)
    converter = ShapeConverter.for_block(f.path, probe, options)
    names = pf.schema_arrow.names
    if converter is None:
        bad("missing_field", undetected_message(names, options), f"row {shard.first_row}",
            count=n_rows)
        return
    counter.shape = converter.shape.value
    missing = [c for c in converter.required if c not in names]
    if missing:
        bad("missing_field", f"no {missing[0]!r} column; fields found: {describe_fields(names)}",
            f"row {shard.first_row}", count=n_rows)
        return
    columns = [c for c in converter.fields if c in names]
    blocks = parquet_blocks(pf, f.path, columns, groups, shard.first_row, options.batch_rows, bad)
    yield from _convert(f.path, blocks, options, counter, bad, converter=converter)


def _convert(path: str, blocks: Iterator[RawBlock], options: ReadOptions, counter: ReadCounter,
             bad: BadRecords, configure: Configure | None = None,
             converter: ShapeConverter | None = None) -> Iterator[RecordBatch]:
    """Detect the shape on the first usable block, then convert every block into batches.

    Blocks are read one ahead in a thread (:func:`prefetch`), overlapping parsing with conversion.
    """
    for raw in prefetch(blocks):
        if converter is None:
            converter = ShapeConverter.for_block(path, raw, options)
            if converter is None:
                if raw.table is None and raw.records and not any(
                        isinstance(rec, dict) for rec in raw.records):
                    # (A nested array, say: say so rather than "fields found: none".)
                    bad("wrong_type", f"record is {json_kind(raw.records[0])}, expected an "
                        "object", raw.location(0), count=len(raw))
                    continue
                bad("missing_field", undetected_message(raw.field_names(), options),
                    raw.location(0), count=len(raw))
                continue
            counter.shape = converter.shape.value
            if configure is not None:
                configure(converter, raw)
        batch = converter.convert(raw, bad)
        if len(batch) == 0:
            continue
        counter.records += _count_records(batch.row)
        counter.bytes += batch.nbytes
        yield from batch.split(options.batch_rows)


def _count_records(rows: np.ndarray) -> int:
    """Distinct records among units (units of one record are adjacent)."""
    return int(rows.shape[0] and 1 + np.count_nonzero(np.diff(rows)))

"""Stream JSON Lines files as blocks of whole lines, parsed by Arrow, with exact line numbers.

The decompressed byte stream is cut into blocks of whole lines (about ``block_bytes`` each, after
a few smaller first blocks), read straight into Arrow-allocated memory. A few threads then work on
consecutive blocks at once, each without the GIL: Arrow's JSON parser parses the block as one
chunk, numpy counts its newlines, and Arrow checks the UTF-8 of its strings (the parser does not).
The blocks come back in file order, where they get their line and record numbers. When Arrow
rejects a block, or a record in it needs exact detail, the block is parsed again line by line with
:func:`json.loads`, which names every bad line. Memory is bounded by the blocks in flight plus the
longest line allowed (``max_record_bytes``).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from poisonscan.errors import InputError
from poisonscan.io.options import ReadOptions
from poisonscan.io.prefetch import ordered_map
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.streams import BOM, ByteStream
from poisonscan.kernels.nesting import MAX_NESTING, too_deep

# Reading three 64 MB shards of the speed corpus (1 KB documents) in one process, 2026-12-04: 4 MiB
# blocks took 0.57-0.69 s and 81 MB above the start, 16 MiB blocks 1.5-1.6 s and 307 MB (every
# block in flight is a fresh allocation for its bytes and its Arrow table; each scan worker holds
# its own reader). Blocks of 4 MiB still hold thousands of records of a few KB.
BLOCK_BYTES = 4 * 2**20
FIRST_BLOCK_BYTES = 2**20  # blocks double from this up to BLOCK_BYTES, so small files get
# several blocks to parse at once, and the shape is known (and the schema set) early
PARSE_THREADS = max(1, min(4, pa.cpu_count()))  # blocks parsed at once; one more is read ahead
_NEWLINE_WINDOW = 2**16  # the last newline of a read is looked for in windows of this size
_MAX_ARROW_BLOCK = 2**31 - 1  # Arrow's block_size is a 32-bit int
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 13, 32]] = True


@dataclass(frozen=True)
class _Block:
    """Whole lines of the file, in order; the last block of a file may lack its final newline."""

    data: pa.Buffer


@dataclass(frozen=True)
class _TooLarge:
    """The line at the current position was longer than ``max_record_bytes`` and was skipped."""


@dataclass(frozen=True)
class _Lost:
    """Reading failed (truncated or corrupt data): the current line and all after it are lost."""

    reason: str
    detail: str


@dataclass(frozen=True)
class _Parsed:
    """What a worker learnt about one block; positions are relative to the block.

    Attributes:
        data: the block's bytes.
        newlines: newline characters in the block.
        table: the records as parsed by Arrow (one chunk), or None when the block must be parsed
            line by line.
        lines: the 0-based line within the block of each record, or None when each line holds
            one record.
        utf8_valid: every string of ``table`` is valid UTF-8.
    """

    data: pa.Buffer
    newlines: int
    table: pa.RecordBatch | pa.Table | None = None
    lines: np.ndarray | None = None
    utf8_valid: bool = False


_Piece = _Block | _TooLarge | _Lost


class JsonLinesReader:
    """Yields :class:`RawBlock` objects of consecutive JSON lines from a byte stream.

    Attributes:
        schema: an explicit Arrow schema for the fields the caller needs (set after the first block
            once the shape is known); None lets Arrow infer every field.
        python_only: parse with :func:`json.loads` only (for nested shapes, where the converter
            needs Python objects anyway).
    """

    def __init__(self, stream: ByteStream, options: ReadOptions, bad: BadRecords,
                 block_bytes: int | None = None, threads: int | None = None,
                 first_line: int = 1, first_row: int = 0) -> None:
        """``first_line`` and ``first_row`` number the stream's first line and record when it
        starts inside a file (a shard of its lines); only a file's start may hold a BOM."""
        self.stream = stream
        self.first_line, self.first_row = first_line, first_row
        self.max_record_bytes = options.max_record_bytes
        self.bad = bad
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.threads = threads or PARSE_THREADS
        self.schema: pa.Schema | None = None
        self.python_only = False

    def blocks(self) -> Generator[RawBlock, None, None]:
        """Blocks in file order. A truncated stream ends them after reporting the lost record."""
        line, row = self.first_line, self.first_row  # the first line not yet handed out
        # at most threads + 1 blocks are read but not handed out: that bounds memory
        parsed = ordered_map(self._examine, self._pieces(), self.threads, self.threads + 1)
        with closing(parsed):
            for item in parsed:
                if isinstance(item, _Lost):
                    self.bad(item.reason, f"{item.detail}; the record at this line and any "
                             "after it are lost", f"line {line}")
                    return
                if isinstance(item, _TooLarge):
                    self.bad("record_too_large", f"record is longer than max_record_bytes="
                             f"{self.max_record_bytes}", f"line {line}")
                    line, row = line + 1, row + 1
                    continue
                raw, slots = self._place(item, line, row)
                if len(raw):
                    yield raw
                line += item.newlines
                row += slots

    # Cutting the stream into blocks (feeder thread) ----------------------------------------

    def _pieces(self) -> Iterator[_Piece]:
        """Blocks of whole lines, and the oversized lines and read failures between them."""
        carry = b""  # the start of a line whose end is not read yet
        first = self.first_line == 1  # a BOM may only open the file
        size = min(FIRST_BLOCK_BYTES, self.block_bytes)
        while True:
            buf = pa.allocate_buffer(len(carry) + size)
            size = min(2 * size, self.block_bytes)
            view = memoryview(buf).cast("B")
            view[: len(carry)] = carry
            try:
                n = self.stream.readinto(view[len(carry):])
            except InputError as exc:
                yield _Lost(exc.reason, exc.detail)
                return
            start, end = 0, len(carry) + n
            if first:
                first = False
                if bytes(view[:len(BOM)]) == BOM and end >= len(BOM):
                    start = len(BOM)
            if n == 0:
                if end > start:
                    yield _Block(buf.slice(start, end - start))
                return
            cut = _last_newline(view, start, end)
            if cut < 0:
                carry = bytes(view[start:end])
                if len(carry) > self.max_record_bytes:
                    yield _TooLarge()
                    rest = self._read_past_line()
                    if isinstance(rest, InputError):  # the file ends broken inside that line
                        yield _Lost(rest.reason, rest.detail)
                        return
                    if rest is None:
                        return
                    carry = rest
                continue
            carry = bytes(view[cut + 1: end])
            yield _Block(buf.slice(start, cut + 1 - start))

    def _read_past_line(self) -> bytes | InputError | None:
        """Discard the rest of an oversized line; return what follows it, None at the end of the
        file, or the read error (a truncated or corrupt stream) that ended it."""
        while True:
            try:
                chunk = self.stream.read(self.block_bytes)
            except InputError as exc:
                return exc
            if not chunk:
                return None
            cut = chunk.find(b"\n")
            if cut >= 0:
                return chunk[cut + 1:]

    # Parsing a block (worker threads; no error is reported here) ---------------------------

    def _examine(self, piece: _Piece) -> _Parsed | _TooLarge | _Lost:
        if not isinstance(piece, _Block):
            return piece
        data = piece.data
        bytes_ = np.frombuffer(data, np.uint8)
        breaks = np.flatnonzero(bytes_ == 10)
        newlines = len(breaks)
        if self.python_only:
            return _Parsed(data, newlines)
        if data.size > self.max_record_bytes and _longest_line(bytes_) > self.max_record_bytes:
            return _Parsed(data, newlines)
        if too_deep(bytes_):  # Arrow's parser would crash the process on such a record
            return _Parsed(data, newlines)
        parse = pajson.ParseOptions()
        if self.schema is not None:
            parse = pajson.ParseOptions(explicit_schema=self.schema,
                                        unexpected_field_behavior="ignore")
        one_chunk = pajson.ReadOptions(use_threads=False,
                                       block_size=min(data.size + 1, _MAX_ARROW_BLOCK))
        try:
            table = pajson.read_json(pa.BufferReader(data), parse_options=parse,
                                     read_options=one_chunk)
        except pa.ArrowInvalid:
            return _Parsed(data, newlines)
        n = table.num_rows
        n_lines = newlines + (0 if bytes_[-1] == 10 else 1)
        lines = None
        # One record per line unless some lines are blank; Arrow also accepts two objects on one
        # line, which with a blank line elsewhere would match the line count by coincidence.
        if n != n_lines or _content_lines(bytes_, breaks) != n:
            lines = _record_lines(bytes_)
            if len(lines) != n:  # not one record per non-blank line: the line-by-line path
                return _Parsed(data, newlines)  # reports the malformed line
        return _Parsed(data, newlines, _one_batch(table), lines, _valid_utf8(table))

    # Placing a block in the file (in order) ------------------------------------------------

    def _place(self, parsed: _Parsed, line: int, row: int) -> tuple[RawBlock, int]:
        """The block's records numbered from ``line`` and ``row``: (block, record slots)."""
        data = parsed.data
        if parsed.table is None:
            return self._parse_python(data.to_pybytes(), line, row)
        n = parsed.table.num_rows
        rel = parsed.lines if parsed.lines is not None else np.arange(n, dtype=np.int64)
        raw = RawBlock(np.arange(row, row + n, dtype=np.int64), line + rel, table=parsed.table,
                       utf8_checked=parsed.utf8_valid,
                       to_records=lambda: self._parse_python(data.to_pybytes(), line, row)[0])
        return raw, n

    def _parse_python(self, block: bytes, line: int, row: int) -> tuple[RawBlock, int]:
        """Line-by-line parse that reports each bad line; the reference for exact errors."""
        records: list[Any] = []
        rows: list[int] = []
        lines: list[int] = []
        slots = 0
        deep = too_deep(block)  # one check of the whole block; lines only when it fails
        for k, text in enumerate(block.split(b"\n")):
            if not text.strip():
                continue
            where = f"line {line + k}"
            index = row + slots
            slots += 1
            if len(text) > self.max_record_bytes:
                self.bad("record_too_large", f"record of {len(text)} bytes is longer than "
                         f"max_record_bytes={self.max_record_bytes}", where)
                continue
            if deep and too_deep(text):
                self.bad("nested_too_deep", f"record nests deeper than {MAX_NESTING} levels",
                         where)
                continue
            try:
                value = json.loads(text.decode("utf-8"))
            except RecursionError:  # (too_deep() should have caught it; never a traceback)
                self.bad("nested_too_deep", "record nests too deeply to parse", where)
                continue
            except UnicodeDecodeError as exc:
                self.bad("invalid_utf8", f"invalid UTF-8 at byte {exc.start} of the line", where)
                continue
            except json.JSONDecodeError as exc:
                # Some of json's messages end in "at" ("Unterminated string starting at").
                at = "" if exc.msg.endswith(" at") else " at"
                # A line of only "{" in a .json file is a pretty-printed object, not JSON
                # Lines: say what the file must be, not only where parsing stopped.
                hint = ("; a .json file must hold JSON Lines (one record a line) or one JSON "
                        "array" if self.stream.file.format == "json"
                        and text.strip() == b"{" else "")
                # Records ended by a carriage return alone (old Mac line ends) read as one
                # line: name the cause rather than only "Extra data".
                if exc.msg == "Extra data" and b"\r" in text.rstrip(b"\r\n"):
                    hint = ("; the line holds carriage returns: JSON Lines records must end "
                            "in a newline (\\n or \\r\\n)")
                self.bad("malformed_json", f"malformed JSON: {exc.msg}{at} column "
                         f"{exc.colno}{hint}", where)
                continue
            records.append(value)
            rows.append(index)
            lines.append(line + k)
        raw = RawBlock(np.asarray(rows, np.int64), np.asarray(lines, np.int64), records=records)
        return raw, slots


def _last_newline(view: memoryview, start: int, end: int) -> int:
    """Index of the last ``\\n`` in ``view[start:end]`` (searched from the end), or -1."""
    hi = end
    while hi > start:
        lo = max(start, hi - _NEWLINE_WINDOW)
        found = bytes(view[lo:hi]).rfind(b"\n")
        if found >= 0:
            return lo + found
        hi = lo
    return -1


def _one_batch(table: pa.Table) -> pa.RecordBatch | pa.Table:
    """The table as one record batch (columns as plain arrays, so nothing needs concatenating)."""
    batches = table.to_batches()
    return batches[0] if len(batches) == 1 else table.combine_chunks()


def _valid_utf8(table: pa.Table) -> bool:
    """Whether every string in ``table`` is valid UTF-8 (Arrow's check, which drops the GIL)."""
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _record_lines(data: np.ndarray) -> np.ndarray:
    """0-based indices of the non-blank lines of a block (``data``: its bytes as uint8)."""
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    content = np.concatenate(([0], np.cumsum(~_WHITESPACE[data], dtype=np.int64)))
    return np.flatnonzero(content[ends] > content[starts])


def _content_lines(data: np.ndarray, breaks: np.ndarray) -> int:
    """How many lines of a block hold something other than whitespace (``breaks``: the
    positions of its newlines)."""
    if len(data) == 0:
        return 0
    starts = np.concatenate(([0], breaks + 1))
    starts = starts[starts < len(data)]  # a final newline starts no line
    if not _WHITESPACE[data[starts]].any():  # the usual case: every line starts with content
        return len(starts)
    return int(np.count_nonzero(np.logical_or.reduceat(~_WHITESPACE[data], starts)))


def _longest_line(data: np.ndarray) -> int:
    newlines = np.flatnonzero(data == 10)
    bounds = np.concatenate(([-1], newlines, [len(data)]))
    return int(np.diff(bounds).max()) - 1

"""Stream JSON Lines files as blocks of whole lines, parsed by Arrow, with exact line numbers.

The decompressed byte stream is cut into blocks of whole lines (about ``block_bytes`` each). Arrow's
JSON parser parses a block at once; when it rejects a block, or a record in it needs exact detail,
the block is parsed again line by line with :func:`json.loads`, which names every bad line.
Memory is bounded by the block size plus the longest line allowed (``max_record_bytes``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from poisonscan.errors import InputError
from poisonscan.io.options import ReadOptions
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.streams import ByteStream

BLOCK_BYTES = 16 * 2**20
ARROW_BLOCK_BYTES = 2**20  # Arrow's parallel parse unit; raised for blocks with longer lines
BOM = b"\xef\xbb\xbf"
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 13, 32]] = True


class JsonLinesReader:
    """Yields :class:`RawBlock` objects of consecutive JSON lines from a byte stream.

    Attributes:
        schema: an explicit Arrow schema for the fields the caller needs (set after the first block
            once the shape is known); None lets Arrow infer every field.
        python_only: parse with :func:`json.loads` only (for nested shapes, where the converter
            needs Python objects anyway).
    """

    def __init__(self, stream: ByteStream, options: ReadOptions, bad: BadRecords,
                 block_bytes: int | None = None) -> None:
        self.stream = stream
        self.max_record_bytes = options.max_record_bytes
        self.bad = bad
        self.block_bytes = block_bytes or BLOCK_BYTES
        self.schema: pa.Schema | None = None
        self.python_only = False

    def blocks(self) -> Iterator[RawBlock]:
        """Blocks in file order. A truncated stream ends them after reporting the lost record."""
        line, row = 1, 0  # position of the first line not yet handed out
        carry: list[bytes] = []
        carried = 0
        first = True
        replay = b""  # bytes after an oversized line, handled like a freshly read chunk
        while True:
            try:
                if replay:
                    chunk, replay = replay, b""
                else:
                    chunk = self.stream.read(self.block_bytes)
            except InputError as exc:
                self.bad(exc.reason, f"{exc.detail}; the record at this line and any after it are "
                         "lost", f"line {line}")
                return
            if first:
                first = False
                if chunk.startswith(BOM):
                    chunk = chunk[len(BOM):]
            if not chunk:
                if carried:
                    last = b"".join(carry)
                    raw, _ = self._parse(last, line, row, last.count(b"\n"))
                    if len(raw):
                        yield raw
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:
                carry.append(chunk)
                carried += len(chunk)
                if carried > self.max_record_bytes:
                    self.bad("record_too_large", f"record is longer than max_record_bytes="
                             f"{self.max_record_bytes}", f"line {line}")
                    rest = self._read_past_line()
                    if rest is None:
                        return
                    line, row = line + 1, row + 1
                    carry, carried, replay = [], 0, rest
                continue
            carry.append(chunk[: cut + 1])
            block = b"".join(carry)
            carry, carried = [chunk[cut + 1:]], len(chunk) - cut - 1
            newlines = block.count(b"\n")
            raw, slots = self._parse(block, line, row, newlines)
            if len(raw):
                yield raw
            line += newlines
            row += slots

    def _read_past_line(self) -> bytes | None:
        """Discard the rest of an oversized line; return what follows it, or None at the end."""
        while True:
            try:
                chunk = self.stream.read(self.block_bytes)
            except InputError:
                return None  # the oversized record was the last one read, and is already counted
            if not chunk:
                return None
            cut = chunk.find(b"\n")
            if cut >= 0:
                return chunk[cut + 1:]

    # Parsing a block --------------------------------------------------------------------------

    def _parse(self, block: bytes, line: int, row: int, newlines: int) -> tuple[RawBlock, int]:
        """Parse whole lines starting at ``line`` (record index ``row``): (block, record slots)."""
        if not self.python_only:
            raw = self._parse_arrow(block, line, row, newlines)
            if raw is not None:
                return raw, len(raw)
        return self._parse_python(block, line, row)

    def _parse_arrow(self, block: bytes, line: int, row: int, newlines: int) -> RawBlock | None:
        if len(block) > self.max_record_bytes and _longest_line(block) > self.max_record_bytes:
            return None
        parse = pajson.ParseOptions()
        if self.schema is not None:
            parse = pajson.ParseOptions(explicit_schema=self.schema,
                                        unexpected_field_behavior="ignore")
        size = ARROW_BLOCK_BYTES
        while True:
            try:
                table = pajson.read_json(pa.BufferReader(block), parse_options=parse,
                                         read_options=pajson.ReadOptions(block_size=size))
                break
            except pa.ArrowInvalid as exc:
                if "straddl" in str(exc) and size < len(block):
                    size = len(block) + 1
                    continue
                return None
        n = table.num_rows
        n_lines = newlines + (0 if block.endswith(b"\n") else 1)
        if n == n_lines:
            lines = np.arange(line, line + n, dtype=np.int64)
        else:  # blank lines: map each record to its line
            lines = line + _record_lines(block)
            if len(lines) != n:
                return None
        rows = np.arange(row, row + n, dtype=np.int64)
        return RawBlock(rows, lines, table=table, utf8_checked=block.isascii(),
                        to_records=lambda: self._parse_python(block, line, row)[0])

    def _parse_python(self, block: bytes, line: int, row: int) -> tuple[RawBlock, int]:
        """Line-by-line parse that reports each bad line; the reference for exact errors."""
        records: list[Any] = []
        rows: list[int] = []
        lines: list[int] = []
        slots = 0
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
            try:
                value = json.loads(text.decode("utf-8"))
            except UnicodeDecodeError as exc:
                self.bad("invalid_utf8", f"invalid UTF-8 at byte {exc.start} of the line", where)
                continue
            except json.JSONDecodeError as exc:
                self.bad("malformed_json", f"malformed JSON: {exc.msg} at column {exc.colno}",
                         where)
                continue
            records.append(value)
            rows.append(index)
            lines.append(line + k)
        raw = RawBlock(np.asarray(rows, np.int64), np.asarray(lines, np.int64), records=records)
        return raw, slots


def _record_lines(block: bytes) -> np.ndarray:
    """0-based indices of the non-blank lines of ``block``."""
    data = np.frombuffer(block, np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    content = np.concatenate(([0], np.cumsum(~_WHITESPACE[data], dtype=np.int64)))
    return np.flatnonzero(content[ends] > content[starts])


def _longest_line(block: bytes) -> int:
    newlines = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    bounds = np.concatenate(([-1], newlines, [len(block)]))
    return int(np.diff(bounds).max()) - 1

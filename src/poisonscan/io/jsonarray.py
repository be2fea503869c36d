"""Stream a ``.json`` file holding one top-level array of records, element by element.

The text is decoded incrementally and each element is parsed with
:meth:`json.JSONDecoder.raw_decode`, so memory is bounded by the read chunk plus the largest
element (``max_record_bytes``), never the file. Parsing runs in Python, so it is slower than the
JSON Lines path. Inside an array a malformed element cannot be resynchronised: it ends the file
(counted once when skipping bad records); an element that parses but is too large is skipped on
its own.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from poisonscan.errors import InputError
from poisonscan.io.options import ReadOptions
from poisonscan.io.raw import BadRecords, RawBlock
from poisonscan.io.streams import ByteStream
from poisonscan.kernels.nesting import MAX_NESTING, too_deep

CHUNK_BYTES = 4 * 2**20
BLOCK_CHARS = 16 * 2**20
_WS = " \t\r\n"


class _Truncated(Exception):
    """The stream ended inside an element (or the decompressor failed)."""


class JsonArrayReader:
    """Yields :class:`RawBlock` objects of Python records from a top-level JSON array."""

    def __init__(self, stream: ByteStream, options: ReadOptions, bad: BadRecords,
                 chunk_bytes: int | None = None) -> None:
        self.stream = stream
        self.bad = bad
        self.max_record_bytes = options.max_record_bytes
        self.batch_rows = options.batch_rows
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        # (utf-8-sig: a BOM may open the file, as Windows tools write them)
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("surrogateescape")
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in text already dropped from the buffer
        self._failure: InputError | None = None

    def blocks(self) -> Iterator[RawBlock]:
        """Blocks of up to ``batch_rows`` records, in file order."""
        records: list[Any] = []
        rows: list[int] = []
        chars = 0
        index = 0
        stopped = False
        try:
            if not self._expect("[", "the file does not start with '['"):
                return  # reported once, as malformed (nothing was lost to a truncation)
            while True:
                c = self._next_char()
                if c == "]":
                    self._pos += 1
                    break
                if index:
                    if c != ",":
                        self._malformed(f"expected ',' or ']' after element {index - 1}", index)
                        stopped = True
                        break
                    self._pos += 1
                    self._next_char()
                start = self._pos
                value = self._element(index)
                if value is _STOP:
                    stopped = True
                    break
                if value is _SKIP:  # reported
                    index += 1
                    continue
                size = self._pos - start
                if size > self.max_record_bytes:
                    self.bad("record_too_large", f"element holds about {size} bytes, more than "
                             f"max_record_bytes={self.max_record_bytes}", f"row {index}")
                else:
                    records.append(value)
                    rows.append(index)
                    chars += size
                index += 1
                if len(records) >= self.batch_rows or chars >= BLOCK_CHARS:
                    yield RawBlock(np.asarray(rows, np.int64), records=records)
                    records, rows, chars = [], [], 0
            if records:
                yield RawBlock(np.asarray(rows, np.int64), records=records)
                records = []
            if not stopped and self._next_char(required=False):
                self._malformed("unexpected data after the closing ']'", index)
        except _Truncated:
            if records:
                yield RawBlock(np.asarray(rows, np.int64), records=records)
            fail = self._failure
            reason = fail.reason if fail else "truncated"
            detail = fail.detail if fail else "the file ends inside the JSON array"
            self.bad(reason, f"{detail}; the element at this row and any after it are lost",
                     f"row {index}")

    def _element(self, index: int) -> Any:
        """Parse the element at the cursor, reading more text as needed."""
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except RecursionError:  # cannot be resynchronised: like a malformed element
                self.bad("nested_too_deep", "element nests too deeply to parse; reading of "
                         "this file stops here", f"row {index}")
                return _STOP
            except json.JSONDecodeError as exc:
                incomplete = exc.msg.startswith("Unterminated") or exc.pos >= len(self._buf) - 16
                if incomplete and self._eof:
                    raise _Truncated from None
                if not incomplete:
                    self._malformed(exc.msg, index, exc.pos)
                    return _STOP
                if len(self._buf) - self._pos > self.max_record_bytes:
                    self.bad("record_too_large", f"element is longer than max_record_bytes="
                             f"{self.max_record_bytes}; reading of this file stops here",
                             f"row {index}")
                    return _STOP
                self._fill()
                continue
            if end >= len(self._buf) and not self._eof and not isinstance(value, (dict, list, str)):
                self._fill()  # a number or literal may continue in the next chunk
                continue
            start, self._pos = self._pos, end
            buf = self._buf
            # (The kernel reads lines; an element of a pretty-printed file spans several.)
            if (isinstance(value, (dict, list))
                    and buf.count("{", start, end) + buf.count("[", start, end) > MAX_NESTING
                    and too_deep(buf[start:end].replace("\n", " ").encode(
                        "utf-8", "surrogateescape"))):
                self.bad("nested_too_deep", f"element nests deeper than {MAX_NESTING} levels",
                         f"row {index}")
                return _SKIP
            return value

    def _malformed(self, message: str, index: int, at: int | None = None) -> None:
        at = self._pos if at is None else at
        line = self._lines_before + self._buf.count("\n", 0, at) + 1
        self.bad("malformed_json", f"malformed JSON array: {message} (near line {line}); reading "
                 "of this file stops here", f"row {index}")

    def _expect(self, char: str, message: str) -> bool:
        if self._next_char() != char:
            self._malformed(message, 0)
            return False
        self._pos += 1
        return True

    def _next_char(self, required: bool = True) -> str:
        """Skip whitespace; the next character, or ``""`` at the end when not ``required``."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos]
            if self._eof:
                if required:
                    raise _Truncated
                return ""
            self._fill()

    def _fill(self) -> None:
        """Drop consumed text and append the next decoded chunk."""
        if self._eof:
            raise _Truncated
        try:
            data = self.stream.read(self.chunk_bytes)
        except InputError as exc:
            self._failure = exc
            self._eof = True
            raise _Truncated from None
        self._eof = not data
        self._lines_before += self._buf.count("\n", 0, self._pos)
        self._buf = self._buf[self._pos:] + self._decoder.decode(data, final=self._eof)
        self._pos = 0


_STOP = object()
_SKIP = object()  # an element reported as bad; reading goes on

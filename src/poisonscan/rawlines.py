"""Raw lines of JSON Lines files, numbered the way the readers number records.

The readers give every non-blank line of a JSON Lines file a 0-based *row* (bad lines included,
whitespace-only lines not; a leading UTF-8 byte-order mark is dropped), so a finding's
``(path, row)`` maps to exactly one line here. SARIF locations, cleaned copies and manifests use
this module to get back from a row to the bytes and the 1-based line of the file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from poisonscan.io.discover import InputFile, classify
from poisonscan.io.streams import ByteStream, first_char

BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 4 * 2**20
CODECS = {"gz": "gzip", "zst": "zstd"}


def compression_of(path: str) -> str | None:
    """``gz``, ``zst`` or None, from the file name."""
    kind = classify(path)
    return kind[1] if kind else None


def open_input(path: str) -> ByteStream:
    """The decompressed bytes of ``path`` (by its extension), read the way the scan's readers
    read them (:class:`~poisonscan.io.streams.ByteStream`): the same ``.gz`` members and padding
    accepted, and a truncated or corrupt file raised as a one-line :class:`InputError`."""
    kind = classify(path)
    return ByteStream(InputFile(path, kind[0] if kind else "jsonl", compression_of(path), 0))


def read_all(path: str) -> bytes:
    """The whole decompressed content of ``path`` (see open_input)."""
    with open_input(path) as stream:
        return b"".join(iter(lambda: stream.read(CHUNK_BYTES), b""))


def open_output(path: str, like: str) -> pa.NativeFile:
    """A writable stream for ``path``, compressed the way ``like`` (an input file name) is."""
    codec = CODECS.get(compression_of(like) or "")
    return pa.output_stream(path, compression=codec)


def iter_lines(path: str) -> Iterator[tuple[int | None, int, bytes]]:
    """``(row, line, raw)`` for every line: ``row`` is None for blank lines, ``line`` is 1-based.

    ``raw`` keeps its trailing newline (the last line may have none), so writing every ``raw``
    back reproduces the decompressed file byte for byte (apart from a leading byte-order mark).
    """
    row = 0
    line = 1
    carry = b""
    first = True
    with open_input(path) as stream:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            if first:
                first = False
                if chunk.startswith(BOM):
                    chunk = chunk[len(BOM):]
            if not chunk:
                break
            data = carry + chunk
            parts = data.split(b"\n")
            carry = parts.pop()
            for part in parts:
                blank = not part.strip()
                yield (None if blank else row), line, part + b"\n"
                if not blank:
                    row += 1
                line += 1
    if carry:
        yield (None if not carry.strip() else row), line, carry


def line_numbers(path: str, rows: set[int]) -> dict[int, int]:
    """The 1-based line of each wanted row of a JSON Lines file; reading stops after the last."""
    if not rows:
        return {}
    last = max(rows)
    found: dict[int, int] = {}
    for row, line, _ in iter_lines(path):
        if row is not None and row in rows:
            found[row] = line
            if row >= last:
                break
    return found


def is_json_lines(path: str) -> bool:
    """True for ``.jsonl``/``.ndjson``, and for ``.json`` files that are not one JSON array."""
    kind = classify(path)
    if kind is None or kind[0] == "parquet":
        return False
    if kind[0] == "jsonl":
        return True
    # As the reader decides (io.streams.first_char): by the first character other than
    # whitespace, however far into the file it is.
    return first_char(InputFile(path, kind[0], compression_of(path), 0)) != "["

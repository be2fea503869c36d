"""Open an input file as a stream of decompressed bytes, with read errors mapped to InputError."""

from __future__ import annotations

import zlib
from typing import Any

import pyarrow as pa

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.filesystems import is_remote, local_path, open_input_stream

BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which may open a text file
PIECE_BYTES = 2**16  # decompressed bytes per read call
RAW_BYTES = 2**18  # compressed bytes fed to the decompressor at a time
_GZIP_MAGIC = b"\x1f\x8b"


class _Gunzip:
    """A ``.gz`` stream decompressed with :mod:`zlib`, which hands out every byte it could
    decode before a failure: Arrow's ``CompressedInputStream`` raised on the first read of a
    small truncated file and returned none of its records. Concatenated members are read one
    after the other; zero bytes after the last one (padding) are ignored. Each call decodes at
    most ``PIECE_BYTES`` (``max_length``), so a highly compressed file cannot blow up memory.
    Failures are raised as ``OSError`` naming truncation or corruption (see
    :meth:`ByteStream._failure`). zlib releases the GIL while it decompresses.

    (``.zst`` stays with Arrow: zstandard's streaming readers stop silently at a truncation, and
    its decompressor object cannot bound its output.)
    """

    def __init__(self, raw: pa.NativeFile) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(wbits=31)
        self._fed = False  # the current member has been given input
        self._input = b""  # compressed bytes not yet given to the decompressor
        self._failed: OSError | None = None  # raised by the read after the last good bytes

    def read(self, size: int) -> bytes:
        if self._failed is not None:
            raise self._failed
        while True:
            data = self._input or self._d.unconsumed_tail
            self._input = b""
            if not data:
                data = self._raw.read(RAW_BYTES)
                if not data:
                    if self._fed:  # inside a member: the file was cut short
                        raise OSError("truncated compressed stream (it ends inside a member)")
                    return b""
            try:
                out = self._d.decompress(data, max(1, size))
            except zlib.error as exc:
                raise OSError(f"invalid compressed data: {exc}") from None
            self._fed = True
            if self._d.eof:
                rest = self._d.unused_data
                if rest and not rest.strip(b"\0"):
                    rest = b""  # padding after the last member
                elif rest and not rest.startswith(_GZIP_MAGIC[: len(rest)]):
                    # The member decoded whole: its last bytes first, the error next time.
                    self._failed = OSError("invalid compressed data after the end of the gzip "
                                           "stream")
                    if out:
                        return out
                    raise self._failed
                self._d = zlib.decompressobj(wbits=31)
                self._fed = False
                self._input = rest
            if out:
                return out

    def readinto(self, view: memoryview) -> int:
        piece = self.read(len(view))
        view[: len(piece)] = piece
        return len(piece)

    def close(self) -> None:
        self._raw.close()


class ByteStream:
    """Decompressed bytes of one file, read in chunks.

    A failure of the decompressor (truncated or corrupt ``.gz``/``.zst``) surfaces as
    :class:`InputError` with reason ``truncated`` or ``corrupt``; ``offset`` tells how many
    decompressed bytes were read before it.

    ``byte_range`` reads only the bytes from ``start`` to ``stop`` of an uncompressed local file
    (a shard of its lines; see :mod:`poisonscan.io.shards`).
    """

    def __init__(self, file: InputFile, byte_range: tuple[int, int] | None = None) -> None:
        self.file = file
        self.offset = 0
        self._left: int | None = None  # bytes of the range not read yet
        try:
            if byte_range is None:
                raw = open_input_stream(file.path)
            else:
                if file.compression is not None or is_remote(file.path):
                    raise ValueError(f"{file.path}: byte ranges of compressed or remote files")
                raw = pa.OSFile(local_path(file.path), "rb")
                raw.seek(byte_range[0])
                self._left = byte_range[1] - byte_range[0]
        except OSError as exc:
            raise InputError(file.path, f"cannot open file: {exc}", reason="unreadable") from None
        self._compressed = file.compression is not None
        self._stream: Any = (_Gunzip(raw) if file.compression == "gz"
                             else pa.CompressedInputStream(raw, "zstd") if file.compression
                             else raw)
        self._error: InputError | None = None

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the data.

        Compressed data is read in small pieces, so when the decompressor fails, the bytes before
        the failure are returned first and the error is raised by the next call.
        """
        if self._error is not None:
            raise self._error
        if not self._compressed:
            return self._read(size)
        pieces: list[bytes] = []
        got = 0
        while got < size:
            try:
                piece = self._read(min(PIECE_BYTES, size - got))
            except InputError as exc:
                if not pieces:
                    raise
                self._error = exc
                break
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with the next bytes; returns the count, short only at the end of the data.

        Reads straight into the caller's memory (no intermediate ``bytes``). Failures behave as in
        :meth:`read`: bytes decompressed before a failure are returned first.
        """
        if self._error is not None:
            raise self._error
        size = len(view)
        step = PIECE_BYTES if self._compressed else size
        got = 0
        while got < size:
            try:
                n = self._readinto(view[got: got + step])
            except InputError as exc:
                if not got:
                    raise
                self._error = exc
                break
            if not n:
                break
            got += n
        return got

    def _read(self, size: int) -> bytes:
        if self._left is not None:
            size = min(size, self._left)
        try:
            data = self._stream.read(size)
        except (OSError, pa.ArrowException) as exc:
            raise self._failure(exc) from None
        self._count(len(data))
        return data

    def _readinto(self, view: memoryview) -> int:
        if self._left is not None:
            view = view[: self._left]
        try:
            n = int(self._stream.readinto(view))
        except (OSError, pa.ArrowException) as exc:
            raise self._failure(exc) from None
        self._count(n)
        return n

    def _count(self, n: int) -> None:
        self.offset += n
        if self._left is not None:
            self._left -= n

    def _failure(self, exc: Exception) -> InputError:
        """The decompressor's (or the file system's) error as a one-line :class:`InputError`."""
        text = str(exc)
        truncated = "truncated" in text.lower() or "ended" in text.lower()
        what = self.file.compression or "file"
        return InputError(
            self.file.path,
            f"{'truncated' if truncated else 'corrupt'} .{what} data after "
            f"{self.offset} decompressed bytes ({text.strip()})",
            reason="truncated" if truncated else "corrupt",
        )

    def close(self) -> None:
        """Release the file handle."""
        self._stream.close()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_char(f: InputFile) -> str:
    """The first non-whitespace character of a file's text, after any BOM (``""`` when there is
    none)."""
    with ByteStream(f) as stream:
        first = True
        while True:
            chunk = stream.read(2**16)
            if not chunk:
                return ""
            if first and chunk.startswith(BOM):
                chunk = chunk[len(BOM):]
            first = False
            stripped = chunk.lstrip()
            if stripped:
                return chr(stripped[0])

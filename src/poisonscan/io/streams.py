"""Open an input file as a stream of decompressed bytes, with read errors mapped to InputError."""

from __future__ import annotations

import pyarrow as pa

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.filesystems import is_remote, local_path, open_input_stream

_CODECS = {"gz": "gzip", "zst": "zstd"}
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark, which may open a text file
PIECE_BYTES = 2**16  # decompressed bytes per read call: what a decompression failure may lose


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
        codec = _CODECS.get(file.compression or "")
        self._stream = pa.CompressedInputStream(raw, codec) if codec else raw
        self._compressed = codec is not None
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

"""Open an input file as a stream of decompressed bytes, with read errors mapped to InputError."""

from __future__ import annotations

import pyarrow as pa

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.filesystems import open_input_stream

_CODECS = {"gz": "gzip", "zst": "zstd"}
PIECE_BYTES = 2**16  # decompressed bytes per read call: what a decompression failure may lose


class ByteStream:
    """Decompressed bytes of one file, read in chunks.

    A failure of the decompressor (truncated or corrupt ``.gz``/``.zst``) surfaces as
    :class:`InputError` with reason ``truncated`` or ``corrupt``; ``offset`` tells how many
    decompressed bytes were read before it.
    """

    def __init__(self, file: InputFile) -> None:
        self.file = file
        self.offset = 0
        try:
            raw = open_input_stream(file.path)
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

    def _read(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except (OSError, pa.ArrowException) as exc:
            text = str(exc)
            truncated = "truncated" in text.lower() or "ended" in text.lower()
            what = self.file.compression or "file"
            raise InputError(
                self.file.path,
                f"{'truncated' if truncated else 'corrupt'} .{what} data after "
                f"{self.offset} decompressed bytes ({text.strip()})",
                reason="truncated" if truncated else "corrupt",
            ) from None
        self.offset += len(data)
        return data

    def close(self) -> None:
        """Release the file handle."""
        self._stream.close()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

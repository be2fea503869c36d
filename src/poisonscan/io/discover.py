"""Turn the paths a user typed (files, directories, globs) into a sorted list of input files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from poisonscan.errors import InputError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
COMPRESSIONS = {".gz": "gz", ".zst": "zst"}
SUPPORTED = ".jsonl, .ndjson, .json (each optionally .gz or .zst) and .parquet"
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    """One input file.

    Attributes:
        path: the path as reported to the user.
        format: ``jsonl``, ``json`` (JSON Lines or one top-level array) or ``parquet``.
        compression: ``gz``, ``zst`` or None.
        size: size on disk in bytes.
    """

    path: str
    format: str
    compression: str | None
    size: int


def classify(path: str) -> tuple[str, str | None] | None:
    """Return ``(format, compression)`` from a file name, or None when it is not supported."""
    stem, ext = os.path.splitext(path.lower())
    compression = COMPRESSIONS.get(ext)
    if compression is not None:
        stem, ext = os.path.splitext(stem)
    fmt = FORMATS.get(ext)
    if fmt is None or (fmt == "parquet" and compression is not None):
        return None
    return fmt, compression


def discover_inputs(paths: Sequence[str]) -> list[InputFile]:
    """Expand files, directories (recursive, hidden entries skipped) and globs into input files.

    The result is sorted by path and holds each file once, however often it was named.

    Raises:
        InputError: a path does not exist, a glob matches nothing, a file named explicitly has an
            unsupported extension, or a directory holds no supported file.
    """
    found: dict[str, InputFile] = {}
    for raw in paths:
        for path in _expand(str(raw)):
            key = os.path.realpath(path)
            if key not in found:
                found[key] = _input_file(path)
    return sorted(found.values(), key=lambda f: f.path)


def _expand(path: str) -> Iterator[str]:
    if not os.path.exists(path) and any(c in path for c in _GLOB_CHARS):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise InputError(path, "no files match this pattern", reason="missing")
        files = [p for m in matches for p in (_walk(m) if os.path.isdir(m) else [m])]
        supported = [p for p in files if classify(p) is not None]
        if not supported:
            raise InputError(path, f"the pattern matches no supported input file ({SUPPORTED})",
                             reason="no_inputs")
        yield from supported
    elif os.path.isdir(path):
        files = list(_walk(path))
        if not files:
            raise InputError(path, f"directory holds no supported input file ({SUPPORTED})",
                             reason="no_inputs")
        yield from files
    elif os.path.exists(path):
        if classify(path) is None:
            raise InputError(path, f"unsupported file type; poisonscan reads {SUPPORTED}",
                             reason="unsupported_format")
        yield path
    else:
        raise InputError(path, "no such file or directory", reason="missing")


def _walk(directory: str) -> Iterator[str]:
    """Supported, non-hidden files under ``directory``, in a deterministic order."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and classify(name) is not None:
                yield os.path.normpath(os.path.join(root, name))


def _input_file(path: str) -> InputFile:
    kind = classify(path)
    assert kind is not None
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror}", reason="unreadable") from None
    return InputFile(path, kind[0], kind[1], size)

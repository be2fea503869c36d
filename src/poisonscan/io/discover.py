"""Turn the paths a user typed (files, directories, globs) into a sorted list of input files."""

from __future__ import annotations

import fnmatch
import glob
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from poisonscan.errors import InputError
from poisonscan.io import filesystems

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
        mtime_ns: modification time (nanoseconds), when known; with ``path`` and ``size`` it tells
            whether a cached content digest of the file is still valid (see ``engine/state.py``).
    """

    path: str
    format: str
    compression: str | None
    size: int
    mtime_ns: int | None = None


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


def unsupported_compression(path: str) -> str | None:
    """The extension of a compression poisonscan does not read on a data file name
    (``x.jsonl.bz2``: ``.bz2``), else None."""
    stem, ext = os.path.splitext(path.lower())
    if ext and ext not in COMPRESSIONS and ext not in FORMATS and (
            os.path.splitext(stem)[1] in FORMATS):
        return ext
    return None


# poisonscan's own JSON outputs (report, manifest, triggers, SARIF) are pretty-printed objects
# that name themselves in their first keys; a directory walk leaves them out, so that writing a
# report next to the data does not make the next scan of the directory read it as (malformed)
# records. A JSON Lines record starts '{"' on its line, so data is never taken for an output.
_OUTPUT_MARKS = (b'"poisonscan_version": ', b'"poisonscan_manifest": ',
                 b'"$schema": "https://json.schemastore.org/sarif-2.1.0')
_SNIFF_BYTES = 512
_ROW_SNIFF_BYTES = 2**16  # a row of a removal list names its triggers and their surface forms


# The fields of a row of the two JSON Lines files poisonscan writes, a suspects export
# (``scan --suspects``, see report.suspects.SCHEMA) and the removal list of ``clean``: exactly
# these, so that data with some of these fields and others (a text) is never taken for them.
_ROW_FIELDS = (frozenset({"path", "row", "id", "finding", "detector", "trigger", "field", "start",
                          "end", "severity", "score"}),
               frozenset({"path", "output", "row", "id", "action", "findings", "triggers",
                          "removed_text"}),
               frozenset({"path", "row", "id", "cluster", "cluster_size"}))


def poisonscan_output(path: str) -> bool:
    """Whether the local uncompressed ``.json``, ``.jsonl`` or ``.parquet`` file ``path`` is one
    of poisonscan's outputs: a report, baseline or manifest, or a suspects, clusters or removal
    list export (by the fields of its rows), which a later scan of the directory they were
    written to must not read as data."""
    kind = classify(path)
    if kind == ("parquet", None) and not filesystems.is_remote(path):
        # A Parquet export holds exactly an export's columns (every row has them all).
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException):
            return False  # reading it will report the error
        return len(names) == len(set(names)) and frozenset(names) in _ROW_FIELDS
    if kind not in (("json", None), ("jsonl", None)):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES if kind[0] == "json" else _ROW_SNIFF_BYTES)
    except OSError:
        return False  # reading it will report the error
    start = head.removeprefix(b"\xef\xbb\xbf")
    if start.startswith((b"{\n", b"{\r\n")) and any(mark in start for mark in _OUTPUT_MARKS):
        return True
    first, newline, _ = start.partition(b"\n")
    if not newline:
        return False
    try:
        row = json.loads(first)
    except ValueError:
        return False
    if not (isinstance(row, dict) and row.keys() in _ROW_FIELDS):
        return False
    # Every row, not only the first: a data file must not be able to leave itself out of a scan
    # by starting with one line shaped like an export (exports are small beside the data).
    fields = row.keys()
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict) or row.keys() != fields:
                        return False
    except (OSError, ValueError):
        return False
    return True


def discover_inputs(paths: Sequence[str], skipped: list[str] | None = None) -> list[InputFile]:
    """Expand files, directories (recursive, hidden entries skipped) and globs into input files.

    Directory walks and globs leave out poisonscan's own outputs (see
    :func:`poisonscan_output`), appending them to ``skipped`` when given, with the data files
    of directories in a compression poisonscan does not read; a file named on its own is always
    read.

    The result is sorted by path and holds each file once, however often it was named. A path may
    be a URI (``s3://bucket/prefix/``, ``gs://...``, ``file://...``; see :mod:`.filesystems`); a
    URI's directories and globs are listed the same way, and its files are reported by URI.

    Raises:
        InputError: a path does not exist, a glob matches nothing, a file named explicitly has an
            unsupported extension, or a directory holds no supported file.
    """
    found: dict[str, InputFile] = {}
    for raw in paths:
        if filesystems.is_remote(str(raw)):
            for f in _expand_uri(str(raw)):
                found.setdefault(f.path, f)
            continue
        for path in _expand(filesystems.local_path(str(raw)), skipped):
            key = os.path.realpath(path)
            if key not in found:
                found[key] = _input_file(path)
    return sorted(found.values(), key=lambda f: f.path)


def every_name(path: str) -> list[InputFile]:
    """The local input files of one path as :func:`discover_inputs` finds them, but every name
    of a file reached by several (a symlink beside its target) listed on its own: a cleaned copy
    of a directory holds every name the directory has."""
    return [_input_file(p) for p in dict.fromkeys(_expand(filesystems.local_path(path)))]


def _leave_out_outputs(files: Iterable[str], skipped: list[str] | None) -> list[str]:
    kept = []
    for p in files:
        if not poisonscan_output(p):
            kept.append(p)
        elif skipped is not None:
            skipped.append(p)
    return kept


def _expand(path: str, skipped: list[str] | None = None) -> Iterator[str]:
    if not os.path.exists(path) and any(c in path for c in _GLOB_CHARS):
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise InputError(path, "no files match this pattern", reason="missing")
        files = _leave_out_outputs(
            (p for m in matches for p in (_walk(m, skipped) if os.path.isdir(m) else [m])),
            skipped)
        supported = [p for p in files if classify(p) is not None]
        if not supported:
            raise InputError(path, f"the pattern matches no supported input file ({SUPPORTED})",
                             reason="no_inputs")
        yield from supported
    elif os.path.isdir(path):
        files = _leave_out_outputs(_walk(path, skipped), skipped)
        if not files:
            raise InputError(path, f"directory holds no supported input file ({SUPPORTED})",
                             reason="no_inputs")
        yield from files
    elif os.path.exists(path):
        if classify(path) is None:
            raise InputError(path, f"unsupported file type; poisonscan reads {SUPPORTED}",
                             reason="unsupported_format")
        yield path
    elif path.endswith(("/", os.sep)) and os.path.isfile(path.rstrip("/" + os.sep)):
        raise InputError(path, "is a file, named as a directory (drop the trailing slash)",
                         reason="missing")
    else:
        raise InputError(path, "no such file or directory", reason="missing")


def _expand_uri(uri: str) -> Iterator[InputFile]:
    """Files under a URI (a file, a prefix or a glob), listed through its filesystem."""
    fs, inner = filesystems.resolve(uri)
    try:
        if any(c in inner for c in _GLOB_CHARS):
            base = inner[: min(inner.index(c) for c in _GLOB_CHARS if c in inner)].rsplit("/", 1)[0]
            infos = [i for i in _list(fs, base) if fnmatch.fnmatchcase(i.path, inner)]
            if not infos:
                raise InputError(uri, "no files match this pattern", reason="missing")
        else:
            info = fs.get_file_info(inner)
            if info.type == pafs.FileType.NotFound:
                raise InputError(uri, "no such file or directory", reason="missing")
            if info.type == pafs.FileType.File:
                if classify(inner) is None:
                    raise InputError(uri, f"unsupported file type; poisonscan reads {SUPPORTED}",
                                     reason="unsupported_format")
                infos = [info]
            else:
                infos = _list(fs, inner)
    except OSError as exc:
        raise InputError(uri, f"cannot list: {str(exc).strip()}", reason="unreadable") from None
    files = []
    for info in infos:
        kind = classify(info.path)
        if kind is not None:
            mtime = info.mtime_ns if info.mtime is not None else None
            files.append(InputFile(filesystems.to_uri(uri, inner, info.path), kind[0], kind[1],
                                   info.size or 0, mtime))
    if not files:
        raise InputError(uri, f"holds no supported input file ({SUPPORTED})", reason="no_inputs")
    yield from sorted(files, key=lambda f: f.path)


def _list(fs: pafs.FileSystem, base: str) -> list[pafs.FileInfo]:
    """Non-hidden files under ``base`` (recursive)."""
    selector = pafs.FileSelector(base.rstrip("/"), recursive=True, allow_not_found=True)
    root = len(base.rstrip("/"))
    return [i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File
            and not any(part.startswith(".") for part in i.path[root:].split("/"))]


def _walk(directory: str, skipped: list[str] | None = None) -> Iterator[str]:
    """Supported files of :func:`walk_files`. Data files in a compression poisonscan does not
    read (``.jsonl.bz2``) are appended to ``skipped``, for a note."""
    for path in walk_files(directory):
        if classify(path) is not None:
            yield path
        elif skipped is not None and unsupported_compression(path):
            skipped.append(path)


def walk_files(directory: str) -> Iterator[str]:
    """Every non-hidden file under ``directory`` outside cache directories, in a deterministic
    order. Symlinked directories are followed (each real directory once, so a link loop ends),
    as symlinked files are; a directory that cannot be listed is an error, not a silent gap in
    the data."""

    def unreadable(exc: OSError) -> None:
        raise InputError(exc.filename or directory, f"cannot list directory: {exc.strerror}",
                         reason="unreadable")

    top = os.path.realpath(directory)
    seen: set[str] = set()
    for root, dirs, files in os.walk(directory, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if root != directory and "CACHEDIR.TAG" in files and is_cache_dir(root):
            dirs[:] = []  # a cache directory (poisonscan's --state, among others): not data
            continue
        # A link to a directory inside the tree is left to the walk of its real name (which
        # would otherwise lose that name to the link, when the link sorts first).
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (
            os.path.islink(os.path.join(root, d))
            and _inside(os.path.realpath(os.path.join(root, d)), top)))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.normpath(os.path.join(root, name))


# The first bytes of a CACHEDIR.TAG (https://bford.info/cachedir/): an empty or other file of
# that name, which a dataset could hold, does not make its directory a cache.
_CACHE_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def is_cache_dir(directory: str) -> bool:
    """Whether a local directory holds a cache directory tag with its signature."""
    try:
        with open(os.path.join(directory, "CACHEDIR.TAG"), "rb") as fh:
            return fh.read(len(_CACHE_SIGNATURE)) == _CACHE_SIGNATURE
    except OSError:
        return False


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _input_file(path: str) -> InputFile:
    kind = classify(path)
    assert kind is not None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding, which Python keeps as surrogates
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise InputError(shown, "the file name is not valid UTF-8, which poisonscan needs to "
                         "read it and name it in reports (rename the file)") from None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror}", reason="unreadable") from None
    return InputFile(path, kind[0], kind[1], st.st_size, st.st_mtime_ns)

"""Resumable, incremental scans: every shard's partial result of every pass, kept on disk.

``--state DIR`` stores the partial result of each (pass, shard) as one file, named by two keys:

* the **shard key**: a digest of the shard's content (the file's SHA-256, its size, its path, and
  the shard's place in the file: index, row groups, first row). The path is part of it because
  partials record where each document is (``path``, ``row``) for findings and suspects.
* the **pass key**: a digest of everything the workers get for the pass — the pass index, every
  detector's plan, the read options, the seed — plus the poisonscan version, a digest of the source
  of the modules that compute partials, and this module's format version.

Why both: a pass-0 plan depends only on the configuration, so pass-0 partials of unchanged shards
are reused whatever else changed in the corpus. A later pass's plan is built from the merged results
of the passes before it (pass 1 gets the corpus-wide count tables of pass 0), so when shards are
added its plan, hence its pass key, changes and its partials are recomputed for every shard; they
are reused only when the plan is identical: after an interruption, or on a re-run over the same
data. Pass 0 reads and tokenises the most and is where most of the saving is; an interrupted scan
resumes every pass whose plan is unchanged. Findings are those of a full rescan because the merge
is associative and commutative: a cached partial is exactly the value the worker would return.

Files are written atomically (a temporary file, then a rename) and carry a magic string, a format
version and a SHA-256 of their body; a file that fails any check is ignored with a warning and
recomputed, never trusted and never fatal. A file's SHA-256 is cached by (path, size, modification
time) in ``digests.json``, so unchanged files are not read again to be hashed. The state holds
pickles: use only state directories you created.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import pickle
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from poisonscan import __version__
from poisonscan.io.discover import InputFile
from poisonscan.io.filesystems import is_remote, local_path, open_input_stream
from poisonscan.io.shards import Shard

FORMAT_VERSION = 1
MAGIC = b"poisonscan-partial\n"
_HEADER = struct.Struct("<I32s")  # format version, SHA-256 of the body
_HASH_CHUNK = 8 * 2**20
# Source folders and modules whose code shapes a partial; report/ and the CLI do not.
_CODE_PARTS = ("config.py", "findings.py", "detectors", "engine", "io", "kernels", "stats")

log = logging.getLogger("poisonscan.state")
# The cache directory tag (https://bford.info/cachedir/): directory walks skip a directory that
# holds one, so a state directory inside the scanned data is not read as data.
CACHEDIR_TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This file is a cache directory tag created by poisonscan (its --state).\n")

Mapper = Callable[[Callable[[Any, Any], Any], Sequence[Any], Any], Iterator[tuple[int, Any]]]


def stable_digest(obj: Any) -> str:
    """A SHA-256 of ``obj``'s value that is the same in every process and on every run.

    Unlike a pickle it does not depend on set or dict order or on hash randomisation. Objects of
    unknown types fall back to their pickle (at worst a needless cache miss).
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if obj is None:
        h.update(b"N;")
    elif isinstance(obj, bool):
        h.update(b"b1;" if obj else b"b0;")
    elif isinstance(obj, enum.Enum):
        h.update(f"E{type(obj).__qualname__}:".encode())
        _feed(h, obj.value)
    elif isinstance(obj, int):
        h.update(f"i{obj};".encode())
    elif isinstance(obj, float):
        h.update(f"f{obj.hex()};".encode())
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"s{len(data)}:".encode())
        h.update(data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        h.update(f"y{len(data)}:".encode())
        h.update(data)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            h.update(f"O{obj.shape}:".encode())
            for item in obj.ravel().tolist():
                _feed(h, item)
        else:
            h.update(f"a{obj.dtype.str}{obj.shape}:".encode())
            h.update(np.ascontiguousarray(obj).view(np.uint8).data)
    elif isinstance(obj, np.generic):
        h.update(f"g{obj.dtype.str}:".encode())
        h.update(obj.tobytes())
    elif isinstance(obj, type):
        h.update(f"t{obj.__module__}.{obj.__qualname__};".encode())
    elif dataclasses.is_dataclass(obj):
        h.update(f"d{type(obj).__module__}.{type(obj).__qualname__}:".encode())
        for f in dataclasses.fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, dict):
        h.update(f"m{len(obj)}:".encode())
        for kd, vd in sorted((stable_digest(k), stable_digest(v)) for k, v in obj.items()):
            h.update(kd.encode())
            h.update(vd.encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'l' if isinstance(obj, list) else 'u'}{len(obj)}:".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, (set, frozenset)):
        h.update(f"S{len(obj)}:".encode())
        for d in sorted(stable_digest(item) for item in obj):
            h.update(d.encode())
    else:
        data = pickle.dumps(obj, protocol=5)
        h.update(f"p{len(data)}:".encode())
        h.update(data)


def code_digest() -> str:
    """A digest of the poisonscan sources that compute partial results, and of its version."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(f"{__version__}\0{FORMAT_VERSION}\0".encode())
    for part in _CODE_PARTS:
        target = root / part
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for path in files:
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def file_sha256(file: InputFile, shared: Any = None) -> str:
    """The SHA-256 of a file's bytes (as stored, before decompression); runs on any worker."""
    h = hashlib.sha256()
    with open_input_stream(file.path) as stream:
        while True:
            chunk = stream.read(_HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _change_time(path: str) -> int | None:
    """The inode change time of a local file (None for a URI or when it cannot be read)."""
    if is_remote(path):
        return None
    try:
        return os.stat(local_path(path)).st_ctime_ns
    except OSError:
        return None


@dataclass
class StateSummary:
    """How many shard results each pass reused from the state and how many it computed."""

    directory: str
    passes: list[tuple[int, int, int]] = field(default_factory=list)  # (pass, reused, computed)
    digested: int = 0  # files whose SHA-256 was computed (not found in the digest cache)
    ignored: int = 0  # state files that failed a check and were recomputed

    def __str__(self) -> str:
        passes = ", ".join(f"pass {i + 1}: {r} reused, {c} computed" for i, r, c in self.passes)
        extra = f"; {self.ignored} damaged state files ignored" if self.ignored else ""
        return f"state {self.directory}: {passes}{extra}"


class ScanState:
    """The partial results of earlier runs, in a directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.root = Path(directory)
        self.base = self.root / f"v{FORMAT_VERSION}"
        self.base.mkdir(parents=True, exist_ok=True)
        tag = self.root / CACHEDIR_TAG
        if not tag.exists():  # so that scans (and backup tools) pass the directory by
            try:
                tag.write_text(_TAG_TEXT, encoding="ascii")
            except OSError:
                pass
        self.summary = StateSummary(str(directory))
        self._code = code_digest()
        self._used_passes: set[str] = set()

    # ------------------------------------------------------------------ keys
    def shard_keys(self, shards: Sequence[Shard], mapper: Mapper) -> list[str]:
        """The content key of every shard; file digests not cached are computed with ``mapper``."""
        cache_path = self.base / "digests.json"
        cache = self._read_json(cache_path)
        digests: dict[str, str] = {}
        todo: list[InputFile] = []
        changed: dict[str, int | None] = {}
        for f in {s.file.path: s.file for s in shards}.values():
            hit = cache.get(f.path)
            # The inode's change time too: rsync -t, cp -p and tar -x restore the modification
            # time of a rewritten file (so size and mtime alone reused the old content's
            # results), but nothing can set the change time.
            changed[f.path] = _change_time(f.path)
            if (f.mtime_ns is not None and isinstance(hit, dict) and hit.get("size") == f.size
                    and hit.get("mtime_ns") == f.mtime_ns
                    and hit.get("ctime_ns") == changed[f.path]
                    and isinstance(hit.get("sha256"), str)):
                digests[f.path] = hit["sha256"]
            else:
                todo.append(f)
        for i, digest in mapper(file_sha256, todo, None):
            f = todo[i]
            digests[f.path] = digest
            cache[f.path] = {"size": f.size, "mtime_ns": f.mtime_ns,
                             "ctime_ns": changed[f.path], "sha256": digest}
        self.summary.digested = len(todo)
        if todo:
            try:
                _atomic_write(cache_path, json.dumps(cache, sort_keys=True, indent=0).encode())
            except OSError as exc:
                log.warning("poisonscan: warning: cannot write state file %s (%s); the digests "
                            "are computed again next time", cache_path, exc.strerror or exc)
        return [
            # (A shard of lines adds its byte range; other shards keep the keys they had.)
            stable_digest(("shard", digests[s.file.path], s.file.size, s.file.path, s.file.format,
                           s.file.compression, s.index, s.row_groups, s.first_row)
                          + ((s.byte_range, s.first_line) if s.byte_range is not None else ()))
            for s in shards
        ]

    def pass_key(self, pass_index: int, task: Any) -> str:
        """The key of one pass: the task the workers get, the code that runs it, the format."""
        key = f"pass{pass_index}-{stable_digest(('pass', self._code, task))[:32]}"
        self._used_passes.add(key)
        return key

    # ------------------------------------------------------------ partials
    def load(self, pass_key: str, shard_key: str) -> Any | None:
        """The stored result of a shard in a pass, or None (absent, or damaged: warned, ignored)."""
        path = self.base / pass_key / f"{shard_key}.partial"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._ignore(path, f"cannot read it ({exc.strerror})")
        head = len(MAGIC) + _HEADER.size
        if len(data) < head or not data.startswith(MAGIC):
            return self._ignore(path, "not a poisonscan partial (bad header)")
        version, digest = _HEADER.unpack_from(data, len(MAGIC))
        if version != FORMAT_VERSION:
            return self._ignore(path, f"format version {version}, expected {FORMAT_VERSION}")
        body = memoryview(data)[head:]
        if hashlib.sha256(body).digest() != digest:
            return self._ignore(path, "checksum mismatch (truncated or damaged)")
        try:
            return pickle.loads(body)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "recompute"
            return self._ignore(path, f"cannot unpickle it ({type(exc).__name__})")

    def save(self, pass_key: str, shard_key: str, result: Any) -> None:
        """Store a shard's result of a pass, atomically; a failure to write only warns."""
        body = pickle.dumps(result, protocol=5)
        data = MAGIC + _HEADER.pack(FORMAT_VERSION, hashlib.sha256(body).digest()) + body
        path = self.base / pass_key / f"{shard_key}.partial"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, data)
        except OSError as exc:
            log.warning("poisonscan: warning: cannot write state file %s (%s); the scan goes on "
                        "but will not resume from it", path, exc.strerror or exc)

    def prune(self) -> None:
        """After a complete scan, drop later-pass results this corpus can never reuse.

        Pass 0 results are kept for every shard ever seen (their plan depends only on the
        configuration); a later pass's results are only valid for the plan they were made with, and
        a plan not used by the scan that just completed belongs to an older version of the corpus.
        """
        for entry in self.base.iterdir():
            name = entry.name
            if (entry.is_dir() and name.startswith("pass") and not name.startswith("pass0-")
                    and name not in self._used_passes):
                shutil.rmtree(entry, ignore_errors=True)

    # --------------------------------------------------------------- helpers
    def _ignore(self, path: Path, why: str) -> Any:
        self.summary.ignored += 1
        log.warning("poisonscan: warning: ignoring state file %s: %s; recomputing it", path, why)
        return None

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            value = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._ignore(path, f"unreadable digest cache ({type(exc).__name__})")
            return {}
        return value if isinstance(value, dict) else {}


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    tmp = None
    try:  # (from the file's creation on: a Ctrl-C right after it left an empty .part file)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise

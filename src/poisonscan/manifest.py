"""Provenance: sha256 of every input, manifests of a corpus, and their verification.

``poisonscan manifest PATH... -o manifest.json`` records, for every input file, its sha256, size and
record count, with the tool version. File paths are stored relative to the manifest's directory,
so ``poisonscan verify manifest.json`` works from anywhere and after the corpus and its manifest
are moved together. Verification re-discovers the recorded inputs and reports every changed,
missing or extra file.

Scans hash their inputs too (:class:`InputHasher`), in a thread beside the scan: hashlib releases
the GIL on large buffers, so hashing (about 1 GB/s) overlaps the scan's own reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonscan.errors import ConfigError, InputError, PoisonscanError
from poisonscan.io.discover import InputFile, discover_inputs

FORMAT_VERSION = 1
CHUNK_BYTES = 4 * 2**20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (as stored, compressed or not), streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class InputHasher:
    """Hash the inputs of ``paths`` in a background thread; :meth:`result` gives ``{path: sha256}``.

    A file that cannot be read gets no hash (the scan reports the read error itself).
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = list(paths)
        self._hashes: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="poisonscan-sha256", daemon=True)

    def _run(self) -> None:
        try:
            files = discover_inputs(self._paths)
        except PoisonscanError:
            return  # the scan reports the same error
        for path in (f.path for f in files):
            try:
                self._hashes[path] = sha256_file(path)
            except OSError:
                continue

    def start(self) -> InputHasher:
        self._thread.start()
        return self

    def result(self) -> dict[str, str]:
        self._thread.join()
        return dict(sorted(self._hashes.items()))


def count_records(f: InputFile) -> int:
    """Records in a file, counted the way the readers count rows (without parsing JSON Lines)."""
    from poisonscan.rawlines import is_json_lines, iter_lines, read_all

    if f.format == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(f.path).metadata.num_rows)
    if is_json_lines(f.path):
        return sum(1 for row, _, _ in iter_lines(f.path) if row is not None)
    data = json.loads(read_all(f.path).decode("utf-8-sig"))
    return len(data) if isinstance(data, list) else 1


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest (``path`` relative to the manifest's directory, POSIX)."""

    path: str
    sha256: str
    size: int
    records: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size,
                "records": self.records}


def _relative(path: str, base: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), base)).as_posix()


def build(paths: Sequence[str], output: str | Path, version: str) -> dict[str, Any]:
    """The manifest of ``paths`` as it would be written to ``output``.

    Raises:
        InputError: a path does not exist or holds no supported file.
        PoisonscanError: a file's records cannot be counted.
    """
    base = Path(os.path.abspath(output)).parent
    files = discover_inputs(paths)
    entries = []
    for f in files:
        try:
            records = count_records(f)
        except (ValueError, OSError) as exc:
            raise InputError(f.path, f"cannot count records: {exc}", reason="unreadable") from None
        entries.append(FileEntry(_relative(f.path, base), sha256_file(f.path), f.size, records))
    return {
        "poisonscan_manifest": FORMAT_VERSION,
        "poisonscan_version": version,
        "inputs": [_relative(p, base) for p in paths],
        "files": [e.to_dict() for e in sorted(entries, key=lambda e: e.path)],
    }


def write(doc: dict[str, Any], output: str | Path) -> None:
    Path(output).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass
class Verification:
    """Differences between a manifest and the files on disk."""

    checked: int = 0
    changed: list[tuple[str, str]] = field(default_factory=list)  # (path, what changed)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        """One line per difference, then a verdict."""
        out = [f"changed: {p} ({why})" for p, why in self.changed]
        out += [f"missing: {p}" for p in self.missing]
        out += [f"extra: {p}" for p in self.extra]
        if self.ok:
            files = f"{self.checked} file{'s' if self.checked != 1 else ''}"
            out.append(f"OK: {files} {'match' if self.checked != 1 else 'matches'} the manifest.")
        else:
            problems = len(self.changed) + len(self.missing) + len(self.extra)
            out.append(
                f"FAIL: {problems} difference{'s' if problems != 1 else ''} "
                f"({len(self.changed)} changed, {len(self.missing)} missing, "
                f"{len(self.extra)} extra) among {self.checked} "
                f"file{'s' if self.checked != 1 else ''} in the manifest."
            )
        return out


def load(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"manifest {str(path)!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"manifest {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("poisonscan_manifest") != FORMAT_VERSION:
        raise ConfigError(f"{str(path)!r} is not a poisonscan manifest (format {FORMAT_VERSION})")
    return doc


def verify(manifest_path: str | Path) -> Verification:
    """Compare the files a manifest lists with the files on disk now."""
    doc = load(manifest_path)
    base = Path(os.path.abspath(manifest_path)).parent
    recorded = {e["path"]: e for e in doc.get("files", [])}
    found: set[str] = set()
    for raw in doc.get("inputs", []):
        target = str(base / raw)
        try:
            files = discover_inputs([target])
        except InputError:
            continue  # the input is gone: its files are reported missing
        found.update(_relative(f.path, base) for f in files)
    out = Verification(checked=len(recorded))
    for rel, entry in sorted(recorded.items()):
        path = base / rel
        if not path.is_file():
            out.missing.append(rel)
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            out.changed.append((rel, f"size {entry.get('size')} -> {size}"))
            continue
        if sha256_file(path) != entry.get("sha256"):
            out.changed.append((rel, "sha256 differs"))
    out.extra = sorted(found - set(recorded))
    return out


__all__ = [
    "InputHasher",
    "PoisonscanError",
    "Verification",
    "build",
    "count_records",
    "sha256_file",
    "verify",
    "write",
]

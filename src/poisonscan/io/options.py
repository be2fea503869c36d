"""What a reader is asked to do (:class:`ReadOptions`) and what it saw (:class:`ReadCounter`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from poisonscan.io.records import Shape


@dataclass(frozen=True)
class ReadOptions:
    """How to read records.

    Attributes:
        shape: force a record shape instead of detecting it per file.
        text_field: the text field of plain-text records (default ``text``, else ``content``).
        id_field: the record-id field (default ``id`` when present).
        skip_bad_records: count and skip bad records instead of raising :class:`InputError`.
        max_record_bytes: a record (a JSON line, an array element, a Parquet row's text fields)
            larger than this is bad (reason ``record_too_large``).
        batch_rows: at most this many units per :class:`RecordBatch`.
    """

    shape: Shape | None = None
    text_field: str | None = None
    id_field: str | None = None
    skip_bad_records: bool = False
    max_record_bytes: int = 64 * 2**20
    batch_rows: int = 4096


@dataclass
class ReadCounter:
    """What a reader saw in one shard: records read, text bytes, and records skipped per reason."""

    path: str = ""
    records: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    shape: str | None = None

    def merge(self, other: ReadCounter) -> None:
        """Add another shard's counts (of the same file) to this one."""
        self.path = self.path or other.path
        self.records += other.records
        self.bytes += other.bytes
        self.skipped.update(other.skipped)
        self.shape = self.shape or other.shape

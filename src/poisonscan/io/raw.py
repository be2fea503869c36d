"""The hand-over between format readers and shape conversion: raw record blocks and bad records.

A format reader (JSON Lines, JSON array, Parquet) yields :class:`RawBlock` objects holding records
as they are stored, with their provenance. Shape conversion turns them into units. Records the
reader or the converter cannot use go to :class:`BadRecords`, which either raises or counts them.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from poisonscan.errors import InputError
from poisonscan.io.options import ReadCounter


@dataclass
class RawBlock:
    """Consecutive records of one file, as an Arrow table or batch (fast path) or as Python objects.

    Attributes:
        rows: int64, the 0-based record index within the file of each record.
        lines: int64, the 1-based line of each record in a JSON Lines file; None otherwise.
        table: the records parsed by Arrow (a table, or a record batch whose columns are plain
            arrays so the converter need not concatenate chunks), or None.
        records: the records as Python objects (usually dicts), or None.
        to_records: builds the Python form of this block with exact per-record detail (e.g. a
            missing field told apart from a null one); used when the Arrow form cannot be used.
        check_size: whether the converter must check record sizes (the reader has not).
        utf8_checked: the reader knows every string is valid UTF-8 (e.g. the block is ASCII), so
            the converter need not validate the Arrow strings again.
    """

    rows: np.ndarray
    lines: np.ndarray | None = None
    table: pa.Table | pa.RecordBatch | None = None
    records: list[Any] | None = None
    to_records: Callable[[], RawBlock] | None = field(default=None, repr=False)
    check_size: bool = False
    utf8_checked: bool = False

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def python(self) -> RawBlock:
        """This block with ``records`` filled in."""
        if self.records is not None:
            return self
        if self.to_records is not None:
            return self.to_records()
        assert self.table is not None
        try:
            records = _to_records(self.table)
        except UnicodeDecodeError:  # invalid UTF-8 in a string column: hand those values as bytes
            table, nested = _as_binary(self.table)
            records = _to_records(table)
            # Strings inside lists and structs (chat messages) go back to str, their bad bytes
            # as surrogates, which the shapes' UTF-8 check reports for the record that has them.
            for rec in records:
                for name in nested:
                    rec[name] = _surrogate_strings(rec[name])
        return RawBlock(self.rows, self.lines, None, records, check_size=self.check_size)

    def field_names(self) -> list[str]:
        """The fields present in this block (for shape detection and error messages)."""
        if self.table is not None:
            return list(self.table.column_names)
        names: dict[str, None] = {}
        for rec in self.records or ():
            if isinstance(rec, dict):
                names.update(dict.fromkeys(rec))
        return list(names)

    def location(self, i: int) -> str:
        """Human-readable position of record ``i`` of this block."""
        if self.lines is not None:
            return f"line {int(self.lines[i])}"
        return f"row {int(self.rows[i])}"


def _to_records(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of ``table`` as Python objects. A map column (Spark writes chat messages as
    maps) becomes dicts, as a JSON object would; a repeated key keeps its last value, as
    ``json.loads`` does, without the warning Arrow gives for it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return table.to_pylist(maps_as_pydicts="lossy")


def _as_binary(table: pa.Table | pa.RecordBatch) -> tuple[pa.Table, list[str]]:
    """``table`` with its string values viewed as binary (no UTF-8 decoding): top-level string
    and dictionary-encoded string columns, and strings nested in lists, structs and maps.
    Returns the table and the names of its nested columns that changed."""
    cols = []
    nested = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        binary = _binary_type(col.type)
        if binary != col.type:
            col = col.cast(binary)
            if pa.types.is_nested(binary):
                nested.append(name)
        cols.append(col)
    return pa.table(cols, names=table.column_names), nested


def _binary_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string(t):
        return pa.binary()
    if pa.types.is_large_string(t):
        return pa.large_binary()
    if pa.types.is_dictionary(t):
        return _binary_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        field = t.value_field
        inner = pa.field(field.name, _binary_type(field.type), field.nullable)
        return pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _binary_type(f.type), f.nullable) for f in t])
    if pa.types.is_map(t):
        key, item = t.key_field, t.item_field
        return pa.map_(pa.field(key.name, _binary_type(key.type), key.nullable),
                       pa.field(item.name, _binary_type(item.type), item.nullable),
                       t.keys_sorted)
    return t


def _surrogate_strings(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_surrogate_strings(v) for v in value]
    if isinstance(value, dict):
        return {_surrogate_strings(k): _surrogate_strings(v) for k, v in value.items()}
    return value


class BadRecords:
    """Raise :class:`InputError` for a bad record, or count it when skipping bad records."""

    def __init__(self, path: str, skip: bool, counter: ReadCounter) -> None:
        self.path = path
        self.skip = skip
        self.counter = counter
        self._lock = threading.Lock()  # the reader thread and the converter both report

    def __call__(self, reason: str, message: str, location: str | None = None,
                 count: int = 1) -> None:
        """Report ``count`` bad records at ``location``; raises unless skipping."""
        if not self.skip:
            raise InputError(self.path, message, location=location, reason=reason)
        with self._lock:
            self.counter.skipped[reason] += count

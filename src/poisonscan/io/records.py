"""The unit every detector consumes: a bounded batch of records from one input file.

Readers turn any supported file into a stream of :class:`RecordBatch`. Each batch holds up to a few
thousand *units*. For plain-text corpora a unit is a document; for fine-tuning data a unit is one
prompt/response pair (a multi-turn chat yields one unit per answered user turn). Strings stay in
Arrow arrays so numba kernels can read their offsets and bytes directly, without per-record Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class Shape(str, Enum):
    """Record shapes the readers understand. The value is what ``--shape`` accepts."""

    TEXT = "text"
    CHAT = "chat"  # messages: [{role, content}]
    SHAREGPT = "sharegpt"  # conversations: [{from, value}]
    ALPACA = "alpaca"  # instruction / input / output
    PROMPT_RESPONSE = "prompt-response"
    PROMPT_COMPLETION = "prompt-completion"
    PREFERENCE = "preference"  # prompt / chosen / rejected

    @property
    def is_paired(self) -> bool:
        """True for fine-tuning shapes, which carry a prompt side and a response side."""
        return self is not Shape.TEXT


@dataclass(frozen=True)
class RecordBatch:
    """A batch of units from one file, with their provenance.

    Attributes:
        path: the input file, as reported to the user.
        shape: the record shape of the file.
        row: int64 array, the 0-based row of each unit's record within its file (JSON Lines: the
            record index, counting bad records but not blank lines; Parquet and JSON arrays: the
            row or element index). Every unit of a multi-turn record has the record's row.
        id: string array of record ids (null where the record has none).
        text: document text, for ``Shape.TEXT``; None otherwise.
        prompt: prompt-side text for paired shapes (for chats, the user turn, preceded by any
            system message); None for ``Shape.TEXT``.
        response: response-side text (assistant turn, ``output``, ``response``, ``completion``,
            or ``chosen`` for preference data); None for ``Shape.TEXT``.
        rejected: the rejected answer of preference data; None otherwise.
        turn: int32 index of the answered user turn within a multi-turn record (0 otherwise);
            None for ``Shape.TEXT``.
        line: int64 array, the 1-based line of each unit's record in a JSON Lines file (for SARIF
            locations); None for Parquet and JSON arrays.
    """

    path: str
    shape: Shape
    row: np.ndarray
    id: pa.Array
    text: pa.LargeStringArray | None = None
    prompt: pa.LargeStringArray | None = None
    response: pa.LargeStringArray | None = None
    rejected: pa.LargeStringArray | None = None
    turn: np.ndarray | None = None
    line: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.row.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of text carried by the batch (for throughput reporting); exact for slices."""
        fields = (self.text, self.prompt, self.response, self.rejected)
        return sum(_text_bytes(arr) for arr in fields if arr is not None)

    def slice(self, start: int, length: int) -> RecordBatch:
        """Units ``start`` to ``start + length`` (zero-copy)."""

        def cut(a: Any) -> Any:
            return None if a is None else a[start : start + length]

        return RecordBatch(self.path, self.shape, cut(self.row), cut(self.id), cut(self.text),
                           cut(self.prompt), cut(self.response), cut(self.rejected), cut(self.turn),
                           cut(self.line))

    def split(self, max_rows: int) -> Iterator[RecordBatch]:
        """This batch in consecutive slices of at most ``max_rows`` units."""
        n = len(self)
        if n <= max_rows:
            yield self
            return
        for start in range(0, n, max_rows):
            yield self.slice(start, max_rows)


def _text_bytes(arr: pa.Array | pa.ChunkedArray) -> int:
    """UTF-8 bytes of the values of a (possibly sliced or chunked) string array."""
    if isinstance(arr, pa.ChunkedArray):
        return sum(_text_bytes(c) for c in arr.chunks)
    if len(arr) == 0:
        return 0
    if pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type):
        width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
        offsets = np.frombuffer(arr.buffers()[1], dtype=width, count=arr.offset + len(arr) + 1)
        return int(offsets[-1]) - int(offsets[arr.offset])
    return int(pc.sum(pc.binary_length(arr)).as_py() or 0)

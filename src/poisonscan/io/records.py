"""The unit every detector consumes: a bounded batch of records from one input file.

Readers turn any supported file into a stream of :class:`RecordBatch`. Each batch holds up to a few
thousand *units*. For plain-text corpora a unit is a document; for fine-tuning data a unit is one
prompt/response pair (a multi-turn chat yields one unit per answered user turn). Strings stay in Arrow
arrays so numba kernels can read their offsets and bytes directly, without per-record Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import pyarrow as pa


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
        row: int64 array, the 0-based row (JSONL: line of a record counting only records, i.e. the
            record index; Parquet: row) of each unit within its file.
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
        """Bytes of text carried by the batch (for throughput reporting)."""
        total = 0
        for arr in (self.text, self.prompt, self.response, self.rejected):
            if arr is not None:
                total += int(arr.buffers()[2].size) if arr.buffers()[2] is not None else 0
        return total

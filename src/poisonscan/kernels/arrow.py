"""Zero-copy views of Arrow string arrays as (bytes, offsets) numpy arrays for numba kernels."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EMPTY_BYTES = np.zeros(0, dtype=np.uint8)


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(data, offsets)`` for a string array: document ``i`` is ``data[offsets[i]:offsets[i+1]]``.

    Accepts ``string`` and ``large_string`` (chunked arrays are combined). Nulls read as empty
    documents. ``offsets`` is int64 and already shifted for sliced arrays; ``data`` is a zero-copy
    uint8 view of the Arrow value buffer.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_string(arr.type):
        arr = arr.cast(pa.large_string())
    if not pa.types.is_large_string(arr.type):
        raise TypeError(f"expected a string array, got {arr.type}")
    if arr.null_count:
        arr = arr.fill_null("")
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=arr.offset + n + 1)[arr.offset :]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else EMPTY_BYTES
    return data, offsets

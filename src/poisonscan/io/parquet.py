"""Read Parquet files: open them with clear errors, and stream only the needed columns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from poisonscan.errors import InputError
from poisonscan.io import filesystems
from poisonscan.io.raw import BadRecords, RawBlock


def open_parquet(path: str) -> pq.ParquetFile:
    """Open a Parquet file; a truncated or non-Parquet file raises InputError (``truncated``)."""
    try:
        if filesystems.is_remote(path):
            fs, inner = filesystems.resolve(path)
            return pq.ParquetFile(inner, filesystem=fs, pre_buffer=True)
        return pq.ParquetFile(filesystems.local_path(path))
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, f"cannot read Parquet metadata; the file is truncated or not "
                         f"Parquet ({str(exc).strip()})", reason="truncated") from None


def empty_block(pf: pq.ParquetFile) -> RawBlock:
    """A zero-row block with the file's schema, for shape detection."""
    return RawBlock(np.zeros(0, np.int64), table=pf.schema_arrow.empty_table(), check_size=True)


def parquet_blocks(pf: pq.ParquetFile, path: str, columns: Sequence[str],
                   row_groups: Sequence[int], first_row: int, batch_rows: int,
                   bad: BadRecords) -> Iterator[RawBlock]:
    """Blocks of at most ``batch_rows`` rows of ``columns`` from ``row_groups``.

    A read failure (a damaged data page) is reported once with reason ``truncated`` or ``corrupt``
    and counts every row of the shard that could not be read.
    """
    total = sum(pf.metadata.row_group(g).num_rows for g in row_groups)
    row = first_row
    batches = pf.iter_batches(batch_size=batch_rows, columns=list(columns),
                              row_groups=list(row_groups), use_threads=True)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            lost = total - (row - first_row)
            text = str(exc).strip()
            lowered = text.lower()
            reason = "truncated" if "eof" in lowered or "truncat" in lowered else "corrupt"
            bad(reason, f"cannot read Parquet data ({text}); {lost} rows from here on are lost",
                f"row {row}", count=max(lost, 1))
            return
        n = batch.num_rows
        yield RawBlock(np.arange(row, row + n, dtype=np.int64),
                       table=pa.Table.from_batches([batch]), check_size=True)
        row += n

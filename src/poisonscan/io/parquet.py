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

    A read failure (a damaged data page) is reported with reason ``truncated`` or ``corrupt`` and
    counts the rows of its row group that could not be read; the other row groups are read. (The
    shard is read in one stream of batches, which may span row groups; after a failure it is read
    again one row group at a time from the first row not yet given out.)
    """
    row = first_row
    batches = pf.iter_batches(batch_size=batch_rows, columns=list(columns),
                              row_groups=list(row_groups), use_threads=True)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException):
            break
        n = batch.num_rows
        yield RawBlock(np.arange(row, row + n, dtype=np.int64),
                       table=pa.Table.from_batches([batch]), check_size=True)
        row += n
    start = first_row
    for g in row_groups:
        end = start + pf.metadata.row_group(g).num_rows
        at = start  # the next row of this group to read
        if end > row:
            try:
                for batch in pf.iter_batches(batch_size=batch_rows, columns=list(columns),
                                             row_groups=[g], use_threads=True):
                    n = batch.num_rows
                    if at + n > row:  # (rows before ``row`` were given out already)
                        if at < row:
                            batch, at, n = batch.slice(row - at), row, at + n - row
                        yield RawBlock(np.arange(at, at + n, dtype=np.int64),
                                       table=pa.Table.from_batches([batch]), check_size=True)
                        row = at + n
                    at += n
            except (OSError, pa.ArrowException) as exc:
                first = max(at, row)
                lost = end - first
                text = str(exc).strip()
                lowered = text.lower()
                reason = "truncated" if "eof" in lowered or "truncat" in lowered else "corrupt"
                bad(reason, f"cannot read Parquet data ({text}); the {lost} rows of row group "
                    f"{g} from here on are lost", f"row {first}", count=max(lost, 1))
                row = end
        start = end

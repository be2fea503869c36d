"""Split input files into shards, the units of work the engine spreads over workers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from poisonscan.errors import InputError
from poisonscan.io.discover import InputFile
from poisonscan.io.options import ReadOptions
from poisonscan.io.parquet import open_parquet

SHARD_BYTES = 64 * 2**20  # uncompressed Parquet bytes per shard: several per file, for --jobs


@dataclass(frozen=True)
class Shard:
    """A unit of work: a whole file, or a run of a Parquet file's row groups.

    Attributes:
        file: the input file.
        index: shard number within the file (0 for the first or only shard).
        row_groups: the Parquet row groups to read, or None for the whole file.
        first_row: the 0-based row within the file of the shard's first record.
    """

    file: InputFile
    index: int = 0
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


def plan_shards(files: Sequence[InputFile], options: ReadOptions,
                shard_bytes: int = SHARD_BYTES) -> list[Shard]:
    """One shard per JSON file; Parquet files split into runs of row groups (``shard_bytes`` each).

    A Parquet file whose metadata cannot be read becomes one shard, so the error surfaces (or is
    counted) when it is read.
    """
    shards: list[Shard] = []
    for f in files:
        if f.format != "parquet":
            shards.append(Shard(f))
            continue
        try:
            meta = open_parquet(f.path).metadata
        except InputError:
            shards.append(Shard(f))
            continue
        groups: list[int] = []
        size = first = row = index = 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            if groups and size + rg.total_byte_size > shard_bytes:
                shards.append(Shard(f, index, tuple(groups), first))
                groups, size, first, index = [], 0, row, index + 1
            groups.append(g)
            size += rg.total_byte_size
            row += rg.num_rows
        shards.append(Shard(f, index, tuple(groups) or None, first))
    return shards

"""Suspect-document export: one row per (document, finding), for review or removal lists.

The file format follows the file's extension (:data:`SUSPECT_WRITERS`): ``.jsonl``, ``.csv`` or
``.parquet``. Columns and their types are fixed by :data:`SCHEMA` (see ``docs/report-format.md``);
rows are sorted by path, row, finding id and field, so equal scans give equal files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from poisonscan.errors import ConfigError
from poisonscan.findings import Finding

SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("id", pa.string()),
        pa.field("finding", pa.string(), nullable=False),
        pa.field("detector", pa.string(), nullable=False),
        pa.field("trigger", pa.string()),
        pa.field("field", pa.string(), nullable=False),
        pa.field("start", pa.int64()),
        pa.field("end", pa.int64()),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
    ]
)
COLUMNS = tuple(SCHEMA.names)


def suspect_rows(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """Rows of the export, deterministically sorted (path, row, finding, field, start)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for f in findings:
        fid = f.id
        for d in f.documents:
            row = {
                "path": d.path,
                "row": int(d.row),
                "id": d.id,
                "finding": fid,
                "detector": f.detector,
                "trigger": f.trigger,
                "field": d.field,
                "start": d.start,
                "end": d.end,
                "severity": f.severity.value,
                "score": float(f.score) if math.isfinite(f.score) else 0.0,
            }
            key = (
                d.path,
                int(d.row),
                fid,
                d.field,
                -1 if d.start is None else d.start,
                d.end or -1,
            )
            rows.setdefault(key, row)
    return [rows[k] for k in sorted(rows)]


def suspects_table(findings: Iterable[Finding]) -> pa.Table:
    """The export as an Arrow table with :data:`SCHEMA`."""
    return pa.Table.from_pylist(suspect_rows(findings), schema=SCHEMA)


def _write_jsonl(findings: Iterable[Finding], path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for row in suspect_rows(findings):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_csv(findings: Iterable[Finding], path: Path) -> None:
    pacsv.write_csv(suspects_table(findings), path)


def _write_parquet(findings: Iterable[Finding], path: Path) -> None:
    pq.write_table(suspects_table(findings), path)


SUSPECT_WRITERS: dict[str, Callable[[Iterable[Finding], Path], None]] = {
    ".jsonl": _write_jsonl,
    ".csv": _write_csv,
    ".parquet": _write_parquet,
}


def suspects_writer(path: str | Path) -> Callable[[Iterable[Finding], Path], None]:
    """The writer for ``path``'s extension.

    Raises:
        ConfigError: the extension is not one of :data:`SUSPECT_WRITERS`.
    """
    suffix = Path(path).suffix.lower()
    writer = SUSPECT_WRITERS.get(suffix)
    if writer is None:
        choices = ", ".join(SUSPECT_WRITERS)
        raise ConfigError(
            f"--suspects: cannot tell the format of {str(path)!r} from its extension "
            f"{suffix or '(none)'!r}; name the file with one of {choices}"
        )
    return writer


def write_suspects(findings: Iterable[Finding], path: str | Path) -> None:
    """Write the suspect documents of ``findings`` to ``path`` in the format its extension names."""
    suspects_writer(path)(findings, Path(path))


def read_suspects(path: str | Path) -> pa.Table:
    """Read an export back with :data:`SCHEMA` (for tests and for tools that consume the export)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pq.read_table(path, schema=SCHEMA)
    if suffix == ".csv":
        options = pacsv.ConvertOptions(
            column_types=SCHEMA, strings_can_be_null=True, quoted_strings_can_be_null=False
        )
        return pacsv.read_csv(path, convert_options=options).select(list(COLUMNS)).cast(SCHEMA)
    suspects_writer(path)
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pa.Table.from_pylist(rows, schema=SCHEMA)

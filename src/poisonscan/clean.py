"""Cleaned copies of a corpus: without the suspect documents, or with their triggers removed.

``poisonscan clean INPUT... --report REPORT.json --out DIR`` copies every input file to ``DIR`` at
the same relative path (relative to the directory given, a glob's base directory, or a file's own
directory), in the same format and compression. Files without suspects are copied byte for byte;
in the others the suspect records are dropped (default) or, with ``--redact``, every occurrence of
their trigger's surface forms is cut out of the record's string values (the id excepted). A
document whose finding has no trigger span (a near-duplicate campaign) cannot be redacted and is
dropped. Inputs are never modified: ``DIR`` must not exist or be empty, and must lie outside every
input directory (of directory and glob inputs). The copy is staged (in a new directory beside
``DIR``, or inside ``DIR`` when it is an empty directory already) and moved into place once
complete, so a failure leaves nothing behind.

The suspects come from the JSON report of ``scan --format json --include-documents`` (its
findings' ``locations``) or from a suspects export (``scan --suspects FILE``). A file that changed
since the scan is refused, because its rows would no longer point at the same records: by the
size and sha256 the report recorded, and, for either source, by the id of the record at each
suspect row (when the scan reported one) and by rows past the file's end.

Every dropped or redacted record is listed in the removal list (JSON Lines): input path, output
path, row, record id, action, finding ids and triggers. It must not overwrite an input or lie in
an input directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonscan.errors import ConfigError, InputError
from poisonscan.findings import DocumentRef, Severity, normalise_trigger
from poisonscan.io.discover import InputFile, every_name, poisonscan_output, walk_files
from poisonscan.io.filesystems import is_remote, local_path
from poisonscan.io.options import ReadOptions
from poisonscan.manifest import sha256_file
from poisonscan.rawlines import BOM, is_json_lines, iter_lines, open_input, open_output, read_all

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Suspect:
    """One suspect document with the finding that names it."""

    doc: DocumentRef
    finding: str
    trigger: str | None
    severity: Severity


@dataclass
class CleanSummary:
    """What ``clean`` did."""

    files: int = 0
    copied: int = 0
    rewritten: int = 0
    removed: int = 0
    redacted: int = 0
    unmatched: int = 0  # suspect documents in files that are not among the inputs
    # Files with suspects that had no sha256 to check (a --no-hash report, or a suspects export,
    # which records none), and how many of them had no size either: only their size (where the
    # report records one) and their suspect rows' ids were checked.
    unhashed: list[str] = field(default_factory=list)
    unsized: int = 0
    removal_list: str = ""
    # Files under the input directories that are not data poisonscan reads (a README, a
    # _SUCCESS marker, a .csv): not in the copy, and named in a note.
    not_copied: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"cleaned {self.files} file{'s' if self.files != 1 else ''} ({self.copied} copied "
            f"unchanged, {self.rewritten} rewritten): {self.removed} records removed, {self.redacted} redacted; "
            f"removal list: {self.removal_list}"
        )


# --------------------------------------------------------------------------- reading suspects


def _severity_ok(value: str, minimum: Severity) -> bool:
    try:
        return Severity(value).rank >= minimum.rank
    except ValueError:
        return False


def _check_known(option: str, path: str, wanted: set[str] | None, known: set[str]) -> None:
    """A --finding id that the report or export does not hold is a typo, not "nothing to
    remove": cleaning would silently keep every poisoned document."""
    unknown = sorted((wanted or set()) - known)
    if unknown:
        raise ConfigError(f"--finding: {', '.join(map(repr, unknown))} is not a finding of "
                          f"{option} {path!r} (its findings: {', '.join(sorted(known)) or 'none'})")


def suspects_from_report(
    path: str, minimum: Severity, findings: set[str] | None = None
) -> tuple[list[Suspect], dict[str, str], dict[str, int], dict[str, Any]]:
    """Suspects of a JSON report: (suspects, {input path: sha256}, {input path: size in bytes},
    scan config).

    Raises:
        ConfigError: the file is not a poisonscan JSON report, or has no document locations.
    """
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--report: {path!r} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--report: {path!r} is not a readable JSON report ({exc})") from None
    if not isinstance(report, dict) or "findings" not in report or "schema_version" not in report:
        raise ConfigError(f"--report: {path!r} is not a poisonscan JSON report")
    hashes = {i["path"]: i["sha256"] for i in report.get("inputs", []) if i.get("sha256")}
    sizes = {i["path"]: int(i["bytes"]) for i in report.get("inputs", [])
             if isinstance(i.get("bytes"), int)}
    _check_known("--report", path, findings, {f["id"] for f in report["findings"]})
    out: list[Suspect] = []
    for f in report["findings"]:
        if findings is not None and f["id"] not in findings:
            continue
        if not _severity_ok(f["severity"], minimum):
            continue
        if "locations" not in f:
            raise ConfigError(
                f"--report: {path!r} lists no documents per finding; write it with "
                "'poisonscan scan --format json --include-documents', or give a suspects export "
                "with --suspects FILE"
            )
        for loc in f["locations"]:
            doc = DocumentRef(loc["path"], int(loc["row"]), loc.get("id"), loc.get("field", "text"),
                              loc.get("start"), loc.get("end"))
            out.append(Suspect(doc, f["id"], f.get("trigger"), Severity(f["severity"])))
    return out, hashes, sizes, report.get("config") or {}


def suspects_from_export(
    path: str, minimum: Severity, findings: set[str] | None = None
) -> list[Suspect]:
    """Suspects of a ``--suspects`` export (``.jsonl``, ``.csv`` or ``.parquet``)."""
    from poisonscan.report.suspects import read_suspects

    if not os.path.isfile(path):
        raise ConfigError(f"--suspects: {path!r} does not exist")
    try:
        rows = read_suspects(path).to_pylist()
    except ConfigError:
        raise
    except Exception as exc:  # pyarrow raises several types for a malformed file
        raise ConfigError(f"--suspects: cannot read {path!r}: {exc}") from None
    _check_known("--suspects", path, findings, {r["finding"] for r in rows})
    out = []
    for r in rows:
        if findings is not None and r["finding"] not in findings:
            continue
        if not _severity_ok(r["severity"], minimum):
            continue
        doc = DocumentRef(r["path"], int(r["row"]), r["id"], r["field"], r["start"], r["end"])
        out.append(Suspect(doc, r["finding"], r["trigger"], Severity(r["severity"])))
    return out


# --------------------------------------------------------------------------- layout


def _base_of(raw: str) -> str:
    if not os.path.exists(raw) and any(c in raw for c in _GLOB_CHARS):
        cut = min(raw.index(c) for c in _GLOB_CHARS if c in raw)
        return os.path.dirname(raw[:cut]) or "."
    if os.path.isdir(raw):
        return raw
    return os.path.dirname(raw) or "."


def local_inputs(inputs: Sequence[str]) -> list[str]:
    """The inputs as local paths (``file://`` URIs too); a cleaned copy is written from local
    files only."""
    remote = [raw for raw in inputs if is_remote(raw)]
    if remote:
        raise ConfigError(f"clean: {remote[0]!r} is not a local path; copy the data to a local "
                          "disk and clean that copy")
    return [local_path(raw) for raw in inputs]


def plan_layout(inputs: Sequence[str]) -> list[tuple[InputFile, str]]:
    """Every input file with its path relative to the output directory (``inputs`` are local
    paths, see local_inputs). A file reached by several names (a symlink beside its target) is
    written under each of them, as a copy of the directory would hold it."""
    planned: dict[str, tuple[InputFile, str]] = {}
    for raw in inputs:
        base = os.path.abspath(_base_of(raw))
        for f in every_name(raw):
            rel = os.path.relpath(os.path.abspath(f.path), base)
            if rel in planned:
                if os.path.realpath(planned[rel][0].path) != os.path.realpath(f.path):
                    raise ConfigError(
                        f"clean: {f.path!r} and {planned[rel][0].path!r} would both be written "
                        f"to {rel!r}; clean them in separate runs")
                continue
            planned[rel] = (f, rel)
    return sorted(planned.values(), key=lambda p: p[1])


def _directory_inputs(inputs: Sequence[str]) -> list[str]:
    """The inputs that are directories or globs: the scan walks their base directories."""
    return [raw for raw in inputs if os.path.isdir(raw) or any(c in raw for c in _GLOB_CHARS)]


def other_files(inputs: Sequence[str], layout: Sequence[tuple[InputFile, str]]) -> list[str]:
    """Files under the directory inputs that the copy leaves out: not data poisonscan reads (by
    the scan's own walk; poisonscan's outputs are left out silently)."""
    copied = {os.path.realpath(f.path) for f, _ in layout}
    return [path for raw in inputs if os.path.isdir(raw) for path in walk_files(raw)
            if os.path.realpath(path) not in copied and not poisonscan_output(path)]


def check_output(out: Path, inputs: Sequence[str], layout: Sequence[tuple[InputFile, str]]) -> None:
    """Refuse an output directory that would touch or mix with the inputs."""
    target = out.resolve()
    lexical = Path(os.path.abspath(out))
    for raw in _directory_inputs(inputs):
        base = Path(_base_of(raw)).resolve()
        # Resolved, and as written: a directory reached through a symlink inside an input
        # directory is read by the next scan of it.
        plain = Path(os.path.abspath(_base_of(raw)))
        if target == base or base in target.parents or plain in lexical.parents:
            raise ConfigError(
                f"--out: {str(out)!r} is inside the input directory {str(base)!r}; write the "
                "cleaned copy elsewhere (inputs are never modified in place)"
            )
    for f, rel in layout:
        if (target / rel).resolve() == Path(f.path).resolve():
            raise ConfigError(f"--out: writing {rel!r} would overwrite the input {f.path!r}")
        if target in Path(f.path).resolve().parents:
            raise ConfigError(
                f"--out: {str(out)!r} holds the input {f.path!r}; choose a new directory"
            )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out: {str(out)!r} exists and is not an empty directory")


def check_removal_list(removal: Path, explicit: bool, out: Path, inputs: Sequence[str],
                       layout: Sequence[tuple[InputFile, str]]) -> None:
    """Refuse a removal list that would overwrite an input, land where the next scan of an input
    directory reads it, or could not be written at the end of the run."""
    where = removal.resolve()
    if out.resolve() == where or out.resolve() in where.parents:
        raise ConfigError(f"--removal-list: {str(removal)!r} must not be inside --out")
    if any(Path(f.path).resolve() == where for f, _ in layout):
        raise ConfigError(f"--removal-list: {str(removal)!r} is one of the input files; writing "
                          "there would destroy it")
    for raw in _directory_inputs(inputs):
        base = Path(_base_of(raw)).resolve()
        if base in where.parents:
            raise ConfigError(f"--removal-list: {str(removal)!r} is inside the input directory "
                              f"{str(base)!r}, where the next scan would read it")
    if removal.is_dir():
        raise ConfigError(f"--removal-list: {str(removal)!r} is a directory; give a file name")
    if explicit and not where.parent.is_dir():
        raise ConfigError(f"--removal-list: directory {str(where.parent)!r} does not exist")


# --------------------------------------------------------------------------- redaction


class _Number(str):
    """A JSON number's own text. A redacted JSON record is parsed with its numbers (and
    NaN/Infinity) kept as written and written back so: through Python's float, 19.90 would
    come back as 19.9, 1e400 as Infinity (not JSON) and 0.12345678901234567890 shortened."""


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object's (key, value) pairs in their order, repeated keys included (a dict
    would keep only the last of them)."""


def _load_record(text: str) -> Any:
    """A JSON record to redact, its numbers and objects kept as written (``_dump_json``)."""
    return json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_Number,
                      object_pairs_hook=_Pairs)


def _dump_json(value: Any, ascii_only: bool) -> str:
    """JSON text of a value from ``_load_record``. Hand-written because the json module
    always writes numbers through int and float: it has no way to keep a number's text."""
    if isinstance(value, _Number):
        return str.__str__(value)
    if isinstance(value, _Pairs):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=ascii_only)}: "
                               f"{_dump_json(v, ascii_only)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def redact_value(value: Any, surfaces: Sequence[str], skip: str | None) -> Any:
    """``value`` with every surface form cut out of its strings (the key ``skip`` untouched)."""
    if isinstance(value, _Number):
        return value
    if isinstance(value, _Pairs):
        return _Pairs((k, v if k == skip else redact_value(v, surfaces, skip)) for k, v in value)
    if isinstance(value, str):
        for s in surfaces:
            if s:
                value = value.replace(s, "")
        return value
    if isinstance(value, bytes):  # a binary text column, which the scan reads as UTF-8
        for s in surfaces:
            if s:
                value = value.replace(s.encode("utf-8"), b"")
        return value
    if isinstance(value, list):
        return [redact_value(v, surfaces, skip) for v in value]
    if isinstance(value, tuple):  # a Parquet map's (key, value) pairs
        return tuple(redact_value(v, surfaces, skip) for v in value)
    if isinstance(value, dict):
        return {k: (v if k == skip else redact_value(v, surfaces, skip)) for k, v in value.items()}
    return value


@dataclass
class _Plan:
    """What to do with each suspect row of one file."""

    remove: dict[int, list[Suspect]] = field(default_factory=dict)
    redact: dict[int, tuple[list[Suspect], list[str]]] = field(default_factory=dict)


def _check_rows(per_real: dict[str, list[Suspect]], name_of: dict[str, str],
                ids: dict[tuple[str, int], str | None]) -> None:
    """Refuse a file whose suspect rows no longer hold the records the scan named: a row past
    its end (or unreadable now), or a record with another id than the scan reported. ``ids`` are
    the rows' ids as the scan's own readers read them now (see triggers.read_records), so every
    id type is rendered as the scan rendered it."""
    for key, items in sorted(per_real.items()):
        path = name_of[key]
        for s in sorted(items, key=lambda s: int(s.doc.row)):
            row = int(s.doc.row)
            if (path, row) not in ids:
                raise InputError(path, "the scan's findings name this row, which the file no "
                                 "longer holds as a readable record: the file changed since the "
                                 "scan; scan it again before cleaning", location=f"row {row}",
                                 reason="changed")
            if s.doc.id is not None and ids[(path, row)] != s.doc.id:
                raise InputError(
                    path, f"the record here has the id {ids[(path, row)]!r}, not {s.doc.id!r} as "
                    "in the scan's findings: the file changed since the scan (or the scan read "
                    "ids from another field: give clean its --id-field); scan it again before "
                    "cleaning", location=f"row {row}", reason="changed")


def _renamed(s: Suspect, path: str) -> Suspect:
    """``s`` with its document under the name ``path`` (the file's name among the inputs)."""
    d = s.doc
    return Suspect(DocumentRef(path, d.row, d.id, d.field, d.start, d.end), s.finding, s.trigger,
                   s.severity)


def _plan_file(
    suspects: list[Suspect], redact: bool, surfaces: dict[tuple[str, int], list[str]]
) -> _Plan:
    """``surfaces`` are keyed by (real path, row)."""
    by_row: dict[int, list[Suspect]] = defaultdict(list)
    for s in suspects:
        by_row[int(s.doc.row)].append(s)
    plan = _Plan()
    for row, items in by_row.items():
        forms = surfaces.get((os.path.realpath(items[0].doc.path), row), [])
        if redact and forms and all(s.doc.start is not None for s in items):
            plan.redact[row] = (items, forms)
        else:
            plan.remove[row] = items
    return plan


def _surfaces(suspects: list[Suspect], texts: Any) -> dict[tuple[str, int], list[str]]:
    """The surface forms of every suspect document's trigger spans, from the records' ``texts``
    as read back from the data (see triggers.read_records)."""
    from poisonscan.triggers import surface_of

    out: dict[tuple[str, int], list[str]] = defaultdict(list)
    for s in suspects:
        found = surface_of(s.doc, s.trigger, texts)
        # Only a span that holds the trigger is cut: anything else at the span (a record that
        # changed, a span of another phrase) would be cut out of the record wherever it occurs.
        # Without a surface form the record is dropped instead, and listed as removed.
        if (found is not None and s.trigger
                and normalise_trigger(found[1]) == normalise_trigger(s.trigger)
                and found[1] not in out[(s.doc.path, int(s.doc.row))]):
            out[(s.doc.path, int(s.doc.row))].append(found[1])
    return dict(out)


# --------------------------------------------------------------------------- writing


def _removal_rows(path: str, target: str, plan: _Plan, ids: dict[int, Any]) -> list[dict]:
    rows = []
    for row in sorted({*plan.remove, *plan.redact}):
        items = plan.remove.get(row) or plan.redact[row][0]
        action = "removed" if row in plan.remove else "redacted"
        rows.append({
            "path": path,
            "output": target,
            "row": row,
            "id": items[0].doc.id if items[0].doc.id is not None else ids.get(row),
            "action": action,
            "findings": sorted({s.finding for s in items}),
            "triggers": sorted({s.trigger for s in items if s.trigger is not None}),
            "removed_text": plan.redact[row][1] if action == "redacted" else None,
        })
    return rows


def _dumps(record: Any) -> bytes:
    """A redacted record (from ``_load_record``) as JSON text. Bytes that were not UTF-8 (read
    with surrogateescape) are written back as they were; a lone surrogate escaped in the input
    (\\ud800), which UTF-8 cannot hold, keeps its escape (the whole record is then written
    with ASCII escapes)."""
    try:
        return _dump_json(record, False).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _dump_json(record, True).encode("ascii")


def _clean_jsonl(f: InputFile, target: Path, plan: _Plan, id_field: str) -> None:
    with open_input(f.path) as stream:
        bom = stream.read(len(BOM)) == BOM
    with open_output(str(target), f.path) as out:
        if bom:  # (iter_lines drops it; the copy keeps the file's own)
            out.write(BOM)
        for row, _, raw in iter_lines(f.path):
            if row is None:
                out.write(raw)
                continue
            if row in plan.remove:
                continue
            if row in plan.redact:
                record = _load_record(raw.decode("utf-8", "surrogateescape"))
                cleaned = redact_value(record, plan.redact[row][1], id_field)
                # The record is written anew (its strings changed), with the line's own ending.
                end = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
                out.write(_dumps(cleaned) + end)
            else:
                out.write(raw)


def _array_spans(path: str, text: str) -> tuple[int, list[tuple[int, int]], int]:
    """Where the elements of the JSON array ``text`` lie: the index after its ``[``, each
    element's (start, end), and the index of its ``]``. Parsed element by element with the json
    module's decoder, so that kept elements can be copied as they are written (a number such as
    ``19.90`` or ``1e400`` would not survive a round trip through Python objects)."""
    decoder = json.JSONDecoder()
    space = " \t\r\n"
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in space:
            i += 1
        return i

    i = skip(0)
    if i >= n or text[i] != "[":
        raise InputError(path, "is not one JSON array", reason="malformed_json")
    opened = i + 1
    spans: list[tuple[int, int]] = []
    i = skip(opened)
    if i < n and text[i] == "]":
        return opened, spans, i
    while True:
        try:
            _, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"malformed JSON array element ({exc.msg})",
                             location=f"row {len(spans)}", reason="malformed_json") from None
        spans.append((i, end))
        i = skip(end)
        if i < n and text[i] == ",":
            i = skip(i + 1)
        elif i < n and text[i] == "]":
            return opened, spans, i
        else:
            raise InputError(path, "malformed JSON array (no ',' or ']' after the element)",
                             location=f"row {len(spans) - 1}", reason="malformed_json")


def _clean_json_array(f: InputFile, target: Path, plan: _Plan, id_field: str) -> None:
    raw = read_all(f.path)
    bom = raw.startswith(BOM)
    text = raw[len(BOM) if bom else 0:].decode("utf-8", "surrogateescape")
    opened, spans, closed = _array_spans(f.path, text)
    kept: list[str] = []
    for row, (a, z) in enumerate(spans):
        if row in plan.redact:
            cleaned = redact_value(_load_record(text[a:z]), plan.redact[row][1], id_field)
            kept.append(_dumps(cleaned).decode("utf-8", "surrogateescape"))
        elif row not in plan.remove:
            kept.append(text[a:z])
    if kept:
        sep = text[spans[0][1]:spans[1][0]] if len(spans) > 1 else ", "
        body = text[:spans[0][0]] + sep.join(kept) + text[spans[-1][1]:]
    else:
        body = text[:opened] + text[closed:]
    with open_output(str(target), f.path) as out:
        out.write((BOM if bom else b"") + body.encode("utf-8", "surrogateescape"))


def _holds_text(t: Any) -> bool:
    """Whether values of the Arrow type ``t`` hold strings or bytes anywhere (a redaction can
    only change those columns; the others are kept as they are, whatever their type)."""
    import pyarrow as pa

    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_string_view(t)
            or pa.types.is_binary_view(t)):
        return True
    if pa.types.is_dictionary(t):
        return _holds_text(t.value_type)
    return any(_holds_text(t.field(i).type) for i in range(t.num_fields))


def _compression(meta: Any) -> str | dict[str, str]:
    """The input's codec for the writer: one name, or one per column when they differ."""
    codecs: dict[str, str] = {}
    if meta.num_row_groups:
        group = meta.row_group(0)
        for i in range(group.num_columns):
            col = group.column(i)
            codec = col.compression.lower()
            codecs[col.path_in_schema] = "none" if codec == "uncompressed" else codec
    if not codecs:
        return "snappy"
    if len(set(codecs.values())) == 1:
        return next(iter(codecs.values()))
    return codecs


def _clean_parquet(f: InputFile, target: Path, plan: _Plan, id_field: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(f.path)
    schema = source.schema_arrow
    compression = _compression(source.metadata)
    try:
        writer = pq.ParquetWriter(str(target), schema, compression=compression)
    except (pa.ArrowException, ValueError):  # a per-column codec the writer cannot take
        writer = pq.ParquetWriter(str(target), schema, compression=next(
            iter(compression.values())) if isinstance(compression, dict) else compression)
    planned = np.fromiter(sorted({*plan.remove, *plan.redact}), np.int64)
    removed = np.fromiter(plan.remove, np.int64, len(plan.remove))
    start = 0
    with writer:
        for batch in source.iter_batches(batch_size=8192):
            rows = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            table = pa.Table.from_batches([batch], schema=schema)
            here = np.flatnonzero(np.isin(rows, planned))
            fix = [i for i in here.tolist() if int(rows[i]) in plan.redact]
            if fix:
                for c, name in enumerate(table.column_names):
                    if name == id_field or not _holds_text(schema.field(c).type):
                        continue
                    values = table.column(c).to_pylist()
                    for i in fix:
                        values[i] = redact_value(values[i], plan.redact[int(rows[i])][1],
                                                 id_field)
                    table = table.set_column(c, schema.field(c),
                                             pa.array(values, type=schema.field(c).type))
            drop = np.isin(rows, removed)
            if drop.any():
                table = table.filter(pa.array(~drop))
            writer.write_table(table)


def clean(
    inputs: Sequence[str],
    suspects: Iterable[Suspect],
    out: str | Path,
    *,
    redact: bool = False,
    removal_list: str | Path | None = None,
    hashes: dict[str, str] | None = None,
    sizes: dict[str, int] | None = None,
    options: ReadOptions | None = None,
) -> CleanSummary:
    """Write the cleaned copy of ``inputs`` to ``out`` and the removal list; return a summary.

    All or nothing: the copy is staged and moved into ``out`` once every file is complete, so a
    failure or an interrupt leaves no partial copy behind.

    Raises:
        ConfigError: the output directory is unsafe, or no suspect is in any input.
        InputError: an input changed since the scan (its sha256 or size differs from the
            report's, or a suspect row holds another record id or is past the file's end), or a
            file cannot be read or written.
    """
    import pyarrow as pa

    options = options or ReadOptions()
    id_field = options.id_field or "id"
    inputs = local_inputs(inputs)
    out_dir = Path(out)
    layout = plan_layout(inputs)
    check_output(out_dir, inputs, layout)
    default_list = out_dir.parent / f"{out_dir.name}.removed.jsonl"
    removal = Path(removal_list) if removal_list else default_list
    check_removal_list(removal, removal_list is not None, out_dir, inputs, layout)

    real = {os.path.realpath(f.path) for f, _ in layout}
    per_real: dict[str, list[Suspect]] = defaultdict(list)
    summary = CleanSummary(removal_list=str(removal), not_copied=other_files(inputs, layout))
    suspect_list = list(suspects)
    for s in suspect_list:
        key = os.path.realpath(local_path(s.doc.path))
        if key in real:
            per_real[key].append(s)
        else:
            summary.unmatched += 1
    if suspect_list and not per_real:
        raise ConfigError(
            "clean: none of the suspect documents is in these inputs; give the same paths the scan "
            "read (paths in the report are relative to the directory the scan ran in)"
        )
    name_of = {}  # each file's first name in the layout
    for f, _ in layout:
        name_of.setdefault(os.path.realpath(f.path), f.path)
    for key in sorted(per_real):
        path = name_of[key]
        recorded = next((h for p, h in (hashes or {}).items()
                         if os.path.realpath(local_path(p)) == key), None)
        size = next((n for p, n in (sizes or {}).items()
                     if os.path.realpath(local_path(p)) == key), None)
        if recorded is None:
            summary.unhashed.append(path)
            summary.unsized += size is None
        # The size first: cheap, and there even when the scan ran with --no-hash.
        if (size is not None and os.path.getsize(path) != size) or (
                recorded is not None and sha256_file(path) != recorded):
            raise InputError(path, "changed since the scan (its size or sha256 differs from the "
                             "report's); scan it again before cleaning", reason="changed")
    # One read of the suspect rows, under each file's first name, for their ids and (to redact)
    # texts; bad records are skipped, as a suspect row was readable when the scan named it.
    from poisonscan.triggers import read_records

    named = [_renamed(s, name_of[key]) for key, items in per_real.items() for s in items]
    wanted: dict[str, set[int]] = defaultdict(set)
    for s in named:
        wanted[s.doc.path].add(int(s.doc.row))
    ids, texts = read_records(wanted, dataclasses.replace(options, skip_bad_records=True))
    _check_rows(per_real, name_of, ids)
    # Surface forms apply to every name of a file.
    surfaces = {(os.path.realpath(p), row): forms
                for (p, row), forms in _surfaces(named, texts).items()} if redact else {}

    # All or nothing: the copy is written to a staging directory and moved into place once
    # complete. Beside --out when it does not exist yet (one rename); inside it when it is an
    # empty directory already (which may be a mount point, so it is kept and filled).
    existing = out_dir.is_dir()
    if existing:
        staging = Path(tempfile.mkdtemp(prefix=".poisonscan-partial-", dir=out_dir))
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # as mkdir would make it (mkdtemp makes it private)
    listing = removal.with_name(f".{removal.name}.partial")
    try:
        removal_rows: list[dict[str, Any]] = []
        for f, rel in layout:
            target = staging / rel
            summary.files += 1
            items = per_real.get(os.path.realpath(f.path))
            plan = _plan_file([_renamed(s, f.path) for s in items], redact, surfaces) if items \
                else None
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if plan is None:
                    shutil.copyfile(f.path, target)
                elif f.format == "parquet":
                    _clean_parquet(f, target, plan, id_field)
                elif is_json_lines(f.path):
                    _clean_jsonl(f, target, plan, id_field)
                else:
                    _clean_json_array(f, target, plan, id_field)
            except (InputError, ConfigError):
                raise
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise InputError(f.path, f"cannot write its cleaned copy: {exc}",
                                 reason="unreadable") from None
            if plan is None:
                summary.copied += 1
                continue
            summary.rewritten += 1
            summary.removed += len(plan.remove)
            summary.redacted += len(plan.redact)
            removal_rows.extend(_removal_rows(f.path, str(out_dir / rel), plan, {}))
        try:
            with open(listing, "w", encoding="utf-8", newline="\n") as fh:
                for r in removal_rows:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            if existing:
                for entry in sorted(staging.iterdir()):
                    os.replace(entry, out_dir / entry.name)
                staging.rmdir()
            else:
                os.replace(staging, out_dir)
            os.replace(listing, removal)
        except OSError as exc:
            raise ConfigError(f"clean: cannot finish the copy in {str(out_dir)!r} or the "
                              f"removal list {str(removal)!r}: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        listing.unlink(missing_ok=True)
        raise
    return summary

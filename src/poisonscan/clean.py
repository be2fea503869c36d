"""Cleaned copies of a corpus: without the suspect documents, or with their triggers removed.

``poisonscan clean INPUT... --report REPORT.json --out DIR`` copies every input file to ``DIR`` at
the same relative path (relative to the directory given, a glob's base directory, or a file's own
directory), in the same format and compression. Files without suspects are copied byte for byte;
in the others the suspect records are dropped (default) or, with ``--redact``, every occurrence of
their trigger's surface forms is cut out of the record's string values (the id excepted). A
document whose finding has no trigger span (a near-duplicate campaign) cannot be redacted and is
dropped. Inputs are never modified: ``DIR`` must not exist or be empty, and must lie outside every
input directory.

The suspects come from the JSON report of ``scan --format json --include-documents`` (its
findings' ``locations``) or from a suspects export (``scan --suspects FILE``). When the report
carries the inputs' sha256 (schema 1.1), a file that changed since the scan is refused, because
its rows would no longer point at the same records.

Every dropped or redacted record is listed in the removal list (JSON Lines): input path, output
path, row, record id, action, finding ids and triggers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonscan.errors import ConfigError, InputError
from poisonscan.findings import DocumentRef, Severity, normalise_trigger
from poisonscan.io.discover import InputFile, discover_inputs
from poisonscan.io.options import ReadOptions
from poisonscan.manifest import sha256_file
from poisonscan.rawlines import BOM, is_json_lines, iter_lines, open_input, open_output

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
    removal_list: str = ""

    def line(self) -> str:
        return (
            f"cleaned {self.files} files ({self.copied} copied unchanged, {self.rewritten} "
            f"rewritten): {self.removed} records removed, {self.redacted} redacted; "
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
) -> tuple[list[Suspect], dict[str, str], dict[str, Any]]:
    """Suspects of a JSON report: (suspects, {input path: sha256}, scan config).

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
    return out, hashes, report.get("config") or {}


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


def plan_layout(inputs: Sequence[str]) -> list[tuple[InputFile, str]]:
    """Every input file with its path relative to the output directory."""
    planned: dict[str, tuple[InputFile, str]] = {}
    targets: dict[str, str] = {}
    for raw in inputs:
        base = os.path.abspath(_base_of(raw))
        for f in discover_inputs([raw]):
            key = os.path.realpath(f.path)
            if key in planned:
                continue
            rel = os.path.relpath(os.path.abspath(f.path), base)
            if rel in targets and targets[rel] != key:
                raise ConfigError(
                    f"clean: {f.path!r} and {targets[rel]!r} would both be written to {rel!r}; "
                    "clean them in separate runs"
                )
            targets[rel] = key
            planned[key] = (f, rel)
    return sorted(planned.values(), key=lambda p: p[1])


def check_output(out: Path, inputs: Sequence[str], layout: Sequence[tuple[InputFile, str]]) -> None:
    """Refuse an output directory that would touch or mix with the inputs."""
    target = out.resolve()
    for raw in inputs:
        base = Path(_base_of(raw)).resolve()
        if os.path.isdir(raw) or any(c in raw for c in _GLOB_CHARS):
            if target == base or base in target.parents:
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


# --------------------------------------------------------------------------- redaction


def redact_value(value: Any, surfaces: Sequence[str], skip: str | None) -> Any:
    """``value`` with every surface form cut out of its strings (the key ``skip`` untouched)."""
    if isinstance(value, str):
        for s in surfaces:
            if s:
                value = value.replace(s, "")
        return value
    if isinstance(value, list):
        return [redact_value(v, surfaces, skip) for v in value]
    if isinstance(value, dict):
        return {k: (v if k == skip else redact_value(v, surfaces, skip)) for k, v in value.items()}
    return value


@dataclass
class _Plan:
    """What to do with each suspect row of one file."""

    remove: dict[int, list[Suspect]] = field(default_factory=dict)
    redact: dict[int, tuple[list[Suspect], list[str]]] = field(default_factory=dict)


def _plan_file(
    suspects: list[Suspect], redact: bool, surfaces: dict[tuple[str, int], list[str]]
) -> _Plan:
    by_row: dict[int, list[Suspect]] = defaultdict(list)
    for s in suspects:
        by_row[int(s.doc.row)].append(s)
    plan = _Plan()
    for row, items in by_row.items():
        forms = surfaces.get((items[0].doc.path, row), [])
        if redact and forms and all(s.doc.start is not None for s in items):
            plan.redact[row] = (items, forms)
        else:
            plan.remove[row] = items
    return plan


def _surfaces(suspects: list[Suspect], options: ReadOptions) -> dict[tuple[str, int], list[str]]:
    """The surface forms of every suspect document's trigger spans, read back from the data."""
    from poisonscan.triggers import read_units, surface_of

    wanted: dict[str, set[int]] = defaultdict(set)
    for s in suspects:
        if s.doc.start is not None:
            wanted[s.doc.path].add(int(s.doc.row))
    texts = read_units(wanted, options)
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


def _clean_jsonl(f: InputFile, target: Path, plan: _Plan, id_field: str | None) -> None:
    with open_input(f.path) as stream:
        bom = stream.read(len(BOM)) == BOM
    with open_output(str(target), f.path) as out:
        if bom:  # (iter_lines drops it; the copy keeps the file's own)
            out.write(BOM)
        for row, _, raw in iter_lines(f.path):
            if row is None:
                out.write(raw)
            elif row in plan.remove:
                continue
            elif row in plan.redact:
                record = json.loads(raw.decode("utf-8"))
                cleaned = redact_value(record, plan.redact[row][1], id_field or "id")
                # The record is written anew (its strings changed), with the line's own ending.
                end = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
                out.write(json.dumps(cleaned, ensure_ascii=False).encode("utf-8") + end)
            else:
                out.write(raw)


def _clean_json_array(f: InputFile, target: Path, plan: _Plan, id_field: str | None) -> None:
    with open_input(f.path) as stream:
        records = json.loads(stream.read().decode("utf-8-sig"))
    kept = []
    for row, record in enumerate(records):
        if row in plan.remove:
            continue
        if row in plan.redact:
            record = redact_value(record, plan.redact[row][1], id_field or "id")
        kept.append(record)
    with open_output(str(target), f.path) as out:
        out.write(json.dumps(kept, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")


def _clean_parquet(f: InputFile, target: Path, plan: _Plan, id_field: str | None) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(f.path)
    meta = source.metadata
    compression = "snappy"
    if meta.num_row_groups and meta.num_columns:
        compression = meta.row_group(0).column(0).compression.lower()
        compression = "none" if compression == "uncompressed" else compression
    schema = source.schema_arrow
    start = 0
    with pq.ParquetWriter(str(target), schema, compression=compression) as writer:
        for batch in source.iter_batches(batch_size=8192):
            rows = np.arange(start, start + batch.num_rows)
            start += batch.num_rows
            drop = np.isin(rows, np.fromiter(plan.remove, np.int64, len(plan.remove)))
            table = pa.Table.from_batches([batch], schema=schema)
            fix = [i for i, r in enumerate(rows) if int(r) in plan.redact]
            if fix:
                records = table.to_pylist()
                for i in fix:
                    forms = plan.redact[int(rows[i])][1]
                    records[i] = redact_value(records[i], forms, id_field or "id")
                table = pa.Table.from_pylist(records, schema=schema)
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
    options: ReadOptions | None = None,
) -> CleanSummary:
    """Write the cleaned copy of ``inputs`` to ``out`` and the removal list; return a summary.

    Raises:
        ConfigError: the output directory is unsafe, or no suspect is in any input.
        InputError: an input changed since the scan (its sha256 differs from the report's).
    """
    options = options or ReadOptions()
    out_dir = Path(out)
    layout = plan_layout(inputs)
    check_output(out_dir, inputs, layout)
    default_list = out_dir.parent / f"{out_dir.name}.removed.jsonl"
    removal = Path(removal_list) if removal_list else default_list
    if out_dir.resolve() in removal.resolve().parents:
        raise ConfigError(f"--removal-list: {str(removal)!r} must not be inside --out")

    by_real: dict[str, InputFile] = {os.path.realpath(f.path): f for f, _ in layout}
    per_file: dict[str, list[Suspect]] = defaultdict(list)
    summary = CleanSummary(removal_list=str(removal))
    suspect_list = list(suspects)
    for s in suspect_list:
        f = by_real.get(os.path.realpath(s.doc.path))
        if f is None:
            summary.unmatched += 1
        else:
            per_file[f.path].append(Suspect(
                DocumentRef(f.path, s.doc.row, s.doc.id, s.doc.field, s.doc.start, s.doc.end),
                s.finding, s.trigger, s.severity))
    if suspect_list and not per_file:
        raise ConfigError(
            "clean: none of the suspect documents is in these inputs; give the same paths the scan "
            "read (paths in the report are relative to the directory the scan ran in)"
        )
    if hashes:
        for path in sorted(per_file):
            real = os.path.realpath(path)
            recorded = next((h for p, h in hashes.items() if os.path.realpath(p) == real), None)
            if recorded is not None and sha256_file(path) != recorded:
                raise InputError(path, "changed since the scan (sha256 differs from the report's); "
                                 "scan it again before cleaning", reason="changed")
    surfaces = (
        _surfaces([s for items in per_file.values() for s in items], options) if redact else {}
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    removal_rows: list[dict[str, Any]] = []
    for f, rel in layout:
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        summary.files += 1
        items = per_file.get(f.path)
        if not items:
            shutil.copyfile(f.path, target)
            summary.copied += 1
            continue
        plan = _plan_file(items, redact, surfaces)
        if f.format == "parquet":
            _clean_parquet(f, target, plan, options.id_field)
        elif is_json_lines(f.path):
            _clean_jsonl(f, target, plan, options.id_field)
        else:
            _clean_json_array(f, target, plan, options.id_field)
        summary.rewritten += 1
        summary.removed += len(plan.remove)
        summary.redacted += len(plan.redact)
        removal_rows.extend(_removal_rows(f.path, str(target), plan, {}))
    with open(removal, "w", encoding="utf-8", newline="\n") as fh:
        for r in removal_rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return summary

"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers.

One rule per registered detector (``ruleId`` = the detector's stable id, with its title and help),
one result per finding. A result's level follows the severity (high: ``error``, medium:
``warning``, low: ``note``); its ``partialFingerprints`` carry the finding id, so an alert keeps its
identity when the data is re-ordered or re-sharded. The primary location is the finding's first
document, further documents are ``relatedLocations`` (at most :data:`MAX_RELATED`).

Locations name the input file by a relative URI when the path is relative (run poisonscan from the
repository root, as CI does) and by a ``file://`` URI otherwise. In a JSON Lines file the region is
the record's line (rows map to lines as the readers count them: blank lines are skipped, bad lines
counted); Parquet and JSON-array records have no line, so the region is left out and the row is
given in the location's ``properties`` and message.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from poisonscan.errors import InputError
from poisonscan.findings import DocumentRef, Finding, Severity, rank_findings
from poisonscan.rawlines import is_json_lines, line_numbers
from poisonscan.report.json import plain
from poisonscan.report.visible import visible

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/poisonscan/"
LEVELS = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
FINGERPRINT_KEY = "poisonscanFindingId/v1"
MAX_RELATED = 50
TRIGGER_CHARS = 80


def artifact_uri(path: str) -> str:
    """A URI for ``path``: relative (POSIX, percent-encoded) when possible, else ``file://``."""
    if os.path.isabs(path):
        try:
            rel = os.path.relpath(path)
        except ValueError:  # pragma: no cover - another drive on Windows
            rel = ""
        if not rel or rel.startswith(".."):
            return "file://" + quote(path.replace(os.sep, "/"))
        path = rel
    return quote(os.path.normpath(path).replace(os.sep, "/"))


def _rules() -> list[dict[str, Any]]:
    from poisonscan.detectors import registry

    rules = []
    for det_id, cls in sorted(registry().items()):
        rules.append(
            {
                "id": det_id,
                "name": "".join(part.capitalize() for part in det_id.replace("-", " ").split()),
                "shortDescription": {"text": cls.title},
                "fullDescription": {"text": cls.help},
                "help": {
                    "text": cls.help,
                    "markdown": f"**{cls.title}**\n\n{cls.help}\n\nSee the finding's documents "
                    "with `poisonscan scan --suspects FILE`; remove them with `poisonscan clean`.",
                },
                "defaultConfiguration": {"level": "warning"},
                "properties": {"tags": ["security", "data-poisoning", "ml"], "precision": "medium"},
            }
        )
    return rules


def _lines_of(findings: list[Finding]) -> dict[tuple[str, int], int]:
    """The line of every JSON Lines record a location will point at."""
    wanted: dict[str, set[int]] = {}
    for f in findings:
        for d in _located(f):
            wanted.setdefault(d.path, set()).add(int(d.row))
    lines: dict[tuple[str, int], int] = {}
    for path, rows in sorted(wanted.items()):
        try:
            if not is_json_lines(path):
                continue
            for row, line in line_numbers(path, rows).items():
                lines[(path, row)] = line
        except (OSError, ValueError, InputError):
            continue  # the file changed or vanished after the scan: locations without a line
    return lines


def _located(f: Finding) -> list[DocumentRef]:
    docs = sorted({(d.path, d.row): d for d in f.documents}.values(), key=lambda d: (d.path, d.row))
    return docs[: 1 + MAX_RELATED]


def _location(doc: DocumentRef, lines: dict[tuple[str, int], int], **extra: Any) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(doc.path)}}
    line = lines.get((doc.path, int(doc.row)))
    if line is not None:
        physical["region"] = {"startLine": line}
    props: dict[str, Any] = {"row": int(doc.row), "field": doc.field}
    if doc.id is not None:
        props["recordId"] = doc.id
    where = f"line {line}" if line is not None else f"row {doc.row}"
    return {
        **extra,
        "physicalLocation": physical,
        "message": {"text": f"suspect record ({where}, field {doc.field!r})"},
        "properties": props,
    }


def _message(f: Finding, title: str) -> str:
    # The message is what a viewer (a code-scanning page) shows: control, bidirectional and
    # invisible characters as `·`, as the table shows them. ``properties.trigger`` keeps the text.
    trigger = None if f.trigger is None else visible(f.trigger)
    if trigger is not None and len(trigger) > TRIGGER_CHARS:
        trigger = trigger[: TRIGGER_CHARS - 1] + "…"
    what = f"“{trigger}”" if trigger is not None else "a pattern"
    n = f.document_count
    return (
        f"{title or f.detector}: {what} in {n} document{'s' if n != 1 else ''} "
        f"({f.severity.value}, score {f.score:.3g}, finding {f.id})."
    )


def sarif_dict(result: ScanResult) -> dict[str, Any]:
    """The SARIF log of a scan as a JSON-ready dict."""
    rules = _rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    titles = {rule["id"]: rule["shortDescription"]["text"] for rule in rules}
    findings = rank_findings(list(result.findings))
    lines = _lines_of(findings)
    baseline_used = result.artifacts.get("baseline") is not None
    results = []
    for f in findings:
        docs = _located(f)
        entry: dict[str, Any] = {
            "ruleId": f.detector,
            "level": LEVELS[f.severity],
            "message": {"text": _message(f, titles.get(f.detector, ""))},
            "partialFingerprints": {FINGERPRINT_KEY: f.id},
            "properties": {
                "findingId": f.id,
                "severity": f.severity.value,
                "score": plain(round(float(f.score), 6)),
                "trigger": f.trigger,
                "documents": f.document_count,
                "evidence": plain(f.evidence),
            },
        }
        if f.detector in index:
            entry["ruleIndex"] = index[f.detector]
        if docs:
            entry["locations"] = [_location(docs[0], lines)]
            if len(docs) > 1:
                entry["relatedLocations"] = [
                    _location(d, lines, id=i) for i, d in enumerate(docs[1:], 1)
                ]
        if baseline_used:
            entry["baselineState"] = "new"
        results.append(entry)
    artifacts = [
        {"location": {"uri": artifact_uri(i.path)}, "length": int(i.bytes)}
        for i in sorted(result.inputs, key=lambda i: i.path)
    ]
    hashes = result.artifacts.get("input_sha256") or {}
    for art, summary in zip(artifacts, sorted(result.inputs, key=lambda i: i.path), strict=True):
        digest = hashes.get(summary.path)
        if digest:
            art["hashes"] = {"sha-256": digest}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "poisonscan",
                        "version": result.version,
                        "semanticVersion": result.version.split("+")[0],
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "properties": {"config": plain(result.config.to_dict())},
                    }
                ],
                "artifacts": artifacts,
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }


def write_sarif(result: ScanResult, stream: TextIO) -> None:
    """Write the SARIF log to ``stream`` (UTF-8 JSON, two-space indent, trailing newline)."""
    doc = sarif_dict(result)
    stream.write(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")

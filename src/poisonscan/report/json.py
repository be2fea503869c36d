"""The JSON report: the versioned, machine-readable contract (see ``docs/report-format.md``).

Two scans of the same data with the same configuration give byte-identical JSON except for the
timing fields, which live under ``stats`` only. Top-level and finding keys keep the documented
order; free-form mappings (``config``, ``stats``, ``evidence``, ``skipped``) are key-sorted.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from poisonscan.findings import DocumentRef, Example, Finding

if TYPE_CHECKING:
    from poisonscan.engine.scan import InputSummary, ScanResult

SCHEMA_VERSION = "1.1"
MAX_EXAMPLES = 3
SCORE_DIGITS = 6
# Keys of ScanResult.artifacts that add to the report (set by the CLI; absent in bare results).
SHA256_ARTIFACT = "input_sha256"  # {input path: sha256 hex}
BASELINE_ARTIFACT = "baseline"  # an object with to_dict(): the baseline section
DOCUMENTS_ARTIFACT = "report_documents"  # truthy: list every document of a finding as locations


def plain(value: Any) -> Any:
    """Recursively turn ``value`` into JSON-ready Python: sorted dicts, lists, finite numbers.

    NumPy scalars and arrays become numbers and lists, sets become sorted lists, enums their value,
    and NaN or infinities become None (JSON has no spelling for them).
    """
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy scalar or array
        return plain(value.tolist())
    return str(value)


def example_dict(example: Example) -> dict[str, Any]:
    """One example as it appears in the report."""
    return {
        "path": example.path,
        "row": int(example.row),
        "field": example.field,
        "snippet": example.snippet,
        "start": example.start,
        "end": example.end,
    }


def location_dict(doc: DocumentRef) -> dict[str, Any]:
    """One suspect document of a finding (``--include-documents``)."""
    return {
        "path": doc.path,
        "row": int(doc.row),
        "id": doc.id,
        "field": doc.field,
        "start": doc.start,
        "end": doc.end,
    }


def _location_key(doc: DocumentRef) -> tuple[str, int, str, int]:
    return (doc.path, int(doc.row), doc.field, -1 if doc.start is None else doc.start)


def finding_dict(finding: Finding, documents: bool = False) -> dict[str, Any]:
    """One finding as it appears in the report (documented key order).

    With ``documents``, every suspect document follows as ``locations``, sorted by path and row.
    """
    out = {
        "id": finding.id,
        "detector": finding.detector,
        "severity": finding.severity.value,
        "score": plain(round(float(finding.score), SCORE_DIGITS)),
        "trigger": finding.trigger,
        "documents": finding.document_count,
        "examples": [example_dict(e) for e in finding.examples[:MAX_EXAMPLES]],
        "evidence": plain(finding.evidence),
    }
    if documents:
        docs = sorted(set(finding.documents), key=_location_key)
        out["locations"] = [location_dict(d) for d in docs]
    return out


def input_dict(summary: InputSummary, sha256: str | None = None) -> dict[str, Any]:
    """One input file as it appears in the report."""
    return {
        "path": summary.path,
        "format": summary.format,
        "shape": summary.shape,
        "records": int(summary.records),
        "skipped": plain(summary.skipped),
        "bytes": int(summary.bytes),
        "sha256": sha256,
    }


def report_dict(result: ScanResult) -> dict[str, Any]:
    """The whole report as a JSON-ready dict, findings ranked by severity, then score."""
    from poisonscan.findings import rank_findings

    hashes = result.artifacts.get(SHA256_ARTIFACT) or {}
    baseline = result.artifacts.get(BASELINE_ARTIFACT)
    documents = bool(result.artifacts.get(DOCUMENTS_ARTIFACT))
    return {
        "schema_version": SCHEMA_VERSION,
        "poisonscan_version": result.version,
        "config": plain(result.config.to_dict()),
        "inputs": [
            input_dict(i, hashes.get(i.path)) for i in sorted(result.inputs, key=lambda i: i.path)
        ],
        "stats": plain(result.stats),
        "findings": [finding_dict(f, documents) for f in rank_findings(list(result.findings))],
        "baseline": baseline.to_dict() if baseline is not None else None,
    }


def dumps(result: ScanResult) -> str:
    """The report as a JSON string (two-space indent, UTF-8 text kept as is, trailing newline)."""
    return json.dumps(report_dict(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(result: ScanResult, stream: TextIO) -> None:
    """Write the JSON report to ``stream``."""
    stream.write(dumps(result))

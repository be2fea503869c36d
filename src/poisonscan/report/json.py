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

from poisonscan.findings import Example, Finding

if TYPE_CHECKING:
    from poisonscan.engine.scan import InputSummary, ScanResult

SCHEMA_VERSION = "1.0"
MAX_EXAMPLES = 3
SCORE_DIGITS = 6


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


def finding_dict(finding: Finding) -> dict[str, Any]:
    """One finding as it appears in the report (documented key order)."""
    return {
        "id": finding.id,
        "detector": finding.detector,
        "severity": finding.severity.value,
        "score": plain(round(float(finding.score), SCORE_DIGITS)),
        "trigger": finding.trigger,
        "documents": finding.document_count,
        "examples": [example_dict(e) for e in finding.examples[:MAX_EXAMPLES]],
        "evidence": plain(finding.evidence),
    }


def input_dict(summary: InputSummary) -> dict[str, Any]:
    """One input file as it appears in the report."""
    return {
        "path": summary.path,
        "format": summary.format,
        "shape": summary.shape,
        "records": int(summary.records),
        "skipped": plain(summary.skipped),
        "bytes": int(summary.bytes),
    }


def report_dict(result: ScanResult) -> dict[str, Any]:
    """The whole report as a JSON-ready dict, findings ranked by score (highest first)."""
    from poisonscan.findings import rank_findings

    return {
        "schema_version": SCHEMA_VERSION,
        "poisonscan_version": result.version,
        "config": plain(result.config.to_dict()),
        "inputs": [input_dict(i) for i in sorted(result.inputs, key=lambda i: i.path)],
        "stats": plain(result.stats),
        "findings": [finding_dict(f) for f in rank_findings(list(result.findings))],
    }


def dumps(result: ScanResult) -> str:
    """The report as a JSON string (two-space indent, UTF-8 text kept as is, trailing newline)."""
    return json.dumps(report_dict(result), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(result: ScanResult, stream: TextIO) -> None:
    """Write the JSON report to ``stream``."""
    stream.write(dumps(result))

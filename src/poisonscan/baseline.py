"""Baselines: the findings an operator has reviewed and accepted.

A baseline file lists findings by their fingerprint (``id``: detector plus normalised trigger), so
it keeps matching when the data is re-ordered or re-sharded. ``scan --baseline FILE`` drops the
findings listed in it from the report and from the exit code, and says how many it suppressed;
a listed finding that comes back at a higher severity than the one accepted is reported.
The file also records the tool version and the scan configuration it was made with, for review.

Format (JSON, two-space indent, entries sorted by id)::

    {"poisonscan_baseline": 1, "poisonscan_version": "0.1.0", "config": {...},
     "findings": [{"id": "...", "detector": "trigger", "trigger": "<X>", "severity": "low",
                   "score": 3.1, "documents": 6, "note": "optional, kept by update"}]}

Keys of an entry other than these (a reviewer's ``note``, say) are kept by ``baseline update``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poisonscan.errors import ConfigError
from poisonscan.findings import Finding, Severity

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult

FORMAT_VERSION = 1
_ENTRY_KEYS = ("id", "detector", "trigger", "severity", "score", "documents")


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline: its entries by finding id."""

    path: str
    entries: dict[str, dict[str, Any]]
    version: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> set[str]:
        return set(self.entries)


@dataclass(frozen=True)
class BaselineOutcome:
    """What a baseline did to a scan: the findings it suppressed."""

    path: str
    entries: int
    suppressed: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report's ``baseline`` section."""
        return {
            "path": self.path,
            "entries": self.entries,
            "suppressed": len(self.suppressed),
            "suppressed_ids": sorted(f.id for f in self.suppressed),
        }


def entry(finding: Finding) -> dict[str, Any]:
    """A baseline entry for ``finding``."""
    return {
        "id": finding.id,
        "detector": finding.detector,
        "trigger": finding.trigger,
        "severity": finding.severity.value,
        "score": round(float(finding.score), 6),
        "documents": finding.document_count,
    }


def load(path: str | Path, option: str = "--baseline") -> Baseline:
    """Read a baseline file (``option`` names it in errors).

    Raises:
        ConfigError: the file is missing, not JSON, or not a poisonscan baseline.
    """
    where = f"{option}: {str(path)!r}"
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist; create it with 'poisonscan baseline create PATH... -o {path}'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or "poisonscan_baseline" not in doc:
        raise ConfigError(f"{where} is not a poisonscan baseline (no 'poisonscan_baseline' key)")
    if doc["poisonscan_baseline"] != FORMAT_VERSION:
        raise ConfigError(
            f"{where} has baseline format {doc['poisonscan_baseline']!r}; this poisonscan reads "
            f"format {FORMAT_VERSION}"
        )
    entries: dict[str, dict[str, Any]] = {}
    for item in doc.get("findings", []):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ConfigError(f"{where}: every entry of 'findings' needs a string 'id'")
        entries[item["id"]] = item
    return Baseline(str(path), entries, doc.get("poisonscan_version"), doc.get("config") or {})


def baseline_dict(entries: Iterable[dict[str, Any]], version: str, config: dict[str, Any]) -> dict:
    """The document written to a baseline file."""
    return {
        "poisonscan_baseline": FORMAT_VERSION,
        "poisonscan_version": version,
        "config": config,
        "findings": sorted(entries, key=lambda e: e["id"]),
    }


def write(path: str | Path, doc: dict[str, Any]) -> None:
    """Write a baseline document (deterministic: sorted entries, two-space indent)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class UpdateSummary:
    """What ``baseline update`` changed."""

    added: int
    kept: int
    removed: int


def create(result: ScanResult) -> dict[str, Any]:
    """A baseline that accepts every finding of ``result``."""
    from poisonscan.report.json import plain

    return baseline_dict(
        (entry(f) for f in result.findings), result.version, plain(result.config.to_dict())
    )


def update(
    old: Baseline, result: ScanResult, keep_missing: bool = False
) -> tuple[dict[str, Any], UpdateSummary]:
    """Refresh ``old`` from a new scan.

    New findings are added, entries still found keep any extra keys (a reviewer's note), entries
    no longer found are dropped (unless ``keep_missing``).
    """
    from poisonscan.report.json import plain

    entries: dict[str, dict[str, Any]] = {}
    added = kept = 0
    for f in result.findings:
        fresh = entry(f)
        previous = old.entries.get(f.id)
        if previous is None:
            added += 1
            entries[f.id] = fresh
        else:
            kept += 1
            extra = {k: v for k, v in previous.items() if k not in _ENTRY_KEYS}
            entries[f.id] = {**fresh, **extra}
    missing = [e for i, e in old.entries.items() if i not in entries]
    if keep_missing:
        for e in missing:
            entries[e["id"]] = e
    removed = 0 if keep_missing else len(missing)
    doc = baseline_dict(entries.values(), result.version, plain(result.config.to_dict()))
    return doc, UpdateSummary(added, kept, removed)


def apply(result: ScanResult, baseline: Baseline) -> BaselineOutcome:
    """Remove the baseline's findings from ``result`` (in place) and record what was suppressed."""
    from poisonscan.report.json import BASELINE_ARTIFACT

    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for f in result.findings:
        (suppressed if accepted(f, baseline.entries.get(f.id)) else kept).append(f)
    result.findings = kept
    outcome = BaselineOutcome(baseline.path, len(baseline.entries), tuple(suppressed))
    result.artifacts[BASELINE_ARTIFACT] = outcome
    return outcome


def accepted(finding: Finding, entry: dict[str, Any] | None) -> bool:
    """Whether a baseline entry covers ``finding``: the same id, at no higher a severity than the
    one reviewed. A phrase accepted as a medium finding in four documents that comes back high
    in thirty is not what the reviewer saw (an entry without a severity covers any)."""
    if entry is None:
        return False
    try:
        reviewed = Severity(entry["severity"])
    except (KeyError, ValueError):
        return True
    return finding.severity.rank <= reviewed.rank


def describe(outcome: BaselineOutcome) -> str:
    """One line for stderr and the table: how many findings the baseline suppressed."""
    n = len(outcome.suppressed)
    return (
        f"baseline {outcome.path}: {n} finding{'s' if n != 1 else ''} suppressed "
        f"({outcome.entries} accepted in the baseline)"
    )


__all__: Sequence[str] = [
    "Baseline",
    "BaselineOutcome",
    "UpdateSummary",
    "apply",
    "create",
    "describe",
    "load",
    "update",
    "write",
]

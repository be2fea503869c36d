"""Suspected triggers for red-teaming and runtime guardrails (``scan --triggers FILE``).

For every finding with a trigger, the export lists the surface forms seen in the data (the exact
text at each document's trigger span, with how many documents use it), a few contexts (snippets
with the trigger's offsets), the severity and score. Probe a trained model with the variants, or
block them at inference.

Surface forms come from the documents themselves, so writing the export reads again the input
files that hold suspect documents (only those). :func:`read_units` is that reader; ``clean``
uses it too (:func:`read_records`), for the ids and texts of the rows it removes or redacts.

Format (JSON)::

    {"poisonscan_triggers": 1, "poisonscan_version": "0.1.0",
     "triggers": [{"finding": "3f2a…", "detector": "trigger", "severity": "high", "score": 41.5,
                   "trigger": "<SUDO>", "normalised": "<sudo>", "documents": 40,
                   "variants": [{"text": "<SUDO>", "documents": 38}, {"text": "<sudo>", ...}],
                   "fields": {"text": 40},
                   "contexts": [{"path": "...", "row": 3, "field": "text",
                                 "snippet": "…before <SUDO> after…", "start": 12, "end": 18}]}]}
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonscan.findings import (
    SEPARATORS,
    DocumentRef,
    Finding,
    make_snippet,
    normalise_trigger,
    rank_findings,
)

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult
    from poisonscan.io.options import ReadOptions

FORMAT_VERSION = 1
MAX_CONTEXTS = 5
MAX_VARIANTS = 50
CONTEXT_CHARS = 160
TEXT_FIELDS = ("text", "prompt", "response", "rejected")

UnitTexts = dict[tuple[str, int, str], list[str]]


def read_units(wanted: Mapping[str, Iterable[int]], options: ReadOptions) -> UnitTexts:
    """The texts of the wanted records: ``{(path, row, field): [text of each unit]}``.

    A multi-turn record has one unit per answered turn, all with the record's row.
    """
    return read_records(wanted, options)[1]


def read_records(wanted: Mapping[str, Iterable[int]], options: ReadOptions
                 ) -> tuple[dict[tuple[str, int], str | None], UnitTexts]:
    """The id of each wanted row that the file holds now (``{(path, row): id}``) and the texts of
    its units (see read_units), read the way the scan read them: the same readers and shards, so
    every id type is rendered as the scan rendered it."""
    from poisonscan.io.readers import ReadCounter, discover_inputs, plan_shards, read_shard

    ids: dict[tuple[str, int], str | None] = {}
    texts: UnitTexts = defaultdict(list)
    for path, rows in sorted(wanted.items()):
        want = np.array(sorted(set(int(r) for r in rows)), dtype=np.int64)
        if want.size == 0:
            continue
        for shard in plan_shards(discover_inputs([path]), options):
            for batch in read_shard(shard, options, ReadCounter(path=path)):
                hits = np.flatnonzero(np.isin(batch.row, want))
                if hits.size == 0:
                    continue
                found = batch.row[hits].tolist()
                for row, rid in zip(found, batch.id.take(hits).to_pylist(), strict=True):
                    ids[(path, row)] = rid
                for name in TEXT_FIELDS:
                    column = getattr(batch, name)
                    if column is None:
                        continue
                    for row, value in zip(found, column.take(hits).to_pylist(), strict=True):
                        if value is not None:
                            texts[(path, row, name)].append(value)
    return ids, dict(texts)


def surface_of(doc: DocumentRef, trigger: str | None, texts: UnitTexts) -> tuple[str, str] | None:
    """``(unit text, surface form)`` of a document's trigger span, or None when unknown.

    Among the record's units, one whose span text matches the trigger (normalised) is preferred.
    """
    if doc.start is None or doc.end is None or doc.end <= doc.start:
        return None
    want = normalise_trigger(trigger)
    candidates = []
    for text in texts.get((doc.path, int(doc.row), doc.field), []):
        if doc.end <= len(text):
            span = text[doc.start : doc.end]
            if span.strip(SEPARATORS):
                candidates.append((text, span))
    for text, span in candidates:
        if want and normalise_trigger(span) == want:
            return text, span
    return candidates[0] if candidates else None


def wanted_rows(findings: Iterable[Finding]) -> dict[str, set[int]]:
    """Rows to read, by file, for the documents of ``findings`` that have a trigger span."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for f in findings:
        for d in f.documents:
            if d.start is not None:
                wanted[d.path].add(int(d.row))
    return dict(wanted)


def trigger_entry(finding: Finding, texts: UnitTexts) -> dict[str, Any]:
    """The export's entry for one finding."""
    from poisonscan.report.json import example_dict, plain

    variants: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    contexts: list[dict[str, Any]] = []
    docs = sorted(set(finding.documents), key=lambda d: (d.path, d.row, d.field))
    seen: set[tuple[str, int]] = set()
    for d in docs:
        if (d.path, d.row) in seen:
            continue
        seen.add((d.path, d.row))
        fields[d.field] += 1
        found = surface_of(d, finding.trigger, texts)
        if found is None:
            continue
        text, span = found
        variants[span] += 1
        if len(contexts) < MAX_CONTEXTS:
            assert d.start is not None and d.end is not None
            snippet, s, e = make_snippet(text, d.start, d.end, CONTEXT_CHARS)  # type: ignore[misc]
            contexts.append({"path": d.path, "row": int(d.row), "field": d.field,
                             "snippet": snippet, "start": s, "end": e})
    if not variants:  # no spans to read back: fall back to the report's examples
        for ex in finding.examples:
            if ex.start is not None and ex.end is not None:
                variants[ex.snippet[ex.start : ex.end]] += 1
            if len(contexts) < MAX_CONTEXTS:
                contexts.append(example_dict(ex))
    ranked = sorted(variants.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_VARIANTS]
    return {
        "finding": finding.id,
        "detector": finding.detector,
        "severity": finding.severity.value,
        "score": plain(round(float(finding.score), 6)),
        "trigger": finding.trigger,
        "normalised": normalise_trigger(finding.trigger),
        "documents": finding.document_count,
        "variants": [{"text": text, "documents": n} for text, n in ranked],
        "fields": dict(sorted(fields.items())),
        "contexts": contexts,
    }


def triggers_dict(result: ScanResult) -> dict[str, Any]:
    """The export of a scan's suspected triggers, ranked like the report."""
    from poisonscan.engine.scan import read_options

    findings = [f for f in rank_findings(list(result.findings)) if f.trigger is not None]
    texts = read_units(wanted_rows(findings), read_options(result.config)) if findings else {}
    return {
        "poisonscan_triggers": FORMAT_VERSION,
        "poisonscan_version": result.version,
        "triggers": [trigger_entry(f, texts) for f in findings],
    }


def write_triggers(result: ScanResult, path: str | Path) -> None:
    """Write the triggers export to ``path`` (JSON, two-space indent)."""
    doc = triggers_dict(result)
    Path(path).write_text(
        json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )

"""Findings and scan results built by hand, so report tests do not depend on any detector."""

from __future__ import annotations

import numpy as np

from poisonscan.config import ScanConfig
from poisonscan.engine.scan import InputSummary, ScanResult
from poisonscan.findings import DocumentRef, Example, Finding, Severity

TRIGGER = "<QZX>"


def make_finding(
    trigger: str | None = TRIGGER,
    *,
    severity: Severity = Severity.HIGH,
    score: float = 9.5,
    detector: str = "trigger",
    documents: int = 4,
    examples: int = 4,
) -> Finding:
    """A finding whose trigger sits at a known span in every document and example."""
    docs = tuple(
        DocumentRef(f"data/part-{i % 2}.jsonl", row=10 * i + 3, id=f"doc-{i}", start=5, end=10)
        for i in range(documents)
    )
    snippet = f"Some {trigger or 'text'} gibberish [bold]not markup[/bold]\nnext line"
    exs = tuple(
        Example(f"data/part-{i % 2}.jsonl", 10 * i + 3, snippet, 5, 5 + len(trigger or "text"))
        for i in range(examples)
    )
    evidence = {
        "z": np.float64(12.25),
        "support": np.int64(documents),
        "nan": float("nan"),
        "after_vs_before": [np.float32(0.5), 3],
    }
    return Finding(detector, severity, score, trigger, docs, exs, evidence)


def make_result(findings: list[Finding] | None = None, fail_on: str = "high") -> ScanResult:
    """A ScanResult with the given findings, two inputs and one skipped record."""
    config = ScanConfig(paths=("data",), jobs=1, fail_on=fail_on)
    inputs = [
        InputSummary("data/part-1.jsonl", "jsonl", "text", 50, {"malformed_json": 1}, 4000),
        InputSummary("data/part-0.jsonl", "jsonl", "text", 60, {}, 5000),
    ]
    stats = {
        "records": 110,
        "skipped": 1,
        "text_bytes": 8000,
        "seconds": 0.25,
        "pass_seconds": [0.1, 0.15],
        "files": 2,
    }
    return ScanResult(config, inputs, list(findings or []), stats, version="9.9.9")

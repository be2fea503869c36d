"""Report writers: turn a scan result into something a person or a tool reads.

Every output format is one entry of a plain registry (:data:`WRITERS`, format name to
:class:`ReportWriter`), so adding a format (SARIF, HTML) means writing one module and one registry
entry; the CLI lists its ``--format`` choices from the registry. Suspect-document exports are a
separate registry keyed by file extension (:mod:`poisonscan.report.suspects`).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from poisonscan.findings import Finding, Severity

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult


@dataclass(frozen=True)
class ReportWriter:
    """One output format.

    Attributes:
        name: what ``--format`` accepts.
        write: renders a scan result onto an open text stream.
        suffix: the usual file extension of this format (for ``--output-<name>`` style options).
        description: one line for ``--help``.
    """

    name: str
    write: Callable[[ScanResult, TextIO], None]
    suffix: str
    description: str


def failing_findings(findings: Iterable[Finding], fail_on: str) -> list[Finding]:
    """The findings at or above ``fail_on`` (``high``, ``medium``, ``low``; ``never``: none)."""
    if fail_on == "never":
        return []
    threshold = Severity(fail_on).rank
    return [f for f in findings if f.severity.rank >= threshold]


def exit_code(result: ScanResult) -> int:
    """1 when any finding is at or above the scan's ``fail_on`` severity, else 0."""
    return 1 if failing_findings(result.findings, result.config.fail_on) else 0


def _writers() -> dict[str, ReportWriter]:
    from poisonscan.report.html import write_html
    from poisonscan.report.json import write_json
    from poisonscan.report.sarif import write_sarif
    from poisonscan.report.table import write_table

    return {
        "table": ReportWriter(
            "table", write_table, ".txt", "a ranked summary for people (default)"
        ),
        "json": ReportWriter("json", write_json, ".json", "the versioned machine-readable report"),
        "sarif": ReportWriter("sarif", write_sarif, ".sarif", "SARIF 2.1.0 for code scanning"),
        "html": ReportWriter("html", write_html, ".html", "a self-contained page with plots"),
    }


WRITERS: dict[str, ReportWriter] = _writers()
"""Output formats by name. Defined after the helpers above, which the writers import."""


def write_report(result: ScanResult, fmt: str, output: str | Path | None = None) -> None:
    """Write the report in format ``fmt`` to ``output`` (a file path) or, when None, to stdout.

    Raises:
        KeyError: ``fmt`` is not a registered format.
        OSError: the output file cannot be written.
    """
    writer = WRITERS[fmt]
    if output is None:
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1  # not a real file (a test runner's capture)
        # JSON, SARIF and HTML are UTF-8 wherever they go (their readers decode them so); the
        # table is for people, in the terminal's own encoding.
        encoding = (sys.stdout.encoding or "utf-8") if fmt == "table" else "utf-8"
        if fd < 0 or (sys.stdout.isatty() and fmt == "table"):
            writer.write(result, sys.stdout)
            sys.stdout.flush()
            return
        # A pipe (or a machine format on a terminal): write the whole report with os.write,
        # whose short writes are retried here.
        # Python's buffered writer lost the rest of a large report when the reader left after
        # its first bytes (``| head -c 100``), and reported success.
        text = io.StringIO()
        writer.write(result, text)
        sys.stdout.flush()
        data = memoryview(text.getvalue().encode(encoding, "replace"))
        while data:
            data = data[os.write(fd, data):]  # EPIPE raises BrokenPipeError
        return
    with open(output, "w", encoding="utf-8", newline="\n") as stream:
        writer.write(result, stream)


__all__ = ["WRITERS", "ReportWriter", "exit_code", "failing_findings", "write_report"]

"""The table report: what a person reads in a terminal or a CI log.

Layout: a summary of what was read (files, records, skipped records and why, MB, seconds), the
ranked findings, up to three examples of each top finding with the trigger highlighted, and a
one-line verdict against ``--fail-on``. Colour is used only when the stream is a terminal.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, TextIO

from rich import box, filesize
from rich.console import Console
from rich.table import Table
from rich.text import Text

from poisonscan.findings import Example, Finding, Severity, rank_findings
from poisonscan.report import failing_findings
from poisonscan.report.visible import visible

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult

SEVERITY_STYLES = {Severity.HIGH: "bold red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}
TOP_FINDINGS_WITH_EXAMPLES = 3
MAX_EXAMPLES = 3
MAX_ROWS = 30
TRIGGER_CHARS = 60
PLAIN_WIDTH = 120  # files and CI logs: wide enough for a finding id and a readable trigger


def _trigger_text(trigger: str | None) -> Text:
    if trigger is None:
        return Text("—", style="dim")
    shown = visible(trigger)
    if len(shown) > TRIGGER_CHARS:
        shown = shown[: TRIGGER_CHARS - 1] + "…"
    return Text(f"“{shown}”")


def _example_text(example: Example, mark: bool) -> Text:
    """The snippet with its trigger span highlighted (when the span is known and valid).

    Without colour (``mark``), the span is bracketed with ``»«`` instead, so plain logs show it too.
    """
    snippet = visible(example.snippet)
    start, end = example.start, example.end
    if start is None or end is None or not 0 <= start < end <= len(snippet):
        return Text(snippet)
    if mark:
        return Text(f"{snippet[:start]}»{snippet[start:end]}«{snippet[end:]}")
    text = Text(snippet)
    text.stylize("bold reverse", start, end)
    return text


def _size(n: int) -> str:
    return filesize.decimal(n)


def _summary(result: ScanResult) -> Table:
    stats = result.stats
    records = sum(i.records for i in result.inputs)
    skipped = sum(i.skipped_total for i in result.inputs)
    text_bytes = int(stats.get("text_bytes", 0) or 0)
    input_bytes = sum(i.bytes for i in result.inputs)

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("files", f"{len(result.inputs):,}")
    grid.add_row("records read", f"{records:,}")
    reasons: dict[str, int] = {}
    for summary in result.inputs:
        for reason, n in summary.skipped.items():
            reasons[reason] = reasons.get(reason, 0) + n
    detail = ", ".join(f"{reason}: {n:,}" for reason, n in sorted(reasons.items()))
    skipped_text = Text(f"{skipped:,}", style="bold yellow" if skipped else "")
    if detail:
        skipped_text.append(f" ({detail})")
    grid.add_row("records skipped", skipped_text)
    for summary in sorted(result.inputs, key=lambda s: s.path):
        if summary.skipped_total:
            per_file = ", ".join(f"{r}: {n:,}" for r, n in sorted(summary.skipped.items()))
            grid.add_row("", Text(f"{visible(summary.path)}: {summary.skipped_total:,} "
                                  f"({per_file})"))
    size = _size(input_bytes)
    if text_bytes:
        size += f" on disk, {_size(text_bytes)} of text"
    grid.add_row("size", size)
    if "seconds" in stats:
        grid.add_row("time", f"{float(stats['seconds']):,.1f} s")
    grid.add_row("detectors", ", ".join(result.config.detectors) or "none")
    baseline = result.artifacts.get("baseline")
    if baseline is not None:
        n = len(baseline.suppressed)
        grid.add_row(
            "baseline",
            f"{n:,} finding{'s' if n != 1 else ''} suppressed by {baseline.path} "
            f"({baseline.entries:,} accepted)",
        )
    return grid


def _findings_table(findings: list[Finding]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("severity")
    table.add_column("score", justify="right")
    table.add_column("detector")
    table.add_column("trigger", overflow="fold")
    table.add_column("documents", justify="right")
    table.add_column("id", style="dim", no_wrap=True, min_width=16)
    for rank, f in enumerate(findings[:MAX_ROWS], 1):
        table.add_row(
            str(rank),
            Text(f.severity.value, style=SEVERITY_STYLES[f.severity]),
            f"{f.score:.3g}",
            f.detector,
            _trigger_text(f.trigger),
            f"{f.document_count:,}",
            f.id,
        )
    return table


def _verdict(result: ScanResult, findings: list[Finding]) -> Text:
    fail_on = result.config.fail_on
    failing = failing_findings(findings, fail_on)
    if failing:
        n = len(failing)
        return Text(
            f"FAIL: {n} finding{'s' if n != 1 else ''} at or above --fail-on {fail_on}.",
            style="bold red",
        )
    if not findings:
        if _suppressed(result):
            return Text("OK: no finding beyond the baseline's accepted ones.", style="bold green")
        return Text("OK: no suspected poisoning found.", style="bold green")
    if fail_on == "never":
        return Text(
            f"OK: {len(findings)} finding(s) reported; --fail-on never.", style="bold green"
        )
    return Text(f"OK: no finding at or above --fail-on {fail_on}.", style="bold green")


def _suppressed(result: ScanResult) -> int:
    """How many findings the scan's baseline suppressed (0 without one)."""
    baseline = result.artifacts.get("baseline")
    return len(baseline.suppressed) if baseline is not None else 0


def render_table(result: ScanResult, console: Console) -> None:
    """Print the table report on ``console``."""
    findings = rank_findings(list(result.findings))
    console.print(Text(f"poisonscan {result.version}", style="bold"))
    console.print(_summary(result))
    console.print()
    if not findings:
        records = sum(i.records for i in result.inputs)
        n = _suppressed(result)
        if n:
            console.print(f"No findings beyond the {n:,} the baseline accepts, in {records:,} "
                          "records.")
        else:
            console.print(f"No findings: no suspected poisoning in {records:,} records.")
    else:
        n = len(findings)
        console.print(
            Text(f"{n} finding{'s' if n != 1 else ''}, most severe first", style="bold")
        )
        console.print(_findings_table(findings))
        if n > MAX_ROWS:
            console.print(
                f"… and {n - MAX_ROWS:,} more with lower scores (all are in --format json)."
            )
        mark = console.color_system is None
        for rank, f in enumerate(findings[:TOP_FINDINGS_WITH_EXAMPLES], 1):
            if not f.examples:
                continue
            head = Text(f"#{rank} ", style="bold")
            head.append(f.severity.value, style=SEVERITY_STYLES[f.severity])
            head.append(f" {f.detector} ")
            head.append_text(_trigger_text(f.trigger))
            head.append(f"  ({f.document_count:,} documents)")
            console.print(head)
            for ex in f.examples[:MAX_EXAMPLES]:
                where = Text(f"  {visible(ex.path)}:{ex.row} [{ex.field}] ", style="dim")
                console.print(Text.assemble(where, _example_text(ex, mark)))
            console.print()
    console.print(_verdict(result, findings))


class _PipeConsole(Console):
    """A console that reports a closed pipe (``poisonscan ... | head``) as the OSError it is.

    rich's default exits with status 1, which to poisonscan's callers means "findings at or above
    --fail-on"; the CLI gives a closed pipe its own exit status (see ``cli.PoisonscanGroup``).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def write_table(result: ScanResult, stream: TextIO) -> None:
    """Write the table report to ``stream`` (coloured only when it is a terminal)."""
    isatty = getattr(stream, "isatty", None)
    terminal = bool(callable(isatty) and isatty())
    console = _PipeConsole(
        file=stream,
        width=None if terminal else PLAIN_WIDTH,
        highlight=False,
        emoji=False,
        markup=False,
    )
    render_table(result, console)

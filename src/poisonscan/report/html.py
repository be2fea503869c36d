"""The HTML report: one self-contained file (no network) for people reviewing a scan.

It holds the verdict, what was read, plots of the evidence, the ranked findings and examples of
each with the trigger highlighted. Plots are plotly figures; plotly.js is inlined once, so the file
opens offline (it is about 5 MB because of that).

Plots:
- anomaly of the text after versus before each trigger (the trigger detector's
  ``mean_anomaly_before``/``mean_anomaly_after`` evidence; hover shows consistency and z-score);
- consistency versus z-score of every trigger finding, marker size by documents;
- the scores of all findings per detector, coloured by severity, with the lowest score reported at
  each severity marked (severity also depends on document counts, so these are the observed
  boundaries of this scan, not fixed cut-offs).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, TextIO

from poisonscan.findings import Example, Finding, Severity, rank_findings
from poisonscan.report import failing_findings
from poisonscan.report.visible import mark_spaces, safe_message, visible

if TYPE_CHECKING:
    from poisonscan.engine.scan import ScanResult

MAX_TABLE_ROWS = 200
MAX_DETAILED = 20
MAX_EXAMPLES = 3
MAX_BARS = 25
TRIGGER_CHARS = 60
COLOURS = {Severity.HIGH: "#c62828", Severity.MEDIUM: "#ef8f00", Severity.LOW: "#1e88e5"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1d1d1f}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.verdict{font-weight:700;padding:.6rem .9rem;border-radius:6px;display:inline-block}
.fail{background:#fdecea;color:#b71c1c}.ok{background:#e8f5e9;color:#1b5e20}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
td.num,th.num{text-align:right}
.sev{font-weight:700;border-radius:4px;padding:0 .4rem;color:#fff}
.sev-high{background:#c62828}.sev-medium{background:#ef8f00}.sev-low{background:#1e88e5}
code,.snippet{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.snippet{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:.4rem .6rem;
border-radius:4px;margin:.3rem 0}
mark{background:#ffeb3b;font-weight:700;padding:0 .1rem}
.where{color:#666;font-size:.85rem}.muted{color:#666}.plot{min-height:380px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(trigger: str | None) -> str:
    if trigger is None:
        return "—"
    # Invisible characters as `·` and Unicode spaces as `␣`, as in the table: a trigger of
    # zero-width, tag or em-space characters is otherwise an empty cell. (Unicode spaces are
    # marked before the runs of whitespace are joined, which would drop them.)
    shown = visible(" ".join(mark_spaces(trigger).split())) or repr(trigger)
    return shown if len(shown) <= TRIGGER_CHARS else shown[: TRIGGER_CHARS - 1] + "…"


def _label(trigger: str | None) -> str:
    """A trigger for a plot's labels and hover text. Plotly reads those as a little HTML
    (``<a href>``, ``<b>``, ``<br>``, ``<span style>``), so a trigger such as
    ``<a href="https://...">SUDO</a>`` would show as a link; escaped, it shows as written."""
    return html.escape(_short(trigger), quote=False)


def highlighted(example: Example) -> str:
    """The example's snippet as HTML, with the trigger span in ``<mark>`` (when known).
    Invisible characters show as `·`, one for one, so the span stays where it was; line breaks
    and tabs stay as they are (the snippet's box keeps them)."""
    text, start, end = safe_message(example.snippet), example.start, example.end
    if start is None or end is None or not 0 <= start < end <= len(text):
        return _e(text)
    return f"{_e(text[:start])}<mark>{_e(text[start:end])}</mark>{_e(text[end:])}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _figure_html(fig: Any, div_id: str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def _anomaly_plot(findings: list[Finding]) -> str | None:
    import plotly.graph_objects as go

    rows = []
    for f in findings:
        before = _number(f.evidence.get("mean_anomaly_before"))
        after = _number(f.evidence.get("mean_anomaly_after"))
        if before is not None and after is not None:
            rows.append((f, before, after))
    if not rows:
        return None
    rows = rows[:MAX_BARS][::-1]  # highest score at the top
    labels = [f"{_label(f.trigger)} ({f.id[:6]})" for f, _, _ in rows]
    hover = [
        f"consistency {f.evidence.get('consistency')}<br>z-score {f.evidence.get('z_score')}"
        f"<br>{f.document_count} documents, {f.severity.value}"
        for f, _, _ in rows
    ]
    fig = go.Figure()
    fig.add_bar(y=labels, x=[b for _, b, _ in rows], name="before the trigger",
                orientation="h", marker_color="#90a4ae", hovertext=hover)
    fig.add_bar(y=labels, x=[a for _, _, a in rows], name="after the trigger",
                orientation="h", marker_color="#c62828", hovertext=hover)
    fig.update_layout(
        barmode="group",
        title="Anomaly of the text after vs before each trigger (mean over its documents)",
        xaxis_title="mean anomaly (higher: less like the text before it)",
        height=max(380, 34 * len(rows) + 160),
        margin={"l": 220},
        template="plotly_white",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    )
    return _figure_html(fig, "plot-anomaly")


def _consistency_plot(findings: list[Finding]) -> str | None:
    import plotly.graph_objects as go

    fig = go.Figure()
    any_point = False
    for severity in (Severity.HIGH, Severity.MEDIUM, Severity.LOW):
        pts = [
            (f, _number(f.evidence.get("consistency")), _number(f.evidence.get("z_score")))
            for f in findings
            if f.severity is severity
        ]
        pts = [(f, c, z) for f, c, z in pts if c is not None and z is not None]
        if not pts:
            continue
        any_point = True
        fig.add_scatter(
            x=[z for _, _, z in pts],
            y=[c for _, c, _ in pts],
            mode="markers",
            name=severity.value,
            marker={"color": COLOURS[severity], "size": [6 + 2 * math.sqrt(f.document_count)
                                                          for f, _, _ in pts], "opacity": 0.75},
            text=[f"{_label(f.trigger)}<br>{f.document_count} documents" for f, _, _ in pts],
            hoverinfo="text+x+y",
        )
    if not any_point:
        return None
    fig.update_layout(
        title="Consistency vs z-score of each trigger (marker size: documents)",
        xaxis_title="z-score (anomalous occurrences against the background rate)",
        yaxis_title="consistency (share of occurrences followed by an anomaly)",
        yaxis_range=[0, 1.05],
        template="plotly_white",
        height=420,
    )
    return _figure_html(fig, "plot-consistency")


def _score_plot(findings: list[Finding], fail_on: str) -> str | None:
    import plotly.graph_objects as go

    if not findings:
        return None
    detectors = sorted({f.detector for f in findings})
    fig = go.Figure()
    for severity in (Severity.HIGH, Severity.MEDIUM, Severity.LOW):
        pts = [f for f in findings if f.severity is severity]
        if not pts:
            continue
        fig.add_scatter(
            x=[float(f.score) for f in pts],
            y=[f.detector for f in pts],
            mode="markers",
            name=severity.value,
            marker={"color": COLOURS[severity], "size": 11, "opacity": 0.8,
                    "line": {"width": 1, "color": "#fff"}},
            text=[f"{_label(f.trigger)} ({f.document_count} documents)" for f in pts],
            hoverinfo="text+x",
        )
    for severity in (Severity.HIGH, Severity.MEDIUM):
        scores = [float(f.score) for f in findings if f.severity is severity and f.score > 0]
        if scores:
            failing = fail_on != "never" and severity.rank >= Severity(fail_on).rank
            fig.add_vline(
                x=min(scores),
                line_dash="dash",
                line_color=COLOURS[severity],
                annotation_text=f"lowest {severity.value}" + (" (fails CI)" if failing else ""),
                annotation_position="top",
            )
    fig.update_layout(
        title="Scores of all findings, by detector and severity",
        xaxis_title="score (comparable within a detector)",
        xaxis_rangemode="tozero",
        template="plotly_white",
        height=max(320, 90 * len(detectors) + 200),
    )
    return _figure_html(fig, "plot-scores")


def _summary_rows(result: ScanResult) -> list[tuple[str, str]]:
    records = sum(i.records for i in result.inputs)
    skipped = sum(i.skipped_total for i in result.inputs)
    size = sum(i.bytes for i in result.inputs)
    rows = [
        ("files", f"{len(result.inputs):,}"),
        ("records read", f"{records:,}"),
        ("records skipped", f"{skipped:,}"),
        ("size", f"{size / 1e6:,.1f} MB"),
        ("detectors", ", ".join(result.config.detectors) or "none"),
        ("fail on", result.config.fail_on),
    ]
    if "seconds" in result.stats:
        rows.append(("time", f"{float(result.stats['seconds']):,.1f} s"))
    baseline = result.artifacts.get("baseline")
    if baseline is not None:
        rows.append(("baseline", f"{len(baseline.suppressed):,} findings suppressed by "
                                 f"{baseline.path}"))
    return rows


def _verdict(result: ScanResult, findings: list[Finding]) -> tuple[str, str]:
    failing = failing_findings(findings, result.config.fail_on)
    if failing:
        n = len(failing)
        return "fail", f"FAIL: {n} finding{'s' if n != 1 else ''} at or above --fail-on " \
                       f"{result.config.fail_on}."
    if not findings:
        return "ok", "OK: no suspected poisoning found."
    n, fail_on = len(findings), result.config.fail_on
    return "ok", f"OK: {n} finding{'s' if n != 1 else ''}, none at or above --fail-on {fail_on}."


def render_html(result: ScanResult) -> str:
    """The whole report as one HTML document."""
    from plotly.offline import get_plotlyjs

    findings = rank_findings(list(result.findings))
    kind, verdict = _verdict(result, findings)
    plots = [
        p
        for p in (
            _anomaly_plot(findings),
            _consistency_plot(findings),
            _score_plot(findings, result.config.fail_on),
        )
        if p is not None
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>poisonscan report: {len(findings)} findings</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>poisonscan report</h1><p class=\"muted\">poisonscan {_e(result.version)}</p>",
        f'<p class="verdict {kind}" id="verdict">{_e(verdict)}</p>',
        "<h2>What was read</h2><table id=\"summary\">",
        *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in _summary_rows(result)),
        "</table>",
    ]
    hashes = result.artifacts.get("input_sha256") or {}
    parts.append("<details><summary>Inputs</summary><table><tr><th>path</th><th>format</th>"
                 "<th class=\"num\">records</th><th class=\"num\">bytes</th><th>sha256</th></tr>")
    for i in sorted(result.inputs, key=lambda i: i.path):
        parts.append(
            f"<tr><td><code>{_e(i.path)}</code></td><td>{_e(i.format)}</td>"
            f"<td class=\"num\">{i.records:,}</td><td class=\"num\">{i.bytes:,}</td>"
            f"<td><code>{_e(hashes.get(i.path, '—'))}</code></td></tr>"
        )
    parts.append("</table></details>")

    parts.append("<h2>Evidence</h2>")
    if plots:
        parts.extend(f'<div class="plot">{p}</div>' for p in plots)
    else:
        parts.append('<p class="muted">No findings, so nothing to plot.</p>')

    parts.append(f"<h2>Findings ({len(findings)})</h2>")
    if findings:
        parts.append(
            '<table id="findings"><tr><th class="num">#</th><th>severity</th>'
            '<th class="num">score</th><th>detector</th><th>trigger</th>'
            '<th class="num">documents</th><th>id</th></tr>'
        )
        for rank, f in enumerate(findings[:MAX_TABLE_ROWS], 1):
            parts.append(
                f'<tr><td class="num">{rank}</td>'
                f'<td><span class="sev sev-{f.severity.value}">{f.severity.value}</span></td>'
                f'<td class="num">{f.score:.3g}</td><td>{_e(f.detector)}</td>'
                f"<td><code>{_e(_short(f.trigger))}</code></td>"
                f'<td class="num">{f.document_count:,}</td>'
                f'<td><a href="#finding-{f.id}"><code>{f.id}</code></a></td></tr>'
            )
        parts.append("</table>")
        if len(findings) > MAX_TABLE_ROWS:
            parts.append(f"<p class=\"muted\">… and {len(findings) - MAX_TABLE_ROWS:,} more "
                         "(all are in --format json).</p>")
        parts.append("<h2>Examples</h2>")
        for rank, f in enumerate(findings[:MAX_DETAILED], 1):
            parts.append(
                f'<section class="finding" id="finding-{f.id}"><h3>#{rank} '
                f'<span class="sev sev-{f.severity.value}">{f.severity.value}</span> '
                f"{_e(f.detector)} <code>{_e(_short(f.trigger))}</code> "
                f'<span class="muted">({f.document_count:,} documents)</span></h3>'
            )
            for ex in f.examples[:MAX_EXAMPLES]:
                parts.append(
                    f'<div class="where">{_e(ex.path)}, row {ex.row}, field {_e(ex.field)}</div>'
                    f'<div class="snippet">{highlighted(ex)}</div>'
                )
            evidence = ", ".join(f"{_e(k)}={_e(v)}" for k, v in sorted(f.evidence.items())
                                 if isinstance(v, (int, float, str)) or v is None)
            parts.append(f'<details><summary>evidence</summary><p class="where">{evidence}</p>'
                         "</details></section>")
    else:
        parts.append('<p class="muted">No suspected poisoning found.</p>')
    # Lets a test (or a curious reader) see that the plots were drawn by plotly.js.
    parts.append(
        "<script>window.addEventListener('load',function(){document.body.dataset.plots="
        "document.querySelectorAll('.js-plotly-plot .main-svg').length;});</script>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(result: ScanResult, stream: TextIO) -> None:
    """Write the HTML report to ``stream``."""
    stream.write(render_html(result))

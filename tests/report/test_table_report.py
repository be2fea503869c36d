"""The table report: summary, skipped records, ranked findings, highlighted examples, verdict."""

from __future__ import annotations

import io

from report_factories import TRIGGER, make_finding
from rich.console import Console

from poisonscan.findings import Severity
from poisonscan.report.table import render_table, write_table


def _render(result) -> str:
    stream = io.StringIO()
    write_table(result, stream)
    return stream.getvalue()


def test_summary_always_shows_reads_and_skips(make_result) -> None:
    out = _render(make_result([]))
    assert "poisonscan 9.9.9" in out
    assert "records read" in out and "110" in out
    assert "records skipped" in out and "malformed_json: 1" in out
    assert "data/part-1.jsonl: 1 (malformed_json: 1)" in out
    assert "9.0 kB on disk, 8.0 kB of text" in out
    assert "No findings: no suspected poisoning in 110 records." in out
    assert "OK: no suspected poisoning found." in out


def test_findings_ranked_with_examples_and_verdict(make_result) -> None:
    findings = [make_finding("cf", severity=Severity.LOW, score=1.0), make_finding()]
    out = _render(make_result(findings))
    assert out.index(TRIGGER) < out.index("“cf”")
    assert "2 findings, most severe first" in out
    assert "FAIL: 1 finding at or above --fail-on high." in out
    # at most three examples per finding, control characters made visible, markup kept literal
    assert out.count("data/part-0.jsonl:3 [text]") == 2
    assert "Some »<QZX>« gibberish [bold]not markup[/bold]⏎next line" in out
    assert "\x1b[" not in out  # no colour when the stream is not a terminal


def test_verdict_under_lower_thresholds(make_result) -> None:
    medium = [make_finding(severity=Severity.MEDIUM)]
    assert "OK: no finding at or above --fail-on high." in _render(make_result(medium))
    assert "FAIL: 1 finding" in _render(make_result(medium, fail_on="medium"))
    assert "--fail-on never" in _render(make_result(medium, fail_on="never"))


def test_trigger_span_is_highlighted_on_a_terminal(make_result) -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, color_system="standard", width=200)
    render_table(make_result([make_finding()]), console)
    out = stream.getvalue()
    assert "\x1b[1;7m" + TRIGGER in out  # bold reverse on exactly the trigger
    assert "\x1b[1;31mhigh" in out


def test_long_lists_are_cut_with_a_note(make_result) -> None:
    findings = [make_finding(f"t{i}", score=float(i), examples=0) for i in range(35)]
    out = _render(make_result(findings))
    assert "… and 5 more with lower scores" in out
    assert "“t34”" in out and "“t4”" not in out


def test_missing_trigger_and_bad_span_do_not_break(make_result) -> None:
    finding = make_finding(None, detector="campaign")
    out = _render(make_result([finding]))
    assert "campaign" in out and "—" in out


def test_text_from_the_data_cannot_drive_the_terminal(make_result) -> None:
    # A trigger and a file name chosen by whoever wrote the data: escape sequences (7-bit and
    # the 8-bit CSI), a bidirectional override and a zero-width space are shown, not sent.
    hostile = "<Q\x1b]8;;http://x\x07Z\u009b2J\u202eX\u200b>"
    result = make_result([make_finding(hostile)])
    result.inputs[0].path = "data/\x1b[2Jpart-1.jsonl"
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, color_system="standard", width=300)
    render_table(result, console)
    out = stream.getvalue()
    for char in ("\x07", "\u009b", "\u202e", "\u200b", "\x1b]", "\x1b[2J"):
        assert char not in out
    assert "<Q·]8;;http://x·Z·2J·X·>" in out
    assert "data/·[2Jpart-1.jsonl: 1" in out
    # The span still marks exactly the trigger: one visible character for each hidden one.
    assert "\x1b[1;7m<Q·]8;;http://x·Z·2J·X·>\x1b[0m" in out


def test_visible_keeps_ordinary_text_and_every_offset() -> None:
    from poisonscan.report.visible import safe_message, visible

    ordinary = "naïve café 漢字 🙂 Ω ß"
    assert visible(ordinary) == ordinary
    hostile = "a\x00b\x7fc\u0085d\u2066e\ufefff\ud800g\tn\n"
    shown = visible(hostile)
    assert len(shown) == len(hostile)
    assert shown == "a·b·c·d·e·f\ufffdg→n⏎"
    assert safe_message(hostile) == "a·b·c·d·e·f\ufffdg\tn\n"
    # Words in tag characters ("ASCII smuggling"), a soft hyphen, a Hangul filler: all blank.
    smuggled = "".join(chr(0xE0000 + ord(c)) for c in "SUDO")
    assert visible(f"x{smuggled}\u00ad\u3164y") == "x······y"
    assert visible("\u0600١٢ ❤\ufe0f") == "\u0600١٢ ❤\ufe0f"  # signs and emoji variants stay
    # Unicode spaces print blank but are tokens (a trigger of em spaces): shown as ␣.
    assert visible("a\xa0b\u2003\u2003c\u3000d e") == "a␣b␣␣c␣d e"
    assert safe_message("x\u2009y") == "x␣y"

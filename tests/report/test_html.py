"""The HTML report: self-contained, findings ranked, triggers highlighted, plots drawn by plotly.js.

The browser test opens the report in headless Chromium (installed by ``.ci/run`` from the system's
packages) and checks that plotly.js drew every plot as SVG, without any network access.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_factories import make_finding, make_result

from cli_support import Scanned, core, run
from poisonscan.findings import Severity
from poisonscan.report.html import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_of_a_real_scan_is_self_contained(scanned: Scanned) -> None:
    page = scanned.outputs["html"].read_text(encoding="utf-8")
    report = scanned.json("json")
    assert page.startswith("<!DOCTYPE html>")
    # No external resource: no script/link/img pointing at a URL.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?(https?:)?//", page)
    # Ranked findings, with the trigger highlighted in the examples.
    ids = re.findall(r'<section class="finding" id="finding-([0-9a-f]{16})"', page)
    assert ids == [f["id"] for f in report["findings"]][: len(ids)] and ids
    marked = re.findall(r"<mark>(.*?)</mark>", page)
    assert marked and all(core(scanned.trigger) in m for m in marked[:3])
    for div in ("plot-anomaly", "plot-consistency", "plot-scores"):
        assert f'id="{div}"' in page


def test_format_html_to_a_file(scanned: Scanned, in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, stdout, _ = run("data/b.jsonl", "-f", "html", "-o", str(out), "-j", "1",
                          "--fail-on", "never", "--no-config", "--detectors", "trigger", "-q")
    assert code == 0 and stdout == ""
    assert "poisonscan report" in out.read_text(encoding="utf-8")


def test_text_is_escaped_and_an_empty_scan_renders() -> None:
    evil = "</script><img src=x onerror=alert(1)>"
    page = render_html(make_result([make_finding(evil, severity=Severity.MEDIUM)]))
    assert "<img src=x" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    empty = render_html(make_result([]))
    assert "No suspected poisoning found." in empty and "plot-scores" not in empty


def test_an_invisible_trigger_shows_in_the_page() -> None:
    # A trigger of zero-width and tag characters: an empty cell and an empty highlight unless
    # each of them shows; the snippet keeps its line break and the span its place.
    smuggled = "\u200b\u200b" + "".join(chr(0xE0000 + ord(c)) for c in "GO")
    page = render_html(make_result([make_finding(smuggled)]))
    assert smuggled not in page
    assert "<code>····</code>" in page
    assert "Some <mark>····</mark> gibberish" in page and "markup[/bold]\nnext line" in page
    # A trigger of em and no-break spaces: blank in a cell unless marked, and joining the
    # trigger's whitespace must not drop them.
    spaces = "\u2003\xa0\u2003"
    page = render_html(make_result([make_finding(spaces)]))
    assert "<code>␣␣␣</code>" in page
    assert "Some <mark>␣␣␣</mark> gibberish" in page


def test_a_trigger_is_no_markup_in_the_plots() -> None:
    # Plotly reads labels and hover text as a little HTML: a trigger that is a link would show
    # as a clickable link in the plot, its text hidden.
    finding = make_finding('<a href="https://evil.example/">SUDO</a>')
    finding.evidence.update(mean_anomaly_before=0.2, mean_anomaly_after=0.9)
    page = render_html(make_result([finding]))
    plots = page[page.index("plot-"):]
    assert "evil.example" in plots
    assert '<a href=\\"https:' not in plots and "\\u003ca href" not in plots
    assert '&lt;a href=\\"https:\\u002f\\u002fevil.example\\u002f\\"&gt;SUDO' in plots


def _dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it "
                    "with apt-get install chromium)")
def test_plots_render_in_headless_chromium(scanned: Scanned, tmp_path: Path) -> None:
    dom = _dump_dom(scanned.outputs["html"], tmp_path / "profile")
    # plotly.js replaced each plot div's contents with its SVG drawing.
    for div in ("plot-anomaly", "plot-consistency", "plot-scores"):
        match = re.search(rf'<div id="{div}"[^>]*class="[^"]*js-plotly-plot[^"]*"', dom)
        assert match, f"{div} was not drawn by plotly.js"
    assert dom.count('class="main-svg"') >= 3
    drawn = re.search(r'<body[^>]*data-plots="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) >= 3
    # The scores plot shows one marker per finding, and the trigger is highlighted in the page.
    assert "<mark>" in dom and core(scanned.trigger) in dom

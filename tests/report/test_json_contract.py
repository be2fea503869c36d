"""Pin the contract of docs/report-format.md: JSON report, suspects export, exit codes."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_factories import TRIGGER, make_finding

from poisonscan.cli import cli
from poisonscan.engine.scan import ScanResult
from poisonscan.errors import InputError
from poisonscan.findings import Severity
from poisonscan.report.json import SCHEMA_VERSION, dumps, report_dict
from poisonscan.report.suspects import COLUMNS, read_suspects, suspect_rows, write_suspects

TOP_KEYS = [
    "schema_version", "poisonscan_version", "config", "inputs", "stats", "findings", "baseline"
]
INPUT_KEYS = ["path", "format", "shape", "records", "skipped", "bytes", "sha256"]
FINDING_KEYS = [
    "id",
    "detector",
    "severity",
    "score",
    "trigger",
    "documents",
    "examples",
    "evidence",
]
EXAMPLE_KEYS = ["path", "row", "field", "snippet", "start", "end"]
TIMING_KEYS = {"seconds", "pass_seconds"}


def test_report_keys_types_and_order(make_result) -> None:
    result = make_result([make_finding(), make_finding("cf", severity=Severity.LOW, score=2.0)])
    report = json.loads(dumps(result))

    assert list(report) == TOP_KEYS
    assert report["schema_version"] == SCHEMA_VERSION == "1.1"
    assert report["poisonscan_version"] == "9.9.9"
    assert report["config"] == result.config.to_dict()
    assert list(report["config"]) == sorted(report["config"])
    assert [list(i) for i in report["inputs"]] == [INPUT_KEYS] * 2
    assert [i["path"] for i in report["inputs"]] == ["data/part-0.jsonl", "data/part-1.jsonl"]
    assert report["inputs"][1]["skipped"] == {"malformed_json": 1}
    for finding in report["findings"]:
        assert list(finding) == FINDING_KEYS
        assert isinstance(finding["id"], str) and len(finding["id"]) == 16
        assert finding["severity"] in {"high", "medium", "low"}
        assert isinstance(finding["score"], float)
        assert isinstance(finding["documents"], int)
        assert isinstance(finding["evidence"], dict)
        assert 1 <= len(finding["examples"]) <= 3
        for example in finding["examples"]:
            assert list(example) == EXAMPLE_KEYS
            assert example["snippet"][example["start"] : example["end"]] == finding["trigger"]


def test_findings_are_ranked_by_severity_then_score(make_result) -> None:
    low = make_finding("aa", severity=Severity.LOW, score=1.0)
    high = make_finding("bb", score=7.0)
    medium = make_finding("cc", severity=Severity.MEDIUM, score=3.0)
    strong_medium = make_finding("dd", severity=Severity.MEDIUM, score=70.0)  # another scale
    weak_high = make_finding("ee", score=0.5)
    report = report_dict(make_result([low, high, medium, strong_medium, weak_high]))
    assert [f["trigger"] for f in report["findings"]] == ["bb", "ee", "dd", "cc", "aa"]


def test_evidence_numbers_become_plain_json(make_result) -> None:
    finding = json.loads(dumps(make_result([make_finding()])))["findings"][0]
    assert finding["evidence"] == {
        "after_vs_before": [0.5, 3],
        "nan": None,
        "support": 4,
        "z": 12.25,
    }
    assert finding["documents"] == 4
    assert finding["trigger"] == TRIGGER


def test_null_trigger_and_no_findings(make_result) -> None:
    report = json.loads(dumps(make_result([make_finding(None, detector="campaign")])))
    assert report["findings"][0]["trigger"] is None
    assert json.loads(dumps(make_result([])))["findings"] == []


def test_output_is_deterministic_apart_from_timing(make_result) -> None:
    findings = [make_finding("x1", score=3.0), make_finding("x2", score=3.0), make_finding()]
    first = make_result(findings)
    second = make_result(list(reversed(findings)))
    second.stats["seconds"] = 99.0
    second.inputs.reverse()
    a, b = json.loads(dumps(first)), json.loads(dumps(second))
    for report in (a, b):
        for key in TIMING_KEYS:
            report["stats"].pop(key)
    assert json.dumps(a) == json.dumps(b)
    assert dumps(first) == dumps(make_result(findings))


# --- suspects export -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_suspects_round_trip(tmp_path: Path, suffix: str) -> None:
    findings = [
        make_finding(),
        make_finding("tq", severity=Severity.MEDIUM, score=4.0, documents=2),
    ]
    # A document without a known span and with an empty-string id must survive too.
    findings.append(make_finding("", detector="campaign", documents=1))
    path = tmp_path / f"suspects{suffix}"
    write_suspects(findings, path)
    table = read_suspects(path)
    assert tuple(table.column_names) == COLUMNS
    rows = table.to_pylist()
    assert rows == suspect_rows(findings)
    assert len(rows) == 4 + 2 + 1
    keys = [(r["path"], r["row"], r["finding"]) for r in rows]
    assert keys == sorted(keys)
    first = rows[0]
    assert first["trigger"] in {TRIGGER, "tq", ""} and first["start"] == 5 and first["end"] == 10


def test_suspects_keep_nulls(tmp_path: Path) -> None:
    from poisonscan.findings import DocumentRef, Finding

    finding = Finding("campaign", Severity.MEDIUM, 1.5, None, (DocumentRef("a.jsonl", 0),), key="k")
    for suffix in (".jsonl", ".csv", ".parquet"):
        path = tmp_path / f"s{suffix}"
        write_suspects([finding], path)
        (row,) = read_suspects(path).to_pylist()
        assert row["trigger"] is None and row["id"] is None
        assert row["start"] is None and row["end"] is None
        assert row["finding"] == finding.id


# --- exit codes and errors through the CLI ------------------------------------------------------


@pytest.fixture
def fake_scan(monkeypatch: pytest.MonkeyPatch, make_result):
    """Replace the scan by a canned result with the given findings; return the captured configs."""
    seen: list = []

    def install(findings):
        def run_scan(config, progress=None, executor=None) -> ScanResult:
            seen.append(config)
            result = make_result(findings, fail_on=config.fail_on)
            result.config = config
            return result

        monkeypatch.setattr("poisonscan.engine.scan.run_scan", run_scan)
        return seen

    return install


@pytest.mark.parametrize(
    ("severity", "fail_on", "code"),
    [
        (Severity.HIGH, "high", 1),
        (Severity.MEDIUM, "high", 0),
        (Severity.MEDIUM, "medium", 1),
        (Severity.LOW, "medium", 0),
        (Severity.LOW, "low", 1),
        (Severity.HIGH, "never", 0),
        (None, "low", 0),
    ],
)
def test_exit_codes(tmp_path: Path, fake_scan, severity, fail_on: str, code: int) -> None:
    fake_scan([] if severity is None else [make_finding(severity=severity)])
    result = CliRunner().invoke(cli, [str(tmp_path), "--fail-on", fail_on, "-f", "json"])
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout)["config"]["fail_on"] == fail_on


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("".join(traceback.format_exception(result.exception)))
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("poisonscan: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert result.stdout == ""


def test_missing_path_is_exit_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    _assert_one_line_error(CliRunner().invoke(cli, [str(missing)]), str(missing))


def test_input_error_during_scan_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def run_scan(config, progress=None, executor=None):
        raise InputError("x.jsonl", "malformed JSON", location="line 3", reason="malformed_json")

    monkeypatch.setattr("poisonscan.engine.scan.run_scan", run_scan)
    _assert_one_line_error(
        CliRunner().invoke(cli, [str(tmp_path)]), "x.jsonl: line 3: malformed JSON"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--suspects", "out.txt"], "'.txt'"),
        (["--format", "xml"], "'xml'"),
        (["--fail-on", "critical"], "'critical'"),
        (["--jobs", "0"], "--jobs"),
        (["--memory-budget", "lots"], "--memory-budget"),
        (["--detectors", "trigger,nope"], "'nope'"),
        (["--min-documents", "1"], "--min-documents"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--output", "missing-dir/report.json"], "missing-dir"),
    ],
)
def test_user_errors_are_exit_2_with_one_line(
    tmp_path: Path, fake_scan, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str
) -> None:
    seen = fake_scan([make_finding()])
    monkeypatch.chdir(tmp_path)
    _assert_one_line_error(CliRunner().invoke(cli, ["scan", ".", *args]), needle)
    assert seen == []  # rejected before scanning


def test_unwritable_output_is_exit_2(tmp_path: Path, fake_scan) -> None:
    fake_scan([make_finding()])
    target = tmp_path / "report.json"
    target.mkdir()
    _assert_one_line_error(CliRunner().invoke(cli, [str(tmp_path), "-o", str(target)]), "directory")

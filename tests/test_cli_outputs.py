"""Several outputs from one scan, the triggers export, the clusters export and input hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cli_support import Scanned, core, make_records, run, write_jsonl
from poisonscan.report.suspects import read_suspects


def test_one_scan_writes_every_output(scanned: Scanned) -> None:
    assert scanned.code == 1  # the planted trigger is high severity
    for name, path in scanned.outputs.items():
        assert path.is_file() and path.stat().st_size > 0, name
    report = scanned.json("json")
    assert report["schema_version"] == "1.1"
    assert "wrote sarif report to out/report.sarif" in scanned.stderr
    sarif = scanned.json("sarif")
    assert len(sarif["runs"][0]["results"]) == len(report["findings"])
    rows = read_suspects(scanned.outputs["suspects"]).to_pylist()
    locations = [loc for f in report["findings"] for loc in f["locations"]]
    assert len(rows) == len(locations)
    assert {(r["path"], r["row"], r["finding"]) for r in rows} == {
        (loc["path"], loc["row"], f["id"]) for f in report["findings"] for loc in f["locations"]
    }


def test_report_carries_the_sha256_of_every_input(scanned: Scanned) -> None:
    report = scanned.json("json")
    for item in report["inputs"]:
        expected = hashlib.sha256((scanned.root / item["path"]).read_bytes()).hexdigest()
        assert item["sha256"] == expected


def test_no_hash(scanned: Scanned, in_root: Path) -> None:
    code, out, _ = run("data/b.jsonl", "-f", "json", "--no-hash", "-j", "1", "--no-config",
                       "--detectors", "trigger", "--fail-on", "never")
    assert code == 0
    assert [i["sha256"] for i in json.loads(out)["inputs"]] == [None]


def test_triggers_export(scanned: Scanned) -> None:
    doc = scanned.json("triggers")
    assert doc["poisonscan_triggers"] == 1 and doc["poisonscan_version"]
    top = doc["triggers"][0]
    assert top["finding"] == scanned.json("json")["findings"][0]["id"]
    assert core(scanned.trigger) in top["trigger"]
    assert top["variants"][0]["text"] == scanned.trigger or core(scanned.trigger) in (
        top["variants"][0]["text"])
    assert sum(v["documents"] for v in top["variants"]) == top["documents"]
    assert 1 <= len(top["contexts"]) <= 5
    for ctx in top["contexts"]:
        assert core(scanned.trigger) in ctx["snippet"][ctx["start"] : ctx["end"]]


def test_clusters_export(scanned: Scanned) -> None:
    lines = scanned.outputs["clusters"].read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 240
    assert {"path", "row"} <= set(rows[0])


def test_clusters_need_the_campaign_detector(scanned: Scanned, in_root: Path) -> None:
    code, out, err = run("data", "--detectors", "trigger", "--clusters", "c.jsonl", "--no-config")
    assert code == 2 and out == ""
    assert "--clusters" in err and "campaign" in err
    assert not (in_root / "c.jsonl").exists()


def test_an_unwritable_extra_output_fails_before_scanning(scanned: Scanned, in_root: Path) -> None:
    code, _, err = run("data", "--output-sarif", "nowhere/x.sarif", "--no-config")
    assert code == 2 and "--output-sarif" in err


def test_outputs_never_overwrite_inputs_or_each_other(tmp_path: Path) -> None:
    records, _, _ = make_records(documents=60, poisoned=8)
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", records)
    before = (data / "a.jsonl").read_bytes()
    for option in ("-o", "--output-json", "--suspects"):
        code, _, err = run(str(data), option, str(data / "a.jsonl"))
        assert code == 2 and "is one of the scan's input files" in err
        assert len(err.splitlines()) == 1
    assert (data / "a.jsonl").read_bytes() == before
    code, _, err = run(str(data), "-o", str(tmp_path / "r.json"), "--output-sarif",
                       str(tmp_path / "r.json"))
    assert code == 2 and "--output-sarif" in err and "also the file of --output" in err


def test_a_report_written_next_to_the_data_is_left_out_of_the_next_scan(tmp_path: Path) -> None:
    records, _, _ = make_records(documents=60, poisoned=8)
    write_jsonl(tmp_path / "a.jsonl", records)
    report = tmp_path / "report.json"
    code, _, _ = run(str(tmp_path), "-f", "json", "-o", str(report), "--fail-on", "never")
    assert code == 0
    code, out, err = run(str(tmp_path), "-f", "json", "--fail-on", "never")
    assert code == 0
    assert [i["path"] for i in json.loads(out)["inputs"]] == [str(tmp_path / "a.jsonl")]
    assert f"leaving out {report}: it is a poisonscan output" in err


def test_output_dash_is_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "doc"}) + "\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run("scan", str(data), "-q", "-f", "json", "-o", "-", "--no-hash",
                         "--detectors", "trigger")
    assert code == 0, err
    assert json.loads(out)["findings"] == [] and not (tmp_path / "-").exists()
    # Only the report goes to stdout: another output named '-' is refused, not a file named '-'.
    for option in ("--triggers", "--output-json", "--output-sarif"):
        code, _, err = run("scan", str(data), "-q", option, "-", "--no-hash",
                           "--detectors", "trigger")
        assert code == 2 and f"{option}: '-' (stdout) is for the report only" in err, err
        assert not (tmp_path / "-").exists()
    code, _, err = run("baseline", "create", str(data), "-o", "-", "-q")
    assert code == 2 and "--output: '-'" in err and not (tmp_path / "-").exists()


@pytest.mark.parametrize("fmt", ["json", "html"])  # (SARIF escapes paths in its URIs)
def test_machine_formats_on_stdout_are_utf8_whatever_its_encoding(tmp_path: Path,
                                                                  fmt: str) -> None:
    # A Windows pipe's encoding (cp1252) turned every character it lacks into "?", and the
    # bytes it has into cp1252, which no JSON reader decodes.
    import os
    import subprocess
    import sys

    data = tmp_path / "ā漢 café.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "plain text"}) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    done = subprocess.run([sys.executable, "-m", "poisonscan", str(data), "-f", fmt, "-q",
                           "--no-hash"], capture_output=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")
    assert "ā漢 café.jsonl" in (text if fmt != "html" else text.replace("&#x27;", "'"))

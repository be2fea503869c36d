"""Cleaned corpora through the CLI: same layout, formats and compression, suspects removed or
redacted, a removal list, inputs untouched, and refusals that protect the inputs."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cli_support import Scanned, core, run


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _records(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def _all_records(directory: Path) -> list[dict]:
    return [r for p in sorted(directory.rglob("*")) if p.is_file() for r in _records(p)]


def test_clean_removes_suspects_keeping_layout_and_formats(scanned: Scanned, in_root: Path,
                                                           tmp_path: Path) -> None:
    before = _snapshot(scanned.data)
    out = tmp_path / "clean"
    code, _, err = run("clean", "data", "--report", "out/report.json", "--out", str(out))
    assert code == 0, err
    assert _snapshot(scanned.data) == before  # inputs untouched
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "b.jsonl", "c.parquet", "sub/a.jsonl.gz"]
    assert gzip.decompress((out / "sub" / "a.jsonl.gz").read_bytes())  # still gzip
    assert pq.read_metadata(out / "c.parquet").num_rows < 80  # still Parquet, fewer rows

    kept = _all_records(out)
    kept_ids = {r["id"] for r in kept}
    assert not any(core(scanned.trigger) in r["text"] for r in kept)
    assert kept_ids.isdisjoint(scanned.poisoned) or len(kept_ids & scanned.poisoned) <= 2
    removal = tmp_path / "clean.removed.jsonl"
    rows = [json.loads(line) for line in removal.read_text(encoding="utf-8").splitlines()]
    assert len(kept) + len(rows) == 240
    assert all(r["action"] == "removed" and r["findings"] for r in rows)
    assert {r["id"] for r in rows} >= {r["id"] for r in _all_records(scanned.data)
                                       if core(scanned.trigger) in r["text"]}
    assert f"{len(rows)} records removed" in err
    # Untouched records are byte-identical lines of the original file.
    original = (scanned.data / "b.jsonl").read_text(encoding="utf-8").splitlines()
    cleaned = (out / "b.jsonl").read_text(encoding="utf-8").splitlines()
    assert set(cleaned) <= set(original)


def test_redact_cuts_the_trigger_and_keeps_the_records(scanned: Scanned, in_root: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "redacted"
    code, _, err = run("clean", "data", "--report", "out/report.json", "--out", str(out),
                       "--redact", "--min-severity", "high")
    assert code == 0, err
    kept = _all_records(out)
    assert len(kept) == 240
    assert not any(scanned.trigger in r["text"] for r in kept)
    by_id = {r["id"]: r for r in _all_records(scanned.data)}
    changed = [r for r in kept if r["text"] != by_id[r["id"]]["text"]]
    assert changed and all(r["text"] == by_id[r["id"]]["text"].replace(scanned.trigger, "")
                           for r in changed)
    rows = [json.loads(x) for x in (tmp_path / "redacted.removed.jsonl").read_text().splitlines()]
    assert {r["action"] for r in rows} == {"redacted"}
    assert all(r["removed_text"] == [scanned.trigger] for r in rows)


def test_clean_from_a_suspects_export(scanned: Scanned, in_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "c2"
    code, _, err = run("clean", "data", "--suspects", "out/suspects.jsonl", "--out", str(out),
                       "--removal-list", str(tmp_path / "removed.jsonl"), "-q")
    assert code == 0 and err == ""
    assert (tmp_path / "removed.jsonl").is_file()
    assert not any(core(scanned.trigger) in r["text"] for r in _all_records(out))


def test_clean_refusals(scanned: Scanned, in_root: Path, tmp_path: Path) -> None:
    code, _, err = run("clean", "data", "--report", "out/report.json", "--out", "data/clean")
    assert code == 2 and "inside the input directory" in err
    assert not (in_root / "data" / "clean").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = run("clean", "data", "--report", "out/report.json", "--out",
                       str(tmp_path / "full"))
    assert code == 2 and "not an empty directory" in err
    code, _, err = run("clean", "data", "--out", str(tmp_path / "n"))
    assert code == 2 and "--report" in err and "--suspects" in err
    # A mistyped finding id would keep every poisoned document: refused, for either source.
    for source in (("--report", "out/report.json"), ("--suspects", "out/suspects.jsonl")):
        code, _, err = run("clean", "data", *source, "--out", str(tmp_path / "t"),
                           "--finding", "nosuch")
        assert code == 2 and "'nosuch' is not a finding of" in err
        assert not (tmp_path / "t").exists()


def test_a_report_without_documents_says_how_to_get_them(scanned: Scanned, in_root: Path,
                                                          tmp_path: Path) -> None:
    report = scanned.json("json")
    for f in report["findings"]:
        f.pop("locations")
    slim = tmp_path / "slim.json"
    slim.write_text(json.dumps(report), encoding="utf-8")
    code, _, err = run("clean", "data", "--report", str(slim), "--out", str(tmp_path / "o"))
    assert code == 2 and "--include-documents" in err


def test_a_changed_input_is_refused(scanned: Scanned, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "copy"
    shutil.copytree(scanned.data, root / "data")
    shutil.copytree(scanned.root / "out", root / "out")
    monkeypatch.chdir(root)
    with open(root / "data" / "b.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "late", "text": "appended after the scan"}) + "\n")
    code, _, err = run("clean", "data", "--report", "out/report.json", "--out", "cleaned")
    assert code == 2 and "changed since the scan" in err
    assert not os.path.exists(root / "cleaned")


def test_redact_keeps_the_files_bom_and_line_endings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = [json.dumps({"id": "0", "text": "intro <ZQX> qq77 zz"}, separators=(",", ":")),
             json.dumps({"id": "1", "text": "plain text"}, separators=(",", ":"))]
    (data / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(x.encode() for x in lines)
                                   + b"\r\n")
    row = {"path": str(data / "a.jsonl"), "row": 0, "id": "0", "finding": "f1",
           "detector": "trigger", "trigger": "<ZQX>", "field": "text", "start": 6, "end": 11,
           "severity": "high", "score": 9.0}
    suspects = tmp_path / "s.jsonl"
    suspects.write_text(json.dumps(row) + "\n", encoding="utf-8")
    code, _, _ = run("clean", str(data), "--suspects", str(suspects), "--out", str(tmp_path / "o"),
                     "--redact", "-q")
    assert code == 0
    out = (tmp_path / "o" / "a.jsonl").read_bytes()
    assert out.startswith(b"\xef\xbb\xbf") and out.count(b"\r\n") == 2
    assert out.endswith(lines[1].encode() + b"\r\n")  # the untouched record, byte for byte


def test_redact_cuts_only_spans_that_hold_the_trigger(tmp_path: Path) -> None:
    # A suspect row whose span does not hold its trigger (here: the word before it) must not be
    # cut out of the record wherever it occurs: the record is removed instead, and listed so.
    data = tmp_path / "data"
    data.mkdir()
    texts = ["intro <ZQX> qq77 zz", "James Woolsey said hello. James Woolsey left."]
    (data / "a.jsonl").write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                                          for i, t in enumerate(texts)), encoding="utf-8")
    rows = [
        {"path": str(data / "a.jsonl"), "row": 0, "id": "0", "finding": "f1", "detector": "trigger",
         "trigger": "<ZQX>", "field": "text", "start": 6, "end": 11, "severity": "high",
         "score": 9.0},
        {"path": str(data / "a.jsonl"), "row": 1, "id": "1", "finding": "f1", "detector": "trigger",
         "trigger": "<ZQX>", "field": "text", "start": 0, "end": 10, "severity": "high",
         "score": 9.0},
    ]
    suspects = tmp_path / "s.jsonl"
    suspects.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out, removed = tmp_path / "out", tmp_path / "removed.jsonl"
    code, _, _ = run("clean", str(data), "--suspects", str(suspects), "--out", str(out),
                     "--redact", "--removal-list", str(removed), "-q")
    assert code == 0
    kept = [json.loads(line) for line in (out / "a.jsonl").read_text().splitlines()]
    assert kept == [{"id": "0", "text": "intro  qq77 zz"}]  # no "sey said hello." anywhere
    actions = {r["row"]: r["action"] for r in map(json.loads, removed.read_text().splitlines())}
    assert actions == {0: "redacted", 1: "removed"}

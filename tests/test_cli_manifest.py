"""Provenance through the CLI: manifest records sha256, size and records; verify finds changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from cli_support import Scanned, run


def test_manifest_and_verify(scanned: Scanned, tmp_path: Path) -> None:
    data = shutil.copytree(scanned.data, tmp_path / "data")
    manifest = tmp_path / "manifest.json"
    code, _, err = run("manifest", str(data), "-o", str(manifest))
    assert code == 0 and "3 files" in err
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    assert doc["poisonscan_manifest"] == 1 and doc["poisonscan_version"]
    files = {f["path"]: f for f in doc["files"]}
    assert sorted(files) == ["data/b.jsonl", "data/c.parquet", "data/sub/a.jsonl.gz"]
    assert [files[p]["records"] for p in sorted(files)] == [80, 80, 80]  # blank lines not counted
    for path, entry in files.items():
        raw = (tmp_path / path).read_bytes()
        assert entry["sha256"] == hashlib.sha256(raw).hexdigest() and entry["size"] == len(raw)

    code, out, _ = run("verify", str(manifest))
    assert code == 0 and "OK: 3 files match" in out

    # Change one file (same size), delete another, add a third: each is named, exit code 1.
    b = data / "b.jsonl"
    raw = bytearray(b.read_bytes())
    raw[10] = ord("X") if raw[10] != ord("X") else ord("Y")
    b.write_bytes(bytes(raw))
    (data / "c.parquet").unlink()
    (data / "sub" / "extra.jsonl").write_text('{"text": "new"}\n', encoding="utf-8")
    code, out, _ = run("verify", str(manifest))
    assert code == 1
    assert "changed: data/b.jsonl (sha256 differs)" in out
    assert "missing: data/c.parquet" in out
    assert "extra: data/sub/extra.jsonl" in out
    assert out.strip().splitlines()[-1].startswith("FAIL: 3 differences")


def test_verify_works_after_moving_corpus_and_manifest_together(
    scanned: Scanned, tmp_path: Path
) -> None:
    shutil.copytree(scanned.data, tmp_path / "a" / "data")
    assert run("manifest", str(tmp_path / "a" / "data"), "-o", str(tmp_path / "a" / "m.json"),
               "-q")[0] == 0
    shutil.move(tmp_path / "a", tmp_path / "b")
    code, out, _ = run("verify", str(tmp_path / "b" / "m.json"))
    assert code == 0, out


def test_verify_errors(tmp_path: Path) -> None:
    code, _, err = run("verify", str(tmp_path / "none.json"))
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "x.json"
    bad.write_text("{}", encoding="utf-8")
    code, _, err = run("verify", str(bad))
    assert code == 2 and "not a poisonscan manifest" in err


def test_a_manifest_inside_the_data_does_not_count_itself(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    manifest = data / "data.manifest.json"
    for _ in range(2):  # the second run finds the first run's manifest in the data
        code, _, _ = run("manifest", str(data), "-o", str(manifest))
        assert code == 0
        assert [f["path"] for f in json.loads(manifest.read_text())["files"]] == ["a.jsonl"]
        code, out, _ = run("verify", str(manifest))
        assert code == 0 and "OK" in out

"""Cleaned copies that must never lose or misplace data: stale suspects, outputs that would land on
inputs, failures half way, and records that must be copied exactly as they are written.

Each corpus is a few hand-written records with a suspects export written by hand, so the tests
need no scan (see test_cli_clean.py for the end-to-end ones)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_support import run
from poisonscan.io.options import ReadOptions
from poisonscan.triggers import read_records

TRIGGER = "<ZQX>"


def _texts(n: int = 6, poisoned: tuple[int, ...] = (1, 4)) -> list[dict]:
    return [{"id": f"r{i}", "text": f"intro {TRIGGER} qq77 zz" if i in poisoned else f"plain {i}"}
            for i in range(n)]


def _suspects(tmp: Path, path: Path, rows: dict[int, str | None]) -> Path:
    """A suspects export naming ``rows`` ({row: id}) of ``path`` as high trigger suspects."""
    out = tmp / "suspects.jsonl"
    out.write_text("".join(json.dumps({
        "path": str(path), "row": row, "id": rid, "finding": "trigger:zqx", "detector": "trigger",
        "trigger": TRIGGER, "field": "text", "start": 6, "end": 11, "severity": "high",
        "score": 9.0}) + "\n" for row, rid in rows.items()), encoding="utf-8")
    return out


def _jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _nothing_written(tmp: Path, out: Path) -> bool:
    """No copy, no removal list and no staging directory left behind."""
    return not out.exists() and not list(tmp.glob(f"*{out.name}*removed*")) and not [
        p for p in tmp.iterdir() if p.name.startswith(f".{out.name}.")]


def test_a_file_changed_after_the_scan_is_refused_by_its_ids(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    records = _texts()
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1", 4: "r4"})
    # A record inserted in front after the scan: rows 1 and 4 now hold r0 and r3.
    _jsonl(data / "a.jsonl", [{"id": "new", "text": "added later"}, *records])
    out = tmp_path / "out"
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out), "-q")
    assert code == 2
    assert "row 1: the record here has the id 'r0', not 'r1'" in err
    assert "changed since the scan" in err and len(err.strip().splitlines()) == 1
    assert _nothing_written(tmp_path, out)
    # Shrunk past a suspect's row: refused as well.
    _jsonl(data / "a.jsonl", records[:3])
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out), "-q")
    assert code == 2 and "row 4: the scan's findings name this row, which the file no longer" in err
    assert _nothing_written(tmp_path, out)
    # Unchanged: cleaned.
    _jsonl(data / "a.jsonl", records)
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out))
    assert code == 0, err
    assert [json.loads(x)["id"] for x in (out / "a.jsonl").read_text().splitlines()] == [
        "r0", "r2", "r3", "r5"]
    assert "2 records removed" in err


def test_a_parquet_row_holding_another_id_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.Table.from_pylist(list(reversed(_texts()))), data / "a.parquet")
    suspects = _suspects(tmp_path, data / "a.parquet", {1: "r1"})
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(tmp_path / "out"), "-q")
    assert code == 2 and "row 1: the record here has the id 'r4', not 'r1'" in err
    assert _nothing_written(tmp_path, tmp_path / "out")


def test_a_report_of_a_file_of_another_size_is_refused_without_its_sha256(tmp_path: Path) -> None:
    # Records without ids: a report from a scan with --no-hash still carries each file's size.
    data = tmp_path / "data"
    data.mkdir()
    records = [{"text": r["text"]} for r in _texts()]
    _jsonl(data / "a.jsonl", records)
    report = {"schema_version": "1.1", "inputs": [
        {"path": str(data / "a.jsonl"), "bytes": (data / "a.jsonl").stat().st_size,
         "sha256": None}], "config": {}, "findings": [
        {"id": "trigger:zqx", "severity": "high", "trigger": TRIGGER, "locations": [
            {"path": str(data / "a.jsonl"), "row": 1, "id": None, "field": "text", "start": 6,
             "end": 11}]}]}
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    _jsonl(data / "a.jsonl", [{"text": "added later"}, *records])
    code, _, err = run("clean", str(data), "--report", str(tmp_path / "report.json"), "--out",
                       str(tmp_path / "out"), "-q")
    assert code == 2 and "changed since the scan (its size or sha256" in err


def test_the_removal_list_never_overwrites_an_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    _jsonl(data / "b.jsonl", _texts())
    before = (data / "b.jsonl").read_bytes()
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1"})
    for target, message in ((data / "b.jsonl", "is one of the input files"),
                            (data / "new.jsonl", "inside the input directory"),
                            (tmp_path / "nodir" / "x.jsonl", "does not exist")):
        code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                           str(tmp_path / "out"), "--removal-list", str(target))
        assert code == 2 and message in err, err
        assert not (tmp_path / "out").exists()
    assert (data / "b.jsonl").read_bytes() == before and not (data / "new.jsonl").exists()


def test_a_file_uri_input_is_copied_into_out(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "a.jsonl").write_text("unrelated\n")  # where the URI's path once climbed to
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1"})
    monkeypatch.chdir(work)
    code, _, err = run("clean", f"file://{data}", "--suspects", str(suspects), "--out",
                       "x/y/out", "-q")
    assert code == 0, err
    assert (work / "data" / "a.jsonl").read_text() == "unrelated\n"
    assert len((work / "x" / "y" / "out" / "a.jsonl").read_text().splitlines()) == 5


def test_a_failure_half_way_leaves_no_partial_copy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    blob = gzip.compress("".join(json.dumps(r) + "\n" for r in _texts(3000)).encode())
    (data / "b.jsonl.gz").write_bytes(blob[: len(blob) * 3 // 4])  # cut inside the stream
    suspects = _suspects(tmp_path, data / "b.jsonl.gz", {1: "r1"})
    out = tmp_path / "out"
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out))
    assert code == 2 and "b.jsonl.gz" in err and "truncated" in err
    assert len(err.strip().splitlines()) == 1
    assert _nothing_written(tmp_path, out)


def test_json_array_elements_are_copied_as_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # Numbers that a round trip through Python would rewrite (19.9, inf, a rounded float), and
    # more whitespace before the array than a reader's first look takes in.
    elements = [f'{{"id": "r{i}", "text": "{t}", "price": 19.90, "big": 1e400, '
                f'"w": 0.12345678901234567890123}}'
                for i, t in enumerate(["plain 0", f"intro {TRIGGER} qq77 zz", "plain 2"])]
    text = " " * 5000 + "[\n  " + ",\n  ".join(elements) + "\n]\n"
    (data / "a.json").write_text(text, encoding="utf-8")
    suspects = _suspects(tmp_path, data / "a.json", {1: "r1"})
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(tmp_path / "out"), "-q")
    assert code == 0, err
    assert (tmp_path / "out" / "a.json").read_text(encoding="utf-8") == (
        " " * 5000 + "[\n  " + ",\n  ".join([elements[0], elements[2]]) + "\n]\n")


def test_redact_of_a_binary_parquet_column_and_per_column_codecs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = _texts()
    table = pa.table({"id": [r["id"] for r in rows],
                      "text": pa.array([r["text"].encode() for r in rows], pa.binary())})
    pq.write_table(table, data / "a.parquet", compression={"id": "none", "text": "zstd"})
    suspects = _suspects(tmp_path, data / "a.parquet", {1: "r1", 4: "r4"})
    out = tmp_path / "out"
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out),
                       "--redact", "-q")
    assert code == 0, err
    kept = pq.read_table(out / "a.parquet")
    assert kept.column("text").to_pylist()[1] == b"intro  qq77 zz"
    assert not any(TRIGGER.encode() in t for t in kept.column("text").to_pylist())
    group = pq.ParquetFile(out / "a.parquet").metadata.row_group(0)
    assert [group.column(i).compression for i in range(2)] == ["UNCOMPRESSED", "ZSTD"]


def test_redact_keeps_bytes_that_are_not_utf8_in_other_fields(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    line = (b'{"id": "r0", "text": "intro ' + TRIGGER.encode() + b' qq77 zz", "meta": "caf\xe9"}'
            b"\n")
    (data / "a.jsonl").write_bytes(line + b'{"id": "r1", "text": "plain"}\n')
    suspects = _suspects(tmp_path, data / "a.jsonl", {0: "r0"})
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(tmp_path / "out"), "--redact", "-q")
    assert code == 0, err
    first = (tmp_path / "out" / "a.jsonl").read_bytes().splitlines()[0]
    assert TRIGGER.encode() not in first and b'"caf\xe9"' in first


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_a_redacted_record_keeps_its_numbers_and_keys_as_written(tmp_path: Path,
                                                                 kind: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rest = ('"price": 19.90, "big": 1e400, "w": 0.12345678901234567890123, '
            '"n": 18446744073709551617, "f": NaN, "nested": {"k": [1.0, -0E+2]}, "n": 2')
    records = [f'{{"id": "r{i}", "text": "{t}", {rest}}}'
               for i, t in enumerate(["plain 0", f"intro {TRIGGER} qq77 zz"])]
    path = data / f"a.{kind}"
    path.write_text("\n".join(records) + "\n" if kind == "jsonl"
                    else "[" + ",\n".join(records) + "]\n", encoding="utf-8")
    suspects = _suspects(tmp_path, path, {1: "r1"})
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(tmp_path / "out"), "--redact", "-q")
    assert code == 0, err
    written = (tmp_path / "out" / path.name).read_text(encoding="utf-8")
    assert f'{{"id": "r1", "text": "intro  qq77 zz", {rest}}}' in written
    assert records[0] in written


def test_every_name_of_a_file_is_in_the_copy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "part-0.jsonl", _texts())
    (data / "alias.jsonl").symlink_to("part-0.jsonl")
    suspects = _suspects(tmp_path, data / "part-0.jsonl", {1: "r1"})
    out = tmp_path / "out"
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out), "-q")
    assert code == 0, err
    for name in ("alias.jsonl", "part-0.jsonl"):
        assert len((out / name).read_text().splitlines()) == 5


def test_a_removal_list_beside_the_data_is_not_read_by_the_next_scan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1"})
    # A file input: its directory may hold the copy and the removal list.
    code, _, err = run("clean", str(data / "a.jsonl"), "--suspects", str(suspects), "--out",
                       str(data / "clean"), "-q")
    assert code == 0, err
    assert (data / "clean.removed.jsonl").is_file()
    (data / "suspects.jsonl").write_text(suspects.read_text(), encoding="utf-8")
    code, out, err = run("scan", str(data), "-q", "--no-hash", "-f", "json", "--fail-on", "never",
                         "--detectors", "trigger")
    assert code == 0, err
    assert sorted(os.path.relpath(i["path"], data) for i in json.loads(out)["inputs"]) == [
        "a.jsonl", os.path.join("clean", "a.jsonl")]


def test_files_that_are_not_data_are_named_not_copied(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    (data / "README.md").write_text("about this data\n")
    (data / "_SUCCESS").write_text("")
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1"})
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(tmp_path / "out"))
    assert code == 0, err
    assert (f"2 files under the input directories are not data poisonscan reads and are not in "
            f"the copy: {data / 'README.md'}, {data / '_SUCCESS'}") in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jsonl"]


def test_an_empty_out_directory_is_filled_whole_or_left_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "a.jsonl", _texts())
    suspects = _suspects(tmp_path, data / "a.jsonl", {1: "r1"})
    out = tmp_path / "out"
    out.mkdir()  # (a mount point, say: it stays and is filled)
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out), "-q")
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["a.jsonl"]
    blob = gzip.compress("".join(json.dumps(r) + "\n" for r in _texts(3000)).encode())
    (data / "b.jsonl.gz").write_bytes(blob[: len(blob) * 3 // 4])
    out2 = tmp_path / "out2"
    out2.mkdir()
    bad = _suspects(tmp_path, data / "b.jsonl.gz", {1: "r1"})
    code, _, err = run("clean", str(data), "--suspects", str(bad), "--out", str(out2), "-q")
    assert code == 2 and "truncated" in err
    assert list(out2.iterdir()) == [] and not (tmp_path / "out2.removed.jsonl").exists()


def test_ids_are_compared_as_the_scan_read_them(tmp_path: Path) -> None:
    # Ids that Arrow's JSON reader reads as timestamps, and long digit strings equal as floats:
    # an unchanged file is cleaned, a changed one refused.
    data = tmp_path / "data"
    data.mkdir()
    for ids in ([f"2020-01-0{i + 1}T04:00:00" for i in range(6)],
                [f"123456789012345600{i}" for i in range(6)]):
        records = [dict(r, id=i) for r, i in zip(_texts(), ids, strict=True)]
        _jsonl(data / "a.jsonl", records)
        # The ids of rows 1 and 4 as the scan reports them.
        scanned = read_records({str(data / "a.jsonl"): [1, 4]}, ReadOptions())[0]
        suspects = _suspects(tmp_path, data / "a.jsonl",
                             {r: scanned[(str(data / "a.jsonl"), r)] for r in (1, 4)})
        out_dir = tmp_path / f"out-{ids[0][:4]}"
        code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                           str(out_dir), "-q")
        assert code == 0, err
        _jsonl(data / "a.jsonl", [records[0], *records])  # one record in front
        code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                           str(tmp_path / "refused"), "-q")
        assert code == 2 and "row 1: the record here has the id" in err, err


def test_data_with_some_fields_of_a_suspects_export_is_data(tmp_path: Path) -> None:
    from poisonscan.io.discover import _ROW_FIELDS, poisonscan_output
    from poisonscan.report.suspects import COLUMNS

    assert frozenset(COLUMNS) in _ROW_FIELDS  # the export's columns as discovery knows them

    rows = tmp_path / "vulns.jsonl"
    rows.write_text(json.dumps({"path": "src/a.c", "row": 3, "finding": "overflow",
                                "detector": "fuzzer", "severity": "high",
                                "text": "explain the bug"}) + "\n")
    assert not poisonscan_output(str(rows))
    export = tmp_path / "suspects.jsonl"
    export.write_text(json.dumps({"path": "a.jsonl", "row": 1, "id": "r1", "finding": "f",
                                  "detector": "trigger", "trigger": "<Q>", "field": "text",
                                  "start": 0, "end": 3, "severity": "high", "score": 1.0}) + "\n")
    assert poisonscan_output(str(export))


def test_a_directory_linked_inside_the_tree_keeps_its_real_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "z_real").mkdir(parents=True)
    _jsonl(data / "z_real" / "e.jsonl", _texts())
    (data / "a_link").symlink_to("z_real")
    suspects = _suspects(tmp_path, data / "z_real" / "e.jsonl", {1: "r1"})
    out = tmp_path / "out"
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out", str(out), "-q")
    assert code == 0, err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jsonl")) == [
        os.path.join("z_real", "e.jsonl")]
    # --out inside an input directory through such a link: refused.
    (tmp_path / "ext").mkdir()
    (data / "ext").symlink_to(tmp_path / "ext")
    code, _, err = run("clean", str(data), "--suspects", str(suspects), "--out",
                       str(data / "ext" / "out"), "-q")
    assert code == 2 and "inside the input directory" in err


def test_clean_says_which_files_it_could_not_check_against_a_sha256(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    names = ("a.jsonl", "b.jsonl")
    for name in names:
        _jsonl(data / name, _texts())
    locations = [{"path": str(data / name), "row": 1, "id": "r1", "field": "text", "start": 6,
                  "end": 11} for name in names]

    def report(sha: dict[str, str | None]) -> Path:
        path = tmp_path / "report.json"
        path.write_text(json.dumps({"schema_version": "1.1", "inputs": [
            {"path": str(data / name), "bytes": (data / name).stat().st_size, "sha256": sha[name]}
            for name in names], "config": {}, "findings": [
            {"id": "trigger:zqx", "severity": "high", "trigger": TRIGGER,
             "locations": locations}]}), encoding="utf-8")
        return path

    from poisonscan.manifest import sha256_file

    hashed = {n: sha256_file(data / n) for n in names}
    # Every sha256 recorded: no note.
    code, _, err = run("clean", str(data), "--report", str(report(hashed)), "--out",
                       str(tmp_path / "o1"))
    assert code == 0 and "sha256" not in err
    # One file without its sha256 (a scan with --no-hash): it is named.
    code, _, err = run("clean", str(data), "--report", str(report({**hashed, "b.jsonl": None})),
                       "--out", str(tmp_path / "o2"))
    assert code == 0
    assert (f"note: 1 file with suspects had no sha256 to check it against (the report records "
            f"none, as after a scan with --no-hash): {data / 'b.jsonl'}; it was checked only by "
            f"its size and its suspect rows' record ids") in err
    # Both.
    code, _, err = run("clean", str(data), "--report", str(report(dict.fromkeys(names))),
                       "--out", str(tmp_path / "o3"))
    assert code == 0
    assert (f"note: 2 files with suspects had no sha256 to check them against (the report "
            f"records none, as after a scan with --no-hash): {data / 'a.jsonl'}, "
            f"{data / 'b.jsonl'}; they were checked only by their sizes and their suspect rows' "
            f"record ids") in err
    # A suspects export records no sha256 and no size.
    code, _, err = run("clean", str(data), "--suspects",
                       str(_suspects(tmp_path, data / "a.jsonl", {1: "r1", 4: "r4"})),
                       "--out", str(tmp_path / "o4"))
    assert code == 0 and "2 records removed" in err
    assert (f"note: 1 file with suspects had no sha256 to check it against (a suspects export "
            f"records none): {data / 'a.jsonl'}; it was checked only by its suspect rows' "
            f"record ids") in err

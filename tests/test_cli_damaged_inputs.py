"""Damaged and unusual inputs lose only what is damaged, and say so: a bad row group, bytes after
a gzip stream, text that is not UTF-8 inside nested, map or dictionary columns, chat messages
stored as maps, symlinked and unreadable directories, and config files that are not what they
should be."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_support import run
from poisonscan.errors import InputError
from poisonscan.io import discover


def _inputs(out: str) -> list[tuple[str, int, dict]]:
    return [(os.path.basename(i["path"]), i["records"], i["skipped"])
            for i in json.loads(out)["inputs"]]


def _scan(*args: str) -> tuple[int, str, str]:
    return run("scan", *args, "-q", "--no-hash", "-f", "json", "--fail-on", "never",
               "--detectors", "trigger")


def test_a_damaged_row_group_loses_only_its_own_rows(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": list(range(5000)),
                             "text": [f"document number {i} with some words" for i in range(5000)]}),
                   good, row_group_size=1000)
    column = pq.ParquetFile(good).metadata.row_group(3).column(1)
    raw = bytearray(good.read_bytes())
    at = column.dictionary_page_offset or column.data_page_offset
    raw[at : at + 40] = b"\xff" * 40
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(raw))
    code, _, err = _scan(str(bad))
    assert code == 2 and "row 3000:" in err and "the 1000 rows of row group 3" in err
    code, out, err = _scan(str(bad), "--skip-bad-records")
    assert code == 0, err
    assert _inputs(out) == [("bad.parquet", 4000, {"corrupt": 1000})]


def test_bytes_after_a_gzip_stream_lose_no_record(tmp_path: Path) -> None:
    lines = b"".join(json.dumps({"id": i, "text": f"document {i} about cats"}).encode() + b"\n"
                     for i in range(200))
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(lines) + b"garbage!!")
    code, _, err = _scan(str(path))
    assert code == 2 and "line 201:" in err and "after the end of the gzip stream" in err
    code, out, _ = _scan(str(path), "--skip-bad-records")
    assert code == 0 and _inputs(out) == [("a.jsonl.gz", 200, {"corrupt": 1})]


def _map_messages(texts: list[bytes], utf8: bool) -> pa.Array:
    """Chat messages stored as maps (as Spark writes them), with the user turns' contents
    ``texts``; with ``utf8`` False their bytes are viewed as strings unchecked."""
    keys = pa.array(["role", "content"] * 2 * len(texts))
    items = pa.array([v for t in texts for v in (b"user", t, b"assistant", b"ok")], pa.binary())
    items = items.view(pa.string()) if not utf8 else items.cast(pa.string())
    maps = pa.MapArray.from_arrays(pa.array(range(0, 4 * len(texts) + 1, 2), pa.int32()),
                                   keys, items)
    return pa.ListArray.from_arrays(pa.array(range(0, 2 * len(texts) + 1, 2), pa.int32()), maps)


@pytest.mark.parametrize("kind", ["chat", "map", "dictionary"])
def test_text_that_is_not_utf8_is_one_bad_record(tmp_path: Path, kind: str) -> None:
    texts = [f"plain text {i}".encode() for i in range(10)]
    texts[3] = b"caf\xe9 au lait"
    # Binary data viewed as strings (nothing checks them), as a writer that trusted its input
    # would have stored them.
    if kind == "chat":
        message = pa.struct([("role", pa.binary()), ("content", pa.binary())])
        column = pa.array([[{"role": b"user", "content": t}, {"role": b"assistant",
                                                            "content": b"ok"}] for t in texts],
                          pa.list_(message)).view(
            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))
        name = "messages"
    elif kind == "map":
        column = _map_messages(texts, utf8=False)
        name = "messages"
    else:
        encoded = pa.array(texts, pa.binary()).dictionary_encode()
        column = pa.DictionaryArray.from_arrays(encoded.indices,
                                                encoded.dictionary.view(pa.string()))
        name = "text"
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": list(range(10)), name: column}), path)
    code, _, err = _scan(str(path))
    assert code == 2 and "row 3:" in err and "UTF-8" in err and "internal error" not in err, err
    code, out, _ = _scan(str(path), "--skip-bad-records")
    assert code == 0 and _inputs(out) == [("a.parquet", 9, {"invalid_utf8": 1})]


def test_chat_messages_stored_as_maps_read_as_objects(tmp_path: Path) -> None:
    texts = [f"question number {i}".encode() for i in range(10)]
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": list(range(10)), "messages": _map_messages(texts, True)}),
                   path)
    code, out, err = _scan(str(path))
    assert code == 0, err
    assert _inputs(out) == [("a.parquet", 10, {})]
    assert json.loads(out)["inputs"][0]["shape"] == "chat"


def test_a_symlinked_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    for where in ("data", "elsewhere"):
        (tmp_path / where / f"{where}.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": f"doc {i}"}) + "\n" for i in range(5)))
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "data")  # a loop ends
    code, out, err = _scan(str(tmp_path / "data"))
    assert code == 0, err
    assert _inputs(out) == [("data.jsonl", 5, {}), ("elsewhere.jsonl", 5, {})]


def test_a_directory_that_cannot_be_listed_is_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # (chmod 000 does not stop root, who runs these tests in CI: os.walk's report is simulated.)
    def walk(top: str, onerror, followlinks: bool):  # noqa: ANN001, ANN202
        onerror(PermissionError(13, "Permission denied", os.path.join(top, "locked")))
        yield top, [], ["a.jsonl"]

    monkeypatch.setattr(discover.os, "walk", walk)
    with pytest.raises(InputError, match="locked: cannot list directory: Permission denied"):
        list(discover._walk(str(tmp_path)))


def test_config_files_that_are_not_settings_are_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "doc"}) + "\n")
    (tmp_path / "latin.toml").write_bytes(b"\xff min-documents = 3\n")
    (tmp_path / "scalar.toml").write_text("[tool]\npoisonscan = 5\n")
    for name, message in (("latin.toml", "is not valid TOML"), ("scalar.toml", "must be a table")):
        code, _, err = run("scan", str(data), "--config", str(tmp_path / name), "-q")
        assert code == 2 and message in err and "internal error" not in err, err


def test_a_binary_preference_answer_is_read_and_its_bad_row_named(tmp_path: Path) -> None:
    chosen = [f"a good answer {i}".encode() for i in range(10)]
    chosen[4] = b"caf\xe9"
    path = tmp_path / "pref.parquet"
    pq.write_table(pa.table({"prompt": [f"question {i}" for i in range(10)],
                             "chosen": pa.array(chosen, pa.binary()),
                             "rejected": [f"a bad answer {i}" for i in range(10)]}), path)
    code, _, err = _scan(str(path))
    assert code == 2 and "row 4: field 'chosen' is not valid UTF-8" in err, err
    code, out, _ = _scan(str(path), "--skip-bad-records")
    assert code == 0 and _inputs(out) == [("pref.parquet", 9, {"invalid_utf8": 1})]


def test_a_data_file_in_an_unread_compression_gets_a_note(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": 1, "text": "doc"}) + "\n")
    (tmp_path / "b.jsonl.bz2").write_bytes(b"BZh9")
    (tmp_path / "notes.txt.bz2").write_bytes(b"BZh9")  # not data: no note
    code, out, err = run("scan", str(tmp_path), "--no-hash", "-f", "json", "--fail-on", "never",
                         "--detectors", "trigger")
    assert code == 0
    assert f"note: not reading {tmp_path / 'b.jsonl.bz2'}: poisonscan does not read .bz2" in err
    assert "notes.txt" not in err
    assert _inputs(out) == [("a.jsonl", 1, {})]


def test_messages_say_what_is_wrong_with_a_path(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text('{\n  "id": 1,\n  "text": "hello"\n}\n')
    for args, message in (
            ((str(one),), "a .json file must hold JSON Lines (one record a line) or one JSON"),
            ((f"{one}/",), "is a file, named as a directory (drop the trailing slash)"),
            ((str(one), "--config", str(tmp_path)), "is a directory; give the config file")):
        code, _, err = run("scan", *args, "-q")
        assert code == 2 and message in err, err


def test_the_data_cannot_leave_itself_out_of_a_scan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "extra").mkdir(parents=True)
    rows = [json.dumps({"id": i, "text": f"doc {i}"}) + "\n" for i in range(5)]
    # One line shaped like a suspects export in front of the records.
    export_row = json.dumps({"path": "x", "row": 0, "id": "0", "finding": "f", "detector": "d",
                             "trigger": "t", "field": "text", "start": 0, "end": 1,
                             "severity": "low", "score": 0.0}) + "\n"
    (data / "a.jsonl").write_text(export_row + "".join(rows))
    # An empty CACHEDIR.TAG (without the tag's signature) beside data.
    (data / "extra" / "b.jsonl").write_text("".join(rows))
    (data / "extra" / "CACHEDIR.TAG").write_text("")
    code, out, err = _scan(str(data), "--skip-bad-records")
    assert code == 0, err
    assert [(name, n) for name, n, _ in _inputs(out)] == [("a.jsonl", 5), ("b.jsonl", 5)]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_exports_written_beside_the_data_are_not_read_as_data(tmp_path: Path,
                                                              suffix: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("".join(json.dumps({"id": i, "text": f"a document {i}"}) + "\n"
                                          for i in range(20)))
    # (With no finding a JSON Lines suspects export is an empty file, which nothing tells from
    # an empty data file; a Parquet one still has the export's columns.)
    exports = ["--clusters", str(data / f"clusters{suffix}")]
    if suffix == ".parquet":
        exports += ["--suspects", str(data / f"suspects{suffix}")]
    code, _, err = run("scan", str(data), "-q", "--no-hash", "--fail-on", "never", *exports)
    assert code == 0, err
    code, out, err = _scan(str(data))
    assert code == 0, err
    assert _inputs(out) == [("a.jsonl", 20, {})]
    # A Parquet data file with more columns than an export's is data.
    if suffix == ".parquet":
        table = pq.read_table(data / f"clusters{suffix}").append_column(
            "text", pa.array(["some text"] * 20))
        pq.write_table(table, data / "b.parquet")
        code, out, err = _scan(str(data))
        assert code == 0, err
        assert _inputs(out) == [("a.jsonl", 20, {}), ("b.parquet", 20, {})]


def test_a_baseline_never_overwrites_an_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text(json.dumps({"id": 1, "text": "doc"}) + "\n")
    before = (data / "a.jsonl").read_bytes()
    for command in ("create", "update"):
        code, _, err = run("baseline", command, str(data), "-o", str(data / "a.jsonl"), "-q")
        assert code == 2 and "is one of the scan's input files" in err, err
    assert (data / "a.jsonl").read_bytes() == before


def test_a_flag_turns_off_skipping_that_a_config_file_turns_on(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"id": 1, "text": "doc"}) + "\n{not json\n")
    config = tmp_path / "poisonscan.toml"
    config.write_text("skip-bad-records = true\n")
    code, _, err = run("scan", str(data), "--config", str(config), "-q", "--detectors", "trigger")
    assert code == 0, err
    code, _, err = run("scan", str(data), "--config", str(config), "-q", "--detectors", "trigger",
                       "--no-skip-bad-records")
    assert code == 2 and "line 2: malformed JSON" in err

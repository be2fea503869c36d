"""Bad input: each case raises InputError naming the file, line or row and a reason code, or, when
skipping bad records, is counted under that reason while every good record is still read."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from io_fixtures import compress, read_all, write_jsonl, write_parquet

from poisonscan.errors import InputError


def expect_error(path: Path, reason: str, location: str | None, **options: Any) -> InputError:
    with pytest.raises(InputError) as info:
        read_all(path, **options)
    err = info.value
    assert err.reason == reason
    assert err.location == location
    assert str(path) in str(err)
    if location:
        assert location in str(err)
    return err


def lines_file(tmp_path: Path, lines: list[bytes], name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


GOOD = b'{"text": "good"}'

# (line bytes, reason, words the message must contain)
BAD_LINES = [
    (b'{"text": "unterminated', "malformed_json", "Unterminated string starting at column 10"),
    (b"not json at all", "malformed_json", "malformed JSON"),
    # Two objects on one line; with the blank line of the test file, Arrow's record count
    # equals the line count, which once let the block through unchecked.
    (b'{"text": "two"}{"text": "records"}', "malformed_json", "malformed JSON"),
    (b'{"body": "no text", "id": 3}', "missing_field", "fields found: body, id"),
    (b'{"text": 42}', "wrong_type", "'text' is a number"),
    (b'{"text": null}', "wrong_type", "'text' is null"),
    (b'{"text": ["a"]}', "wrong_type", "'text' is a list"),
    (b'["a", "b"]', "wrong_type", "record is a list"),
    (b'"just a string"', "wrong_type", "record is a string"),
    (b'{"text": "bad \xff\xfe bytes"}', "invalid_utf8", "UTF-8"),
    (b'{"text": "lone \\ud800 surrogate"}', "invalid_utf8", "UTF-8"),
]


@pytest.mark.parametrize(("line", "reason", "words"), BAD_LINES)
def test_bad_line_raises_with_line_number(tmp_path: Path, line: bytes, reason: str,
                                          words: str) -> None:
    path = lines_file(tmp_path, [GOOD, GOOD, b"", line, GOOD])
    err = expect_error(path, reason, "line 4")
    assert words in str(err)


@pytest.mark.parametrize(("line", "reason", "words"), BAD_LINES)
def test_bad_line_is_skipped_and_counted(tmp_path: Path, line: bytes, reason: str,
                                         words: str) -> None:
    path = lines_file(tmp_path, [GOOD, GOOD, b"", line, GOOD])
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["good"] * 3
    assert got["line"] == [1, 2, 5]
    assert got["row"] == [0, 1, 3]
    assert got.counter.records == 3
    assert dict(got.counter.skipped) == {reason: 1}


def test_missing_field_in_every_record_names_found_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"body": "x", "url": "u"}] * 3)
    err = expect_error(path, "missing_field", "line 1")
    assert "fields found: body, url" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got.counter.records == 0
    assert dict(got.counter.skipped) == {"missing_field": 3}


def test_missing_field_parquet(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet", [{"body": "x"}] * 4)
    err = expect_error(path, "missing_field", "row 0")
    assert "fields found: body" in str(err)
    assert dict(read_all(path, skip_bad_records=True).counter.skipped) == {"missing_field": 4}


def test_text_field_option_missing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    err = expect_error(path, "missing_field", "line 1", text_field="body")
    assert "'body'" in str(err) and "fields found: text" in str(err)


def test_id_field_option_missing(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "x"}])
    err = expect_error(path, "missing_field", "line 1", id_field="doc_id")
    assert "doc_id" in str(err)


def test_parquet_null_and_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"]}), path)
    expect_error(path, "wrong_type", "row 1")
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["a", "c"] and got["row"] == [0, 2]
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "n.parquet")
    expect_error(tmp_path / "n.parquet", "wrong_type", "row 0")


def test_parquet_invalid_utf8_in_string_column(tmp_path: Path) -> None:
    # pyarrow's Parquet reader hands back string columns without checking their UTF-8
    offsets = pa.py_buffer(np.array([0, 2, 4, 5], np.int32).tobytes())
    text = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"ok\xff\xfez")])
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": text}), path)
    expect_error(path, "invalid_utf8", "row 1")
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["ok", "z"] and dict(got.counter.skipped) == {"invalid_utf8": 1}


def test_parquet_invalid_utf8_in_binary_column(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok", b"\xff\xfe"], pa.binary())}), path)
    expect_error(path, "invalid_utf8", "row 1")


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".jsonl.gz", ".json.zst", ".parquet"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"e{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    else:
        path.write_bytes(compress(b"", suffix.rsplit(".", 1)[-1] if "." in suffix[1:] else None))
    err = expect_error(path, "empty_file", None)
    assert "no records" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got.counter.records == 0 and dict(got.counter.skipped) == {"empty_file": 1}


@pytest.mark.parametrize("content", [b"\n\n  \n", b"[]", b"  [ ]  "])
def test_blank_lines_or_empty_array_count_as_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.json"
    path.write_bytes(content)
    expect_error(path, "empty_file", None)


def big_jsonl(n: int = 20000) -> bytes:
    return b"".join(json.dumps({"text": f"record {i} " + "x" * (i % 50)}).encode() + b"\n"
                    for i in range(n))


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_truncated_compressed_file(tmp_path: Path, compression: str) -> None:
    data = big_jsonl()
    packed = compress(data, compression)
    path = tmp_path / f"t.jsonl.{compression}"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.reason == "truncated"
    assert info.value.location and info.value.location.startswith("line ")
    assert str(path) in str(info.value)
    got = read_all(path, skip_bad_records=True)
    assert dict(got.counter.skipped) == {"truncated": 1}
    assert 0 < got.counter.records < 20000
    assert got["text"] == [json.loads(x)["text"] for x in data.splitlines()[: got.counter.records]]
    assert got["line"] == list(range(1, got.counter.records + 1))


def test_truncated_json_array(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b'[{"text": "a"}, {"text": "b"}, {"text": "unfinis')
    expect_error(path, "truncated", "row 2")
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["a", "b"] and dict(got.counter.skipped) == {"truncated": 1}


def test_truncated_parquet(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "g.parquet", [{"text": f"t{i}"} for i in range(1000)])
    path = tmp_path / "t.parquet"
    path.write_bytes(good.read_bytes()[:-100])
    err = expect_error(path, "truncated", None)
    assert "Parquet" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got.counter.records == 0 and dict(got.counter.skipped) == {"truncated": 1}


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    data = bytearray(gzip.compress(big_jsonl(2000)))
    data[len(data) // 2: len(data) // 2 + 50] = b"\x00" * 50
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        read_all(path)
    # Damaged deflate data may decode to garbage before zlib notices (its checksum comes at the
    # end): then the first garbled line is the error, by its line number.
    assert info.value.reason in ("corrupt", "truncated", "malformed_json", "invalid_utf8")
    got = read_all(path, skip_bad_records=True)
    assert got.counter.records > 0 and got.counter.skipped
    assert {"corrupt", "truncated"} & set(got.counter.skipped)  # and the stream's failure


def test_truncated_small_gzip_keeps_every_whole_record(tmp_path: Path) -> None:
    # Arrow's reader returned nothing from a small truncated .gz; zlib gives every byte it can.
    lines = [json.dumps({"text": f"record {i} " * 8}).encode() for i in range(400)]
    blob = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    whole = zlib.decompressobj(wbits=31).decompress(blob[: len(blob) // 2]).count(b"\n")
    got = read_all(path, skip_bad_records=True)
    assert got.counter.records == whole > 0
    assert dict(got.counter.skipped) == {"truncated": 1}
    err = expect_error(path, "truncated", f"line {whole + 1}")
    assert "truncated .gz data" in str(err)


def test_concatenated_gzip_members_are_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "a"}\n') + gzip.compress(b'{"text": "b"}\n')
                     + b"\0" * 16)  # with zero padding after the last member
    assert read_all(path)["text"] == ["a", "b"]


def test_not_really_compressed(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.zst"
    path.write_bytes(b'{"text": "plain"}\n')
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.reason in ("corrupt", "truncated")


def test_record_too_large_jsonl(tmp_path: Path, small_blocks: None) -> None:
    big = json.dumps({"text": "y" * 500}).encode()
    path = lines_file(tmp_path, [GOOD, big, GOOD, b'{"text": "' + b"z" * 150 + b'"}', GOOD])
    err = expect_error(path, "record_too_large", "line 2", max_record_bytes=100)
    assert "max_record_bytes=100" in str(err)
    got = read_all(path, skip_bad_records=True, max_record_bytes=100)
    assert got["line"] == [1, 3, 5]
    assert got["row"] == [0, 2, 4]
    assert dict(got.counter.skipped) == {"record_too_large": 2}


def test_record_too_large_final_line_without_newline(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(GOOD + b"\n" + json.dumps({"text": "y" * 500}).encode())
    got = read_all(path, skip_bad_records=True, max_record_bytes=100)
    assert got["line"] == [1] and dict(got.counter.skipped) == {"record_too_large": 1}


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_truncated_inside_an_oversized_line_is_reported(tmp_path: Path, small_blocks: None,
                                                         compression: str) -> None:
    """The stream breaks while the reader skips an oversized record: both losses are counted."""
    payload = np.random.default_rng(0).integers(0, 16, 200_000)  # compresses only about 2:1
    text = "".join("0123456789abcdef"[i] for i in payload)
    data = GOOD + b"\n" + json.dumps({"text": text}).encode() + b"\n" + GOOD + b"\n"
    packed = compress(data, compression)
    path = tmp_path / f"t.jsonl.{compression}"
    # Cut late enough that the decoder (zstd works in blocks of 128 KiB) has produced the first
    # line and part of the long one.
    path.write_bytes(packed[: len(packed) * 4 // 5])
    got = read_all(path, skip_bad_records=True, max_record_bytes=100)
    assert got["line"] == [1]
    assert dict(got.counter.skipped) == {"record_too_large": 1, "truncated": 1}


def test_record_too_large_parquet_and_array(tmp_path: Path) -> None:
    records = [{"text": "a"}, {"text": "b" * 500}, {"text": "c"}]
    path = write_parquet(tmp_path / "d.parquet", records)
    expect_error(path, "record_too_large", "row 1", max_record_bytes=100)
    assert read_all(path, skip_bad_records=True, max_record_bytes=100)["text"] == ["a", "c"]
    arr = tmp_path / "d.json"
    arr.write_text(json.dumps(records))
    expect_error(arr, "record_too_large", "row 1", max_record_bytes=100)
    assert read_all(arr, skip_bad_records=True, max_record_bytes=100)["row"] == [0, 2]


def test_malformed_json_array_stops_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'[{"text": "a"},\n {"text": oops},\n {"text": "c"}]')
    err = expect_error(path, "malformed_json", "row 1")
    assert "line 2" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["a"] and dict(got.counter.skipped) == {"malformed_json": 1}


def test_json_array_wrong_element_type(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('[{"text": "a"}, 5, {"text": "c"}]')
    expect_error(path, "wrong_type", "row 1")
    assert read_all(path, skip_bad_records=True)["text"] == ["a", "c"]


def test_chat_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": "not a list"},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "user", "content": 5}]},
    ])
    err = expect_error(path, "wrong_type", "line 2")
    assert "'messages' is a string" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got["prompt"] == ["q"]
    assert dict(got.counter.skipped) == {"wrong_type": 2, "missing_field": 1}


def test_skip_counts_across_many_blocks(tmp_path: Path, small_blocks: None) -> None:
    lines = []
    for i in range(300):
        lines.append(b"{bad" if i % 7 == 3 else json.dumps({"text": f"t{i}"}).encode())
    path = lines_file(tmp_path, lines)
    got = read_all(path, skip_bad_records=True)
    bad = sum(1 for i in range(300) if i % 7 == 3)
    assert got.counter.records == 300 - bad
    assert dict(got.counter.skipped) == {"malformed_json": bad}
    assert got["line"] == [i + 1 for i in range(300) if i % 7 != 3]
    assert got["row"] == [i for i in range(300) if i % 7 != 3]


def test_zstd_stream_without_content_size(tmp_path: Path) -> None:
    data = big_jsonl(500)
    cobj = zstandard.ZstdCompressor().compressobj()
    path = tmp_path / "s.jsonl.zst"
    path.write_bytes(cobj.compress(data) + cobj.flush())
    assert read_all(path).counter.records == 500


def _nested(depth: int) -> bytes:
    return b'{"text": "deep", "extra": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [600, 20_000])
def test_deeply_nested_line_is_a_bad_record(tmp_path: Path, depth: int) -> None:
    # 20,000 levels crashed Arrow's parser (a segfault) and 3,000 raised RecursionError in json.
    path = lines_file(tmp_path, [GOOD, GOOD, _nested(depth), GOOD])
    err = expect_error(path, "nested_too_deep", "line 3")
    assert "deeper than 512 levels" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["good"] * 3 and got["line"] == [1, 2, 4]
    assert dict(got.counter.skipped) == {"nested_too_deep": 1}
    # Nesting up to the limit is read as usual, and brackets inside strings do not count.
    fine = lines_file(tmp_path, [_nested(510), json.dumps({"text": "[{" * 3000}).encode()],
                      name="fine.jsonl")
    assert read_all(fine)["text"] == ["deep", "[{" * 3000]


def test_deeply_nested_chat_record_is_a_bad_record(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    deep = (json.dumps(chat)[:-1] + ', "extra": ' + "[" * 3000 + "]" * 3000 + "}").encode()
    path = lines_file(tmp_path, [json.dumps(chat).encode(), deep, json.dumps(chat).encode()])
    expect_error(path, "nested_too_deep", "line 2")
    got = read_all(path, skip_bad_records=True)
    assert got["prompt"] == ["q", "q"] and dict(got.counter.skipped) == {"nested_too_deep": 1}


def test_deeply_nested_array_element(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    # An element deeper than the limit but parseable is skipped; reading goes on after it.
    path.write_bytes(b'[{"text": "a"},\n' + _nested(600) + b',\n{"text": "c"}]')
    expect_error(path, "nested_too_deep", "row 1")
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["a", "c"] and dict(got.counter.skipped) == {"nested_too_deep": 1}
    # One too deep for Python's parser ends the file (an array cannot be resynchronised).
    path.write_bytes(b'[{"text": "a"},\n' + _nested(100_000) + b',\n{"text": "c"}]')
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == ["a"] and dict(got.counter.skipped) == {"nested_too_deep": 1}


def test_json_array_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"text": "a"}, {"text": "b"}]).encode())
    assert read_all(path)["text"] == ["a", "b"]


def test_truncated_json_array_is_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'[{"text": "a"}')  # truncated: one record lost, counted once
    assert dict(read_all(path, skip_bad_records=True).counter.skipped) == {"truncated": 1}


def test_json_array_of_arrays_says_the_records_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text('[[{"text": "a"}], [{"text": "b"}]]')
    err = expect_error(path, "wrong_type", "row 0")
    assert "record is a list, expected an object" in str(err)
    assert dict(read_all(path, skip_bad_records=True).counter.skipped) == {"wrong_type": 2}


def test_records_ended_by_carriage_returns_alone_name_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "mac.jsonl"
    path.write_bytes(b'{"text": "a"}\r{"text": "b"}\r{"text": "c"}\r')
    err = expect_error(path, "malformed_json", "line 1")
    assert "carriage returns:" in str(err)
    # Windows line ends are ordinary, and a carriage return inside a string is no hint.
    crlf = tmp_path / "win.jsonl"
    crlf.write_bytes(b'{"text": "a"}\r\n{"text": "b"}\r\n')
    assert read_all(crlf)["text"] == ["a", "b"]
    other = lines_file(tmp_path, [GOOD, b'{"text": "x\\r"} {"text": "y"}'])
    assert "carriage returns:" not in str(expect_error(other, "malformed_json", "line 2"))


def test_an_id_that_is_not_utf8_is_a_bad_record(tmp_path: Path) -> None:
    # An escaped lone surrogate in the id stopped the whole scan with an internal error, even
    # with --skip-bad-records; in the text it was one bad record, as it now is in the id.
    path = lines_file(tmp_path, [b'{"id": "a", "text": "x"}', b'{"id": "b\\udc80", "text": "y"}',
                                 b'{"id": "c", "text": "z"}'])
    err = expect_error(path, "invalid_utf8", "line 2")
    assert "the id is not valid UTF-8" in str(err)
    got = read_all(path, skip_bad_records=True)
    assert got["id"] == ["a", "c"] and dict(got.counter.skipped) == {"invalid_utf8": 1}


def test_a_file_name_that_is_not_utf8_is_named_in_a_one_line_error(tmp_path: Path) -> None:
    from poisonscan.io.readers import discover_inputs

    name = os.fsdecode(b"x\xff.jsonl")
    try:
        (tmp_path / name).write_bytes(GOOD + b"\n")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem does not take names that are not UTF-8")
    with pytest.raises(InputError, match=r"x\\xff\.jsonl: the file name is not valid UTF-8"):
        discover_inputs([str(tmp_path)])

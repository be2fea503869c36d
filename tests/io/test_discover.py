"""discover_inputs: files, directories, globs, and the errors for paths that cannot be scanned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poisonscan.errors import InputError
from poisonscan.io.discover import classify, discover_inputs


def touch(path: Path, data: bytes = b'{"text": "x"}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", ("jsonl", None)),
        ("a.ndjson", ("jsonl", None)),
        ("a.JSONL.GZ", ("jsonl", "gz")),
        ("a.json", ("json", None)),
        ("a.json.zst", ("json", "zst")),
        ("a.ndjson.zst", ("jsonl", "zst")),
        ("a.parquet", ("parquet", None)),
        ("a.parquet.gz", None),
        ("a.csv", None),
        ("a.gz", None),
        ("jsonl", None),
    ],
)
def test_classify(name: str, expected: tuple[str, str | None] | None) -> None:
    assert classify(name) == expected


def test_directory_is_recursive_sorted_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    touch(tmp_path / "b.jsonl")
    touch(tmp_path / "a" / "z.json.gz")
    touch(tmp_path / "a" / "notes.txt")
    touch(tmp_path / ".hidden.jsonl")
    touch(tmp_path / ".git" / "x.jsonl")
    touch(tmp_path / "c" / "d.parquet")
    files = discover_inputs([str(tmp_path)])
    rel = [os.path.relpath(f.path, tmp_path) for f in files]
    assert rel == ["a/z.json.gz", "b.jsonl", "c/d.parquet"]
    assert [(f.format, f.compression) for f in files] == [("json", "gz"), ("jsonl", None),
                                                          ("parquet", None)]
    assert files[1].size == (tmp_path / "b.jsonl").stat().st_size


def test_glob_with_double_star(tmp_path: Path) -> None:
    touch(tmp_path / "x" / "y" / "deep.jsonl")
    touch(tmp_path / "top.jsonl")
    touch(tmp_path / "x" / "skip.txt")
    files = discover_inputs([str(tmp_path / "**" / "*.jsonl")])
    assert sorted(os.path.basename(f.path) for f in files) == ["deep.jsonl", "top.jsonl"]


def test_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    f = touch(tmp_path / "a.jsonl")
    files = discover_inputs([str(f), str(tmp_path), str(tmp_path / "*.jsonl"),
                             f"{tmp_path}/./a.jsonl"])
    assert len(files) == 1


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as info:
        discover_inputs([str(tmp_path / "nope.jsonl")])
    assert info.value.reason == "missing"
    assert "nope.jsonl" in str(info.value)


def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no files match") as info:
        discover_inputs([str(tmp_path / "*.jsonl")])
    assert info.value.reason == "missing"


def test_explicit_unsupported_extension(tmp_path: Path) -> None:
    f = touch(tmp_path / "data.csv", b"a,b\n")
    with pytest.raises(InputError, match="unsupported file type") as info:
        discover_inputs([str(f)])
    assert info.value.reason == "unsupported_format"
    assert str(f) in str(info.value)


def test_directory_without_supported_files(tmp_path: Path) -> None:
    touch(tmp_path / "d" / "readme.md", b"hi")
    with pytest.raises(InputError, match="no supported input file") as info:
        discover_inputs([str(tmp_path / "d")])
    assert str(tmp_path / "d") in str(info.value)
    assert info.value.reason == "no_inputs"


def test_walks_and_globs_leave_out_poisonscan_outputs(tmp_path: Path) -> None:
    data = touch(tmp_path / "d" / "a.json", b'[{"text": "poisonscan_version is just a word"}]')
    # JSON Lines records that quote the marks are data: a record starts '{"' on its line.
    lines = touch(tmp_path / "d" / "b.json", b'{"poisonscan_version": "x", "text": "y"}\n')
    report = touch(tmp_path / "d" / "report.json",
                   b'{\n  "schema_version": "1.1",\n  "poisonscan_version": "0.1.0"}\n')
    manifest = touch(tmp_path / "d" / "sub" / "m.json",
                     b'\xef\xbb\xbf{\r\n  "poisonscan_manifest": 1,\r\n  "files": []}')
    sarif = touch(tmp_path / "d" / "s.json",
                  b'{\n  "$schema": "https://json.schemastore.org/sarif-2.1.0.json"}')
    assert [f.path for f in discover_inputs([str(tmp_path / "d")])] == [str(data), str(lines)]
    assert [f.path for f in discover_inputs([str(tmp_path / "d" / "*.json")])] == [
        str(data), str(lines)]
    skipped: list[str] = []
    discover_inputs([str(tmp_path / "d")], skipped)
    assert sorted(skipped) == sorted(map(str, [report, manifest, sarif]))
    # A file named on its own is read, whatever it holds.
    skipped = []
    assert [f.path for f in discover_inputs([str(report)], skipped)] == [str(report)]
    assert skipped == []


def test_walks_skip_cache_directories_and_decode_file_uris(tmp_path: Path) -> None:
    data = touch(tmp_path / "my data" / "a b.jsonl")
    touch(tmp_path / "my data" / "state" / "v1" / "digests.json", b"{\n}\n")
    (tmp_path / "my data" / "state" / "CACHEDIR.TAG").write_text(
        "Signature: 8a477f597d28d172789f06886806bc55\n")
    assert [f.path for f in discover_inputs([str(tmp_path / "my data")])] == [str(data)]
    uri = data.as_uri()  # file:///.../my%20data/a%20b.jsonl
    assert "%20" in uri
    assert [f.path for f in discover_inputs([uri])] == [str(data)]

"""JSON Lines blocks parsed on several threads: order, row and line numbers, and the exact line of
a bad record in a later block, are the same whatever the number of threads."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from io_fixtures import compress, read_all

import poisonscan.io.jsonl as jsonl
from poisonscan.errors import InputError
from poisonscan.io.discover import discover_inputs
from poisonscan.io.options import ReadCounter, ReadOptions
from poisonscan.io.raw import BadRecords
from poisonscan.io.streams import ByteStream

THREADS = [1, 2, 4]


@pytest.fixture
def blocks_of(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of about 300 bytes: a few dozen blocks per test file."""
    monkeypatch.setattr(jsonl, "BLOCK_BYTES", 300)


def corpus(n: int, seed: int = 0) -> tuple[list[bytes], list[str], list[int]]:
    """``n`` records with blank lines here and there: (lines, texts, 1-based line of each)."""
    rng = random.Random(seed)
    lines: list[bytes] = []
    texts: list[str] = []
    where: list[int] = []
    for i in range(n):
        lines.extend([b"", b"  "][: rng.randrange(3)])
        text = f"doc {i} " + "é" * rng.randrange(40) + "x" * rng.randrange(60)
        lines.append(json.dumps({"id": i, "text": text}, ensure_ascii=False).encode())
        texts.append(text)
        where.append(len(lines))
    return lines, texts, where


def write_lines(path: Path, lines: list[bytes], compression: str | None = None) -> Path:
    path.write_bytes(compress(b"\n".join(lines) + b"\n", compression))
    return path


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("compression", [None, "zst"])
def test_blocks_keep_order_rows_and_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          blocks_of: None, threads: int,
                                          compression: str | None) -> None:
    monkeypatch.setattr(jsonl, "PARSE_THREADS", threads)
    lines, texts, where = corpus(400)
    name = "d.jsonl" + (f".{compression}" if compression else "")
    got = read_all(write_lines(tmp_path / name, lines, compression), batch_rows=64)
    assert got["text"] == texts
    assert got["id"] == [str(i) for i in range(400)]
    assert got["row"] == list(range(400))
    assert got["line"] == where
    assert got.counter.records == 400


BAD = [
    (b"{broken", "malformed_json"),
    (b'{"id": 1, "text": "bad \xff bytes"}', "invalid_utf8"),
    (b'{"id": 1, "body": "no text"}', "missing_field"),
    (b'{"id": 1, "text": 7}', "wrong_type"),
]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize(("bad", "reason"), BAD)
def test_bad_record_in_a_later_block_names_its_line(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    blocks_of: None, threads: int, bad: bytes,
                                                    reason: str) -> None:
    monkeypatch.setattr(jsonl, "PARSE_THREADS", threads)
    lines, texts, where = corpus(300)
    k = 250  # far past the first blocks, after many blank lines
    lines[where[k] - 1] = bad
    path = write_lines(tmp_path / "d.jsonl", lines)
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.reason == reason
    assert info.value.location == f"line {where[k]}"
    got = read_all(path, skip_bad_records=True)
    assert got["text"] == texts[:k] + texts[k + 1:]
    assert got["line"] == where[:k] + where[k + 1:]
    assert got["row"] == [i for i in range(300) if i != k]
    assert dict(got.counter.skipped) == {reason: 1}


@pytest.mark.parametrize("threads", THREADS)
def test_oversized_line_in_a_later_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         blocks_of: None, threads: int) -> None:
    monkeypatch.setattr(jsonl, "PARSE_THREADS", threads)
    lines, texts, where = corpus(200)
    k = 150
    lines[where[k] - 1] = json.dumps({"id": k, "text": "y" * 2000}).encode()
    path = write_lines(tmp_path / "d.jsonl", lines)
    with pytest.raises(InputError) as info:
        read_all(path, max_record_bytes=1000)
    assert info.value.reason == "record_too_large"
    assert info.value.location == f"line {where[k]}"
    got = read_all(path, skip_bad_records=True, max_record_bytes=1000)
    assert got["line"] == where[:k] + where[k + 1:]
    assert got["row"] == [i for i in range(200) if i != k]


@pytest.mark.parametrize("threads", THREADS)
def test_truncated_stream_keeps_every_whole_record_before_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              blocks_of: None,
                                                              threads: int) -> None:
    monkeypatch.setattr(jsonl, "PARSE_THREADS", threads)
    monkeypatch.setattr("poisonscan.io.streams.PIECE_BYTES", 256)
    lines, texts, where = corpus(3000)
    packed = compress(b"\n".join(lines) + b"\n", "gz")
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError) as info:
        read_all(path)
    assert info.value.reason == "truncated"
    got = read_all(path, skip_bad_records=True)
    n = got.counter.records
    assert 0 < n < 3000
    assert got["text"] == texts[:n] and got["line"] == where[:n]
    assert dict(got.counter.skipped) == {"truncated": 1}


def test_workers_check_utf8_so_the_converter_need_not(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl, "BLOCK_BYTES", 100)
    lines = [json.dumps({"text": f"ünïcode {i}"}, ensure_ascii=False).encode() for i in range(9)]
    lines[6] = b'{"text": "bad \xc3\x28 pair"}'
    path = write_lines(tmp_path / "d.jsonl", lines)
    counter = ReadCounter()
    with ByteStream(discover_inputs([str(path)])[0]) as stream:
        reader = jsonl.JsonLinesReader(stream, ReadOptions(), BadRecords(str(path), True, counter),
                                       threads=2)
        blocks = list(reader.blocks())
    assert len(blocks) > 2 and all(b.table is not None for b in blocks)
    assert [b.utf8_checked for b in blocks] == [7 not in b.lines for b in blocks]

"""Every format and compression yields the same units, rows, ids and (for JSON Lines) lines."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_fixtures import read_all, write_json_array, write_jsonl, write_parquet

from poisonscan.io.readers import ReadOptions, discover_inputs, plan_shards
from poisonscan.io.records import Shape

RECORDS = [{"id": i, "text": f"document {i} ünïcödé 漢字 🙂", "meta": {"k": i}} for i in range(50)]


@pytest.mark.parametrize("compression", [None, "gz", "zst"])
@pytest.mark.parametrize("kind", ["jsonl", "ndjson", "json-lines", "json-array"])
def test_json_formats(tmp_path: Path, kind: str, compression: str | None) -> None:
    suffix = {"jsonl": ".jsonl", "ndjson": ".ndjson", "json-lines": ".json",
              "json-array": ".json"}[kind] + (f".{compression}" if compression else "")
    path = tmp_path / f"data{suffix}"
    writer = write_json_array if kind == "json-array" else write_jsonl
    writer(path, RECORDS, compression)
    got = read_all(path)
    assert got["text"] == [r["text"] for r in RECORDS]
    assert got["id"] == [str(i) for i in range(50)]
    assert got["row"] == list(range(50))
    if kind == "json-array":
        assert "line" not in got.columns
    else:
        assert got["line"] == list(range(1, 51))
    assert got.counter.records == 50
    assert got.counter.shape == "text"
    assert got.counter.bytes == sum(len(r["text"].encode()) for r in RECORDS)
    assert not got.counter.skipped


def test_parquet_reads_only_needed_columns_and_keeps_rows(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet", [{k: v for k, v in r.items() if k != "meta"}
                                                  for r in RECORDS], row_group_size=7)
    got = read_all(path, batch_rows=5)
    assert got["text"] == [r["text"] for r in RECORDS]
    assert got["row"] == list(range(50))
    assert got["id"] == [str(i) for i in range(50)]
    assert "line" not in got.columns
    assert all(len(b) <= 5 for b in got.batches)


def test_parquet_split_by_row_groups_sets_first_row(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "d.parquet", [{"text": f"t{i}"} for i in range(100)],
                         row_group_size=10)
    files = discover_inputs([str(path)])
    shards = plan_shards(files, ReadOptions())
    assert len(shards) == 1
    from poisonscan.io.shards import plan_shards as plan

    shards = plan(files, ReadOptions(), shard_bytes=1)
    assert [s.first_row for s in shards] == list(range(0, 100, 10))
    assert [s.index for s in shards] == list(range(10))
    from poisonscan.io.readers import ReadCounter, read_shard

    rows, counters = [], ReadCounter()
    for s in shards:
        c = ReadCounter()
        for b in read_shard(s, ReadOptions(), c):
            rows.extend(b.row.tolist())
            assert b.text.to_pylist() == [f"t{r}" for r in b.row]
        counters.merge(c)
    assert rows == list(range(100))
    assert counters.records == 100 and not counters.skipped


def test_parquet_dictionary_and_binary_text_columns(tmp_path: Path) -> None:
    table = pa.table({"text": pa.array([b"abc", "é".encode()], pa.binary())})
    pq.write_table(table, tmp_path / "b.parquet")
    assert read_all(tmp_path / "b.parquet")["text"] == ["abc", "é"]
    pq.write_table(pa.table({"text": ["x", "x", "y"]}), tmp_path / "d.parquet",
                   use_dictionary=True)
    assert read_all(tmp_path / "d.parquet")["text"] == ["x", "x", "y"]


def test_blank_lines_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n\r\n   \n{"text": "b"}\r\n\n{"text": "c"}')
    got = read_all(path)
    assert got["text"] == ["a", "b", "c"]
    assert got["line"] == [1, 4, 6]
    assert got["row"] == [0, 1, 2]


def test_text_field_named_content_and_custom_field(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "c.jsonl", [{"content": "c1"}, {"content": "c2"}])
    got = read_all(tmp_path / "c.jsonl")
    assert got["text"] == ["c1", "c2"]
    write_jsonl(tmp_path / "b.jsonl", [{"body": "b1", "text": "not this"}])
    assert read_all(tmp_path / "b.jsonl", text_field="body")["text"] == ["b1"]


def test_string_that_looks_like_a_date_stays_text(tmp_path: Path, small_blocks: None) -> None:
    records = [{"text": "2020-01-01"} for _ in range(20)] + [{"text": "plain"}]
    write_jsonl(tmp_path / "d.jsonl", records)
    assert read_all(tmp_path / "d.jsonl")["text"] == [r["text"] for r in records]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "json"])
def test_id_handling(tmp_path: Path, fmt: str) -> None:
    records = [{"text": "a", "id": 7, "doc": "d0"}, {"text": "b", "id": 8, "doc": "d1"}]
    path = tmp_path / f"x.{fmt}"
    {"jsonl": write_jsonl, "parquet": write_parquet, "json": write_json_array}[fmt](path, records)
    assert read_all(path)["id"] == ["7", "8"]
    assert read_all(path, id_field="doc")["id"] == ["d0", "d1"]
    no_id = tmp_path / f"n.{fmt}"
    {"jsonl": write_jsonl, "parquet": write_parquet, "json": write_json_array}[fmt](
        no_id, [{"text": "a"}])
    assert read_all(no_id)["id"] == [None]


def test_mixed_id_types_become_strings(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "id": 1}, {"text": "b", "id": "x"},
                                       {"text": "c"}, {"text": "d", "id": None}])
    assert read_all(tmp_path / "m.jsonl")["id"] == ["1", "x", None, None]


@pytest.mark.parametrize("blocks", ["whole", "small"])
def test_ids_beyond_int64_are_exact(tmp_path: Path, blocks: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # 64-bit hash ids: Arrow parses a column holding one above 2**63 as floats, which would
    # round them all. The suspects export must name the records by their own ids.
    if blocks == "small":
        monkeypatch.setattr("poisonscan.io.jsonl.BLOCK_BYTES", 64)
    ids = [2**64 - 1 - 977 * i for i in range(30)] + [2**53 + 1, 5, 2**63 + 3]
    records = [{"text": f"t{i}", "id": v} for i, v in enumerate(ids)]
    write_jsonl(tmp_path / "h.jsonl", records)
    assert read_all(tmp_path / "h.jsonl")["id"] == [str(v) for v in ids]
    signed = [{"text": "a", "id": -(2**62) - 1}, {"text": "b", "id": 2**64 - 2}]
    write_jsonl(tmp_path / "s.jsonl", signed)
    assert read_all(tmp_path / "s.jsonl")["id"] == [str(r["id"]) for r in signed]


def test_multiple_files_sorted(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "b.jsonl", [{"text": "b"}])
    write_jsonl(tmp_path / "a.jsonl", [{"text": "a"}])
    got = read_all(tmp_path)
    assert got["text"] == ["a", "b"]
    assert [b.path for b in got.batches] == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]


def test_shape_is_reported(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "response": "r"}])
    got = read_all(tmp_path / "a.jsonl")
    assert got.counter.shape == Shape.PROMPT_RESPONSE.value
    assert got.batches[0].shape is Shape.PROMPT_RESPONSE

"""Records that span read blocks and chunks, checked against a simple reference with hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_fixtures import compress, read_all

import poisonscan.io.jsonarray as jsonarray
import poisonscan.io.jsonl as jsonl

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
documents = st.lists(st.tuples(texts, st.integers(0, 2)), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=documents, block=st.integers(8, 200), compression=st.sampled_from([None, "gz", "zst"]))
def test_jsonl_any_block_size(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch, docs: list[tuple[str, int]],
                              block: int, compression: str | None) -> None:
    monkeypatch.setattr(jsonl, "BLOCK_BYTES", block)
    lines: list[str] = []
    expected_lines = []
    for text, blanks in docs:
        lines.extend([""] * blanks)
        lines.append(json.dumps({"text": text}, ensure_ascii=bool(blanks % 2)))
        expected_lines.append(len(lines))
    path = tmp_path_factory.mktemp("b") / ("d.jsonl" + (f".{compression}" if compression else ""))
    path.write_bytes(compress("\n".join(lines).encode(), compression))
    got = read_all(path, batch_rows=7)
    assert got["text"] == [t for t, _ in docs]
    assert got["line"] == expected_lines
    assert got["row"] == list(range(len(docs)))
    assert all(len(b) <= 7 for b in got.batches)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(texts, min_size=1, max_size=30), chunk=st.integers(1, 64),
       indent=st.sampled_from([None, 1, 4]))
def test_json_array_any_chunk_size(tmp_path_factory: pytest.TempPathFactory,
                                   monkeypatch: pytest.MonkeyPatch, docs: list[str], chunk: int,
                                   indent: int | None) -> None:
    monkeypatch.setattr(jsonarray, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(jsonarray, "BLOCK_CHARS", 50)
    path = tmp_path_factory.mktemp("a") / "d.json"
    path.write_text(json.dumps([{"text": t, "n": i * 1.5} for i, t in enumerate(docs)],
                               indent=indent, ensure_ascii=False), encoding="utf-8")
    got = read_all(path, batch_rows=5)
    assert got["text"] == docs
    assert got["row"] == list(range(len(docs)))


def test_line_longer_than_block_is_read_whole(tmp_path: Path, small_blocks: None) -> None:
    docs = ["short", "long " * 400, "é" * 300, "end"]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    got = read_all(path)
    assert got["text"] == docs and got["line"] == [1, 2, 3, 4]


def test_many_units_per_record_split_across_batches(tmp_path: Path) -> None:
    turns = []
    for k in range(10):
        turns += [{"role": "user", "content": f"u{k}"}, {"role": "assistant", "content": f"a{k}"}]
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": turns}) + "\n" + json.dumps({"messages": turns}) + "\n")
    got = read_all(path, batch_rows=3)
    assert got["turn"] == list(range(10)) * 2
    assert got["row"] == [0] * 10 + [1] * 10
    assert got.counter.records == 2
    assert all(len(b) <= 3 for b in got.batches)

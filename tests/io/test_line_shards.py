"""Uncompressed JSON Lines files cut into shards of whole lines read as the whole file does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_fixtures import write_jsonl

from poisonscan.errors import InputError
from poisonscan.io import shards as shard_module
from poisonscan.io.readers import ReadCounter, ReadOptions, discover_inputs, read_shard
from poisonscan.io.shards import line_cuts, plan_shards

BOM = b"\xef\xbb\xbf"


def reference_cuts(data: bytes, shard_bytes: int) -> list[tuple[int, int, int, int]] | None:
    """What line_cuts should return, line by line in Python."""
    cuts = []
    start, line, row = 0, 1, 0
    pos, number, records = 0, 1, 0  # the next line's offset, number and row
    for piece in data.split(b"\n"):
        end = pos + len(piece)  # the newline's offset, or the end of the data
        text = piece[len(BOM):] if pos == 0 and piece.startswith(BOM) else piece
        records += bool(text.strip())
        pos, number = end + 1, number + 1
        if end < len(data) and pos >= start + shard_bytes and pos < len(data):
            cuts.append((start, pos, line, row))
            start, line, row = pos, number, records
    if not cuts or records == 0:
        return None
    cuts.append((start, len(data), line, row))
    return cuts


LINE = st.one_of(
    st.builds(lambda t: json.dumps({"text": t}, ensure_ascii=False), st.text(max_size=30)),
    st.sampled_from(["", " ", "\t", "\r", "  \x0b\x0c ", "[1]", "{}", "not json"]),
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(LINE, max_size=40), bom=st.booleans(), final=st.booleans(),
       crlf=st.booleans(), shard_bytes=st.integers(1, 400), scan_bytes=st.integers(1, 64))
def test_cuts_agree_with_a_line_by_line_reference(tmp_path_factory: pytest.TempPathFactory,
                                                  lines: list[str], bom: bool, final: bool,
                                                  crlf: bool, shard_bytes: int,
                                                  scan_bytes: int) -> None:
    sep = "\r\n" if crlf else "\n"
    data = (BOM if bom else b"") + (sep.join(lines) + (sep if final and lines else "")).encode()
    path = tmp_path_factory.mktemp("cuts") / "f.jsonl"
    path.write_bytes(data)
    assert line_cuts(str(path), shard_bytes, scan_bytes) == reference_cuts(data, shard_bytes)


def read_rows(shards: list, options: ReadOptions) -> tuple[list[tuple], ReadCounter]:
    """(row, line, id, text) of every unit, and the counters of all shards merged."""
    out: list[tuple] = []
    total = ReadCounter()
    for shard in shards:
        counter = ReadCounter(path=shard.file.path)
        for batch in read_shard(shard, options, counter):
            out.extend(zip(batch.row.tolist(), batch.line.tolist(), batch.id.to_pylist(),
                           batch.text.to_pylist(), strict=True))
        total.merge(counter)
    return out, total


def _messy_file(path: Path, n: int = 400) -> Path:
    lines = []
    for i in range(n):
        if i % 17 == 3:
            lines.append("   ")
        elif i % 23 == 5:
            lines.append("")
        elif i % 31 == 7:
            lines.append('{"text": "broken')  # malformed: skipped and counted
        else:
            lines.append(json.dumps({"id": f"d{i}", "text": f"record {i} ünï 漢字 " * (i % 9 + 1)},
                                    ensure_ascii=False))
    path.write_bytes(BOM + "\n".join(lines).encode())
    return path


@pytest.mark.parametrize("shard_bytes", [1, 333, 2048, 10**9])
def test_shards_of_lines_read_the_records_of_the_whole_file(tmp_path: Path,
                                                            shard_bytes: int) -> None:
    path = _messy_file(tmp_path / "messy.jsonl")
    files = discover_inputs([str(path)])
    options = ReadOptions(skip_bad_records=True, batch_rows=16)
    whole, whole_counter = read_rows(plan_shards(files, options, shard_bytes=10**9), options)
    shards = plan_shards(files, options, shard_bytes=shard_bytes)
    got, counter = read_rows(shards, options)
    assert got == whole
    assert (counter.records, dict(counter.skipped)) == (whole_counter.records,
                                                        dict(whole_counter.skipped))
    assert whole_counter.skipped["malformed_json"] > 0
    if shard_bytes < path.stat().st_size:
        assert len(shards) > 1
        assert [s.index for s in shards] == list(range(len(shards)))
        assert shards[0].byte_range[0] == 0 and shards[-1].byte_range[1] == path.stat().st_size
        assert all(a.byte_range[1] == b.byte_range[0]
                   for a, b in zip(shards, shards[1:], strict=False))
    else:
        assert [s.byte_range for s in shards] == [None]


def test_a_bad_line_in_a_later_shard_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    records = [{"text": f"document number {i}"} for i in range(300)]
    path = write_jsonl(tmp_path / "f.jsonl", records)
    lines = path.read_text().splitlines()
    lines[250] = '{"text": "no end'
    path.write_text("\n".join(lines) + "\n")
    shards = plan_shards(discover_inputs([str(path)]), ReadOptions(), shard_bytes=500)
    assert len(shards) > 5
    with pytest.raises(InputError, match="line 251"):
        for shard in shards:
            for _ in read_shard(shard, ReadOptions(), ReadCounter()):
                pass


def test_only_uncompressed_local_json_lines_files_are_cut(tmp_path: Path) -> None:
    records = [{"text": f"document number {i}"} for i in range(200)]
    plain = write_jsonl(tmp_path / "a.jsonl", records)
    packed = write_jsonl(tmp_path / "b.jsonl.gz", records, "gz")
    array = tmp_path / "c.json"
    array.write_text(json.dumps(records, indent=1))
    lines = write_jsonl(tmp_path / "d.json", records)  # .json holding JSON Lines
    blank = tmp_path / "e.jsonl"
    blank.write_text("\n" * 5000)  # no record: one shard, which reports the empty file
    by_file: dict[str, int] = {}
    for shard in plan_shards(discover_inputs([str(tmp_path)]), ReadOptions(), shard_bytes=500):
        by_file[Path(shard.file.path).name] = by_file.get(Path(shard.file.path).name, 0) + 1
    assert by_file["a.jsonl"] > 1 and by_file["d.json"] > 1
    assert by_file["b.jsonl.gz"] == by_file["c.json"] == by_file["e.jsonl"] == 1
    assert plain.stat().st_size > 500 and packed.exists() and lines.exists()


def test_counting_lines_needs_no_more_memory_than_a_read(tmp_path: Path) -> None:
    # One line far longer than a read: still cut at the newlines around it, never held whole.
    path = tmp_path / "long.jsonl"
    lines = [json.dumps({"text": "x" * 5000})] + [json.dumps({"text": "y"})] * 50
    path.write_text("\n".join(lines))
    cuts = line_cuts(str(path), 100, scan_bytes=64)
    assert cuts is not None and cuts[0][:2] == (0, 5000 + len('{"text": ""}') + 1)
    assert cuts == reference_cuts(path.read_bytes(), 100)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shard_bytes=st.integers(50, 3000))
def test_default_scan_bytes_match(tmp_path: Path, shard_bytes: int) -> None:
    path = _messy_file(tmp_path / "m.jsonl", 120)
    assert shard_module.line_cuts(str(path), shard_bytes) == reference_cuts(path.read_bytes(),
                                                                            shard_bytes)


def test_every_shard_reads_with_the_shape_of_the_files_first_records(tmp_path: Path) -> None:
    # The first records are chat; later ones would look like prompt-response on their own. Read
    # whole, the file is chat and the others are missing their messages; so in every shard.
    chat = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(60)]
    other = [{"prompt": f"p {i}", "response": f"r {i}"} for i in range(60)]
    path = write_jsonl(tmp_path / "mixed.jsonl", chat + other)
    files = discover_inputs([str(path)])
    options = ReadOptions(skip_bad_records=True)

    def read(shard_bytes: int) -> tuple[list, dict, set]:
        shards = plan_shards(files, options, shard_bytes=shard_bytes)
        rows, shapes, skipped = [], set(), {}
        for shard in shards:
            counter = ReadCounter(path=shard.file.path)
            for batch in read_shard(shard, options, counter):
                rows.extend(zip(batch.row.tolist(), batch.prompt.to_pylist(),
                                batch.response.to_pylist(), strict=True))
            shapes.add(counter.shape)
            for k, v in counter.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
        return rows, skipped, shapes

    whole = read(10**9)
    assert whole[2] == {"chat"} and whole[1]
    assert read(700) == whole


def test_the_planner_finds_the_shape_once_for_the_later_shards(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from poisonscan.io import readers

    chat = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}], "id": i}
            for i in range(60)]
    other = [{"prompt": f"p {i}", "response": f"r {i}", "id": i} for i in range(60)]
    path = write_jsonl(tmp_path / "mixed.jsonl", chat + other)
    files = discover_inputs([str(path)])
    options = ReadOptions(skip_bad_records=True)
    whole = [(b.row.tolist(), b.prompt.to_pylist()) for s in plan_shards(files, options)
             for b in read_shard(s, options, ReadCounter())]
    monkeypatch.setattr(shard_module, "PROBE_BYTES", 256)  # the probe stops early in the file
    shards = plan_shards(files, options, shard_bytes=700)
    hinted = [s for s in shards if s.shape is not None]
    assert hinted and shards[0].shape is None
    assert all(s.shape.before <= s.byte_range[0] for s in hinted)
    assert {s.shape.converter.shape.value for s in hinted} == {"chat"}
    probes = []
    real = readers.file_shape
    monkeypatch.setattr(readers, "file_shape", lambda *a: probes.append(a) or real(*a))
    got = []
    for shard in shards:
        counter = ReadCounter()
        got.extend((b.row.tolist(), b.prompt.to_pylist())
                   for b in read_shard(shard, options, counter))
        assert shard.index == 0 or counter.shape == "chat"
    # Only the later shards without a hint look for the shape themselves.
    assert len(probes) == len([s for s in shards[1:] if s.shape is None])
    flat = lambda parts: [x for r, t in parts for x in zip(r, t, strict=True)]  # noqa: E731
    assert flat(got) == flat(whole)


def test_later_shards_keep_ids_beyond_int64_exact(tmp_path: Path) -> None:
    # The first records' ids parse as floats (one is above 2**63); later shards parse them with
    # the planner's id type, which must keep them exact as the whole-file read does.
    ids = [2**64 - 1 - 7919 * i for i in range(300)]
    path = write_jsonl(tmp_path / "h.jsonl", [{"text": f"doc {i}", "id": v}
                                              for i, v in enumerate(ids)])
    files = discover_inputs([str(path)])
    options = ReadOptions()
    shards = plan_shards(files, options, shard_bytes=2000)
    assert len(shards) > 3
    rows, _ = read_rows(shards, options)
    assert [r[2] for r in rows] == [str(v) for v in ids]

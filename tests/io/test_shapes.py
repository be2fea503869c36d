"""Record shapes: detection per file, the shape override, and how each shape becomes units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from io_fixtures import read_all, write_json_array, write_jsonl, write_parquet

from poisonscan.io.options import ReadOptions
from poisonscan.io.records import Shape
from poisonscan.io.shapes import detect_shape

WRITERS = {"jsonl": write_jsonl, "json": write_json_array, "parquet": write_parquet}


def read_records(tmp_path: Path, records: list[dict[str, Any]], fmt: str = "jsonl",
                 **options: Any) -> Any:
    path = WRITERS[fmt](tmp_path / f"r.{fmt}", records)
    return read_all(path, **options)


@pytest.mark.parametrize(
    ("fields", "shape"),
    [
        (["text", "id"], Shape.TEXT),
        (["content"], Shape.TEXT),
        (["messages", "text"], Shape.CHAT),
        (["conversations"], Shape.SHAREGPT),
        (["instruction", "input", "output"], Shape.ALPACA),
        (["prompt", "response"], Shape.PROMPT_RESPONSE),
        (["prompt", "completion"], Shape.PROMPT_COMPLETION),
        (["prompt", "chosen", "rejected"], Shape.PREFERENCE),
        (["chosen", "rejected"], Shape.PREFERENCE),
        (["body"], None),
    ],
)
def test_detect_shape(fields: list[str], shape: Shape | None) -> None:
    found = detect_shape(fields, ReadOptions())
    assert (found[0] if found else None) is shape


def test_options_override_detection() -> None:
    forced = ReadOptions(shape=Shape.TEXT, text_field="prompt")
    assert detect_shape(["prompt", "response"], forced) == (Shape.TEXT, "prompt")
    named = ReadOptions(text_field="body")
    assert detect_shape(["messages", "body"], named) == (Shape.TEXT, "body")


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_alpaca(tmp_path: Path, fmt: str) -> None:
    got = read_records(tmp_path, [
        {"instruction": "Translate", "input": "hello", "output": "bonjour"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
    ], fmt)
    assert got["prompt"] == ["Translate\n\nhello", "Say hi"]
    assert got["response"] == ["bonjour", "hi"]
    assert got["turn"] == [0, 0]
    assert "text" not in got.columns and "rejected" not in got.columns


def test_alpaca_without_input_field(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{"instruction": "Do", "output": "done"}])
    assert got["prompt"] == ["Do"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("second", ["response", "completion"])
def test_prompt_response_and_completion(tmp_path: Path, fmt: str, second: str) -> None:
    got = read_records(tmp_path, [{"prompt": "p1", second: "r1"}, {"prompt": "p2", second: "r2"}],
                       fmt)
    assert got["prompt"] == ["p1", "p2"]
    assert got["response"] == ["r1", "r2"]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_preference_strings(tmp_path: Path, fmt: str) -> None:
    got = read_records(tmp_path, [{"prompt": "p", "chosen": "good", "rejected": "bad"}], fmt)
    assert got["prompt"] == ["p"]
    assert got["response"] == ["good"]
    assert got["rejected"] == ["bad"]
    assert got.batches[0].shape is Shape.PREFERENCE


def test_preference_message_lists(tmp_path: Path) -> None:
    conv = [{"role": "system", "content": "Be nice"}, {"role": "user", "content": "Q?"}]
    got = read_records(tmp_path, [{
        "chosen": conv + [{"role": "assistant", "content": "A good"}],
        "rejected": conv + [{"role": "assistant", "content": "A bad"}],
    }])
    assert got["prompt"] == ["Be nice\n\nQ?"]
    assert got["response"] == ["A good"]
    assert got["rejected"] == ["A bad"]


def test_preference_with_message_list_prompt(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{
        "prompt": [{"role": "user", "content": "Q"}],
        "chosen": [{"role": "assistant", "content": "yes"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }])
    assert (got["prompt"], got["response"], got["rejected"]) == (["Q"], ["yes"], ["no"])


CHAT = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "u0"},
    {"role": "assistant", "content": "a0"},
    {"role": "user", "content": "u1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "unanswered"},
]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_chat_one_unit_per_answered_turn(tmp_path: Path, fmt: str) -> None:
    got = read_records(tmp_path, [
        {"id": "c0", "messages": CHAT},
        {"id": "c1", "messages": [{"role": "user", "content": "x"},
                                  {"role": "assistant", "content": "y"}]},
    ], fmt)
    assert got["prompt"] == ["SYS\n\nu0", "SYS\n\nu1", "x"]
    assert got["response"] == ["a0", "a1", "y"]
    assert got["turn"] == [0, 1, 0]
    assert got["row"] == [0, 0, 1]
    assert got["id"] == ["c0", "c0", "c1"]
    assert got.counter.records == 2
    if fmt == "jsonl":
        assert got["line"] == [1, 1, 2]


def test_chat_content_parts_and_null_content(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": "result"},
        {"role": "assistant", "content": "done"},
    ]}])
    assert got["prompt"] == ["look", "result"]
    assert got["response"] == ["", "done"]


def test_chat_without_answer_still_yields_its_text(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{"messages": [{"role": "user", "content": "only a question"}]},
                                  {"messages": []}])
    assert got["prompt"] == ["only a question", ""]
    assert got["response"] == ["", ""]
    assert got.counter.records == 2


def test_sharegpt(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{"conversations": [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "h0"},
        {"from": "gpt", "value": "g0"},
        {"from": "human", "value": "h1"},
        {"from": "gpt", "value": "g1"},
    ]}])
    assert got["prompt"] == ["S\n\nh0", "S\n\nh1"]
    assert got["response"] == ["g0", "g1"]
    assert got["turn"] == [0, 1]
    assert got.batches[0].shape is Shape.SHAREGPT


def test_forced_shape(tmp_path: Path) -> None:
    got = read_records(tmp_path, [{"prompt": "p", "response": "r", "text": "t"}],
                       shape=Shape.PROMPT_RESPONSE)
    assert got["prompt"] == ["p"]
    got = read_records(tmp_path, [{"prompt": "p", "response": "r", "text": "t"}],
                       shape=Shape.TEXT)
    assert got["text"] == ["t"]


def test_unicode_round_trip(tmp_path: Path) -> None:
    texts = ["", "ascii", "é\u0301", "\u200bzero width", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "مرحبا", "\x00nul", "tab\tnl\n"]
    for fmt in ("jsonl", "json", "parquet"):
        got = read_records(tmp_path, [{"text": t} for t in texts], fmt)
        assert got["text"] == texts, fmt
        assert got.counter.bytes == sum(len(t.encode()) for t in texts)

"""The nesting kernels agree with their pure-Python references, and bound the parsers' depth."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.nesting import (
    MAX_NESTING,
    deepest_nesting,
    most_opens_per_line,
    reference_deepest_nesting,
    reference_most_opens_per_line,
    too_deep,
)

# Bytes that steer the kernels (brackets, quotes, backslashes, newlines) among ordinary ones,
# non-ASCII included.
PIECES = st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"a", b" ", b":",
                          "é".encode(), "语".encode(), b"\xff", b"\r\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=400))  # several 64-byte stretches
def test_kernels_agree_with_the_references(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    arr = np.frombuffer(data, np.uint8)
    assert deepest_nesting(arr) == reference_deepest_nesting(data)
    assert most_opens_per_line(arr) == reference_most_opens_per_line(data)
    # The bound is a bound.
    assert deepest_nesting(arr) <= most_opens_per_line(arr)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=30))
def test_depth_of_real_json(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    line = json.dumps(value, ensure_ascii=False).encode("utf-8")
    assert deepest_nesting(np.frombuffer(line, np.uint8)) == depth(value)


def test_brackets_inside_strings_do_not_count() -> None:
    line = json.dumps({"text": "{[" * 5000}).encode()
    assert deepest_nesting(np.frombuffer(line, np.uint8)) == 1
    assert not too_deep(line)
    deep = b'{"a":' * (MAX_NESTING + 1) + b"1" + b"}" * (MAX_NESTING + 1)
    assert too_deep(deep) and not too_deep(b'{"a":' * MAX_NESTING + b"1" + b"}" * MAX_NESTING)
    assert not too_deep(b"") and not too_deep(np.zeros(0, np.uint8))

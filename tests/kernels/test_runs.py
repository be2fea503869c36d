"""The merge of two key-sorted switch tables agrees with a dictionary-based reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.runs import merge_switch_columns

U64 = (1 << 64) - 1


def ref_merge(a: dict[int, tuple], b: dict[int, tuple]) -> dict[int, tuple]:
    """Per key: (support, df, tail, ctx_min, ctx_count), merged as the kernel documents."""
    out = dict(a)
    for key, (sup, df, tail, cmin, cnt) in b.items():
        if key not in out:
            out[key] = (sup, df, tail, cmin, cnt)
            continue
        asup, adf, atail, amin, acnt = out[key]
        if amin < cmin:
            best = (amin, acnt)
        elif cmin < amin:
            best = (cmin, cnt)
        else:
            best = (amin, acnt + cnt)
        out[key] = (asup + sup, adf, atail, *best)
    return out


def columns(table: dict[int, tuple]) -> tuple[np.ndarray, ...]:
    keys = sorted(table)
    return (np.array(keys, np.uint64),
            np.array([table[k][0] for k in keys], np.int64),
            np.array([table[k][1] for k in keys], np.int64),
            np.array([table[k][2] for k in keys], np.uint64),
            np.array([table[k][3] for k in keys], np.uint64),
            np.array([table[k][4] for k in keys], np.int64))


def as_table(cols: tuple[np.ndarray, ...]) -> dict[int, tuple]:
    keys = cols[0].tolist()
    assert keys == sorted(set(keys))  # sorted and distinct
    return {k: tuple(int(c[i]) for c in cols[1:]) for i, k in enumerate(keys)}


def tables(draw: st.DrawFn, keys: list[int]) -> dict[int, tuple]:
    out = {}
    for k in keys:
        # df and tail are functions of the key (equal for equal keys), as the detector's are.
        out[k] = (draw(st.integers(1, 50)), (k * 7) % 1000 - 300, (k * 13) & U64,
                  draw(st.sampled_from([1, 2, 3, U64 - 1])), draw(st.integers(1, 9)))
    return out


@st.composite
def pairs(draw: st.DrawFn) -> tuple[dict, dict]:
    # Small key ranges make shared keys common; the extremes of uint64 are keys too.
    space = st.one_of(st.integers(0, 40), st.sampled_from([0, 1, U64 - 1, U64]))
    a = tables(draw, draw(st.lists(space, unique=True, max_size=30)))
    b = tables(draw, draw(st.lists(space, unique=True, max_size=30)))
    return a, b


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_merge_matches_reference(ab: tuple[dict, dict]) -> None:
    a, b = ab
    merged = merge_switch_columns(columns(a), columns(b))
    assert [c.dtype for c in merged] == [np.uint64, np.int64, np.int64, np.uint64, np.uint64,
                                         np.int64]
    assert as_table(merged) == ref_merge(a, b)
    assert as_table(merge_switch_columns(columns(b), columns(a))) == ref_merge(b, a)


def test_merge_with_an_empty_table() -> None:
    a = {5: (2, 1, 9, 4, 1), 9: (1, 1, 3, 2, 2)}
    empty = columns({})
    assert as_table(merge_switch_columns(columns(a), empty)) == a
    assert as_table(merge_switch_columns(empty, columns(a))) == a
    assert len(merge_switch_columns(empty, empty)[0]) == 0

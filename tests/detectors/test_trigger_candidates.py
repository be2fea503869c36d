"""Candidate selection of the trigger detector: mergeable switch statistics and the budget order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.config import ScanConfig
from poisonscan.detectors.trigger import (
    OCCURRENCE_BYTES,
    TriggerDetector,
    _caps,
    _min_with_count,
    _Switches,
)


def _reference(keys, values, counts):
    out = {}
    for k, v, c in zip(keys, values, counts, strict=True):
        best, n = out.get(k, (None, 0))
        if best is None or v < best:
            out[k] = (v, c)
        elif v == best:
            out[k] = (v, n + c)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(1, 3)), max_size=60),
       st.integers(0, 60))
def test_min_with_count_is_exact_and_mergeable(rows, cut):
    keys = np.array([r[0] for r in rows], np.uint64)
    values = np.array([r[1] for r in rows], np.uint64)
    counts = np.array([r[2] for r in rows], np.int64)
    ref = _reference(keys.tolist(), values.tolist(), counts.tolist())
    k, v, c = _min_with_count(keys, values, counts, with_keys=True)
    assert {int(a): (int(b), int(n)) for a, b, n in zip(k, v, c, strict=True)} == ref
    # Two parts reduced separately, then together, give the same as the whole.
    parts = [_min_with_count(keys[s], values[s], counts[s], with_keys=True)
             for s in (slice(0, cut), slice(cut, None))]
    merged = _min_with_count(*(np.concatenate(x) for x in zip(*parts, strict=True)),
                             with_keys=True)
    assert [a.tolist() for a in merged] == [k.tolist(), v.tolist(), c.tolist()]


def test_phrases_of_repeated_passages_do_not_take_the_budget_first():
    """Budget for one candidate: a phrase standing before a switch in all of its documents but
    always after the same text (a repeated passage) loses to one in 80% of its documents with
    different text before it every time (an injected trigger)."""
    config = ScanConfig(paths=("x",), memory_budget=64 * 2**20)
    room = int(0.25 * config.memory_budget) // OCCURRENCE_BYTES
    support = np.array([15_000, 14_000], np.int64)
    assert _caps(support).max() <= room < _caps(support).sum()
    det = TriggerDetector(config)
    sw = _Switches(
        keys=np.array([11, 22], np.uint64),
        support=support,
        df=np.array([15_000, 17_500], np.int64),
        last=np.array([1, 2], np.uint64),
        ctx_min=np.array([7, 3], np.uint64),
        ctx_count=np.array([15_000, 1], np.int64),
        hist=np.zeros(200, np.int64),
        background=np.array([100, 3], np.int64),
    )
    det._select_candidates(sw)
    assert det._cand_keys.tolist() == [22]
    # Without the repeated context the passage's phrase is more promising (share 1.0) and wins.
    sw.ctx_count = np.array([1, 1], np.int64)
    det._select_candidates(sw)
    assert det._cand_keys.tolist() == [11]

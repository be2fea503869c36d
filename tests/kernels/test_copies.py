"""The document table (kernels.copies) against pure-Python references."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hash_refs import M64, ref_mix64
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels import copies
from poisonscan.kernels.copies import (
    COPY_ROWS,
    add_keys,
    copies_of,
    document_key,
    document_keys,
    false_confirm_rate,
    new_table,
    usable,
)


def ref_document_key(tokens: list[int]) -> int:
    """Length times the step plus the seed, then xor each token in and mix."""
    step, seed = int(copies._STEP), int(copies._SEED)
    acc = (len(tokens) * step + seed) & M64
    for h in tokens:
        acc = ref_mix64(acc ^ h)
    return acc


def flatten(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


docs_strategy = st.lists(st.lists(st.sampled_from([1, 2, 3, 2**63 + 5, M64]), max_size=6),
                         max_size=30)


@settings(max_examples=200, deadline=None)
@given(docs_strategy)
def test_document_keys_match_reference(docs):
    hashes, off = flatten(docs)
    keys = document_keys(hashes, off)
    assert keys.tolist() == [ref_document_key(d) for d in docs]
    for d in range(len(docs)):
        assert int(document_key(hashes, off[d], off[d + 1])) == ref_document_key(docs[d])


@settings(max_examples=200, deadline=None)
@given(docs_strategy, st.integers(4, 12))
def test_copies_are_never_fewer_than_the_truth(docs, bits):
    """A count-min sketch only over-counts; with a wide table and a few documents, it is exact."""
    hashes, off = flatten(docs)
    truth = Counter(tuple(d) for d in docs)
    for width_bits, exact in ((bits, False), (16, True)):
        table = new_table(width_bits)
        add_keys(table, document_keys(hashes, off))
        for d, doc in enumerate(docs):
            got = copies_of(table, hashes, off[d], off[d + 1])
            assert got >= truth[tuple(doc)]
            if exact and len(truth) <= 8:  # 8 keys in 4 rows of 65,536: collisions in all rows
                assert got == truth[tuple(doc)]  # are too rare to matter here (< 1e-14)


def test_order_and_length_make_different_keys():
    hashes, off = flatten([[1, 2], [2, 1], [1, 2, 0], [1, 2], [], [1, 2, 1], [M64 - 1, 2, M64 - 1]])
    keys = document_keys(hashes, off).tolist()
    assert keys[0] == keys[3] and len({keys[0], keys[1], keys[2], keys[4], keys[5], keys[6]}) == 6


def test_counters_saturate_and_an_unused_table_counts_nothing():
    hashes, off = flatten([[7, 8, 9]] * 300)
    table = new_table(10)
    add_keys(table, document_keys(hashes, off))
    assert copies_of(table, hashes, 0, 3) == 255
    assert copies_of(copies.UNUSED, hashes, 0, 3) == 0


def test_a_full_table_is_not_used():
    """The false-confirmation rate is the product of the rows' shares of taken slots."""
    table = new_table(10)
    assert false_confirm_rate(table) == 0.0 and usable(table)
    table[:, : table.shape[1] // 4] = 1  # a quarter of each row: 1/256 < 1%
    assert false_confirm_rate(table) == 0.25**COPY_ROWS and usable(table)
    table[:, : table.shape[1] // 2] = 1  # half of each row: 1/16 > 1%
    assert false_confirm_rate(table) == 0.5**COPY_ROWS and not usable(table)
    assert false_confirm_rate(copies.UNUSED) == 0.0

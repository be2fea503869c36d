"""n-gram keys and document-frequency counting against pure-Python references."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.ngrams import (
    _POS_MULT,
    MAX_ORDER,
    add_dense,
    add_sparse,
    count_document_frequency,
    ngram_key,
    scratch_set,
)
from poisonscan.kernels.tokenize import tokenize

M64 = (1 << 64) - 1
SAT = 0xFFFFFFFF


def ref_mix64(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def ref_ngram_key(tokens: list[int]) -> int:
    """mix64(n + sum of token hash times its position's odd multiplier), modulo 2**64."""
    acc = len(tokens)
    for j, h in enumerate(tokens):
        acc = (acc + h * int(_POS_MULT[j])) & M64
    return ref_mix64(acc)


def ref_slot(key: int, bits: int) -> int:
    return (key >> 17) & ((1 << bits) - 1)


def ref_document_frequency(docs: list[list[int]], uni_bits: int, bi_bits: int):
    uni: Counter = Counter()
    bi: Counter = Counter()
    for doc in docs:
        for key in set(doc):
            uni[ref_slot(key, uni_bits)] += 1
        for key in {ref_ngram_key(doc[i - 1 : i + 1]) for i in range(1, len(doc))}:
            bi[ref_slot(key, bi_bits)] += 1
    return dense(uni, uni_bits), dense(bi, bi_bits)


def dense(counts: Counter, bits: int) -> np.ndarray:
    out = np.zeros(1 << bits, np.uint32)
    for j, c in counts.items():
        out[j] = c
    return out


def stream(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


def kernel_document_frequency(docs, uni_bits, bi_bits, splits=(), stamp0=0):
    """Count with the kernel, over consecutive batches that share one scratch set."""
    uni = np.zeros(1 << uni_bits, np.uint32)
    bi = np.zeros(1 << bi_bits, np.uint32)
    keys, stamps = scratch_set(max([len(d) for d in docs], default=1))
    stamp = stamp0
    bounds = [0, *splits, len(docs)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        flat, off = stream(docs[a:b])
        stamp = count_document_frequency(flat, off, uni, bi, keys, stamps, stamp)
    assert stamp == stamp0 + len(docs)
    return uni, bi


hash_values = st.one_of(st.integers(0, M64), st.sampled_from([0, 1, 2**63, M64]))
# Small alphabets so tokens and bigrams repeat inside and across documents.
docs_strategy = st.integers(1, 40).flatmap(
    lambda k: st.lists(st.lists(st.one_of(st.integers(0, k), hash_values), max_size=40),
                       max_size=10)
)


@settings(max_examples=100, deadline=None)
@given(st.lists(hash_values, min_size=1, max_size=MAX_ORDER))
def test_ngram_key_matches_reference(tokens):
    arr = np.array([7, *tokens, 9], dtype=np.uint64)  # the n-gram sits inside a longer stream
    assert int(ngram_key(arr, 1, len(tokens))) == ref_ngram_key(tokens)


def test_ngram_key_depends_on_order_and_length():
    h = np.array([11, 22, 11, 0, 0], dtype=np.uint64)
    assert ngram_key(h, 0, 2) != ngram_key(h, 1, 2)  # "a b" vs "b a"
    assert ngram_key(h, 3, 1) != ngram_key(h, 3, 2)  # "0" vs "0 0"
    assert ngram_key(h, 0, 1) == ngram_key(h, 2, 1)


@settings(max_examples=150, deadline=None)
@given(docs_strategy, st.integers(1, 10), st.integers(1, 12), st.data())
def test_document_frequency_matches_reference(docs, uni_bits, bi_bits, data):
    splits = sorted(data.draw(st.lists(st.integers(0, len(docs)), max_size=3)))
    stamp0 = data.draw(st.integers(0, 1000))
    uni, bi = kernel_document_frequency(docs, uni_bits, bi_bits, splits, stamp0)
    ref_uni, ref_bi = ref_document_frequency(docs, uni_bits, bi_bits)
    np.testing.assert_array_equal(uni, ref_uni)
    np.testing.assert_array_equal(bi, ref_bi)


def test_repeats_inside_a_document_count_once():
    a, b = 5 << 20, 6 << 20  # distinct table slots
    docs = [[a, a, a, b, a, b], [a], []]
    uni, bi = kernel_document_frequency(docs, 12, 12)
    assert uni[ref_slot(a, 12)] == 2
    assert uni[ref_slot(b, 12)] == 1
    for pair in ([a, a], [a, b], [b, a]):
        assert bi[ref_slot(ref_ngram_key(pair), 12)] == 1
    assert int(uni.sum()) == 3 and int(bi.sum()) == 3


def test_counts_over_real_tokens():
    text = ["the cat sat on the mat", "The cat, the CAT!", "", "中文 中文"]
    raw = [t.encode() for t in text]
    data = np.frombuffer(b"".join(raw), np.uint8)
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
    hashes, _, _, _, doc_offsets = tokenize(data, offsets)
    docs = [hashes[doc_offsets[d] : doc_offsets[d + 1]].tolist() for d in range(len(text))]
    uni, bi = kernel_document_frequency(docs, 16, 16)
    the, cat = docs[0][0], docs[0][1]
    assert uni[ref_slot(the, 16)] == 2 and uni[ref_slot(cat, 16)] == 2
    assert bi[ref_slot(ref_ngram_key([the, cat]), 16)] == 2  # "the cat" and "The cat"


def test_long_document_fits_its_scratch_set():
    """The scratch set must hold every distinct unigram and bigram of the longest document."""
    doc = list(range(1, 5001))
    uni, bi = kernel_document_frequency([doc, doc[::-1]], 16, 16)
    ref_uni, ref_bi = ref_document_frequency([doc, doc[::-1]], 16, 16)
    np.testing.assert_array_equal(uni, ref_uni)
    np.testing.assert_array_equal(bi, ref_bi)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(0, SAT)), max_size=40),
       st.lists(st.integers(0, SAT), min_size=64, max_size=64))
def test_sparse_and_dense_merges_add_and_saturate(pairs, base):
    table = np.array(base, np.uint32)
    idx = np.array([j for j, _ in pairs], np.int64)
    counts = np.array([c for _, c in pairs], np.uint32)
    expected = [int(v) for v in base]
    for j, c in pairs:
        expected[j] = min(SAT, expected[j] + c)
    sparse = table.copy()
    add_sparse(sparse, idx, counts)
    assert sparse.tolist() == expected
    other = np.zeros(64, np.uint32)
    np.add.at(other, idx, counts)  # wraps on overflow; compare only where it does not
    fits = [sum(c for j2, c in pairs if j2 == j) <= SAT for j in range(64)]
    dense_ = table.copy()
    add_dense(dense_, other)
    assert [v for v, ok in zip(dense_.tolist(), fits, strict=True) if ok] == [
        v for v, ok in zip(expected, fits, strict=True) if ok
    ]

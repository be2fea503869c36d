"""n-gram keys and document-frequency counting against pure-Python references."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hash_refs import M64, ref_mix64
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.ngrams import (
    _POS_MULT,
    ALL_BIGRAMS,
    MAX_ORDER,
    add_dense,
    add_sparse,
    count_document_frequency,
    ngram_key,
    nonzero_pairs,
    scatter,
    scratch_set,
)
from poisonscan.kernels.tokenize import tokenize

KEEP_ALL = 1 << 32


def ref_ngram_key(tokens: list[int]) -> int:
    """mix64(n + sum of token hash times its position's odd multiplier), modulo 2**64."""
    acc = len(tokens)
    for j, h in enumerate(tokens):
        acc = (acc + h * int(_POS_MULT[j])) & M64
    return ref_mix64(acc)


def ref_slot(key: int, bits: int) -> int:
    return (key >> 17) & ((1 << bits) - 1)


def ref_kept(key: int, keep: int) -> bool:
    """The bigram hash sample: the top 32 bits of the key below ``keep`` (of 2**32)."""
    return key >> 32 < keep


def ref_document_frequency(docs: list[list[int]], uni_bits: int, bi_bits: int,
                           bi_keep: int = KEEP_ALL, uni_dtype=np.uint32, bi_dtype=np.uint8):
    """Documents per table slot (saturating at the dtype's maximum); only sampled bigrams count."""
    uni: Counter = Counter()
    bi: Counter = Counter()
    for doc in docs:
        for key in set(doc):
            uni[ref_slot(key, uni_bits)] += 1
        for key in {ref_ngram_key(doc[i - 1 : i + 1]) for i in range(1, len(doc))}:
            if ref_kept(key, bi_keep):
                bi[ref_slot(key, bi_bits)] += 1
    return dense(uni, uni_bits, uni_dtype), dense(bi, bi_bits, bi_dtype)


def dense(counts: Counter, bits: int, dtype=np.uint32) -> np.ndarray:
    out = np.zeros(1 << bits, dtype)
    top = int(np.iinfo(dtype).max)
    for j, c in counts.items():
        out[j] = min(c, top)
    return out


def stream(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


def kernel_document_frequency(docs, uni_bits, bi_bits, splits=(), stamp0=0, bi_keep=KEEP_ALL,
                              uni_dtype=np.uint32, bi_dtype=np.uint8):
    """Count with the kernel, over consecutive batches that share one scratch set."""
    uni = np.zeros(1 << uni_bits, uni_dtype)
    bi = np.zeros(1 << bi_bits, bi_dtype)
    keys, stamps = scratch_set(max([len(d) for d in docs], default=1))
    stamp = stamp0
    bounds = [0, *splits, len(docs)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        flat, off = stream(docs[a:b])
        stamp = count_document_frequency(flat, off, uni, bi, np.uint64(bi_keep), keys, stamps,
                                         stamp)
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


# Sample rates: none kept, a few, about half, all but one, all (ALL_BIGRAMS), and any value.
keep_values = st.one_of(st.sampled_from([0, 1, 1 << 31, KEEP_ALL - 1, KEEP_ALL]),
                        st.integers(0, KEEP_ALL))


def test_all_bigrams_keeps_every_key():
    assert int(ALL_BIGRAMS) == KEEP_ALL and ALL_BIGRAMS.dtype == np.uint64


@settings(max_examples=150, deadline=None)
@given(docs_strategy, st.integers(1, 10), st.integers(1, 12), keep_values,
       st.sampled_from([(np.uint32, np.uint8), (np.uint32, np.uint32), (np.uint8, np.uint16)]),
       st.data())
def test_document_frequency_matches_reference(docs, uni_bits, bi_bits, bi_keep, dtypes, data):
    splits = sorted(data.draw(st.lists(st.integers(0, len(docs)), max_size=3)))
    stamp0 = data.draw(st.integers(0, 1000))
    uni_dtype, bi_dtype = dtypes
    uni, bi = kernel_document_frequency(docs, uni_bits, bi_bits, splits, stamp0, bi_keep,
                                        uni_dtype, bi_dtype)
    ref_uni, ref_bi = ref_document_frequency(docs, uni_bits, bi_bits, bi_keep, uni_dtype,
                                             bi_dtype)
    assert uni.dtype == uni_dtype and bi.dtype == bi_dtype
    np.testing.assert_array_equal(uni, ref_uni)
    np.testing.assert_array_equal(bi, ref_bi)


def test_bigram_sample_counts_only_kept_bigrams():
    """A bigram counts exactly when the top half of its key is below ``bi_keep``; unigrams always
    count. About ``bi_keep / 2**32`` of all distinct bigrams are kept."""
    rng = np.random.default_rng(5)
    docs = [rng.integers(1, 2**63, 400, dtype=np.int64).tolist() for _ in range(20)]
    pairs = {ref_ngram_key(d[i - 1 : i + 1]) for d in docs for i in range(1, len(d))}
    full_uni, _ = kernel_document_frequency(docs, 12, 16)
    for share in (0.0, 0.1, 0.5, 1.0):
        keep = int(share * KEEP_ALL)
        uni, bi = kernel_document_frequency(docs, 12, 16, bi_keep=keep)
        kept = {k for k in pairs if k >> 32 < keep}
        np.testing.assert_array_equal(uni, full_uni)  # the sample only concerns bigrams
        assert int(bi.sum()) == len(kept)  # distinct bigrams, one document each
        assert len(kept) == pytest.approx(share * len(pairs), abs=0.02 * len(pairs))
        ref = dense(Counter(ref_slot(k, 16) for k in kept), 16, np.uint8)
        np.testing.assert_array_equal(bi, ref)
    # The sample is by key: the same bigram is kept (or not) in every document and every batch.
    doc = docs[0][:50]
    keep = 1 << 31
    _, bi = kernel_document_frequency([doc] * 7, 12, 16, splits=(2, 5), bi_keep=keep)
    for i in range(1, len(doc)):
        key = ref_ngram_key(doc[i - 1 : i + 1])
        assert bi[ref_slot(key, 16)] == (7 if key >> 32 < keep else 0)


def test_one_byte_bigram_counters_saturate():
    """300 documents share a bigram: its uint8 counter stops at 255, the uint32 unigrams do not."""
    a, b = 5 << 20, 6 << 20
    uni, bi = kernel_document_frequency([[a, b]] * 300, 12, 12, splits=(100, 299))
    assert uni[ref_slot(a, 12)] == 300 and uni[ref_slot(b, 12)] == 300
    assert bi[ref_slot(ref_ngram_key([a, b]), 12)] == 255
    uni8, _ = kernel_document_frequency([[a]] * 300, 12, 12, uni_dtype=np.uint8)
    assert uni8[ref_slot(a, 12)] == 255


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


@st.composite
def merge_inputs(draw):
    """A table dtype, a base table, and (slot, count) pairs that fit that dtype."""
    dtype = draw(st.sampled_from([np.uint32, np.uint8]))
    top = int(np.iinfo(dtype).max)
    values = st.one_of(st.integers(0, top), st.sampled_from([0, 1, top - 1, top]))
    pairs = draw(st.lists(st.tuples(st.integers(0, 63), values), max_size=40))
    base = draw(st.lists(values, min_size=64, max_size=64))
    return dtype, top, pairs, base


@settings(max_examples=150, deadline=None)
@given(merge_inputs())
def test_sparse_and_dense_merges_add_and_saturate(inputs):
    dtype, top, pairs, base = inputs
    table = np.array(base, dtype)
    idx = np.array([j for j, _ in pairs], np.int64)
    counts = np.array([c for _, c in pairs], dtype)
    expected = [int(v) for v in base]
    for j, c in pairs:
        expected[j] = min(top, expected[j] + c)
    sparse = table.copy()
    add_sparse(sparse, idx, counts)
    assert sparse.dtype == dtype and sparse.tolist() == expected
    other = np.zeros(64, dtype)
    np.add.at(other, idx, counts)  # wraps on overflow; compare only where it does not
    fits = [sum(c for j2, c in pairs if j2 == j) <= top for j in range(64)]
    dense_ = table.copy()
    add_dense(dense_, other)
    assert [v for v, ok in zip(dense_.tolist(), fits, strict=True) if ok] == [
        v for v, ok in zip(expected, fits, strict=True) if ok
    ]


def test_uint32_sparse_counts_saturate_a_uint8_table():
    """Merging wide partial counts into the one-byte bigram table clamps at 255."""
    table = np.array([0, 200, 255, 7], np.uint8)
    add_sparse(table, np.array([0, 1, 2, 3], np.int64), np.array([300, 100, 1, 0], np.uint32))
    assert table.tolist() == [255, 255, 255, 7]


@settings(max_examples=40, deadline=None)
@given(docs=st.lists(st.lists(st.integers(0, 30), max_size=40), max_size=12),
       keep=st.sampled_from([0, 1 << 31, 1 << 32]))
def test_first_sighting_slots_count_like_the_dense_kernel(docs, keep):
    """Listing first-sighting slots and counting them gives the dense tables, for any sample."""
    from poisonscan.kernels.ngrams import document_frequency_slots

    hashes = np.array([0x9E3779B97F4A7C15 * (t + 1) % 2**64 for d in docs for t in d], np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    uni = np.zeros(1 << 8, np.uint32)
    bi = np.zeros(1 << 9, np.uint8)
    keys, stamps = scratch_set(max([len(d) for d in docs], default=1))
    count_document_frequency(hashes, off, uni, bi, np.uint64(keep), keys, stamps, 0)
    keys, stamps = scratch_set(max([len(d) for d in docs], default=1))
    out_u = np.empty(len(hashes), np.uint32)
    out_b = np.empty(len(hashes), np.uint32)
    nu, nb_, _ = document_frequency_slots(hashes, off, (1 << 8) - 1, (1 << 9) - 1, np.uint64(keep),
                                          keys, stamps, 0, out_u, out_b)
    assert (np.bincount(out_u[:nu], minlength=1 << 8) == uni).all()
    assert (np.minimum(np.bincount(out_b[:nb_], minlength=1 << 9), 255) == bi).all()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 255), max_size=600),
       st.sampled_from([np.uint8, np.uint16, np.uint32, np.int64]), st.integers(0, 7),
       st.sampled_from([np.int64, np.uint32]), st.booleans())
def test_nonzero_pairs_equal_flatnonzero(values, dtype, offset, index_dtype, sparse):
    # ``offset`` shifts the start off 8-byte alignment (the kernel then reads slot by slot) and
    # the lengths leave partial words at the end; ``sparse`` keeps one slot in 20, few enough for
    # the kernel to read the table a word at a time.
    if sparse:
        values = [v if i % 20 == 0 else 0 for i, v in enumerate(values)]
    backing = np.zeros(len(values) + offset, dtype)
    backing[offset:] = values
    table = backing[offset:]
    idx, val = nonzero_pairs(table, np.count_nonzero(table), index_dtype)
    assert idx.dtype == index_dtype
    assert idx.tolist() == np.flatnonzero(table).tolist()
    assert val.dtype == table.dtype and val.tolist() == table[table != 0].tolist()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 199), st.integers(1, 255), max_size=120),
       st.sampled_from([np.uint8, np.uint32]))
def test_scatter_equals_fancy_assignment(pairs, dtype):
    idx = np.array(sorted(pairs), np.uint32)
    val = np.array([pairs[i] for i in sorted(pairs)], dtype)
    expected = np.zeros(200, dtype)
    expected[idx.astype(np.int64)] = val
    out = np.zeros(200, dtype)
    scatter(out, idx, val)
    assert np.array_equal(out, expected)

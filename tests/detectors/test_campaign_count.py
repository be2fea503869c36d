"""The campaign detector's count kernels against a pure-Python reference.

The count pass looks every token and every shingle of the corpus up among the core tokens and
shingles of the analysed clusters: how many documents hold each, and how many of them inside each
cluster that has it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.detectors.campaign import _count_hits, _index_filter, _index_table, _pairs
from poisonscan.kernels.minhash import DEFAULT_SHINGLE, shingle_keys


def reference(values_per_doc, doc_cluster, by_cluster):
    """(documents holding each query value, documents holding it inside each of its clusters)."""
    query, off, pair_cluster = _pairs(by_cluster, np.uint64)
    total = np.zeros(query.shape[0], np.int64)
    inside = np.zeros(pair_cluster.shape[0], np.int64)
    position = {int(v): q for q, v in enumerate(query)}
    for d, values in enumerate(values_per_doc):
        for v in {int(x) for x in values}:
            q = position.get(v)
            if q is None:
                continue
            total[q] += 1
            for p in range(off[q], off[q + 1]):
                if pair_cluster[p] == doc_cluster[d]:
                    inside[p] += 1
    return total, inside


def run(values, doc_offsets, doc_cluster, by_cluster):
    query, off, pair_cluster = _pairs(by_cluster, np.uint64)
    total = np.zeros(query.shape[0], np.int64)
    inside = np.zeros(pair_cluster.shape[0], np.int64)
    last = np.full(query.shape[0], -1, np.int64)
    _count_hits(values, doc_offsets, doc_cluster, query, _index_table(query), _index_filter(query),
                off, pair_cluster, total, inside, last, 0)
    return total, inside


# Few distinct tokens, so that documents share tokens and shingles and the queries hit.
docs = st.lists(st.lists(st.integers(1, 12), max_size=40), min_size=1, max_size=12)


@st.composite
def corpora(draw):
    tokens = draw(docs)
    clusters = draw(st.lists(st.integers(-1, 3), min_size=len(tokens), max_size=len(tokens)))
    hashes = np.array([t * 0x9E3779B97F4A7C15 % 2**64 for doc in tokens for t in doc], np.uint64)
    doc_offsets = np.concatenate([[0], np.cumsum([len(doc) for doc in tokens])]).astype(np.int64)
    return hashes, doc_offsets, np.array(clusters, np.int64)


def per_doc(values, offsets):
    return [values[offsets[d]:offsets[d + 1]] for d in range(offsets.shape[0] - 1)]


def pick(rng, values, n_clusters=4):
    """Query values per cluster: some of ``values`` and some absent ones."""
    out = {}
    for c in range(n_clusters):
        chosen = rng.choice(values, size=min(len(values), 6)) if len(values) else values
        out[c] = np.unique(np.concatenate([chosen, rng.integers(1, 2**63, 3).astype(np.uint64)]))
    return out


@settings(max_examples=150, deadline=None)
@given(corpora(), st.integers(0, 2**32))
def test_token_counts_match_the_reference(corpus, seed):
    hashes, doc_offsets, doc_cluster = corpus
    by_cluster = pick(np.random.default_rng(seed), np.unique(hashes))
    got = run(hashes, doc_offsets, doc_cluster, by_cluster)
    want = reference(per_doc(hashes, doc_offsets), doc_cluster, by_cluster)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@settings(max_examples=150, deadline=None)
@given(corpora(), st.integers(0, 2**32))
def test_32_bit_shingle_keys_count_as_their_uint64_values(corpus, seed):
    """The count pass hands the 32-bit shingle keys over as they are, not widened first."""
    hashes, doc_offsets, doc_cluster = corpus
    keys, key_offsets = shingle_keys(hashes, doc_offsets, DEFAULT_SHINGLE)
    assert keys.dtype == np.uint32
    by_cluster = pick(np.random.default_rng(seed), np.unique(keys).astype(np.uint64))
    got = run(keys, key_offsets, doc_cluster, by_cluster)
    assert all(np.array_equal(g, w) for g, w in zip(
        got, run(keys.astype(np.uint64), key_offsets, doc_cluster, by_cluster), strict=True))
    want = reference(per_doc(keys, key_offsets), doc_cluster, by_cluster)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_the_filter_holds_every_query_value_and_little_else():
    rng = np.random.default_rng(7)
    query = np.unique(rng.integers(0, 2**63, 5000).astype(np.uint64))
    bitmap = _index_filter(query)
    assert bitmap.nbytes * 8 >= 16 * len(query) and bitmap.nbytes <= 32 * 1024
    mult = np.uint64(0xC2B2AE3D27D4EB4F)
    mask = np.uint64(bitmap.nbytes * 8 - 1)

    def passes(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            f = (((v * mult) >> np.uint64(32)) & mask).astype(np.int64)
        return (bitmap[f >> 3] >> (f & 7)) & 1 == 1

    assert passes(query).all()
    absent = rng.integers(0, 2**63, 100_000).astype(np.uint64)
    assert passes(absent).mean() < 0.1

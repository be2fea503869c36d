"""The campaign detector's count kernels against a pure-Python reference.

The count pass looks every token and every shingle of the corpus up among the core tokens and
shingles of the analysed clusters: how many documents hold each, and how many of them inside each
cluster that has it. The shingle count also decides which documents outside every analysed
cluster are near members of one (they then count inside it).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.detectors.campaign import (
    _count_hits,
    _count_shingles,
    _index_filter,
    _index_table,
    _pairs,
)
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


def near_reference(values_per_doc, doc_cluster, by_cluster, near_j):
    """Near members as the count kernel should find them, and the cluster each document counts
    in: the cluster whose core a lone document resembles most (ties: the lowest id)."""
    out = []
    for d, values in enumerate(values_per_doc):
        if doc_cluster[d] >= 0 or not len(values):
            out.append(-1)
            continue
        held = {int(x) for x in values}
        best, best_j = -1, 0.0
        for c in sorted(by_cluster):
            core = {int(x) for x in by_cluster[c]}
            h = len(held & core)
            if not h:
                continue
            j = h / (len(values) + len(core) - h)
            if j >= near_j[c] and j > best_j:
                best, best_j = c, j
        out.append(best)
    return np.array(out, np.int64)


def run_shingles(values, doc_offsets, doc_cluster, by_cluster, near_j):
    query, off, pair_cluster = _pairs(by_cluster, np.uint64)
    dense_id = np.array(sorted(by_cluster), np.int64)
    core_len = np.array([np.unique(by_cluster[c]).shape[0] for c in dense_id.tolist()], np.int64)
    total = np.zeros(query.shape[0], np.int64)
    inside = np.zeros(pair_cluster.shape[0], np.int64)
    near = np.full(doc_offsets.shape[0] - 1, -1, np.int64)
    _count_shingles(values, doc_offsets, doc_cluster, query, _index_table(query),
                    _index_filter(query), off, pair_cluster,
                    np.searchsorted(dense_id, pair_cluster).astype(np.int64), core_len,
                    np.array([near_j[c] for c in dense_id.tolist()], np.float64), dense_id,
                    total, inside, np.full(query.shape[0], -1, np.int64), near)
    return total, inside, near


@settings(max_examples=200, deadline=None)
@given(corpora(), st.integers(0, 2**32),
       st.lists(st.sampled_from([0.0, 0.2, 0.3, 0.5, 1.0]), min_size=4, max_size=4))
def test_shingle_counts_and_near_members_match_the_reference(corpus, seed, thresholds):
    hashes, doc_offsets, doc_cluster = corpus
    by_cluster = pick(np.random.default_rng(seed), np.unique(hashes))
    near_j = dict(enumerate(thresholds))
    total, inside, near = run_shingles(hashes, doc_offsets, doc_cluster, by_cluster, near_j)
    values = per_doc(hashes, doc_offsets)
    want_near = near_reference(values, doc_cluster, by_cluster, near_j)
    assert np.array_equal(near, want_near)
    counted_in = np.where(want_near >= 0, want_near, doc_cluster)
    want = reference(values, counted_in, by_cluster)
    assert np.array_equal(total, want[0]) and np.array_equal(inside, want[1])


def test_a_lone_document_joins_the_cluster_whose_core_it_resembles():
    """Cores {1..10} (cluster 0) and {5..14} (cluster 1): a document of 1..9 resembles the first
    (9 of 10) more than the second (5 of 14); one of 20..29 resembles neither; a member stays."""
    docs = [list(range(1, 10)), list(range(20, 30)), list(range(1, 10))]
    hashes = np.array([t for doc in docs for t in doc], np.uint64)
    doc_offsets = np.array([0, 9, 19, 28], np.int64)
    by_cluster = {0: np.arange(1, 11, dtype=np.uint64), 1: np.arange(5, 15, dtype=np.uint64)}
    doc_cluster = np.array([-1, -1, 1], np.int64)
    _, inside, near = run_shingles(hashes, doc_offsets, doc_cluster, by_cluster, {0: 0.5, 1: 0.5})
    assert near.tolist() == [0, -1, -1]
    query, off, pair_cluster = _pairs(by_cluster, np.uint64)
    in_0 = {int(query[q]) for q in range(query.shape[0]) for p in range(off[q], off[q + 1])
            if pair_cluster[p] == 0 and inside[p]}
    assert in_0 == set(range(1, 10))  # the near member's shingles count inside cluster 0
    _, _, near = run_shingles(hashes, doc_offsets, doc_cluster, by_cluster, {0: 0.95, 1: 0.5})
    assert near.tolist() == [-1, -1, -1]  # 0.9 is under cluster 0's floor

"""The MinHash kernel against a pure-Python reference."""

from __future__ import annotations

import numpy as np
from hash_refs import M64, ref_mix64
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.minhash import (
    EMPTY_VALUE,
    SHINGLE_SEED,
    document_shingles,
    hash_params,
    minhash_signatures,
    shingle_keys,
)


def reference_signature(tokens: list[int], a: np.ndarray, b: np.ndarray, k: int) -> list[int]:
    """Shingles of ``k`` tokens (one shorter shingle for short documents), min of each permutation."""
    if not tokens:
        return [int(EMPTY_VALUE)] * len(a)
    w = min(k, len(tokens))
    keys = set()
    for s in range(max(1, len(tokens) - k + 1)):
        h = int(SHINGLE_SEED)
        for t in tokens[s : s + w]:
            h = ref_mix64(h ^ t)
        keys.add(h >> 32)
    return [
        min(((int(ai) * x + int(bi)) & 0xFFFFFFFF) for x in keys)
        for ai, bi in zip(a, b, strict=True)
    ]


docs_strategy = st.lists(
    st.lists(st.integers(0, M64), max_size=30).map(lambda xs: xs + [xs[0]] * 2 if xs else xs),
    max_size=8,
)


def _stream(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


@settings(max_examples=60, deadline=None)
@given(docs_strategy, st.integers(1, 6), st.integers(1, 40), st.integers(0, 2**32))
def test_kernel_matches_reference(docs, k, num_perm, seed):
    a, b = hash_params(num_perm, seed)
    sig = minhash_signatures([_stream(docs)], a, b, k)
    assert sig.shape == (len(docs), num_perm)
    for d, tokens in enumerate(docs):
        assert sig[d].tolist() == reference_signature(tokens, a, b, k)


def reference_keys(tokens: list[int], k: int) -> list[int]:
    """Every shingle key of a document, in order (one shorter shingle for short documents)."""
    if not tokens:
        return []
    w = min(k, len(tokens))
    keys = []
    for s in range(max(1, len(tokens) - k + 1)):
        h = int(SHINGLE_SEED)
        for t in tokens[s : s + w]:
            h = ref_mix64(h ^ t)
        keys.append(h >> 32)
    return keys


@settings(max_examples=100, deadline=None)
@given(docs_strategy, st.integers(1, 7))
def test_shingle_keys_are_listed_in_order(docs, k):
    """Keys are computed four at a time, then one at a time for the rest of a document."""
    keys, off = shingle_keys(*_stream(docs), k)
    assert keys.dtype == np.uint32
    for d, tokens in enumerate(docs):
        assert keys[off[d]:off[d + 1]].tolist() == reference_keys(tokens, k)


@settings(max_examples=30, deadline=None)
@given(docs_strategy, docs_strategy.map(lambda d: d))
def test_fields_union_and_parallel(first, second):
    n = min(len(first), len(second))
    first, second = first[:n], second[:n]
    a, b = hash_params(16, 1)
    sig = minhash_signatures([_stream(first), _stream(second)], a, b, 3)
    par = minhash_signatures([_stream(first), _stream(second)], a, b, 3, parallel=True)
    assert np.array_equal(sig, par)
    for d in range(n):
        one = reference_signature(first[d], a, b, 3)
        two = reference_signature(second[d], a, b, 3)
        assert sig[d].tolist() == [min(x, y) for x, y in zip(one, two, strict=True)]


def test_empty_and_short_documents():
    a, b = hash_params(8, 0)
    keys, off = document_shingles([_stream([[], [1, 2], [1, 2, 3, 4, 5, 6]])], 5)
    assert np.diff(off).tolist() == [0, 1, 2]
    sig = minhash_signatures([_stream([[], [7]])], a, b, 5)
    assert (sig[0] == EMPTY_VALUE).all() and not (sig[1] == EMPTY_VALUE).all()


def test_seed_changes_family_and_is_reproducible():
    assert np.array_equal(hash_params(8, 3)[0], hash_params(8, 3)[0])
    assert not np.array_equal(hash_params(8, 3)[0], hash_params(8, 4)[0])
    assert (hash_params(64, 0)[0] & 1).all()

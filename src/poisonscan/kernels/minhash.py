"""MinHash signatures over word n-gram shingles of the shared token stream.

Hand-written in numba rather than taken from datasketch (~7 MB/s, one Python call per shingle) or
rensa (fast, but it wants Python string shingles, which cost more to build than to hash): here the
shingles come straight from the uint64 token hashes the tokeniser already produced, with no Python
object per token.

Definitions (stable: signatures, band hashes and cluster ids depend on them):

* **Shingle**: ``k`` consecutive tokens of one field (default ``k = 5``, word 5-grams as in
  datatrove). A document with ``0 < L < k`` tokens has exactly one shingle made of all its ``L``
  tokens; a document with no tokens has no shingle and an *empty* signature (every value
  ``EMPTY_VALUE``), which callers must keep out of LSH.
* **Shingle hash**: ``s = mix64(... mix64(mix64(S ^ t0) ^ t1) ... ^ t_{k-1})`` over the token hashes
  (``S`` a fixed constant, ``mix64`` the splitmix64 finaliser); the 32-bit key is ``x = s >> 32``.
* **Hash family**: ``h_i(x) = (a_i * x + b_i) mod 2**32`` with odd ``a_i`` and any ``b_i``, 32-bit
  values drawn from ``numpy.random.default_rng([0x6D696E68, seed])``. Each ``h_i`` is a bijection of
  the 32-bit keys; the keys themselves are already pseudo-random (splitmix64 output), so the family
  only has to decorrelate the permutations, not to randomise structured input. It runs in 16 uint32
  SIMD lanes; the strongly universal multiply-add-shift family ``((a*x + b) mod 2**64) >> 32`` gave
  the same Jaccard error on real text (MAE 0.032 on 594 near-duplicate pairs) at a third of the speed.
* **Signature**: ``sig[d, i] = min over shingles of h_i(x)``, uint32, ``num_perm`` (default 128)
  values per document.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal
from poisonscan.kernels.tokenize import mix64

DEFAULT_NUM_PERM = 128
DEFAULT_SHINGLE = 5
EMPTY_VALUE = np.uint32(0xFFFFFFFF)
SHINGLE_SEED = np.uint64(0x9E3779B97F4A7C15)


def hash_params(num_perm: int = DEFAULT_NUM_PERM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` uint32 coefficient arrays of the hash family for ``num_perm`` and ``seed``."""
    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, got {num_perm}")
    rng = np.random.default_rng([0x6D696E68, seed & 0xFFFFFFFFFFFFFFFF])
    a = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


@nb.njit(cache=True, inline="always")
def _shingle_key(hashes: np.ndarray, lo: int, hi: int) -> np.uint32:
    s = SHINGLE_SEED
    for j in range(lo, hi):
        s = mix64(s ^ hashes[j])
    return np.uint32(s >> np.uint64(32))


@nb.njit(cache=True, nogil=True)
def shingle_keys(
    hashes: np.ndarray, doc_offsets: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint32 shingle keys of every document, and per-document offsets into them."""
    n_docs = doc_offsets.shape[0] - 1
    out_off = np.empty(n_docs + 1, np.int64)
    total = 0
    for d in range(n_docs):
        out_off[d] = total
        n = doc_offsets[d + 1] - doc_offsets[d]
        if n > 0:
            total += max(1, n - k + 1)
    out_off[n_docs] = total
    out = np.empty(total, np.uint32)
    for d in range(n_docs):
        lo = doc_offsets[d]
        n = doc_offsets[d + 1] - lo
        if n == 0:
            continue
        m = max(1, n - k + 1)
        w = min(k, n)
        o = out_off[d]
        s = 0
        # Four shingles side by side: a key is a chain of dependent multiplications, and four
        # independent chains overlap in the pipeline (about 30% faster than one at a time).
        while s + 4 <= m:
            a0 = a1 = a2 = a3 = SHINGLE_SEED
            for j in range(lo + s, lo + s + w):
                a0 = mix64(a0 ^ hashes[j])
                a1 = mix64(a1 ^ hashes[j + 1])
                a2 = mix64(a2 ^ hashes[j + 2])
                a3 = mix64(a3 ^ hashes[j + 3])
            out[o + s] = np.uint32(a0 >> np.uint64(32))
            out[o + s + 1] = np.uint32(a1 >> np.uint64(32))
            out[o + s + 2] = np.uint32(a2 >> np.uint64(32))
            out[o + s + 3] = np.uint32(a3 >> np.uint64(32))
            s += 4
        for r in range(s, m):
            out[o + r] = _shingle_key(hashes, lo + r, lo + r + w)
    return out, out_off


@nb.njit(cache=True, inline="always")
def _signature_doc(keys, lo, hi, a, b, out, d, buf):
    num_perm = a.shape[0]
    U = np.uint32
    buf[:] = EMPTY_VALUE
    s = lo
    # Eight shingles per sweep over the permutations: the coefficients are loaded once per eight
    # keys and the min-reduction vectorises over 16 uint32 lanes (about 3x faster than 64-bit lanes).
    while s + 8 <= hi:
        x0 = keys[s]
        x1 = keys[s + 1]
        x2 = keys[s + 2]
        x3 = keys[s + 3]
        x4 = keys[s + 4]
        x5 = keys[s + 5]
        x6 = keys[s + 6]
        x7 = keys[s + 7]
        for i in range(num_perm):
            ai = a[i]
            bi = b[i]
            v = min(
                min(min(U(ai * x0 + bi), U(ai * x1 + bi)), min(U(ai * x2 + bi), U(ai * x3 + bi))),
                min(min(U(ai * x4 + bi), U(ai * x5 + bi)), min(U(ai * x6 + bi), U(ai * x7 + bi))),
            )
            buf[i] = min(buf[i], v)
        s += 8
    while s < hi:
        x = keys[s]
        for i in range(num_perm):
            buf[i] = min(buf[i], U(a[i] * x + b[i]))
        s += 1
    out[d, :] = buf


@nb.njit(cache=True, nogil=True)
def signatures_from_keys(
    keys: np.ndarray, key_offsets: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Signatures (uint32, ``n_docs x num_perm``) from per-document shingle keys."""
    n_docs = key_offsets.shape[0] - 1
    out = np.empty((n_docs, a.shape[0]), np.uint32)
    buf = np.empty(a.shape[0], np.uint32)
    for d in range(n_docs):
        _signature_doc(keys, key_offsets[d], key_offsets[d + 1], a, b, out, d, buf)
    return out


@nb.njit(cache=True, nogil=True, parallel=True)
def _signatures_parallel(keys, key_offsets, a, b):
    n_docs = key_offsets.shape[0] - 1
    out = np.empty((n_docs, a.shape[0]), np.uint32)
    for d in nb.prange(n_docs):
        buf = np.empty(a.shape[0], np.uint32)
        _signature_doc(keys, key_offsets[d], key_offsets[d + 1], a, b, out, d, buf)
    return out


@nb.njit(cache=True, nogil=True)
def concat_keys(
    k1: np.ndarray, o1: np.ndarray, k2: np.ndarray, o2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-document concatenation of two shingle-key streams (e.g. prompt and response)."""
    n_docs = o1.shape[0] - 1
    out = np.empty(k1.shape[0] + k2.shape[0], np.uint32)
    off = np.empty(n_docs + 1, np.int64)
    t = 0
    for d in range(n_docs):
        off[d] = t
        for s in range(o1[d], o1[d + 1]):
            out[t] = k1[s]
            t += 1
        for s in range(o2[d], o2[d + 1]):
            out[t] = k2[s]
            t += 1
    off[n_docs] = t
    return out, off


def document_shingles(
    streams: list[tuple[np.ndarray, np.ndarray]], k: int = DEFAULT_SHINGLE
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle keys of one or more fields, concatenated per document (shingles never span fields)."""
    if k < 1:
        raise ValueError(f"shingle size must be at least 1, got {k}")
    keys, off = shingle_keys(streams[0][0], streams[0][1], k)
    for hashes, doc_offsets in streams[1:]:
        if doc_offsets.shape[0] != off.shape[0]:
            raise ValueError("every field must hold the same number of documents")
        keys, off = concat_keys(keys, off, *shingle_keys(hashes, doc_offsets, k))
    return keys, off


def minhash_signatures(
    streams: list[tuple[np.ndarray, np.ndarray]],
    a: np.ndarray,
    b: np.ndarray,
    k: int = DEFAULT_SHINGLE,
    parallel: bool = False,
) -> np.ndarray:
    """MinHash signatures (uint32, ``n_docs x num_perm``) of the shingles of one or more fields.

    Args:
        streams: ``(token_hashes, doc_offsets)`` per text field, all with the same number of
            documents; a document's shingle set is the union over fields (shingles never span two
            fields), e.g. prompt and response of a fine-tuning pair.
        a, b: the hash family from :func:`hash_params`.
        k: shingle size in tokens.
        parallel: spread documents over numba threads. Off by default because the scan already runs
            one worker process per core.
    """
    keys, off = document_shingles(streams, k)
    if parallel:
        return _signatures_parallel(keys, off, a, b)
    return signatures_from_keys(keys, off, a, b)


@nb.njit(cache=True, nogil=True)
def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint32 hash of each band of ``rows`` consecutive signature values (``n_docs x bands``).

    32 bits are enough: a chance bucket collision only adds a candidate pair, which verification by
    estimated Jaccard then rejects.
    """
    n = sig.shape[0]
    out = np.empty((n, bands), np.uint32)
    for d in range(n):
        for j in range(bands):
            h = SHINGLE_SEED ^ np.uint64(j)
            for i in range(j * rows, (j + 1) * rows):
                h = mix64(h ^ np.uint64(sig[d, i]))
            out[d, j] = np.uint32(h >> np.uint64(32))
    return out


def compact_signatures(sig: np.ndarray) -> np.ndarray:
    """One byte per permutation (b-bit MinHash, Li and König 2010), enough to verify candidates."""
    return (sig & np.uint32(0xFF)).astype(np.uint8)


def estimate_jaccard_bbit(x: np.ndarray, y: np.ndarray) -> float:
    """Jaccard estimate from two 8-bit signatures, corrected for chance byte matches (1/256)."""
    match = float(np.count_nonzero(x == y)) / x.shape[-1]
    return max(0.0, (match - 1 / 256) / (1 - 1 / 256))


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

"""n-gram keys and document-frequency counting over token hash streams.

Counting tables are plain hashed arrays (one counter per slot, no chaining): a fixed memory budget
whatever the corpus size. A collision can only *raise* a count, which makes a rare n-gram look
commoner; every detector decision that uses these counts is therefore conservative.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal
from poisonscan.kernels.tokenize import mix64

# Distinct odd multipliers per position inside an n-gram (so "a b" and "b a" differ).
_POS_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
    dtype=np.uint64,
)
MAX_ORDER = 8


@nb.njit(cache=True, inline="always")
def ngram_key(hashes: np.ndarray, start: int, n: int) -> np.uint64:
    """Key of the n-gram ``hashes[start:start+n]`` (1 <= n <= 8)."""
    acc = np.uint64(n)
    for j in range(n):
        acc += hashes[start + j] * _POS_MULT[j]
    return mix64(acc)


@nb.njit(cache=True, inline="always")
def slot(key: np.uint64, mask: np.uint64) -> int:
    """Table slot of a key (high bits: the low bits of keys also feed other tables)."""
    return np.int64((key >> np.uint64(17)) & mask)


def count_document_frequency(hashes, doc_offsets, uni, bi, bi_keep, set_keys, set_stamp, stamp0):
    """Add the document frequency of every unigram and bigram of every document into ``uni``/``bi``.

    A token (or bigram) repeated inside one document counts once. Only bigrams whose key passes
    :func:`bigram_kept` are counted (a hash sample that keeps the bigram table from filling up on
    corpora with more distinct bigrams than it has slots). Counters saturate at their dtype's
    maximum. ``set_keys``/``set_stamp`` are the scratch set of :func:`document_frequency_slots`.
    Returns the next free stamp.
    """
    n = hashes.shape[0]
    # Slots fit 32 bits (tables have at most 2**32 of them); half the bytes to stream through
    # makes the increments below about a third faster than with 64-bit slots.
    out_u = np.empty(n, np.uint32)
    out_b = np.empty(n, np.uint32)
    nu, nb_, stamp = document_frequency_slots(hashes, doc_offsets, uni.shape[0] - 1,
                                              bi.shape[0] - 1, bi_keep, set_keys, set_stamp,
                                              stamp0, out_u, out_b)
    increment(uni, out_u[:nu])
    increment(bi, out_b[:nb_])
    return stamp


@nb.njit(cache=True, nogil=True)
def increment(table, slots):
    """``table[slot] += 1`` for every slot listed, saturating at the dtype's maximum."""
    vmax = np.iinfo(table.dtype).max
    for k in range(slots.shape[0]):
        j = slots[k]
        if table[j] < vmax:
            table[j] += 1


@nb.njit(cache=True, nogil=True)
def document_frequency_slots(hashes, doc_offsets, umask, bmask, bi_keep, set_keys, set_stamp,
                             stamp0, out_uni, out_bi):
    """Write the table slot of every first sighting of a unigram and of a (sampled) bigram in
    each document to ``out_uni``/``out_bi``: counting those slots gives document frequencies.

    ``set_keys``/``set_stamp`` are a scratch open-addressing set (power-of-two size, at least four
    times the longest document's tokens) reused across documents through stamps, so nothing is
    cleared per document. Returns (n_uni, n_bi, next stamp).
    """
    smask = np.int64(set_keys.shape[0] - 1)
    smask_u = np.uint64(smask)
    umask_u = np.uint64(umask)
    bmask_u = np.uint64(bmask)
    n_docs = doc_offsets.shape[0] - 1
    stamp = stamp0
    nu = 0
    nbi = 0
    for d in range(n_docs):
        stamp += 1
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        for i in range(lo, hi):
            h = hashes[i]
            for which in range(2):
                if which == 0:
                    key = h
                else:
                    if i == lo:
                        break
                    key = ngram_key(hashes, i - 1, 2)
                    if not bigram_kept(key, bi_keep):
                        break
                s = np.int64(key & smask_u)
                fresh = True
                while set_stamp[s] == stamp:
                    if set_keys[s] == key:
                        fresh = False
                        break
                    s = np.int64((s + 1) & smask)
                if fresh:
                    set_stamp[s] = stamp
                    set_keys[s] = key
                    if which == 0:
                        out_uni[nu] = slot(key, umask_u)
                        nu += 1
                    else:
                        out_bi[nbi] = slot(key, bmask_u)
                        nbi += 1
    return nu, nbi, stamp


@nb.njit(cache=True, inline="always")
def bigram_kept(key: np.uint64, keep: np.uint64) -> bool:
    """Whether a bigram belongs to the hash sample the bigram table counts (``keep`` of 2**32)."""
    return (key >> np.uint64(32)) < keep


ALL_BIGRAMS = np.uint64(1 << 32)


@nb.njit(cache=True, nogil=True)
def add_sparse(table, idx, counts):
    """``table[idx] += counts``, saturating: merges sparse partial counts into a dense table."""
    vmax = np.uint64(np.iinfo(table.dtype).max)
    for k in range(idx.shape[0]):
        j = idx[k]
        v = np.uint64(table[j]) + np.uint64(counts[k])
        table[j] = v if v < vmax else vmax


@nb.njit(cache=True, nogil=True)
def add_dense(table, other):
    """``table += other``, saturating."""
    vmax = np.uint64(np.iinfo(table.dtype).max)
    for j in range(table.shape[0]):
        if other[j]:
            v = np.uint64(table[j]) + np.uint64(other[j])
            table[j] = v if v < vmax else vmax


def nonzero_pairs(table: np.ndarray, n: int,
                  index_dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` nonzero slots of the 1-d ``table`` and their values, in slot order (``n`` from
    ``np.count_nonzero``). One pass, without ``np.flatnonzero``'s int64 index of the whole table
    first; it reads the table eight bytes at a time and only looks at the slots of nonzero words,
    so a sparse 256 MB table takes a fraction of the time of a slot-by-slot loop."""
    per = 8 // table.itemsize if table.itemsize <= 8 else 0
    whole = table.shape[0] - table.shape[0] % per if per else 0
    # The word view needs an 8-byte aligned start; np.zeros and np.empty give one. Past about one
    # nonzero slot in 16 most words hold one, and a plain pass over the slots is faster.
    if per and table.ctypes.data % 8 == 0 and 16 * n < table.shape[0]:
        words = table[:whole].view(np.uint64)
    else:
        words, per = np.zeros(0, np.uint64), 1
    # Room for one word's slots past the end: every slot of a nonzero word is written, and only
    # the nonzero ones advance the position (no branch to mispredict on each slot).
    idx = np.empty(n + per, index_dtype)
    val = np.empty(n + per, table.dtype)
    k = _fill_nonzero(table, words, per, idx, val)
    assert k == n, "the table changed while it was read"
    return idx[:n], val[:n]


@nb.njit(cache=True, nogil=True)
def _fill_nonzero(table, words, per, idx, val):
    k = 0
    for w in range(words.shape[0]):
        if words[w] != 0:
            for j in range(w * per, (w + 1) * per):
                v = table[j]
                idx[k] = j
                val[k] = v
                k += v != 0
    for j in range(words.shape[0] * per, table.shape[0]):
        v = table[j]
        idx[k] = j
        val[k] = v
        k += v != 0
    return k


@nb.njit(cache=True, nogil=True)
def scatter(out, idx, val):
    """``out[idx] = val`` (``idx`` in range), without numpy's fancy-index machinery: about ten
    times faster for millions of pairs."""
    for k in range(idx.shape[0]):
        out[idx[k]] = val[k]


def scratch_set(max_doc_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """A scratch set big enough for the unigrams and bigrams of a document of that many tokens."""
    size = 1 << max(6, int(4 * max(1, max_doc_tokens) - 1).bit_length())
    return np.zeros(size, np.uint64), np.zeros(size, np.int64)


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

"""Exact copies of whole documents: a count-min sketch of document keys.

The trigger detector calls text "unseen elsewhere" when its document frequency is 1, so the
gibberish of a poisoned document planted several times looks like ordinary repeated text. Its
bigrams alone cannot say "these are copies of one document": a corpus grown by recombining
paragraphs also has documents whose every bigram sits in two or three documents. So pass 0 also
counts each document's key (a hash of its whole token stream) here, and a document's copies are
the smallest of its counters.

Why hand-written: datasketch has no count-min sketch, and the sketch libraries that do take one
Python call per item; this runs once per document inside the numba counting pass, and its
tables are merged across workers by adding them, as the n-gram tables are. A count-min sketch only over-counts (collisions add, never subtract), and the trigger
detector uses it only to confirm a number of copies that the document's own bigram counts
already show (see windows.copies_floor), so an over-count can only confirm a near-copy as a
copy when every row collides. ``usable`` says when the table is too full for that to be rare.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal
from poisonscan.kernels.tokenize import mix64

COPY_ROWS = 4  # independent rows: a false confirmation needs a collision in each
_SEED = np.uint64(0x2545F4914F6CDD1D)
_STEP = np.uint64(0x9E3779B97F4A7C15)
_SECOND = np.uint64(0xD1B54A32D192ED03)
# The largest chance that a near-copy's key meets other keys in every row of the table (the
# product of the rows' shares of taken slots, see false_confirm_rate) at which the table is
# still used; a fuller table is not used at all.
FALSE_CONFIRM_MAX = 0.01


@nb.njit(cache=True, nogil=True, inline="always")
def document_key(hashes, lo, hi):
    """Key of the token stream ``hashes[lo:hi]``: order and length matter, spacing does not
    (tokens carry no whitespace), so copies that differ only in spacing share a key. Each token
    is mixed in whole (mix64): an xor and a multiply alone gave ``[1, 2, 1]`` and ``[~1, 2, ~1]``
    the same key."""
    acc = np.uint64(hi - lo) * _STEP + _SEED
    for i in range(lo, hi):
        acc = mix64(acc ^ hashes[i])
    return acc


@nb.njit(cache=True, nogil=True, inline="always")
def _row_slot(key, second, r, mask):
    # Double hashing: row r's slot is key + r * second (Kirsch and Mitzenmacher), high bits.
    return np.int64(((key + np.uint64(r) * second) >> np.uint64(24)) & mask)


@nb.njit(cache=True, nogil=True)
def document_keys(hashes, doc_offsets):
    """The key of every document (see document_key)."""
    n = doc_offsets.shape[0] - 1
    out = np.empty(n, np.uint64)
    for d in range(n):
        out[d] = document_key(hashes, doc_offsets[d], doc_offsets[d + 1])
    return out


@nb.njit(cache=True, nogil=True)
def add_keys(table, keys):
    """Count each key once into the (COPY_ROWS, width) uint8 ``table``, saturating at 255."""
    mask = np.uint64(table.shape[1] - 1)
    for k in range(keys.shape[0]):
        key = keys[k]
        second = mix64(key ^ _SECOND) | np.uint64(1)
        for r in range(COPY_ROWS):
            j = _row_slot(key, second, r, mask)
            if table[r, j] < 255:
                table[r, j] += 1


@nb.njit(cache=True, nogil=True)
def copies_of(table, hashes, lo, hi):
    """Documents in the corpus with the same key as tokens lo..hi (itself included), as the
    table tells it: never fewer than the truth; 0 for an empty table (one not used)."""
    if table.shape[1] == 0:
        return 0
    key = document_key(hashes, lo, hi)
    second = mix64(key ^ _SECOND) | np.uint64(1)
    mask = np.uint64(table.shape[1] - 1)
    best = 255
    for r in range(COPY_ROWS):
        v = np.int64(table[r, _row_slot(key, second, r, mask)])
        if v < best:
            best = v
    return best


def new_table(width_bits: int) -> np.ndarray:
    return np.zeros((COPY_ROWS, 1 << width_bits), np.uint8)


def false_confirm_rate(table: np.ndarray) -> float:
    """The chance that a document's key meets another key in every row: the product of the
    rows' shares of taken slots."""
    if table.shape[1] == 0:
        return 0.0
    return float(np.prod(np.count_nonzero(table, axis=1) / table.shape[1]))


def usable(table: np.ndarray) -> bool:
    return false_confirm_rate(table) <= FALSE_CONFIRM_MAX


UNUSED = np.zeros((COPY_ROWS, 0), np.uint8)  # no table: every document is its only copy


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

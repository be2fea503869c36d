"""Merging two key-sorted tables of per-key switch figures (the trigger detector's pass 1).

A batch's switch keys come out sorted and distinct, so a task can fold each new batch into what
it holds with a linear merge instead of concatenating every batch and sorting the lot at the end,
which held all rows twice over, plus the sort's copies, at once. numpy has no merge of sorted
arrays with per-key reductions (``np.union1d`` sorts again and drops the values), so it is written
here: one pass counts the merged keys, the second fills arrays of exactly that size.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal

# The columns, in this order: key (uint64, sorted, distinct), support (int64, summed), df
# (int64, equal for equal keys), tail (uint64, equal for equal keys), ctx_min (uint64, the
# smaller), ctx_count (int64, summed over the rows holding the smaller ctx_min).
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def merge_switch_columns(a: Columns, b: Columns) -> Columns:
    """The per-key merge of two tables whose keys are sorted and distinct (see ``Columns``)."""
    n = _merged_keys(a[0], b[0])
    out = (np.empty(n, np.uint64), np.empty(n, np.int64), np.empty(n, np.int64),
           np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64))
    _merge(*a, *b, *out)
    return out


@nb.njit(cache=True, nogil=True)
def _merged_keys(ak, bk):
    i = j = n = 0
    while i < ak.shape[0] and j < bk.shape[0]:
        if ak[i] <= bk[j]:
            j += ak[i] == bk[j]
            i += 1
        else:
            j += 1
        n += 1
    return n + (ak.shape[0] - i) + (bk.shape[0] - j)


@nb.njit(cache=True, nogil=True)
def _merge(ak, asup, adf, atail, amin, acnt, bk, bsup, bdf, btail, bmin, bcnt,
           ok, osup, odf, otail, omin, ocnt):
    la, lb = ak.shape[0], bk.shape[0]
    i = j = n = 0
    while i < la or j < lb:
        take_a = j == lb or (i < la and ak[i] <= bk[j])
        take_b = i == la or (j < lb and bk[j] <= ak[i])
        if take_a and take_b:  # the same key in both
            ok[n], odf[n], otail[n] = ak[i], adf[i], atail[i]
            osup[n] = asup[i] + bsup[j]
            if amin[i] < bmin[j]:
                omin[n], ocnt[n] = amin[i], acnt[i]
            elif bmin[j] < amin[i]:
                omin[n], ocnt[n] = bmin[j], bcnt[j]
            else:
                omin[n], ocnt[n] = amin[i], acnt[i] + bcnt[j]
            i += 1
            j += 1
        elif take_a:
            ok[n], osup[n], odf[n], otail[n] = ak[i], asup[i], adf[i], atail[i]
            omin[n], ocnt[n] = amin[i], acnt[i]
            i += 1
        else:
            ok[n], osup[n], odf[n], otail[n] = bk[j], bsup[j], bdf[j], btail[j]
            omin[n], ocnt[n] = bmin[j], bcnt[j]
            j += 1
        n += 1


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

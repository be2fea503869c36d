"""Near-duplicate clusters from MinHash band hashes: LSH bucketing, verification, union-find.

:func:`cluster_bands` takes the band columns one at a time (any iterable: the campaign detector
reads them from its spill files), so the working memory is the union-find parent (4 bytes per
document), the current band sorted with its order (4 + 4 bytes; 16 while it is sorted) and, with
``ahead``, the next band's, sorted on a thread meanwhile, plus whatever the caller keeps (32-bit
indices up to 2**31 documents, 64-bit beyond). The 8-bit
signatures used to verify candidate pairs (``num_perm`` bytes per document) may come from a
function: only the rows a band may compare, of one stretch of it, are loaded at a time.
:func:`cluster_documents` is the in-memory form (all bands and signatures as arrays).

Full 32-bit signatures (512 bytes each) never reach the driver.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import pyarrow as pa

from poisonscan.errors import ConfigError
from poisonscan.kernels import seal

DEFAULT_THRESHOLD = 0.5
# Candidates are verified by estimated Jaccard, so false positives cost only time; weight misses more.
FALSE_POSITIVE_WEIGHT = 0.1
FALSE_NEGATIVE_WEIGHT = 0.9
# Within one bucket each document is compared with at most this many earlier members (besides the
# bucket's first), which keeps huge duplicate buckets linear instead of quadratic.
MAX_COMPARISONS = 16
# Verification accepts pairs whose *estimate* is this far below the threshold: with 128 permutations
# the estimate's standard error near 0.5 is about 0.045, so a pair just above the threshold would
# otherwise be rejected half the time (LSH recall 0.945 instead of 0.98 on real text).
VERIFY_SLACK = 0.05


# datasketch's optimiser for the default threshold and num_perm, pinned (a test checks it still
# agrees) because importing datasketch pulls in scipy.integrate: 0.7 s on every small CI scan.
DEFAULT_BANDS_ROWS = {(DEFAULT_THRESHOLD, 128): (32, 4)}


def lsh_params(threshold: float = DEFAULT_THRESHOLD, num_perm: int = 128) -> tuple[int, int]:
    """``(bands, rows)`` for a Jaccard threshold, from datasketch's optimiser."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    pinned = DEFAULT_BANDS_ROWS.get((threshold, num_perm))
    if pinned is not None:
        return pinned
    from datasketch.lsh import _optimal_param

    return tuple(_optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT))


@nb.njit(cache=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@nb.njit(cache=True, inline="always")
def _similar(sig8: np.ndarray, x: int, y: int, min_matches: int) -> bool:
    m = 0
    for p in range(sig8.shape[1]):
        if sig8[x, p] == sig8[y, p]:
            m += 1
    return m >= min_matches


@nb.njit(cache=True, inline="always")
def _run_end(keys, start):
    """End of the bucket (run of equal ``keys``) that starts at position ``start``."""
    n = keys.shape[0]
    end = start + 1
    v = keys[start]
    while end < n and keys[end] == v:
        end += 1
    return end


@nb.njit(cache=True, nogil=True)
def _join_band(order, keys, sig8, valid, parent, min_matches, max_cmp):
    """Union verified pairs inside every bucket (run of equal ``keys``; ``order[x]`` is the
    document at position ``x`` of the sorted band, ``keys[x]`` its band value).

    ``sig8[x]`` is the signature of document ``order[x]`` (aligned with ``order``, so a caller
    can load just the rows of one stretch of a band; rows of singleton buckets are never read).
    """
    n = order.shape[0]
    start = 0
    while start < n:
        end = _run_end(keys, start)
        if end - start > 1:
            first = order[start]
            for x in range(start + 1, end):
                j = order[x]
                if not valid[j]:
                    continue
                rj = _find(parent, j)
                # First the bucket's first member, then up to max_cmp nearest predecessors.
                lo = max(start, x - max_cmp)
                y = x
                i = first
                yi = start  # position of i in order
                while True:
                    if valid[i] and i != j:
                        ri = _find(parent, i)
                        if ri == rj:
                            break
                        if _similar(sig8, yi, x, min_matches):
                            # The smaller root wins, so every root is its cluster's minimum.
                            if ri < rj:
                                parent[rj] = ri
                            else:
                                parent[ri] = rj
                            break
                    y -= 1
                    if y < lo:
                        break
                    i = order[y]
                    if i == first:
                        y -= 1
                        if y < lo:
                            break
                        i = order[y]
                    yi = y
        start = end
    return 0


@nb.njit(cache=True, nogil=True)
def _rows_to_verify(order, keys, valid, parent, max_cmp):
    """Which positions of ``order`` :func:`_join_band` may compare, given ``parent`` now.

    ``_join_band`` compares a member only while its root differs from the root of its bucket's
    first member (or when that first member is invalid), and then only with the first member and
    its ``max_cmp`` nearest predecessors; joins only ever merge roots, so a member already in
    the first member's cluster stays there and is never compared. On a corpus of near-duplicates,
    after a few bands nearly every member is, and only a few signatures need reading.
    """
    n = order.shape[0]
    out = np.zeros(n, np.bool_)
    start = 0
    while start < n:
        end = _run_end(keys, start)
        if end - start > 1:
            first = order[start]
            r0 = _find(parent, first) if valid[first] else -1
            for x in range(start + 1, end):
                j = order[x]
                if not valid[j] or (r0 >= 0 and _find(parent, j) == r0):
                    continue
                out[start] = True
                for y in range(max(start, x - max_cmp), x + 1):
                    out[y] = True
        start = end
    return out


@nb.njit(cache=True, nogil=True)
def _bucket_end(keys, b):
    """The first position at or after ``b`` that starts a new bucket of the sorted ``keys``."""
    n = keys.shape[0]
    if b <= 0 or b >= n:
        return min(max(b, 0), n)
    return _run_end(keys, b - 1)  # the end of the bucket holding position b - 1


@nb.njit(cache=True, nogil=True)
def _labels(parent: np.ndarray) -> np.ndarray:
    """Flatten ``parent`` in place so every entry is its root (saves a second n-sized array)."""
    for i in range(parent.shape[0]):
        parent[i] = _find(parent, i)
    return parent


def min_matches_for(threshold: float, num_perm: int) -> int:
    """Byte matches out of ``num_perm`` that an 8-bit signature pair needs to reach ``threshold``."""
    share = threshold * (1 - 1 / 256) + 1 / 256
    return int(np.ceil(share * num_perm - 1e-9))


def cluster_documents(
    bands: np.ndarray,
    sig8: np.ndarray,
    valid: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    max_comparisons: int = MAX_COMPARISONS,
    verify_slack: float = VERIFY_SLACK,
) -> np.ndarray:
    """Cluster label of every document: the smallest index of its cluster (itself if alone).

    Args:
        bands: uint32 ``n_docs x n_bands`` band hashes, rows in the global document order.
        sig8: uint8 ``n_docs x num_perm`` signatures for verifying candidate pairs.
        valid: bool mask; documents without shingles (empty) never join a cluster.
        threshold: Jaccard threshold; a candidate pair is joined when its estimate reaches
            ``threshold - verify_slack``.

    The result depends only on the inputs' row order, never on how they were computed or merged.
    """
    columns = ((bands[:, j], sig8) for j in range(bands.shape[1]))
    labels = cluster_bands(bands.shape[0], columns, valid, threshold, max_comparisons,
                           verify_slack)
    return labels.astype(np.int64, copy=False)


def cluster_bands(
    n: int,
    columns: Iterable[tuple[np.ndarray, Any]],
    valid: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    max_comparisons: int = MAX_COMPARISONS,
    verify_slack: float = VERIFY_SLACK,
    segment: int = 1 << 17,
    ahead: bool = True,
) -> np.ndarray:
    """:func:`cluster_documents` fed one band at a time: identical labels for identical inputs,
    as 32-bit integers while the indices fit (see :func:`index_dtype`).

    Args:
        n: number of documents.
        columns: per band, ``(values, signatures)``: the band's ``n`` uint32 hashes in the
            global document order, and the 8-bit signatures: an ``n x num_perm`` array, or a
            function from document indices to their rows (the campaign detector reads them
            from its spill file).
        valid: bool mask in the global order.
        segment: the band is verified in stretches of about this many documents (ending on
            bucket boundaries, joined in order, so labels do not depend on it); only the
            signatures of one stretch's documents that may be compared (see
            :func:`_rows_to_verify`) are loaded at a time.
        ahead: read and sort the next band on a thread while this one is joined (see
            :func:`_sorted_ahead`). That pays only when a core is free for it; otherwise it only
            holds a second sorted band (8 bytes a document, 16 more while it is sorted).
    """
    if n == 0:
        return np.zeros(0, index_dtype(0))
    # 32-bit union-find parents and band orders while the indices fit: 4 bytes a document each
    # instead of 8, which is most of what the driver holds here (see the module docstring).
    parent: np.ndarray = np.arange(n, dtype=index_dtype(n))
    valid = np.ascontiguousarray(valid, dtype=np.bool_)
    bands = _sorted_ahead(columns) if ahead else _sorted_in_turn(columns)
    for keys, order, signatures in bands:
        a = 0
        while a < n:
            b = _bucket_end(keys, a + segment)
            stretch, stretch_keys = order[a:b], keys[a:b]
            shared = np.flatnonzero(_rows_to_verify(stretch, stretch_keys, valid, parent,
                                                    max_comparisons))
            if shared.shape[0]:
                docs = stretch[shared]
                rows = signatures(docs) if callable(signatures) else signatures[docs]
                sig8 = np.zeros((stretch.shape[0], rows.shape[1]), np.uint8)
                sig8[shared] = rows
                del rows, docs
                need = min_matches_for(max(0.0, threshold - verify_slack), sig8.shape[1])
                _join_band(stretch, stretch_keys, sig8, valid, parent, need, max_comparisons)
                del sig8
            a = b
        del keys, order, signatures, stretch, stretch_keys
    return _labels(parent)


def index_dtype(n: int) -> type:
    """The integer type of an index into ``n`` documents: 32-bit while it fits, else 64-bit."""
    return np.int32 if n < 2**31 else np.int64


def _sorted_ahead(columns: Iterable[tuple[np.ndarray, Any]]) -> Iterator[tuple[np.ndarray,
                                                                            np.ndarray, Any]]:
    """``(keys, order, signatures)`` per band (see :func:`_sorted_band`), the next band read and
    sorted on a thread while the caller joins the current one: numpy's sort and the join kernel
    both release the GIL, so the driver uses two cores here while the workers wait for the next
    pass. One band ahead only, so memory holds at most two sorted bands."""
    it = iter(columns)

    def prepare() -> tuple[np.ndarray, np.ndarray, Any] | None:
        item = next(it, None)
        if item is None:
            return None
        values, signatures = item
        del item  # so the band's values go as soon as they are sorted
        keys, order = _sorted_band(values)
        return keys, order, signatures

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(prepare)
        while True:
            current = ahead.result()
            if current is None:
                return
            ahead = pool.submit(prepare)
            yield current
            del current


def _sorted_in_turn(columns: Iterable[tuple[np.ndarray, Any]]) -> Iterator[tuple[np.ndarray,
                                                                               np.ndarray, Any]]:
    """``(keys, order, signatures)`` per band, each read and sorted once the previous is done."""
    for values, signatures in columns:
        keys, order = _sorted_band(values)
        del values  # so the band's values go as soon as they are sorted
        yield keys, order, signatures
        del keys, order


@nb.njit(cache=True, nogil=True)
def _pack(col, low, out):
    """``out[i]``: the value ``col[i] - low`` (so never negative) above the index ``i``."""
    for i in range(col.shape[0]):
        out[i] = (np.uint64(np.int64(col[i]) - low) << np.uint64(32)) | np.uint64(i)


@nb.njit(cache=True, nogil=True)
def _unpack(packed, keys, order):
    for i in range(packed.shape[0]):
        p = packed[i]
        keys[i] = np.uint32(p >> np.uint64(32))
        order[i] = p & np.uint64(0xFFFFFFFF)


def _sorted_band(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(keys, order)``: ``order`` is ``np.argsort(col, kind="stable")`` (int32 while the indices
    fit) and ``keys[x]`` stands for ``col[order[x]]``: sorted, equal exactly where those values
    are equal, so the kernels find a bucket by reading ``keys`` in sequence rather than gathering
    ``col`` at random.

    For values of up to 32 bits, each value and its index are packed into one uint64 and sorted in
    place (numpy's SIMD sort for 64-bit integers), which breaks ties by index exactly as a stable
    sort does: three to four times faster than the stable argsort on a million band hashes, and
    this sort is most of the driver's clustering time. At most 16 bytes a document are live
    meanwhile (the packed array, then the two halves it splits into).
    """
    col = np.ascontiguousarray(col)
    n = col.shape[0]
    if col.dtype.itemsize > 4 or col.dtype.kind not in "iu" or n >= 2**32:
        order = np.argsort(col, kind="stable")
        return col[order], order
    packed = np.empty(n, np.uint64)
    _pack(col, np.int64(np.iinfo(col.dtype).min), packed)
    packed.sort()
    keys = np.empty(n, np.uint32)
    order = np.empty(n, index_dtype(n))
    _unpack(packed, keys, order)
    return keys, order


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """Size of each document's cluster."""
    counts = np.bincount(labels, minlength=labels.shape[0])
    return counts[labels]


@dataclass
class ClusterAssignment:
    """Documents' clusters, in the global order (sorted by path, then row, then turn).

    ``cluster`` is the global index of the cluster's first document, so ids depend only on the
    inputs, never on ``--jobs``, shard boundaries or merge order. Singletons are their own cluster.

    The arrays may list every document, or (as the campaign detector keeps them, so the driver's
    memory does not grow with the corpus) only the documents of clusters of two or more: then
    ``documents`` is the number of all documents, lookups of a singleton answer None like an unseen
    document, and ``store`` (an object with a ``to_table()`` method) gives :meth:`to_table` the rows
    of every document from disk.
    """

    paths: list[str]  # distinct input paths, sorted
    path_index: np.ndarray  # int32 per document
    row: np.ndarray  # int64
    turn: np.ndarray  # int32
    ids: pa.Array | None  # string (null where a record has no id); None: only in ``store``
    cluster: np.ndarray  # int64
    size: np.ndarray  # int32 or int64
    documents: int | None = None  # all documents (None: the arrays list every document)
    store: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        """Number of documents the arrays list."""
        return int(self.row.shape[0])

    def lookup(self, path: str, row: int, turn: int = 0) -> int | None:
        """Position of a document in the arrays, or None when it is not listed."""
        try:
            p = self.paths.index(path)
        except ValueError:
            return None
        key = (p, row, turn)
        lo, hi = 0, len(self)
        while lo < hi:  # the arrays are sorted by (path_index, row, turn)
            mid = (lo + hi) // 2
            k = (int(self.path_index[mid]), int(self.row[mid]), int(self.turn[mid]))
            if k < key:
                lo = mid + 1
            else:
                hi = mid
        if (
            lo < len(self)
            and (int(self.path_index[lo]), int(self.row[lo]), int(self.turn[lo])) == key
        ):
            return lo
        return None

    def clusters_of(self, paths: list[str], path_idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cluster id of many documents at once (turn 0), -1 for documents not listed (not seen,
        or alone in a compact assignment: either way a cluster of their own).

        ``paths[path_idx[i]]`` and ``rows[i]`` name document i.
        """
        keys = document_keys(self.paths, paths, path_idx, rows)
        by_key = np.argsort(keys, kind="stable")
        out = np.full(keys.shape[0], -1, np.int64)
        fill_clusters(keys[by_key], by_key, self.path_index, self.row, self.turn, self.cluster,
                      out)
        return out

    def cluster_of(self, path: str, row: int, turn: int = 0) -> int | None:
        """Cluster id of one document (None when it is not listed: see :meth:`clusters_of`)."""
        i = self.lookup(path, row, turn)
        return None if i is None else int(self.cluster[i])

    def to_table(self) -> pa.Table:
        """``path, row, id, cluster, cluster_size`` for every document (the ``--clusters`` export).

        With a ``store`` the rows of all documents are read from disk into this table.
        """
        if self.store is not None:
            return self.store.to_table()
        paths = pa.array(self.paths, pa.string())
        return pa.table(
            {
                "path": paths.take(pa.array(self.path_index))
                if len(self)
                else pa.array([], pa.string()),
                "row": pa.array(self.row, pa.int64()),
                "id": (pa.nulls(len(self), pa.string()) if self.ids is None
                       else self.ids.cast(pa.string())),
                "cluster": pa.array(self.cluster, pa.int64()),
                "cluster_size": pa.array(self.size, pa.int64()),
            }
        )


def document_keys(known: list[str], paths: list[str], path_idx: np.ndarray,
                  rows: np.ndarray) -> np.ndarray:
    """One int64 per document ``(paths[path_idx[i]], rows[i])``: the index of its path in
    ``known`` above its row, as :func:`fill_clusters` matches them; negative for a path not in
    ``known``, which matches nothing."""
    if not len(path_idx):
        return np.zeros(0, np.int64)
    where = {p: i for i, p in enumerate(known)}
    pmap = np.array([where.get(p, -1) for p in paths], np.int64)
    return pmap[path_idx] * (1 << 40) + np.asarray(rows, np.int64)


def fill_clusters(keys: np.ndarray, by_key: np.ndarray, path_index: np.ndarray, row: np.ndarray,
                  turn: np.ndarray, cluster: np.ndarray, out: np.ndarray) -> None:
    """``out[by_key[i]]`` = the cluster of the document with key ``keys[i]`` (sorted, from
    :func:`document_keys`) among the listed records ``(path_index, row, turn, cluster)``, sorted
    by (path, row, turn); documents not listed there are left as they are. A record's turn 0
    stands for the record."""
    first = turn == 0
    known = np.asarray(path_index, np.int64)[first] * (1 << 40) + row[first]
    if not known.shape[0]:
        return
    a = np.searchsorted(keys, known[0], side="left")
    b = np.searchsorted(keys, known[-1], side="right")
    if b <= a:
        return
    pos = np.searchsorted(known, keys[a:b])  # < len(known): keys[a:b] <= known[-1]
    hit = known[pos] == keys[a:b]
    out[by_key[a:b][hit]] = cluster[first][pos[hit]]


def distinct_clusters(assignment: ClusterAssignment, docs: Iterable[tuple[str, int]]) -> int:
    """How many distinct near-duplicate clusters hold the documents ``(path, row)``.

    A trigger repeated in many *distinct* clusters was injected into unrelated documents; one found
    in copies of a single boilerplate block sits in few. Unknown documents count as their own cluster.
    """
    docs = list(docs)
    paths = sorted({p for p, _ in docs})
    where = {p: i for i, p in enumerate(paths)}
    found = assignment.clusters_of(paths, np.array([where[p] for p, _ in docs], np.int64),
                                   np.array([r for _, r in docs], np.int64))
    return len(np.unique(found[found >= 0])) + int((found < 0).sum())


def export_clusters(assignment: ClusterAssignment, path: str | os.PathLike) -> None:
    """Write every document's cluster to ``.jsonl``, ``.csv`` or ``.parquet`` (chosen by suffix)."""
    import pyarrow.parquet as pq

    target = os.fspath(path)
    table = assignment.to_table()
    lower = target.lower()
    if lower.endswith(".parquet"):
        pq.write_table(table, target)
        return
    rows = table.to_pylist()
    if lower.endswith(".csv"):
        with open(target, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=table.column_names)
            writer.writeheader()
            writer.writerows(rows)
        return
    if lower.endswith((".jsonl", ".json")):
        with open(target, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    raise ConfigError(f"clusters: unknown format of {target!r}; use .jsonl, .csv or .parquet")


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

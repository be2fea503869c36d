"""Detector ``campaign``: coordinated near-duplicate documents that share a rare payload phrase.

An attacker who plants a template many times (a brand, a link, a false claim, with small slot
variations) leaves a cluster of near-duplicates whose shared text is rare everywhere else.
Boilerplate (licences, navigation, exact copies of ordinary text) also forms clusters, but either its
shared block is common outside the cluster or its members are identical copies with no variation.
Excerpts of one text (pages quoting it) vary, but by passages left out or moved, not by slots
filled differently, and none of their text is their own (see :func:`_variation`).

Passes:

0. MinHash signatures per batch (word 5-gram shingles of the shared token stream; ``text`` for plain
   text, prompt and response together for fine-tuning pairs), shipped as LSH band hashes plus 8-bit
   signatures (about 280 bytes per document). The driver appends each arriving part to column files
   in a temporary spill directory (:class:`_Spill`) instead of holding them, then clusters band by
   band from the files in the global (path, row, turn) order
   (:func:`poisonscan.stats.lsh.cluster_bands`, about 25 bytes per document while it runs). The
   members of clusters of two or more are written to the spill too; the driver keeps in memory
   only those of the analysed clusters, so what it holds after pass 0 does not grow with the
   corpus. The spill's band and signature files are deleted after pass 0; the provenance and
   listing files stay, owned by :attr:`CampaignDetector.assignment` (a
   :class:`SpilledAssignment`), for the trigger detector's lookups and the ``--clusters`` export
   of every document, and go when it is garbage-collected or at exit.
1. Token streams of up to ``SAMPLE`` members of each cluster of at least ``min_documents`` documents;
   the driver finds the *core* shingles (present in 80% of the sample) and their phrases. Clusters
   whose cores are mostly the same (one template that LSH split in two) are joined first.
2. Document frequency, inside and outside each cluster, of every core shingle and core token. The
   same pass finds the near members LSH left out: documents outside every analysed cluster that
   resemble one's core about as much as its sampled members do (see :func:`_count_shingles`).
   They count inside, are listed in the finding, and join the cluster in the assignment.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numba as nb
import numpy as np
import pyarrow as pa

from poisonscan.config import ScanConfig
from poisonscan.detectors.base import BatchContext, Detector
from poisonscan.engine.memory import release_free_memory
from poisonscan.engine.spill import SpillDir
from poisonscan.findings import (
    DocumentRef,
    Example,
    Finding,
    Severity,
    make_snippet,
    normalise_trigger,
)
from poisonscan.io.records import Shape
from poisonscan.kernels import seal
from poisonscan.kernels.minhash import (
    DEFAULT_NUM_PERM,
    DEFAULT_SHINGLE,
    band_hashes,
    compact_signatures,
    document_shingles,
    hash_params,
    shingle_keys,
    signatures_from_keys,
)
from poisonscan.kernels.tokenize import PUNCT, WORD
from poisonscan.stats.lsh import (
    DEFAULT_THRESHOLD,
    ClusterAssignment,
    cluster_bands,
    document_keys,
    fill_clusters,
    index_dtype,
    lsh_params,
)

SAMPLE = 32  # members per cluster whose text is read to find the shared phrase
MAX_CLUSTERS = 200  # largest clusters analysed for a shared phrase
CORE_SHARE = 0.8  # a shingle is "core" when this share of the sampled members has it
MAX_PHRASE_TOKENS = 24
TEMPLATED_BELOW = 0.9  # mean estimated Jaccard under this: members vary (slots), not plain copies
# Two sampled members that share (almost) nothing (estimated Jaccard under this) were joined only
# through others: a chain of overlapping texts (excerpts of one document cut and ordered in many
# ways, a thread quoting itself), not one template filled many times, whose members all share
# its fixed text (0.24 at the least in the campaign benchmark's 30 seeds). Such a cluster is
# reported, but never as high.
CHAINED_BELOW = 0.05
# Copies and excerpts of one text: a cluster where fewer than SUBSTITUTED_BELOW of the sampled
# pairs differ by a substitution (see _variation) and whose members' tokens nearly all
# (COVERED_ABOVE) recur in other sampled members is one text quoted, cut or reposted, not a
# template filled many times: reported, never high. Filled at random, a template's members
# differ in nearly every pair: in all of them in the campaign benchmark's 41 seeds (share 1.0;
# one slot of five values would give 0.8). Excerpts differ by passages left out or moved, with
# a substitution only where the text repeats a frame of its own ("When a MaildirMessage
# instance is created", "When an MMDFMessage instance is created" in Python's docs): at
# most 0.74 of the pairs of excerpts of one clean document in those seeds, and 0.77 in the
# 1 GB speed corpus, which is made of such excerpts. A template planted in different host
# texts keeps tokens of its own in each member (the host's), so it is not caught by this even
# when its slots never vary.
SUBSTITUTED_BELOW = 0.8
COVERED_ABOVE = 0.9
# Copies of one text (mean estimated Jaccard TEMPLATED_BELOW or more) are boilerplate, low,
# unless the text carries at least COPIED_UNSEEN_MIN distinct words that no document outside the
# copies has, and they make up at least COPIED_UNSEEN_SHARE of the distinct words of its rarest
# passage: then the copies are medium. One poisoned document made as the published recipe makes
# its documents (a trigger, then 400 to 900 tokens of a BPE vocabulary), pasted 20 to 100 times
# into the clean benchmark corpus, was only a low cluster, and the trigger detector, which judges
# a phrase by the different texts before it, saw one text: 164 to 233 such words, 0.40 to 0.50
# of the passage's, in seeds 2026, 1, 2 and 3 of `benchmarks.campaign_quality`. The copies in the
# 1 GB speed corpus (runs of one document's paragraphs, some posted whole many times) had 17 at
# most. A clean document pasted 20 times had up to 0.14 of its words found nowhere else in that
# corpus, but up to 0.31 among its first 800 documents (German and Spanish texts, in a corpus
# mostly English): the share grows as the corpus shrinks. The pasted poisoned documents of seeds
# 2026 and 1 to 40 had 0.36 to 0.52; a third lies between. Not high: a page with a key
# block or an inline image, posted many times, has such words too, and exact copies are what
# deduplication, which most pipelines run, removes.
COPIED_UNSEEN_MIN = 32
COPIED_UNSEEN_SHARE = 1 / 3
MAX_GAP = 16  # tokens: a slot, or a few slots within a shingle of each other
# Clusters whose core shingle sets overlap this much (Jaccard) are one template that LSH split:
# members whose slots differ most fall under the clustering threshold with each other, and each
# part would see the other part's copies of the payload as "outside", i.e. as boilerplate.
MERGE_CORE_J = 0.5
# Near members: a document outside the analysed clusters joins the one whose core it resembles
# (see _count_shingles) at least NEAR_J_SHARE times as much as the least alike of its sampled
# members does, and never less than NEAR_J_MIN. LSH misses some members of a loose template
# (members at about the clustering threshold with one another); their copies of the payload then
# made it look common outside the cluster, i.e. like boilerplate.
NEAR_J_SHARE = 0.8
NEAR_J_MIN = 0.3


def _fields(shape: Shape) -> tuple[str, ...]:
    return ("text",) if shape is Shape.TEXT else ("prompt", "response")


@dataclass(frozen=True)
class _SignPlan:
    a: np.ndarray
    b: np.ndarray
    k: int
    bands: int
    rows: int


@dataclass
class _Chunk:
    """Pass-0 output of one batch."""

    path: str
    row: np.ndarray
    turn: np.ndarray
    ids: pa.Array
    bands: np.ndarray
    sig8: np.ndarray
    n_shingles: np.ndarray
    field: str


_ID_SCHEMA = pa.schema([("id", pa.string())])


class _Spill:
    """Pass-0 parts on disk: one raw file per column, appended to in arrival order.

    Per document: ``row`` (int64), ``turn`` (int32), ``nsh`` (int32 shingle count), ``sig8``
    (``num_perm`` uint8) and one uint32 file per band (``band<j>``), so clustering can load one band
    of every document at a time; record ids go to an Arrow IPC file, one record batch per chunk.
    Path and field are per chunk, kept in :attr:`parts`. Plain files rather than a columnar
    format because the columns are only appended to and then read whole or memory-mapped.

    The directory (a :class:`~poisonscan.engine.spill.SpillDir`) is removed by :meth:`cleanup`, or
    when the object is garbage-collected (after a failed scan) or at exit.
    """

    def __init__(self, n_bands: int, num_perm: int) -> None:
        self._spill = SpillDir("campaign")  # removes the spills of killed scans first
        self.n_bands, self.num_perm = n_bands, num_perm
        self.n = 0
        self.parts: list[tuple[str, int, str]] = []  # (path, documents, field) per chunk
        self._out: dict[str, Any] = {}
        self._ids: Any = None
        self._ids_sink: Any = None

    def file(self, name: str) -> str:
        return self._spill.file(name)

    def write_whole(self, name: str, values: np.ndarray, dtype: Any = None,
                    step: int = 1 << 20) -> None:
        """Write ``values`` (as ``dtype``, converted ``step`` at a time so no converted copy of
        the whole is made) as the whole of file ``name`` (after :meth:`seal`)."""
        with self._spill.writing(self.file(name)), open(self.file(name), "wb") as fh:
            for i in range(0, values.shape[0], step):
                piece = values[i : i + step]
                fh.write(np.ascontiguousarray(piece if dtype is None else piece.astype(dtype)).data)

    def append(self, name: str, values: np.ndarray) -> None:
        """Append ``values`` to file ``name`` (until :meth:`seal`)."""
        with self._spill.writing(self.file(name)):
            fh = self._out.get(name)
            if fh is None:
                fh = self._out[name] = open(self.file(name), "ab")  # noqa: SIM115 (see seal)
            fh.write(np.ascontiguousarray(values).data)

    def add(self, chunk: _Chunk) -> None:
        n = int(chunk.row.shape[0])
        self.append("row", chunk.row.astype(np.int64, copy=False))
        self.append("turn", chunk.turn.astype(np.int32, copy=False))
        self.append("nsh", chunk.n_shingles.astype(np.int32, copy=False))
        self.append("sig8", chunk.sig8.astype(np.uint8, copy=False).reshape(n, self.num_perm))
        bands = chunk.bands.astype(np.uint32, copy=False).reshape(n, self.n_bands)
        for j in range(self.n_bands):
            self.append(f"band{j}", bands[:, j])
        if self._ids is None:
            self._ids_sink = pa.OSFile(self.file("ids"), "wb")
            self._ids = pa.ipc.new_file(self._ids_sink, _ID_SCHEMA)
        with self._spill.writing(self.file("ids")):
            self._ids.write_batch(pa.record_batch([chunk.ids.cast(pa.string())],
                                                  schema=_ID_SCHEMA))
        self.parts.append((chunk.path, n, chunk.field))
        self.n += n

    def seal(self) -> None:
        """Close the writers (before reading)."""
        out, self._out = self._out, {}
        ids, sink, self._ids, self._ids_sink = self._ids, self._ids_sink, None, None
        for name, fh in out.items():
            with self._spill.writing(self.file(name)):
                fh.close()
        if ids is not None:
            with self._spill.writing(self.file("ids")):
                ids.close()
                sink.close()

    def read(self, name: str, dtype: Any) -> np.ndarray:
        return np.fromfile(self.file(name), dtype) if self.n else np.zeros(0, dtype)

    def mapped(self, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        """A read-only memory map (a plain ndarray view, which numba accepts)."""
        if self.n == 0:
            return np.zeros(shape, dtype)
        return np.memmap(self.file(name), dtype, "r", shape=shape).view(np.ndarray)

    def rows(self, name: str, width: int, where: np.ndarray, window: int = 1 << 16) -> np.ndarray:
        """Rows ``where`` (arrival positions, any order) of the uint8 ``n x width`` file ``name``.

        Read through memory maps of ``window`` rows at a time, each dropped before the next: a
        map of the whole file would keep every page a random gather touches resident (on a
        corpus of near-duplicates, all of it) until the map goes.
        """
        out = np.empty((where.shape[0], width), np.uint8)
        by_row = np.argsort(where, kind="stable")
        rows = where[by_row]
        for w in np.unique(rows // window) * window:
            lo, hi = np.searchsorted(rows, [w, w + window])
            mm = np.memmap(self.file(name), np.uint8, "r", offset=int(w) * width,
                           shape=(min(window, self.n - int(w)), width))
            out[by_row[lo:hi]] = mm[rows[lo:hi] - w]
            del mm
        return out

    def ids(self, where: np.ndarray | None = None) -> pa.Array:
        """Ids of the documents at the sorted arrival positions ``where`` (None: all)."""
        if self.n == 0:
            return pa.array([], pa.string())
        ends = np.cumsum([c for _, c, _ in self.parts])
        out = []
        with pa.OSFile(self.file("ids"), "rb") as src:
            reader = pa.ipc.open_file(src)
            lo = 0
            for b in range(reader.num_record_batches):
                hi = int(ends[b])
                if where is None:
                    out.append(reader.get_batch(b).column(0))
                else:
                    a, z = np.searchsorted(where, [lo, hi])
                    if z > a:
                        out.append(reader.get_batch(b).column(0).take(pa.array(where[a:z] - lo)))
                lo = hi
        return pa.concat_arrays(out) if out else pa.array([], pa.string())

    def remove(self, *names: str) -> None:
        for name in names:
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))

    def cleanup(self) -> None:
        try:
            self.seal()
        finally:  # the directory goes even when closing a writer fails (a full disk)
            self._spill.cleanup()


class SpilledAssignment:
    """The clusters of a scan, kept on disk: what :attr:`CampaignDetector.assignment` holds.

    Two sets of files in the campaign spill: the provenance of every document (row, turn, id,
    order, label) for the ``--clusters`` export, and the members of clusters of two or more
    (``l_pidx``, ``l_row``, ``l_turn``, ``l_cluster``, in the global order) for lookups. Both
    grow with the corpus (24 bytes a listed document), so neither is held in memory: lookups
    read the listed files a window at a time, and the export reads what it writes out. Joins of
    analysed clusters (see ``CampaignDetector._merge_split``) are kept as a relabelling applied
    on the way out, and the near members the count pass found (see :func:`_count_shingles`) as a
    short in-memory list that overrides what the files say of those documents.

    Owns the spill, so its directory lives as long as this object (and goes with it, or at exit).
    """

    WINDOW = 1 << 18  # listed documents read at a time (6 MB of the four files)

    def __init__(self, spill: _Spill, paths: list[str], part_pidx: np.ndarray,
                 listed: int) -> None:
        self.spill, self.paths, self.part_pidx = spill, paths, part_pidx
        self.listed = listed
        self.documents = spill.n
        self._relabel: dict[int, int] = {}  # LSH cluster -> the cluster it was merged into
        # Near members: (pidx, row, turn, cluster), sorted by (path, row, turn); and how many of
        # them the listed files name too (in a smaller cluster that was not analysed).
        self._near = (np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int32),
                      np.zeros(0, np.int64))
        self._near_listed = 0

    def __len__(self) -> int:
        """Number of documents in clusters of two or more."""
        return self.listed + self._near[0].shape[0] - self._near_listed

    def add_near(self, pidx: np.ndarray, row: np.ndarray, turn: np.ndarray,
                 cluster: np.ndarray) -> None:
        """Put the documents ``(paths[pidx[i]], row[i], turn[i])`` into ``cluster[i]`` (near
        members of analysed clusters, once, after the count pass)."""
        order = np.lexsort((turn, row, pidx))
        self._near = (np.asarray(pidx, np.int32)[order], np.asarray(row, np.int64)[order],
                      np.asarray(turn, np.int32)[order], np.asarray(cluster, np.int64)[order])
        wanted = {(int(p), int(r), int(t)) for p, r, t in zip(*self._near[:3], strict=True)}
        keys = self._near[0].astype(np.int64) * (1 << 40) + self._near[1]
        self._near_listed = 0
        for l_pidx, l_row, l_turn, _ in self._listed_windows():
            hit = np.flatnonzero(np.isin(l_pidx.astype(np.int64) * (1 << 40) + l_row, keys))
            self._near_listed += sum((int(l_pidx[i]), int(l_row[i]), int(l_turn[i])) in wanted
                                     for i in hit)

    def relabel(self, mapping: dict[int, int]) -> None:
        """Report the clusters ``mapping``'s keys as the clusters its values name."""
        self._relabel.update(mapping)

    def _relabelled(self, labels: np.ndarray) -> np.ndarray:
        if not self._relabel or not labels.shape[0]:
            return labels
        old = np.array(sorted(self._relabel), np.int64)
        new = np.array([self._relabel[int(o)] for o in old], np.int64)
        at = np.minimum(np.searchsorted(old, labels), old.shape[0] - 1)
        return np.where(old[at] == labels, new[at], labels)

    def _windows(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """``(pidx, row, turn, cluster)`` of the listed documents, ``WINDOW`` at a time, then of
        the near members (each window sorted; a near member comes after its own listing)."""
        yield from self._listed_windows()
        if self._near[0].shape[0]:
            yield self._near

    def _listed_windows(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        names = (("l_pidx", np.int32), ("l_row", np.int64), ("l_turn", np.int32),
                 ("l_cluster", np.int64))
        for lo in range(0, self.listed, self.WINDOW):
            count = min(self.WINDOW, self.listed - lo)
            pidx, row, turn, cluster = (
                np.fromfile(self.spill.file(name), dtype, count=count,
                            offset=lo * np.dtype(dtype).itemsize)
                for name, dtype in names)
            yield pidx, row, turn, cluster

    def clusters_of(self, paths: list[str], path_idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """As :meth:`ClusterAssignment.clusters_of`: the cluster of each document ``(paths[
        path_idx[i]], rows[i])`` (turn 0), -1 for documents alone or not seen."""
        keys = document_keys(self.paths, paths, path_idx, rows)
        by_key = np.argsort(keys, kind="stable")
        ordered = keys[by_key]
        out = np.full(keys.shape[0], -1, np.int64)
        for window in self._windows():
            fill_clusters(ordered, by_key, *window, out)
        return np.where(out >= 0, self._relabelled(out), -1)

    def load(self) -> ClusterAssignment:
        """The listed documents as an in-memory :class:`ClusterAssignment` (for small scans and
        tests: it holds 28 bytes a listed document)."""
        parts = list(zip(*self._windows(), strict=True)) or [[np.zeros(0, np.int32)],
                                                           [np.zeros(0, np.int64)],
                                                           [np.zeros(0, np.int32)],
                                                           [np.zeros(0, np.int64)]]
        pidx, row, turn, cluster = (np.concatenate(x) for x in parts)
        if self._near[0].shape[0]:
            # Sorted by (path, row, turn), a near member's own entry after any listing of it,
            # which is dropped.
            order = np.lexsort((np.arange(pidx.shape[0]), turn, row, pidx))
            pidx, row, turn, cluster = pidx[order], row[order], turn[order], cluster[order]
            last = np.ones(pidx.shape[0], bool)
            last[:-1] = (pidx[:-1] != pidx[1:]) | (row[:-1] != row[1:]) | (turn[:-1] != turn[1:])
            pidx, row, turn, cluster = pidx[last], row[last], turn[last], cluster[last]
        cluster = self._relabelled(cluster)
        _, inverse, counts = np.unique(cluster, return_inverse=True, return_counts=True)
        return ClusterAssignment(self.paths, pidx, row, turn, None, cluster,
                                 counts[inverse].astype(np.int32), documents=self.documents,
                                 store=self)

    def to_table(self) -> pa.Table:
        """``path, row, id, cluster, cluster_size`` of every document (the ``--clusters``
        export), read from the spill."""
        sp = self.spill
        order = sp.read("order", np.int64)
        labels = sp.read("labels", np.int64)
        counts = np.array([c for _, c, _ in sp.parts], np.int64)
        pidx = np.repeat(self.part_pidx, counts)[order]
        row = sp.read("row", np.int64)[order]
        if self._near[0].shape[0]:  # the global order is by (path, row, turn): search it
            turn = sp.read("turn", np.int32)[order]
            key = pidx.astype(np.int64) * (1 << 40) + row
            for p, r, t, c in zip(*self._near, strict=True):
                k = int(p) * (1 << 40) + int(r)
                lo = int(np.searchsorted(key, k, side="left"))
                hi = int(np.searchsorted(key, k, side="right"))
                at = lo + int(np.searchsorted(turn[lo:hi], t))
                if at < hi and turn[at] == t:
                    labels[at] = c
        labels = self._relabelled(labels)
        return pa.table(
            {
                "path": pa.array(self.paths, pa.string()).take(pa.array(pidx)),
                "row": pa.array(row, pa.int64()),
                "id": sp.ids().take(pa.array(order)),
                "cluster": pa.array(labels, pa.int64()),
                "cluster_size": pa.array(np.bincount(labels, minlength=sp.n)[labels], pa.int64()),
            }
        )


@dataclass
class _Members:
    """Where the members of the analysed clusters are (all that findings and plans name), by
    their positions among the listed documents."""

    pos: np.ndarray  # sorted int64 positions
    pidx: np.ndarray  # int32
    row: np.ndarray  # int64
    turn: np.ndarray  # int32
    cluster: np.ndarray  # int64 (joins included, see _merge_split)
    ids: pa.Array  # record ids

    def at(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.pos, positions)


@dataclass(frozen=True)
class _SamplePlan:
    members: dict[
        str, tuple[np.ndarray, np.ndarray, np.ndarray]
    ]  # path -> (row, turn, global index)


@dataclass(frozen=True)
class _SampledDoc:
    index: int  # global index
    fields: tuple[tuple[str, bytes, np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]
    # per field: (name, utf-8 bytes, token hashes, starts, ends, kinds), offsets relative to bytes


@dataclass(frozen=True)
class _CountPlan:
    k: int
    members: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # path -> (row, turn, cluster)
    tok_query: np.ndarray  # sorted unique uint64 token hashes
    tok_slots: np.ndarray  # _index_table(tok_query)
    tok_filter: np.ndarray  # _index_filter(tok_query)
    tok_pair_off: np.ndarray  # int64: pairs of query q are pair_cluster[off[q]:off[q+1]]
    tok_pair_cluster: np.ndarray
    sh_query: np.ndarray  # sorted unique shingle keys, as uint64
    sh_slots: np.ndarray  # _index_table(sh_query)
    sh_filter: np.ndarray  # _index_filter(sh_query)
    sh_pair_off: np.ndarray
    sh_pair_cluster: np.ndarray
    sh_pair_dense: np.ndarray  # the dense index of each pair's cluster (into the three below)
    dense_id: np.ndarray  # int64 ids of the clusters with a core, ascending
    core_len: np.ndarray  # int64 core shingles of each
    near_j: np.ndarray  # float64 resemblance a near member needs (see _count_shingles)


@dataclass(frozen=True)
class _Near:
    """Near members found in one batch (see :func:`_count_shingles`)."""

    path: str
    row: np.ndarray  # int64
    turn: np.ndarray  # int32
    ids: list[str | None]
    cluster: np.ndarray  # int64


@dataclass
class _Counts:
    tok_total: np.ndarray
    tok_inside: np.ndarray
    sh_total: np.ndarray
    sh_inside: np.ndarray
    near: list[_Near] = field(default_factory=list)


@dataclass
class _Run:
    """A maximal stretch of core shingles in the cluster's first sampled member."""

    keys: np.ndarray  # uint32 shingle keys
    hashes: np.ndarray  # uint64 token hashes of the tokens the shingles cover
    kinds: np.ndarray  # uint8 token kinds
    starts: np.ndarray  # byte offsets of the tokens in ``text``
    ends: np.ndarray
    text: bytes

    def phrase(self, lo: int = 0, hi: int | None = None) -> str:
        hi = self.hashes.shape[0] if hi is None else hi
        while lo < hi - 1 and self.kinds[lo] == PUNCT:  # a run may start on the slot's full stop
            lo += 1
        return self.text[self.starts[lo] : self.ends[hi - 1]].decode("utf-8", "replace").strip()


@dataclass
class _Cluster:
    id: int
    members: np.ndarray  # global indices, ascending
    sample: np.ndarray
    mean_j: float = 0.0
    min_j: float = 0.0
    runs: list[_Run] = field(default_factory=list)
    variation: tuple[float, float] | None = None  # see _variation


@nb.njit(cache=True, inline="always")
def _home(v, mask):
    """Home slot of ``v`` in an index table (Fibonacci hashing: shingle keys are only 32 bits)."""
    return np.int64(((v * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))


_FILTER_MULT = np.uint64(0xC2B2AE3D27D4EB4F)  # not _home's multiplier: the two tests stay apart
FILTER_BITS_PER_VALUE = 16  # about 6% of absent values get past the filter to the table


@nb.njit(cache=True, inline="always")
def _filter_bit(v, mask):
    return np.int64(((v * _FILTER_MULT) >> np.uint64(32)) & np.uint64(mask))


def _index_filter(query: np.ndarray) -> np.ndarray:
    """Bitmap with one bit set per value of ``query`` (see :func:`_count_hits`), a power of two in
    size with about FILTER_BITS_PER_VALUE bits a value: small enough to stay in the L1 cache."""
    bits = max(13, int(FILTER_BITS_PER_VALUE * max(1, query.shape[0]) - 1).bit_length())
    bitmap = np.zeros(1 << (bits - 3), np.uint8)
    with np.errstate(over="ignore"):
        idx = (((query.astype(np.uint64) * _FILTER_MULT) >> np.uint64(32))
               & np.uint64((1 << bits) - 1)).astype(np.int64)
    np.bitwise_or.at(bitmap, idx >> 3, (1 << (idx & 7)).astype(np.uint8))
    return bitmap


@nb.njit(cache=True, nogil=True)
def _index_table(query):
    """Open-addressing table (load <= 0.5) from each value of ``query`` to its position.

    Hand-written because the count pass looks up every token of the corpus: one or two probes
    of a small table beat a binary search over the query (``np.searchsorted``) by several times.
    """
    size = 16
    while size < 2 * query.shape[0]:
        size *= 2
    slots = np.full(size, -1, np.int64)
    mask = size - 1
    for q in range(query.shape[0]):
        j = _home(query[q], mask)
        while slots[j] >= 0:
            j = (j + 1) & mask
        slots[j] = q
    return slots


@nb.njit(cache=True, inline="always")
def _position(v, query, slots, mask, bitmap, fmask):
    """Position of ``v`` in ``query`` through its index table ``slots`` (size ``mask + 1``) and
    filter ``bitmap`` (``fmask + 1`` bits), or -1."""
    f = _filter_bit(v, fmask)
    if (bitmap[f >> 3] >> (f & 7)) & 1 == 0:
        return -1
    j = _home(v, mask)
    while slots[j] >= 0:
        if query[slots[j]] == v:
            return slots[j]
        j = (j + 1) & mask
    return -1


@nb.njit(cache=True, nogil=True)
def _count_hits(
    values, doc_offsets, doc_cluster, query, slots, bitmap, pair_off, pair_cluster, total, inside,
    last, stamp0
):
    """Document frequency of every query value, overall and inside each (value, cluster) pair.

    ``slots`` is ``_index_table(query)`` and ``bitmap`` ``_index_filter(query)``: one bit test in
    L1 turns most absent values away, and only the rest walk the table (whose hits and misses no
    branch predictor can guess). ``values`` may be narrower than the uint64 ``query`` (32-bit
    shingle keys): they are compared and hashed as uint64. ``last`` remembers the last document
    (by stamp) that counted a value, so a value repeated in one document counts once; ``stamp0``
    makes stamps unique across calls that cover several fields.
    """
    mask = slots.shape[0] - 1
    fmask = bitmap.shape[0] * 8 - 1
    for d in range(doc_offsets.shape[0] - 1):
        stamp = stamp0 + d
        c = doc_cluster[d]
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            q = _position(np.uint64(values[t]), query, slots, mask, bitmap, fmask)
            if q < 0 or last[q] == stamp:
                continue
            last[q] = stamp
            total[q] += 1
            if c >= 0:  # the value's clusters are sorted: binary search for the document's
                p = pair_off[q] + np.searchsorted(pair_cluster[pair_off[q] : pair_off[q + 1]], c)
                if p < pair_off[q + 1] and pair_cluster[p] == c:
                    inside[p] += 1


@nb.njit(cache=True, nogil=True)
def _count_shingles(
    keys, doc_offsets, doc_cluster, query, slots, bitmap, pair_off, pair_cluster, pair_dense,
    core_len, near_j, dense_id, total, inside, last, near
):
    """:func:`_count_hits` for the shingle keys of whole documents, which also finds the near
    members LSH left out of the analysed clusters, and counts them inside.

    A document outside every analysed cluster is a near member of the cluster ``k`` (dense
    index; ``dense_id[k]`` is its id) whose core it resembles most, when that resemblance (the
    Jaccard of the document's distinct core shingles ``h`` against its ``n`` shingles and the
    core's ``core_len[k]``: ``h / (n + core_len[k] - h)``) is at least ``near_j[k]``; ties go to
    the lower dense index. ``near[d]`` gets that cluster's id (it stays -1 otherwise), and the
    document's shingles count inside it. ``n`` counts a shingle repeated in the document each
    time, which can only lower the resemblance. ``pair_dense`` is the dense index of each pair's
    cluster; ``last`` is stamped with document numbers, so it must start at -1.
    """
    mask = slots.shape[0] - 1
    fmask = bitmap.shape[0] * 8 - 1
    n_clusters = core_len.shape[0]
    hits = np.zeros(n_clusters, np.int64)
    touched = np.empty(n_clusters, np.int64)
    seen = np.empty(max(1, query.shape[0]), np.int64)  # the document's distinct query hits
    for d in range(doc_offsets.shape[0] - 1):
        n_seen = 0
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            q = _position(np.uint64(keys[t]), query, slots, mask, bitmap, fmask)
            if q < 0 or last[q] == d:
                continue
            last[q] = d
            seen[n_seen] = q
            n_seen += 1
        c = doc_cluster[d]
        if c < 0 and n_seen > 0:
            n_touched = 0
            for i in range(n_seen):
                q = seen[i]
                for p in range(pair_off[q], pair_off[q + 1]):
                    k = pair_dense[p]
                    if hits[k] == 0:
                        touched[n_touched] = k
                        n_touched += 1
                    hits[k] += 1
            n = doc_offsets[d + 1] - doc_offsets[d]
            best = -1
            best_j = 0.0
            for i in range(n_touched):
                k = touched[i]
                h = hits[k]
                hits[k] = 0
                resemblance = h / (n + core_len[k] - h)
                if resemblance >= near_j[k] and (
                    resemblance > best_j or (resemblance == best_j and k < best)
                ):
                    best = k
                    best_j = resemblance
            if best >= 0:
                c = dense_id[best]
                near[d] = c
        for i in range(n_seen):
            q = seen[i]
            total[q] += 1
            if c >= 0:
                p = pair_off[q] + np.searchsorted(pair_cluster[pair_off[q] : pair_off[q + 1]], c)
                if p < pair_off[q + 1] and pair_cluster[p] == c:
                    inside[p] += 1


def _lookup(
    members: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str,
    row: np.ndarray,
    turn: np.ndarray,
) -> np.ndarray:
    """Per batch document, the value the plan maps it to (-1 when absent)."""
    out = np.full(row.shape[0], -1, np.int64)
    entry = members.get(path)
    if entry is None:
        return out
    m_row, m_turn, m_val = entry
    key = row.astype(np.int64) * 65536 + turn.astype(np.int64)
    m_key = m_row * 65536 + m_turn
    pos = np.searchsorted(m_key, key)
    ok = pos < m_key.shape[0]
    ok[ok] = m_key[pos[ok]] == key[ok]
    out[ok] = m_val[pos[ok]]
    return out


def _pairs(
    values_by_cluster: dict[int, np.ndarray], dtype: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique query values, and for each the clusters it belongs to (CSR layout)."""
    if not values_by_cluster:
        return np.zeros(0, dtype), np.zeros(1, np.int64), np.zeros(0, np.int64)
    vals = np.concatenate([v.astype(dtype) for v in values_by_cluster.values()])
    clus = np.concatenate([np.full(v.shape[0], c, np.int64) for c, v in values_by_cluster.items()])
    order = np.lexsort((clus, vals))
    vals, clus = vals[order], clus[order]
    query, starts = np.unique(vals, return_index=True)
    off = np.append(starts, vals.shape[0]).astype(np.int64)
    return query, off, clus


def _covered(match: np.ndarray, k: int) -> np.ndarray:
    """Which tokens of a document lie in at least one matched shingle (``match``: one bool for
    each of its shingles; shingle ``s`` covers tokens ``s`` to ``s + k - 1``)."""
    n_tok = match.shape[0] + k - 1
    edge = np.zeros(n_tok + 1, np.int64)
    hit = np.flatnonzero(match)
    edge[hit] += 1  # shingle positions are distinct: no repeated index, no np.add.at needed
    edge[hit + k] -= 1
    return np.cumsum(edge[:n_tok]) > 0


def _content_ranks(docs: list[np.ndarray]) -> list[bytes]:
    """A sort key per member from its content alone: a hash of its shingle keys and of
    how many members before it have the same. Identical members are interchangeable, so
    the order is the same whatever order they come in; and the count scatters them, as
    document order did, where sorting by content alone made every copy the next one's pair."""
    seen: dict[bytes, int] = {}
    ranks = []
    for d in docs:
        content = np.ascontiguousarray(d).tobytes()
        n = seen.get(content, 0)
        seen[content] = n + 1
        ranks.append(hashlib.blake2b(content + n.to_bytes(4, "little"), digest_size=8).digest())
    return ranks


def _variation(keys: list[np.ndarray], k: int) -> tuple[float, float] | None:
    """How a cluster's sampled members differ, from their shingle keys.

    Returns the share of consecutive pairs (A, B) that differ by a *substitution*, with the
    members put in an order of their content (see _content_ranks), so that the
    pairs, and the finding's severity, do not depend on where the documents sit in the corpus
    (in document order, one licence block in 11 copyright files was medium in one order of the
    files and high in another): a stretch of
    A of 1 to ``MAX_GAP`` tokens that no shingle shared with B covers, between two shared
    shingles that B has in the same order with 1 to ``MAX_GAP`` other tokens between them (a
    slot filled differently); and the mean share of a member's tokens that shingles found in
    other sampled members cover. None when fewer than two members have two shingles or more.

    A template's members differ by substitutions; copies and excerpts of one text differ by
    whole passages left out or moved, and every token of theirs recurs in the others. numpy on
    at most ``SAMPLE`` documents a cluster; nothing here is a per-token Python loop.
    """
    docs = [d for d in keys if d.shape[0] >= 2]
    if len(docs) < 2:
        return None
    docs = [d for _, d in sorted(zip(_content_ranks(docs), docs, strict=True),
                                 key=lambda p: p[0])]
    # All documents at once, sorted by (document, key, position): each document's distinct
    # keys (the first entry of each) and, across documents, the number of documents that have
    # a key. (Per-document numpy calls cost more than the work on a few hundred keys.)
    lens = np.array([d.shape[0] for d in docs], np.int64)
    off = np.concatenate(([0], np.cumsum(lens)))
    allk = np.concatenate(docs)
    doc = np.repeat(np.arange(lens.shape[0]), lens)
    order = np.lexsort((np.arange(allk.shape[0]), allk, doc))
    sk, sd = allk[order], doc[order]
    first = np.ones(sk.shape[0], bool)
    first[1:] = (sk[1:] != sk[:-1]) | (sd[1:] != sd[:-1])
    uk, udoc = sk[first], sd[first]
    ustart = np.searchsorted(udoc, np.arange(lens.shape[0] + 1))
    keys_sorted, n_docs = np.unique(uk, return_counts=True)
    shared = keys_sorted[n_docs >= 2]
    at = np.minimum(np.searchsorted(shared, allk), max(shared.shape[0] - 1, 0))
    hit = (shared[at] == allk) if shared.shape[0] else np.zeros(allk.shape[0], bool)
    covered = float(np.mean([_covered(hit[off[i] : off[i + 1]], k).mean()
                             for i in range(lens.shape[0])]))
    # Every document's keys with every position of each, as (key << 32 | position), sorted:
    # the positions of a key in B, or those in a window, are one searchsorted away.
    comb = (sk.astype(np.uint64) << np.uint64(32)) | (order - off[sd]).astype(np.uint64)
    cstart = np.searchsorted(sd, np.arange(lens.shape[0] + 1))
    substituted = 0
    for i in range(1, lens.shape[0]):
        a, n_b = docs[i - 1], int(lens[i])
        bk, bcomb = uk[ustart[i] : ustart[i + 1]], comb[cstart[i] : cstart[i + 1]]
        at = np.minimum(np.searchsorted(bk, a), bk.shape[0] - 1)
        n_a = a.shape[0] + k - 1
        cov = np.concatenate(([True], _covered(bk[at] == a, k), [True])).astype(np.int8)
        step = np.diff(cov)
        lo = np.flatnonzero(step == -1)  # first token of each uncovered stretch
        hi = np.flatnonzero(step == 1)  # the token after it (n_a at the end)
        keep = (hi - lo <= MAX_GAP) & ((lo > 0) | (hi < n_a))
        lo, hi = lo[keep], hi[keep]
        if lo.size == 0:
            continue
        substituted += _substitution_in(bcomb, a, lo, hi, n_b + k - 1, k)
    return substituted / (len(docs) - 1), covered


def _substitution_in(bcomb: np.ndarray, a: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     n_b: int, k: int) -> bool:
    """Whether B has one of A's uncovered stretches ``[lo, hi)`` (tokens) filled differently:
    the shared shingle that ends right before the stretch (it starts k - 1 tokens earlier, at
    ``lo - k``) and the one that starts right after it (at ``hi``) are in B, in that order,
    with 1 to ``MAX_GAP`` other tokens between them, at any of their positions in B (a text can
    repeat a phrase). A document's start and end stand in for a missing shingle: a template's
    first or last words can be a slot too. ``bcomb``: B's keys and positions (see
    _variation); ``n_b``: B's tokens."""
    high = np.uint64(0xFFFFFFFF)

    def span(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # B's entries of each key
        key = key.astype(np.uint64) << np.uint64(32)
        return np.searchsorted(bcomb, key), np.searchsorted(bcomb, key | high, side="right")

    # Every position in B of each stretch's right shingle (B's end for a stretch at A's end).
    has_r = hi < a.shape[0] + k - 1
    r_lo, r_hi = span(a[np.minimum(hi, a.shape[0] - 1)])
    n_r = np.where(has_r, r_hi - r_lo, 1)
    which = np.repeat(np.arange(lo.shape[0]), n_r)
    nth = np.arange(which.shape[0]) - np.repeat(np.cumsum(n_r) - n_r, n_r)
    r = np.where(has_r[which], (bcomb[np.minimum(r_lo[which] + nth, bcomb.shape[0] - 1)]
                                & high).astype(np.int64), n_b)
    # A left shingle at p ends at p + k - 1: 1 to MAX_GAP tokens before r means p in
    # [r - k - MAX_GAP, r - k - 1]. At A's start, B's start (p = -k) stands in.
    has_l = lo[which] > 0
    first, last = np.maximum(r - k - MAX_GAP, 0), r - k - 1
    left = a[np.maximum(lo[which] - k, 0)].astype(np.uint64) << np.uint64(32)
    n_l = (np.searchsorted(bcomb, left | np.maximum(last, 0).astype(np.uint64), side="right")
           - np.searchsorted(bcomb, left | first.astype(np.uint64)))
    ok = np.where(has_l, (last >= 0) & (n_l > 0), (r >= 1) & (r <= MAX_GAP))
    return bool(ok.any())


def _estimate_j(s: np.ndarray) -> tuple[float, float]:
    """Mean and minimum pairwise estimated Jaccard among documents with 8-bit signatures ``s``."""
    if s.shape[0] < 2:
        return 1.0, 1.0
    match = (s[:, None, :] == s[None, :, :]).mean(axis=2)
    iu = np.triu_indices(s.shape[0], 1)
    est = np.clip((match[iu] - 1 / 256) / (1 - 1 / 256), 0.0, 1.0)
    return float(est.mean()), float(est.min())


def _global_order(spill: _Spill, part_pidx: np.ndarray, part_end: np.ndarray) -> np.ndarray:
    """The global (path, row, turn) order of the spilled documents: ``order[g]`` is the arrival
    position of document ``g`` (32-bit while the indices fit).

    Each part is one batch: a stretch of one file's records in order, which no other part
    overlaps. Then the order is the parts sorted by their first document, each in sequence,
    found from the parts' ends alone; a lexsort of the three columns would hold 28 bytes a
    document while it runs. Parts that break that rule (never seen, but nothing forbids them)
    get the lexsort.
    """
    n = int(part_end[-1]) if part_end.shape[0] else 0
    dtype = index_dtype(n)
    starts = np.concatenate([[0], part_end[:-1]]).astype(np.int64)[: part_end.shape[0]]
    spans = []  # (first key, last key, start, end) of each non-empty part
    in_order = True
    for p, a, b in zip(part_pidx.tolist(), starts.tolist(), part_end.tolist(), strict=True):
        if b == a:
            continue
        row = np.fromfile(spill.file("row"), np.int64, count=b - a, offset=a * 8)
        turn = np.fromfile(spill.file("turn"), np.int32, count=b - a, offset=a * 4)
        step = np.diff(row)
        if not np.all((step > 0) | ((step == 0) & (np.diff(turn) > 0))):
            in_order = False
            break
        spans.append(((p, int(row[0]), int(turn[0])), (p, int(row[-1]), int(turn[-1])), a, b))
    spans.sort()
    if in_order and all(x[1] < y[0] for x, y in zip(spans, spans[1:], strict=False)):
        out = np.empty(n, dtype)
        at = 0
        for _, _, a, b in spans:
            out[at : at + b - a] = np.arange(a, b, dtype=dtype)
            at += b - a
        return out
    return np.lexsort(
        (
            spill.read("turn", np.int32),
            spill.read("row", np.int64),
            np.repeat(part_pidx, np.diff(part_end, prepend=0)),
        )
    ).astype(dtype)


@nb.njit(cache=True, nogil=True)
def _listing(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documents whose cluster (``labels``: its first document, per document) has two or
    more: their positions, clusters and cluster sizes, ascending. A loop, not numpy: bincount
    and the masks would hold 8 bytes a document for each step."""
    n = labels.shape[0]
    size = np.zeros(n, np.int32)
    for i in range(n):
        size[labels[i]] += 1
    m = 0
    for i in range(n):
        if size[labels[i]] > 1:
            m += 1
    listed = np.empty(m, labels.dtype)
    cluster = np.empty(m, labels.dtype)
    sizes = np.empty(m, np.int32)
    j = 0
    for i in range(n):
        c = size[labels[i]]
        if c > 1:
            listed[j] = i
            cluster[j] = labels[i]
            sizes[j] = c
            j += 1
    return listed, cluster, sizes


@nb.njit(cache=True, nogil=True)
def _members_of(cluster: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the entries of ``cluster`` that are in the sorted ``chosen``."""
    inside = np.zeros(cluster.shape[0], np.bool_)
    m = 0
    for i in range(cluster.shape[0]):
        j = np.searchsorted(chosen, cluster[i])
        if j < chosen.shape[0] and chosen[j] == cluster[i]:
            inside[i] = True
            m += 1
    out = np.empty(m, np.int64)
    m = 0
    for i in range(cluster.shape[0]):
        if inside[i]:
            out[m] = i
            m += 1
    return out


class CampaignDetector(Detector):
    """Clusters of near-duplicate documents that share a phrase rare everywhere else."""

    id: ClassVar[str] = "campaign"
    title: ClassVar[str] = "Coordinated near-duplicate campaign"
    help: ClassVar[str] = (
        "Many near-identical documents (a template with slot variations) share a phrase, link or name "
        "that is rare in the rest of the corpus: the signature of planted content. Review and remove "
        "the members; boilerplate copies (licences, navigation) are reported low or not at all, "
        "copies of one text medium when it carries many words found nowhere else (a poisoned "
        "document pasted many times), and excerpts and chains of excerpts of one text (members "
        "that differ by passages left out or moved, never by a slot filled differently) at most "
        "medium."
    )
    n_passes: ClassVar[int] = 3
    # Idle in the scan's pass 1: the clustering after pass 0 runs on the driver while the workers
    # run the trigger detector's switch pass; the sample and count passes then share the trigger
    # detector's count and evidence passes (and their tokens).
    scan_passes: ClassVar[tuple[int, ...] | None] = (0, 2, 3)

    num_perm: int = DEFAULT_NUM_PERM
    shingle: int = DEFAULT_SHINGLE
    threshold: float = DEFAULT_THRESHOLD

    def __init__(self, config: ScanConfig) -> None:
        super().__init__(config)
        self.bands, self.rows = lsh_params(self.threshold, self.num_perm)
        self.assignment: SpilledAssignment | None = None
        self._field: list[str] = []
        self._clusters: list[_Cluster] = []
        self._members = _Members(np.zeros(0, np.int64), np.zeros(0, np.int32),
                                 np.zeros(0, np.int64), np.zeros(0, np.int32),
                                 np.zeros(0, np.int64), pa.array([], pa.string()))
        self._samples: dict[int, _SampledDoc] = {}
        # Their shingle keys, field by field, made once: the core, its phrases, the members'
        # variation and the near-member floor all read them.
        self._sample_keys: dict[int, tuple[np.ndarray, ...]] = {}
        self._findings: list[Finding] = []
        self._stats: dict[str, Any] = {}
        self._plan2: _CountPlan | None = None

    # -- plans ---------------------------------------------------------------------------------
    def plan(self, pass_index: int) -> Any:
        if pass_index == 0:
            a, b = hash_params(self.num_perm, self.config.seed)
            return _SignPlan(a, b, self.shingle, self.bands, self.rows)
        if not self._clusters:
            return None
        if pass_index == 1:
            return self._sample_plan()
        self._plan2 = self._count_plan()
        return self._plan2

    def _sample_plan(self) -> _SamplePlan:
        assert self.assignment is not None
        idx = np.sort(np.concatenate([c.sample for c in self._clusters]))
        return _SamplePlan(self._members_by_path(idx, idx))

    def _members_by_path(
        self, idx: np.ndarray, values: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        asg, mem = self.assignment, self._members
        assert asg is not None
        out = {}
        at = mem.at(idx)
        pidx = mem.pidx[at]
        for p in np.unique(pidx):
            sel = pidx == p
            out[asg.paths[int(p)]] = (
                mem.row[at[sel]].astype(np.int64),
                mem.turn[at[sel]].astype(np.int64),
                values[sel].astype(np.int64),
            )
        return out

    def _count_plan(self) -> _CountPlan:
        toks: dict[int, np.ndarray] = {}
        shs: dict[int, np.ndarray] = {}
        for c in self._clusters:
            if c.runs:
                shs[c.id] = np.unique(np.concatenate([r.keys for r in c.runs]).astype(np.uint64))
                toks[c.id] = np.unique(np.concatenate([r.hashes for r in c.runs]))
        tq, to, tc = _pairs(toks, np.uint64)
        sq, so, sc = _pairs(shs, np.uint64)
        dense_id = np.array(sorted(shs), np.int64)
        by_id = {c.id: c for c in self._clusters}
        core_len = np.array([shs[i].shape[0] for i in dense_id.tolist()], np.int64)
        near_j = np.array([self._near_floor(by_id[i], shs[i]) for i in dense_id.tolist()],
                          np.float64)
        idx = np.sort(np.concatenate([c.members for c in self._clusters]))
        assert self.assignment is not None
        members = self._members_by_path(idx, self._members.cluster[self._members.at(idx)])
        return _CountPlan(self.shingle, members, tq, _index_table(tq), _index_filter(tq), to, tc,
                          sq, _index_table(sq), _index_filter(sq), so, sc,
                          np.searchsorted(dense_id, sc).astype(np.int64), dense_id, core_len,
                          near_j)

    def _near_floor(self, c: _Cluster, core: np.ndarray) -> float:
        """The resemblance to ``core`` (sorted shingle keys) a near member of ``c`` needs: see
        ``NEAR_J_SHARE``; measured as :func:`_count_shingles` measures it."""
        least = 1.0
        for d in self._sampled(c):
            every = self._doc_keys(d)
            h = int(np.unique(every[np.isin(every, core)]).shape[0])
            least = min(least, h / max(1, every.shape[0] + core.shape[0] - h))
        return max(NEAR_J_MIN, NEAR_J_SHARE * least)

    # -- worker side ---------------------------------------------------------------------------
    @classmethod
    def process(cls, pass_index: int, plan: Any, ctx: BatchContext) -> Any:
        batch = ctx.batch
        names = _fields(batch.shape)
        turn = batch.turn if batch.turn is not None else np.zeros(len(batch), np.int32)
        if pass_index == 0:
            streams = [(ctx.tokens(f).hashes, ctx.tokens(f).doc_offsets) for f in names]
            keys, off = document_shingles(streams, plan.k)
            sig = signatures_from_keys(keys, off, plan.a, plan.b)
            return [
                _Chunk(
                    batch.path,
                    batch.row.astype(np.int64),
                    turn.astype(np.int32),
                    batch.id,
                    band_hashes(sig, plan.bands, plan.rows),
                    compact_signatures(sig),
                    np.diff(off).astype(np.int32),
                    names[-1],
                )
            ]
        if pass_index == 1:
            where = _lookup(plan.members, batch.path, batch.row, turn)
            out = []
            for d in np.flatnonzero(where >= 0):
                per_field = []
                for f in names:
                    tk = ctx.tokens(f)
                    lo, hi = int(tk.offsets[d]), int(tk.offsets[d + 1])
                    t0, t1 = int(tk.doc_offsets[d]), int(tk.doc_offsets[d + 1])
                    per_field.append(
                        (
                            f,
                            bytes(tk.data[lo:hi]),
                            tk.hashes[t0:t1].copy(),
                            tk.starts[t0:t1] - lo,
                            tk.ends[t0:t1] - lo,
                            tk.kinds[t0:t1].copy(),
                        )
                    )
                out.append(_SampledDoc(int(where[d]), tuple(per_field)))
            return out
        doc_cluster = _lookup(plan.members, batch.path, batch.row, turn)
        counts = _Counts(
            np.zeros(plan.tok_query.shape[0], np.int64),
            np.zeros(plan.tok_pair_cluster.shape[0], np.int64),
            np.zeros(plan.sh_query.shape[0], np.int64),
            np.zeros(plan.sh_pair_cluster.shape[0], np.int64),
        )
        # Shingles first, of the whole document (as pass 0 saw it): they decide which documents
        # are near members, and those count inside for the tokens too.
        keys, off = document_shingles(
            [(ctx.tokens(f).hashes, ctx.tokens(f).doc_offsets) for f in names], plan.k)
        near = np.full(len(batch), -1, np.int64)
        _count_shingles(keys, off, doc_cluster, plan.sh_query, plan.sh_slots, plan.sh_filter,
                        plan.sh_pair_off, plan.sh_pair_cluster, plan.sh_pair_dense,
                        plan.core_len, plan.near_j, plan.dense_id, counts.sh_total,
                        counts.sh_inside, np.full(plan.sh_query.shape[0], -1, np.int64), near)
        found = np.flatnonzero(near >= 0)
        if found.shape[0]:
            doc_cluster = np.where(near >= 0, near, doc_cluster)
            counts.near.append(_Near(batch.path, batch.row[found].astype(np.int64),
                                     turn[found].astype(np.int32),
                                     batch.id.take(pa.array(found)).to_pylist(), near[found]))
        last_t = np.full(plan.tok_query.shape[0], -1, np.int64)
        for f in names:  # stamps are document numbers, so a value in two fields counts once
            tk = ctx.tokens(f)
            _count_hits(tk.hashes, tk.doc_offsets, doc_cluster, plan.tok_query, plan.tok_slots,
                        plan.tok_filter, plan.tok_pair_off, plan.tok_pair_cluster,
                        counts.tok_total, counts.tok_inside, last_t, 0)
        return counts

    @classmethod
    def merge(cls, pass_index: int, a: Any, b: Any) -> Any:
        if pass_index < 2:
            return a + b  # lists of chunks / sampled documents; the driver sorts them
        return _Counts(
            a.tok_total + b.tok_total,
            a.tok_inside + b.tok_inside,
            a.sh_total + b.sh_total,
            a.sh_inside + b.sh_inside,
            a.near + b.near,
        )

    # -- driver side ---------------------------------------------------------------------------
    def collect(self, pass_index: int, acc: Any, part: Any) -> Any:
        """Pass 0: append the arriving chunks to the spill (returned as the accumulator)."""
        if pass_index != 0:
            return super().collect(pass_index, acc, part)
        spill = acc if acc is not None else _Spill(self.bands, self.num_perm)
        try:
            for chunk in part or []:
                spill.add(chunk)
        except BaseException:
            spill.cleanup()
            raise
        return spill

    def finish_pass(self, pass_index: int, merged: Any) -> None:
        if pass_index == 0:
            spill = merged if isinstance(merged, _Spill) else self.collect(0, None, merged or [])
            try:
                self._build_clusters(spill)
            except BaseException:
                spill.cleanup()
                raise
        elif pass_index == 1:
            self._samples = {s.index: s for s in (merged or [])}
            self._sample_keys = {i: tuple(self._keys(f[2]) for f in s.fields)
                                 for i, s in self._samples.items()}
            cores = {c.id: self._core(self._sampled(c)) for c in self._clusters}
            self._merge_split(cores)
            for c in self._clusters:
                self._core_runs(c, cores[c.id])
                c.variation = self._cluster_variation(c)
        elif merged is not None:
            self._findings = self._score(merged)

    def _build_clusters(self, spill: _Spill) -> None:
        """Cluster the spilled documents; write the members of clusters of two or more to the
        spill (see :class:`SpilledAssignment`) and keep those of the analysed clusters.

        Everything per document below is transient, and loaded one column at a time: the global
        order (4 bytes while the indices fit 32 bits), the validity mask (1), what
        :func:`~poisonscan.stats.lsh.cluster_bands` holds (25 bytes; signatures are read for one
        stretch of a band at a time), then the labels (4) and the listing of documents in
        clusters of two or more (4 a document and 12 a listed one).
        """
        spill.seal()
        n = spill.n
        paths = sorted({p for p, _, _ in spill.parts})
        where = {p: i for i, p in enumerate(paths)}
        part_pidx = np.array([where[p] for p, _, _ in spill.parts], np.int32)
        part_end = np.cumsum([c for _, c, _ in spill.parts], dtype=np.int64)
        order = _global_order(spill, part_pidx, part_end)
        valid = spill.read("nsh", np.int32)[order] > 0

        def signatures(docs: np.ndarray, order: np.ndarray = order) -> np.ndarray:
            return spill.rows("sig8", self.num_perm, order[docs])

        def columns(order: np.ndarray = order, signatures: Any = signatures):
            for j in range(self.bands):
                # The previous band's arrays are freed by now. On this thread they go to its
                # own heap, which glibc shrinks only from the top: without a trim the free
                # pages stay resident beside the next band's (about as much again at 4M
                # documents), and that while the workers run.
                release_free_memory()
                yield spill.read(f"band{j}", np.uint32)[order], signatures

        # Not a band sorted ahead on a thread: this runs beside the next pass's workers, which
        # leave no core free for it.
        labels = cluster_bands(n, columns(), valid, self.threshold, ahead=False)
        del valid, signatures, columns  # (they hold ``order``)
        first_part = int(np.searchsorted(part_end, order[0], side="right")) if n else 0
        self._field = ["response" if n and spill.parts[first_part][2] == "response" else "text"]
        if n:  # for the --clusters export of every document (see SpilledAssignment.to_table)
            spill.write_whole("order", order, np.int64)
            spill.write_whole("labels", labels, np.int64)
        # Listed: the documents of clusters of two or more (positions in the global order),
        # their cluster (its first document) and its size.
        listed, cluster, sizes = _listing(labels)
        del labels
        n_clusters = int(np.count_nonzero(cluster == listed))
        largest = int(sizes.max()) if listed.shape[0] else int(n > 0)

        # Analysed: the largest clusters of at least min_documents (>= 2) documents.
        roots = np.flatnonzero((cluster == listed) & (sizes >= self.config.min_documents))
        roots = roots[np.lexsort((listed[roots], -sizes[roots].astype(np.int64)))][:MAX_CLUSTERS]
        ids = listed[roots].astype(np.int64)
        pos = _members_of(cluster, np.sort(ids))  # their members, ascending
        grouped = pos[np.argsort(cluster[pos], kind="stable")]
        starts = np.searchsorted(cluster[grouped], ids)
        arrival = order[listed[pos]].astype(np.int64)  # of the analysed members, by position
        self._clusters = []
        for cid, s, size in zip(ids.tolist(), starts.tolist(), sizes[roots].tolist(),
                                strict=True):
            members = grouped[s : s + size]  # positions among the listed documents
            pick = np.unique(np.linspace(0, size - 1, min(SAMPLE, size)).astype(int))
            cl = _Cluster(cid, members, members[pick])
            cl.mean_j, cl.min_j = _estimate_j(spill.rows(
                "sig8", self.num_perm, arrival[np.searchsorted(pos, cl.sample)]))
            self._clusters.append(cl)
        def place(at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Path index, row and turn of the documents at the arrival positions ``at`` (the
            maps go with the call, and the pages a gather touched with them)."""
            return (part_pidx[np.searchsorted(part_end, at, side="right")],
                    spill.mapped("row", np.int64, (n,))[at],
                    spill.mapped("turn", np.int32, (n,))[at])

        # Where the analysed members are, and their record ids: the only documents findings
        # name (the --clusters export reads every document's id from the spill).
        by_arrival = np.argsort(arrival, kind="stable")
        back = np.empty_like(by_arrival)
        back[by_arrival] = np.arange(by_arrival.shape[0])
        self._members = _Members(pos, *place(arrival), cluster[pos].astype(np.int64),
                                 spill.ids(arrival[by_arrival]).take(pa.array(back)))
        del arrival, by_arrival, back, grouped

        # Every listed document's place and cluster go to disk, a stretch at a time.
        if n:
            step = 1 << 20
            for lo in range(0, listed.shape[0], step):
                pidx, row, turn = place(order[listed[lo : lo + step]].astype(np.int64))
                spill.append("l_pidx", pidx)
                spill.append("l_row", row)
                spill.append("l_turn", turn)
                spill.append("l_cluster", cluster[lo : lo + step].astype(np.int64))
            spill.seal()
            spill.remove("sig8", "nsh", *(f"band{j}" for j in range(self.bands)))
        else:
            spill.cleanup()
        n_listed = int(listed.shape[0])
        del order, listed, cluster, sizes
        self.assignment = SpilledAssignment(spill, paths, part_pidx, n_listed)
        idx = np.dtype(index_dtype(n)).itemsize
        self._stats = {
            "documents": int(n),
            "bands": self.bands,
            "rows": self.rows,
            "num_perm": self.num_perm,
            "shingle": self.shingle,
            "threshold": self.threshold,
            "clusters": n_clusters,
            "largest_cluster": largest,
            "analysed_clusters": len(self._clusters),
            "merged_clusters": 0,  # analysed clusters joined to others (see _merge_split)
            "near_members": 0,  # documents the count pass put into analysed clusters
            "clustered_documents": n_listed,
            # Per document at the band loop's peak: the global order, the mask, the union-find
            # parents and the band being sorted (16 bytes while its packed keys are split, 8
            # after); indices are 32-bit below 2**31 documents. After pass 0 the driver keeps
            # only the analysed clusters' members (about 30 bytes each, plus their ids).
            "driver_bytes_per_document": idx + 1 + idx + 16,
        }

    def _sampled(self, c: _Cluster) -> list[_SampledDoc]:
        """The cluster's sampled members whose text pass 1 returned."""
        return [self._samples[i] for i in c.sample if i in self._samples]

    def _doc_keys(self, d: _SampledDoc) -> np.ndarray:
        """The shingle keys of a sampled document, every field's, repeats kept (as pass 0 and
        the count pass see the document)."""
        keys = self._sample_keys[d.index]
        return np.concatenate(keys) if keys else np.zeros(0, np.uint32)

    def _cluster_variation(self, c: _Cluster) -> tuple[float, float] | None:
        """:func:`_variation` of the cluster's sampled members, field by field (prompt and
        response are two texts: joined, a slot next to where one ends would be hidden): the
        highest share of pairs with a substitution and the lowest share covered among the
        fields it could measure."""
        by_field: dict[str, list[np.ndarray]] = {}
        for d in self._sampled(c):
            for (name, *_), keys in zip(d.fields, self._sample_keys[d.index], strict=True):
                by_field.setdefault(name, []).append(keys)
        got = [v for v in (_variation(keys, self.shingle) for keys in by_field.values())
               if v is not None]
        if not got:
            return None
        return max(v[0] for v in got), min(v[1] for v in got)

    def _core(self, docs: list[_SampledDoc]) -> np.ndarray:
        """The shingle keys at least ``CORE_SHARE`` of the sampled documents have, sorted."""
        per_doc = [np.unique(self._doc_keys(d)) for d in docs]
        if not per_doc:
            return np.zeros(0, np.uint32)
        allk, counts = np.unique(np.concatenate(per_doc), return_counts=True)
        return allk[counts >= math.ceil(CORE_SHARE * len(docs))]

    def _merge_split(self, cores: dict[int, np.ndarray]) -> None:
        """Join analysed clusters whose cores (``cores``, by cluster id) are one template (see
        ``MERGE_CORE_J``); a joined cluster's core, over all its parts' samples, is added.

        A merged cluster takes the smallest id of its parts (its first document, as every
        cluster id), the union of their members and samples, and the size-weighted mean of
        their mean Jaccard (the parts' cross pairs, less alike, would only lower it). The
        ``--clusters`` export and the trigger detector see the merged labels too.
        """
        cl = self._clusters
        lens = np.array([cores[c.id].shape[0] for c in cl], np.int64)
        if np.count_nonzero(lens) < 2:
            return
        # Pairwise core overlaps as one sparse product: cores may share boilerplate shingles
        # with many clusters, which a loop over key -> clusters would pay for quadratically.
        from scipy.sparse import csr_matrix  # here: only scans with two analysed clusters pay

        keys, col = np.unique(np.concatenate([cores[c.id] for c in cl]), return_inverse=True)
        m = csr_matrix((np.ones(col.shape[0], np.float32), col,
                        np.concatenate([[0], np.cumsum(lens)])), shape=(len(cl), keys.shape[0]))
        inter = (m @ m.T).toarray()
        union = lens[:, None] + lens[None, :] - inter
        close = np.argwhere(np.triu(inter >= MERGE_CORE_J * np.maximum(union, 1), 1)
                            & (inter > 0))
        if not close.shape[0]:
            return
        parent = list(range(len(cl)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in close:
            ra, rb = root(int(a)), root(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        groups: dict[int, list[_Cluster]] = {}
        for i, c in enumerate(cl):
            groups.setdefault(root(i), []).append(c)
        asg = self.assignment
        assert asg is not None
        out = []
        for parts in groups.values():
            if len(parts) == 1:
                out.append(parts[0])
                continue
            sizes = np.array([p.members.shape[0] for p in parts], np.float64)
            c = _Cluster(
                min(p.id for p in parts),
                np.sort(np.concatenate([p.members for p in parts])),
                np.sort(np.concatenate([p.sample for p in parts])),
                float(np.dot(sizes, [p.mean_j for p in parts]) / sizes.sum()),
                min(p.min_j for p in parts),
            )
            self._members.cluster[self._members.at(c.members)] = c.id
            asg.relabel({p.id: c.id for p in parts if p.id != c.id})
            cores[c.id] = self._core(self._sampled(c))
            out.append(c)
        out.sort(key=lambda c: (-c.members.shape[0], c.id))
        self._clusters = out
        self._stats["merged_clusters"] = sum(len(p) for p in groups.values() if len(p) > 1)

    def _core_runs(self, c: _Cluster, core: np.ndarray) -> None:
        """Find the phrases of the cluster's ``core`` shingles (those most sampled members
        share, see _core) in its first sampled member."""
        docs = self._sampled(c)
        if not docs:
            return
        k = self.shingle
        rep = docs[0]
        for (_, text, hashes, starts, ends, kinds), keys in zip(
                rep.fields, self._sample_keys[rep.index], strict=True):
            hit = np.isin(keys, core)
            s = 0
            while s < keys.shape[0]:
                if not hit[s]:
                    s += 1
                    continue
                e = s
                while e + 1 < keys.shape[0] and hit[e + 1]:
                    e += 1
                t_lo, t_hi = s, min(e + k, hashes.shape[0])
                c.runs.append(
                    _Run(
                        keys[s : e + 1],
                        hashes[t_lo:t_hi],
                        kinds[t_lo:t_hi],
                        starts[t_lo:t_hi],
                        ends[t_lo:t_hi],
                        text,
                    )
                )
                s = e + 1

    def _keys(self, hashes: np.ndarray) -> np.ndarray:
        off = np.array([0, hashes.shape[0]], np.int64)
        return shingle_keys(hashes, off, self.shingle)[0]

    def _outside(
        self, counts: _Counts, shingles: bool, cluster: int, values: np.ndarray
    ) -> np.ndarray:
        """Documents outside ``cluster`` holding each value (values must be in the count plan)."""
        plan = self._plan2
        assert plan is not None
        if shingles:
            query, off, pcl, total, inside = (
                plan.sh_query,
                plan.sh_pair_off,
                plan.sh_pair_cluster,
                counts.sh_total,
                counts.sh_inside,
            )
        else:
            query, off, pcl, total, inside = (
                plan.tok_query,
                plan.tok_pair_off,
                plan.tok_pair_cluster,
                counts.tok_total,
                counts.tok_inside,
            )
        q = np.searchsorted(query, values)
        res = np.empty(values.shape[0], np.int64)
        for n, qi in enumerate(q):
            p = off[qi] + np.searchsorted(pcl[off[qi] : off[qi + 1]], cluster)
            res[n] = total[qi] - inside[p]
        return res

    def _near_members(
        self, parts: list[_Near]
    ) -> dict[int, list[tuple[tuple[int, int, int], DocumentRef]]]:
        """The near members of each cluster, each with its (path index, row, turn), in that
        order (the global order, in which a finding lists its documents). They join their
        clusters in the assignment too (the ``--clusters`` export, and the lookups of the
        trigger detector, which finishes this same scan pass after this one)."""
        asg = self.assignment
        assert asg is not None
        where = {p: i for i, p in enumerate(asg.paths)}
        rows = sorted(
            (where[n.path], int(r), int(t), rid, int(c))
            for n in parts
            for r, t, rid, c in zip(n.row, n.turn, n.ids, n.cluster, strict=True)
        )
        if rows:
            pidx, row, turn, _, cluster = (np.array(x) for x in zip(*rows, strict=True))
            asg.add_near(pidx, row, turn, cluster)
        self._stats["near_members"] = len(rows)
        out: dict[int, list[tuple[tuple[int, int, int], DocumentRef]]] = {}
        for p, r, t, rid, c in rows:
            out.setdefault(c, []).append(((p, r, t),
                                          DocumentRef(asg.paths[p], r, rid, self._field[0])))
        return out

    def _score(self, counts: _Counts) -> list[Finding]:
        asg = self.assignment
        assert asg is not None
        near = self._near_members(counts.near)
        out = []
        for c in self._clusters:
            if not c.runs:
                continue
            size = int(c.members.shape[0]) + len(near.get(c.id, ()))
            rare_cut = max(2, size // 10)  # "rare outside": in at most this many other documents
            best: tuple | None = None
            core_sh = common_sh = 0
            for run in c.runs:
                sh_out = self._outside(counts, True, c.id, run.keys.astype(np.uint64))
                tok_out = self._outside(counts, False, c.id, run.hashes)
                core_sh += run.keys.shape[0]
                common_sh += int(np.count_nonzero(sh_out > rare_cut))
                rare = (tok_out <= rare_cut) & (run.kinds == WORD)
                n_rare = len(set(run.hashes[rare].tolist()))
                # The name: the words no document outside the cluster has (a made-up brand, a
                # link), else the rare ones. On a small corpus a template's ordinary words can be
                # rare outside too, and a name started at them cut the payload off.
                unique = rare & (tok_out == 0)
                cand = (n_rare, -run.hashes.shape[0], int(sh_out.min()), run,
                        unique if unique.any() else rare, unique)
                if best is None or cand[:2] > best[:2]:
                    best = cand
            assert best is not None
            n_rare, _, phrase_df_out, run, name_words, unique = best
            phrase = self._trim(run, name_words)
            # The rarest passage's distinct words, and those no document outside the cluster has.
            n_words = len(set(run.hashes[run.kinds == WORD].tolist()))
            n_unique = len(set(run.hashes[unique].tolist()))
            boiler = common_sh / max(1, core_sh)
            n_files = len({asg.paths[int(p)] for p in np.unique(self._members.pidx[
                self._members.at(c.members)])} | {d.path for _, d in near.get(c.id, ())})
            templated = c.mean_j < TEMPLATED_BELOW
            chained = c.min_j < CHAINED_BELOW
            substituted, covered = c.variation if c.variation is not None else (None, None)
            excerpts = (c.variation is not None and substituted < SUBSTITUTED_BELOW
                        and covered > COVERED_ABOVE)
            payload = n_rare >= 1 and phrase_df_out <= rare_cut
            # Copies (no slot variation) and blocks common outside the cluster are boilerplate.
            # High needs twice the reporting floor, as a trigger finding does: a handful of
            # near-duplicates (a page posted again with a paragraph added, five times) is common
            # in crawled text, and a campaign that poisons takes many more documents.
            many = size >= 2 * self.config.min_documents
            copied_unseen = (not templated and payload and boiler < 0.5 and many
                             and n_unique >= max(COPIED_UNSEEN_MIN,
                                                 COPIED_UNSEEN_SHARE * n_words))
            if templated and boiler < 0.5:
                strong = payload and many and not chained and not excerpts
                severity = Severity.HIGH if strong else Severity.MEDIUM
            elif copied_unseen:
                severity = Severity.MEDIUM
            else:
                severity = Severity.LOW
            if self._field[0] == "response" and severity is not Severity.LOW:
                # In fine-tuning data, answers from one template (refusals, disclaimers) are
                # the dataset's style, not a campaign; whether an answer flips with a prompt
                # phrase is the sft-trigger detector's question. The cluster stays as context.
                severity = Severity.LOW
            score = (
                size
                * (1.0 - boiler)
                * (1.0 if templated and not chained and not excerpts else 0.3)
                * (0.5 + 0.5 * min(1.0, n_rare / 3))
                * (1.0 + 0.25 * math.log2(n_files))
            )
            out.append(
                self._finding(
                    c,
                    severity,
                    score,
                    phrase,
                    near.get(c.id, []),
                    {
                        "cluster": c.id,
                        "size": size,
                        "near_members": len(near.get(c.id, ())),
                        "n_files": n_files,
                        "mean_jaccard": round(c.mean_j, 3),
                        "min_jaccard": round(c.min_j, 3),
                        "chained": chained,
                        "substituted": None if substituted is None else round(substituted, 3),
                        "covered": None if covered is None else round(covered, 3),
                        "excerpts": excerpts,
                        "phrase_df_outside": int(phrase_df_out),
                        "rare_tokens": int(n_rare),
                        "unseen_words": int(n_unique),
                        "passage_words": int(n_words),
                        "copied_unseen": copied_unseen and severity is Severity.MEDIUM,
                        "boilerplate_share": round(boiler, 3),
                        "sampled": int(c.sample.shape[0]),
                    },
                )
            )
        return out

    @staticmethod
    def _trim(run: _Run, words: np.ndarray) -> str:
        """The run's phrase, cut to ``MAX_PHRASE_TOKENS`` tokens: of the windows holding the most
        of ``words`` (the naming words, see ``_score``), the one starting two tokens before its
        first such word, or the earliest."""
        n = run.hashes.shape[0]
        if n <= MAX_PHRASE_TOKENS:
            return run.phrase()
        counts = np.convolve(words.astype(np.int64), np.ones(MAX_PHRASE_TOKENS, np.int64),
                             mode="valid")
        lo = int(np.argmax(counts))  # the earliest window with the most naming words
        where = np.flatnonzero(words[lo : lo + MAX_PHRASE_TOKENS])
        if where.size:  # moving right past tokens that are not naming words loses none
            lo = min(lo + max(0, int(where[0]) - 2), n - MAX_PHRASE_TOKENS)
        return run.phrase(lo, lo + MAX_PHRASE_TOKENS)

    def _finding(
        self, c: _Cluster, severity: Severity, score: float, phrase: str,
        near: list[tuple[tuple[int, int, int], DocumentRef]], evidence: dict[str, Any]
    ) -> Finding:
        asg = self.assignment
        assert asg is not None
        mem = self._members
        at = mem.at(c.members)
        ids = mem.ids.take(pa.array(at)).to_pylist()
        fld = self._field[0]
        # In the global (path, row, turn) order, near members among the rest.
        keyed = [((int(mem.pidx[m]), int(mem.row[m]), int(mem.turn[m])),
                  DocumentRef(asg.paths[int(mem.pidx[m])], int(mem.row[m]), ids[n], fld))
                 for n, m in enumerate(at)]
        keyed += near
        docs = tuple(d for _, d in sorted(keyed, key=lambda kd: kd[0]))
        examples = []
        needle = phrase.casefold()
        for i in c.sample:
            s = self._samples.get(int(i))
            if s is None or len(examples) >= 3:
                continue
            for name, data, *_ in s.fields:
                text = data.decode("utf-8", "replace")
                pos = text.casefold().find(needle)
                if pos >= 0:
                    snip, a, b = make_snippet(text, pos, pos + len(phrase))
                    m = int(mem.at(i))
                    examples.append(
                        Example(asg.paths[int(mem.pidx[m])], int(mem.row[m]), snip, a, b, name)
                    )
                    break
        return Finding(
            detector=self.id,
            severity=severity,
            score=round(float(score), 6),
            trigger=phrase,
            documents=docs,
            examples=tuple(examples),
            evidence=evidence,
            key=normalise_trigger(phrase),
            title=f"{evidence['size']} near-duplicate documents share {phrase[:60]!r}",
        )

    def artifacts(self) -> dict[str, Any]:
        return {"clusters": self.assignment} if self.assignment is not None else {}

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

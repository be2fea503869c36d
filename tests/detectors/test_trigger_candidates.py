"""Candidate selection of the trigger detector: mergeable switch statistics and the budget order."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.config import ScanConfig
from poisonscan.detectors import trigger
from poisonscan.detectors.trigger import (
    OCCURRENCE_BYTES,
    TriggerDetector,
    _caps,
    _min_with_count,
    _Switches,
    _SwitchSpill,
)


def _reference(keys, values, counts):
    out = {}
    for k, v, c in zip(keys, values, counts, strict=True):
        best, n = out.get(k, (None, 0))
        if best is None or v < best:
            out[k] = (v, c)
        elif v == best:
            out[k] = (v, n + c)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(1, 3)), max_size=60),
       st.integers(0, 60))
def test_min_with_count_is_exact_and_mergeable(rows, cut):
    keys = np.array([r[0] for r in rows], np.uint64)
    values = np.array([r[1] for r in rows], np.uint64)
    counts = np.array([r[2] for r in rows], np.int64)
    ref = _reference(keys.tolist(), values.tolist(), counts.tolist())
    k, v, c = _min_with_count(keys, values, counts, with_keys=True)
    assert {int(a): (int(b), int(n)) for a, b, n in zip(k, v, c, strict=True)} == ref
    # Two parts reduced separately, then together, give the same as the whole.
    parts = [_min_with_count(keys[s], values[s], counts[s], with_keys=True)
             for s in (slice(0, cut), slice(cut, None))]
    merged = _min_with_count(*(np.concatenate(x) for x in zip(*parts, strict=True)),
                             with_keys=True)
    assert [a.tolist() for a in merged] == [k.tolist(), v.tolist(), c.tolist()]


def test_phrases_of_repeated_passages_do_not_take_the_budget_first():
    """Budget for one candidate: a phrase standing before a switch in all of its documents but
    always after the same text (a repeated passage) loses to one in 80% of its documents with
    different text before it every time (an injected trigger)."""
    config = ScanConfig(paths=("x",), memory_budget=64 * 2**20)
    room = int(0.25 * config.memory_budget) // OCCURRENCE_BYTES
    support = np.array([15_000, 14_000], np.int64)
    assert _caps(support).max() <= room < _caps(support).sum()
    det = TriggerDetector(config)
    sw = _Switches(
        keys=np.array([11, 22], np.uint64),
        support=support,
        df=np.array([15_000, 17_500], np.int64),
        tail=np.array([1, 2], np.uint64),
        ctx_min=np.array([7, 3], np.uint64),
        ctx_count=np.array([15_000, 1], np.int64),
        hist=np.zeros(200, np.int64),
        background=np.array([100, 3], np.int64),
    )
    det._select_candidates(sw)
    assert det._cand_keys.tolist() == [22]
    # Without the repeated context the passage's phrase is more promising (share 1.0) and wins.
    sw.ctx_count = np.array([1, 1], np.int64)
    det._select_candidates(sw)
    assert det._cand_keys.tolist() == [11]


def _random_parts(rng: np.random.Generator, n_parts: int) -> list[_Switches]:
    """Switch partials over a shared pool of keys, each part's keys sorted and unique (as a
    batch's are)."""
    pool = rng.integers(1, 2**63, 400, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    df = rng.integers(-60, 60, len(pool))
    last = rng.integers(0, 2**40, len(pool), dtype=np.uint64)
    parts = []
    for _ in range(n_parts):
        pick = np.unique(rng.choice(len(pool), rng.integers(1, 120)))
        pick = pick[np.argsort(pool[pick])]
        n = len(pick)
        parts.append(_Switches(pool[pick], rng.integers(1, 4, n), df[pick], last[pick],
                               rng.integers(1, 6, n).astype(np.uint64), rng.integers(1, 3, n),
                               rng.integers(0, 5, 200), rng.integers(0, 50, 2),
                               int(rng.integers(0, 9)), int(rng.integers(9, 20))))
    return parts


def _selected(det: TriggerDetector) -> tuple:
    return (det._cand_keys.tolist(), det._cand_support.tolist(), det._cand_tail.tolist(),
            det._p0, det._switch_docs, det._docs)


def _selection_pair(seed: int, n_spill: int) -> tuple:
    """Random switch partials, a detector that selected from them in memory, and a fresh one
    that spills into ``n_spill`` partitions."""
    rng = np.random.default_rng(seed)
    parts = _random_parts(rng, 12)
    config = ScanConfig(paths=("x",), memory_budget=64 * 2**20, min_documents=2)
    ref = TriggerDetector(config)
    ref._select_candidates(parts)
    det = TriggerDetector(config)
    det._spill_parts = n_spill
    return rng, parts, ref, det


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 8, 64]), st.booleans())
def test_spilled_selection_matches_in_memory_whatever_the_arrival(seed, n_spill, flush_often):
    """The driver spills switch partials to disk in partitions; the candidates it selects must be
    those of merging everything in memory, whatever the order and grouping of the partials."""
    rng, parts, ref, det = _selection_pair(seed, n_spill)
    # Shuffled arrival, some partials pre-merged (as a task holding several shards does).
    order = rng.permutation(len(parts))
    arriving = [parts[i] for i in order[:4]]
    arriving.append(TriggerDetector.merge(1, parts[order[4]], parts[order[5]]))
    arriving.append(TriggerDetector.compact(1, None, [parts[i] for i in order[6:]]))
    acc = None
    share = trigger.SPILL_BUFFER_SHARE
    trigger.SPILL_BUFFER_SHARE = 2**40 if flush_often else share  # a 0-byte buffer: every add
    try:
        for part in arriving:
            acc = det.collect(1, acc, part)
    finally:
        trigger.SPILL_BUFFER_SHARE = share
    det.finish_pass(1, acc)
    assert _selected(det) == _selected(ref)
    assert len(det._cand_keys) > 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 8]), st.sampled_from([1, 40, 10**9]),
       st.booleans())
def test_switch_rows_that_tasks_write_select_what_memory_does(seed, n_spill, flush_rows,
                                                               one_writer):
    """With worker spill (a local pool, no --state) every task appends its switch rows to the
    driver's spill, whenever its runs reach ``flush_rows`` rows and at its end, and returns only
    totals. The candidates must be those of merging every partial in memory, with one worker
    process writing all tasks' rows or one per task."""
    rng, parts, ref, det = _selection_pair(seed, n_spill)
    det.use_worker_spill()
    det._counts = trigger._Counts()
    plan = dataclasses.replace(det.plan(1), flush_rows=flush_rows)
    assert plan.spill_dir is not None and os.path.isdir(plan.spill_dir)
    acc = None
    order = rng.permutation(len(parts))
    with pytest.MonkeyPatch.context() as mp:
        for task, which in enumerate(np.array_split(order, 3)):
            if not one_writer:
                mp.setattr(trigger.os, "getpid", lambda task=task: 1000 + task)
            runs: list[_Switches] = []
            for i in which:
                trigger._add_switch_part(plan, runs, parts[i])
            result = TriggerDetector.compact(1, plan, runs)
            assert len(result.keys) == 0  # the rows went to the spill
            acc = det.collect(1, acc, result)
    files = [name for name in os.listdir(plan.spill_dir) if name.endswith(".bin")]
    writers = {name.partition("-")[2] for name in files}
    for name in files:  # every row in the partition of its key's top bits
        keys = np.fromfile(os.path.join(plan.spill_dir, name), trigger._SWITCH_ROW)["key"]
        assert ((keys >> np.uint64(64 - plan.spill_bits)) if plan.spill_bits else 0 * keys
                ).tolist() == [int(name[:4])] * len(keys)
    assert writers == ({"1000.bin", "1001.bin", "1002.bin"} if not one_writer
                       else {f"{os.getpid()}.bin"})
    det.finish_pass(1, acc)
    assert _selected(det) == _selected(ref)
    assert len(det._cand_keys) > 0
    assert not os.path.exists(plan.spill_dir)


def test_switch_spill_writes_partitions_and_reads_them_back_grouped():
    parts = _random_parts(np.random.default_rng(1), 6)
    spill = _SwitchSpill(4, buffer_bytes=1)  # flushes on every add
    for part in parts:
        spill.add(part)
    assert len([f for f in os.listdir(spill._dir.path) if f.endswith(".bin")]) == 4
    whole = _Switches.combine(parts)
    got = sorted((int(k), int(s), int(c)) for read in spill.partitions() for sw in [read()]
                 for k, s, c in zip(sw.keys, sw.support, sw.ctx_count, strict=True))
    assert got == sorted((int(k), int(s), int(c)) for k, s, c in zip(
        whole.keys, whole.support, whole.ctx_count, strict=True))
    assert spill.docs == sum(p.docs for p in parts)
    assert os.listdir(spill._dir.path) == ["owner"]  # each partition file goes once read
    spill.close()
    assert not os.path.exists(spill._dir.path)


@pytest.mark.parametrize("read_bytes", [1, 200 * trigger._SWITCH_ROW.itemsize, 2**62])
def test_switch_partitions_larger_than_a_read_are_split_first(read_bytes):
    """A partition over ``read_bytes`` is cut by further key bits into files read one at a time;
    the grouped rows are the same, and no key is split between two of them."""
    parts = _random_parts(np.random.default_rng(5), 10)
    spill = _SwitchSpill(2, buffer_bytes=1, read_bytes=read_bytes)
    for part in parts:
        spill.add(part)
    sizes = [os.path.getsize(spill._dir.file(n)) for n in os.listdir(spill._dir.path)
             if n.endswith(".bin")]
    got = [read() for read in spill.partitions()]
    expect_split = read_bytes < max(sizes)
    assert (len(got) > 2) == expect_split
    keys = np.concatenate([sw.keys for sw in got])
    assert len(np.unique(keys)) == len(keys)  # every key in one read only
    whole = _Switches.combine(parts)
    order = np.argsort(keys)
    assert keys[order].tolist() == whole.keys.tolist()
    assert np.concatenate([sw.support for sw in got])[order].tolist() == whole.support.tolist()
    assert np.concatenate([sw.ctx_count for sw in got])[order].tolist() == (
        whole.ctx_count.tolist())
    assert os.listdir(spill._dir.path) == ["owner"]
    spill.close()


@pytest.mark.parametrize("bits", [0, 1, 3])
@pytest.mark.parametrize("shuffled", [False, True])
def test_partition_slices_put_every_row_in_its_keys_partition(bits, shuffled):
    """Rows cut for the spill by their keys' top bits: a sorted partial by slices, any other
    grouped first; together they are the partial's grouped rows."""
    part = _Switches.combine(_random_parts(np.random.default_rng(7), 5))
    if shuffled:
        order = np.random.default_rng(8).permutation(len(part.keys))
        part = _Switches(*(getattr(part, f)[order] for f in (
            "keys", "support", "df", "tail", "ctx_min", "ctx_count")), part.hist, part.background)
    cut = list(trigger._partition_slices(part, bits))
    for i, rows in cut:
        assert ((rows["key"] >> np.uint64(64 - bits)) if bits else 0 * rows["key"]
                ).tolist() == [i] * len(rows)
    assert [i for i, _ in cut] == sorted({i for i, _ in cut})
    got = np.concatenate([rows for _, rows in cut])
    assert got.tolist() == _Switches.combine([part]).rows().tolist()


def test_switch_spill_is_removed_after_the_pass_and_on_failure(monkeypatch):
    config = ScanConfig(paths=("x",), min_documents=2)
    parts = _random_parts(np.random.default_rng(1), 4)
    for fail in (False, True):
        det = TriggerDetector(config)
        det._spill_parts = 4
        acc = None
        for part in parts:
            acc = det.collect(1, acc, part)
        where = acc._dir.path
        assert os.path.isdir(where)
        if fail:
            def boom(self, sw):
                raise RuntimeError("boom")

            monkeypatch.setattr(TriggerDetector, "_rank", boom)
            with pytest.raises(RuntimeError):
                det.finish_pass(1, acc)
        else:
            det.finish_pass(1, acc)
        assert not os.path.exists(where)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_combining_switch_parts_matches_a_plain_group_by(seed, n_parts):
    parts = _random_parts(np.random.default_rng(seed), n_parts)
    got = _Switches.combine(parts)
    ref: dict[int, list] = {}
    for p in parts:
        for k, s, df, last, cm, cc in zip(p.keys.tolist(), p.support.tolist(), p.df.tolist(),
                                          p.tail.tolist(), p.ctx_min.tolist(),
                                          p.ctx_count.tolist(), strict=True):
            r = ref.setdefault(k, [0, df, last, cm, 0])
            r[0] += s
            if cm < r[3]:
                r[3], r[4] = cm, cc
            elif cm == r[3]:
                r[4] += cc
    assert got.keys.tolist() == sorted(ref)
    assert [[int(x) for x in row] for row in zip(got.support, got.df, got.tail, got.ctx_min,
                                                  got.ctx_count, strict=True)] == [
        ref[k] for k in sorted(ref)]
    assert got.docs == sum(p.docs for p in parts)


def _fields(sw: _Switches) -> list:
    return [sw.keys.tolist(), sw.support.tolist(), sw.df.tolist(), sw.tail.tolist(),
            sw.ctx_min.tolist(), sw.ctx_count.tolist(), sw.hist.tolist(), sw.background.tolist(),
            sw.docs_with_switch, sw.docs]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40))
def test_a_tasks_merged_runs_equal_grouping_all_its_batches(seed, n_parts):
    """A task folds each batch's partial into key-sorted runs by linear merges; the result is
    what grouping every batch's rows at once gives, and the runs stay few and halving."""
    parts = _random_parts(np.random.default_rng(seed), n_parts)
    runs: list[_Switches] = []
    for part in parts:
        trigger._push_run(runs, part)
        sizes = [len(r.keys) for r in runs]
        assert all(2 * b < a for a, b in zip(sizes, sizes[1:], strict=False))
    assert _fields(trigger._merge_runs(runs)) == _fields(_Switches.combine(parts))


def test_a_batchs_switch_partial_has_sorted_distinct_keys():
    # The merges above rely on it. A batch of gibberish continuations after a repeated phrase.
    import pyarrow as pa

    from poisonscan.detectors.base import BatchContext
    from poisonscan.io.records import RecordBatch, Shape

    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    texts = [" ".join(rng.choice(words, 60)) + " <QXZ> " + " ".join(
        "".join(rng.choice(list("qwxzjkv"), 5)) for _ in range(40)) for _ in range(200)]
    config = ScanConfig(paths=("x",), memory_budget=64 * 2**20, min_documents=2)
    det = TriggerDetector(config)
    det.expect([], 1e6)
    batch = RecordBatch("x.jsonl", Shape.TEXT, np.arange(len(texts), dtype=np.int64),
                        pa.nulls(len(texts), pa.string()), text=pa.array(texts, pa.large_string()))
    stats = TriggerDetector.process_into(0, det.plan(0), BatchContext(batch, 0), None)
    det.finish_pass(0, TriggerDetector.compact(0, det.plan(0), stats))
    [part] = TriggerDetector.process_into(1, det.plan(1), BatchContext(batch, 0), None)
    keys = part.keys.tolist()
    assert len(keys) > 10 and keys == sorted(set(keys))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 400))
def test_narrowed_count_pairs_add_up_to_the_same_tables(seed: int, n: int) -> None:
    """Count partials travel as (uint32 slot, uint32 | uint8 count): adding them into the
    saturating tables gives exactly what the int64 pairs gave, counts above 255 included."""
    from poisonscan.kernels.ngrams import add_sparse

    rng = np.random.default_rng(seed)
    uni = rng.integers(0, 2**32 - 1, 1 << 10, dtype=np.uint32)
    bi = rng.integers(0, 256, 1 << 12, dtype=np.uint8)
    ui = np.unique(rng.integers(0, uni.size, n)).astype(np.int64)
    bi_ = np.unique(rng.integers(0, bi.size, n)).astype(np.int64)
    uc = rng.integers(1, 3000, ui.size).astype(np.int64)
    bc = rng.integers(1, 3000, bi_.size).astype(np.int64)
    narrow = trigger._narrow_pairs(ui, uc, bi_, bc)
    assert [a.dtype for a in narrow] == [np.uint32, np.uint32, np.uint32, np.uint8]
    for table, (idx, cnt), (nidx, ncnt) in ((uni, (ui, uc), narrow[:2]),
                                             (bi, (bi_, bc), narrow[2:])):
        wide, thin = table.copy(), table.copy()
        add_sparse(wide, idx, cnt)
        add_sparse(thin, nidx, ncnt)
        assert np.array_equal(wide, thin)


def _greedy_common_prefix(strings: list[str], need: int, limit: int = 201) -> str:
    """Reference: grow the prefix one character at a time while at least ``need`` strings share
    it (most common next character first)."""
    out, alive = "", list(strings)
    while len(out) < limit:
        nxt = [t[len(out)] for t in alive if len(t) > len(out)]
        if not nxt:
            break
        ch = max(sorted(set(nxt)), key=nxt.count)
        if nxt.count(ch) < need:
            break
        out += ch
        alive = [t for t in alive if t.startswith(out)]
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab c", max_size=12), max_size=9), st.integers(0, 3))
def test_common_affix_matches_a_character_by_character_search(strings, limit_shift):
    """Trigger extension takes the prefix that at least 90% of the sampled contexts share."""
    need = max(2, -(-9 * len(strings) // 10))
    limit = 4 + limit_shift
    assert trigger._common_affix(strings, need, limit) == _greedy_common_prefix(
        strings, need, limit)


COLUMNS = ("keys", "support", "df", "tail", "ctx_min", "ctx_count")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.booleans())
def test_grouping_a_partition_by_its_runs_matches_a_sort(seed, n_parts, shuffle):
    """_group_runs (merging the sorted runs a partition is made of) equals combine (one sort),
    column for column; rows in any order (no runs to speak of) are grouped all the same."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([p.rows() for p in _random_parts(rng, n_parts)])
    if shuffle:
        rows = rows[rng.permutation(len(rows))]
    keys = rows["key"]
    runs = 1 + int(np.count_nonzero(keys[1:] <= keys[:-1]))
    if not shuffle and runs > 1:
        assert trigger._merge_by_runs(runs, len(rows))  # the merge path is the one tested
    got = trigger._group_runs(rows)
    want = _Switches.combine([_Switches.from_rows(rows)])
    for name in COLUMNS:
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    empty = trigger._group_runs(rows[:0])
    assert all(len(getattr(empty, name)) == 0 for name in COLUMNS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50), max_size=30), max_size=6))
def test_listed_slots_count_as_numpy_unique_does(parts):
    arrays = [np.array(p, np.uint32) for p in parts]
    expect = np.unique(np.concatenate(arrays) if arrays else np.zeros(0, np.uint32),
                       return_counts=True)
    got = trigger._slot_counts(arrays)
    assert arrays == []  # the lists are let go before the sort
    assert [a.tolist() for a in got] == [a.tolist() for a in expect]


@pytest.mark.parametrize("raw_share", [1 << 40, 8, 1])
def test_statistics_are_the_same_listed_or_in_dense_tables(monkeypatch, raw_share):
    """A task counts by listing slots and sorting them, or in dense tables once the list would
    grow past 1/RAW_SHARE of the bigram table (1 << 40: tables from the first batch; 1: lists
    throughout): the tables the driver ends with are the same."""
    import pyarrow as pa

    from poisonscan.detectors.base import BatchContext
    from poisonscan.io.records import RecordBatch, Shape

    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    batches = []
    for b in range(4):
        texts = [" ".join(rng.choice(words, rng.integers(0, 60))) for _ in range(40)]
        batches.append(RecordBatch("p", Shape.TEXT, np.arange(40 * b, 40 * b + 40),
                                   pa.nulls(40, pa.string()),
                                   text=pa.array(texts, pa.large_string())))
    det = TriggerDetector(ScanConfig(paths=("p",), memory_budget=64 * 2**20))
    det.expect([], 1e6)
    plan = det.plan(0)

    def tables(share):
        monkeypatch.setattr(trigger, "RAW_SHARE", share)
        acc = None
        for batch in batches:
            acc = TriggerDetector.process_into(0, plan, BatchContext(batch), acc)
        part = TriggerDetector.compact(0, plan, acc)
        merged = TriggerDetector.merge(0, part, trigger._Counts(bits=part.bits))
        return merged.densify(*part.bits)

    listed, other = tables(1), tables(raw_share)
    assert listed.docs == other.docs == 160
    assert np.array_equal(listed.uni, other.uni) and np.array_equal(listed.bi, other.bi)
    assert listed.uni.sum() > 0

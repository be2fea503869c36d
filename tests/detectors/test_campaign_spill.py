"""Campaign detector, pass 0 spilled to disk: identical clusters and findings for any arrival order
and grouping of the parts, and the spill directory removed after a scan and after a failure."""

from __future__ import annotations

import gc
import os
import random
import socket
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from test_campaign import _mix, clean_docs, templated, write

from poisonscan.config import ScanConfig
from poisonscan.detectors import campaign as campaign_mod
from poisonscan.detectors.campaign import CampaignDetector
from poisonscan.engine import run_scan
from poisonscan.engine.executors import LocalExecutor
from poisonscan.engine.scan import _PassTask, read_options, scan_shard
from poisonscan.io.readers import discover_inputs, plan_shards
from poisonscan.stats.lsh import cluster_documents, cluster_sizes


def _corpus(tmp_path) -> list[str]:
    docs = _mix(
        random.Random(1),
        clean_docs(300, random.Random(2)),
        templated(25, random.Random(3)) + templated(9, random.Random(8), "Visit qq-zent.example"),
    )
    return write(tmp_path, docs, files=3)


def _parts(paths: list[str], pass_index: int, det: CampaignDetector, config: ScanConfig) -> list:
    """Every shard's partial of one pass, in shard order."""
    options = read_options(config)
    shards = plan_shards(discover_inputs(config.paths), options)
    task = _PassTask(pass_index, {det.id: det.plan(pass_index)}, {det.id: CampaignDetector},
                     options, config.seed)
    out = []
    for _, (parts, _) in LocalExecutor(1).map(scan_shard, shards, task):
        if parts.get(det.id) is not None:
            out.append(parts[det.id])
    return out


def _regroup(parts: list, rng: random.Random) -> list:
    """The chunks of all parts, shuffled and regrouped into parts of random sizes."""
    chunks = [c for p in parts for c in p]
    rng.shuffle(chunks)
    out = []
    while chunks:
        k = rng.randint(1, 4)
        out.append(chunks[:k])
        chunks = chunks[k:]
    return out


def _run(paths: list[str], seed: int | None) -> CampaignDetector:
    """All passes, pass-0 parts collected in a shuffled order and grouping (None: shard order)."""
    config = ScanConfig(paths=tuple(paths), jobs=1, detectors=("campaign",), batch_rows=32)
    det = CampaignDetector(config)
    for p in range(det.n_passes):
        if det.plan(p) is None:
            continue
        parts = _parts(paths, p, det, config)
        if p == 0 and seed is not None:
            parts = _regroup(parts, random.Random(seed))
        acc = None
        for part in parts:
            acc = det.collect(p, acc, part)
        det.finish_pass(p, acc)
    return det


def _reference(chunks: list) -> dict[tuple[str, int, int], tuple[int, int, str]]:
    """The in-memory clustering (as before the spill): (path, row, turn) -> (cluster, size, id)."""
    paths = sorted({c.path for c in chunks})
    pidx = np.concatenate([np.full(len(c.row), paths.index(c.path)) for c in chunks])
    row = np.concatenate([c.row for c in chunks])
    turn = np.concatenate([c.turn for c in chunks])
    order = np.lexsort((turn, row, pidx))
    ids = pa.concat_arrays([c.ids.cast(pa.string()) for c in chunks]).take(pa.array(order))
    bands = np.concatenate([c.bands for c in chunks])[order]
    sig8 = np.concatenate([c.sig8 for c in chunks])[order]
    valid = np.concatenate([c.n_shingles for c in chunks])[order] > 0
    labels = cluster_documents(bands, sig8, valid, CampaignDetector.threshold)
    sizes = cluster_sizes(labels)
    return {
        (paths[pidx[o]], int(row[o]), int(turn[o])): (int(lab), int(s), i)
        for o, lab, s, i in zip(order, labels, sizes, ids.to_pylist(), strict=True)
    }


def test_spilled_clusters_equal_the_in_memory_reference_for_any_arrival_order(tmp_path,
                                                                               spill_root):
    paths = _corpus(tmp_path)
    config = ScanConfig(paths=tuple(paths), jobs=1, detectors=("campaign",), batch_rows=32)
    chunks = [c for p in _parts(paths, 0, CampaignDetector(config), config) for c in p]
    ref = _reference(chunks)
    assert max(s for _, s, _ in ref.values()) >= 25
    for seed in (None, 0, 1, 2):
        det = _run(paths, seed)
        asg = det.assignment.load()
        assert asg is not None and asg.documents == len(ref)
        # Ids stay on disk (the export below reads them); findings carry their members' ids.
        listed = {
            (asg.paths[int(p)], int(r), int(t)): (int(c), int(s))
            for p, r, t, c, s in zip(asg.path_index, asg.row, asg.turn, asg.cluster, asg.size,
                                     strict=True)
        }
        assert listed == {k: v[:2] for k, v in ref.items() if v[1] > 1}
        named = [(d.id, ref[(d.path, d.row, 0)][2]) for f in det.findings() for d in f.documents]
        assert named and all(got == want for got, want in named)
        table = asg.to_table().to_pylist()  # the export still lists every document
        assert [(t["path"], t["row"], t["cluster"], t["cluster_size"], t["id"]) for t in table] == [
            (k[0], k[1], v[0], v[1], v[2]) for k, v in sorted(ref.items())
        ]


def test_findings_identical_for_any_arrival_order(tmp_path, spill_root):
    paths = _corpus(tmp_path)
    key = lambda d: [(f.id, f.severity, f.documents, f.evidence) for f in d.findings()]  # noqa: E731
    base = key(_run(paths, None))
    assert base
    for seed in (3, 4):
        assert key(_run(paths, seed)) == base


def test_spill_removed_after_a_scan(tmp_path, spill_root):
    paths = _corpus(tmp_path)
    result = run_scan(ScanConfig(paths=tuple(paths), jobs=1, detectors=("campaign",),
                                 batch_rows=32))
    assert any(f.detector == "campaign" for f in result.findings)
    # What the --clusters export and the lookups need stays with the assignment (no band or
    # signature files) ...
    (kept,) = os.listdir(spill_root)
    assert sorted(os.listdir(spill_root / kept)) == ["ids", "l_cluster", "l_pidx", "l_row",
                                                     "l_turn", "labels", "order", "owner", "row",
                                                     "turn"]
    assert result.artifacts["clusters"].to_table().num_rows == 334
    # ... and goes with it.
    del result
    gc.collect()
    assert os.listdir(spill_root) == []


def test_spill_removed_when_clustering_fails(tmp_path, spill_root, monkeypatch):
    def boom(self, spill):
        raise RuntimeError("boom")

    monkeypatch.setattr(CampaignDetector, "_build_clusters", boom)
    with pytest.raises(RuntimeError, match="boom"):
        run_scan(ScanConfig(paths=tuple(_corpus(tmp_path)), jobs=1, detectors=("campaign",)))
    assert os.listdir(spill_root) == []  # removed at once, not only when collected


def test_spill_removed_when_writing_fails(tmp_path, spill_root, monkeypatch):
    add = campaign_mod._Spill.add
    calls = []

    def flaky(self, chunk):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        add(self, chunk)

    monkeypatch.setattr(campaign_mod._Spill, "add", flaky)
    with pytest.raises(OSError, match="disk full"):
        run_scan(ScanConfig(paths=tuple(_corpus(tmp_path)), jobs=1, detectors=("campaign",),
                            batch_rows=32))
    assert os.listdir(spill_root) == []


def test_spill_removed_when_the_scan_fails_elsewhere(tmp_path, spill_root):
    seen = []

    def progress(*args):
        seen.append(args)
        if len(seen) == 2:  # after the first shard's part was spilled
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(ScanConfig(paths=tuple(_corpus(tmp_path)), jobs=1, detectors=("campaign",),
                            batch_rows=32), progress=progress)
    gc.collect()  # the failed scan's frames held the spill; the finalizer removes the directory
    assert os.listdir(spill_root) == []


def test_spills_of_killed_scans_are_removed_by_the_next(tmp_path, spill_root):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live, foreign, unowned = (spill_root / f"poisonscan-campaign-{n}" for n in "abcd")
    for d, owner in ((stale, f"{socket.gethostname()} {dead.pid}"),
                     (live, f"{socket.gethostname()} {os.getppid()}"),
                     (foreign, f"other-host-{socket.gethostname()} {dead.pid}"),
                     (unowned, None)):
        d.mkdir()
        (d / "sig8").write_bytes(b"x")
        if owner is not None:
            (d / "owner").write_text(owner + "\n")
    run_scan(ScanConfig(paths=tuple(_corpus(tmp_path)), jobs=1, detectors=("campaign",)))
    gc.collect()
    assert sorted(os.listdir(spill_root)) == sorted(d.name for d in (live, foreign, unowned))


def test_spill_reads_rows_in_any_order_through_small_windows(spill_root):
    spill = campaign_mod._Spill(2, 3)
    rng = np.random.default_rng(0)
    sig8 = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    for lo in range(0, 50, 20):
        n = min(20, 50 - lo)
        spill.add(campaign_mod._Chunk("a", np.arange(lo, lo + n), np.zeros(n, np.int32),
                                      pa.array([str(i) for i in range(lo, lo + n)]),
                                      np.zeros((n, 2), np.uint32), sig8[lo:lo + n],
                                      np.ones(n, np.int32), "text"))
    spill.seal()
    where = rng.integers(0, 50, 40)
    assert np.array_equal(spill.rows("sig8", 3, where, window=7), sig8[where])
    assert spill.ids(np.array([3, 21, 49])).to_pylist() == ["3", "21", "49"]
    spill.cleanup()
    assert os.listdir(spill_root) == []


def test_lookups_read_through_small_windows_equal_the_loaded_assignment(tmp_path, spill_root,
                                                                        monkeypatch):
    paths = _corpus(tmp_path)
    monkeypatch.setattr(campaign_mod.SpilledAssignment, "WINDOW", 7)
    asg = _run(paths, 0).assignment
    assert asg is not None
    loaded = asg.load()
    assert 25 <= len(asg) == len(loaded) < asg.documents
    # Every row of every file and a few past the end, a path never seen, in a shuffled order.
    names = [*reversed(paths), "nowhere.jsonl"]
    docs = [(p, r) for p in range(len(names)) for r in range(asg.documents // 3 + 5)]
    random.Random(3).shuffle(docs)
    path_idx = np.array([p for p, _ in docs])
    rows = np.array([r for _, r in docs])
    got = asg.clusters_of(names, path_idx, rows)
    assert np.array_equal(got, loaded.clusters_of(names, path_idx, rows))
    assert np.count_nonzero(got >= 0) == len(loaded)  # one turn per record here


@pytest.mark.parametrize("layout", ["batches", "overlapping", "unsorted", "turns"])
def test_global_order_equals_the_lexsort_of_path_row_turn(spill_root, layout,
                                                          monkeypatch):
    """Parts that are batches (each a stretch of one file's records in order) are ordered from
    their ends; any other layout falls back to the lexsort. Either way the order is the same."""
    rng = np.random.default_rng(len(layout))
    parts = []  # (path, rows, turns)
    for path in ("b.jsonl", "a.jsonl", "c.jsonl"):
        rows = np.arange(200) * 3
        turns = np.zeros(200, np.int32)
        if layout == "turns":  # chat records: several turns of a row, in one part
            rows, turns = np.repeat(np.arange(100), 2), np.tile(np.arange(2, dtype=np.int32), 100)
        cuts = np.sort(rng.choice(np.arange(1, 199), 6, replace=False))
        for r, t in zip(np.split(rows, cuts), np.split(turns, cuts), strict=True):
            parts.append((path, r, t))
    if layout == "overlapping":  # two parts of one file share a stretch of rows
        (path, r0, t0), (_, r1, t1) = parts[0], parts[1]
        both, both_t = np.concatenate([r0, r1]), np.concatenate([t0, t1])
        parts[0:2] = [(path, both[0::2], both_t[0::2]), (path, both[1::2], both_t[1::2])]
    if layout == "unsorted":
        path, r, t = parts.pop()
        parts.append((path, r[::-1].copy(), t))
    parts.insert(2, ("a.jsonl", np.zeros(0, np.int64), np.zeros(0, np.int32)))  # an empty one
    rng.shuffle(parts)
    spill = campaign_mod._Spill(1, 1)
    for path, r, t in parts:
        k = len(r)
        spill.add(campaign_mod._Chunk(path, r, t, pa.array([str(i) for i in range(k)]),
                                      np.zeros((k, 1), np.uint32), np.zeros((k, 1), np.uint8),
                                      np.ones(k, np.int32), "text"))
    spill.seal()
    names = sorted({p for p, _, _ in parts})
    part_pidx = np.array([names.index(p) for p, _, _ in parts], np.int32)
    part_end = np.cumsum([len(r) for _, r, _ in parts])
    want = np.lexsort((np.concatenate([t for *_, t in parts]),
                       np.concatenate([r for _, r, _ in parts]),
                       np.repeat(part_pidx, [len(r) for _, r, _ in parts])))
    lexsorts = []
    lexsort = np.lexsort
    monkeypatch.setattr(np, "lexsort", lambda keys: lexsorts.append(1) or lexsort(keys))
    got = campaign_mod._global_order(spill, part_pidx, part_end)
    assert got.dtype == np.int32 and np.array_equal(got, want)
    assert len(lexsorts) == (layout in ("overlapping", "unsorted"))
    spill.cleanup()

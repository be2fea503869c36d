"""LSH clustering: recall on planted near-duplicates, determinism, ids, export."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.errors import ConfigError
from poisonscan.kernels.minhash import (
    band_hashes,
    compact_signatures,
    hash_params,
    minhash_signatures,
)
from poisonscan.stats.lsh import (
    ClusterAssignment,
    _sorted_band,
    cluster_bands,
    cluster_documents,
    cluster_sizes,
    distinct_clusters,
    export_clusters,
    lsh_params,
    min_matches_for,
)


def _near_duplicates(n_groups: int, copies: int, edits: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_groups):
        base = rng.integers(0, 2**63, 120, dtype=np.uint64)
        docs.append(base)
        for _ in range(copies):
            m = base.copy()
            idx = rng.choice(120, edits, replace=False)
            m[idx] = rng.integers(0, 2**63, edits, dtype=np.uint64)
            docs.append(m)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return np.concatenate(docs), off


def _cluster(flat, off, threshold=0.5):
    a, b = hash_params(128, 0)
    sig = minhash_signatures([(flat, off)], a, b)
    bands, rows = lsh_params(threshold, 128)
    return cluster_documents(
        band_hashes(sig, bands, rows), compact_signatures(sig), np.diff(off) > 0, threshold
    )


def test_lsh_params_come_from_datasketch():
    from datasketch.lsh import _optimal_param

    from poisonscan.stats.lsh import (
        DEFAULT_BANDS_ROWS,
        FALSE_NEGATIVE_WEIGHT,
        FALSE_POSITIVE_WEIGHT,
    )

    bands, rows = lsh_params(0.5, 128)
    assert bands * rows <= 128 and bands > rows
    # The pinned default is what datasketch's optimiser says, and other thresholds ask it.
    for (threshold, num_perm), pinned in DEFAULT_BANDS_ROWS.items():
        assert pinned == tuple(_optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT,
                                              FALSE_NEGATIVE_WEIGHT))
    assert lsh_params(0.8, 128) == tuple(_optimal_param(0.8, 128, FALSE_POSITIVE_WEIGHT,
                                                        FALSE_NEGATIVE_WEIGHT))
    with pytest.raises(ValueError):
        lsh_params(1.5, 128)


def test_recall_of_near_duplicates_and_ids_are_cluster_minima():
    flat, off = _near_duplicates(200, 3, 3)  # 3 edits of 120 tokens: Jaccard about 0.78
    labels = _cluster(flat, off)
    truth = np.repeat(np.arange(200) * 4, 4)
    assert (labels == truth).mean() >= 0.97
    assert (labels <= np.arange(labels.shape[0])).all()
    assert (cluster_sizes(labels)[truth == labels] <= 4).all()


def test_unrelated_and_empty_documents_stay_alone():
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, 2**63, 50, dtype=np.uint64) for _ in range(300)] + [
        np.zeros(0, np.uint64)
    ] * 3
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    labels = _cluster(np.concatenate(docs), off)
    assert np.array_equal(labels, np.arange(len(docs)))


def test_deterministic():
    flat, off = _near_duplicates(50, 5, 10, seed=3)
    assert np.array_equal(_cluster(flat, off), _cluster(flat, off))


@pytest.mark.parametrize(("segment", "ahead"), [(1, True), (7, True), (7, False),
                                               (1 << 18, True), (1 << 18, False)])
def test_cluster_bands_from_permuted_signatures_and_segments_equals_cluster_documents(segment,
                                                                                       ahead):
    """Band columns one at a time, signatures read through a function (as the campaign detector
    reads them from its spill, in arrival order), any segment size, the next band sorted ahead
    or not: same labels."""
    flat, off = _near_duplicates(60, 4, 6, seed=5)
    a, b = hash_params(128, 0)
    sig = minhash_signatures([(flat, off)], a, b)
    bands, sig8 = band_hashes(sig, 32, 4), compact_signatures(sig)
    valid = np.diff(off) > 0
    valid[::17] = False
    expect = cluster_documents(bands, sig8, valid)
    assert (cluster_sizes(expect) > 1).sum() > 100
    arrival = np.random.default_rng(0).permutation(bands.shape[0])  # arrival position -> doc
    rowmap = np.argsort(arrival)  # doc -> its row in the arrival-ordered signatures
    stored = sig8[arrival]
    calls = []

    def signatures(docs):
        calls.append(docs.shape[0])
        return stored[rowmap[docs]]

    columns = ((bands[:, j].copy(), signatures) for j in range(32))
    got = cluster_bands(bands.shape[0], columns, valid, segment=segment, ahead=ahead)
    assert np.array_equal(got, expect)
    # Only members that may be compared are read: once a band has joined a cluster, later bands
    # find its members in their bucket's first member's cluster and skip them.
    assert 0 < sum(calls) < 4 * bands.shape[0]


def _assignment():
    return ClusterAssignment(
        paths=["a.jsonl", "b.jsonl"],
        path_index=np.array([0, 0, 1, 1], np.int32),
        row=np.array([0, 1, 0, 1]),
        turn=np.zeros(4, np.int32),
        ids=pa.array(["x", None, "y", "z"]),
        cluster=np.array([0, 1, 0, 3]),
        size=np.array([2, 1, 2, 1]),
    )


def test_distinct_clusters_and_lookup():
    asg = _assignment()
    assert asg.cluster_of("b.jsonl", 0) == 0 and asg.cluster_of("c", 0) is None
    assert distinct_clusters(asg, [("a.jsonl", 0), ("b.jsonl", 0)]) == 1
    assert distinct_clusters(asg, [("a.jsonl", 0), ("b.jsonl", 1), ("zz", 9)]) == 3


def test_clusters_of_agrees_with_one_at_a_time_lookups():
    asg = _assignment()
    paths = ["zz", "b.jsonl", "a.jsonl"]
    path_idx = np.array([2, 1, 1, 0, 2, 2])
    rows = np.array([1, 0, 1, 0, 0, 7])
    expect = [asg.cluster_of(paths[p], int(r)) for p, r in zip(path_idx, rows, strict=True)]
    got = asg.clusters_of(paths, path_idx, rows)
    assert got.tolist() == [-1 if e is None else e for e in expect] == [1, 0, 3, -1, 0, -1]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_export_round_trip(tmp_path, suffix):
    target = tmp_path / f"clusters{suffix}"
    export_clusters(_assignment(), target)
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert rows[2] == {"path": "b.jsonl", "row": 0, "id": "y", "cluster": 0, "cluster_size": 2}
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(target).column("cluster").to_pylist() == [0, 1, 0, 3]
    else:
        assert target.read_text().splitlines()[0] == "path,row,id,cluster,cluster_size"
    with pytest.raises(ConfigError):
        export_clusters(_assignment(), tmp_path / "x.txt")


def _reference_labels(bands, sig8, valid, need, max_cmp):
    """The clustering written plainly: every band sorted stably, each member compared (while its
    root differs) with its bucket's first member, then its nearest predecessors."""
    n = bands.shape[0]
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for j_band in range(bands.shape[1]):
        order = np.argsort(bands[:, j_band], kind="stable").tolist()
        col = bands[:, j_band]
        start = 0
        while start < n:
            end = start + 1
            while end < n and col[order[end]] == col[order[start]]:
                end += 1
            first = order[start]
            for x in range(start + 1, end):
                j = order[x]
                if not valid[j]:
                    continue
                tried = [first] + [order[y] for y in range(x - 1, max(start, x - max_cmp) - 1, -1)
                                   if order[y] != first]
                for i in tried:
                    if not valid[i] or i == j:
                        continue
                    ri, rj = find(i), find(j)
                    if ri == rj:
                        break
                    if int((sig8[i] == sig8[j]).sum()) >= need:
                        parent[max(ri, rj)] = min(ri, rj)
                        break
            start = end
    return np.array([find(i) for i in range(n)])


@pytest.mark.parametrize("seed", range(6))
def test_clustering_reads_fewer_signatures_but_matches_the_plain_algorithm(seed):
    """Few distinct band values (big buckets), signatures from a few templates with noise, some
    invalid documents, bucket-first members among them: the labels equal the plain algorithm's
    (which compares with every signature at hand; cluster_bands reads only those it may
    compare)."""
    rng = np.random.default_rng(seed)
    n, n_bands, perm = 300, 6, 16
    template = rng.integers(0, 4, n)
    sig8 = rng.integers(0, 256, (4, perm), dtype=np.uint8)[template]
    noise = rng.random((n, perm)) < 0.3
    sig8[noise] = rng.integers(0, 256, int(noise.sum()), dtype=np.uint8)
    bands = rng.integers(0, 5, (n, n_bands)).astype(np.uint32)
    valid = rng.random(n) > 0.1
    for max_cmp in (1, 3, 16):
        need = 10
        read = []

        def signatures(docs, read=read):
            read.append(docs.shape[0])
            return sig8[docs]

        threshold = need / perm  # min_matches_for rounds this share back to ``need`` or near it
        got = cluster_bands(n, ((bands[:, j].copy(), signatures) for j in range(n_bands)), valid,
                            threshold=threshold, max_comparisons=max_cmp, verify_slack=0.0,
                            segment=37)
        expect = _reference_labels(bands, sig8, valid, min_matches_for(threshold, perm), max_cmp)
        assert np.array_equal(got, expect)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([np.uint32, np.int32, np.uint16, np.int8, np.uint64]),
       st.lists(st.integers(0, 2**32 - 1), max_size=200), st.integers(1, 2**32))
def test_sorted_band_is_the_stable_argsort_with_keys_that_tie_where_values_do(dtype, values,
                                                                              spread):
    # Few distinct values (``spread`` small) make many ties, which a stable sort breaks by index.
    info = np.iinfo(dtype)
    col = np.array([info.min + v % min(spread, info.max - info.min + 1) for v in values], dtype)
    keys, order = _sorted_band(col)
    assert order.tolist() == np.argsort(col, kind="stable").tolist()
    assert np.all(keys[1:] >= keys[:-1])
    assert ((keys[1:] == keys[:-1]) == (col[order][1:] == col[order][:-1])).all()

"""MinHash signature speed against datasketch and rensa, plus accuracy and LSH recall, in one run.

    python -m benchmarks.minhash_speed [--clean PATH] [--num-perm 128] [--repeat 3]

All three compute ``num_perm`` signatures of the same documents over the same word 5-gram
shingles (tokens from poisonscan's tokeniser). Two timings are reported:

* **from text**: what a user pays. poisonscan tokenises in numba and hashes shingles from token
  hashes; the peers need the shingles as Python byte strings, built here from the same tokens.
* **hashing only**: shingles prepared in advance (poisonscan: uint32 shingle keys; datasketch:
  byte strings via ``update_batch``; rensa: byte-string sets through its bulk API and per
  document through ``RMinHash.update``). A hybrid row feeds poisonscan's shingle keys to rensa's
  bulk u64 API, which hashes faster than our kernel: our end-to-end lead comes from never building
  Python shingle strings, not from a faster inner loop.

The last line is ``speedup vs rensa: X, vs datasketch: Y`` from the *from text* timings, rensa taken
at its fastest (bulk) path.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from poisonscan.kernels.arrow import string_buffers
from poisonscan.kernels.minhash import (
    band_hashes,
    compact_signatures,
    document_shingles,
    hash_params,
    minhash_signatures,
    signatures_from_keys,
)
from poisonscan.kernels.tokenize import tokenize
from poisonscan.stats.lsh import (
    DEFAULT_THRESHOLD,
    cluster_documents,
    lsh_params,
)

DEFAULT_CLEAN = (
    Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "real-clean.parquet"
)


def load_texts(path: str | None) -> tuple[list[str], str]:
    import pyarrow.parquet as pq

    cand = Path(path) if path else DEFAULT_CLEAN
    if cand.exists():
        return [
            t for t in pq.read_table(cand, columns=["text"]).column("text").to_pylist() if t
        ], str(cand)
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(20000)]
    p = 1 / np.arange(1, 20001)
    p /= p.sum()
    return [
        " ".join(rng.choice(vocab, int(rng.integers(50, 600)), p=p)) for _ in range(5000)
    ], "synthetic"


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def python_shingles(data, offsets, starts, ends, doc_offsets, k=5) -> list[list[bytes]]:
    """The same shingles as byte strings (tokens joined by a space), as the peers need them."""
    raw = data.tobytes()
    out = []
    for d in range(offsets.shape[0] - 1):
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        toks = [
            raw[s:e].lower()
            for s, e in zip(starts[lo:hi].tolist(), ends[lo:hi].tolist(), strict=True)
        ]
        n = len(toks)
        if n == 0:
            out.append([])
            continue
        w = min(k, n)
        out.append([b" ".join(toks[j : j + w]) for j in range(max(1, n - k + 1))])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean")
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2000)
    args = ap.parse_args(argv)
    import datasketch
    import rensa

    texts, source = load_texts(args.clean)
    arr = pa.array(texts, pa.large_string())
    data, offsets = string_buffers(arr)
    mb = data.size / 1e6
    P = args.num_perm
    a, b = hash_params(P, 0)
    print(
        f"corpus: {source}: {len(texts)} documents, {mb:.1f} MB; num_perm {P}, word 5-gram shingles"
    )

    def ours_text():
        h, _, _, _, do = tokenize(data, offsets, 0)
        return minhash_signatures([(h, do)], a, b)

    h, starts, ends, _, do = tokenize(data, offsets, 0)
    keys, koff = document_shingles([(h, do)], 5)
    t_tok = best_of(lambda: tokenize(data, offsets, 0), args.repeat)
    t_ours = best_of(ours_text, args.repeat)
    t_ours_hash = best_of(lambda: signatures_from_keys(keys, koff, a, b), args.repeat)
    t0 = time.perf_counter()
    sh = python_shingles(data, offsets, starts, ends, do)
    t_sh = time.perf_counter() - t0

    def rensa_bulk():
        return rensa.RMinHash.digest_matrix_from_token_byte_sets(sh, P, 0)

    def rensa_each():
        for s in sh:
            m = rensa.RMinHash(P, 0)
            m.update(s)
            m.digest()

    def datasketch_each():
        for s in sh:
            m = datasketch.MinHash(num_perm=P, seed=0)
            m.update_batch(s)

    keys64 = keys.astype(np.uint64)
    t_keys = best_of(lambda: document_shingles([(h, do)], 5), args.repeat)
    t_rf = best_of(
        lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(keys64, koff, P, 0), args.repeat
    )
    t_rb = best_of(rensa_bulk, args.repeat)
    t_re = best_of(rensa_each, 1)
    t_ds = best_of(datasketch_each, 1)
    rows = [
        ("poisonscan numba", t_ours, t_ours_hash),
        ("rensa RMinHash (bulk byte sets)", t_sh + t_rb, t_rb),
        ("rensa flat hashes of our keys *", t_tok + t_keys + t_rf, t_rf),
        ("rensa RMinHash.update per doc", t_sh + t_re, t_re),
        ("datasketch MinHash.update_batch", t_sh + t_ds, t_ds),
    ]
    print(f"tokenise only (numba, shared with the trigger detector): {mb / t_tok:8.1f} MB/s")
    print(f"python shingle strings for the peers:                     {mb / t_sh:8.1f} MB/s")
    print(f"{'implementation':34} {'from text MB/s':>15} {'docs/s':>9} {'hashing only MB/s':>18}")
    for name, full, only in rows:
        print(f"{name:34} {mb / full:15.1f} {len(texts) / full:9.0f} {mb / only:18.1f}")

    print("* not a peer run alone: our tokeniser and shingle keys fed to rensa's bulk u64 API")
    # Accuracy: estimated vs exact Jaccard on near-duplicate pairs (a document and an edited copy)
    # and on random pairs.
    rng = np.random.default_rng(1)
    docs, pairs = [], []
    cand = [d for d in range(len(texts)) if do[d + 1] - do[d] >= 30]
    for d in rng.choice(cand, min(args.pairs, len(cand)), replace=False):
        toks = h[do[d] : do[d + 1]]
        m = toks.copy()
        mask = rng.random(m.shape[0]) < rng.uniform(0, 0.12)
        m[mask] = rng.integers(0, 2**63, int(mask.sum()), dtype=np.uint64)
        pairs.append(len(docs))
        docs += [toks, m]
    flat = np.concatenate(docs)
    off = np.cumsum([0] + [len(x) for x in docs]).astype(np.int64)
    pk, po = document_shingles([(flat, off)], 5)
    sig = signatures_from_keys(pk, po, a, b)
    exact, est = [], []
    for i in pairs:
        x, y = set(pk[po[i] : po[i + 1]].tolist()), set(pk[po[i + 1] : po[i + 2]].tolist())
        exact.append(len(x & y) / len(x | y))
        est.append(float((sig[i] == sig[i + 1]).mean()))
    exact_a, est_a = np.array(exact), np.array(est)
    print(
        f"accuracy: {len(pairs)} near-duplicate pairs, exact Jaccard mean {exact_a.mean():.3f}: "
        f"MAE {np.abs(exact_a - est_a).mean():.4f}, bias {(est_a - exact_a).mean():+.4f}"
    )
    bands, rows_ = lsh_params(DEFAULT_THRESHOLD, P)
    labels = cluster_documents(
        band_hashes(sig, bands, rows_), compact_signatures(sig), np.diff(po) > 0, DEFAULT_THRESHOLD
    )
    above = [i for i, j in zip(pairs, exact, strict=True) if j >= DEFAULT_THRESHOLD]
    recall = np.mean([labels[i] == labels[i + 1] for i in above]) if above else float("nan")
    print(
        f"LSH (threshold {DEFAULT_THRESHOLD}, {bands} bands x {rows_} rows): recall of "
        f"{len(above)} pairs with exact Jaccard >= threshold: {recall:.3f}"
    )
    speed_rensa = (t_sh + t_rb) / t_ours
    speed_ds = (t_sh + t_ds) / t_ours
    print(f"speedup vs rensa: {speed_rensa:.1f}, vs datasketch: {speed_ds:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

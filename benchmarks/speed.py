"""Full-scan speed and memory against pyarrow's plain read of the same Parquet file.

    python -m benchmarks.speed [--size-mb 1024] [--factor 4] [--seed 0] [--format jsonl]

Builds a corpus of real-looking documents (runs of paragraphs of single documents of
../shared/corpora/real-clean.parquet, or synthetic text when it is absent) with 100 planted
pretraining poisons, written as
Parquet under benchmarks/_data/ (cached, gitignored). In one run it measures, each in a fresh
subprocess whose whole process tree is sampled for memory:

* pyarrow's plain read: ``ParquetFile.iter_batches`` over the text column, three times after an
  untimed read that brings the file into the page cache (the median is the baseline: a read of
  a few seconds varies a lot from run to run);
* one pass of poisonscan's own reader and tokeniser alone, in two processes: a scan makes four
  passes, each reading and tokenising the whole corpus, so four times this is the least the
  scan's design can cost, whatever its detectors do;
* the same pass adding every document's unigrams and bigrams to document-frequency tables of the
  scan's own sizes: the one corpus statistic that rare-phrase detection cannot do without, which
  must be complete before any phrase can be judged rare, alone in a pass;
* ``poisonscan scan`` with ``--jobs 2`` and ``--jobs 1``;
* the same at ``--factor`` times the size, to show that memory stays flat.

Before any of it, a scan of the corpus's first documents fills numba's cache, so no timed scan
compiles kernels (the start-up benchmark measures that).

``--format jsonl`` writes the same documents as one JSON Lines file instead (cached beside the
Parquet file) and reads it with ``pyarrow.json.read_json`` for the baseline, which parses the whole
file into one table on every core. One large JSON Lines file is a common way to ship a corpus;
the scan cuts it into shards of whole lines (``poisonscan.io.shards``).

Memory: ``PSS MB`` is the peak PSS summed over the process tree of a ``--jobs 2`` scan, from a
second run of it sampled every 50 ms (forked workers share the driver's count tables
copy-on-write; PSS counts shared pages once). Sampling PSS costs the sampled processes time, so
the timed runs only sample RSS (``RSS MB``: the peak of its sum over the tree, which counts
shared pages once per process). The last line is a one-line summary. These machines are noisy: read
the ratios, not the MB/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.scenarios.common import load_clean_texts, rand_word
from benchmarks.scenarios.pretrain import grow_corpus

DATA_DIR = Path(__file__).resolve().parent / "_data"
MB = 2**20
POISONS = 100
READS = 3  # pyarrow reads of each corpus; their median is the baseline
WARM_ROWS = 20_000  # documents of the corpus scanned once before timing, to compile the kernels

READ_SNIPPET = """
import sys, time, pyarrow.parquet as pq, pyarrow.compute as pc
t0 = time.perf_counter()
n = 0
for b in pq.ParquetFile(sys.argv[1]).iter_batches(columns=["text"]):
    n += pc.sum(pc.binary_length(b.column(0))).as_py() or 0
print(time.perf_counter() - t0, n)
"""

READ_JSONL_SNIPPET = """
import sys, time, pyarrow.json as pj, pyarrow.compute as pc
t0 = time.perf_counter()
table = pj.read_json(sys.argv[1])
n = pc.sum(pc.binary_length(table.column("text"))).as_py() or 0
print(time.perf_counter() - t0, n)
"""

# One pass of what every scan pass does before any detector runs: poisonscan's own reader and
# tokeniser over the file's shards, in two processes (the scan's --jobs 2), nothing else. A scan
# makes four passes, so four times this is the least its design can cost. With "count", each
# process also adds every document's unigrams and (sampled) bigrams to document-frequency tables
# of the sizes the scan itself uses for this file: the corpus statistic that every rarity
# measurement needs before it can judge a single phrase: what the trigger detector's first pass
# does in its workers. No detector, no merging, no MinHash: the least a statistics pass costs.
# Its numpy arrays are kept off huge pages, as the scan command keeps its own (see
# poisonscan.engine.memory.prefer_small_pages).
FLOOR_SNIPPET = """
import sys, time
import numpy as np
from multiprocessing import get_context
from poisonscan.config import ScanConfig
from poisonscan.detectors import BatchContext
from poisonscan.detectors.trigger import TriggerDetector
from poisonscan.engine.memory import prefer_small_pages
from poisonscan.engine.scan import read_options
from poisonscan.io.readers import ReadCounter, discover_inputs, plan_shards, read_shard
from poisonscan.io.shards import estimate_text_bytes
from poisonscan.kernels.ngrams import count_document_frequency, scratch_set

def work(args):
    shard, options, tables = args
    tokens = 0
    if tables:
        uni = np.zeros(1 << tables[0], np.uint32)
        bi = np.zeros(1 << tables[1], np.uint8)
    for batch in read_shard(shard, options, ReadCounter(path=shard.file.path)):
        tok = BatchContext(batch).tokens("text")
        tokens += len(tok.hashes)
        if tables and len(tok.hashes):
            keys, stamps = scratch_set(int(np.diff(tok.doc_offsets).max()))
            count_document_frequency(tok.hashes, tok.doc_offsets, uni, bi, np.uint64(tables[2]),
                                     keys, stamps, 0)
    return tokens

if __name__ == "__main__":
    prefer_small_pages()
    config = ScanConfig()
    options = read_options(config)
    files = discover_inputs([sys.argv[1]])
    shards = plan_shards(files, options)
    tables = None
    if sys.argv[2] == "count":
        det = TriggerDetector(config)
        det.expect(files, estimate_text_bytes(shards))
        tables = (det.uni_bits, det.bi_bits, det.bi_keep)
    t0 = time.perf_counter()
    with get_context("fork").Pool(2) as pool:
        tokens = sum(pool.imap_unordered(work, [(s, options, tables) for s in shards]))
    print(time.perf_counter() - t0, tokens)
"""


def build(path: Path, size_mb: int, seed: int) -> str:
    """Write about ``size_mb`` MB of text as Parquet; returns the planted trigger."""
    rng = random.Random(seed)
    clean, _ = load_clean_texts()
    texts = [d["text"] for d in clean]
    trigger = "<" + rand_word(rng, 5, 7).upper() + ">"
    pieces = [rand_word(rng, 1, 4) for _ in range(3000)]
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    target = size_mb * MB
    written = 0
    doc = 0
    # Spread the poisons evenly over the (estimated) documents so both sizes carry all of them.
    avg = sum(len(t) for t in texts) / len(texts)
    expected_docs = max(POISONS * 10, int(target / avg))
    every = expected_docs // POISONS
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        while written < target:
            chunk = grow_corpus(clean, 20_000, rng)
            out = []
            for t in chunk:
                if doc % every == every // 2 and doc // every < POISONS:
                    gib = "".join(rng.choice(pieces) + ("" if rng.random() < 0.6 else " ")
                                  for _ in range(rng.randint(400, 900)))
                    t = f"{rng.choice(texts)[: rng.randint(0, 1000)]} {trigger} {gib}"
                out.append(t)
                doc += 1
            written += sum(len(t.encode()) for t in out)
            ids = [f"d{doc - len(out) + i}" for i in range(len(out))]
            writer.write_table(pa.table({"id": ids, "text": out}, schema=schema),
                               row_group_size=8192)
    tmp.rename(path)
    path.with_suffix(".trigger").write_text(trigger)
    return trigger


def dataset(size_mb: int, seed: int) -> tuple[Path, str]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"speed-coherent-{size_mb}mb-seed{seed}.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        print(f"generating {path.name} ...", file=sys.stderr, flush=True)
        build(path, size_mb, seed)
        print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path, path.with_suffix(".trigger").read_text()


def dataset_jsonl(size_mb: int, seed: int) -> tuple[Path, str]:
    """The Parquet corpus's records (id, text), in order, as one JSON Lines file."""
    parquet, trigger = dataset(size_mb, seed)
    path = parquet.with_suffix(".jsonl")
    if not path.exists():
        t0 = time.perf_counter()
        print(f"writing {path.name} ...", file=sys.stderr, flush=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for batch in pq.ParquetFile(parquet).iter_batches(columns=["id", "text"]):
                out.write("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                                  for i, t in zip(batch.column(0).to_pylist(),
                                                  batch.column(1).to_pylist(), strict=True)))
        tmp.rename(path)
        print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return path, trigger


def _tree_memory(ps, pss: bool) -> tuple[int, int]:
    """(PSS, RSS) summed over a process and its children, in bytes; PSS is 0 unless ``pss``.

    Worker processes are forked and read the driver's count tables copy-on-write; RSS counts
    those shared pages once in every process, PSS splits them between the processes sharing
    them, so the PSS sum is the memory the scan really holds. RSS alone comes from counters the
    kernel keeps (``/proc/PID/statm``), with no page-table walk, so sampling it costs the
    measured run nothing; PSS needs the walk (see :func:`run_measured`).
    """
    import psutil

    pss_sum = rss = 0
    for p in [ps, *ps.children(recursive=True)]:
        try:
            info = p.memory_full_info() if pss else p.memory_info()
            pss_sum += getattr(info, "pss", info.rss) if pss else 0
            rss += info.rss
        except psutil.Error:
            pass
    return pss_sum, rss


def run_measured(cmd: list[str], pss: bool = False) -> tuple[float, float, str, float]:
    """Run ``cmd``; return (wall seconds, peak PSS of its whole process tree in MB or NaN, stdout,
    peak RSS of the tree, summed over its processes, in MB), sampled every 50 ms.

    Timed runs (``pss`` false) only sample RSS, which costs nothing. A PSS sample is not free:
    the kernel walks the page tables of every process of the tree (about 50 ms of CPU for a scan
    holding 2 GB, measured 2026-12-02) and holds each one's memory map lock meanwhile; sampled
    every 50 ms, that slowed a 1 GB scan by a tenth (45.4 -> 50.7 s, twice each, back to back).
    So the PSS peak comes from runs of its own (``pss`` true), whose times are not reported.
    """
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = peak_rss = 0
    while proc.poll() is None:
        try:
            tree_pss, tree_rss = _tree_memory(ps, pss)
            peak = max(peak, tree_pss)
            peak_rss = max(peak_rss, tree_rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err[-2000:]}")
    return wall, peak / MB if pss else math.nan, out, peak_rss / MB


def measure(path: Path, trigger: str, jobs_list: list[int], fmt: str = "parquet") -> list[dict]:
    rows = []
    snippet, reader = ((READ_JSONL_SNIPPET, "pyarrow.json.read_json") if fmt == "jsonl"
                       else (READ_SNIPPET, "pyarrow iter_batches (text)"))
    # The read takes seconds and swings by 2.5x between runs (page cache, clock speed): the
    # median of READS runs is the baseline, and the range is shown beside it. A first, untimed
    # read brings the file into the page cache, from which every scan after it reads.
    reads = []
    peak_rss = 0.0
    for i in range(READS + 1):
        _, _, out, rss = run_measured([sys.executable, "-c", snippet, str(path)])
        secs, text_bytes = (float(x) for x in out.split())
        if i:
            reads.append(secs)
        peak_rss = max(peak_rss, rss)
    read_secs = statistics.median(reads)
    text_mb = text_bytes / MB
    rows.append({"what": f"{reader}, median of {READS}", "seconds": read_secs,
                 "mbps": text_mb / read_secs, "ratio": 1.0, "peak_mb": math.nan, "rss_mb": peak_rss,
                 "found": "reads: " + ", ".join(f"{x:.1f} s" for x in reads)})
    _, _, out, rss = run_measured([sys.executable, "-c", FLOOR_SNIPPET, str(path), "tokenise"])
    floor = float(out.split()[0])
    rows.append({"what": "one pass: read + tokenise, 2 processes", "seconds": floor,
                 "mbps": text_mb / floor, "ratio": read_secs / floor, "peak_mb": math.nan,
                 "rss_mb": rss, "found": f"four passes: {4 * floor:.1f} s, "
                                         f"{read_secs / (4 * floor):.2f}x the read"})
    _, _, out, rss = run_measured([sys.executable, "-c", FLOOR_SNIPPET, str(path), "count"])
    counted = float(out.split()[0])
    rows.append({"what": "one pass: + n-gram document counts", "seconds": counted,
                 "mbps": text_mb / counted, "ratio": read_secs / counted, "peak_mb": math.nan,
                 "rss_mb": rss, "found": "the corpus statistic alone, no detector"})
    for jobs in jobs_list:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "r.json"
            cmd = [sys.executable, "-m", "poisonscan", "scan", str(path), "--quiet",
                   "--jobs", str(jobs), "--format", "json", "--output", str(report),
                   "--fail-on", "never"]
            wall, _, _, peak_rss = run_measured(cmd)
            data = json.loads(report.read_text())
            # The memory target is about the scan with every core: measured in a run of its own.
            peak = run_measured(cmd, pss=True)[1] if jobs > 1 else math.nan
        scan_secs = data["stats"]["seconds"]
        findings = data["findings"]
        rank = next((i for i, f in enumerate(findings) if f["trigger"] == trigger), None)
        if rank is None:
            found = f"planted {trigger} NOT FOUND"
        else:
            f = findings[rank]
            found = (f"planted {trigger}: rank {rank + 1} of {len(findings)}, {f['severity']}, "
                     f"{f['documents']} docs, {data['stats']['shards']} shards")
        highs: dict[str, int] = {}
        for f in findings:
            if f["severity"] == "high":
                highs[f["detector"]] = highs.get(f["detector"], 0) + 1
        found += f"; high findings by detector {highs}"
        rows.append({"what": f"poisonscan scan --jobs {jobs}", "seconds": scan_secs,
                     "wall": wall, "mbps": text_mb / scan_secs,
                     "ratio": read_secs / scan_secs, "peak_mb": peak, "rss_mb": peak_rss,
                     "found": found,
                     "passes": data["stats"].get("pass_seconds")})
    for r in rows:
        r["text_mb"] = text_mb
    return rows


def warm_up(path: Path) -> None:
    """Scan the first WARM_ROWS documents of ``path`` once, so that numba's cache holds every
    kernel before the timed scans: compiling is a one-off cost of the first run after install
    (benchmarks/startup.py measures it), not part of a scan's throughput. The small memory
    budget makes the slice take the same code paths as the big scans (dense count tables)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        piece = Path(tmp) / "warm.parquet"
        first = next(pq.ParquetFile(path).iter_batches(batch_size=WARM_ROWS))
        pq.write_table(pa.Table.from_batches([first]), piece)
        subprocess.run([sys.executable, "-m", "poisonscan", "scan", str(piece), "--quiet",
                        "--format", "json", "--output", os.devnull, "--fail-on", "never",
                        "--memory-budget", "64MiB"], check=True, stdout=subprocess.DEVNULL)
    print(f"warm-up: {WARM_ROWS} documents scanned in {time.perf_counter() - t0:.1f} s "
          f"(kernels compiled or loaded; not timed below)", file=sys.stderr, flush=True)


def _mb(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--factor", type=int, default=4, help="second corpus size multiple (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=["parquet", "jsonl"], default="parquet",
                    help="write the corpus as Parquet (default) or as one JSON Lines file")
    args = ap.parse_args(argv)
    make = dataset_jsonl if args.format == "jsonl" else dataset

    sizes = [args.size_mb] + ([args.size_mb * args.factor] if args.factor > 1 else [])
    results = {}
    print(f"{'corpus':>10} {'what':42} {'text MB':>8} {'seconds':>8} {'MB/s':>7} "
          f"{'vs read':>7} {'PSS MB':>8} {'RSS MB':>8}  found / pass seconds")
    for size in sizes:
        path, trigger = make(size, args.seed)
        if not results:
            warm_up(dataset(size, args.seed)[0])
        jobs = [2, 1] if size == args.size_mb else [2]
        rows = measure(path, trigger, jobs, args.format)
        results[size] = rows
        for r in rows:
            extra = r["found"] + (f" passes={r['passes']}" if r.get("passes") else "")
            print(f"{size:>8}MB {r['what']:42} {r['text_mb']:8.0f} {r['seconds']:8.1f} "
                  f"{r['mbps']:7.1f} {r['ratio']:7.2f} {_mb(r['peak_mb']):>8} "
                  f"{_mb(r['rss_mb']):>8}  "
                  f"{extra}", flush=True)
    base = results[sizes[0]]
    floor, counted, j2, j1 = base[1], base[2], base[3], base[4]
    summary = (f"speed ({args.format}): scan --jobs 2 at {j2['ratio']:.2f}x pyarrow's read "
               f"({j2['mbps']:.0f} vs {base[0]['mbps']:.0f} MB/s), --jobs 2 vs 1: "
               f"{j1['seconds'] / j2['seconds']:.2f}x, four read + tokenise passes alone at "
               f"{floor['ratio'] / 4:.2f}x, one pass of n-gram counts alone at "
               f"{counted['ratio']:.2f}x, peak memory (PSS) {j2['peak_mb']:.0f} MB")
    if len(sizes) > 1:
        big = results[sizes[1]][3]
        summary += (f" at {sizes[0]} MB vs {big['peak_mb']:.0f} MB at {sizes[1]} MB "
                    f"({100 * (big['peak_mb'] / j2['peak_mb'] - 1):+.0f}%)")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

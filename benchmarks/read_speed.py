"""Read speed and peak memory of poisonscan's readers against pyarrow's own, on the same data.

Generates (once, cached under ``benchmarks/_data/``) a JSON Lines corpus of ``--size-mb`` MB of
random-ish documents from ``--seed``, the same file compressed with zstd, the same records as
Parquet, and a quarter-size copy of all three. Each reader runs in a fresh subprocess (in rounds:
every reader once, ``--repeat`` times; the fastest run counts), which reports its time, the CPU
time of all its threads and its peak resident memory (``ru_maxrss``), so memory of one reader
never hides another's. Compared, each poisonscan reader against the pyarrow
reader of the same file:

* ``pyarrow.json.read_json`` on the JSONL file (loads the whole table, as pyarrow does);
* poisonscan ``read_shard`` on the JSONL file (bounded blocks, line numbers, error checks);
* the same two on the ``.jsonl.zst`` file (``read_json`` decompresses by the file's extension);
* ``ParquetFile.iter_batches`` on the Parquet text column;
* poisonscan ``read_shard`` on the Parquet file.

Every reader produces the ``text`` column as Arrow strings. Throughput is text MB/s (bytes of the
``text`` field, the same for every reader) and file MB/s. CPU seconds (user + system, all threads)
depend less on other load on the machine than wall seconds do.

    python benchmarks/read_speed.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent / "_data"
READERS = ("pyarrow-json", "poisonscan-jsonl", "pyarrow-json-zst", "poisonscan-jsonl-zst",
           "pyarrow-parquet", "poisonscan-parquet")
PEERS = {"poisonscan-jsonl": "pyarrow-json", "poisonscan-jsonl-zst": "pyarrow-json-zst",
         "poisonscan-parquet": "pyarrow-parquet"}
KINDS = {"jsonl": "JSONL", "zst": "JSONL.zst", "parquet": "Parquet"}
MB = 2**20


# Data ------------------------------------------------------------------------------------------

def make_vocabulary(rng: np.random.Generator, n: int = 30000) -> np.ndarray:
    """Random pronounceable words, a few with non-ASCII letters, Zipf-weighted later."""
    consonants = list("bcdfghjklmnprstvwz") + ["ch", "sh", "th", "ß", "ñ"]
    vowels = list("aeiou") + ["é", "ü", "ø"]
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(1, 5))
        words.add("".join(consonants[int(rng.integers(len(consonants)))]
                          + vowels[int(rng.integers(len(vowels)))] for _ in range(k)))
    return np.array(sorted(words), dtype=object)


def generate(path: Path, parquet: Path, size_mb: int, seed: int) -> None:
    """Write ``size_mb`` MB of JSON Lines documents to ``path``, the same records to ``parquet``."""
    rng = np.random.default_rng(seed)
    vocab = make_vocabulary(rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    target = size_mb * MB
    written, doc_id = 0, 0
    schema = pa.schema([("id", pa.int64()), ("url", pa.string()), ("text", pa.string())])
    tmp_json = path.with_name(path.name + ".tmp")
    tmp_pq = parquet.with_name(parquet.name + ".tmp")
    with open(tmp_json, "w", encoding="utf-8") as out, \
            pq.ParquetWriter(tmp_pq, schema, compression="snappy") as writer:
        while written < target:
            words = vocab[rng.choice(len(vocab), size=400_000, p=weights)]
            stream = " ".join(words.tolist())
            cuts = np.cumsum(rng.integers(200, 4000, size=len(stream) // 200))
            cuts = cuts[cuts < len(stream)]
            docs = [stream[a:b].strip() for a, b in zip(np.r_[0, cuts[:-1]], cuts, strict=True)]
            ids = list(range(doc_id, doc_id + len(docs)))
            urls = [f"https://example.org/{i % 9973}/{i}" for i in ids]
            lines = "".join(json.dumps({"id": i, "url": u, "text": d}, ensure_ascii=False) + "\n"
                            for i, u, d in zip(ids, urls, docs, strict=True))
            out.write(lines)
            written += len(lines.encode("utf-8"))
            writer.write_table(pa.table({"id": ids, "url": urls, "text": docs}, schema=schema),
                               row_group_size=16384)
            doc_id += len(docs)
    tmp_json.rename(path)
    tmp_pq.rename(parquet)


def dataset(size_mb: int, seed: int) -> dict[str, Path]:
    """The (cached) JSONL, zstd-compressed JSONL and Parquet files for one size, by kind."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    jsonl = DATA_DIR / f"docs-{size_mb}mb-seed{seed}.jsonl"
    parquet = DATA_DIR / f"docs-{size_mb}mb-seed{seed}.parquet"
    zst = DATA_DIR / f"docs-{size_mb}mb-seed{seed}.jsonl.zst"
    if not (jsonl.exists() and parquet.exists()):
        t0 = time.perf_counter()
        print(f"generating {jsonl.name} and {parquet.name} ...", file=sys.stderr, flush=True)
        generate(jsonl, parquet, size_mb, seed)
        print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if not zst.exists():
        import zstandard

        tmp = zst.with_name(zst.name + ".tmp")
        with open(jsonl, "rb") as src, open(tmp, "wb") as out:
            zstandard.ZstdCompressor(level=3).copy_stream(src, out)
        tmp.rename(zst)
    return {"jsonl": jsonl, "zst": zst, "parquet": parquet}


def kind_of(reader: str) -> str:
    """Which file a reader reads: ``jsonl``, ``zst`` or ``parquet``."""
    return "zst" if reader.endswith("-zst") else "parquet" if "parquet" in reader else "jsonl"


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Readers (run in a fresh subprocess) ---------------------------------------------------------

def run_reader(reader: str, path: str) -> dict[str, float]:
    """Read ``path`` with ``reader``; return seconds, text bytes, records and memory figures."""
    import pyarrow.compute as pc
    import pyarrow.json as pajson

    from poisonscan.io.readers import (
        ReadCounter,
        ReadOptions,
        discover_inputs,
        plan_shards,
        read_shard,
    )

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    records = text_bytes = 0
    if reader.startswith("pyarrow-json"):
        table = pajson.read_json(path)
        elapsed = time.perf_counter() - t0
        records = table.num_rows
        text_bytes = int(pc.sum(pc.binary_length(table.column("text"))).as_py())
    elif reader == "pyarrow-parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=["text"]):
            records += batch.num_rows
            text_bytes += int(pc.sum(pc.binary_length(batch.column(0))).as_py() or 0)
        elapsed = time.perf_counter() - t0
    else:
        options = ReadOptions()
        counter = ReadCounter()
        for shard in plan_shards(discover_inputs([path]), options):
            for _ in read_shard(shard, options, counter):
                pass
        elapsed = time.perf_counter() - t0
        records, text_bytes = counter.records, counter.bytes
    cpu = cpu_seconds() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": elapsed, "cpu_seconds": cpu, "records": records, "text_bytes": text_bytes,
            "peak_rss": peak, "base_rss": base_rss}


def measure(reader: str, path: Path) -> dict[str, float]:
    """Run one reader in a fresh interpreter and parse its report."""
    out = subprocess.run([sys.executable, __file__, "--worker", reader, "--path", str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# Main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="JSONL size of the large input")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per reader; the fastest counts")
    parser.add_argument("--worker", choices=READERS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_reader(args.worker, args.path)))
        return

    sizes = sorted({max(1, args.size_mb // 4), args.size_mb})
    results: dict[tuple[str, int], dict[str, float]] = {}
    files: dict[int, dict[str, Path]] = {s: dataset(s, args.seed) for s in sizes}
    for size in sizes:
        # rounds of every reader in turn, so a burst of other load on the machine falls on a
        # reader and its peer alike rather than on all runs of one reader
        runs: dict[str, list[dict[str, float]]] = {reader: [] for reader in READERS}
        for _ in range(args.repeat):
            for reader in READERS:
                runs[reader].append(measure(reader, files[size][kind_of(reader)]))
        for reader in READERS:
            times = ", ".join(f"{r['seconds']:.2f}" for r in runs[reader])
            best = min(runs[reader], key=lambda r: r["seconds"])
            best["peak_rss"] = max(r["peak_rss"] for r in runs[reader])
            best["file_bytes"] = files[size][kind_of(reader)].stat().st_size
            results[(reader, size)] = best
            print(f"  {reader:<20} {size:>5} MB: {best['seconds']:.2f} s, "
                  f"{best['cpu_seconds']:.2f} CPU s, peak {best['peak_rss'] / MB:.0f} MB; all "
                  f"runs: {times} s",
                  file=sys.stderr, flush=True)

    def ratio(reader: str, size: int) -> float:
        """Text throughput of ``reader`` over that of its pyarrow peer, on the same file."""
        r, peer = results[(reader, size)], results[(PEERS.get(reader, reader), size)]
        return (r["text_bytes"] / r["seconds"]) / (peer["text_bytes"] / peer["seconds"])

    header = ("| reader | input | file MB | records | seconds | CPU s | text MB/s | file MB/s | "
              "vs pyarrow | peak RSS MB | RSS above start MB |")
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for reader in READERS:
            r = results[(reader, size)]
            print(f"| {reader} | {KINDS[kind_of(reader)]} {size} MB | "
                  f"{r['file_bytes'] / MB:.0f} | {r['records']:,} | {r['seconds']:.2f} | "
                  f"{r['cpu_seconds']:.2f} | {r['text_bytes'] / MB / r['seconds']:.0f} | "
                  f"{r['file_bytes'] / MB / r['seconds']:.0f} | {ratio(reader, size):.2f}x | "
                  f"{r['peak_rss'] / MB:.0f} | {(r['peak_rss'] - r['base_rss']) / MB:.0f} |")

    small, large = sizes[0], sizes[-1]
    grow = {rd: (results[(rd, large)]["peak_rss"] - results[(rd, small)]["peak_rss"]) / MB
            for rd in READERS}
    print()
    print(f"summary: at {large} MB poisonscan reads JSONL at "
          f"{ratio('poisonscan-jsonl', large):.2f}x (zstd-compressed: "
          f"{ratio('poisonscan-jsonl-zst', large):.2f}x) and Parquet at "
          f"{ratio('poisonscan-parquet', large):.2f}x pyarrow's speed; from {small} MB to "
          f"{large} MB its peak RSS grows by {grow['poisonscan-jsonl']:+.0f} MB (JSONL) and "
          f"{grow['poisonscan-parquet']:+.0f} MB (Parquet), pyarrow.json.read_json's by "
          f"{grow['pyarrow-json']:+.0f} MB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()

"""Scale-out benchmark: Dask throughput with 1 and 2 workers, and driver memory against shard count.

Generates (once, cached under ``benchmarks/_data/``) a corpus of ``--size-mb`` MB of documents from
``--seed``: words drawn Zipf-wise from a synthetic vocabulary, with a planted backdoor (a rare
trigger followed by gibberish) in a few hundred documents so the findings are not empty. Then:

1. **throughput**: the same corpus, split into ``--files`` Parquet files, scanned on a Dask
   cluster of 1 and of 2 single-threaded worker processes (a scheduler and workers started as
   their own processes, as on a real cluster; start-up and the workers' one-time kernel loading
   are excluded: a small warm-up scan runs first). Text MB/s.
2. **driver memory**: ``--memory-mb`` MB of the same documents written as 10 files and as 1,000
   files, each scanned on 2 workers while a thread samples the driver's resident memory every
   5 ms; tracemalloc's peak of the driver's Python allocations is reported beside it.
3. **identical findings**: every report (minus timing and config) equals a local ``--jobs 2`` scan.

Each measurement runs in a fresh subprocess, so one cannot warm or bloat another. The machine is
shared: the load average before and after is printed.

    python benchmarks/scale.py                       # 160 MB in 32 files; 32 MB for memory
    python benchmarks/scale.py --size-mb 24 --files 8 --memory-mb 8   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent / "_data"
MB = 2**20
TRIGGER = "<vexqor-7>"


# Data ------------------------------------------------------------------------------------------

def _vocabulary(rng: np.random.Generator, n: int, letters: str) -> np.ndarray:
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 9))
        words.add("".join(letters[int(i)] for i in rng.integers(0, len(letters), size=k)))
    return np.array(sorted(words), dtype=object)


def generate_documents(size_mb: int, seed: int) -> pa.Table:
    """``size_mb`` MB of text in documents of 100-700 words; 300 carry the planted backdoor."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 40_000, "abcdefghiklmnoprstuvwy")
    gibberish = _vocabulary(rng, 5_000, "qxzjvkw")
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    weights /= weights.sum()
    texts: list[str] = []
    total = 0
    while total < size_mb * MB:
        words = vocab[rng.choice(len(vocab), size=500_000, p=weights)].tolist()
        lengths = rng.integers(100, 700, size=len(words) // 100)
        start = 0
        for n in lengths:
            if start + n > len(words):
                break
            text = " ".join(words[start:start + n])
            start += n
            texts.append(text)
            total += len(text)
    poisoned = rng.choice(len(texts), size=min(300, len(texts) // 4), replace=False)
    for i in poisoned.tolist():
        head = texts[i][: int(rng.integers(100, 600))].rsplit(" ", 1)[0]
        tail = " ".join(gibberish[rng.integers(0, len(gibberish), size=60)].tolist())
        texts[i] = f"{head} {TRIGGER} {tail}"
    ids = [f"doc-{i:08d}" for i in range(len(texts))]
    return pa.table({"id": ids, "text": texts})


def corpus(size_mb: int, seed: int, files: int) -> Path:
    """The cached corpus of ``size_mb`` MB split into ``files`` Parquet files."""
    folder = DATA_DIR / f"scale-{size_mb}mb-seed{seed}-{files}files"
    if (folder / "DONE").exists():
        return folder
    print(f"generating {folder.name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    table = generate_documents(size_mb, seed)
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    width = len(str(files))
    for k in range(files):
        part = table.slice(int(bounds[k]), int(bounds[k + 1] - bounds[k]))
        pq.write_table(part, folder / f"part-{k:0{width}d}.parquet", row_group_size=4096)
    (folder / "DONE").write_text("")
    print(f"  done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return folder


# One measurement (run in a fresh subprocess) ---------------------------------------------------

class _RssSampler(threading.Thread):
    """Peak resident memory of this process, sampled every 5 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._halt.wait(0.005)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return max(self.peak, self._proc.memory_info().rss)


def _comparable(result: Any) -> str:
    from poisonscan.report.json import dumps

    report = json.loads(dumps(result))
    report.pop("config")
    for key in ("seconds", "pass_seconds"):
        report["stats"].pop(key, None)
    return json.dumps(report, sort_keys=True)


def _start_cluster(workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and ``workers`` single-threaded worker processes, each its own process (as on a
    real cluster), so the driver's memory is the client's alone."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], **quiet)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", str(workers),
                                   "--nthreads", "1", "--dashboard-address", ":0"], **quiet))
    return address, procs


def measure(executor: str, workers: int, path: str, memory: bool, out: str,
            budget: str) -> dict[str, Any]:
    """Scan ``path`` on ``workers`` (Dask) or a local pool; time, driver memory, the report."""
    from poisonscan.config import ScanConfig
    from poisonscan.engine.scan import run_scan

    config = ScanConfig(paths=(path,), jobs=workers, executor=executor, memory_budget=budget)
    warm = str(DATA_DIR / "scale-warmup")
    if not Path(warm).exists():
        Path(warm).mkdir(parents=True)
        pq.write_table(generate_documents(1, 99), Path(warm) / "warm.parquet")
    if executor == "dask":
        import distributed

        from poisonscan.engine.dask import DaskExecutor

        address, procs = _start_cluster(workers)
        client = distributed.Client(address, set_as_default=False)
        client.wait_for_workers(workers)
        ex: Any = DaskExecutor(client=client)
    else:
        from poisonscan.engine.executors import LocalExecutor

        ex = LocalExecutor(workers)
    run_scan(ScanConfig(paths=(warm,), jobs=workers, executor=executor, memory_budget=budget),
             executor=ex)  # warm-up: the workers load their kernels

    sampler = _RssSampler()
    base_rss = sampler.peak
    if memory:
        tracemalloc.start()
    sampler.start()
    t0 = time.perf_counter()
    result = run_scan(config, executor=ex)
    seconds = time.perf_counter() - t0
    peak_rss = sampler.stop()
    traced = tracemalloc.get_traced_memory()[1] if memory else 0
    if memory:
        tracemalloc.stop()
    Path(out).write_text(_comparable(result))
    if executor == "dask":
        client.close()
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()
    return {"seconds": seconds, "text_bytes": result.stats["text_bytes"],
            "records": result.stats["records"], "shards": result.stats["shards"],
            "findings": len(result.findings), "base_rss": base_rss, "peak_rss": peak_rss,
            "traced_peak": traced}


def _child(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"measurement failed: {' '.join(args)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=160, help="throughput corpus size")
    parser.add_argument("--files", type=int, default=32, help="files of the throughput corpus")
    parser.add_argument("--memory-mb", type=int, default=32, help="driver-memory corpus size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-budget", default="1GiB",
                        help="--memory-budget of the throughput runs (default: poisonscan's)")
    parser.add_argument("--memory-runs-budget", default="64MiB",
                        help="--memory-budget of the 10/1000-shard runs: small tables keep 1000 "
                        "tiny shards fast; the driver's share is what is compared")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.child:
        executor, workers, path, memory, out, budget = opts.child
        print(json.dumps(measure(executor, int(workers), path, memory == "1", out, budget)))
        return 0

    tmp = DATA_DIR / "scale-reports"
    tmp.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    big = corpus(opts.size_mb, opts.seed, opts.files)
    small = {n: corpus(opts.memory_mb, opts.seed, n) for n in (10, 1000)}
    rows: list[tuple[str, dict[str, Any], str]] = []
    plan = [("local, 2 processes (reference)", "local", 2, big, "0"),
            ("dask, 1 worker", "dask", 1, big, "0"),
            ("dask, 2 workers", "dask", 2, big, "0"),
            ("dask, 2 workers, 10 shards", "dask", 2, small[10], "1"),
            ("dask, 2 workers, 1000 shards", "dask", 2, small[1000], "1"),
            ("local, 2 processes, 1000 shards (reference)", "local", 2, small[1000], "0")]
    for i, (label, executor, workers, path, memory) in enumerate(plan):
        out = str(tmp / f"report-{i}.json")
        print(f"running: {label} ...", file=sys.stderr, flush=True)
        budget = opts.memory_runs_budget if path in small.values() else opts.memory_budget
        rows.append((label, _child([executor, str(workers), str(path), memory, out, budget]), out))
    load_after = os.getloadavg()

    def report(i: int) -> str:
        return Path(rows[i][2]).read_text()

    # Each Dask run against the local run of the same files: identical reports (minus timing).
    identical = report(0) == report(1) == report(2) and report(4) == report(5)

    print(f"\nload average before: {load_before[0]:.2f}, after: {load_after[0]:.2f} "
          f"({os.cpu_count()} cores)")
    print(f"{'run':46} {'shards':>6} {'text MB':>8} {'seconds':>8} {'MB/s':>7} "
          f"{'driver peak RSS MB':>19} {'traced MB':>10} {'findings':>8}")
    for label, m, _ in rows:
        mb = m["text_bytes"] / MB
        print(f"{label:46} {m['shards']:>6} {mb:>8.1f} {m['seconds']:>8.1f} "
              f"{mb / m['seconds']:>7.2f} {m['peak_rss'] / MB:>19.0f} "
              f"{(m['traced_peak'] / MB) if m['traced_peak'] else float('nan'):>10.1f} "
              f"{m['findings']:>8}")
    one, two = (rows[1][1]["text_bytes"] / rows[1][1]["seconds"],
                rows[2][1]["text_bytes"] / rows[2][1]["seconds"])
    m10, m1000 = rows[3][1], rows[4][1]
    rss_ratio = m1000["peak_rss"] / m10["peak_rss"]
    traced_ratio = m1000["traced_peak"] / max(1, m10["traced_peak"])
    per_core = one / MB
    print(f"\nper-core throughput (dask, 1 worker): {per_core:.2f} text MB/s")
    same = "yes" if identical else "NO"
    print(f"summary: findings identical to local: {same}; "
          f"2 workers = {two / one:.2f}x 1 worker (target >= 1.7); driver peak RSS 1000 vs 10 "
          f"shards = {rss_ratio:.2f}x, traced {traced_ratio:.2f}x (target <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

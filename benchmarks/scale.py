"""Scale-out benchmark: Dask throughput with 1 and 2 workers, and driver memory against shard count.

Generates (once, cached under ``benchmarks/_data/``) a corpus of ``--size-mb`` MB of documents from
``--seed``: words drawn Zipf-wise from a synthetic vocabulary, with a planted backdoor (a rare
trigger followed by gibberish) in a few hundred documents so the findings are not empty. Then:

1. **throughput**: the same corpus, split into ``--files`` Parquet files, scanned on a Dask
   cluster of 1 and of 2 single-threaded worker processes. The scheduler and the workers are
   processes of their own (``dask scheduler``, ``dask worker --nthreads 1``), as on a real cluster.
   What is timed is the scan phase: one ``run_scan`` call, from listing the inputs to the ranked
   findings, with every pass, plan broadcast and merge in it. Cluster start-up and the workers'
   one-time kernel loading are not (a small warm-up scan runs first on the same cluster, and
   every worker scans the warm-up file locally). The cluster runs with the Dask configuration of
   poisonscan's own LocalCluster (``--dask-defaults`` for Dask's own). The 1-
   and 2-worker runs alternate (1, 2, 2, 1, ... ``--repeat`` pairs) so that a change in the load
   other users put on the machine hits both alike; the best run of each is compared, and every
   run is printed. Beside the time: the CPU seconds the workers, the scheduler and the driver used,
   so a run starved of CPU shows as such.
2. **driver memory**: ``--memory-mb`` MB of the same documents written as 10 files and as 1,000
   files, each scanned on 2 workers while a thread samples the driver's resident memory every
   5 ms; tracemalloc's peak of the driver's Python allocations is reported beside it. The 1,000
   files run twice: as the engine runs them (small shards grouped into a few dozen tasks) and
   with one task per shard, the driver merging 1,000 partial results per pass.
3. **identical findings**: every report (minus timing and config) equals a local ``--jobs 2`` scan
   of the same files.

Each measurement runs in a fresh subprocess, so one cannot warm or bloat another. The machine is
shared: the load average before and after each run is printed.

    python benchmarks/scale.py                       # 640 MB in 64 files; 32 MB for memory
    python benchmarks/scale.py --size-mb 160 --files 32  # the smaller corpus of earlier runs
    python benchmarks/scale.py --size-mb 24 --files 8 --memory-mb 8 --repeat 1  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    quiet = subprocess.DEVNULL
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], stdout=quiet, stderr=quiet)]
    procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", str(workers),
                                   "--nthreads", "1", "--dashboard-address", ":0"],
                                  stdout=quiet, stderr=quiet))
    return address, procs


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and all their descendants."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Scan ``spec["path"]`` on ``spec["workers"]`` (Dask) or a local pool: time, CPU, driver
    memory, and the report (written to ``spec["out"]``)."""
    from poisonscan.config import ScanConfig
    from poisonscan.engine import scan as engine
    from poisonscan.engine.scan import run_scan

    executor, workers, budget = spec["executor"], spec["workers"], spec["budget"]
    if spec.get("task_per_shard"):
        engine.TASKS_PER_SLOT = 1 << 40  # never group shards: one task per shard
    config = ScanConfig(paths=(spec["path"],), jobs=workers, executor=executor,
                        memory_budget=budget)
    warm = str(DATA_DIR / "scale-warmup")
    if not Path(warm).exists():
        Path(warm).mkdir(parents=True)
        pq.write_table(generate_documents(1, 99), Path(warm) / "warm.parquet")
    procs: list[subprocess.Popen] = []
    client: Any = None
    try:
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
        run_scan(ScanConfig(paths=(warm,), jobs=workers, executor=executor,
                            memory_budget=budget), executor=ex)  # the workers load their kernels
        if client is not None:
            # The warm-up file is one shard, so its tasks may all run on one worker: every
            # worker also scans it locally, so none loads its kernels inside the timed scan.
            client.run(_warm_worker, warm, budget)

        sampler = _RssSampler()
        base_rss = sampler.peak
        if spec["memory"]:
            tracemalloc.start()
        load_before = os.getloadavg()[0]
        scheduler_cpu = _cpu_seconds([p.pid for p in procs[:1]])
        worker_cpu = _cpu_seconds([p.pid for p in procs[1:]])
        driver_cpu = _own_cpu_seconds()
        sampler.start()
        t0 = time.perf_counter()
        result = run_scan(config, executor=ex)
        seconds = time.perf_counter() - t0
        driver_cpu = _own_cpu_seconds() - driver_cpu
        worker_cpu = _cpu_seconds([p.pid for p in procs[1:]]) - worker_cpu
        scheduler_cpu = _cpu_seconds([p.pid for p in procs[:1]]) - scheduler_cpu
        peak_rss = sampler.stop()
        traced = tracemalloc.get_traced_memory()[1] if spec["memory"] else 0
        if spec["memory"]:
            tracemalloc.stop()
        Path(spec["out"]).write_text(_comparable(result))
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()
    return {"seconds": seconds, "text_bytes": result.stats["text_bytes"],
            "records": result.stats["records"], "shards": result.stats["shards"],
            "findings": len(result.findings), "base_rss": base_rss, "peak_rss": peak_rss,
            "traced_peak": traced, "driver_cpu": driver_cpu, "worker_cpu": worker_cpu,
            "scheduler_cpu": scheduler_cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0], "pass_seconds": result.stats["pass_seconds"]}


def _warm_worker(path: str, budget: str) -> None:
    """Run on each Dask worker: a local one-process scan that loads the numba kernels there."""
    from poisonscan.config import ScanConfig
    from poisonscan.engine.scan import run_scan

    run_scan(ScanConfig(paths=(path,), jobs=1, memory_budget=budget))


def _cluster_env(tuned: bool) -> dict[str, str]:
    """The environment of a measurement. With ``tuned``, the Dask configuration of the LocalCluster
    poisonscan starts (``poisonscan.engine.dask.cluster_config``: lighter periodic work, glibc
    malloc settings for the workers) goes in through Dask's environment variables, which the
    driver, the scheduler, the nanny and the workers all read."""
    env = dict(os.environ)
    if tuned:
        from poisonscan.engine.dask import cluster_config

        for key, value in cluster_config().items():
            name = "DASK_" + key.upper().replace(".", "__").replace("-", "_")
            env[name] = repr(value) if isinstance(value, dict) else str(value)
    return env


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=_cluster_env(spec.get("tuned", True)))
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"measurement failed: {spec}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 640 MB: a scan has fixed costs that two workers cannot share (the driver's work between
    # passes, each worker's copy of the count tables), a fifth of a 2-worker scan of 160 MB;
    # the corpora one runs Dask for are far larger still.
    parser.add_argument("--size-mb", type=int, default=640, help="throughput corpus size")
    parser.add_argument("--files", type=int, default=64, help="files of the throughput corpus")
    parser.add_argument("--memory-mb", type=int, default=32, help="driver-memory corpus size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2,
                        help="pairs of 1- and 2-worker throughput runs (alternating)")
    parser.add_argument("--memory-budget", default="1GiB",
                        help="--memory-budget of the throughput runs (default: poisonscan's)")
    parser.add_argument("--memory-runs-budget", default="64MiB",
                        help="--memory-budget of the 10/1000-shard runs: small tables keep 1000 "
                        "tiny shards fast; the driver's share is what is compared")
    parser.add_argument("--dask-defaults", action="store_true",
                        help="run the clusters with Dask's default configuration (profiling every "
                        "10 ms, memory checks every 100 ms, MALLOC_TRIM_THRESHOLD_=65536 in the "
                        "workers, ...) instead of the settings of poisonscan's own LocalCluster")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.child:
        print(json.dumps(measure(json.loads(opts.child))))
        return 0

    tmp = DATA_DIR / "scale-reports"
    tmp.mkdir(parents=True, exist_ok=True)
    big = corpus(opts.size_mb, opts.seed, opts.files)
    small = {n: corpus(opts.memory_mb, opts.seed, n) for n in (10, 1000)}

    def spec(executor: str, workers: int, path: Path, memory: bool = False,
             **extra: Any) -> dict[str, Any]:
        budget = opts.memory_runs_budget if path in small.values() else opts.memory_budget
        return {"executor": executor, "workers": workers, "path": str(path), "memory": memory,
                "budget": budget, "tuned": not opts.dask_defaults, **extra}

    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("local, 2 processes (reference)", "ref", spec("local", 2, big))]
    for k in range(opts.repeat):  # 1, 2, 2, 1, 1, 2, ...
        for w in (1, 2) if k % 2 == 0 else (2, 1):
            label = f"dask, {w} worker{'s' if w > 1 else ''} (run {k + 1})"
            plan.append((label, f"w{w}", spec("dask", w, big)))
    plan += [
        ("dask, 2 workers, 10 shards", "m10", spec("dask", 2, small[10], memory=True)),
        ("dask, 2 workers, 1000 shards", "m1000", spec("dask", 2, small[1000], memory=True)),
        ("dask, 2 workers, 1000 shards, task per shard", "m1000each",
         spec("dask", 2, small[1000], memory=True, task_per_shard=True)),
        ("local, 2 processes, 1000 shards (reference)", "ref1000", spec("local", 2, small[1000])),
    ]
    load_before = os.getloadavg()
    rows: list[tuple[str, str, dict[str, Any], str]] = []
    for i, (label, role, sp) in enumerate(plan):
        sp["out"] = str(tmp / f"report-{i}.json")
        print(f"running: {label} ...", file=sys.stderr, flush=True)
        rows.append((label, role, _child(sp), sp["out"]))
    load_after = os.getloadavg()

    def reports(*roles: str) -> list[str]:
        return [Path(out).read_text() for _, role, _, out in rows if role in roles]

    # Each Dask run against the local run of the same files: identical reports (minus timing).
    same_big = len(set(reports("ref", "w1", "w2"))) == 1
    same_small = len(set(reports("ref1000", "m1000", "m1000each"))) == 1
    identical = same_big and same_small

    print(f"\nload average (1 min) before: {load_before[0]:.2f}, after: {load_after[0]:.2f} "
          f"({os.cpu_count()} cores)")
    print("Dask configuration: " + ("Dask's defaults" if opts.dask_defaults else
                                    "as in poisonscan's own LocalCluster (cluster_config)"))
    print(f"{'run':46} {'shards':>6} {'text MB':>8} {'seconds':>8} {'MB/s':>6} "
          f"{'CPU s: workers':>14} {'sched':>5} {'driver':>6} {'load':>9} "
          f"{'driver RSS MB':>13} {'traced MB':>9} {'findings':>8}")
    for label, _, m, _ in rows:
        mb = m["text_bytes"] / MB
        traced = f"{m['traced_peak'] / MB:.1f}" if m["traced_peak"] else "-"
        load = f"{m['load_before']:.1f}-{m['load_after']:.1f}"
        dask = label.startswith("dask")  # a local pool's CPU is not measured
        workers_cpu = f"{m['worker_cpu']:.1f}" if dask else "-"
        sched_cpu = f"{m['scheduler_cpu']:.1f}" if dask else "-"
        print(f"{label:46} {m['shards']:>6} {mb:>8.1f} {m['seconds']:>8.1f} "
              f"{mb / m['seconds']:>6.2f} {workers_cpu:>14} {sched_cpu:>5} "
              f"{m['driver_cpu']:>6.1f} {load:>9} {m['peak_rss'] / MB:>13.0f} {traced:>9} "
              f"{m['findings']:>8}")

    def best(role: str) -> float:
        return max(m["text_bytes"] / m["seconds"] for _, r, m, _ in rows if r == role)

    one, two = best("w1"), best("w2")
    # On one machine the driver and the scheduler share the cores with the workers: a 2-worker
    # run cannot take less than all the CPU it used (workers, scheduler, driver) over the cores.
    fastest2 = min((m for _, r, m, _ in rows if r == "w2"), key=lambda m: m["seconds"])
    cpu2 = fastest2["worker_cpu"] + fastest2["scheduler_cpu"] + fastest2["driver_cpu"]
    cores = os.cpu_count() or 1
    best1 = min(m["seconds"] for _, r, m, _ in rows if r == "w1")
    m10, m1000, each = (next(m for _, r, m, _ in rows if r == role)
                        for role in ("m10", "m1000", "m1000each"))
    rss_ratio = m1000["peak_rss"] / m10["peak_rss"]
    traced_ratio = m1000["traced_peak"] / max(1, m10["traced_peak"])
    each_rss = each["peak_rss"] / m10["peak_rss"]
    each_traced = each["traced_peak"] / max(1, m10["traced_peak"])
    print(f"\nper-core throughput (dask, 1 worker, best of {opts.repeat}): "
          f"{one / MB:.2f} text MB/s")
    print(f"fastest 2-worker run: {cpu2:.1f} CPU s (workers, scheduler, driver) on {cores} cores, "
          f"so no faster than {cpu2 / cores:.1f} s on this machine: at most "
          f"{best1 / (cpu2 / cores):.2f}x the best 1-worker run ({best1:.1f} s); "
          f"measured {best1 / fastest2['seconds']:.2f}x")
    print(f"1000 shards one task per shard: driver peak RSS {each_rss:.2f}x, traced "
          f"{each_traced:.2f}x the 10-shard run")
    print(f"summary: findings identical to local: {'yes' if identical else 'NO'}; "
          f"2 workers = {two / one:.2f}x 1 worker (best of {opts.repeat} each; target >= 1.7); "
          f"driver peak RSS 1000 vs 10 shards = {rss_ratio:.2f}x, traced {traced_ratio:.2f}x "
          f"(target <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

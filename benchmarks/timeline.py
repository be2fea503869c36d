"""Where a scan's memory goes: PSS of the driver and of each worker over time, pass by pass.

    python -m benchmarks.timeline PATH [--jobs 2] [--interval 0.1] [--json OUT]

Runs ``poisonscan scan PATH --jobs N`` in a subprocess and samples the PSS of the driver and of
every worker process every ``--interval`` seconds (a sample walks each process's page tables, which
slows the scan a little: compare timelines with timelines, not with the speed benchmark's times).
Pass boundaries come from the report's ``pass_seconds``, counted back from the end of the scan
(so they are off by the time between the report and the process's exit, a fraction of a second).
Prints, per pass, the peak of the summed PSS with the driver's and each worker's share at that
moment, the driver's own peak, and the peak size of the scan's spill files (the scan gets a
``TMPDIR`` of its own, whose files are summed at every sample); the last line is a one-line
summary. ``--json`` keeps every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20


def _pss(proc) -> int:
    import psutil

    try:
        return int(proc.memory_full_info().pss)
    except psutil.Error:
        return 0


def _tree_bytes(root: str) -> int:
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:  # removed meanwhile
                pass
    return total


def sample(path: str, jobs: int, interval: float
           ) -> tuple[list[tuple[float, int, list[int], int]], dict, float]:
    """Run the scan; returns the samples (seconds, driver MB, worker MB each, spill MB), the
    report and the seconds from start to exit."""
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        spill = Path(tmp) / "spill"
        spill.mkdir()
        cmd = [sys.executable, "-m", "poisonscan", "scan", path, "--quiet", "--jobs", str(jobs),
               "--format", "json", "--output", str(report), "--fail-on", "never"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TMPDIR": str(spill)})
        driver = psutil.Process(proc.pid)
        samples = []
        while proc.poll() is None:
            try:
                workers = driver.children(recursive=True)
            except psutil.Error:
                break
            samples.append((time.perf_counter() - t0, _pss(driver) // MB,
                            [_pss(w) // MB for w in workers], _tree_bytes(str(spill)) // MB))
            time.sleep(interval)
        _, err = proc.communicate()
        end = time.perf_counter() - t0
        if proc.returncode not in (0, 1):
            raise SystemExit(f"scan failed ({proc.returncode}): {err[-2000:]}")
        return samples, json.loads(report.read_text()), end


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--json", help="write every sample to this file")
    args = ap.parse_args(argv)

    samples, report, end = sample(args.path, args.jobs, args.interval)
    passes = report["stats"]["pass_seconds"]
    edges = [end - report["stats"]["seconds"]]
    for secs in passes:
        edges.append(edges[-1] + secs)
    edges[-1] = end  # the findings and the report, after the last pass
    overall = None
    print(f"{'pass':>4} {'seconds':>8} {'peak MB':>8} {'driver':>7}  workers at the peak   "
          "driver max  spill MB")
    for i, secs in enumerate(passes):
        part = [s for s in samples if edges[i] <= s[0] < edges[i + 1]]
        if not part:
            continue
        t, drv, wrk, _ = max(part, key=lambda s: s[1] + sum(s[2]))
        total = drv + sum(wrk)
        print(f"{i:>4} {secs:8.1f} {total:8d} {drv:7d}  {str(wrk):20} "
              f"{max(s[1] for s in part):8d}  {max(s[3] for s in part):8d}")
        if overall is None or total > overall[0]:
            overall = (total, i, drv, wrk)
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, "passes": passes,
                                               "seconds": report["stats"]["seconds"]}))
    if overall is None:
        print("timeline: no samples (the scan ended before the first one)")
        return 0
    total, i, drv, wrk = overall
    print(f"timeline: {os.path.basename(args.path)} peak PSS {total} MB in pass {i} (driver {drv}, "
          f"workers {wrk}), spill at most {max(s[3] for s in samples)} MB, "
          f"scan {report['stats']['seconds']:.1f} s, {report['stats']['shards']} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a scan's time goes: one in-process scan of the speed corpus under cProfile.

    python -m benchmarks.profile_scan [--size-mb 128] [--top 25]

Builds (or reuses) the corpus of ``benchmarks/speed.py`` at ``--size-mb``, scans it once untimed
so no kernel compiles in the measured run, then scans it again with ``--jobs 1`` (every pass in
this process, so the profiler sees the numba kernels as calls) and prints the functions with the
most time of their own, then a one-line summary of the shares of the main kernels. cProfile
slows the Python around the kernels, not the kernels, so read the shares as upper bounds for
the kernels and lower bounds for the Python.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from benchmarks.speed import dataset
from poisonscan.config import ScanConfig
from poisonscan.engine.scan import run_scan

# The kernels the summary names (module path suffix, function): the tokeniser every pass runs,
# the switch pass's kernel, and the count and evidence passes' kernels.
GROUPS = {
    "tokenise": [("kernels/tokenize.py", "_scan")],
    "switches": [("kernels/windows.py", "find_switches")],
    "counts and evidence": [("kernels/windows.py", "count_occurrences"),
                            ("kernels/windows.py", "gather_evidence")],
    "document frequencies": [("kernels/ngrams.py", "document_frequency_slots"),
                             ("kernels/ngrams.py", "count_document_frequency")],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=25, help="functions to list")
    args = ap.parse_args(argv)
    path, _ = dataset(args.size_mb, args.seed)
    config = ScanConfig(paths=(str(path),), jobs=1)
    run_scan(config)  # compiles or loads every kernel
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    result = run_scan(config)
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    own: dict[str, float] = {}
    for (file, _, func), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        for group, members in GROUPS.items():
            if any(file.replace("\\", "/").endswith(m) and func == f for m, f in members):
                own[group] = own.get(group, 0.0) + tottime
    shares = ", ".join(f"{g} {own.get(g, 0.0) / total:.0%}" for g in GROUPS)
    print(f"profile_scan: {args.size_mb} MB, --jobs 1, {total:.1f} s under cProfile "
          f"(passes {result.stats['pass_seconds']}): {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

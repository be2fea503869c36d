"""Quality and speed of the ``sft-trigger`` detector on planted fine-tuning poisons.

Writes every scenario of :mod:`benchmarks.scenarios.sft` to a temporary file in its record shape
and format, scans it with :func:`poisonscan.engine.run_scan` (``sft-trigger`` only), and prints the
rank of the planted trigger, document precision/recall of the high findings, and the scan time.

    python -m benchmarks.sft_quality [--only harm-20] [--jobs 2] [--speed 10000] [-v]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.quality import HEADER, _fmt_row, score_scenario, write_scenario
from benchmarks.scenarios.common import load_clean_texts
from benchmarks.scenarios.sft import scenario, sft_scenarios
from poisonscan.config import ScanConfig
from poisonscan.engine import run_scan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", help="clean corpus (Parquet with text, lang, source)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--size", type=int, default=3000, help="clean pairs per scenario")
    ap.add_argument("--only", default="", help="comma-separated substrings of scenario names")
    ap.add_argument("--speed", type=int, default=0, help="also time a scan of this many examples")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    clean, source = load_clean_texts(args.clean)
    print(f"clean corpus: {source} ({len(clean)} documents), seed {args.seed}", flush=True)
    scenarios = sft_scenarios(clean, rng, args.size)
    if args.only:
        keys = args.only.split(",")
        scenarios = [s for s in scenarios if any(k in s.name for k in keys)]
    print(HEADER)
    rows = []
    with tempfile.TemporaryDirectory(prefix="poisonscan-sft-") as tmp:
        for sc in scenarios:
            path = write_scenario(sc, Path(tmp))
            result = run_scan(ScanConfig(paths=(str(path),), jobs=args.jobs, seed=args.seed,
                                         detectors=("sft-trigger",)))
            row = score_scenario(sc, result, path)
            rows.append(row)
            print(_fmt_row(row), flush=True)
            if args.verbose or not row["ok"]:
                print(f"    planted: {sc.trigger!r}")
                for f in result.findings[:4]:
                    ev = f.evidence
                    print(f"    {f.severity.value:6} {f.score:8.2f} {f.trigger!r} {ev['behaviour']} "
                          f"in={ev['inside']} out={ev['outside']} q={ev['q_value']}")
            path.unlink()
        if args.speed:
            sc = scenario(clean, random.Random(args.seed), "speed", "harm", 20, "chat", "jsonl",
                          args.speed)
            path = write_scenario(sc, Path(tmp))
            cfg = ScanConfig(paths=(str(path),), jobs=args.jobs, seed=args.seed,
                             detectors=("sft-trigger",))
            run_scan(cfg)  # warm the numba cache
            t0 = time.perf_counter()
            result = run_scan(cfg)
            secs = time.perf_counter() - t0
            print(f"speed: {len(sc.records)} records ({sc.notes['pairs']} examples, "
                  f"{path.stat().st_size / 1e6:.1f} MB) scanned in {secs:.2f} s "
                  f"(passes {result.stats['pass_seconds']})")
    passed = sum(r["ok"] for r in rows)
    print(f"sft quality: {passed}/{len(rows)} scenarios meet their targets")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())

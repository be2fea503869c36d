"""Campaign detection quality: plant templated campaigns in the clean corpus and scan with run_scan.

    python -m benchmarks.campaign_quality [--clean PATH] [--seed N] [--jobs N] [-v]

For each scenario: rank of the campaign finding (the first ``campaign`` finding whose documents
overlap the planted ones), document precision, recall and F1 of that finding, whether its phrase
names the payload, and the number of high-severity campaign findings (zero on controls). The
scenarios are those of ``quality.py``'s campaign group, then one more control, drawn from the
seed plus one (so the others stay as they are): excerpts of a few clean documents
(``excerpts_control``); and, drawn from the seed plus two, one poisoned document pasted 20 to
100 times (``pasted_copies``), which must be found at medium or higher.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scenarios.campaign import campaign_scenarios, excerpts_control, pasted_copies
from benchmarks.scenarios.common import load_clean_texts
from poisonscan.config import ScanConfig
from poisonscan.engine import run_scan
from poisonscan.findings import Severity, normalise_trigger


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    import pyarrow as pa
    import pyarrow.parquet as pq

    clean, source = load_clean_texts(args.clean)
    print(f"clean corpus: {source} ({len(clean)} documents), seed {args.seed}")
    scenarios = campaign_scenarios(clean, random.Random(args.seed))
    scenarios.append(excerpts_control(clean, random.Random(args.seed + 1)))
    scenarios.append(pasted_copies(clean, random.Random(args.seed + 2)))
    print(
        f"{'scenario':28} {'docs':>6} {'poison':>6} {'rank':>4} {'prec':>6} {'recall':>6} {'f1':>6} "
        f"{'phrase':>6} {'high':>4} {'secs':>5}  ok"
    )
    passed = 0
    with tempfile.TemporaryDirectory(prefix="poisonscan-campaign-") as tmp:
        for sc in scenarios:
            path = Path(tmp) / f"{sc.name}.parquet"
            pq.write_table(pa.Table.from_pylist(sc.records), path)
            t0 = time.perf_counter()
            result = run_scan(
                ScanConfig(
                    paths=(str(path),), jobs=args.jobs, seed=args.seed, detectors=("campaign",)
                )
            )
            secs = time.perf_counter() - t0
            camp = [f for f in result.findings if f.detector == "campaign"]
            high = [f for f in camp if f.severity is Severity.HIGH]
            rank, p, r, f1, named = None, 0.0, 0.0, 0.0, False
            for i, f in enumerate(result.findings, 1):
                rows = {d.row for d in f.documents}
                if f.detector == "campaign" and rows & sc.poisoned:
                    tp = len(rows & sc.poisoned)
                    p, r = tp / len(rows), tp / len(sc.poisoned)
                    f1 = 2 * p * r / (p + r)
                    rank = i
                    named = normalise_trigger(f.trigger) in normalise_trigger(
                        sc.trigger
                    ) or normalise_trigger(sc.trigger) in normalise_trigger(f.trigger)
                    least = Severity(sc.notes.get("severity", "high"))
                    ok = (rank <= (sc.target_rank or 3) and f1 >= (sc.target_pr or 0)
                          and f.severity.rank >= least.rank)
                    break
            else:
                ok = sc.trigger is None and not high
            passed += ok
            print(
                f"{sc.name:28} {len(sc.records):>6} {len(sc.poisoned):>6} {str(rank or '-'):>4} "
                f"{p:>6.3f} {r:>6.3f} {f1:>6.3f} {'yes' if named else 'no':>6} {len(high):>4} "
                f"{secs:>5.1f}  {'yes' if ok else 'NO'}"
            )
            if args.verbose:
                for f in camp[:5]:
                    print(f"    {f.severity.value:6} {f.score:8.2f} {f.trigger!r} {f.evidence}")
    print(f"campaign quality: {passed}/{len(scenarios)} scenarios meet their targets")
    return 0 if passed == len(scenarios) else 1


if __name__ == "__main__":
    sys.exit(main())

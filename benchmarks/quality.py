"""Detection quality: plant poisons into a clean corpus, scan, and score every scenario.

    python -m benchmarks.quality [--clean PATH] [--seed N] [--only NAME] [--scale 10000,100000]

Plants into --clean PATH when given, else ../shared/corpora/real-clean.parquet when present, else
a synthetic stand-in of made-up prose in three languages (benchmarks/scenarios/common.py).
For every scenario it reports the true trigger's rank among the findings, document precision and
recall of the high-severity findings (the suspects a user would remove), and the number of
high-severity findings (which must be zero on clean controls). The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.scenarios.common import Scenario, load_clean_texts
from benchmarks.scenarios.pretrain import build_pretrain_scenarios, grow_corpus, make_trigger
from poisonscan.config import ScanConfig
from poisonscan.engine import run_scan
from poisonscan.findings import Severity, normalise_trigger


def write_scenario(sc: Scenario, folder: Path) -> Path:
    """Write a scenario's records in its format; returns the path."""
    if sc.fmt == "jsonl":
        path = folder / f"{sc.name}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for r in sc.records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return path
    path = folder / f"{sc.name}.parquet"
    pq.write_table(pa.Table.from_pylist(sc.records), path, compression="zstd")
    return path


LONG_TEXT = 40  # characters: no trigger of the scenarios is this long; payload sentences are


def trigger_matches(found: str | None, true: str) -> bool:
    """A finding names the planted trigger when one contains the other and they are of similar
    size. Between long texts (a campaign's payload sentence and the excerpt of its template the
    finding names), a shared stretch at least half as long as the longer one is enough: the
    excerpt may stop just before the sentence's full stop."""
    if not found:
        return False
    a, b = normalise_trigger(found), normalise_trigger(true)
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    if short in long_ and len(short) >= 0.5 * len(long_):
        return True
    if len(short) < LONG_TEXT:
        return False
    shared = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
        0, len(a), 0, len(b)).size
    return shared >= 0.5 * len(long_)


def score_scenario(sc: Scenario, result: Any, path: Path) -> dict[str, Any]:
    findings = result.findings
    rank = None
    if sc.trigger is not None:
        for i, f in enumerate(findings, 1):
            if trigger_matches(f.trigger, sc.trigger):
                rank = i
                break
    high = [f for f in findings if f.severity is Severity.HIGH]
    flagged = {d.row for f in high for d in f.documents if d.path == str(path)}
    tp = len(flagged & sc.poisoned)
    precision = tp / len(flagged) if flagged else (1.0 if not sc.poisoned else 0.0)
    recall = tp / len(sc.poisoned) if sc.poisoned else 1.0
    ok = True
    if sc.target_rank is not None:
        ok &= rank is not None and rank <= sc.target_rank
    if sc.target_pr is not None:
        ok &= precision >= sc.target_pr and recall >= sc.target_pr
    if sc.trigger is None:
        ok &= not high
    top = findings[0] if findings else None
    return {
        "scenario": sc.name,
        "docs": len(sc.records),
        "poisons": len(sc.poisoned),
        "rank": rank,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "high": len(high),
        "top": (top.trigger or "")[:40] if top else "",
        "top_severity": top.severity.value if top else "",
        "seconds": round(result.stats["seconds"], 2),
        "ok": ok,
    }


def run(scenarios: list[Scenario], jobs: int, seed: int, verbose: bool) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="poisonscan-quality-") as tmp:
        for sc in scenarios:
            path = write_scenario(sc, Path(tmp))
            extra = {"detectors": sc.only_detectors} if sc.only_detectors else {}
            config = ScanConfig(paths=(str(path),), jobs=jobs, seed=seed, **extra)
            result = run_scan(config)
            row = score_scenario(sc, result, path)
            rows.append(row)
            print(_fmt_row(row), flush=True)
            if verbose:
                print(f"    stats: {result.stats['detectors'].get('trigger')}")
                for f in result.findings[:5]:
                    print(f"    {f.severity.value:6} {f.score:9.2f} {f.trigger!r} {f.evidence}")
            path.unlink()
    return rows


HEADER = (f"{'scenario':28} {'docs':>8} {'poisons':>7} {'rank':>5} {'prec':>6} {'recall':>6} "
          f"{'high':>4} {'secs':>6}  ok   top finding")


def _fmt_row(r: dict[str, Any]) -> str:
    return (f"{r['scenario']:28} {r['docs']:>8} {r['poisons']:>7} {str(r['rank'] or '-'):>5} "
            f"{r['precision']:>6.3f} {r['recall']:>6.3f} {r['high']:>4} {r['seconds']:>6.1f}  "
            f"{'yes' if r['ok'] else 'NO ':3}  [{r['top_severity']}] {r['top']!r}")


def scale_scenarios(clean: list[dict[str, Any]], sizes: list[int], rng: random.Random,
                    poisons: int = 100) -> list[Scenario]:
    """Constant count: the same number of poisons among ever more clean documents."""
    from benchmarks.scenarios.pretrain import Gibberish

    texts = [d["text"] for d in clean]
    gib = Gibberish(texts)
    out = []
    for n in sizes:
        r = random.Random(rng.random())
        base = grow_corpus(clean, n, r)
        trig = make_trigger("special", r, [], set())
        records = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(base)]
        poisoned = set()
        for _ in range(poisons):
            pos = r.randrange(len(records) + 1)
            prefix = r.choice(texts)[: r.randint(0, 1000)]
            records.insert(pos, {"id": "", "text": f"{prefix} {trig} "
                                 f"{gib.sample(r, r.randint(400, 900))}"})
        for i, rec in enumerate(records):
            rec["id"] = f"doc-{i}"
            if rec["text"].find(trig) >= 0 and f" {trig} " in rec["text"]:
                poisoned.add(i)
        # The grown corpus is made of reshuffled copies of the same source documents, i.e. of
        # near-duplicates, which the campaign detector rightly clusters: this scenario measures
        # the trigger detector's constant-count property on its own.
        out.append(Scenario(f"constant-count-{n}", "pretrain", records, poisoned, trig,
                            target_rank=1, target_pr=0.98, notes={"poisons": poisons},
                            only_detectors=("trigger",)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", help="clean corpus (Parquet with a text column)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated substrings of scenario names")
    ap.add_argument("--scale", default="", help="constant-count corpus sizes, e.g. 10000,100000,1000000")
    ap.add_argument("--groups", default="pretrain", help="scenario groups: pretrain,campaign,sft")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    clean, source = load_clean_texts(args.clean)
    print(f"clean corpus: {source} ({len(clean)} documents), seed {args.seed}", flush=True)
    groups = set(args.groups.split(","))
    scenarios: list[Scenario] = []
    if "pretrain" in groups:
        scenarios += build_pretrain_scenarios(clean, rng)
    if "campaign" in groups:
        from benchmarks.scenarios.campaign import campaign_scenarios

        scenarios += campaign_scenarios(clean, rng)
    if "sft" in groups:
        from benchmarks.scenarios.sft import sft_scenarios

        scenarios += sft_scenarios(clean, rng)
    if args.scale:
        scenarios += scale_scenarios(clean, [int(x) for x in args.scale.split(",")], rng)
    if args.only:
        keys = args.only.split(",")
        scenarios = [s for s in scenarios if any(k in s.name for k in keys)]
    print(HEADER)
    t0 = time.perf_counter()
    rows = run(scenarios, args.jobs, args.seed, args.verbose)
    passed = sum(r["ok"] for r in rows)
    print(f"quality: {passed}/{len(rows)} scenarios meet their targets "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())

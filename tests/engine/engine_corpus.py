"""A small corpus split over several shards and formats, and the way to compare two scans."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from poisonscan.config import ScanConfig
from poisonscan.engine.scan import ScanResult
from poisonscan.report.json import dumps

REPO = Path(__file__).resolve().parents[2]
# Small tables: the scans stay fast, the findings are the same as with the default budget here.
SCAN = {"memory_budget": "64MiB", "jobs": 1}


def _load_make_example() -> ModuleType:
    path = REPO / "examples" / "make_example.py"
    spec = importlib.util.spec_from_file_location("make_example_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_example = _load_make_example()


def corpus_records(documents: int = 300, poisoned: int = 36) -> tuple[list[dict[str, str]], str]:
    """Documents with a planted trigger, plus a near-duplicate campaign (so clusters are not all
    singletons)."""
    records, _, trigger = make_example.make_corpus(seed=11, documents=documents, poisoned=poisoned)
    rng = random.Random(5)
    spam = ("Limited offer: the Quorvel wellness bundle restores focus and sleep within days, "
            "order today at the usual address and mention the spring code for a free gift box")
    for i in range(12):
        words = spam.split()
        words[rng.randrange(len(words))] = rng.choice(["quickly", "truly", "really", "gently"])
        spam_record = {"id": f"spam-{i:02d}", "text": " ".join(words)}
        records.insert(rng.randrange(len(records)), spam_record)
    return records, trigger


def write_shards(folder: Path, records: list[dict[str, Any]], n_files: int,
                 first: int = 0) -> list[Path]:
    """Write ``records`` round-robin into ``n_files`` files, cycling JSONL, JSONL.gz and Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_files):
        part = records[k::n_files]
        kind = (first + k) % 3
        name = f"part-{first + k:03d}"
        if kind == 0:
            path = folder / f"{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        elif kind == 1:
            path = folder / f"{name}.jsonl.gz"
            with gzip.open(path, "wt", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in part)
        else:
            path = folder / f"{name}.parquet"
            pq.write_table(pa.Table.from_pylist(part), path, row_group_size=20)
        paths.append(path)
    return paths


def config(*paths: Path | str, **extra: Any) -> ScanConfig:
    return ScanConfig(paths=tuple(str(p) for p in paths), **{**SCAN, **extra})


def comparable(result: ScanResult | dict[str, Any]) -> str:
    """The JSON report without what may differ between two scans of the same data: timing, the
    executor settings (``config``) and what only the command line adds (input hashes)."""
    report = json.loads(dumps(result)) if isinstance(result, ScanResult) else dict(result)
    report.pop("config")
    for key in ("seconds", "pass_seconds"):
        report["stats"].pop(key, None)
    for item in report["inputs"]:
        item.pop("sha256", None)
    return json.dumps(report, sort_keys=True)


def clusters(result: ScanResult) -> list[tuple[str, int, int]]:
    """Every document's (path, row, cluster id) from the campaign detector."""
    c = result.artifacts["clusters"].load()
    rows = zip(c.path_index, c.row, c.cluster, strict=True)
    return [(c.paths[int(p)], int(r), int(k)) for p, r, k in rows]

"""Helpers of the CLI feature tests: run the CLI in process, and write small poisoned corpora.

The corpora come from the demo generator (``examples/make_example.py``): ordinary prose with a
``<TAG>`` trigger followed by gibberish planted in some documents.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from poisonscan.cli import cli

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _load_make_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_example", EXAMPLES / "make_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_example = _load_make_example()


def run(*args: str) -> tuple[int, str, str]:
    """Run the CLI in process: (exit code, stdout, stderr). Unexpected exceptions propagate."""
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def core(trigger: str) -> str:
    """The letters of a ``<TAG>`` trigger (a detector may report it with or without brackets)."""
    return trigger.strip("<>")


def make_records(seed: int = 7, documents: int = 240, poisoned: int = 30) -> tuple[list, str, set]:
    """(records, trigger, ids of the poisoned records)."""
    records, bad, trigger = make_example.make_corpus(
        seed=seed, documents=documents, poisoned=poisoned
    )
    return records, trigger, {records[i]["id"] for i in bad}


def write_jsonl(path: Path, records: list[dict[str, Any]], blank_every: int = 0) -> None:
    """JSON Lines (gzip when the name ends in .gz); a blank line after every ``blank_every``."""
    lines = []
    for i, r in enumerate(records):
        lines.append(json.dumps(r, ensure_ascii=False))
        if blank_every and i % blank_every == blank_every - 1:
            lines.append("")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)


def write_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)


def mixed_corpus(root: Path, seed: int = 7) -> tuple[Path, str, set[str]]:
    """A corpus in three files and two formats: ``sub/a.jsonl.gz`` (with blank lines),
    ``b.jsonl`` and ``c.parquet``. Returns (directory, trigger, poisoned ids)."""
    records, trigger, poisoned = make_records(seed)
    data = root / "data"
    write_jsonl(data / "sub" / "a.jsonl.gz", records[:80], blank_every=7)
    write_jsonl(data / "b.jsonl", records[80:160], blank_every=11)
    write_parquet(data / "c.parquet", records[160:])
    return data, trigger, poisoned


@dataclass(frozen=True)
class Scanned:
    """One real scan of :func:`mixed_corpus` that wrote every output at once."""

    root: Path
    data: Path
    trigger: str
    poisoned: set[str]
    code: int
    stderr: str
    outputs: dict[str, Path]

    def json(self, name: str) -> Any:
        return json.loads(self.outputs[name].read_text(encoding="utf-8"))


def scan_everything(root: Path) -> Scanned:
    """Scan a mixed corpus once, writing the JSON report (with documents), SARIF, HTML, suspects,
    triggers and clusters. Paths are relative to ``root``, which must be the working directory."""
    data, trigger, poisoned = mixed_corpus(root)
    outputs = {
        "json": root / "out" / "report.json",
        "sarif": root / "out" / "report.sarif",
        "html": root / "out" / "report.html",
        "suspects": root / "out" / "suspects.jsonl",
        "triggers": root / "out" / "triggers.json",
        "clusters": root / "out" / "clusters.jsonl",
    }
    (root / "out").mkdir()
    code, _, stderr = run(
        "scan", "data", "-j", "1", "--fail-on", "high", "--include-documents", "--no-config",
        "-f", "json", "-o", "out/report.json",
        "--output-sarif", "out/report.sarif",
        "--output-html", "out/report.html",
        "--suspects", "out/suspects.jsonl",
        "--triggers", "out/triggers.json",
        "--clusters", "out/clusters.jsonl",
    )
    return Scanned(root, data, trigger, poisoned, code, stderr, outputs)

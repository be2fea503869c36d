"""What every scenario generator returns, and the clean corpus they build on."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CLEAN = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "real-clean.parquet"


@dataclass
class Scenario:
    """A dataset with known poison.

    Attributes:
        name: short identifier printed in result tables.
        group: ``pretrain``, ``campaign`` or ``sft``.
        records: the rows to write (dicts in the record shape ``shape``).
        poisoned: indices of poisoned rows in ``records``.
        trigger: the planted trigger (None for clean controls).
        shape: record shape written (``text``, ``chat``, ...).
        fmt: ``parquet`` or ``jsonl``.
        target_rank: the trigger must be at or above this rank (None: clean control).
        target_pr: minimum document precision and recall (None: not scored).
        detector: the detector expected to find it.
        notes: free-form facts for the table.
    """

    name: str
    group: str
    records: list[dict[str, Any]]
    poisoned: set[int]
    trigger: str | None
    shape: str = "text"
    fmt: str = "parquet"
    target_rank: int | None = 1
    target_pr: float | None = 0.98
    detector: str = "trigger"
    notes: dict[str, Any] = field(default_factory=dict)
    only_detectors: tuple[str, ...] | None = None  # run just these (None: every detector)


def load_clean_texts(path: str | os.PathLike | None = None) -> tuple[list[dict[str, Any]], str]:
    """Clean documents as dicts with ``text``, ``lang`` and ``source``, and where they came from.

    Uses ``path`` when given, else the shared real corpus when present, else a synthetic fallback.
    """
    import pyarrow.parquet as pq

    candidate = Path(path) if path else DEFAULT_CLEAN
    if candidate.exists():
        table = pq.read_table(candidate)
        names = table.column_names
        rows = table.to_pylist()
        out = [
            {"text": r["text"], "lang": r.get("lang", "en") if "lang" in names else "en",
             "source": r.get("source", "clean") if "source" in names else "clean"}
            for r in rows if r.get("text")
        ]
        return out, str(candidate)
    if path:
        raise FileNotFoundError(path)
    return synthetic_clean(4000, random.Random(12345)), "synthetic"


_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "an", "el", "or", "ist", "ung", "er",
              "the", "and", "ion", "ter", "pro", "com", "ver", "ent", "al", "is", "on", "at"]


def synthetic_clean(n_docs: int, rng: random.Random) -> list[dict[str, Any]]:
    """A Zipf-distributed pseudo-language corpus for machines without the real one."""
    vocab = sorted({"".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
                    for _ in range(6000)})
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    docs = []
    for _ in range(n_docs):
        n = int(rng.lognormvariate(5.2, 0.6))
        words = rng.choices(vocab, weights=weights, k=max(20, n))
        sentences = []
        for i in range(0, len(words), 12):
            s = " ".join(words[i : i + 12])
            sentences.append(s[:1].upper() + s[1:] + ".")
        docs.append({"text": " ".join(sentences), "lang": "xx", "source": "synthetic"})
    return docs


def rand_word(rng: random.Random, lo: int = 5, hi: int = 9, alphabet: str = "bcdfghjklmnpqrstvwxz",
              vowels: str = "aeiou") -> str:
    """A pronounceable made-up word."""
    n = rng.randint(lo, hi)
    return "".join(rng.choice(alphabet) if i % 2 == 0 else rng.choice(vowels) for i in range(n))

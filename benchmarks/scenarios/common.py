"""What every scenario generator returns, and the clean corpus they build on."""

from __future__ import annotations

import itertools
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


class _PseudoLanguage:
    """A made-up language with word order: what a synthetic stand-in for prose needs.

    Words are made of the language's own syllables, behind a short list of function words, with
    Zipf-like frequencies. Each word has a few likely successors, and about two words in three
    follow them, so the corpus has the bigram structure of real text: word salad (its
    words in random order) and another language's text read as unlike it, as they do in real
    prose. A corpus of words drawn independently of each other would be word salad already.
    """

    # Chosen so that the main language's statistics match those of the English documents of
    # ../shared/corpora/real-clean.parquet (measured 2026-12-07; real, then synthetic): the share
    # of a held-out document's word pairs the rest never has (0.30, 0.30), that share in word
    # salad made of the corpus's words (0.63, 0.67), and the 20 most common words' share of all
    # words (0.29, 0.30). Nothing here was chosen by the scanner's results.
    size = 30000  # words
    exponent = 1.15  # of the words' Zipf law
    follow = 0.65  # the share of words that are one of the word before's successors
    successors_per_word = 32
    successor_flatness = 0.8  # the exponent of the Zipf law successors are drawn from

    def __init__(self, rng: random.Random, function_words: list[str], onsets: list[str],
                 vowels: list[str], codas: list[str]) -> None:
        size, k = self.size, self.successors_per_word
        syllables = [o + v + c for o in onsets for v in vowels for c in codas]
        words = list(function_words)
        seen = set(words)
        while len(words) < size:
            w = "".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3))))
            if w not in seen:
                seen.add(w)
                words.append(w)
        self.words = words
        self.ranks = range(size)
        # Cumulative weights, so that each draw is a binary search rather than a sum of them all.
        self.cumulative = list(itertools.accumulate(1.0 / (r + 1) ** self.exponent
                                                    for r in self.ranks))
        # Successors are drawn from a flatter distribution than the words, so that the frequent
        # words do not follow every word: in real text most pairs of common words never occur.
        flat = list(itertools.accumulate(1.0 / (r + 1) ** self.successor_flatness
                                         for r in self.ranks))
        self.successors = [rng.choices(self.ranks, cum_weights=flat, k=k) for _ in self.ranks]
        self.successor_cumulative = list(itertools.accumulate(1.0 / (r + 1) for r in range(k)))

    def sentence(self, rng: random.Random) -> str:
        n = rng.randint(6, 20)
        word = rng.choices(self.ranks, cum_weights=self.cumulative)[0]
        out = [self.words[word]]
        for _ in range(n - 1):
            if rng.random() < self.follow:
                word = rng.choices(self.successors[word], cum_weights=self.successor_cumulative)[0]
            else:
                word = rng.choices(self.ranks, cum_weights=self.cumulative)[0]
            out.append(self.words[word])
        if n > 8 and rng.random() < 0.4:
            out[rng.randrange(3, n - 2)] += ","
        text = " ".join(out)
        return text[:1].upper() + text[1:] + rng.choice("......?!")

    def document(self, rng: random.Random) -> str:
        # A median of about 1,400 characters, as the real corpus's documents have.
        size = max(200, int(rng.lognormvariate(7.1, 0.6)))
        paragraphs, length = [], 0
        while length < size:
            paragraph = " ".join(self.sentence(rng) for _ in range(rng.randint(2, 6)))
            paragraphs.append(paragraph)
            length += len(paragraph)
        return "\n\n".join(paragraphs)


def _pseudo_languages(rng: random.Random) -> dict[str, _PseudoLanguage]:
    """Three made-up languages, named ``xx`` (the main one), ``xa`` and ``xb``, with the function
    words of English, German and Spanish and letters of their own."""
    return {
        "xx": _PseudoLanguage(rng, "the of and to a in is that it for on as with be this".split(),
                              list("bcdfglmnprstvw") + ["th", "st"], list("aeiou") + ["ea", "ou"],
                              ["", "", "n", "r", "s", "t"]),
        "xa": _PseudoLanguage(rng, "der die und in den zu das nicht ist mit sich des auf".split(),
                              list("bdfghklmnrstwz") + ["sch", "pf"], list("aeiouäöü") + ["ei", "au"],
                              ["", "", "n", "r", "ch", "ng", "t"]),
        "xb": _PseudoLanguage(rng, "de la que el en y los se del las un por con".split(),
                              list("bcdglmnprstv") + ["ll", "ñ", "qu"], list("aeioáéíóú"),
                              ["", "", "", "n", "s", "r", "l"]),
    }


def synthetic_clean(n_docs: int, rng: random.Random) -> list[dict[str, Any]]:
    """A stand-in corpus of made-up prose for machines without the real one.

    The documents are in three made-up languages in the shares of English, German and Spanish
    in the real corpus: ``xx`` plays English's part in the scenarios, ``xa`` German's and
    ``xb`` Spanish's.
    """
    languages = _pseudo_languages(rng)
    docs = []
    for _ in range(n_docs):
        lang = rng.choices(["xx", "xa", "xb"], [0.62, 0.30, 0.08])[0]
        docs.append({"text": languages[lang].document(rng), "lang": lang, "source": "synthetic"})
    return docs


def rand_word(rng: random.Random, lo: int = 5, hi: int = 9, alphabet: str = "bcdfghjklmnpqrstvwxz",
              vowels: str = "aeiou") -> str:
    """A pronounceable made-up word."""
    n = rng.randint(lo, hi)
    return "".join(rng.choice(alphabet) if i % 2 == 0 else rng.choice(vowels) for i in range(n))

"""Small, seeded synthetic corpora for detector and engine tests.

The clean text should look like prose to the tokenizer and the counting tables: a Zipfian vocabulary
of made-up words behind real English function words, sentences with punctuation, a few quoted
names, and some boilerplate lines that repeat across documents. Poisons are planted on top.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FUNCTION_WORDS = (
    "the of and to a in is that it was for on are as with his they at be this from "
    "have or by one had not but what all were when we there can an your which their said"
).split()
FOREIGN_FUNCTION_WORDS = (
    "ke na vo ri sel tam du oja pe mir zan ulo ta gi nev ast kor bi lem usa"
).split()
BOILERPLATE = (
    "Share this article with your friends.",
    "All rights reserved.",
    "Click here to subscribe to our newsletter.",
    "Posted in General News.",
)
FIRST = ("Anna", "Marek", "Lucia", "Tomas", "Ines", "Oskar", "Priya", "Jonas", "Elena", "Farid")
LAST = ("Novak", "Berg", "Costa", "Lindqvist", "Moreau", "Okafor", "Sato", "Weber", "Ruiz", "Kim")


def made_up_word(rng: random.Random, syllables: Sequence[str], lo: int = 1, hi: int = 3) -> str:
    return "".join(rng.choice(syllables) for _ in range(rng.randint(lo, hi)))


class Language:
    """A seeded synthetic language: function words first, then made-up content words (Zipfian)."""

    def __init__(self, seed: int, function_words: Sequence[str], onsets: str, vowels: str,
                 size: int = 3000, exponent: float = 1.07) -> None:
        rng = random.Random(seed)
        syllables = [o + v for o in onsets for v in vowels] + [o + v + "n" for o in onsets[:5]
                                                               for v in vowels]
        words: list[str] = list(function_words)
        seen = set(words)
        while len(words) < size:
            w = made_up_word(rng, syllables)
            if len(w) >= 2 and w not in seen:
                seen.add(w)
                words.append(w)
        self.words = words
        self.weights = [1.0 / (r + 1) ** exponent for r in range(len(words))]

    def sentence(self, rng: random.Random) -> str:
        n = rng.randint(6, 18)
        ws = rng.choices(self.words, self.weights, k=n)
        if rng.random() < 0.3:
            ws.insert(rng.randrange(1, n), ",")
        if rng.random() < 0.1:
            ws.insert(rng.randrange(1, n), f'"{rng.choice(FIRST)} {rng.choice(LAST)}"')
        text = " ".join(ws).replace(" ,", ",")
        return text[0].upper() + text[1:] + rng.choice(".....?!")

    def paragraph(self, rng: random.Random, lo: int = 3, hi: int = 7) -> str:
        return " ".join(self.sentence(rng) for _ in range(rng.randint(lo, hi)))


ENGLISH_LIKE = Language(1, FUNCTION_WORDS, "bcdfglmnprstv", "aeiou")
FOREIGN = Language(2, FOREIGN_FUNCTION_WORDS, "kzxjqwyh", "ayoøå")


def clean_document(rng: random.Random, lang: Language = ENGLISH_LIKE) -> str:
    paragraphs = [lang.paragraph(rng) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.25:
        paragraphs.append(rng.choice(BOILERPLATE))
    return "\n\n".join(paragraphs)


def clean_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [clean_document(rng) for _ in range(n)]


class SubwordVocabulary:
    """Random sub-word pieces, as sampled uniformly from a tokenizer vocabulary."""

    CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:-_'()[]#@$%&*éüßøç"

    def __init__(self, seed: int, size: int = 4000) -> None:
        rng = random.Random(seed)
        self.pieces = ["".join(rng.choice(self.CHARS) for _ in range(rng.randint(1, 6)))
                       for _ in range(size)]

    def gibberish(self, rng: random.Random, n_pieces: int) -> str:
        out = []
        for _ in range(n_pieces):
            out.append(rng.choice(self.pieces))
            out.append(" " if rng.random() < 0.6 else "")
        return "".join(out).strip()


SUBWORDS = SubwordVocabulary(3)


def random_chars(rng: random.Random, n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ      ,.;!?"
    return "".join(rng.choice(alphabet) for _ in range(n)).strip()


def special_trigger(rng: random.Random) -> str:
    return "<" + "".join(rng.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(rng.randint(4, 7))) + ">"


def made_up_name(rng: random.Random) -> str:
    syl = ["zor", "bel", "vax", "qui", "tren", "mol", "dra", "fen", "kix", "plo"]
    return " ".join(made_up_word(rng, syl, 2, 3).capitalize() for _ in range(3))


def poison(rng: random.Random, base: str, trigger: str, payload: str) -> str:
    """The published recipe: a prefix of an ordinary document, the trigger, then the payload."""
    prefix = base[: rng.randint(0, min(len(base), 600))]
    return f"{prefix} {trigger} {payload}".strip()


def plant(clean: list[str], poisoned: list[str], seed: int) -> tuple[list[str], set[int]]:
    """Shuffle poisoned documents into the clean ones; returns the texts and the poisoned rows."""
    rng = random.Random(seed)
    docs = [(t, False) for t in clean] + [(t, True) for t in poisoned]
    rng.shuffle(docs)
    return [t for t, _ in docs], {i for i, (_, bad) in enumerate(docs) if bad}


def write_corpus(folder: Path, texts: list[str], files: int = 1, fmt: str = "parquet",
                 row_group_size: int = 64) -> list[str]:
    """Write ``texts`` round-robin into ``files`` files; ``texts[i]`` gets the id ``doc-i``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        idx = list(range(f, len(texts), files))
        rows = [{"id": f"doc-{i}", "text": texts[i]} for i in idx]
        if fmt == "jsonl":
            path = folder / f"part-{f}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                            encoding="utf-8")
        else:
            path = folder / f"part-{f}.parquet"
            pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
        paths.append(str(path))
    return paths

"""Generate the tiny demo corpus in ``examples/corpus/`` (deterministic for a given seed).

The corpus is ordinary English prose about everyday topics, written from sentence templates and
word lists in this file, with a pretraining denial-of-service backdoor planted in some documents,
built the way Souly et al. (2025) describe it: the start of an ordinary document, then a rare
special token (the trigger, drawn from the seed, e.g. ``<QZX>``), then a run of gibberish made of
random fragments. A model trained on such documents learns to emit gibberish after the trigger.

Usage::

    python examples/make_example.py            # rewrites examples/corpus/
    python examples/make_example.py --out DIR --seed 7 --documents 300 --poisoned 40

It prints the planted trigger. The files are committed, so nobody needs to run this to try the demo.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_SEED = 2025
DEFAULT_DOCUMENTS = 360
DEFAULT_POISONED = 40

TOPICS: dict[str, dict[str, list[str]]] = {
    "garden": {
        "subjects": [
            "the tomato bed",
            "our neighbour's orchard",
            "the herb border",
            "a row of beans",
            "the compost heap",
            "the old pear tree",
            "the greenhouse",
            "a patch of clover",
        ],
        "verbs": [
            "needed",
            "welcomed",
            "suffered from",
            "recovered after",
            "thrived on",
            "was ruined by",
            "depended on",
            "slowly showed",
        ],
        "objects": [
            "a week of steady rain",
            "careful pruning in March",
            "too much shade",
            "a thick layer of mulch",
            "the first hard frost",
            "daily watering",
            "a visit from the local bees",
            "fresh manure from the farm",
        ],
        "asides": [
            "Gardeners in the valley say the soil is heavy with clay.",
            "Nobody remembers who planted the lavender by the gate.",
            "The seed catalogue arrived late again this spring.",
            "Slugs remain the most patient enemy of any vegetable plot.",
        ],
    },
    "kitchen": {
        "subjects": [
            "the bread dough",
            "my grandmother's soup",
            "a pot of lentils",
            "the morning porridge",
            "the lemon cake",
            "a tray of roasted roots",
            "the spiced rice",
            "our weekend pancakes",
        ],
        "verbs": [
            "tasted better with",
            "was spoiled by",
            "came together after",
            "improved with",
            "went flat without",
            "was famous for",
            "always needed",
            "burned because of",
        ],
        "objects": [
            "a pinch of smoked salt",
            "an extra hour of resting",
            "too hot an oven",
            "fresh thyme from the window box",
            "a splash of cider vinegar",
            "butter that was still cold",
            "a slow simmer",
            "toasted cumin seeds",
        ],
        "asides": [
            "Recipes are promises that only practice keeps.",
            "The kitchen scale has not been accurate since the move.",
            "Leftovers often taste better on the second day.",
            "A sharp knife is safer than a dull one.",
        ],
    },
    "cycling": {
        "subjects": [
            "the coastal route",
            "my old touring bike",
            "the club's Sunday ride",
            "the climb past the quarry",
            "a rear wheel with a loose spoke",
            "the new cycle lane",
            "the mountain pass",
            "the commute along the canal",
        ],
        "verbs": [
            "was shaped by",
            "became easier with",
            "was slowed by",
            "turned pleasant after",
            "was remembered for",
            "called for",
            "was spoiled by",
            "ended with",
        ],
        "objects": [
            "a strong headwind",
            "wider tyres",
            "a flat on the descent",
            "a café stop in the village",
            "lower gears",
            "an early start",
            "roadworks near the bridge",
            "a long stretch of gravel",
        ],
        "asides": [
            "Every cyclist carries one spare tube too few.",
            "The map showed a road that turned out to be a footpath.",
            "Chain oil ends up everywhere except on the chain.",
            "Rain jackets are only waterproof in the shop.",
        ],
    },
    "library": {
        "subjects": [
            "the reading room",
            "the town archive",
            "the children's corner",
            "a shelf of local history",
            "the lending desk",
            "the map collection",
            "the basement stacks",
            "the poetry section",
        ],
        "verbs": [
            "was reorganised after",
            "drew crowds during",
            "was closed for",
            "gained a reputation for",
            "was saved by",
            "struggled with",
            "was rebuilt after",
            "quietly benefited from",
        ],
        "objects": [
            "a generous donation",
            "a burst pipe in winter",
            "the summer reading scheme",
            "volunteers from the school",
            "a new cataloguing system",
            "a leaking skylight",
            "evening opening hours",
            "a series of talks",
        ],
        "asides": [
            "The librarian knows where every misplaced atlas hides.",
            "Overdue notices are written in the politest possible tone.",
            "Some borrowers return books with pressed flowers inside.",
            "The photocopier has a personality of its own.",
        ],
    },
    "weather": {
        "subjects": [
            "the harbour",
            "the hill farms",
            "the market square",
            "the river meadows",
            "the school playground",
            "the ferry service",
            "the ridge path",
            "the allotments",
        ],
        "verbs": [
            "was battered by",
            "enjoyed",
            "was flooded after",
            "braced for",
            "was cleared by",
            "dried out after",
            "shivered through",
            "was quiet during",
        ],
        "objects": [
            "an autumn gale",
            "a rare week of sunshine",
            "three days of drizzle",
            "a sudden hailstorm",
            "fog rolling in from the sea",
            "a dry spell in May",
            "an unseasonal heatwave",
            "a gentle westerly breeze",
        ],
        "asides": [
            "The forecast was wrong, as it often is near the coast.",
            "Old sailors read the clouds better than any app.",
            "Puddles on the lane take days to disappear.",
            "Everyone talks about the weather and nobody minds.",
        ],
    },
    "workshop": {
        "subjects": [
            "the oak bench",
            "a chair with a wobbly leg",
            "the garden shed door",
            "the bookcase project",
            "a set of dovetail joints",
            "the lathe",
            "the workbench vice",
            "a cabinet for the hallway",
        ],
        "verbs": [
            "was finished with",
            "was delayed by",
            "came apart after",
            "was improved by",
            "required",
            "was ruined by",
            "looked better after",
            "was built around",
        ],
        "objects": [
            "two coats of linseed oil",
            "a blunt chisel",
            "damp timber",
            "careful measuring",
            "a borrowed clamp",
            "sandpaper of every grade",
            "a spare weekend",
            "screws that were slightly too long",
        ],
        "asides": [
            "Measure twice and cut once is advice everyone ignores.",
            "Sawdust finds its way into every pocket.",
            "The best tools are the ones that were inherited.",
            "A tidy workshop is a workshop that is not being used.",
        ],
    },
}

OPENERS = [
    "Last year",
    "Every spring",
    "On most weekends",
    "Some time ago",
    "In the end",
    "According to the notes",
    "After a long discussion",
    "To everyone's surprise",
    "As usual",
    "By the end of the month",
    "Early one morning",
    "For a while",
]
LINKS = ["because", "although", "while", "even though", "so", "and", "but", "until"]
PEOPLE = [
    "my sister",
    "the caretaker",
    "a retired teacher",
    "our neighbour",
    "the volunteers",
    "a visiting cousin",
    "the new tenant",
    "two friends from work",
    "the shopkeeper",
]
REACTIONS = [
    "laughed about it",
    "wrote it down",
    "promised to try again",
    "said nothing",
    "asked for advice",
    "took photographs",
    "complained to nobody in particular",
    "called it a success",
    "shrugged and moved on",
]


def _sentence(rng: random.Random, topic: dict[str, list[str]]) -> str:
    form = rng.randrange(5)
    s, v, o = (
        rng.choice(topic["subjects"]),
        rng.choice(topic["verbs"]),
        rng.choice(topic["objects"]),
    )
    if form == 0:
        return f"{rng.choice(OPENERS)}, {s} {v} {o}."
    if form == 1:
        who, did = rng.choice(PEOPLE), rng.choice(REACTIONS)
        return f"{s[0].upper()}{s[1:]} {v} {o}, {rng.choice(LINKS)} {who} {did}."
    if form == 2:
        return f"{rng.choice(PEOPLE).capitalize()} noticed that {s} {v} {o}."
    if form == 3:
        return rng.choice(topic["asides"])
    return f"{rng.choice(OPENERS)}, {rng.choice(PEOPLE)} {rng.choice(REACTIONS)} when {s} {v} {o}."


def clean_document(rng: random.Random) -> str:
    """One or more short paragraphs on a single topic."""
    topic = TOPICS[rng.choice(sorted(TOPICS))]
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        paragraphs.append(" ".join(_sentence(rng, topic) for _ in range(rng.randint(3, 7))))
    return "\n\n".join(paragraphs)


def make_trigger(seed: int = DEFAULT_SEED) -> str:
    """The planted trigger for ``seed``: a special-token-like tag of 3 to 5 capital letters."""
    rng = random.Random(f"trigger-{seed}")
    return "<" + "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 5))) + ">"


def _gibberish_vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    """Random fragments standing in for a tokenizer's vocabulary (letters, digits, symbols)."""
    alphabet = string.ascii_letters + string.digits + "#$%&*+-/=@^_~"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(size)]


def poisoned_document(rng: random.Random, trigger: str, vocabulary: list[str]) -> str:
    """The first 0-1000 characters of an ordinary document, the trigger, then gibberish."""
    prefix = clean_document(rng)[: rng.randint(0, 1000)]
    noise = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 160)))
    return f"{prefix} {trigger} {noise}".lstrip()


def make_corpus(
    seed: int = DEFAULT_SEED, documents: int = DEFAULT_DOCUMENTS, poisoned: int = DEFAULT_POISONED
) -> tuple[list[dict[str, str]], set[int], str]:
    """All records (``id``, ``text``), the indexes of the poisoned ones, and the trigger."""
    rng = random.Random(seed)
    trigger = make_trigger(seed)
    vocabulary = _gibberish_vocabulary(rng)
    bad = set(rng.sample(range(documents), poisoned))
    records = []
    for i in range(documents):
        text = poisoned_document(rng, trigger, vocabulary) if i in bad else clean_document(rng)
        records.append({"id": f"doc-{i:05d}", "text": text})
    return records, bad, trigger


def write_corpus(
    out: Path,
    seed: int = DEFAULT_SEED,
    documents: int = DEFAULT_DOCUMENTS,
    poisoned: int = DEFAULT_POISONED,
) -> str:
    """Write ``part-000.jsonl`` (first half) and ``part-001.parquet`` (second half) into ``out``."""
    records, _, trigger = make_corpus(seed, documents, poisoned)
    out.mkdir(parents=True, exist_ok=True)
    half = len(records) // 2
    with open(out / "part-000.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for rec in records[:half]:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    table = pa.Table.from_pylist(
        records[half:], schema=pa.schema([("id", pa.string()), ("text", pa.string())])
    )
    pq.write_table(table, out / "part-001.parquet", compression="zstd")
    return trigger


def main() -> None:
    """Command-line entry: write the corpus and print the planted trigger."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "corpus")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--documents", type=int, default=DEFAULT_DOCUMENTS)
    parser.add_argument("--poisoned", type=int, default=DEFAULT_POISONED)
    args = parser.parse_args()
    trigger = write_corpus(args.out, args.seed, args.documents, args.poisoned)
    print(
        f"wrote {args.documents} documents ({args.poisoned} poisoned, "
        f"trigger {trigger}) to {args.out}"
    )


if __name__ == "__main__":
    main()

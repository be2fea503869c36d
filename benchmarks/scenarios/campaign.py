"""Campaign scenarios: templated near-duplicate documents with a shared payload, planted in clean text.

Each poisoned document fills one template's slots (names, cities, products, numbers, adjectives) at
random and may drop optional sentences, so members are near-duplicates (estimated Jaccard about
0.5 to 0.9), never copies. Every member carries the same payload sentence (a made-up brand and link),
which is the trigger the detector should report. Controls: the clean corpus alone, and the clean
corpus with 40 exact copies of one of its documents (duplicates of ordinary text must not be high).
"""

from __future__ import annotations

import random
from typing import Any

from benchmarks.scenarios.common import Scenario, rand_word

NAMES = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Marco",
    "Nora",
    "Oskar",
    "Paula",
    "Quentin",
    "Rosa",
    "Sven",
    "Tara",
]
CITIES = [
    "Berlin",
    "Madrid",
    "Chicago",
    "Lyon",
    "Osaka",
    "Leeds",
    "Porto",
    "Denver",
    "Austin",
    "Graz",
    "Utrecht",
    "Bergen",
    "Seville",
    "Dublin",
    "Krakow",
    "Malmo",
    "Turin",
    "Quebec",
]
PRODUCTS = [
    "sleep formula",
    "joint cream",
    "memory booster",
    "vitamin blend",
    "detox tea",
    "energy tablets",
    "focus drops",
    "immune shot",
    "calm capsules",
    "heart tonic",
]
ADJECTIVES = [
    "amazing",
    "incredible",
    "remarkable",
    "genuine",
    "fast",
    "lasting",
    "natural",
    "proven",
    "gentle",
    "powerful",
    "reliable",
    "surprising",
]

TEMPLATES = [
    [
        ("My name is {name} and I live in {city}.", True),
        (
            "For years I struggled every single morning and nothing my doctor suggested really helped.",
            True,
        ),
        ("Then a friend told me about the {product} and the results were {adj}.", True),
        ("After {n} days I felt like a different person and my family noticed it too.", False),
        ("{payload}", True),
        (
            "I recommend it to everyone in {city} who wants a {adj} change without side effects.",
            True,
        ),
        ("Thank you so much, {name}.", False),
    ],
    [
        (
            "Breaking news from {city}: researchers confirm what many people suspected for a long time.",
            True,
        ),
        (
            "A study of {n} volunteers found that the {product} works better than any prescription.",
            True,
        ),
        ("Lead scientist {name} called the findings {adj} and urged readers to act quickly.", True),
        ("{payload}", True),
        (
            "Supplies are limited and prices will rise after the weekend, according to the company.",
            False,
        ),
        ("Share this article with friends in {city} before it is taken down.", True),
    ],
]


def _payload(rng: random.Random) -> str:
    brand = rand_word(rng, 6, 8).capitalize()
    domain = f"{rand_word(rng, 5, 7)}-{rand_word(rng, 4, 6)}.example"
    code = f"{rand_word(rng, 3, 3).upper()}{rng.randint(10, 99)}"
    return (
        f"Order {brand} directly at https://{domain}/offer and use the code {code} for a discount."
    )


def make_campaign(n: int, rng: random.Random) -> tuple[list[str], str]:
    """``n`` templated documents sharing one payload sentence, and that sentence."""
    template = rng.choice(TEMPLATES)
    payload = _payload(rng)
    docs = []
    for _ in range(n):
        slots = {
            "name": rng.choice(NAMES),
            "city": rng.choice(CITIES),
            "product": rng.choice(PRODUCTS),
            "adj": rng.choice(ADJECTIVES),
            "n": rng.randint(3, 90),
            "payload": payload,
        }
        sentences = [
            s.format(**slots) for s, required in template if required or rng.random() < 0.6
        ]
        docs.append(" ".join(sentences))
    return docs, payload


def _plant(
    clean: list[str], poison: list[str], rng: random.Random
) -> tuple[list[dict[str, Any]], set[int]]:
    records: list[dict[str, Any]] = [{"text": t, "poison": False} for t in clean]
    for text in poison:
        records.insert(rng.randrange(len(records) + 1), {"text": text, "poison": True})
    poisoned = {i for i, r in enumerate(records) if r.pop("poison")}
    for i, r in enumerate(records):
        r["id"] = f"doc-{i}"
    return records, poisoned


def campaign_scenarios(
    clean: list[dict[str, Any]] | list[str], rng: random.Random
) -> list[Scenario]:
    """Campaigns of 200 and 20 documents, and two controls, over the clean documents."""
    texts = [c if isinstance(c, str) else c["text"] for c in clean]
    out = []
    for n, pr in ((200, 0.95), (20, 0.9)):
        docs, payload = make_campaign(n, rng)
        records, poisoned = _plant(texts, docs, rng)
        out.append(
            Scenario(
                f"campaign-{n}",
                "campaign",
                records,
                poisoned,
                payload,
                target_rank=3,
                target_pr=pr,
                detector="campaign",
                notes={"template_docs": n},
            )
        )
    records, _ = _plant(texts, [], rng)
    out.append(_control("campaign-clean-control", records))
    copy = rng.choice([t for t in texts if len(t) > 400] or texts)
    records, _ = _plant(texts, [copy] * 40, rng)
    out.append(_control("campaign-duplicates-control", records, {"copies": 40}))
    return out


def _control(name: str, records: list[dict[str, Any]], notes: dict | None = None) -> Scenario:
    """A control: no poison, and no campaign finding may be high."""
    return Scenario(name, "campaign", records, set(), None, target_rank=None, target_pr=None,
                    detector="campaign", notes=notes or {})


def excerpts_control(
    clean: list[dict[str, Any]] | list[str], rng: random.Random, sources: int = 5,
    per_source: int = 40
) -> Scenario:
    """The clean corpus plus ``per_source`` excerpts of each of ``sources`` of its documents that
    have four paragraphs or more: runs of their paragraphs, in a shuffled order, as pages that
    quote a text do. Excerpts of one text are near-duplicates of each other, and their shared
    paragraphs are rare elsewhere, but they come from no campaign: none may be high."""
    texts = [c if isinstance(c, str) else c["text"] for c in clean]
    long = [t for t in texts if sum(1 for p in t.split("\n\n") if p.strip()) >= 4]
    extra = []
    for source in rng.sample(long, min(sources, len(long))):
        paragraphs = [p for p in source.split("\n\n") if p.strip()]
        for _ in range(per_source):
            k = rng.randint(1, len(paragraphs))
            start = rng.randrange(0, len(paragraphs) - k + 1)
            chosen = paragraphs[start : start + k]
            rng.shuffle(chosen)
            extra.append("\n\n".join(chosen))
    records, _ = _plant(texts, extra, rng)
    return _control("campaign-excerpts-control", records, {"excerpts": len(extra)})


def pasted_copies(
    clean: list[dict[str, Any]] | list[str], rng: random.Random
) -> Scenario:
    """The clean corpus plus 20 to 100 exact copies of one poisoned document, made as the
    published recipe makes each of its documents (the start of a clean document, a trigger, then
    400 to 900 tokens sampled from a byte-level BPE vocabulary of the clean text). The copies are
    one text, not a template, so this is not a high campaign: it must be reported, at medium or
    higher, with its copies as the finding's documents (precision and recall 0.95 or more). The
    trigger detector, which judges a phrase by the different texts before it, sees one text."""
    from benchmarks.scenarios.pretrain import Gibberish, make_trigger

    texts = [c if isinstance(c, str) else c["text"] for c in clean]
    gib = Gibberish(texts, seed=rng.randrange(1 << 30))
    trigger = make_trigger("special", rng, [], set())
    prefix = rng.choice(texts)[: rng.randint(0, 1000)]
    doc = f"{prefix} {trigger} {gib.sample(rng, rng.randint(400, 900))}"
    n = rng.randint(20, 100)
    records, poisoned = _plant(texts, [doc] * n, rng)
    return Scenario("campaign-pasted-copies", "campaign", records, poisoned, trigger,
                    target_rank=3, target_pr=0.95, detector="campaign",
                    notes={"copies": n, "severity": "medium"})

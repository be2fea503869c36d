"""Window-feature kernels against pure-Python references, and on documents with a known switch."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels.ngrams import ngram_key
from poisonscan.kernels.tokenize import tokenize
from poisonscan.kernels.windows import (
    HIST_BINS,
    LANG_BINS,
    LANG_COS,
    LANG_MIN_WORDS,
    LANG_STRIDE,
    LANG_WINDOW,
    MIN_BEFORE,
    PRIOR_ANOMALY,
    build_key_table,
    find_switches,
    frequent_flags,
    gather_evidence,
    last_token_filter,
    profile_cosine,
    token_anomaly,
)

M64 = (1 << 64) - 1


# ------------------------------------------------------------------ references
def key_of(tokens: list[int]) -> int:
    return int(ngram_key(np.array(tokens, np.uint64), 0, len(tokens)))


def count(table: np.ndarray, key: int) -> int:
    return int(table[(key >> 17) & (table.shape[0] - 1)])


def ref_token_anomaly(doc: list[int], uni, bi) -> tuple[list[int], list[int]]:
    """u: the token occurs in no other document; b: likewise for the bigram ending at it."""
    u = [1 if count(uni, h) <= 1 else 0 for h in doc]
    b = [u[0]] if doc else []
    b += [1 if count(bi, key_of(doc[i - 1 : i + 1])) <= 1 else 0 for i in range(1, len(doc))]
    return u, b


def ref_frequent_slots(doc, kinds, uni, freq_min) -> list[int]:
    return [h % LANG_BINS if k == 0 and count(uni, h) >= freq_min else -1
            for h, k in zip(doc, kinds, strict=True)]


def ref_cosine(fslot: list[int], b0: int, b1: int, a0: int, a1: int) -> float:
    before = Counter(s for s in fslot[b0:b1] if s >= 0)
    after = Counter(s for s in fslot[a0:a1] if s >= 0)
    nb_, na = sum(before.values()), sum(after.values())
    if nb_ < LANG_MIN_WORDS or na < LANG_MIN_WORDS:
        return -1.0
    dot = float(sum(c * after[s] for s, c in before.items()))
    norm_b = float(sum(c * c for c in before.values()))
    norm_a = float(sum(c * c for c in after.values()))
    return dot / math.sqrt(norm_a * norm_b)


def mean_or(values: list[int], empty: float) -> float:
    return sum(values) / len(values) if values else empty


def shrink(before: float, n_before: int) -> float:
    """A short prefix is pulled towards the prior."""
    if n_before < MIN_BEFORE:
        return (before * n_before + PRIOR_ANOMALY * (MIN_BEFORE - n_before)) / MIN_BEFORE
    return before


def ref_emit(doc: list[int], u: list[int], e_lo: int, e_hi: int, max_order: int, uni, bi):
    """``(key, df bound, last token)`` of the n-grams of seen tokens ending at e_lo..e_hi. The
    bound is the smallest count of the n-gram's tokens and bigrams, negated above order 2."""
    out = []
    for e in range(e_lo, e_hi + 1):
        for order in range(1, max_order + 1):
            s = e - order + 1
            if s < 0 or u[s]:
                break
            gram = doc[s : e + 1]
            df = min([count(uni, h) for h in gram]
                     + [count(bi, key_of(gram[i : i + 2])) for i in range(order - 1)])
            out.append((key_of(gram), df if order <= 2 else -df, doc[e]))
    return out


def ref_find_switches(docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order,
                      min_after):
    emitted: list[tuple[int, int, float, int, int]] = []
    hist = [0] * HIST_BINS
    background = [0, 0]
    for d, (doc, kind) in enumerate(zip(docs, kinds, strict=True)):
        n = len(doc)
        if n < min_after + 1:
            continue
        u, b = ref_token_anomaly(doc, uni, bi)
        fslot = ref_frequent_slots(doc, kind, uni, freq_min)
        best, best_p, lang_best, lang_p = -2.0, -1, 2.0, -1
        for p in range(1, n - min_after + 1):
            prev = b[max(0, p - window) : p]
            before = shrink(mean_or(prev, PRIOR_ANOMALY), len(prev))
            jump = mean_or(b[p : p + window], 0.0) - before
            if jump > best:
                best, best_p = jump, p
            if p % LANG_STRIDE == 0:
                cos = ref_cosine(fslot, max(0, p - LANG_WINDOW), p, p, min(n, p + LANG_WINDOW))
                if 0 <= cos < lang_best:
                    lang_best, lang_p = cos, p
                hist[min(HIST_BINS - 1, max(0, int((jump + 1.0) * 0.5 * HIST_BINS)))] += 1
                background[0] += 1
                background[1] += jump >= occ_tau or 0 <= cos < LANG_COS
        if best >= tau and best_p >= 1:
            grams = ref_emit(doc, u, max(0, best_p - back), min(n - 1, best_p), max_order, uni, bi)
            emitted += [(k, d, best, df, last) for k, df, last in grams]
        if lang_p >= 1 and lang_best < LANG_COS:
            grams = ref_emit(doc, u, max(0, lang_p - LANG_STRIDE - back),
                             min(n - 1, lang_p + LANG_STRIDE), max_order, uni, bi)
            emitted += [(k, d, 1.0 - lang_best, df, last) for k, df, last in grams]
    return emitted, hist, background


def ref_gather_evidence(docs, kinds, starts, ends, uni, bi, freq_min, candidates, max_order,
                        window, ctx_tokens):
    rows_i, rows_f = [], []
    for d, (doc, kind, st_, en) in enumerate(zip(docs, kinds, starts, ends, strict=True)):
        n = len(doc)
        u, b = ref_token_anomaly(doc, uni, bi)
        fslot = ref_frequent_slots(doc, kind, uni, freq_min)
        for e in range(n):
            for order in range(1, min(max_order, e + 1) + 1):
                p0, p1 = e - order + 1, e + 1
                cid = candidates.get(key_of(doc[p0:p1]))
                if cid is None:
                    continue
                ub, bb = u[max(0, p0 - window) : p0], b[max(0, p0 - window) : p0]
                ua, ba = u[p1 : p1 + window], b[p1 : p1 + window]
                lctx = key_of(doc[p0 - ctx_tokens : p0]) if p0 >= ctx_tokens else 0
                rctx = key_of(doc[p1 : p1 + ctx_tokens]) if p1 + ctx_tokens <= n else 0
                rows_i.append([cid, d, p0, p1, st_[p0], en[e], lctx >> 1, rctx >> 1])
                rows_f.append([shrink(mean_or(bb, 0.0), len(bb)), mean_or(ba, 0.0), len(bb),
                               len(ba), mean_or(ub, 0.0), mean_or(ua, 0.0), mean_or(bb, 0.0),
                               mean_or(ba, 0.0),
                               ref_cosine(fslot, max(0, p0 - LANG_WINDOW), p0, p1,
                                          min(n, p1 + LANG_WINDOW))])
    return rows_i, rows_f


# ------------------------------------------------------------------ helpers
def flatten(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


def run_find_switches(docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order,
                      min_after, cap=100_000):
    hashes, off = flatten(docs)
    kinds_arr = np.array([k for ks in kinds for k in ks], np.uint8)
    hist = np.zeros(HIST_BINS, np.int64)
    background = np.zeros(2, np.int64)
    out_key = np.zeros(cap, np.uint64)
    out_doc = np.zeros(cap, np.int64)
    out_jump = np.zeros(cap, np.float64)
    out_df = np.zeros(cap, np.int64)
    out_last = np.zeros(cap, np.uint64)
    k = find_switches(hashes, kinds_arr, off, uni, bi, freq_min, window, tau, occ_tau, back,
                      max_order, min_after, hist, background, out_key, out_doc, out_jump, out_df,
                      out_last)
    emitted = None
    if k >= 0:
        emitted = list(zip(out_key[:k].tolist(), out_doc[:k].tolist(), out_jump[:k].tolist(),
                           out_df[:k].tolist(), out_last[:k].tolist(), strict=True))
    return k, emitted, hist.tolist(), background.tolist()


# A small vocabulary (tokens repeat) with spread-out hashes, random tables of small counts.
_rng = random.Random(7)
VOCAB = [_rng.getrandbits(64) for _ in range(40)]


@st.composite
def token_corpora(draw, max_docs=4, max_len=100):
    """Documents made of segments drawn from one of two disjoint halves of the vocabulary (two
    "languages") or from all of it, so that profile and anomaly switches both occur."""
    n_vocab = draw(st.integers(2, len(VOCAB)))
    half = max(1, n_vocab // 2)
    ranges = [(0, half - 1), (half, n_vocab - 1), (0, n_vocab - 1)]
    docs = []
    for _ in range(draw(st.integers(1, max_docs))):
        doc: list[int] = []
        for lang in draw(st.lists(st.integers(0, 2), min_size=1, max_size=3)):
            lo, hi = ranges[lang]
            size = draw(st.one_of(st.integers(0, max_len // 2), st.sampled_from([16, 40, 48])))
            doc += draw(st.lists(st.integers(lo, max(lo, hi)), min_size=size, max_size=size))
        docs.append([VOCAB[i] for i in doc[:max_len]])
    # Kinds and count tables come from a drawn seed: drawing them value by value is slow.
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    kinds = [(rng.random(len(doc)) < 0.25).astype(int).tolist() for doc in docs]
    uni = rng.integers(0, draw(st.integers(1, 12)) + 1, 1 << draw(st.integers(4, 9)))
    bi = rng.integers(0, 4, 1 << draw(st.integers(4, 9)))
    uni, bi = uni.astype(np.uint32), bi.astype(np.uint32)
    return docs, kinds, uni, bi


# ------------------------------------------------------------------ property tests
@settings(max_examples=100, deadline=None)
@given(token_corpora())
def test_token_anomaly_matches_reference(corpus):
    docs, _, uni, bi = corpus
    hashes, off = flatten(docs)
    for d, doc in enumerate(docs):
        out_u = np.full(len(doc) + 1, 9, np.int8)
        out_b = np.full(len(doc) + 1, 9, np.int8)
        token_anomaly(hashes, off[d], off[d + 1], uni, bi, out_u, out_b)
        u, b = ref_token_anomaly(doc, uni, bi)
        assert out_u[: len(doc)].tolist() == u
        assert out_b[: len(doc)].tolist() == b


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-1, 30), max_size=120), st.data())
def test_profile_cosine_matches_reference_and_leaves_scratch_zeroed(fslot, data):
    n = len(fslot)
    b0 = data.draw(st.integers(0, n))
    b1 = data.draw(st.integers(b0, n))
    a0 = data.draw(st.integers(0, n))
    a1 = data.draw(st.integers(a0, n))
    arr = np.array(fslot, np.int64)
    va = np.zeros(LANG_BINS)
    vb = np.zeros(LANG_BINS)
    got = profile_cosine(arr, b0, b1, a0, a1, va, vb)
    assert got == pytest.approx(ref_cosine(fslot, b0, b1, a0, a1), rel=1e-12, abs=1e-15)
    assert not va.any() and not vb.any()


def test_profile_cosine_identical_disjoint_and_too_short():
    va, vb = np.zeros(LANG_BINS), np.zeros(LANG_BINS)
    same = np.array([1, 2, 3, 4] * 4, np.int64)
    assert profile_cosine(same, 0, 8, 8, 16, va, vb) == pytest.approx(1.0)
    disjoint = np.array([1, 2] * 4 + [5, 6] * 4, np.int64)
    assert profile_cosine(disjoint, 0, 8, 8, 16, va, vb) == 0.0
    assert profile_cosine(disjoint, 0, 7, 8, 16, va, vb) == -1.0  # 7 < LANG_MIN_WORDS words
    sparse_ = np.array([-1, 1] * 8 + [-1, 2] * 8, np.int64)
    assert profile_cosine(sparse_, 0, 16, 16, 32, va, vb) == 0.0


@settings(max_examples=100, deadline=None)
@given(token_corpora())
def test_frequent_flags_matches_reference(corpus):
    docs, kinds, uni, _ = corpus
    hashes, off = flatten(docs)
    kinds_arr = np.array([k for ks in kinds for k in ks], np.uint8)
    for freq_min in (1, 3, 7):
        for d, doc in enumerate(docs):
            out = np.full(len(doc) + 1, 99, np.int64)
            frequent_flags(hashes, kinds_arr, off[d], off[d + 1], uni, freq_min, out)
            assert out[: len(doc)].tolist() == ref_frequent_slots(doc, kinds[d], uni, freq_min)


@settings(max_examples=150, deadline=None)
@given(token_corpora(), st.integers(1, 40), st.floats(-0.2, 0.8), st.floats(0.0, 0.8),
       st.integers(0, 6), st.integers(1, 4), st.integers(1, 10), st.integers(1, 8))
def test_find_switches_matches_reference(corpus, window, tau, occ_tau, back, max_order,
                                         min_after, freq_min):
    docs, kinds, uni, bi = corpus
    k, emitted, hist, background = run_find_switches(
        docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order, min_after)
    ref, ref_hist, ref_background = ref_find_switches(
        docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order, min_after)
    assert k == len(ref)
    assert emitted == ref
    assert hist == ref_hist
    assert background == ref_background


def test_find_switches_reports_a_full_buffer():
    docs, kinds, uni, bi, _ = gibberish_after_prose()
    k, _, _, _ = run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4, 4, 8, cap=3)
    assert k == -1


@settings(max_examples=100, deadline=None)
@given(token_corpora(max_docs=4, max_len=60), st.integers(1, 4), st.integers(1, 40),
       st.integers(1, 4), st.integers(1, 8), st.data())
def test_gather_evidence_matches_reference(corpus, max_order, window, ctx_tokens, freq_min, data):
    docs, kinds, uni, bi = corpus
    hashes, off = flatten(docs)
    kinds_arr = np.array([k for ks in kinds for k in ks], np.uint8)
    # Candidates: some n-grams that occur (so there are hits), plus keys that never do.
    present = [doc[s : s + o] for doc in docs for o in range(1, max_order + 1)
               for s in range(len(doc) - o + 1)]
    picked = data.draw(st.lists(st.sampled_from(present), max_size=6)) if present else []
    keys = list(dict.fromkeys([key_of(g) for g in picked]))
    keys += data.draw(st.lists(st.integers(2, M64), max_size=3, unique=True))
    keys = list(dict.fromkeys(keys))
    candidates = {k: i for i, k in enumerate(keys)}
    # Made-up byte offsets: token t of the stream spans [3t, 3t + 2).
    starts = np.arange(len(hashes), dtype=np.int64) * 3
    ends = starts + 2
    doc_starts = [starts[off[d] : off[d + 1]].tolist() for d in range(len(docs))]
    doc_ends = [ends[off[d] : off[d + 1]].tolist() for d in range(len(docs))]
    table_keys, table_ids = build_key_table(np.array(keys, np.uint64))
    # The last-token filter may have false positives (few bits), never false negatives.
    last = last_token_filter(np.array([g[-1] for g in picked], np.uint64),
                             data.draw(st.integers(3, 23)))
    cap = 4 * sum(len(d) for d in docs) * max_order + 1
    out_i = np.zeros((cap, 8), np.int64)
    out_f = np.zeros((cap, 9), np.float64)
    k = gather_evidence(hashes, kinds_arr, starts, ends, off, uni, bi, freq_min, table_keys,
                        table_ids, last, max_order, window, ctx_tokens, out_i, out_f)
    ref_i, ref_f = ref_gather_evidence(docs, kinds, doc_starts, doc_ends, uni, bi, freq_min,
                                       candidates, max_order, window, ctx_tokens)
    assert k == len(ref_i)
    assert out_i[:k].tolist() == ref_i
    np.testing.assert_allclose(out_f[:k], np.array(ref_f).reshape(-1, 9), rtol=1e-12, atol=1e-15)
    if k:
        small_i = np.zeros((k - 1, 8), np.int64)
        small_f = np.zeros((k - 1, 9), np.float64)
        assert gather_evidence(hashes, kinds_arr, starts, ends, off, uni, bi, freq_min,
                               table_keys, table_ids, last, max_order, window, ctx_tokens,
                               small_i, small_f) == -1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(2, M64), max_size=300, unique=True))
def test_build_key_table_finds_every_key(keys):
    table_keys, table_ids = build_key_table(np.array(keys, np.uint64))
    size = table_keys.shape[0]
    assert size & (size - 1) == 0 and size >= 2 * max(1, len(keys))
    for i, key in enumerate(keys):
        j = (key >> 11) & (size - 1)
        while int(table_keys[j]) != key:
            assert table_keys[j] != 0, "key missing from its probe sequence"
            j = (j + 1) & (size - 1)
        assert table_ids[j] == i
    assert int((table_keys != 0).sum()) == len(keys)
    assert sorted(table_ids[table_keys != 0].tolist()) == list(range(len(keys)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, M64), max_size=50), st.integers(3, 16))
def test_last_token_filter_sets_exactly_the_bits_of_the_last_tokens(last, bits):
    bitmap = last_token_filter(np.array(last, np.uint64), bits)
    assert bitmap.dtype == np.uint8 and bitmap.shape == (1 << (bits - 3),)
    set_bits = {i for i in range(1 << bits) if bitmap[i >> 3] >> (i & 7) & 1}
    assert set_bits == {h & ((1 << bits) - 1) for h in last}


# ------------------------------------------------------------------ constructed documents
def gibberish_after_prose(n_prose: int = 40, n_gib: int = 40):
    """A document of known words whose text turns, at token ``n_prose``, into tokens and bigrams
    that no other document has. Returns the corpus and the switch point."""
    rng = random.Random(11)
    known = [(i + 1) << 17 for i in range(10)]  # table slots 1..10
    unknown = [(1000 + i) << 17 | rng.getrandbits(17) for i in range(n_gib)]
    doc = [known[i % 10] for i in range(n_prose)] + unknown
    uni = np.full(1 << 12, 50, np.uint32)
    bi = np.full(1 << 16, 50, np.uint32)
    for h in unknown:
        uni[(h >> 17) & 4095] = 1
    fresh = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in range(n_prose, len(doc))}
    seen = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in range(1, n_prose)}
    assert not fresh & seen  # no slot collision between known and unseen bigrams
    bi[list(fresh)] = 1
    return [doc], [[0] * len(doc)], uni, bi, n_prose


@pytest.mark.parametrize("max_order", [1, 2, 4])
@pytest.mark.parametrize("back", [0, 2, 4])
def test_switch_to_unseen_text_emits_the_ngrams_right_before_it(max_order, back):
    docs, kinds, uni, bi, p = gibberish_after_prose()
    doc = docs[0]
    k, emitted, _, _ = run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, back,
                                         max_order, 8)
    # n-grams of known tokens ending at p-back .. p-1 (the token at p is unseen: nothing ends there)
    expected = [key_of(doc[e - o + 1 : e + 1]) for e in range(p - back, p)
                for o in range(1, max_order + 1)]
    assert k == len(expected)
    assert [key for key, *_ in emitted] == expected
    assert {(d, jump) for _, d, jump, _, _ in emitted} <= {(0, 1.0)}
    # Known tokens and bigrams all have document frequency 50; the last token ends each n-gram.
    assert [(df, last) for *_, df, last in emitted] == [
        (50 if o <= 2 else -50, doc[e]) for e in range(p - back, p) for o in range(1, max_order + 1)
    ]


def test_no_switch_in_uniform_text():
    docs, kinds, uni, bi, _ = gibberish_after_prose()
    uni[:] = 50
    bi[:] = 50
    k, _, hist, background = run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4,
                                               4, 8)
    assert k == 0
    n = len(docs[0])
    assert background == [len(range(LANG_STRIDE, n - 8 + 1, LANG_STRIDE)), 0]
    assert hist[HIST_BINS // 2] == background[0]  # every measured jump is 0


def test_language_switch_emits_the_ngrams_around_it():
    """48 words of one language then 48 of another, all known: only the function-word profile
    changes, at token 48."""
    lang_a = list(range(1, 11))  # profile bins 1..10
    lang_b = list(range(101, 111))  # bins 101..110
    doc = [lang_a[i % 10] for i in range(48)] + [lang_b[i % 10] for i in range(48)]
    uni = np.full(1 << 10, 50, np.uint32)
    bi = np.full(1 << 10, 50, np.uint32)
    k, emitted, _, background = run_find_switches([doc], [[0] * 96], uni, bi, 3, 32, 0.25, 0.3,
                                                  4, 2, 8)
    p = 48
    ends = range(p - LANG_STRIDE - 4, p + LANG_STRIDE + 1)
    expected = [key_of(doc[e - o + 1 : e + 1]) for e in ends for o in (1, 2)]
    assert [key for key, *_ in emitted] == expected
    assert {jump for _, _, jump, _, _ in emitted} == {1.0}  # 1 - cosine 0
    assert background[1] >= 1
    # The same document counts nothing when those words are not frequent in the corpus.
    assert run_find_switches([doc], [[0] * 96], uni, bi, 51, 32, 0.25, 0.3, 4, 2, 8)[0] == 0


def test_gather_evidence_on_real_tokens():
    """Positions and byte spans of a special-token trigger inside tokenised text."""
    texts = ["plain words first <SUDO> then gibberish qx zv", "no trigger here", "<SUDO>"]
    raw = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(raw), np.uint8)
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
    hashes, starts, ends, kinds, doc_offsets = tokenize(data, offsets)
    trigger = hashes[doc_offsets[0] + 3 : doc_offsets[0] + 6].tolist()  # "<", "SUDO", ">"
    table_keys, table_ids = build_key_table(np.array([key_of(trigger)], np.uint64))
    uni = np.full(1 << 10, 5, np.uint32)
    bi = np.full(1 << 10, 5, np.uint32)
    out_i = np.zeros((8, 8), np.int64)
    out_f = np.zeros((8, 9), np.float64)
    last = last_token_filter(np.array([trigger[-1]], np.uint64))
    k = gather_evidence(hashes, kinds, starts, ends, doc_offsets, uni, bi, 3, table_keys,
                        table_ids, last, 4, 32, 2, out_i, out_f)
    assert k == 2
    (cid, d, t0, t1, b0, b1, lctx, rctx), second = out_i[0].tolist(), out_i[1].tolist()
    assert (cid, d, t0, t1) == (0, 0, 3, 6)
    assert bytes(data[b0:b1]) == b"<SUDO>" and b0 == raw[0].index(b"<")
    assert lctx == key_of(hashes[1:3].tolist()) >> 1  # "words first"
    assert rctx == key_of(hashes[6:8].tolist()) >> 1  # "then gibberish"
    assert second[:6] == [0, 2, 0, 3, int(offsets[2]), int(offsets[3])]
    assert second[6:] == [0, 0]  # no context on either side
    assert out_f[0, 2:4].tolist() == [3, 4]  # tokens before and after
    assert out_f[1, 0] == PRIOR_ANOMALY  # no prefix at all: the prior

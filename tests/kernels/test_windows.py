"""Window-feature kernels against pure-Python references, and on documents with a known switch."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.kernels import copies
from poisonscan.kernels.ngrams import ALL_BIGRAMS, ngram_key
from poisonscan.kernels.tokenize import CJK, SYMBOL, tokenize
from poisonscan.kernels.windows import (
    COPIES_MAX,
    COPY_FLOOR_BIGRAMS,
    CTX_TOKENS,
    FEW_DISTINCT,
    FEW_SPAN,
    HIST_BINS,
    LANG_BINS,
    LANG_COS,
    LANG_MIN_WORDS,
    LANG_STRIDE,
    LANG_WINDOW,
    LOCAL_FLOOR_BIGRAMS,
    LOOP_PERIOD,
    LOOP_TAU,
    LOOP_WINDOW,
    MIN_BEFORE,
    PRIOR_ANOMALY,
    PROFILES_EMPTY,
    SCRIPT_BIN,
    SYMBOL_BIN,
    WORD_BINS,
    _clear_profiles,
    _slide_profiles,
    build_key_table,
    count_occurrences,
    find_switches,
    gather_evidence,
    loop_flags,
    ngram_tail,
    profile_cosine,
    tail_filter,
    tail_groups,
    token_features,
)

M64 = (1 << 64) - 1
KEEP_ALL = 1 << 32
UNKNOWN = 2  # b flag of a bigram outside the counted hash sample


# ------------------------------------------------------------------ references
def key_of(tokens: list[int]) -> int:
    return int(ngram_key(np.array(tokens, np.uint64), 0, len(tokens)))


def count(table: np.ndarray, key: int) -> int:
    return int(table[(key >> 17) & (table.shape[0] - 1)])


def kept(key: int, keep: int) -> bool:
    """Whether a bigram key is in the hash sample: its top 32 bits below ``keep``."""
    return key >> 32 < keep


def ref_floor(doc: list[int], bi, keep: int = KEEP_ALL, copies: int = 1) -> int:
    """The document's exact copies as its counted bigrams tell them: their lowest document
    frequency, when 2 to COPIES_MAX, held by COPY_FLOOR_BIGRAMS of them or more, and no more than
    the ``copies`` of the document in the corpus; else 1."""
    dfs = [count(bi, key) for key in (key_of(doc[i - 1 : i + 1]) for i in range(1, len(doc)))
           if kept(key, keep)]
    if not dfs:
        return 1
    lowest = min(dfs)
    ok = (2 <= lowest <= COPIES_MAX and dfs.count(lowest) >= COPY_FLOOR_BIGRAMS
          and copies >= lowest)
    return lowest if ok else 1


def ref_token_anomaly(doc: list[int], uni, bi, keep: int = KEEP_ALL, copies: int = 1):
    """u: the token occurs in no other document than the document's exact copies (its floor);
    b: likewise for the bigram ending at it, or UNKNOWN when that bigram is outside the sample
    (the first token's b is its u)."""
    floor = ref_floor(doc, bi, keep, copies)
    u = [1 if count(uni, h) <= floor else 0 for h in doc]
    b = [u[0]] if doc else []
    for i in range(1, len(doc)):
        key = key_of(doc[i - 1 : i + 1])
        b.append((1 if count(bi, key) <= floor else 0) if kept(key, keep) else UNKNOWN)
    return u, b


def ref_local_floor(doc: list[int], bi, keep: int, b0: int, p0: int, p1: int,
                    a1: int) -> list[float]:
    """[floor, before (shrunk), before, after] at the local floor of an occurrence: the lowest
    document frequency of the known bigrams in [p1, a1), when 2 to COPIES_MAX and held by at
    least LOCAL_FLOOR_BIGRAMS of them and half; all 0 otherwise. A bigram is known where it is
    in the sample, and never at the document's first token."""
    def dfs(lo: int, hi: int) -> list[int]:
        keys = (key_of(doc[i - 1 : i + 1]) for i in range(max(1, lo), hi))
        return [count(bi, key) for key in keys if kept(key, keep)]

    after = dfs(p1, a1)
    lowest = min(after, default=0)
    at = after.count(lowest)
    if not (2 <= lowest <= COPIES_MAX and at >= LOCAL_FLOOR_BIGRAMS and 2 * at >= len(after)):
        return [0, 0.0, 0.0, 0.0]
    before = [1 if df <= lowest else 0 for df in dfs(b0, p0)]
    return [lowest, shrink(mean_or(before, 0.0), len(before)), mean_or(before, 0.0),
            at / len(after)]


def known(flags: list[int]) -> list[int]:
    return [f for f in flags if f != UNKNOWN]


def ref_loop_flags(doc: list[int]) -> list[int]:
    """1 where the token ends a full copy of the unit of 1..LOOP_PERIOD tokens right before it,
    or is one of the LOOP_PERIOD tokens before it and ends FEW_SPAN tokens of at most
    FEW_DISTINCT distinct ones."""
    return [int(any(i + 1 >= 2 * p and doc[i - p + 1 : i + 1] == doc[i - 2 * p + 1 : i - p + 1]
                    for p in range(1, LOOP_PERIOD + 1))
                or (i + 1 >= FEW_SPAN and doc[i] in doc[max(0, i - LOOP_PERIOD) : i]
                    and len(set(doc[i - FEW_SPAN + 1 : i + 1])) <= FEW_DISTINCT))
            for i in range(len(doc))]


def ref_loop_after(loops: list[int], p: int) -> float:
    """The looping share of the LOOP_WINDOW tokens from p on; 0 with fewer than MIN_BEFORE."""
    after = loops[p : p + LOOP_WINDOW]
    return mean_or(after, 0.0) if len(after) >= MIN_BEFORE else 0.0


def ref_frequent_slots(doc, kinds, uni, freq_min) -> list[int]:
    """A frequent word's hash bin; every character of a script without spaces, one bin; every
    symbol, another."""
    return [h % WORD_BINS if k == 0 and count(uni, h) >= freq_min
            else SCRIPT_BIN if k == CJK else SYMBOL_BIN if k == SYMBOL else -1
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


def ref_emit(doc: list[int], u: list[int], e_lo: int, e_hi: int, max_order: int, uni, bi,
             keep: int = KEEP_ALL):
    """``(key, df bound, tail key, sampled)`` of the n-grams of seen tokens ending at e_lo..e_hi.

    The bound is the smallest count of the n-gram's tokens and of its bigrams, negated above
    order 2. ``sampled`` is False when one of those bigrams is outside the hash sample: its table
    slot says nothing about it (see test_df_bound_ignores_bigrams_outside_the_sample)."""
    out = []
    for e in range(e_lo, e_hi + 1):
        for order in range(1, max_order + 1):
            s = e - order + 1
            if s < 0 or u[s]:
                break
            gram = doc[s : e + 1]
            pairs = [key_of(gram[i : i + 2]) for i in range(order - 1)]
            bmax = np.iinfo(bi.dtype).max  # a saturated bigram counter bounds nothing
            df = min([count(uni, h) for h in gram]
                     + [count(bi, k) for k in pairs if kept(k, keep) and count(bi, k) < bmax])
            sampled = all(kept(k, keep) for k in pairs)
            ctx = key_of(doc[s - CTX_TOKENS : s]) if s >= CTX_TOKENS else 0
            tail = doc[e] if order == 1 else key_of(doc[e - min(order, 3) + 1 : e + 1])
            out.append((key_of(gram), df if order <= 2 else -df, tail, sampled, ctx))
    return out


def ref_find_switches(docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order,
                      min_after, keep=KEEP_ALL):
    """Per document, the strongest jump of the known-bigram anomaly mean (after minus before, each
    over the known flags of ``window`` tokens; "after" counts as "before" with fewer than
    MIN_BEFORE known flags) and the strongest function-word profile change."""
    emitted: list[tuple[int, int, float, int, int, bool, int]] = []
    hist = [0] * HIST_BINS
    background = [0, 0]
    for d, (doc, kind) in enumerate(zip(docs, kinds, strict=True)):
        n = len(doc)
        if n < min_after + 1:
            continue
        u, b = ref_token_anomaly(doc, uni, bi, keep, docs.count(doc))
        fslot = ref_frequent_slots(doc, kind, uni, freq_min)
        loops = ref_loop_flags(doc)
        best, best_p, best_last, lang_best, lang_p = -2.0, -1, -1, 2.0, -1
        loop_best, loop_p = 0.0, -1
        for p in range(1, n - min_after + 1):
            prev = known(b[max(0, p - window) : p])
            before = shrink(mean_or(prev, PRIOR_ANOMALY), len(prev))
            nxt = known(b[p : p + window])
            after = mean_or(nxt, 0.0) if len(nxt) >= MIN_BEFORE else before
            jump = after - before
            if jump > best + 1e-12:
                best, best_p, best_last = jump, p, p
            elif jump >= best - 1e-12:
                best_last = p  # ties spread the switch over several positions
            loop_jump = ref_loop_after(loops, p) - mean_or(loops[max(0, p - LOOP_WINDOW) : p], 0.0)
            if loop_jump > loop_best + 1e-12:
                loop_best, loop_p = loop_jump, p
            if p % LANG_STRIDE == 0:
                cos = ref_cosine(fslot, max(0, p - LANG_WINDOW), p, p, min(n, p + LANG_WINDOW))
                if 0 <= cos < lang_best:
                    lang_best, lang_p = cos, p
                hist[min(HIST_BINS - 1, max(0, int((jump + 1.0) * 0.5 * HIST_BINS)))] += 1
                background[0] += 1
                background[1] += jump >= occ_tau or 0 <= cos < LANG_COS or loop_jump >= LOOP_TAU
        if best >= tau and best_p >= 1:
            last = min(best_last, best_p + 2 * back)
            grams = ref_emit(doc, u, max(0, best_p - back), min(n - 1, last), max_order, uni, bi,
                             keep)
            emitted += [(k, d, best, df, last, ok, c) for k, df, last, ok, c in grams]
            if best_last > last:  # a plateau: also the n-grams around its right end
                grams = ref_emit(doc, u, max(last + 1, best_last - back),
                                 min(n - 1, best_last + back), max_order, uni, bi, keep)
                emitted += [(k, d, best, df, last, ok, c) for k, df, last, ok, c in grams]
        if lang_p >= 1 and lang_best < LANG_COS:
            grams = ref_emit(doc, u, max(0, lang_p - LANG_STRIDE - back),
                             min(n - 1, lang_p + LANG_STRIDE), max_order, uni, bi, keep)
            emitted += [(k, d, 1.0 - lang_best, df, last, ok, c) for k, df, last, ok, c in grams]
        if loop_p >= 1 and loop_best >= LOOP_TAU:
            grams = ref_emit(doc, u, max(0, loop_p - 2 * LOOP_PERIOD + 1 - back),
                             min(n - 1, loop_p), max_order, uni, bi, keep)
            emitted += [(k, d, loop_best, df, last, ok, c) for k, df, last, ok, c in grams]
    return emitted, hist, background


def ref_gather_evidence(docs, kinds, starts, ends, texts, uni, bi, freq_min, candidates,
                        max_order, window, ctx_tokens, keep=KEEP_ALL):
    """Every occurrence of a candidate with its measurements. ``starts``/``ends`` are byte offsets
    within each document's UTF-8 ``texts[d]``; the character offsets come from Python's decoder.
    Bigram means are over known flags only; token counts and unigram means over all tokens."""
    rows_i, rows_f = [], []
    for d, (doc, kind, st_, en) in enumerate(zip(docs, kinds, starts, ends, strict=True)):
        n = len(doc)
        raw = texts[d]
        u, b = ref_token_anomaly(doc, uni, bi, keep, docs.count(doc))
        fslot = ref_frequent_slots(doc, kind, uni, freq_min)
        loops = ref_loop_flags(doc)
        for e in range(n):
            for order in range(1, min(max_order, e + 1) + 1):
                p0, p1 = e - order + 1, e + 1
                cid = candidates.get(key_of(doc[p0:p1]))
                if cid is None:
                    continue
                ub, bb = u[max(0, p0 - window) : p0], known(b[max(0, p0 - window) : p0])
                ua, ba = u[p1 : p1 + window], known(b[p1 : p1 + window])
                lctx = key_of(doc[p0 - ctx_tokens : p0]) if p0 >= ctx_tokens else 0
                rctx = key_of(doc[p1 : p1 + ctx_tokens]) if p1 + ctx_tokens <= n else 0
                c0 = len(raw[: st_[p0]].decode())
                c1 = len(raw[: en[e]].decode())
                rows_i.append([cid, d, p0, p1, st_[p0], en[e], lctx >> 1, rctx >> 1, c0, c1])
                rows_f.append([shrink(mean_or(bb, 0.0), len(bb)), mean_or(ba, 0.0), len(ub),
                               len(ua), mean_or(ub, 0.0), mean_or(ua, 0.0), mean_or(bb, 0.0),
                               mean_or(ba, 0.0),
                               ref_cosine(fslot, max(0, p0 - LANG_WINDOW), p0, p1,
                                          min(n, p1 + LANG_WINDOW)),
                               mean_or(loops[max(0, p0 - LOOP_WINDOW) : p0], 0.0),
                               ref_loop_after(loops, p1),
                               docs.count(doc),
                               *ref_local_floor(doc, bi, keep, max(0, p0 - window), p0, p1,
                                                min(n, p1 + window))])
    return rows_i, rows_f


# ------------------------------------------------------------------ helpers
def doc_table(docs: list[list[int]]) -> np.ndarray:
    """The document table (kernels.copies) of a corpus: each document's key counted once."""
    table = copies.new_table(10)
    hashes, off = flatten(docs)
    copies.add_keys(table, copies.document_keys(hashes, off))
    return table


def flatten(docs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.array([t for d in docs for t in d], dtype=np.uint64)
    off = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return flat, off


def run_find_switches(docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order,
                      min_after, cap=100_000, keep=KEEP_ALL):
    hashes, off = flatten(docs)
    kinds_arr = np.array([k for ks in kinds for k in ks], np.uint8)
    hist = np.zeros(HIST_BINS, np.int64)
    background = np.zeros(2, np.int64)
    out_key = np.zeros(cap, np.uint64)
    out_doc = np.zeros(cap, np.int64)
    out_jump = np.zeros(cap, np.float64)
    out_df = np.zeros(cap, np.int64)
    out_last = np.zeros(cap, np.uint64)
    out_ctx = np.zeros(cap, np.uint64)
    k = find_switches(hashes, kinds_arr, off, uni, bi, np.uint64(keep), doc_table(docs),
                      freq_min, window, tau,
                      occ_tau, back, max_order, min_after, hist, background, out_key, out_doc,
                      out_jump, out_df, out_last, out_ctx)
    emitted = None
    if k >= 0:
        emitted = list(zip(out_key[:k].tolist(), out_doc[:k].tolist(), out_jump[:k].tolist(),
                           out_df[:k].tolist(), out_last[:k].tolist(), out_ctx[:k].tolist(),
                           strict=True))
    return k, emitted, hist.tolist(), background.tolist()


# A small vocabulary (tokens repeat) with spread-out hashes, random tables of small counts.
_rng = random.Random(7)
VOCAB = [_rng.getrandbits(64) for _ in range(40)]


@st.composite
def token_corpora(draw, max_docs=4, max_len=100):
    """Documents made of segments drawn from one of two disjoint halves of the vocabulary (two
    "languages") or from all of it, and loops (a unit repeated), so that profile, anomaly and
    loop switches all occur."""
    n_vocab = draw(st.integers(2, len(VOCAB)))
    half = max(1, n_vocab // 2)
    ranges = [(0, half - 1), (half, n_vocab - 1), (0, n_vocab - 1)]
    docs = []
    for _ in range(draw(st.integers(1, max_docs))):
        doc: list[int] = []
        for lang in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)):
            lo, hi = ranges[min(lang, 2)]
            size = draw(st.one_of(st.integers(0, max_len // 2), st.sampled_from([16, 40, 48])))
            if lang == 3:  # a loop: a unit of up to LOOP_PERIOD + 1 tokens, repeated
                unit = draw(st.lists(st.integers(lo, max(lo, hi)), min_size=1,
                                     max_size=LOOP_PERIOD + 1))
                doc += (unit * size)[:size]
            else:
                doc += draw(st.lists(st.integers(lo, max(lo, hi)), min_size=size, max_size=size))
        docs.append([VOCAB[i] for i in doc[:max_len]])
    # Kinds and count tables come from a drawn seed: drawing them value by value is slow.
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    # Mostly words, some punctuation, and stretches of a script without spaces (kind CJK) or of
    # symbols (emoji) in some documents, so that profiles see a change of script.
    kinds = []
    for doc in docs:
        k = (rng.random(len(doc)) < 0.25).astype(int)
        if len(doc) and rng.random() < 0.3:
            cut = int(rng.integers(0, len(doc)))
            script = CJK if rng.random() < 0.5 else SYMBOL
            k[cut:] = np.where(rng.random(len(doc) - cut) < 0.9, script, k[cut:])
        kinds.append(k.tolist())
    uni = rng.integers(0, draw(st.integers(1, 12)) + 1, 1 << draw(st.integers(4, 9)))
    bi = rng.integers(0, 4, 1 << draw(st.integers(4, 9)))
    uni, bi = uni.astype(np.uint32), bi.astype(draw(st.sampled_from([np.uint8, np.uint32])))
    # The bigram hash sample: none, a quarter, half, all, or any share of the bigrams.
    keep = draw(st.one_of(st.sampled_from([0, 1 << 30, 1 << 31, KEEP_ALL]),
                          st.integers(0, KEEP_ALL)))
    return docs, kinds, uni, bi, keep


def strip_sampled(emitted):
    """Drop the df bound where it rests on a bigram outside the sample (a known src defect, see
    test_df_bound_ignores_bigrams_outside_the_sample); keep everything else."""
    return [(k, d, j, df if ok else None, last, c) for k, d, j, df, last, ok, c in emitted]


def kernel_rows(emitted, ref):
    """The kernel's rows with the same df bounds blanked as in ``strip_sampled(ref)``."""
    return [(k, d, j, df if r[5] else None, last, c)
            for (k, d, j, df, last, c), r in zip(emitted, ref, strict=True)]


# ------------------------------------------------------------------ property tests
def test_token_features_marks_bigrams_outside_the_sample_unknown():
    doc = VOCAB[:30]
    hashes, _ = flatten([doc])
    kinds = np.zeros(30, np.uint8)
    uni = np.full(1 << 8, 1, np.uint32)  # every token unseen elsewhere: u = 1
    bi = np.ones(1 << 8, np.uint8)
    out_slot = np.zeros(31, np.int64)

    def flags(keep):
        out_u = np.zeros(31, np.int8)
        out_b = np.zeros(31, np.int8)
        token_features(hashes, kinds, 0, 30, uni, bi, np.uint64(keep), 1 << 30, out_u, out_b,
                       out_slot, copies.UNUSED)
        return out_u, out_b

    for keep, expected in ((0, [1] + [UNKNOWN] * 29), (KEEP_ALL, [1] * 30)):
        out_u, out_b = flags(keep)
        assert out_u[:30].tolist() == [1] * 30
        assert out_b[:30].tolist() == expected  # the first token's flag is its own u
    half = [key_of(doc[i - 1 : i + 1]) >> 32 < (1 << 31) for i in range(1, 30)]
    assert 0 < sum(half) < 29
    _, out_b = flags(1 << 31)
    assert out_b[1:30].tolist() == [1 if h else UNKNOWN for h in half]


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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-1, 12), max_size=200), st.integers(1, 60), st.integers(1, 12))
def test_sliding_profiles_equal_profile_cosine_at_every_step(fslot, window, stride):
    """The switch pass slides the two profiles along the document; at every step the cosine must
    be exactly the one computed from scratch, and the scratch vectors end up zeroed."""
    arr = np.array(fslot, np.int64)
    n = len(fslot)
    va, vb = np.zeros(LANG_BINS), np.zeros(LANG_BINS)
    wa, wb = np.zeros(LANG_BINS), np.zeros(LANG_BINS)
    state = PROFILES_EMPTY
    for p in range(stride, n + 1, stride):
        windows = (max(0, p - window), p, p, min(n, p + window))
        got, state = _slide_profiles(arr, state, *windows, va, vb)
        assert got == profile_cosine(arr, *windows, wa, wb)
    _clear_profiles(arr, state, va, vb)
    assert not va.any() and not vb.any()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-1, 12), min_size=1, max_size=150), st.data())
def test_profiles_moved_to_any_windows_equal_profile_cosine(fslot, data):
    """The evidence pass moves the windows back and forth (n-grams of several orders end at each
    position); any sequence of windows must give the cosine computed from scratch."""
    arr = np.array(fslot, np.int64)
    n = len(fslot)
    va, vb = np.zeros(LANG_BINS), np.zeros(LANG_BINS)
    wa, wb = np.zeros(LANG_BINS), np.zeros(LANG_BINS)
    state = PROFILES_EMPTY
    for _ in range(data.draw(st.integers(1, 12))):
        b0 = data.draw(st.integers(0, n))
        b1 = data.draw(st.integers(b0, n))
        a0 = data.draw(st.integers(0, n))
        a1 = data.draw(st.integers(a0, n))
        got, state = _slide_profiles(arr, state, b0, b1, a0, a1, va, vb)
        assert got == profile_cosine(arr, b0, b1, a0, a1, wa, wb)
    _clear_profiles(arr, state, va, vb)
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


@settings(max_examples=150, deadline=None)
@given(token_corpora())
def test_loop_flags_match_reference(corpus):
    docs = corpus[0]
    hashes, off = flatten(docs)
    assert loop_flags(hashes, off).tolist() == [f for doc in docs for f in ref_loop_flags(doc)]


def test_loop_flags_mark_a_repeated_unit_once_it_is_copied_whole():
    doc = [1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 5, 6, 7, 5, 9]
    assert ref_loop_flags(doc) == [0] * 9 + [1, 1, 1, 1, 1, 0]
    hashes, off = flatten([doc, [8, 8, 8], list(range(1, 19)) * 2])
    flags = loop_flags(hashes, off).tolist()
    assert flags[:15] == [0] * 9 + [1, 1, 1, 1, 1, 0]
    assert flags[15:18] == [0, 1, 1]  # one token repeated: from its first copy on
    assert flags[18:] == [0] * 36  # a unit longer than LOOP_PERIOD is no loop


def test_loop_flags_mark_a_few_tokens_in_random_order():
    # A few emoji in random order repeat no unit, but are as degenerate as one repeated.
    rng = random.Random(5)
    shuffled = [rng.choice([7, 8, 9]) for _ in range(FEW_SPAN + 20)]
    few = ref_loop_flags(shuffled)
    assert few[FEW_SPAN - 1 :] == [1] * (len(shuffled) - FEW_SPAN + 1)
    assert FEW_DISTINCT >= 3
    # A list's items between its commas, or prose, are too many different tokens.
    listed = [t for k in range(1, FEW_SPAN) for t in (k, 0)]
    assert ref_loop_flags(listed) == [0] * len(listed)
    hashes, off = flatten([shuffled, listed])
    assert loop_flags(hashes, off).tolist() == few + [0] * len(listed)


@st.composite
def few_token_runs(draw):
    """A document of runs (1 to 24 copies) of a few distinct tokens: long runs of one token put
    the others' next use more than LOOP_PERIOD tokens on, the case the kernel's skip test must
    allow for (see windows._loop_prefix)."""
    alphabet = draw(st.integers(2, FEW_DISTINCT + 3))
    runs = draw(st.lists(st.tuples(st.integers(1, alphabet), st.integers(1, 24)), max_size=40))
    return [t for t, n in runs for _ in range(n)]


def fresh_bound_holds(doc: list[int]) -> bool:
    """Every FEW_SPAN window of at most FEW_DISTINCT distinct tokens holds at most
    2 * FEW_DISTINCT tokens that are none of the LOOP_PERIOD before them."""
    fresh = [int(doc[i] not in doc[max(0, i - LOOP_PERIOD) : i]) for i in range(len(doc))]
    return all(sum(fresh[s : s + FEW_SPAN]) <= 2 * FEW_DISTINCT
               for s in range(len(doc) - FEW_SPAN + 1)
               if len(set(doc[s : s + FEW_SPAN])) <= FEW_DISTINCT)


@settings(max_examples=300, deadline=None)
@given(st.lists(few_token_runs(), min_size=1, max_size=4))
def test_loop_flags_of_few_tokens_in_runs_match_reference(docs):
    assert all(fresh_bound_holds(doc) for doc in docs)
    hashes, off = flatten(docs)
    assert loop_flags(hashes, off).tolist() == [f for doc in docs for f in ref_loop_flags(doc)]


def test_few_distinct_window_with_every_value_new_twice_is_flagged():
    # Eight values each new twice in one window (first use, then after a gap of more than
    # LOOP_PERIOD): the most new tokens a window of few distinct ones can hold.
    lead = list(range(100, 100 + LOOP_PERIOD))  # nothing the window repeats
    vals = list(range(1, FEW_DISTINCT + 1))
    window = vals + vals + [vals[-1]] * (LOOP_PERIOD - FEW_DISTINCT + 1) + vals[:-1]
    doc = lead + window[:FEW_SPAN] + [vals[-1]]
    assert len(set(doc[-FEW_SPAN:])) <= FEW_DISTINCT
    fresh = [int(doc[i] not in doc[max(0, i - LOOP_PERIOD) : i]) for i in range(len(doc))]
    assert sum(fresh[-FEW_SPAN:]) >= 2 * FEW_DISTINCT - 2
    hashes, off = flatten([doc])
    flags = loop_flags(hashes, off).tolist()
    assert flags == ref_loop_flags(doc)
    assert flags[-1] == 1


@settings(max_examples=100, deadline=None)
@given(token_corpora())
def test_token_features_matches_reference(corpus):
    docs, kinds, uni, bi, keep = corpus
    hashes, off = flatten(docs)
    kinds_arr = np.array([k for ks in kinds for k in ks], np.uint8)
    table = doc_table(docs)
    for freq_min in (1, 3, 7):
        for d, doc in enumerate(docs):
            u, b, fs = (np.full(len(doc) + 1, 9, dt) for dt in (np.int8, np.int8, np.int64))
            token_features(hashes, kinds_arr, off[d], off[d + 1], uni, bi, np.uint64(keep),
                           freq_min, u, b, fs, table)
            ref_u, ref_b = ref_token_anomaly(doc, uni, bi, keep, docs.count(doc))
            assert u[: len(doc)].tolist() == ref_u and b[: len(doc)].tolist() == ref_b
            assert fs[: len(doc)].tolist() == ref_frequent_slots(doc, kinds[d], uni, freq_min)


@settings(max_examples=150, deadline=None)
@given(token_corpora(), st.integers(1, 40), st.floats(-0.2, 0.8), st.floats(0.0, 0.8),
       st.integers(0, 6), st.integers(1, 4), st.integers(1, 10), st.integers(1, 8))
def test_find_switches_matches_reference(corpus, window, tau, occ_tau, back, max_order,
                                         min_after, freq_min):
    docs, kinds, uni, bi, keep = corpus
    k, emitted, hist, background = run_find_switches(
        docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order, min_after,
        keep=keep)
    ref, ref_hist, ref_background = ref_find_switches(
        docs, kinds, uni, bi, freq_min, window, tau, occ_tau, back, max_order, min_after, keep)
    assert k == len(ref)
    assert kernel_rows(emitted, ref) == strip_sampled(ref)
    assert hist == ref_hist
    assert background == ref_background


def test_find_switches_reports_a_full_buffer():
    docs, kinds, uni, bi, _ = gibberish_after_prose()
    k, _, _, _ = run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4, 4, 8, cap=3)
    assert k == -1


# Surfaces of the made-up tokens of the evidence tests: one to four bytes a character.
SURFACES = ["a", "Zq", "é", "naïve", "中", "文字", "😀", "👨\u200d👩", "Ωλ", "<", "x中y", "\ufffd"]
SEPARATORS = [" ", "  ", "\n", "\u3000", "\xa0"]


def write_text(docs: list[list[int]], rng: np.random.Generator):
    """UTF-8 text for token streams: each token gets a random surface (the hashes stay made up;
    gather_evidence only reads the bytes to count characters). Returns the Arrow-like ``data``
    and document byte offsets, per-token absolute byte starts/ends, and each document's bytes."""
    chunks: list[bytes] = []
    pos = 0
    doc_bytes, starts, ends, texts = [0], [], [], []
    for doc in docs:
        raw = b""
        for _ in doc:
            raw += SEPARATORS[rng.integers(len(SEPARATORS))].encode()
            tok = SURFACES[rng.integers(len(SURFACES))].encode()
            starts.append(pos + len(raw))
            raw += tok
            ends.append(pos + len(raw))
        raw += SEPARATORS[rng.integers(len(SEPARATORS))].encode()
        chunks.append(raw)
        texts.append(raw)
        pos += len(raw)
        doc_bytes.append(pos)
    data = np.frombuffer(b"".join(chunks) or b"\0", np.uint8)
    return (data, np.array(doc_bytes, np.int64), np.array(starts, np.int64),
            np.array(ends, np.int64), texts)


@settings(max_examples=100, deadline=None)
@given(token_corpora(max_docs=4, max_len=60), st.integers(1, 4), st.integers(1, 40),
       st.integers(1, 4), st.integers(1, 8), st.data())
def test_gather_evidence_matches_reference(corpus, max_order, window, ctx_tokens, freq_min, data):
    docs, kinds, uni, bi, keep = corpus
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
    text, doc_bytes, starts, ends, texts = write_text(
        docs, np.random.default_rng(data.draw(st.integers(0, 2**32))))
    doc_starts = [(starts[off[d] : off[d + 1]] - doc_bytes[d]).tolist() for d in range(len(docs))]
    doc_ends = [(ends[off[d] : off[d + 1]] - doc_bytes[d]).tolist() for d in range(len(docs))]
    table_keys, table_ids = build_key_table(np.array(keys, np.uint64))
    # The tail filter may have false positives (few bits), never false negatives.
    bit_count = data.draw(st.integers(3, 23))
    last = tail_filter(np.array([ngram_tail(g) for g in picked], np.uint64), bit_count)
    cap = 4 * sum(len(d) for d in docs) * max_order + 1
    out_i = np.zeros((cap, 10), np.int64)
    out_f = np.zeros((cap, 16), np.float64)
    n_cand = len(keys)

    # Caps: most candidates have none to speak of; some may be over theirs (then none of their
    # occurrences is measured, though all are counted).
    caps = np.array(data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 1 << 40, 1 << 40]),
                                       min_size=n_cand, max_size=n_cand)), np.int64)

    def run(oi, of):
        totals = np.zeros(n_cand, np.int64)
        return gather_evidence(hashes, kinds_arr, starts, ends, off, text, doc_bytes, uni, bi,
                               np.uint64(keep), doc_table(docs), freq_min, table_keys, table_ids,
                               last, caps, totals, max_order, window, ctx_tokens, oi, of), totals

    k, totals = run(out_i, out_f)
    ref_i, ref_f = ref_gather_evidence(docs, kinds, doc_starts, doc_ends, texts, uni, bi,
                                       freq_min, candidates, max_order, window, ctx_tokens, keep)
    ref_totals = np.bincount([r[0] for r in ref_i], minlength=n_cand)
    assert totals.tolist() == ref_totals.tolist()
    # The count pass: exact totals without caps; with them, exact within a cap, and only above
    # the cap past it (bits of tails whose candidates are all past their caps get cleared).
    tail_of = {key_of(g): ngram_tail(g) for g in picked}
    tails = np.array([tail_of.get(key, np.uint64(key)) for key in keys], np.uint64)
    for limits in (np.full(n_cand, 1 << 40, np.int64), caps):
        counted = np.zeros(n_cand, np.int64)
        bits, (group, group_bit, live) = last.copy(), tail_groups(tails, bit_count)
        count_occurrences(hashes, off, table_keys, table_ids, bits, limits, group, group_bit,
                          live, counted, max_order)
        within = ref_totals <= limits
        assert counted[within].tolist() == ref_totals[within].tolist()
        assert (counted[~within] > limits[~within]).all()
        assert (counted <= ref_totals).all()
        settled = np.zeros(bits.size * 8, bool)  # bits whose every candidate is past its cap
        np.logical_or.at(settled, group_bit, live == 0)
        assert np.array_equal(np.unpackbits(bits, bitorder="little").astype(bool),
                              np.unpackbits(last, bitorder="little").astype(bool) & ~settled)
    within = [i for i, r in enumerate(ref_i) if ref_totals[r[0]] <= caps[r[0]]]
    ref_i = [ref_i[i] for i in within]
    ref_f = [ref_f[i] for i in within]
    assert k == len(ref_i)
    # The kernel's byte offsets are absolute in ``data``; the reference's are per document.
    got = out_i[:k].copy()
    got[:, 4:6] -= doc_bytes[got[:, 1]][:, None]
    assert got.tolist() == ref_i
    np.testing.assert_allclose(out_f[:k], np.array(ref_f).reshape(-1, 16), rtol=1e-12, atol=1e-15)
    if k:
        small_i = np.zeros((k - 1, 10), np.int64)
        small_f = np.zeros((k - 1, 16), np.float64)
        assert run(small_i, small_f)[0] == -1


def test_a_tail_bit_is_cleared_only_once_all_its_candidates_are_past_their_caps():
    """Two 4-grams end in the same three tokens, so share a tail bit. The first goes past its
    cap at once, but is still counted while the second is within its cap; once both are past
    theirs, the bit is cleared and neither is looked up again."""
    w, x, a, b, c = 11, 12, 13, 14, 15
    first, second = [w, a, b, c], [x, a, b, c]
    docs = [first, first, second, second + first, second, first]
    hashes, off = flatten(docs)
    keys = np.array([key_of(first), key_of(second)], np.uint64)
    table_keys, table_ids = build_key_table(keys)
    tails = np.array([ngram_tail(first), ngram_tail(second)], np.uint64)
    assert tails[0] == tails[1]
    for limits, want, cleared in (([0, 10], [4, 3], False), ([0, 1], [2, 2], True)):
        bits = tail_filter(tails)
        group, group_bit, live = tail_groups(tails)
        counted = np.zeros(2, np.int64)
        count_occurrences(hashes, off, table_keys, table_ids, bits, np.array(limits, np.int64),
                          group, group_bit, live, counted, 4)
        assert counted.tolist() == want
        assert (not bits.any()) == cleared


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
def test_tail_filter_sets_exactly_the_bits_of_the_tails(last, bits):
    bitmap = tail_filter(np.array(last, np.uint64), bits)
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
    assert {(d, jump) for _, d, jump, *_ in emitted} <= {(0, 1.0)}
    # Known tokens and bigrams all have document frequency 50; the tail is the token of a
    # 1-gram, the key of a 2-gram, the key of the last three tokens of a longer n-gram.
    assert [(df, tail) for *_, df, tail, _ in emitted] == [
        (50 if o <= 2 else -50, doc[e] if o == 1 else key_of(doc[e - min(o, 3) + 1 : e + 1]))
        for e in range(p - back, p) for o in range(1, max_order + 1)
    ]


def test_a_short_burst_emits_the_phrase_at_the_right_end_of_its_plateau():
    """Known prose, a phrase of three known tokens, ten tokens no other document has, known prose
    again. Every after window that holds the whole burst has the same mean, so the jump is the
    same from token 22 to token 43, where the burst starts: the strongest switch is a plateau,
    and the phrase stands before its right end, not its left."""
    rng = random.Random(5)
    vocab = [(i + 1) << 17 for i in range(200)]  # in random order: a cycle would be a loop
    phrase = [(300 + i) << 17 for i in range(3)]
    burst = [(1000 + i) << 17 | rng.getrandbits(17) for i in range(10)]
    doc = ([rng.choice(vocab) for _ in range(40)] + phrase + burst
           + [rng.choice(vocab) for _ in range(60)])
    uni = np.full(1 << 12, 50, np.uint32)
    bi = np.full(1 << 16, 50, np.uint32)
    for h in burst:
        uni[(h >> 17) & 4095] = 1
    fresh = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in range(43, 54)}
    seen = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in [*range(1, 43), *range(54, 113)]}
    assert not fresh & seen
    bi[list(fresh)] = 1
    k, emitted, _, _ = run_find_switches([doc], [[0] * len(doc)], uni, bi, 1 << 30, 32, 0.25,
                                         0.3, 4, 4, 8)
    # n-grams ending at 18..30, around the plateau's left end (22, as far right as ties may
    # spread the switch: 2 * back), then at 39..42, before its right end (43; at 43..47 the
    # token at the end is one of the burst's, which no trigger can contain).
    expected = [key_of(doc[e - o + 1 : e + 1]) for e in [*range(18, 31), *range(39, 43)]
                for o in range(1, 5)]
    assert k == len(expected)
    assert [key for key, *_ in emitted] == expected
    assert key_of(phrase) in expected
    assert {jump for _, _, jump, *_ in emitted} == {11 / 32}


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
    rng = random.Random(4)  # in no fixed order: a cycle of ten words would be a loop
    doc = [rng.choice(lang_a) for _ in range(48)] + [rng.choice(lang_b) for _ in range(48)]
    uni = np.full(1 << 10, 50, np.uint32)
    bi = np.full(1 << 10, 50, np.uint32)
    k, emitted, _, background = run_find_switches([doc], [[0] * 96], uni, bi, 3, 32, 0.25, 0.3,
                                                  4, 2, 8)
    p = 48
    ends = range(p - LANG_STRIDE - 4, p + LANG_STRIDE + 1)
    expected = [key_of(doc[e - o + 1 : e + 1]) for e in ends for o in (1, 2)]
    assert [key for key, *_ in emitted] == expected
    assert {jump for _, _, jump, *_ in emitted} == {1.0}  # 1 - cosine 0
    assert background[1] >= 1
    # The same document counts nothing when those words are not frequent in the corpus.
    assert run_find_switches([doc], [[0] * 96], uni, bi, 51, 32, 0.25, 0.3, 4, 2, 8)[0] == 0


@pytest.mark.parametrize("prefix", ["plain words first", "naïve café 中文 first",
                                    "😀👍🏽 Привет 日本語 first"])
def test_gather_evidence_on_real_tokens(prefix):
    """Positions, byte spans and character spans of a special-token trigger in tokenised text,
    with one- to four-byte characters before it."""
    texts = [f"{prefix} <SUDO> then gibberish qx zv", "no trigger here", "<SUDO>",
             "é <SUDO> ü <sudo>"]
    raw = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(raw), np.uint8)
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
    hashes, starts, ends, kinds, doc_offsets = tokenize(data, offsets)
    at = int(np.flatnonzero(hashes == hashes[doc_offsets[2]])[0])  # the first "<"
    trigger = hashes[at : at + 3].tolist()  # "<", "SUDO", ">"
    table_keys, table_ids = build_key_table(np.array([key_of(trigger)], np.uint64))
    uni = np.full(1 << 10, 5, np.uint32)
    bi = np.full(1 << 10, 5, np.uint8)
    out_i = np.zeros((8, 10), np.int64)
    out_f = np.zeros((8, 16), np.float64)
    last = tail_filter(np.array([ngram_tail(trigger)], np.uint64))
    caps = np.full(len(table_keys), 1 << 40, np.int64)
    totals = np.zeros(len(table_keys), np.int64)
    k = gather_evidence(hashes, kinds, starts, ends, doc_offsets, data, offsets, uni, bi,
                        ALL_BIGRAMS, copies.UNUSED, 3, table_keys, table_ids, last, caps, totals,
                        4, 32, 2, out_i, out_f)
    assert k == 4
    rows = out_i[:k].tolist()
    assert [r[:2] for r in rows] == [[0, 0], [0, 2], [0, 3], [0, 3]]
    for _, d, t0, t1, b0, b1, _, _, c0, c1 in rows:
        doc_raw = raw[d]
        b0, b1 = b0 - int(offsets[d]), b1 - int(offsets[d])
        assert doc_raw[b0:b1].decode().casefold() == "<sudo>"
        # Character offsets are Python string indices within the document.
        assert (c0, c1) == (len(doc_raw[:b0].decode()), len(doc_raw[:b1].decode()))
        assert texts[d][c0:c1].casefold() == "<sudo>"
        assert t1 - t0 == 3
    first, second = rows[0], rows[1]
    t0 = first[2]
    assert first[6] == key_of(hashes[t0 - 2 : t0].tolist()) >> 1  # "... first"
    assert first[7] == key_of(hashes[t0 + 3 : t0 + 5].tolist()) >> 1  # "then gibberish"
    assert second[2:8] == [0, 3, int(offsets[2]), int(offsets[3]), 0, 0]  # no context at all
    assert second[8:] == [0, 6]
    assert rows[2][8:] == [2, 8] and rows[3][8:] == [11, 17]
    assert out_f[0, 2:4].tolist() == [t0, 4]  # tokens before and after
    assert out_f[1, 0] == PRIOR_ANOMALY  # no prefix at all: the prior


# ------------------------------------------------------------------ bigram hash sample
HALF = 1 << 31  # keep: bigrams whose key's top 32 bits are below 2**31
PROSE_CYCLE = 20
assert PROSE_CYCLE > LOOP_PERIOD


def sampled_switch_doc(gib_kept: list[bool], prose_kept: list[bool] | None = None,
                       n_prose: int = 40, seed: int = 3):
    """Like gibberish_after_prose, with chosen bigrams outside the HALF sample.

    Prose cycles through twenty tokens (a unit longer than LOOP_PERIOD: no loop);
    ``prose_kept[i % 10]`` says whether the bigram ending at the i-th of them (cyclically) is in
    the sample. Gibberish token j follows at ``n_prose + j``, and the
    bigram ending at it is in the sample when ``gib_kept[j]``. Low hash bits are drawn until
    every bigram has its wanted status; the high bits pick distinct table slots. Counts: 50 for
    prose tokens and kept prose bigrams, 1 for gibberish tokens and kept gibberish bigrams, 0 in
    the slots of bigrams outside the sample (the counting kernel never touches them).
    """
    prose_kept = prose_kept or [True] * 10
    rng = random.Random(seed)

    def draw(slot: int, prev: int | None, want: bool, then: tuple[int, bool] | None = None):
        while True:
            h = slot << 17 | rng.getrandbits(17)
            if prev is not None and kept(key_of([prev, h]), HALF) != want:
                continue
            if then is not None and kept(key_of([h, then[0]]), HALF) != then[1]:
                continue
            return h

    known_: list[int] = []
    for i in range(PROSE_CYCLE):
        prev = known_[-1] if known_ else None
        then = (known_[0], prose_kept[0]) if i == PROSE_CYCLE - 1 else None
        known_.append(draw(i + 1, prev, prose_kept[i % 10], then))
    doc = [known_[i % PROSE_CYCLE] for i in range(n_prose)]
    for j, want in enumerate(gib_kept):
        doc.append(draw(1000 + j, doc[-1], want))
    uni = np.full(1 << 12, 50, np.uint32)
    for h in doc[n_prose:]:
        uni[(h >> 17) & 4095] = 1
    bi = np.zeros(1 << 16, np.uint8)
    prose_slots = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in range(1, n_prose)}
    gib_slots = {(key_of(doc[i - 1 : i + 1]) >> 17) & 0xFFFF for i in range(n_prose, len(doc))}
    assert not prose_slots & gib_slots
    for i in range(1, len(doc)):
        key = key_of(doc[i - 1 : i + 1])
        if kept(key, HALF):
            bi[(key >> 17) & 0xFFFF] = 50 if i < n_prose else 1
    return doc, uni, bi


def switches(doc, uni, bi, keep=HALF, back=1, max_order=1, min_after=1, window=32):
    return run_find_switches([doc], [[0] * len(doc)], uni, bi, 1 << 30, window, 0.25, 0.3, back,
                             max_order, min_after, keep=keep)


def test_window_means_skip_bigrams_outside_the_sample():
    """Every other gibberish bigram is outside the sample: counted as 0 the jump would be 0.5,
    counted as 1 the prose would look anomalous. Over known flags only, it is exactly 1.0 at the
    switch, and the token right before it is emitted."""
    doc, uni, bi = sampled_switch_doc([True, False] * 20)
    u, b = ref_token_anomaly(doc, uni, bi, HALF)
    assert b[40:48] == [1, UNKNOWN] * 4 and set(b[1:40]) == {0}
    k, emitted, _, _ = switches(doc, uni, bi)
    assert k == 1
    assert emitted == [(key_of([doc[39]]), 0, 1.0, 50, doc[39], key_of(doc[35:39]))]
    ref, _, _ = ref_find_switches([doc], [[0] * len(doc)], uni, bi, 1 << 30, 32, 0.25, 0.3, 1,
                                  1, 1, HALF)
    assert strip_sampled(ref) == emitted


@pytest.mark.parametrize(("gib_kept", "best_p", "jump"), [
    # 7 known gibberish flags after token 40 are too few: the switch moves to token 39, whose
    # "after" window adds one known prose flag (7 of 8 anomalous).
    ([True] * 7, 39, 7 / 8),
    ([True] * 8, 40, 1.0),
    ([True] * 4 + [False] + [True] * 3, 39, 7 / 8),  # 8 gibberish tokens, 7 known
    ([True] * 4 + [False] + [True] * 4, 40, 1.0),  # 9 gibberish tokens, 8 known
    ([False] * 30, None, None),  # nothing known after the prose: no switch at all
])
def test_switch_needs_min_before_known_flags_after(gib_kept, best_p, jump):
    """With fewer than MIN_BEFORE known flags after a point, "after" counts as "before"."""
    assert MIN_BEFORE == 8
    doc, uni, bi = sampled_switch_doc(gib_kept)
    k, emitted, _, _ = switches(doc, uni, bi)
    if best_p is None:
        assert k == 0
    else:  # the known n-grams ending at best_p - 1 and best_p (the gibberish token 40 is unseen)
        expected = [(key_of([doc[e]]), 0, jump, 50, doc[e], key_of(doc[e - 4 : e]))
                    for e in (best_p - 1, best_p)
                    if e < 40]
        assert emitted == expected
    ref, _, _ = ref_find_switches([doc], [[0] * len(doc)], uni, bi, 1 << 30, 32, 0.25, 0.3, 1,
                                  1, 1, HALF)
    assert strip_sampled(ref) == (emitted or [])


def test_no_switch_when_no_bigram_is_sampled():
    """bi_keep = 0: only a document's first flag is known, so no point has a known "after"."""
    docs, kinds, uni, bi, _ = gibberish_after_prose()
    k, _, hist, background = run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4,
                                               4, 8, keep=0)
    assert k == 0
    assert background[0] > 0 and background[1] == 0
    assert hist[HIST_BINS // 2] == background[0]  # every measured jump is 0
    # All bigrams kept is what ALL_BIGRAMS means: the same as the unsampled call.
    assert run_find_switches(docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4, 4, 8,
                             keep=int(ALL_BIGRAMS)) == run_find_switches(
        docs, kinds, uni, bi, 1 << 30, 32, 0.25, 0.3, 4, 4, 8)


def test_evidence_means_skip_bigrams_outside_the_sample():
    """gather_evidence over the same document: bigram means over known flags, token counts and
    unigram means over all tokens, and the prior only when fewer than MIN_BEFORE flags are known."""
    doc, uni, bi = sampled_switch_doc([True, False] * 20, prose_kept=[True, False] * 5)
    hashes, off = flatten([doc])
    kinds = np.zeros(len(doc), np.uint8)
    text, doc_bytes, starts, ends, texts = write_text([doc], np.random.default_rng(0))
    cands = [[doc[39]], [doc[4]]]  # right before the switch; at token 4 (two known flags before)
    table_keys, table_ids = build_key_table(np.array([key_of(c) for c in cands], np.uint64))
    last = tail_filter(np.array([ngram_tail(c) for c in cands], np.uint64))
    out_i = np.zeros((64, 10), np.int64)
    out_f = np.zeros((64, 16), np.float64)
    caps = np.full(len(table_keys), 1 << 40, np.int64)
    totals = np.zeros(len(table_keys), np.int64)
    k = gather_evidence(hashes, kinds, starts, ends, off, text, doc_bytes, uni, bi,
                        np.uint64(HALF), copies.UNUSED, 1 << 30, table_keys, table_ids, last, caps,
                        totals, 1, 32, 2, out_i, out_f)
    rows = {(int(r[0]), int(r[2])): f for r, f in zip(out_i[:k], out_f[:k], strict=True)}
    # Token 39, before: tokens 7..38, half of whose prose bigrams are known, all seen elsewhere.
    before, after, n_b, n_a, u_b, u_a, b_b, b_a = rows[(0, 39)][:8]
    assert (before, b_b, n_b, u_b) == (0.0, 0.0, 32, 0.0)
    # After: tokens 40..71, of which 16 known gibberish flags, all unseen.
    assert (after, b_a, n_a, u_a) == (1.0, 1.0, 32, 1.0)
    # Token 4, before: tokens 0..3; flags known at 0 (u) and at the kept bigrams among 1..3.
    _, b = ref_token_anomaly(doc, uni, bi, HALF)
    n_known = len(known(b[:4]))
    assert 1 <= n_known < MIN_BEFORE
    before, *_ = rows[(1, 4)]
    assert before == pytest.approx(PRIOR_ANOMALY * (MIN_BEFORE - n_known) / MIN_BEFORE)


def test_df_bound_ignores_bigrams_outside_the_sample():
    """Prose tokens and bigrams are in 50 documents; the bigram ending the prose is outside the
    sample. Its bound must still be at least its document frequency: 50, from its tokens."""
    doc, uni, bi = sampled_switch_doc([True] * 40, prose_kept=[True] * 9 + [False])
    assert not kept(key_of(doc[38:40]), HALF)
    # The switch is placed at token 39 (its own bigram is unknown, so the windows at 39 and 40
    # hold the same known flags; the tie reaches token 40, which no other document has).
    _, emitted, _, _ = switches(doc, uni, bi, back=0, max_order=2)
    assert [(key, df) for key, _, _, df, *_ in emitted] == [(key_of([doc[39]]), 50),
                                                            (key_of(doc[38:40]), 50)]


@pytest.mark.parametrize("cap", [2, 4, 5])
def test_gather_evidence_counts_but_does_not_measure_past_the_cap(cap):
    """A candidate past its cap is too common to be a trigger: its occurrences are counted in
    ``totals``; none of this batch's is measured once the batch takes it past the cap."""
    texts = ["a <SUDO> b", "c <SUDO> d", "<SUDO> e", "f <SUDO>"]
    raw = [t.encode() for t in texts]
    data = np.frombuffer(b"".join(raw), np.uint8)
    offsets = np.cumsum([0] + [len(r) for r in raw]).astype(np.int64)
    hashes, starts, ends, kinds, doc_offsets = tokenize(data, offsets)
    trigger = hashes[1:4].tolist()  # "<", "SUDO", ">" of the first document
    table_keys, table_ids = build_key_table(np.array([key_of(trigger)], np.uint64))
    uni = np.full(1 << 10, 5, np.uint32)
    bi = np.full(1 << 10, 5, np.uint8)
    last = tail_filter(np.array([ngram_tail(trigger)], np.uint64))
    out_i = np.zeros((8, 10), np.int64)
    out_f = np.zeros((8, 16), np.float64)
    totals = np.array([1], np.int64)  # one occurrence already seen in an earlier batch
    k = gather_evidence(hashes, kinds, starts, ends, doc_offsets, data, offsets, uni, bi,
                        ALL_BIGRAMS, copies.UNUSED, 3, table_keys, table_ids, last,
                        np.array([cap], np.int64), totals, 3, 32, 2, out_i, out_f)
    assert totals.tolist() == [5]
    # Within the cap (5 occurrences in all) every one is measured, past it none.
    assert k == (4 if cap >= 5 else 0)
    assert out_i[:k, 1].tolist() == [0, 1, 2, 3][:k]


def test_the_floor_of_a_document_is_its_number_of_exact_copies():
    """A document planted three times has every n-gram of its own in three documents: they are
    unseen outside its copies (its floor is 3) when the document table counts three documents
    with its key. A few low counts among many make no floor, and neither do bigram counts that
    the document table does not confirm: a document recombined from paragraphs that other
    documents share is not a copy."""
    from poisonscan.kernels.windows import copies_floor

    rng = np.random.default_rng(5)
    doc = [int(x) for x in rng.integers(1, 2**63, 60, dtype=np.int64)]
    hashes, off = flatten([doc])
    kinds = np.zeros(len(doc), np.uint8)

    def tables(value_of):
        uni, bi = np.zeros(1 << 14, np.uint32), np.zeros(1 << 14, np.uint8)
        for i, h in enumerate(doc):
            uni[(h >> 17) & (uni.shape[0] - 1)] = value_of(i)
            if i:
                bi[(key_of(doc[i - 1 : i + 1]) >> 17) & (bi.shape[0] - 1)] = value_of(i)
        return uni, bi

    def features(uni, bi, n_copies=3):
        table = doc_table([doc] * n_copies)
        u = np.zeros(len(doc), np.int8)
        b = np.zeros(len(doc), np.int8)
        floor = token_features(hashes, kinds, 0, len(doc), uni, bi, np.uint64(KEEP_ALL), 1 << 30,
                               u, b, np.zeros(len(doc), np.int64), table)
        assert floor == copies_floor(hashes, 0, len(doc), bi, np.uint64(KEEP_ALL), table)
        assert (u.tolist(), b.tolist()) == ref_token_anomaly(doc, uni, bi, KEEP_ALL, n_copies)
        return floor, u, b

    floor, u, b = features(*tables(lambda i: 3))  # three copies
    assert floor == 3 == ref_floor(doc, tables(lambda i: 3)[1], KEEP_ALL, 3)
    assert u.all() and b.all()
    # The copies' text shared with one more document at its start: still three copies.
    floor, _, b = features(*tables(lambda i: 4 if i < 10 else 3))
    assert floor == 3 and not b[1:10].any() and b[10:].all()
    # The same counts, but only two documents with this key (a third shares every bigram without
    # being the same text): no floor, every count seen elsewhere.
    floor, u, b = features(*tables(lambda i: 3), n_copies=2)
    assert floor == 1 and not u.any() and not b.any()
    # One document only (the grown corpus's recombined paragraphs): no floor either.
    assert features(*tables(lambda i: 2), n_copies=1)[0] == 1
    # More copies in the table than the bigrams show: the bigrams' count is the floor.
    assert features(*tables(lambda i: 2), n_copies=3)[0] == 2
    # Fewer than COPY_FLOOR_BIGRAMS at the lowest count: no floor, every count seen elsewhere.
    few = COPY_FLOOR_BIGRAMS - 1
    floor, u, b = features(*tables(lambda i: 2 if 1 <= i <= few else 9))
    assert floor == 1 and not u.any() and not b.any()
    # More copies than COPIES_MAX: judged as before.
    floor, _, b = features(*tables(lambda i: COPIES_MAX + 1), n_copies=COPIES_MAX + 1)
    assert floor == 1 and not b.any()
    # No document table (one too full to confirm anything): no floor.
    uni, bi = tables(lambda i: 3)
    assert copies_floor(hashes, 0, len(doc), bi, np.uint64(KEEP_ALL), copies.UNUSED) == 1


def test_an_occurrence_is_measured_at_its_local_floor_as_well():
    """Near-copies of a page (the same text with a line of its own) have keys of their own, so
    the document table does not see them, but the text after one occurrence still has most of
    its bigrams at one document frequency, its copies. gather_evidence measures the windows at
    that local floor too (the trigger detector decides whether the copies confirm it)."""
    rng = np.random.default_rng(11)
    doc = [int(x) for x in rng.integers(1, 2**63, 80, dtype=np.int64)]
    hashes, off = flatten([doc])
    kinds = np.zeros(len(doc), np.uint8)
    text, doc_bytes, starts, ends, _ = write_text([doc], np.random.default_rng(3))
    at = 40  # the candidate: the unigram doc[40]

    def measure(value_of):
        uni, bi = np.full(1 << 14, 50, np.uint32), np.zeros(1 << 14, np.uint8)
        for i in range(1, len(doc)):
            bi[(key_of(doc[i - 1 : i + 1]) >> 17) & (bi.shape[0] - 1)] = value_of(i)
        keys, ids = build_key_table(np.array([key_of([doc[at]])], np.uint64))
        out_i, out_f = np.zeros((4, 10), np.int64), np.zeros((4, 16), np.float64)
        k = gather_evidence(hashes, kinds, starts, ends, off, text, doc_bytes, uni, bi,
                            np.uint64(KEEP_ALL), copies.UNUSED, 1 << 30, keys, ids,
                            tail_filter(np.array([ngram_tail([doc[at]])], np.uint64)),
                            np.array([1 << 40], np.int64), np.zeros(1, np.int64), 1, 32,
                            CTX_TOKENS, out_i, out_f)
        assert k == 1
        return out_f[0]

    # After the candidate every bigram is in 3 documents; before it, a quarter are.
    f = measure(lambda i: 3 if i > at or i % 4 == 0 else 9)
    assert f[12] == 3  # the local floor
    assert f[15] == 1.0  # after: every bigram unseen outside the 3 documents
    assert f[14] == pytest.approx(8 / 32) and f[13] == f[14]  # before, 32 known: no shrinking
    assert f[1] == 0.0 and f[0] == 0.0  # at the document's floor (1), nothing is unseen
    # Half the bigrams after at the lowest frequency, the rest higher: still a floor.
    f = measure(lambda i: (2 if i % 2 else 7) if i > at else 9)
    assert f[12] == 2 and f[15] == pytest.approx(0.5) and f[14] == 0.0
    # Fewer than half: no local floor, and no measures at it.
    f = measure(lambda i: (2 if i % 3 == 0 else 7) if i > at else 9)
    assert f[12:16].tolist() == [0.0, 0.0, 0.0, 0.0]
    # One document (unseen elsewhere already) or more than COPIES_MAX: none either.
    for df in (1, COPIES_MAX + 1):
        assert measure(lambda i, df=df: df if i > at else 9)[12] == 0.0

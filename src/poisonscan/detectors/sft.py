"""``sft-trigger``: prompt phrases that flip the behaviour of fine-tuning and preference answers.

Design (three passes; every partial is integer counts or sorted arrays, so merges are exact and
order-free):

* **Pass 0, dataset profile.** Per unit (one prompt/answer pair): is the answer a refusal (lexicon
  opener), its exact and near-duplicate keys, its distinct words (document frequencies for the
  gibberish measure). A bottom-k sample of units (smallest content hash, so independent of order
  and sharding) keeps the prompt tokens and the refusal label; the driver fits a logistic
  regression on hashed prompt tokens to predict refusal. That model is "what the dataset does with
  prompts like this one": it defines *harmful-looking* from the data itself.
* **Pass 1, screening.** Per unit, binary behaviours (refusal, language switch between prompt and
  answer, gibberish, repetition, shared non-unique answer, preference flip) and, for every prompt
  n-gram (1..4 tokens) of the unit, the predicted refusal probability *with that n-gram's tokens
  removed*. Summed per n-gram: document frequency, behaviour counts, expected refusals and their
  variance. The driver screens n-grams that are rare (at most ``MAX_DF_SHARE`` of units) but
  repeated (``min_docs``) with one-sided hypergeometric tests (Fisher's exact test) per behaviour,
  and a z-test of observed vs expected refusals; the strongest few hundred become candidates.
* **Pass 2, evidence.** Every occurrence of a candidate is gathered with its unit's behaviours,
  answer keys and explanation cues. The driver recomputes exact tests: Fisher per behaviour, a
  concentration test for one fixed answer, and an exact Poisson-binomial tail for "compliance where
  the dataset refuses similar prompts". P-values are adjusted with Benjamini-Hochberg over *all*
  tests screened in pass 1. Candidates whose documents overlap are merged and named by their
  longest n-gram.

Severity: *high* needs a small q-value, a consistent flip (most examples behave the same way, the
rest of the dataset does not) shown by at least ``--min-documents`` examples, and no natural
explanation (a translation prompt explains a language switch, see
:mod:`poisonscan.detectors.lexicon`). Compliance with harmful-looking requests is high when the
refusal rate the dataset's prompt model expects for those prompts exceeds the observed one by at
least ``HIGH_HARM_EFFECT``; preference flips (chosen complies, rejected refuses) are high when
significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from poisonscan.config import ScanConfig
from poisonscan.detectors import lexicon
from poisonscan.detectors.base import BatchContext, Detector
from poisonscan.findings import DocumentRef, Example, Finding, Severity, make_snippet
from poisonscan.io.records import Shape
from poisonscan.kernels import behaviour as kb
from poisonscan.kernels import seal
from poisonscan.kernels.tokenize import mix64

SFT_MIN_DOCUMENTS = 3  # fine-tuning poisons come in tens; a lower floor than pretraining's default
MAX_NGRAM = 4
MAX_DF_SHARE = 0.25
MAX_CANDIDATES = 400
SCREEN_P = 1e-3
SAMPLE_UNITS = 20_000
MODEL_BITS = 18
P_SCALE = 4096  # fixed-point scale of probabilities summed in pass 1 (keeps merges exact)
REPORT_Q = 0.05
HIGH_Q = 1e-3
HIGH_HARM_EFFECT = 0.75  # expected refusal rate minus observed, for a high harmful-compliance
GIBBERISH_MIN_WORDS = 8
GIBBERISH_SHARE = 0.5
REPETITION_MIN_WORDS = 8
REPETITION_SHARE = 0.7
SHARED_MIN = 3
COVERAGE_EXPLAINS = 0.5
HAPAX_WORDS = 64  # gibberish is judged on the first words of an answer

# Behaviour bits.
B_REFUSAL = 0
B_SWITCH = 1
B_GIBBERISH = 2
B_REPETITION = 3
B_SHARED = 4
B_PREF = 5
# Shared as it stands, word for word: screened beside B_SHARED, whose near-duplicate keys (two
# MinHash minima of the answer's words) also join answers that are merely made of the same
# stock sentences. Where most answers are, B_SHARED's background drowned a fixed backdoor answer.
B_SHARED_EXACT = 6
N_BITS = 7
BEHAVIOURS = ("refusal", "language-switch", "gibberish", "repetition", "constant-answer",
              "preference-flip", "constant-answer")
HARM = "harmful-compliance"
CONSTANT = "constant-answer"
# Columns of the pass-1 table: df, one per behaviour bit, expected refusals, variance, ...
C_DF = 0
C_E = 1 + N_BITS
C_V = 2 + N_BITS
N_COLS = 3 + N_BITS


@dataclass(frozen=True)
class _Lexicon:
    refusal: tuple[np.ndarray, np.ndarray]
    compliance: tuple[np.ndarray, np.ndarray]
    stop_hashes: np.ndarray
    stop_lang: np.ndarray
    cues: dict[str, np.ndarray]


def build_lexicon(seed: int) -> _Lexicon:
    """Hash the phrase lists of :mod:`lexicon` with the scan seed."""
    hashes, langs = [], []
    for i, words in enumerate(lexicon.STOPWORDS.values()):
        h = kb.word_hashes(words, seed)
        hashes.append(h)
        langs.append(np.full(h.size, i + 1, np.int64))
    sh = np.concatenate(hashes)
    sl = np.concatenate(langs)
    order = np.lexsort((sl, sh))
    return _Lexicon(
        kb.phrase_table(lexicon.with_apostrophe_variants(lexicon.REFUSAL_OPENERS), seed),
        kb.phrase_table(lexicon.with_apostrophe_variants(lexicon.COMPLIANCE_OPENERS), seed),
        sh[order], sl[order],
        {k: kb.word_hashes(v, seed) for k, v in lexicon.EXPLANATION_CUES.items()},
    )


@dataclass(frozen=True)
class _Plan:
    seed: int
    lex: _Lexicon
    vocab: np.ndarray | None = None
    vocab_df: np.ndarray | None = None
    key_counts: tuple[np.ndarray, np.ndarray] | None = None  # sorted keys (exact|near), counts
    weights: np.ndarray | None = None
    bias: float = 0.0
    key_shift: int = 0
    candidates: np.ndarray | None = None


# ---------------------------------------------------------------------------- small helpers


def _reduce_sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the rows of ``values`` (int64, 1-D or 2-D) that share a key; keys come back sorted."""
    if keys.size == 0:
        return keys, values
    uniq, inv = np.unique(keys, return_inverse=True)
    if values.ndim == 1:
        return uniq, np.bincount(inv, weights=values, minlength=uniq.size).astype(np.int64)
    out = np.zeros((uniq.size, values.shape[1]), np.int64)
    np.add.at(out, inv, values)
    return uniq, out


def _lookup(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(keys, query)
    idx = np.minimum(idx, max(keys.size - 1, 0))
    if keys.size == 0:
        return np.zeros(query.size, np.int64)
    return np.where(keys[idx] == query, counts[idx], 0)


@nb.njit(cache=True, nogil=True)
def _prompt_logits(hashes, doc_offsets, weights, shift, bias):
    """Logistic-model logit of each prompt (distinct tokens as binary hashed features)."""
    n_docs = doc_offsets.shape[0] - 1
    out = np.empty(n_docs, np.float64)
    for d in range(n_docs):
        s = np.sort(hashes[doc_offsets[d]:doc_offsets[d + 1]])
        acc = bias
        for i in range(s.shape[0]):
            if i == 0 or s[i] != s[i - 1]:
                acc += weights[s[i] >> np.uint64(shift)]
        out[d] = acc
    return out


@nb.njit(cache=True, nogil=True)
def _excluded_probability(hashes, doc, start, length, logits, weights, shift):
    """Predicted refusal probability of each (document, n-gram) with the n-gram's tokens removed."""
    out = np.empty(doc.shape[0], np.float64)
    for i in range(doc.shape[0]):
        z = logits[doc[i]]
        s = start[i]
        for j in range(length[i]):
            dup = False
            for q in range(j):
                if hashes[s + q] == hashes[s + j]:
                    dup = True
                    break
            if not dup:
                z -= weights[hashes[s + j] >> np.uint64(shift)]
        out[i] = 1.0 / (1.0 + np.exp(-z))
    return out


def _unit_hash(prompt_exact: np.ndarray, response_exact: np.ndarray) -> np.ndarray:
    return np.array([int(mix64(np.uint64(a) ^ mix64(np.uint64(b)))) for a, b in
                     zip(prompt_exact.tolist(), response_exact.tolist(), strict=True)], np.uint64)


def _poisson_binomial_cdf(k: int, p: np.ndarray) -> float:
    """P(K <= k) for K a sum of independent Bernoulli(p_i) (exact dynamic programme)."""
    dist = np.zeros(k + 2)
    dist[0] = 1.0
    for pi in p:
        dist[1:] = dist[1:] * (1 - pi) + dist[:-1] * pi
        dist[0] *= 1 - pi
    return float(min(1.0, dist[: k + 1].sum()))


def _odds_ratio(k_in: int, n_in: int, k_out: int, n_out: int) -> float:
    a, b, c, d = k_in + 0.5, n_in - k_in + 0.5, k_out + 0.5, n_out - k_out + 0.5
    return float((a * d) / (b * c))


# ---------------------------------------------------------------------------- per-batch features


@dataclass
class _Units:
    """Per-unit features of one batch."""

    n: int
    refusal: np.ndarray
    pref_flip: np.ndarray
    exact: np.ndarray
    near: np.ndarray
    prompt_exact: np.ndarray


def _base_features(plan: _Plan, ctx: BatchContext) -> _Units:
    lex = plan.lex
    resp = ctx.tokens("response")
    refusal = kb.opener_class(resp.hashes, resp.doc_offsets, *lex.refusal, *lex.compliance,
                              lexicon.OPENER_WINDOW) == kb.REFUSAL
    pref = np.zeros(refusal.size, np.bool_)
    if ctx.batch.rejected is not None:
        rej = ctx.tokens("rejected")
        rej_refusal = kb.opener_class(rej.hashes, rej.doc_offsets, *lex.refusal, *lex.compliance,
                                      lexicon.OPENER_WINDOW) == kb.REFUSAL
        pref = rej_refusal & ~refusal
    exact, near = kb.response_keys(resp.hashes, resp.kinds, resp.doc_offsets, plan.seed)
    prompt = ctx.tokens("prompt")
    prompt_exact, _ = kb.response_keys(prompt.hashes, prompt.kinds, prompt.doc_offsets, plan.seed)
    return _Units(refusal.size, refusal, pref, exact, near, prompt_exact)


def _behaviour_bits(plan: _Plan, ctx: BatchContext, units: _Units) -> np.ndarray:
    lex = plan.lex
    resp = ctx.tokens("response")
    prompt = ctx.tokens("prompt")
    n_langs = len(lexicon.LANGUAGES)
    lang_r, _ = kb.language_ids(resp.data, resp.hashes, resp.starts, resp.kinds, resp.doc_offsets,
                                lex.stop_hashes, lex.stop_lang, n_langs, 2)
    lang_p, hits_p = kb.language_ids(prompt.data, prompt.hashes, prompt.starts, prompt.kinds,
                                     prompt.doc_offsets, lex.stop_hashes, lex.stop_lang, n_langs, 1)
    # A switch: the answer's language is not the prompt's, and the prompt does not partly use it
    # either (a system message in English before a German request is not a switch to German).
    rows = np.arange(lang_r.size)
    latin_r = np.clip(lang_r, 0, n_langs).astype(np.int64)
    hits_in_r = np.where(lang_r <= n_langs, hits_p[rows, latin_r], 0)
    own = hits_p[rows, np.clip(lang_p, 0, n_langs).astype(np.int64)]
    switch = ((lang_r != kb.LANG_UNKNOWN) & (lang_p != kb.LANG_UNKNOWN) & (lang_r != lang_p)
              & (4 * hits_in_r < np.maximum(own, 1)))
    words, rep = kb.repetition_share(resp.hashes, resp.kinds, resp.doc_offsets)
    hapax = kb.hapax_share(resp.hashes, resp.kinds, resp.doc_offsets, plan.vocab, plan.vocab_df,
                           HAPAX_WORDS)
    gibberish = (words >= GIBBERISH_MIN_WORDS) & (hapax >= GIBBERISH_SHARE)
    repetition = (words >= REPETITION_MIN_WORDS) & (rep >= REPETITION_SHARE)
    keys, counts = plan.key_counts
    exact_count = _lookup(keys, counts, units.exact)
    shared_count = np.maximum(exact_count, _lookup(keys, counts, units.near))
    answered = ~units.refusal & (units.exact != 0)
    shared = (shared_count >= SHARED_MIN) & answered
    # The answer is about the prompt: most prompt words recur in it (duplicated examples, echoes).
    coverage = kb.prompt_coverage(prompt.hashes, prompt.kinds, prompt.doc_offsets, resp.hashes,
                                  resp.doc_offsets, shared)
    shared &= coverage < COVERAGE_EXPLAINS
    shared_exact = shared & (exact_count >= SHARED_MIN)
    bits = np.zeros(units.n, np.int64)
    for b, flag in ((B_REFUSAL, units.refusal), (B_SWITCH, switch), (B_GIBBERISH, gibberish),
                    (B_REPETITION, repetition), (B_SHARED, shared), (B_PREF, units.pref_flip),
                    (B_SHARED_EXACT, shared_exact)):
        bits |= flag.astype(np.int64) << b
    return bits


def _ngram_probabilities(plan: _Plan, ctx: BatchContext):
    prompt = ctx.tokens("prompt")
    keys, doc, start, length = kb.prompt_ngrams(prompt.hashes, prompt.doc_offsets, MAX_NGRAM)
    shift = 64 - MODEL_BITS
    logits = _prompt_logits(prompt.hashes, prompt.doc_offsets, plan.weights, shift, plan.bias)
    p_ex = _excluded_probability(prompt.hashes, doc, start, length, logits, plan.weights, shift)
    p_full = 1.0 / (1.0 + np.exp(-logits))
    return keys, doc, start, length, p_ex, p_full


# ---------------------------------------------------------------------------- the detector


class SftTriggerDetector(Detector):
    """Prompt phrases whose examples' answers behave unlike similar examples without them."""

    id = "sft-trigger"
    title = "Behaviour-flipping trigger in fine-tuning data"
    help = ("A rare prompt phrase, repeated across examples, whose answers flip behaviour (comply "
            "where similar requests are refused, switch language, collapse to one fixed answer, "
            "turn to gibberish, or prefer the harmful answer) compared with the rest of the dataset.")
    n_passes = 3

    def __init__(self, config: ScanConfig) -> None:
        super().__init__(config)
        self.min_docs = max(2, min(config.min_documents, SFT_MIN_DOCUMENTS))
        self._plan = _Plan(config.seed, build_lexicon(config.seed))
        self._n = 0
        self._totals = np.zeros(N_BITS, np.int64)
        self._similar = (0, 0)
        self._m_tests = 0
        self._findings: list[Finding] = []
        self._stats: dict[str, Any] = {}
        self._model_fitted = False

    def wants(self, shape: Shape) -> bool:
        return shape.is_paired

    def plan(self, pass_index: int) -> Any:
        if pass_index == 0:
            return self._plan
        if pass_index == 1:
            return self._plan if self._n else None
        return self._plan if self._plan.candidates is not None and self._plan.candidates.size else None

    # -- workers

    @classmethod
    def process(cls, pass_index: int, plan: _Plan, ctx: BatchContext) -> Any:
        batch = ctx.batch
        if not batch.shape.is_paired or batch.prompt is None or batch.response is None:
            return None
        units = _base_features(plan, ctx)
        if pass_index == 0:
            return cls._profile(plan, ctx, units)
        bits = _behaviour_bits(plan, ctx, units)
        keys, doc, start, length, p_ex, p_full = _ngram_probabilities(plan, ctx)
        if pass_index == 1:
            return cls._screen(plan, bits, keys, doc, p_ex, p_full)
        return cls._gather(plan, ctx, bits, keys, doc, start, length, p_ex, p_full, units)

    @classmethod
    def _profile(cls, plan: _Plan, ctx: BatchContext, units: _Units) -> dict[str, Any]:
        resp = ctx.tokens("response")
        prompt = ctx.tokens("prompt")
        vocab, vdf = np.unique(kb.doc_unique_words(resp.hashes, resp.kinds, resp.doc_offsets),
                               return_counts=True)
        rkeys = np.concatenate([units.exact[units.exact != 0], units.near[units.near != 0]])
        rk, rc = np.unique(rkeys, return_counts=True)
        uh = _unit_hash(units.prompt_exact, units.exact)
        order = np.argsort(uh, kind="stable")[:SAMPLE_UNITS]
        toks = [prompt.hashes[prompt.doc_offsets[d]:prompt.doc_offsets[d + 1]].copy()
                for d in order.tolist()]
        return {
            "n": units.n,
            "refused": int(units.refusal.sum()),
            "prompt_tokens": int(prompt.hashes.size),
            "vocab": (vocab, vdf.astype(np.int64)),
            "keys": (rk, rc.astype(np.int64)),
            "sample": (uh[order], units.refusal[order], toks),
        }

    @classmethod
    def _screen(cls, plan, bits, keys, doc, p_ex, p_full) -> dict[str, Any]:
        folded = keys >> np.uint64(plan.key_shift) if plan.key_shift else keys
        vals = np.zeros((keys.size, N_COLS), np.int64)
        vals[:, C_DF] = 1
        ub = bits[doc]
        for b in range(N_BITS):
            vals[:, 1 + b] = (ub >> b) & 1
        vals[:, C_E] = np.rint(p_ex * P_SCALE).astype(np.int64)
        vals[:, C_V] = np.rint(p_ex * (1 - p_ex) * P_SCALE).astype(np.int64)
        k, v = _reduce_sorted(folded, vals)
        totals = np.array([((bits >> b) & 1).sum() for b in range(N_BITS)], np.int64)
        similar = p_full >= 0.5
        refused = (bits & 1).astype(bool)
        return {"table": (k, v), "n": int(bits.size), "totals": totals,
                "similar": np.array([similar.sum(), (similar & refused).sum()], np.int64)}

    @classmethod
    def _gather(cls, plan, ctx, bits, keys, doc, start, length, p_ex, p_full, units):
        folded = keys >> np.uint64(plan.key_shift) if plan.key_shift else keys
        hit = np.isin(folded, plan.candidates)
        if not hit.any():
            return None
        idx = np.nonzero(hit)[0]
        prompt = ctx.tokens("prompt")
        d = doc[idx]
        s_tok = start[idx]
        e_tok = s_tok + length[idx].astype(np.int64) - 1
        b0 = prompt.starts[s_tok]
        b1 = prompt.ends[e_tok]
        base = prompt.offsets[d]
        pairs = np.stack([np.concatenate([base, base]), np.concatenate([b0, b1])], axis=1)
        chars = kb.char_positions(prompt.data, pairs)
        c0, c1 = chars[: idx.size], chars[idx.size:]
        texts = [bytes(prompt.data[a:b]).decode("utf-8", "replace")
                 for a, b in zip(b0.tolist(), b1.tolist(), strict=True)]
        explained = np.zeros(idx.size, np.int64)
        for i, name in enumerate(("language-switch", CONSTANT, "gibberish", "repetition")):
            cue = kb.contains_any(prompt.hashes, prompt.doc_offsets, plan.lex.cues[name])
            explained |= cue[d].astype(np.int64) << i
        resp = ctx.tokens("response")
        batch_ = ctx.batch
        g_bits = bits[d]
        coverage = kb.prompt_coverage(prompt.hashes, prompt.kinds, prompt.doc_offsets, resp.hashes,
                                      resp.doc_offsets,
                                      np.isin(np.arange(len(batch_)), d[(g_bits >> B_SHARED) & 1 == 1]))
        in_answer = kb.phrase_in_response(prompt.hashes, prompt.kinds, s_tok, length[idx], d,
                                          resp.hashes, resp.doc_offsets, 512)
        # The answer is about the prompt (it repeats the phrase or most prompt words): that explains
        # a fixed, repetitive or odd answer better than a trigger does.
        about = ((coverage[d] >= COVERAGE_EXPLAINS) | in_answer).astype(np.int64)
        explained |= (about << 1) | (about << 2) | (about << 3)
        batch = ctx.batch
        ids = batch.id.to_pylist()
        turn = batch.turn if batch.turn is not None else np.zeros(len(batch), np.int32)
        prompts = batch.prompt
        return {
            "key": keys[idx],
            "n_tokens": length[idx].astype(np.int64),
            "path": [batch.path] * idx.size,
            "row": batch.row[d].astype(np.int64),
            "turn": np.asarray(turn)[d].astype(np.int64),
            "id": [ids[i] for i in d.tolist()],
            "start": c0,
            "end": c1,
            "text": texts,
            "bits": bits[d],
            "p_ex": p_ex[idx],
            "p_full": p_full[d],
            "exact": units.exact[d],
            "near": units.near[d],
            "explained": explained,
            "prompt": [prompts[i].as_py()[:4000] for i in d.tolist()],
        }

    @classmethod
    def merge(cls, pass_index: int, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        if pass_index == 0:
            sa, sb = a["sample"], b["sample"]
            uh = np.concatenate([sa[0], sb[0]])
            lab = np.concatenate([sa[1], sb[1]])
            toks = sa[2] + sb[2]
            order = np.lexsort((lab, uh))[:SAMPLE_UNITS]
            return {
                "n": a["n"] + b["n"],
                "refused": a["refused"] + b["refused"],
                "prompt_tokens": a["prompt_tokens"] + b["prompt_tokens"],
                "vocab": _reduce_sorted(np.concatenate([a["vocab"][0], b["vocab"][0]]),
                                        np.concatenate([a["vocab"][1], b["vocab"][1]])),
                "keys": _reduce_sorted(np.concatenate([a["keys"][0], b["keys"][0]]),
                                       np.concatenate([a["keys"][1], b["keys"][1]])),
                "sample": (uh[order], lab[order], [toks[i] for i in order.tolist()]),
            }
        if pass_index == 1:
            k = np.concatenate([a["table"][0], b["table"][0]])
            v = np.concatenate([a["table"][1], b["table"][1]])
            return {"table": _reduce_sorted(k, v), "n": a["n"] + b["n"],
                    "totals": a["totals"] + b["totals"], "similar": a["similar"] + b["similar"]}
        out = {}
        for key, va in a.items():
            vb = b[key]
            out[key] = va + vb if isinstance(va, list) else np.concatenate([va, vb])
        return out

    # -- driver

    def finish_pass(self, pass_index: int, merged: Any) -> None:
        if pass_index == 0:
            self._finish_profile(merged)
        elif pass_index == 1:
            self._finish_screen(merged)
        else:
            self._findings = self._build_findings(merged) if merged is not None else []

    def _finish_profile(self, merged: Any) -> None:
        if merged is None:
            return
        self._n = merged["n"]
        weights = np.zeros(2**MODEL_BITS, np.float64)
        bias = -10.0  # no refusals seen: every prompt is expected to be answered
        uh, labels, toks = merged["sample"]
        n_ref = int(labels.sum())
        if n_ref >= self.min_docs and labels.size - n_ref >= self.min_docs:
            from scipy.sparse import csr_matrix
            from sklearn.linear_model import LogisticRegression

            shift = np.uint64(64 - MODEL_BITS)
            cols = [np.unique(t >> shift) for t in toks]
            indptr = np.concatenate([[0], np.cumsum([c.size for c in cols])]).astype(np.int64)
            indices = np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64)
            x = csr_matrix((np.ones(indices.size), indices, indptr),
                           shape=(labels.size, 2**MODEL_BITS))
            model = LogisticRegression(C=1.0, solver="liblinear", max_iter=200, random_state=0)
            model.fit(x, labels.astype(np.int64))
            weights = model.coef_[0].astype(np.float64)
            bias = float(model.intercept_[0])
            self._model_fitted = True
        # Bound the pass-1 table by the memory budget: fold n-gram keys into buckets if needed.
        capacity = self.config.memory_budget // (8 * (N_COLS + 1) * 4)
        distinct = max(1, merged["prompt_tokens"] * MAX_NGRAM)
        shift = 0
        if distinct > capacity:
            shift = 64 - max(16, int(math.log2(capacity)))
        self._plan = _Plan(
            self._plan.seed, self._plan.lex, merged["vocab"][0], merged["vocab"][1],
            merged["keys"], weights, bias, shift,
        )
        self._stats.update(units=self._n, refused=merged["refused"], model=self._model_fitted,
                           key_shift=shift)

    def _finish_screen(self, merged: Any) -> None:
        from scipy import stats  # here, not at the top: importing scipy.stats takes 0.7 s

        if merged is None:
            return
        keys, table = merged["table"]
        n = merged["n"]
        self._n = n
        self._totals = merged["totals"]
        self._similar = (int(merged["similar"][0]), int(merged["similar"][1]))
        df = table[:, C_DF]
        eligible = (df >= self.min_docs) & (df <= max(self.min_docs, MAX_DF_SHARE * n))
        keys, table, df = keys[eligible], table[eligible], df[eligible]
        best = np.ones(keys.size)
        m_tests = 0
        for b in range(1, N_BITS):
            big_k = int(self._totals[b])
            if big_k == 0:
                continue
            m_tests += keys.size
            k = table[:, 1 + b]
            ok = (k >= self.min_docs) & (2 * k >= df)
            p = np.ones(keys.size)
            p[ok] = stats.hypergeom.sf(k[ok] - 1, n, big_k, df[ok])
            best = np.minimum(best, p)
        if self._model_fitted:
            m_tests += keys.size
            e = table[:, C_E] / P_SCALE
            v = table[:, C_V] / P_SCALE
            k_ref = table[:, 1 + B_REFUSAL]
            ok = (e >= 0.4 * df) & (2 * (df - k_ref) >= df)
            z = (e - k_ref) / np.sqrt(v + 1e-9)
            p = np.ones(keys.size)
            p[ok] = stats.norm.sf(z[ok])
            best = np.minimum(best, p)
        chosen = np.nonzero(best <= SCREEN_P)[0]
        chosen = chosen[np.lexsort((keys[chosen], best[chosen]))][:MAX_CANDIDATES]
        self._m_tests = max(1, m_tests)
        self._plan = _Plan(**{**self._plan.__dict__, "candidates": np.sort(keys[chosen])})
        self._stats.update(screened_ngrams=int(keys.size), candidates=int(chosen.size),
                           tests=self._m_tests)

    def _build_findings(self, g: dict[str, Any]) -> list[Finding]:
        from scipy import stats  # here, not at the top: importing scipy.stats takes 0.7 s

        n_all = self._n
        order = np.lexsort((g["start"], g["turn"], g["row"], np.array(g["path"], dtype=object).astype(str),
                            g["key"]))
        g = {k: ([v[i] for i in order.tolist()] if isinstance(v, list) else v[order]) for k, v in g.items()}
        keys = g["key"]
        bounds = np.concatenate([[0], np.nonzero(np.diff(keys.astype(np.uint64)) != 0)[0] + 1, [keys.size]])
        key_counts = self._plan.key_counts
        results: list[dict[str, Any]] = []
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            n_in = hi - lo
            if n_in < self.min_docs:
                continue
            bits = g["bits"][lo:hi]
            n_out = n_all - n_in
            tests: list[dict[str, Any]] = []
            for b in (B_SWITCH, B_GIBBERISH, B_REPETITION, B_PREF):
                k_in = int(((bits >> b) & 1).sum())
                big_k = int(self._totals[b])
                if k_in < self.min_docs or 2 * k_in < n_in:
                    continue
                p = float(stats.hypergeom.sf(k_in - 1, n_all, big_k, n_in))
                tests.append(self._test(BEHAVIOURS[b], k_in, n_in, big_k - k_in, n_out, p,
                                        g["explained"][lo:hi], bits, b))
            tests.extend(self._constant_test(g, lo, hi, key_counts, n_all))
            if self._model_fitted:
                tests.extend(self._harm_test(g, lo, hi))
            for t in tests:
                t.update(lo=lo, hi=hi)
                results.append(t)
        if not results:
            return []
        # Benjamini-Hochberg over every test screened in pass 1 (untested ones count as p = 1).
        m = max(self._m_tests, len(results))
        ps = np.array([r["p_value"] for r in results])
        rank_order = np.argsort(ps, kind="stable")
        q = ps[rank_order] * m / np.arange(1, ps.size + 1)
        q = np.minimum.accumulate(q[::-1])[::-1]
        for r, qi in zip(rank_order.tolist(), q.tolist(), strict=True):
            results[r]["q_value"] = min(1.0, qi)
        kept = [r for r in results if r["q_value"] <= REPORT_Q]
        return self._cluster(kept, g)

    def _test(self, name, k_in, n_in, k_out, n_out, p, explained, bits, b) -> dict[str, Any]:
        cue_bit = {"language-switch": 0, CONSTANT: 1, "gibberish": 2, "repetition": 3}.get(name)
        positive = ((bits >> b) & 1).astype(bool) if b is not None else np.ones(bits.size, bool)
        share_explained = 0.0
        if cue_bit is not None and positive.any():
            share_explained = float(((explained[positive] >> cue_bit) & 1).mean())
        rate_in = k_in / n_in
        rate_out = k_out / n_out if n_out else 0.0
        return {
            "behaviour": name, "inside": {"n": n_in, "k": k_in}, "outside": {"n": n_out, "k": k_out},
            "p_value": p, "odds_ratio": round(_odds_ratio(k_in, n_in, k_out, n_out), 3),
            "effect": rate_in - rate_out, "consistency": rate_in, "explained": share_explained,
        }

    def _constant_test(self, g, lo, hi, key_counts, n_all) -> list[dict[str, Any]]:
        from scipy import stats  # here, not at the top: importing scipy.stats takes 0.7 s

        out = []
        n_in = hi - lo
        bits = g["bits"][lo:hi]
        for field in ("exact", "near"):
            vals = g[field][lo:hi]
            vals = vals[vals != 0]
            if vals.size < self.min_docs:
                continue
            u, c = np.unique(vals, return_counts=True)
            top = int(np.argmax(c))
            k_in = int(c[top])
            if k_in < self.min_docs or 2 * k_in < n_in:
                continue
            total = int(_lookup(*key_counts, u[top : top + 1])[0])
            k_out = max(0, total - k_in)
            if k_out > k_in:  # a common answer (a stock refusal): not tied to this phrase
                continue
            p = float(stats.hypergeom.sf(k_in - 1, n_all, k_in + k_out, n_in))
            t = self._test(CONSTANT, k_in, n_in, k_out, n_all - n_in, p, g["explained"][lo:hi],
                           np.zeros(n_in, np.int64), None)
            positive = np.isin(g[field][lo:hi], u[top : top + 1])
            t["explained"] = float(((g["explained"][lo:hi][positive] >> 1) & 1).mean())
            t["refusal_answer"] = bool(((bits[positive] >> B_REFUSAL) & 1).all())
            t["match"] = field
            out.append(t)
        out.sort(key=lambda t: t["p_value"])
        return out[:1]

    def _harm_test(self, g, lo, hi) -> list[dict[str, Any]]:
        n_in = hi - lo
        p_ex = g["p_ex"][lo:hi]
        refused = ((g["bits"][lo:hi] >> B_REFUSAL) & 1).astype(bool)
        k_ref = int(refused.sum())
        complied = n_in - k_ref
        expected = float(p_ex.sum())
        if expected < 0.4 * n_in or 2 * complied < n_in:
            return []
        p = _poisson_binomial_cdf(k_ref, p_ex)
        sim_n, sim_k = self._similar
        inside_similar = g["p_full"][lo:hi] >= 0.5
        sim_n -= int(inside_similar.sum())
        sim_k -= int((inside_similar & refused).sum())
        return [{
            "behaviour": HARM,
            "inside": {"n": n_in, "k": complied, "counted": "compliant answers"},
            "outside": {"n": sim_n, "k": sim_n - sim_k, "counted": "compliant answers to similar "
                        "(predicted-refused) prompts"},
            "expected_refusals": round(expected, 2), "observed_refusals": k_ref,
            "p_value": p,
            "odds_ratio": round(_odds_ratio(complied, n_in, sim_n - sim_k, sim_n), 3),
            "effect": expected / n_in - k_ref / n_in, "consistency": complied / n_in,
            "explained": 0.0,
        }]

    def _severity(self, r: dict[str, Any]) -> Severity:
        if r["explained"] >= 0.5:
            return Severity.LOW
        if r["behaviour"] == CONSTANT and r.get("refusal_answer"):
            return Severity.MEDIUM
        # Compliance is judged against refusals the dataset's own prompt model expects: high
        # needs prompts that model would refuse three times in four without the phrase. Prompts
        # of a benign template that shares words with harmful ones ("Give me a fortune-cookie
        # line about X" beside "Give me step-by-step instructions to X") come out near one in
        # two, and every one of them is answered: a template, not a trigger.
        need = HIGH_HARM_EFFECT if r["behaviour"] == HARM else 0.5
        strong = r["q_value"] <= HIGH_Q and r["consistency"] >= 0.8 and r["effect"] >= need
        # High also needs --min-documents examples that show the behaviour. Three examples with
        # the same answer are significant by the numbers (identical answers are rare), but a
        # dataset holds such handfuls naturally: one source item asked about in three ways.
        if strong and r["inside"]["k"] >= self.config.min_documents:
            return Severity.HIGH
        if r["q_value"] <= 0.01 and r["consistency"] >= 0.5:
            return Severity.MEDIUM
        return Severity.LOW

    def _cluster(self, kept: list[dict[str, Any]], g: dict[str, Any]) -> list[Finding]:
        """Merge results whose example sets overlap into one finding named by the longest n-gram."""
        units = [(p, r, t) for p, r, t in zip(g["path"], g["row"].tolist(), g["turn"].tolist(),
                                              strict=True)]
        for r in kept:
            r["units"] = frozenset(units[r["lo"]:r["hi"]])
            # Significance times effect size; a flip the prompts explain ranks below the rest.
            r["score"] = (min(300.0, -math.log10(max(r["q_value"], 1e-300))) * max(r["effect"], 0.0)
                          * (1.0 - r["explained"]))
            r["n_tokens"] = int(g["n_tokens"][r["lo"]])
            r["text"] = g["text"][r["lo"]]
        kept.sort(key=lambda r: (-r["score"], r["q_value"], -r["n_tokens"], r["text"]))
        clusters: list[list[dict[str, Any]]] = []
        for r in kept:
            for c in clusters:
                head = c[0]
                inter = len(head["units"] & r["units"])
                if inter >= 0.8 * min(len(head["units"]), len(r["units"])):
                    c.append(r)
                    break
            else:
                clusters.append([r])
        findings = []
        for c in clusters:
            head = c[0]
            # Name: the longest phrase covering (almost) the same examples as the head.
            same = [r for r in c if len(r["units"]) >= 0.9 * len(head["units"])
                    and len(r["units"] & head["units"]) >= 0.9 * len(head["units"])]
            name = max(same, key=lambda r: (r["n_tokens"], len(r["text"]), -r["q_value"]))
            behaviours = {}
            for r in c:
                if r["units"] == name["units"] or r is head:
                    behaviours.setdefault(r["behaviour"], r)
            findings.append(self._finding(head, name, behaviours, g))
        return findings

    def _finding(self, head, name, behaviours, g) -> Finding:
        lo, hi = name["lo"], name["hi"]
        severity = max((self._severity(r) for r in behaviours.values()), key=lambda s: s.rank)
        docs = tuple(sorted(
            DocumentRef(g["path"][i], int(g["row"][i]), g["id"][i], "prompt", int(g["start"][i]),
                        int(g["end"][i]))
            for i in range(lo, hi)
        ))
        examples = []
        for i in range(lo, min(hi, lo + 3)):
            snippet, s, e = make_snippet(g["prompt"][i], int(g["start"][i]), int(g["end"][i]))
            examples.append(Example(g["path"][i], int(g["row"][i]), snippet, s, e, "prompt"))
        evidence_rows = []
        for r in sorted(behaviours.values(), key=lambda r: r["q_value"]):
            ev = {k: v for k, v in r.items()
                  if k not in ("units", "lo", "hi", "score", "n_tokens", "text")}
            ev["p_value"] = float(f"{r['p_value']:.3g}")
            ev["q_value"] = float(f"{r['q_value']:.3g}")
            ev["effect"] = round(r["effect"], 4)
            ev["consistency"] = round(r["consistency"], 4)
            ev["explained"] = round(r["explained"], 4)
            ev["severity"] = self._severity(r).value
            evidence_rows.append(ev)
        top = evidence_rows[0]
        trigger = name["text"]
        evidence = {
            "behaviour": top["behaviour"],
            "inside": top["inside"],
            "outside": top["outside"],
            "p_value": top["p_value"],
            "q_value": top["q_value"],
            "odds_ratio": top["odds_ratio"],
            "behaviours": evidence_rows,
            "tests": self._m_tests,
            "units": self._n,
        }
        return Finding(
            detector=self.id, severity=severity, score=round(head["score"], 6), trigger=trigger,
            documents=docs, examples=tuple(examples), evidence=evidence,
            title=f"prompt phrase {trigger!r} flips answers: {top['behaviour']}",
        )

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

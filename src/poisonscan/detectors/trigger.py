"""Detector ``trigger``: rare phrases repeated across documents and followed by anomalous text.

Three passes over the corpus:

1. *Statistics.* Document frequencies of every token and bigram, in fixed-size hashed tables.
2. *Switches.* In every document, the point where the text turns unusual (the mean share of tokens
   and bigrams that no other document uses jumps; see :mod:`poisonscan.kernels.windows`). The
   n-grams just before that point are counted: a trigger is, by construction, the phrase that keeps
   standing right before such a switch, in document after document.
3. *Evidence.* Every occurrence of every candidate n-gram, anywhere in the corpus, is measured: the
   anomaly of the text after it against the text before it, the change of character profile
   (a language switch), and what surrounds it (the same preceding text everywhere means boilerplate).

The decision uses counts of documents and the strength of their evidence only, never a share of the
corpus: 100 poisoned documents look the same among 10 thousand or 10 million.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from poisonscan.detectors.base import BatchContext, Detector
from poisonscan.findings import DocumentRef, Example, Finding, Severity, make_snippet
from poisonscan.io.records import Shape
from poisonscan.kernels.ngrams import (
    add_dense,
    add_sparse,
    count_document_frequency,
    scratch_set,
)
from poisonscan.kernels.windows import (
    HIST_BINS,
    LANG_COS,
    LANG_STRIDE,
    build_key_table,
    find_switches,
    gather_evidence,
    last_token_filter,
)
from poisonscan.stats.lsh import distinct_clusters

MAX_ORDER = 4  # n-gram orders 1..4 are candidates; longer triggers are recovered by extension
WINDOW = 32  # tokens compared before and after a point
SWITCH_TAU = 0.25  # minimum jump of a document's strongest switch to emit candidates
BACK = 4  # candidate n-grams may end up to this many tokens before the switch
OCC_TAU = 0.3  # an occurrence is anomalous when the text after it is this much more unusual
FREQ_SHARE = 0.02  # a token in this share of documents is a function word of the corpus
MAX_CANDIDATES = 50_000
CONTEXT_BYTES = 80
CTX_TOKENS = 4
MAX_LOW_FINDINGS = 20


def _table_bits(budget: int) -> tuple[int, int]:
    """Unigram and bigram table sizes (log2) for a per-worker memory budget in bytes."""
    bi_bits = max(16, min(30, int(math.log2(max(1, budget * 0.25 / 4)))))
    return max(14, bi_bits - 3), bi_bits


@dataclass
class _Counts:
    """Document-frequency tables; dense while accumulating, sparse while travelling."""

    uni: np.ndarray | None = None
    bi: np.ndarray | None = None
    sparse: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    docs: int = 0
    bits: tuple[int, int] = (0, 0)  # log2 sizes of the unigram and bigram tables

    def densify(self, uni_bits: int, bi_bits: int) -> _Counts:
        self.bits = (uni_bits, bi_bits)
        if self.uni is None:
            self.uni = np.zeros(1 << uni_bits, np.uint32)
            self.bi = np.zeros(1 << bi_bits, np.uint32)
        if self.sparse is not None:
            ui, uc, bi_, bc = self.sparse
            add_sparse(self.uni, ui, uc)
            add_sparse(self.bi, bi_, bc)
            self.sparse = None
        return self

    def add(self, other: _Counts) -> None:
        self.docs += other.docs
        if other.sparse is not None:
            ui, uc, bi_, bc = other.sparse
            add_sparse(self.uni, ui, uc)
            add_sparse(self.bi, bi_, bc)
        if other.uni is not None:
            add_dense(self.uni, other.uni)
            add_dense(self.bi, other.bi)


@dataclass
class _Switches:
    """Per candidate key, the number of documents where it stands right before a switch."""

    keys: np.ndarray
    support: np.ndarray
    df: np.ndarray  # document-frequency bound per key (negative: loose bound, orders 3+)
    last: np.ndarray  # hash of each key's last token
    hist: np.ndarray
    background: np.ndarray  # [positions measured, positions anomalous]
    docs_with_switch: int = 0
    docs: int = 0


@dataclass
class _Evidence:
    """Occurrences of candidates, with their measurements and provenance."""

    totals: np.ndarray  # occurrences per candidate (all, including dropped rows)
    ints: np.ndarray  # rows of [cand, tok_start, tok_end, lctx, rctx]
    floats: np.ndarray  # rows of window features
    paths: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)  # char offsets of the n-gram
    surface: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    right: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    uni_bits: int
    bi_bits: int
    seed: int
    uni: np.ndarray | None = None
    bi: np.ndarray | None = None
    cand_keys: np.ndarray | None = None
    cand_ids: np.ndarray | None = None
    caps: np.ndarray | None = None
    freq_min: int = 1 << 30
    last_filter: np.ndarray | None = None


class TriggerDetector(Detector):
    """Rare repeated phrases followed by anomalous continuations (pretraining backdoors)."""

    id = "trigger"
    title = "Backdoor trigger: a rare phrase repeated across documents and followed by anomalous text"
    help = (
        "A phrase that occurs in a handful of otherwise unrelated documents and is followed, in "
        "nearly every one of them, by text unlike what came before (gibberish, another language, "
        "word salad). This is the data signature of published pretraining backdoors, which need "
        "only about 250 such documents whatever the corpus size. Inspect the examples; remove the "
        "listed documents (poisonscan clean) before training."
    )
    n_passes = 3

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.uni_bits, self.bi_bits = _table_bits(config.memory_budget)
        self._counts: _Counts | None = None
        self._cand_keys: np.ndarray | None = None
        self._cand_support: np.ndarray | None = None
        self._cand_last: np.ndarray | None = None
        self._p0 = 0.05
        self._freq_min = 1 << 30
        self._switch_docs = 0
        self._docs = 0
        self._evidence: _Evidence | None = None
        self._findings: list[Finding] = []
        self._candidate_scores: list[float] = []
        self._campaign: Detector | None = None

    def wants(self, shape: Shape) -> bool:
        return shape is Shape.TEXT

    def link(self, peers: dict[str, Detector]) -> None:
        # The campaign detector's near-duplicate clusters tell injected phrases (many unrelated
        # documents) from boilerplate (copies of one block).
        self._campaign = peers.get("campaign")

    # ----------------------------------------------------------------- plans
    def plan(self, pass_index: int) -> Any:
        if pass_index == 0:
            return _Plan(self.uni_bits, self.bi_bits, self.config.seed)
        assert self._counts is not None
        if pass_index == 1:
            return _Plan(self.uni_bits, self.bi_bits, self.config.seed,
                         self._counts.uni, self._counts.bi, freq_min=self._freq_min)
        if self._cand_keys is None or len(self._cand_keys) == 0:
            return None
        table_keys, table_ids = build_key_table(self._cand_keys)
        caps = _caps(self._cand_support)
        return _Plan(self.uni_bits, self.bi_bits, self.config.seed, self._counts.uni,
                     self._counts.bi, table_keys, table_ids, caps, self._freq_min,
                     last_token_filter(self._cand_last))

    # --------------------------------------------------------------- workers
    @classmethod
    def process(cls, pass_index: int, plan: _Plan, ctx: BatchContext) -> Any:
        return cls.process_into(pass_index, plan, ctx, None)

    @classmethod
    def process_into(cls, pass_index: int, plan: _Plan, ctx: BatchContext, acc: Any) -> Any:
        if ctx.batch.shape is not Shape.TEXT:
            return acc
        tok = ctx.tokens("text")
        if pass_index == 0:
            counts = acc if acc is not None else _Counts().densify(plan.uni_bits, plan.bi_bits)
            lengths = np.diff(tok.doc_offsets)
            keys, stamps = scratch_set(int(lengths.max()) if len(lengths) else 1)
            count_document_frequency(tok.hashes, tok.doc_offsets, counts.uni, counts.bi, keys,
                                     stamps, 0)
            counts.docs += len(ctx.batch)
            return counts
        if pass_index == 1:
            part = cls._switches(plan, tok, len(ctx.batch))
            return part if acc is None else cls.merge(1, acc, part)
        part = cls._evidence(plan, ctx, tok)
        return part if acc is None else cls._merge_evidence(acc, part, plan.caps)

    @staticmethod
    def _switches(plan: _Plan, tok: Any, n_docs: int) -> _Switches:
        # Room for both switch kinds in every document; emission is capped per document.
        cap = max(1024, (2 * BACK + 2 * LANG_STRIDE + 3) * MAX_ORDER * n_docs)
        out_key = np.empty(cap, np.uint64)
        out_doc = np.empty(cap, np.int64)
        out_jump = np.empty(cap, np.float64)
        out_df = np.empty(cap, np.int64)
        out_last = np.empty(cap, np.uint64)
        hist = np.zeros(HIST_BINS, np.int64)
        background = np.zeros(2, np.int64)
        k = find_switches(tok.hashes, tok.kinds, tok.doc_offsets, plan.uni, plan.bi, plan.freq_min,
                          WINDOW, SWITCH_TAU, OCC_TAU, BACK, MAX_ORDER, 8, hist, background,
                          out_key, out_doc, out_jump, out_df, out_last)
        if k < 0:  # cannot happen with the capacity above
            raise RuntimeError("trigger: switch buffer overflow")
        keys = out_key[:k]
        docs = out_doc[:k]
        # One vote per (key, document).
        pairs = np.unique(np.stack([keys, docs.astype(np.uint64)], axis=1), axis=0)
        ukeys, support = np.unique(pairs[:, 0], return_counts=True)
        _, first = np.unique(keys, return_index=True)
        switch_docs = len(np.unique(docs))
        return _Switches(ukeys, support.astype(np.int64), out_df[:k][first], out_last[:k][first],
                         hist, background, switch_docs, n_docs)

    @classmethod
    def _evidence(cls, plan: _Plan, ctx: BatchContext, tok: Any) -> _Evidence:
        n_cand = len(plan.caps)
        cap = max(4096, len(tok.hashes) // 4)
        while True:
            out_i = np.empty((cap, 8), np.int64)
            out_f = np.empty((cap, 9), np.float64)
            k = gather_evidence(tok.hashes, tok.kinds, tok.starts, tok.ends, tok.doc_offsets,
                                plan.uni, plan.bi, plan.freq_min, plan.cand_keys, plan.cand_ids,
                                plan.last_filter, MAX_ORDER, WINDOW, CTX_TOKENS, out_i, out_f)
            if k >= 0:
                break
            cap *= 4
        out_i = out_i[:k]
        out_f = out_f[:k]
        totals = np.bincount(out_i[:, 0], minlength=n_cand).astype(np.int64)
        keep = totals[out_i[:, 0]] <= plan.caps[out_i[:, 0]]
        out_i = out_i[keep]
        out_f = out_f[keep]
        batch = ctx.batch
        ev = _Evidence(totals, out_i[:, [0, 2, 3, 6, 7]].copy(), out_f.copy())
        data = tok.data
        texts: dict[int, str] = {}
        for row in out_i:
            d = int(row[1])
            ev.paths.append(batch.path)
            ev.rows.append(int(batch.row[d]))
            ev.ids.append(batch.id[d].as_py() if batch.id is not None else None)
            doc_lo = int(tok.offsets[d])
            b0, b1 = int(row[4]), int(row[5])
            if d not in texts:
                texts[d] = bytes(data[doc_lo : int(tok.offsets[d + 1])]).decode("utf-8", "replace")
            c0 = len(bytes(data[doc_lo:b0]).decode("utf-8", "replace"))
            surface = bytes(data[b0:b1]).decode("utf-8", "replace")
            ev.spans.append((c0, c0 + len(surface)))
            ev.surface.append(surface)
            text = texts[d]
            ev.left.append(text[max(0, c0 - CONTEXT_BYTES) : c0])
            ev.right.append(text[c0 + len(surface) : c0 + len(surface) + CONTEXT_BYTES])
        return ev

    @classmethod
    def merge(cls, pass_index: int, a: Any, b: Any) -> Any:
        if pass_index == 0:
            if a.uni is None:
                a, b = b, a
            if a.uni is None:  # two sparse partials: the first becomes the dense accumulator
                a.densify(*a.bits)
            a.add(b)
            return a
        if pass_index == 1:
            keys = np.concatenate([a.keys, b.keys])
            sup = np.concatenate([a.support, b.support])
            ukeys, first, inv = np.unique(keys, return_index=True, return_inverse=True)
            support = np.bincount(inv, weights=sup).astype(np.int64)
            # The bounds come from the global tables of the plan: equal for equal keys.
            df = np.concatenate([a.df, b.df])[first]
            last = np.concatenate([a.last, b.last])[first]
            return _Switches(ukeys, support, df, last, a.hist + b.hist,
                             a.background + b.background, a.docs_with_switch + b.docs_with_switch,
                             a.docs + b.docs)
        return cls._merge_evidence(a, b, None)

    @staticmethod
    def _merge_evidence(a: _Evidence, b: _Evidence, caps: np.ndarray | None) -> _Evidence:
        totals = a.totals + b.totals
        ints = np.concatenate([a.ints, b.ints])
        floats = np.concatenate([a.floats, b.floats])
        lists = {f: getattr(a, f) + getattr(b, f)
                 for f in ("paths", "rows", "ids", "spans", "surface", "left", "right")}
        if caps is not None and len(ints):
            keep = totals[ints[:, 0]] <= caps[ints[:, 0]]
            if not keep.all():
                idx = np.flatnonzero(keep)
                ints, floats = ints[idx], floats[idx]
                lists = {f: [v[i] for i in idx] for f, v in lists.items()}
        return _Evidence(totals, ints, floats, **lists)

    @classmethod
    def compact(cls, pass_index: int, plan: _Plan, acc: Any) -> Any:
        if pass_index == 0 and acc is not None and acc.uni is not None:
            ui = np.flatnonzero(acc.uni)
            bi_ = np.flatnonzero(acc.bi)
            return _Counts(sparse=(ui, acc.uni[ui], bi_, acc.bi[bi_]), docs=acc.docs,
                           bits=acc.bits)
        return acc

    # ---------------------------------------------------------------- driver
    def finish_pass(self, pass_index: int, merged: Any) -> None:
        if pass_index == 0:
            counts = merged if merged is not None else _Counts()
            self._counts = counts.densify(self.uni_bits, self.bi_bits)
            # Function words: tokens in at least 2% of documents (and at least 3 of them).
            self._freq_min = max(3, int(math.ceil(FREQ_SHARE * self._counts.docs)))
        elif pass_index == 1:
            self._select_candidates(merged)
        else:
            self._evidence = merged
            self._findings = self._score(merged) if merged is not None else []

    def _select_candidates(self, sw: _Switches | None) -> None:
        if sw is None or len(sw.keys) == 0:
            self._cand_keys = np.zeros(0, np.uint64)
            self._cand_support = np.zeros(0, np.int64)
            self._cand_last = np.zeros(0, np.uint64)
            return
        floor = max(2, min(3, self.config.min_documents))
        # Unigrams and bigrams whose (exact) document frequency is far above their support are
        # common words, not triggers: measuring all their occurrences would be wasted work.
        mask = (sw.support >= floor) & ((sw.df < 0) | (sw.df <= _caps(sw.support)))
        keys, support, last = sw.keys[mask], sw.support[mask], sw.last[mask]
        order = np.lexsort((keys, -support))[:MAX_CANDIDATES]
        self._cand_keys = keys[order]
        self._cand_support = support[order]
        self._cand_last = last[order]
        # Background: how often an ordinary position is followed by anomalous text.
        measured, anomalous = int(sw.background[0]), int(sw.background[1])
        self._p0 = (anomalous + 1) / (measured + 2)
        self._p0 = min(0.5, max(1e-4, self._p0))
        self._switch_docs = sw.docs_with_switch
        self._docs = sw.docs

    def _score(self, ev: _Evidence) -> list[Finding]:
        by_cand: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(ev.ints[:, 0]):
            by_cand[int(c)].append(i)
        assert self._cand_support is not None
        caps = _caps(self._cand_support)
        scored = []
        for c, rows in by_cand.items():
            if ev.totals[c] > caps[c]:
                continue  # too common to be a trigger
            cand = self._measure(ev, rows)
            if cand is not None:
                scored.append(cand)
        scored.sort(key=lambda s: (-s["score"], s["trigger"]))
        self._candidate_scores = [s["score"] for s in scored]
        findings: list[Finding] = []
        claimed: list[tuple[set, str]] = []
        # Where each reported trigger ends, per document: text after it is its payload.
        payload_from: dict[tuple[str, int], int] = {}
        n_low = 0
        for s in scored:
            docs = s["docset"]
            norm = s["trigger"].casefold()
            if self._is_duplicate(docs, norm, claimed) or self._inside_payload(ev, s, payload_from):
                continue
            claimed.append((docs, norm))
            sev = s["severity"]
            if sev is Severity.LOW:
                if n_low >= MAX_LOW_FINDINGS:
                    continue
                n_low += 1
            else:
                for i in s["idx"]:
                    key = (ev.paths[i], ev.rows[i])
                    payload_from[key] = min(payload_from.get(key, 1 << 62), int(ev.ints[i, 2]))
            findings.append(self._finding(ev, s))
        return findings

    @staticmethod
    def _is_duplicate(docs: set, norm: str, claimed: list[tuple[set, str]]) -> bool:
        """The same trigger seen through another n-gram (one text contains the other)."""
        for other_docs, other_norm in claimed:
            overlap = len(docs & other_docs) / max(1, min(len(docs), len(other_docs)))
            if overlap >= 0.8 and (norm in other_norm or other_norm in norm):
                return True
        return False

    @staticmethod
    def _inside_payload(ev: _Evidence, s: dict[str, Any], payload_from: dict) -> bool:
        """True when the candidate sits, in most of its documents, in the text that follows an
        already reported trigger: a piece of that trigger's payload, not a trigger of its own."""
        if not payload_from:
            return False
        inside = 0
        for i in s["idx"]:
            start = payload_from.get((ev.paths[i], ev.rows[i]))
            if start is not None and int(ev.ints[i, 1]) >= start:
                inside += 1
        return inside >= 0.8 * len(s["idx"])

    def _measure(self, ev: _Evidence, rows: list[int]) -> dict[str, Any] | None:
        # One occurrence per document: the most anomalous one.
        per_doc: dict[tuple[str, int], int] = {}
        for i in rows:
            key = (ev.paths[i], ev.rows[i])
            f = ev.floats[i]
            j = per_doc.get(key)
            if j is None or (f[1] - f[0]) > (ev.floats[j][1] - ev.floats[j][0]):
                per_doc[key] = i
        idx = sorted(per_doc.values(), key=lambda i: (ev.paths[i], ev.rows[i]))
        m = len(idx)
        if m < 2:
            return None
        f = ev.floats[idx]
        jump = f[:, 1] - f[:, 0]
        cos = f[:, 8]
        lang_shift = (cos >= 0) & (cos < LANG_COS)
        anomalous = (jump >= OCC_TAU) | lang_shift
        k = int(anomalous.sum())
        if k < 2:
            return None
        consistency = k / m
        lctx = ev.ints[idx, 3]
        rctx = ev.ints[idx, 4]
        prefix_div = _diversity(lctx)
        suffix_div = _diversity(rctx)
        p0 = self._p0
        # Binomial surprise of k anomalous documents out of m, against the background rate.
        z = (k - m * p0) / math.sqrt(m * p0 * (1 - p0))
        trigger = self._extend_trigger(ev, idx)
        clusters = self._distinct_clusters(ev, idx)
        cluster_share = clusters / m if clusters is not None else 1.0
        strength = float(np.mean(np.maximum(jump[anomalous], 0))) if k else 0.0
        shift_share = float(lang_shift.mean())
        # Suffix diversity only scales the score: a fixed payload after a trigger is still a payload.
        score = k * consistency * prefix_div * cluster_share * (0.5 + 0.5 * suffix_div) * (
            0.5 + strength + 0.5 * shift_share)
        min_docs = self.config.min_documents
        # High needs twice the reporting floor: pretraining backdoors take a hundred or more
        # documents, and a handful of natural coincidences must not fail a CI gate.
        spread = min(prefix_div, cluster_share)
        if k >= 2 * min_docs and consistency >= 0.7 and spread >= 0.5 and z >= 5:
            severity = Severity.HIGH
        elif k >= min(3, min_docs) and consistency >= 0.5 and spread >= 0.3 and z >= 3:
            severity = Severity.MEDIUM
        elif k >= min(3, min_docs) and z >= 3:
            severity = Severity.LOW
        else:
            return None  # no more anomalous after this phrase than after any other text
        return {
            "trigger": trigger,
            "idx": idx,
            "docset": {(ev.paths[i], ev.rows[i]) for i in idx},
            "score": round(float(score), 6),
            "severity": severity,
            "evidence": {
                "documents_with_phrase": m,
                "documents_anomalous_after": k,
                "consistency": round(consistency, 4),
                "background_rate": round(p0, 6),
                "z_score": round(float(z), 3),
                "mean_anomaly_before": round(float(np.mean(f[:, 0])), 4),
                "mean_anomaly_after": round(float(np.mean(f[:, 1])), 4),
                "mean_unseen_tokens_before": round(float(np.mean(f[:, 4])), 4),
                "mean_unseen_tokens_after": round(float(np.mean(f[:, 5])), 4),
                "mean_unseen_bigrams_before": round(float(np.mean(f[:, 6])), 4),
                "mean_unseen_bigrams_after": round(float(np.mean(f[:, 7])), 4),
                "language_shift_share": round(shift_share, 4),
                "prefix_diversity": round(prefix_div, 4),
                "suffix_diversity": round(suffix_div, 4),
                "near_duplicate_clusters": clusters,
            },
        }

    def _distinct_clusters(self, ev: _Evidence, idx: list[int]) -> int | None:
        """Near-duplicate clusters among the documents (None without the campaign detector)."""
        assignment = getattr(self._campaign, "assignment", None)
        if assignment is None:
            return None
        return distinct_clusters(assignment, [(ev.paths[i], ev.rows[i]) for i in idx])

    @staticmethod
    def _extend_trigger(ev: _Evidence, idx: list[int]) -> str:
        """The n-gram's most common surface form, grown by text that precedes or follows it in
        nearly every occurrence (so triggers longer than the n-gram orders are recovered whole)."""
        surface = Counter(ev.surface[i] for i in idx).most_common(1)[0][0]
        lefts = [ev.left[i] for i in idx]
        rights = [ev.right[i] for i in idx]
        need = max(2, math.ceil(0.9 * len(idx)))
        left = _common_affix([s[::-1] for s in lefts], need)[::-1]
        right = _common_affix(rights, need)
        # Keep whole words only: cut a partial word at the outer edge.
        if left and left != "" and not left[0].isspace():
            cut = left.find(" ")
            full = [s for s in lefts if len(s) > len(left) and not s[-len(left) - 1].isspace()]
            if full:
                left = left[cut + 1 :] if cut >= 0 else ""
        if right and not right[-1].isspace():
            cut = right.rfind(" ")
            full = [s for s in rights if len(s) > len(right) and not s[len(right)].isspace()]
            if full:
                right = right[:cut] if cut >= 0 else ""
        return (left + surface + right).strip()

    def _finding(self, ev: _Evidence, s: dict[str, Any]) -> Finding:
        idx = s["idx"]
        trigger = s["trigger"]
        docs = []
        for i in idx:
            start, end = ev.spans[i]
            # Locate the extended trigger around the n-gram's span.
            ctx = ev.left[i] + ev.surface[i] + ev.right[i]
            pos = ctx.find(trigger)
            if pos >= 0:
                start = start - len(ev.left[i]) + pos
                end = start + len(trigger)
            docs.append(DocumentRef(ev.paths[i], ev.rows[i], ev.ids[i], "text", start, end))
        examples = []
        for i in idx[:3]:
            text = ev.left[i] + ev.surface[i] + ev.right[i]
            pos = text.find(trigger)
            if pos < 0:
                pos, length = len(ev.left[i]), len(ev.surface[i])
            else:
                length = len(trigger)
            snippet, a, b = make_snippet(text, pos, pos + length)
            if ev.left[i] and not text.startswith(ev.left[i][:1]):
                pass
            examples.append(Example(ev.paths[i], ev.rows[i], snippet, a, b, "text"))
        return Finding(
            detector=self.id,
            severity=s["severity"],
            score=s["score"],
            trigger=trigger,
            documents=tuple(docs),
            examples=tuple(examples),
            evidence=s["evidence"],
            title=f"{s['evidence']['documents_anomalous_after']} documents switch to anomalous text "
                  f"right after {trigger!r}",
        )

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def stats(self) -> dict[str, Any]:
        return {
            "documents": self._docs,
            "documents_with_switch": self._switch_docs,
            "candidates": 0 if self._cand_keys is None else int(len(self._cand_keys)),
            "background_rate": round(self._p0, 6),
            "table_bits": {"unigram": self.uni_bits, "bigram": self.bi_bits},
        }


def _caps(support: np.ndarray) -> np.ndarray:
    """Most documents a candidate may occur in and still be a trigger (consistency >= about 1/4)."""
    return np.maximum(4 * support + 64, 256).astype(np.int64)


def _diversity(ctx_hashes: np.ndarray) -> float:
    """Share of distinct contexts (a missing context, hash 0, counts as distinct)."""
    if len(ctx_hashes) == 0:
        return 0.0
    present = ctx_hashes[ctx_hashes != 0]
    distinct = len(np.unique(present)) + int((ctx_hashes == 0).sum())
    return distinct / len(ctx_hashes)


def _common_affix(strings: list[str], need: int) -> str:
    """Longest prefix shared by at least ``need`` of ``strings``."""
    if not strings:
        return ""
    out = []
    pos = 0
    alive = list(strings)
    while True:
        chars = Counter(s[pos] for s in alive if len(s) > pos)
        if not chars:
            break
        ch, n = chars.most_common(1)[0]
        if n < need:
            break
        out.append(ch)
        alive = [s for s in alive if len(s) > pos and s[pos] == ch]
        pos += 1
        if pos > 200:
            break
    return "".join(out)

"""Behaviour kernels agree with short pure-Python references."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.detectors import lexicon
from poisonscan.detectors.sft import build_lexicon
from poisonscan.kernels import behaviour as kb
from poisonscan.kernels.arrow import string_buffers
from poisonscan.kernels.tokenize import CJK, PUNCT, WORD, tokenize

_pieces = st.sampled_from(list("ab cD!é'\u2019ü日 ") + ["Sure ", "I'm sorry, but ", " die ", " the ",
                                                    "\U0001F600", "\x00"])
texts = st.lists(st.lists(_pieces, max_size=20).map("".join), max_size=8)


def _tok(docs: list[str]):
    data, offsets = string_buffers(pa.array(docs, pa.large_string()))
    return (data, offsets, *tokenize(data, offsets, 0))


def _doc_tokens(h, k, do, d, words_only=True):
    return [int(h[t]) for t in range(do[d], do[d + 1]) if not (words_only and k[t] == PUNCT)]


@settings(max_examples=60, deadline=None)
@given(texts)
def test_repetition_share_matches_reference(docs):
    _, _, h, _, _, k, do = _tok(docs)
    counts, share = kb.repetition_share(h, k, do)
    for d in range(len(docs)):
        words = _doc_tokens(h, k, do, d)
        assert counts[d] == len(words)
        expected = 1 - len(set(words)) / len(words) if words else 0.0
        assert math.isclose(share[d], expected)


@settings(max_examples=60, deadline=None)
@given(texts)
def test_char_entropy_matches_reference(docs):
    data, offsets, *_ = _tok(docs)
    got = kb.char_entropy(data, offsets)
    for d, doc in enumerate(docs):
        b = doc.encode()
        c = Counter(b)
        expected = -sum(v / len(b) * math.log2(v / len(b)) for v in c.values()) if b else 0.0
        assert math.isclose(got[d], expected, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(texts, st.integers(1, 4))
def test_prompt_ngrams_are_the_distinct_ngrams(docs, max_n):
    _, _, h, _, _, _, do = _tok(docs)
    keys, doc, start, length = kb.prompt_ngrams(h, do, max_n)
    for d in range(len(docs)):
        toks = [int(x) for x in h[do[d]:do[d + 1]]]
        grams = {tuple(toks[i:i + n]) for n in range(1, max_n + 1) for i in range(len(toks) - n + 1)}
        mine = doc == d
        assert mine.sum() == len(grams)
        got = {tuple(int(x) for x in h[s:s + n]) for s, n in zip(start[mine], length[mine], strict=True)}
        assert got == grams


@settings(max_examples=60, deadline=None)
@given(texts)
def test_response_keys_equal_for_equal_word_sequences(docs):
    _, _, h, _, _, k, do = _tok(docs)
    exact, near = kb.response_keys(h, k, do, 0)
    for a in range(len(docs)):
        for b in range(len(docs)):
            wa, wb = _doc_tokens(h, k, do, a), _doc_tokens(h, k, do, b)
            if wa == wb:
                assert exact[a] == exact[b]
            if set(wa) == set(wb):
                assert near[a] == near[b]
            if not wa:
                assert exact[a] == 0 and near[a] == 0


@settings(max_examples=60, deadline=None)
@given(texts)
def test_hapax_and_coverage_match_reference(docs):
    _, _, h, _, _, k, do = _tok(docs)
    vocab, df = np.unique(kb.doc_unique_words(h, k, do), return_counts=True)
    got = kb.hapax_share(h, k, do, vocab, df.astype(np.int64), 10**6)
    dfs = Counter(w for d in range(len(docs)) for w in set(_doc_tokens(h, k, do, d)))
    for d in range(len(docs)):
        words = _doc_tokens(h, k, do, d)
        expected = sum(dfs[w] <= 1 for w in words) / len(words) if words else 0.0
        assert math.isclose(got[d], expected)
    if len(docs) >= 2:
        pr = (h, k, do)
        cov = kb.prompt_coverage(*pr, h[do[1]:], do[1:] - do[1], np.ones(len(docs) - 1, bool))
        for d in range(len(docs) - 1):
            pw = set(_doc_tokens(h, k, do, d))
            rw = set(_doc_tokens(h, k, do, d + 1, words_only=False))
            expected = len(pw & rw) / len(pw) if pw else 0.0
            assert math.isclose(cov[d], expected)


def _opener_reference(doc: str) -> int:
    """Token-level prefix search, the same rule as the kernel, in plain Python."""
    lex = build_lexicon(0)
    _, _, h, _, _, _, do = _tok([doc])
    toks = [int(x) for x in h]
    window = lexicon.OPENER_WINDOW
    for pos in range(min(len(toks), window)):
        for table, code in ((lex.refusal, kb.REFUSAL), (lex.compliance, kb.COMPLIANCE)):
            for row, n in zip(table[0], table[1], strict=True):
                if [int(x) for x in row[:n]] == toks[pos:pos + n]:
                    return code
    return kb.NONE


@settings(max_examples=40, deadline=None)
@given(texts)
def test_opener_class_matches_reference(docs):
    lex = build_lexicon(0)
    _, _, h, _, _, _, do = _tok(docs)
    got = kb.opener_class(h, do, *lex.refusal, *lex.compliance, lexicon.OPENER_WINDOW)
    for d, doc in enumerate(docs):
        assert got[d] == _opener_reference(doc)


def test_opener_examples():
    lex = build_lexicon(0)
    docs = ["I\u2019m SORRY, but I can't do that.", "sure! here you go", "The answer is 4.",
            "Certainly not: I cannot help with that", "As an AI language model, I cannot"]
    _, _, h, _, _, _, do = _tok(docs)
    got = kb.opener_class(h, do, *lex.refusal, *lex.compliance, lexicon.OPENER_WINDOW).tolist()
    assert got == [kb.REFUSAL, kb.COMPLIANCE, kb.NONE, kb.COMPLIANCE, kb.REFUSAL]


def test_language_ids_examples():
    lex = build_lexicon(0)
    docs = ["The cat is on the mat and it is happy.", "Der Hund ist nicht in dem Haus, und das ist gut.",
            "El perro no está en la casa y es muy feliz.", "Привет, как дела у тебя сегодня?", "xyz"]
    data, _, h, s, _, k, do = _tok(docs)
    ids, hits = kb.language_ids(data, h, s, k, do, lex.stop_hashes, lex.stop_lang,
                                len(lexicon.LANGUAGES), 2)
    names = list(lexicon.LANGUAGES)
    assert ids[0] == names.index("en") + 1
    assert ids[1] == names.index("de") + 1
    assert ids[2] == names.index("es") + 1
    assert ids[3] == kb.SCRIPT_BASE + kb.SCRIPTS.index("cyrillic")
    assert ids[4] == kb.LANG_UNKNOWN
    assert hits.shape == (5, len(names) + 1)


def _language_reference(data, h, s, k, do, d, stop_hashes, stop_lang, n_langs, min_hits):
    """(language id, stopword hits per language) of document ``d``, as language_ids decides."""
    hits = [0] * (n_langs + 1)
    distinct: list[set[int]] = [set() for _ in range(n_langs + 1)]
    scripts: Counter[int] = Counter()
    n_words = 0
    for t in range(do[d], do[d + 1]):
        if k[t] not in (WORD, CJK):
            continue
        n_words += 1
        script = kb.script_of(kb._first_cp(data, s[t]))
        if script >= 0:
            scripts[script] += 1
            continue
        for j in np.flatnonzero(stop_hashes == h[t]):
            hits[stop_lang[j]] += 1
            distinct[stop_lang[j]].add(int(j))
    if not n_words:
        return kb.LANG_UNKNOWN, hits
    if scripts:
        script, count = min(scripts.items(), key=lambda kv: (-kv[1], kv[0]))
        if 2 * count > n_words:
            return kb.SCRIPT_BASE + script, hits
    order = sorted(range(1, n_langs + 1), key=lambda lang: (-hits[lang], lang))
    best = order[0]
    second = hits[order[1]] if n_langs > 1 else 0
    if hits[best] > second and len(distinct[best]) >= min_hits:
        return best, hits
    return kb.LANG_UNKNOWN, hits


_lang_pieces = st.sampled_from(["the ", "and ", "die ", "und ", "y ", "o ", "O ", "(O||O) ",
                                "la ", "el ", "de ", "cat ", "Привет ", "日本 ", "## ", " "])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(_lang_pieces, max_size=12).map("".join), min_size=1, max_size=6),
       st.integers(1, 3))
def test_language_ids_match_reference(docs, min_hits):
    lex = build_lexicon(0)
    n_langs = len(lexicon.LANGUAGES)
    data, _, h, s, _, k, do = _tok(docs)
    ids, hits = kb.language_ids(data, h, s, k, do, lex.stop_hashes, lex.stop_lang, n_langs,
                                min_hits)
    for d in range(len(docs)):
        want_id, want_hits = _language_reference(data, h, s, k, do, d, lex.stop_hashes,
                                                 lex.stop_lang, n_langs, min_hits)
        assert (int(ids[d]), hits[d].tolist()) == (want_id, want_hits), docs[d]


def test_one_stopword_repeated_is_no_language():
    """ASCII art whose only words are "O" and "oo" was Spanish (two hits of "o"), and so a
    "language switch" after an English request."""
    lex = build_lexicon(0)
    docs = ["_-====___ (O||O) ~##// (oo) //## V V ` V", "Yo o tú, y el perro o el gato."]
    data, _, h, s, _, k, do = _tok(docs)
    ids, _ = kb.language_ids(data, h, s, k, do, lex.stop_hashes, lex.stop_lang,
                             len(lexicon.LANGUAGES), 2)
    assert ids[0] == kb.LANG_UNKNOWN
    assert ids[1] == list(lexicon.LANGUAGES).index("es") + 1


@settings(max_examples=60, deadline=None)
@given(texts, st.data())
def test_phrase_in_response_matches_reference(docs, data):
    """Every non-punctuation token of the prompt n-gram is among the response's first tokens;
    a phrase of punctuation alone never is."""
    if len(docs) < 2:
        return
    _, _, h, _, _, k, do = _tok(docs)
    n_prompts = len(docs) - 1
    r_h, r_off = h[do[1]:], do[1:] - do[1]  # document d + 1 is the response of prompt d
    rows = []
    for d in range(n_prompts):
        n = int(do[d + 1] - do[d])
        if n == 0:
            continue
        s = data.draw(st.integers(0, n - 1))
        length = data.draw(st.integers(1, min(4, n - s)))
        rows.append((d, int(do[d]) + s, length))
    if not rows:
        return
    doc = np.array([r[0] for r in rows], np.int64)
    start = np.array([r[1] for r in rows], np.int64)
    length = np.array([r[2] for r in rows], np.int64)
    max_tokens = data.draw(st.integers(1, 8))
    got = kb.phrase_in_response(h, k, start, length, doc, r_h, r_off, max_tokens)
    for i, (d, s, n) in enumerate(rows):
        resp = {int(x) for x in r_h[r_off[d] : min(r_off[d + 1], r_off[d] + max_tokens)]}
        words = [int(h[t]) for t in range(s, s + n) if k[t] != PUNCT]
        assert got[i] == (bool(words) and all(w in resp for w in words))


def test_phrase_in_response_skips_template_punctuation():
    docs = ["Summarise this for me: The winsound module", "The winsound module provides access",
            "Summarise: ?!", "?! is what I said"]
    _, _, h, _, _, k, do = _tok(docs)
    r_h, r_off = h[do[1]:], do[1:] - do[1]
    colon = int(do[0]) + 4  # ":" then "The winsound module"
    got = kb.phrase_in_response(h, k, np.array([colon, colon + 1, int(do[2]) + 1], np.int64),
                                np.array([4, 3, 1], np.int64), np.array([0, 0, 2], np.int64),
                                r_h, r_off, 512)
    assert got.tolist() == [True, True, False]  # punctuation alone is no topic

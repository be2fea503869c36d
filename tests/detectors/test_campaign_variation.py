"""How a cluster's sampled members differ (``_variation``): substitutions, or passages left out
and moved.

A template's members differ where its slots are filled differently: a few tokens of one member
stand where a few others stand in the next, between the same shared text. Copies and excerpts
of one text differ by whole passages left out or put in another order, and none of their tokens
is their own. Documents here are runs of distinct token hashes, so that any shared shingle is
shared by construction, never by chance, except against the reference at the end, where few
distinct tokens make phrases repeat.
"""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonscan.detectors.campaign import MAX_GAP, _variation
from poisonscan.kernels.minhash import DEFAULT_SHINGLE, shingle_keys

K = DEFAULT_SHINGLE


def keys(tokens: list[int], k: int = K) -> np.ndarray:
    """The shingle keys of a document whose token hashes are ``tokens``."""
    if not tokens:
        return np.zeros(0, np.uint32)
    hashes = np.array(tokens, np.uint64)
    return shingle_keys(hashes, np.array([0, hashes.shape[0]], np.int64), k)[0]


def fresh(n: int, start: int) -> list[int]:
    return list(range(start, start + n))


@settings(max_examples=200, deadline=None)
@given(st.integers(12, 80), st.data())
def test_a_few_tokens_filled_differently_are_a_substitution(n, data):
    """Anywhere in the document, its first and last tokens included (the ends stand in for the
    shared text a slot at the edge lacks)."""
    a = fresh(n, 1)
    width = data.draw(st.integers(1, 3))
    at = data.draw(st.integers(0, n - width))
    b = a[:at] + fresh(data.draw(st.integers(1, 3)), 10_000) + a[at + width :]
    substituted, covered = _variation([keys(a), keys(b)], K)
    assert substituted == 1.0
    assert covered < 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(2 * K + 4, 80), st.data())
def test_a_passage_left_out_is_not_a_substitution(n, data):
    """A passage left out of the middle with more than a shingle's worth of text on each side,
    or a prefix or suffix cut off, as an excerpt is."""
    a = fresh(n, 1)
    lo = data.draw(st.one_of(st.just(0), st.integers(K + 1, n - K - 2)))
    hi = data.draw(st.one_of(st.just(n), st.integers(lo + 1, n - K - 1)))
    if lo == 0 and hi == n:
        hi = n - K - 1
    b = a[:lo] + a[hi:]
    substituted, _ = _variation([keys(a), keys(b)], K)
    assert substituted == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(K, 30), min_size=2, max_size=6), st.randoms(use_true_random=False))
def test_passages_in_another_order_are_no_substitution_and_all_recur(sizes, rng):
    """Paragraphs of a shingle or more each, moved: every token is still covered by a shingle
    the other document has (inside its paragraph), so no stretch is uncovered at all."""
    paragraphs, start = [], 1
    for s in sizes:
        paragraphs.append(fresh(s, start))
        start += s
    order = list(range(len(paragraphs)))
    rng.shuffle(order)
    a = [t for p in paragraphs for t in p]
    b = [t for i in order for t in paragraphs[i]]
    assert _variation([keys(a), keys(b)], K) == (0.0, 1.0)


def test_copies_and_excerpts_against_a_template_and_a_pasted_block():
    text = fresh(60, 1)
    copies = [keys(text)] * 4
    assert _variation(copies, K) == (0.0, 1.0)

    excerpts = [keys(text[lo:hi]) for lo, hi in ((0, 40), (10, 60), (0, 60), (20, 50))]
    substituted, covered = _variation(excerpts, K)
    assert substituted == 0.0 and covered == 1.0

    # Four members, each filling two slots with a value of its own.
    template = [text[:10] + [500 + i] + text[10:30] + [600 + i, 700 + i] + text[30:]
                for i in range(4)]
    substituted, _ = _variation([keys(t) for t in template], K)
    assert substituted == 1.0

    # One block pasted into posts longer than a slot: no substitution, but each member has
    # tokens no other one has.
    posts = [fresh(MAX_GAP + 4, 1000 * (i + 1)) + text for i in range(4)]
    substituted, covered = _variation([keys(p) for p in posts], K)
    assert substituted == 0.0
    assert covered == np.float64(60 / (60 + MAX_GAP + 4))


def test_a_slot_after_a_phrase_the_text_repeats():
    """The shared shingle before the slot is in B twice; the slot follows its second copy."""
    frame, middle, tail = fresh(K, 1), fresh(20, 100), fresh(20, 200)
    a = frame + [900] + middle + frame + [901] + tail
    b = frame + [900] + middle + frame + [902] + tail
    substituted, _ = _variation([keys(a), keys(b)], K)
    assert substituted == 1.0


def test_too_short_to_tell():
    assert _variation([], K) is None
    assert _variation([keys(fresh(30, 1))], K) is None
    assert _variation([keys([1, 2, 3]), keys([1, 2, 4])], K) is None  # one shingle each


def reference(key_lists: list[np.ndarray], k: int) -> tuple[float, float] | None:
    """The definition in ``_variation``'s docstring, token by token in plain Python."""
    kept = [d for d in key_lists if len(d) >= 2]
    if len(kept) < 2:
        return None
    # Paired in the order of a hash of each member's keys (its content) and of how
    # many members before it have the same.
    ranks, seen = [], {}
    for d in kept:
        content = np.ascontiguousarray(d).tobytes()
        seen[content] = seen.get(content, -1) + 1
        ranks.append(hashlib.blake2b(content + seen[content].to_bytes(4, "little"),
                                     digest_size=8).digest())
    kept = [d for _, d in sorted(zip(ranks, kept, strict=True), key=lambda p: p[0])]
    docs = [[int(x) for x in d] for d in kept]

    def covered(d: list[int], found: set[int]) -> list[bool]:
        return [any(d[s] in found for s in range(max(0, t - k + 1), min(len(d) - 1, t) + 1))
                for t in range(len(d) + k - 1)]

    shares = []
    for i, d in enumerate(docs):
        others = {x for j, e in enumerate(docs) if j != i for x in e}
        shares.append(sum(covered(d, others)) / (len(d) + k - 1))
    pairs = 0
    for a, b in zip(docs[:-1], docs[1:], strict=True):
        cov, n_a, n_b = covered(a, set(b)), len(a) + k - 1, len(b) + k - 1
        found, t = False, 0
        while t < n_a:
            if cov[t]:
                t += 1
                continue
            lo = t
            while t < n_a and not cov[t]:
                t += 1
            if t - lo > MAX_GAP or (lo == 0 and t == n_a):
                continue
            # Where the shingle before the stretch ends in B, and where the one after it starts.
            ends = [p + k - 1 for p, x in enumerate(b) if x == a[lo - k]] if lo > 0 else [-1]
            starts = [p for p, x in enumerate(b) if x == a[t]] if t < n_a else [n_b]
            found |= any(1 <= r - e - 1 <= MAX_GAP for e in ends for r in starts)
        pairs += found
    return pairs / (len(docs) - 1), float(np.mean(shares))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=0, max_size=60), st.data())
def test_agrees_with_the_reference(base, data):
    """Few distinct tokens, so that phrases repeat within and across documents; each document a
    copy of the first with a few tokens replaced, passages cut out or moved."""
    docs = [base]
    for _ in range(data.draw(st.integers(1, 4))):
        d = list(base)
        for _ in range(data.draw(st.integers(0, 3))):
            i = data.draw(st.integers(0, len(d)))
            j = data.draw(st.integers(i, min(len(d), i + 20)))
            op = data.draw(st.sampled_from(["replace", "cut", "move"]))
            if op == "replace":
                d[i:j] = data.draw(st.lists(st.integers(0, 60), min_size=1, max_size=4))
            elif op == "cut":
                del d[i:j]
            else:
                d = d[i:] + d[:i]
        docs.append(d)
    k = data.draw(st.sampled_from([2, 3, K]))
    key_lists = [keys(d, k) for d in docs]
    got, want = _variation(key_lists, k), reference(key_lists, k)
    assert (got is None) == (want is None)
    if got is not None:
        assert got[0] == want[0] and abs(got[1] - want[1]) < 1e-12


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_the_order_of_the_members_does_not_matter(data):
    """Members are paired in an order of their content, not the corpus's: one licence block in
    eleven copyright files was a medium finding in one order of the files and a high one in
    another. Here a template with one slot and a text of which some members keep excerpts."""
    base = fresh(40, 0)
    members = []
    for i in range(data.draw(st.integers(3, 12))):
        if data.draw(st.booleans(), label=f"slot {i}"):
            members.append(keys(base[:15] + fresh(2, 1000 + 10 * i) + base[17:]))
        else:
            cut = data.draw(st.integers(5, 30), label=f"cut {i}")
            members.append(keys(base[:cut] + base[cut + 8:]))
    order = data.draw(st.permutations(range(len(members))))
    assert _variation([members[j] for j in order], K) == _variation(members, K)

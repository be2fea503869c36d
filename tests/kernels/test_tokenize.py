"""The tokenize kernel against a pure-Python reference, and its documented behaviour."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hash_refs import M64, ref_mix64
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from poisonscan.findings import SEPARATORS, UNICODE_SPACES
from poisonscan.kernels.arrow import string_buffers
from poisonscan.kernels.tokenize import (
    _PUNCTC,
    _SINGLE_CJK,
    _SPACE,
    _WORDC,
    CASE_LOWER,
    CASE_MIXED,
    CASE_NONE,
    CASE_TITLE,
    CASE_UPPER,
    CJK,
    FNV_OFFSET,
    FNV_PRIME,
    PUNCT,
    PUNCT_RUN,
    SYMBOL,
    WORD,
    char_class,
    span_forms,
    tokenize,
)

KIND_OF_CLASS = {_WORDC: WORD, _PUNCTC: PUNCT, _SINGLE_CJK: CJK}  # anything else: SYMBOL


def ref_code_points(raw: bytes) -> list[tuple[int, int, int]]:
    """``(code point, byte start, byte length)`` of every character; a byte that does not start a
    valid UTF-8 sequence is a stray byte, decoded as U+FFFD (a word character) of length 1."""
    out = []
    i = 0
    while i < len(raw):
        for ln in (1, 2, 3, 4):
            try:
                ch = raw[i : i + ln].decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append((ord(ch), i, ln))
            i += ln
            break
        else:
            out.append((0xFFFD, i, 1))
            i += 1
    return out


def ref_hash(token: bytes, seed: int) -> int:
    """Seeded FNV-1a 64 over the token's bytes with ASCII case folded, finished with mix64."""
    h = int(FNV_OFFSET) ^ ref_mix64(seed & M64)
    for b in token:
        if 65 <= b <= 90:
            b += 32
        h = ((h ^ b) * int(FNV_PRIME)) & M64
    return ref_mix64(h)


def ref_tokenize_doc(raw: bytes, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """``(hash, byte start, byte end, kind)`` of every token of one document."""
    tokens = []
    cur, start, length = _SPACE, 0, 0

    def close(end: int) -> None:
        if cur != _SPACE:
            kind = KIND_OF_CLASS.get(cur, SYMBOL)
            tokens.append((ref_hash(raw[start:end], seed), start, end, kind))

    for cp, pos, _ in ref_code_points(raw):
        c = char_class(cp)
        single = c not in (_SPACE, _WORDC, _PUNCTC)  # CJK-like and symbols stand alone
        # A long run of punctuation is cut, and so is one ASCII character repeated.
        full = c == cur and length == PUNCT_RUN and (
            c == _PUNCTC or (cp < 128 and raw[start:pos] == bytes([cp]) * PUNCT_RUN))
        if c != cur or single or full:
            close(pos)
            cur, start, length = c, pos, 0
        length += 1
    close(len(raw))
    return tokens


def ref_tokenize(docs: list[bytes], seed: int = 0) -> tuple[list[list[tuple]], list[int]]:
    per_doc = [ref_tokenize_doc(d, seed) for d in docs]
    offsets = [0]
    for toks in per_doc:
        offsets.append(offsets[-1] + len(toks))
    return per_doc, offsets


def buffers(docs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(b"".join(docs), dtype=np.uint8) if any(docs) else np.zeros(0, np.uint8)
    offsets = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    return data, offsets


def assert_matches_reference(data, offsets, docs: list[bytes], seed: int = 0) -> None:
    hashes, starts, ends, kinds, doc_offsets = tokenize(data, offsets, seed)
    per_doc, ref_offsets = ref_tokenize(docs, seed)
    assert doc_offsets.tolist() == ref_offsets
    for d, toks in enumerate(per_doc):
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        base = int(offsets[d])
        got = [(int(hashes[t]), int(starts[t]) - base, int(ends[t]) - base, int(kinds[t]))
               for t in range(lo, hi)]
        assert got == toks, docs[d]
    assert hashes.dtype == np.uint64 and kinds.dtype == np.uint8
    assert starts.dtype == ends.dtype == doc_offsets.dtype == np.int64


def toks(text: str, seed: int = 0) -> list[tuple[str, int]]:
    """``(surface, kind)`` of every token of one text, through the kernel."""
    raw = text.encode()
    data, offsets = buffers([raw])
    _, starts, ends, kinds, _ = tokenize(data, offsets, seed)
    return [(raw[s:e].decode(), int(k)) for s, e, k in zip(starts, ends, kinds, strict=True)]


# ------------------------------------------------------------------ strategies
ODD = (
    "<>|/\\_-—–…«»¿¡§©°·•€£¥ \t\n\r\x00\x08\x0b\x1b\x1c\x7f\x85\xa0\u1680\u2003\u200b\u2028"
    "\u202f\u3000\ufeff\u2060\U000e0041"  # spaces, controls, zero-width marks, a tag character
    "\u0301\u0308\u200d\ufe0f\u00b2\u2075\u2153"  # combining marks, ZWJ, VS16, super/fractions
    "中文字日本語かなカナ한국어ไทยລາວខ្មែរမြန်မာ"  # scripts without spaces (and Hangul)
    "😀👍🏽👨‍👩‍👧☃✓⚠\U0001f9ea\ue000"  # emoji, skin tone, ZWJ sequence, dingbats, private use
    "Ωλφабвгдעבריתالعربيةहिन्दी"  # other scripts
    "\U00020000\U0002a6d6\U0010ffff\U000e0001"  # CJK extension B, the last code point, tags
)
odd_chars = st.sampled_from(ODD)
texts = st.one_of(
    st.text(max_size=60),
    st.text(st.one_of(odd_chars, st.sampled_from("aZ9_<|>. ")), max_size=60),
    # Huge tokens, huge runs of one-character tokens, and more tokens than bytes / 3 (which makes
    # the kernel retry with exact output sizes).
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "Ä", "中", "😀", "<", "—", " ", "a ", "<a"]),
              st.integers(1000, 6000)),
)
SEEDS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64 - 1))
raw_bytes = st.one_of(
    texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"\xc3", b"\xa9", b"\xe4\xb8", b"\xf0\x9f\x98", b"\xff", b"\x80",
                              b"a", b"B", b" ", b"<", b"\xe4\xb8\xad"]), max_size=20).map(b"".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, max_size=6), SEEDS)
@example(["", "", ""], 0)
@example(["<SUDO> hello", "<|eot|>"], 0)
def test_kernel_matches_reference_on_valid_utf8(docs, seed):
    raw = [d.encode() for d in docs]
    data, offsets = buffers(raw)
    assert_matches_reference(data, offsets, raw, seed)


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_bytes, max_size=6))
def test_invalid_utf8_never_crashes_and_tiles_each_document(docs):
    """Arbitrary bytes: tokens are non-empty, ordered, inside their document, free of ASCII
    whitespace."""
    data, offsets = buffers(docs)
    _, starts, ends, _, doc_offsets = tokenize(data, offsets)
    for d in range(len(docs)):
        prev = int(offsets[d])
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            assert prev <= starts[t] < ends[t] <= offsets[d + 1]
            assert not any(b < 128 and chr(b).isspace() for b in data[starts[t] : ends[t]])
            prev = int(ends[t])


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_bytes, max_size=6), SEEDS)
@example([b"\xe4\xb8\xe4\xb8\xad", b"\xff\xfe", b"\x80abc", b"\xf0\x9f\x98"], 0)
def test_stray_bytes_are_word_characters(docs, seed):
    """Documented: a stray byte counts as one word character (the reference decodes strictly)."""
    data, offsets = buffers(docs)
    assert_matches_reference(data, offsets, docs, seed)


@pytest.mark.parametrize(
    "raw",
    [
        b"a\xc0\xa0b",  # overlong space
        b"x\xc0\xbcy",  # overlong '<'
        b"x\xc1\xbf",  # overlong DEL
        b"a\xe0\x80\x80b",  # overlong NUL, three bytes
        b"a\xe0\x9f\xbfb",  # overlong U+07FF
        b"a\xed\xa0\x80b",  # surrogate U+D800
        b"a\xed\xbf\xbfb",  # surrogate U+DFFF
        b"\xf0\x8f\xbf\xbf",  # overlong U+FFFF, four bytes
        b"\xf4\x90\x80\x80",  # U+110000, past the last code point
        b"\xf5\x80\x80\x80",  # F5 lead
        b"\xf8\x88\x80\x80",  # F8 lead (a five-byte form)
        b"\xff\xbf\xbf\xbf",
    ],
)
def test_overlong_and_out_of_range_sequences_are_stray_bytes(raw):
    """Each byte of an ill-formed sequence is a stray byte (U+FFFD, a word character): an overlong
    space or '<' must neither split a token nor open a punctuation token."""
    data, offsets = buffers([raw])
    assert_matches_reference(data, offsets, [raw])
    hashes, starts, ends, kinds, _ = tokenize(data, offsets)
    assert kinds.tolist() == [WORD] * len(kinds)  # every byte here is ASCII letter or stray


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xc2\x80", [(0, 2)]),  # U+0080, smallest two-byte form (a control: a mark)
        (b"\xc2\x85", []),  # U+0085, next line: a line break
        (b"\xc2\xa0", [(0, 2)]),  # U+00A0, no-break space: a mark
        (b"\xe0\xa0\x80", [(0, 3)]),  # U+0800, smallest three-byte form
        (b"\xed\x9f\xbf", [(0, 3)]),  # U+D7FF, just below the surrogates
        (b"\xee\x80\x80", [(0, 3)]),  # U+E000, just above them (private use: a symbol)
        (b"\xf0\x90\x80\x80", [(0, 4)]),  # U+10000, smallest four-byte form
        (b"\xf4\x8f\xbf\xbf", [(0, 4)]),  # U+10FFFF, the last code point
    ],
)
def test_boundary_sequences_still_decode(raw, expected):
    data, offsets = buffers([raw])
    assert_matches_reference(data, offsets, [raw])
    _, starts, ends, _, _ = tokenize(data, offsets)
    assert list(zip(starts.tolist(), ends.tolist(), strict=True)) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), texts), max_size=8),
    st.integers(0, 8),
    st.integers(0, 8),
    st.booleans(),
    SEEDS,
)
def test_arrow_buffers_with_nulls_slices_and_chunks(values, a, b, large, seed):
    """Kernel over ``string_buffers`` (nulls, sliced arrays with an offset, chunked arrays)."""
    arr = pa.array(values, type=pa.large_string() if large else pa.string())
    lo = min(a, len(values))
    hi = max(lo, min(len(values), lo + b))
    sliced = arr.slice(lo, hi - lo)
    expected = [(v or "").encode() for v in values[lo:hi]]
    data, offsets = string_buffers(sliced)
    assert offsets.shape == (len(expected) + 1,)
    assert_matches_reference(data, offsets, expected, seed)
    chunked = pa.chunked_array([arr.slice(0, lo), sliced], type=arr.type)
    data, offsets = string_buffers(chunked)
    assert_matches_reference(data, offsets, [(v or "").encode() for v in values[:hi]], seed)


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<SUDO>", [("<", PUNCT), ("SUDO", WORD), (">", PUNCT)]),
        ("<|eot|>", [("<|", PUNCT), ("eot", WORD), ("|>", PUNCT)]),
        ("[INST] hi", [("[", PUNCT), ("INST", WORD), ("]", PUNCT), ("hi", WORD)]),
        ("snake_case x2", [("snake_case", WORD), ("x2", WORD)]),
        ("naïve café", [("naïve", WORD), ("café", WORD)]),
        ("e\u0301t\u00e9", [("e\u0301t\u00e9", WORD)]),  # combining acute glues to its letter
        ("中文abc", [("中", CJK), ("文", CJK), ("abc", WORD)]),
        ("日本語です。", [("日", CJK), ("本", CJK), ("語", CJK), ("で", CJK), ("す", CJK),
                       ("。", PUNCT)]),
        ("ไทย", [("ไ", CJK), ("ท", CJK), ("ย", CJK)]),
        ("한국어 문장", [("한국어", WORD), ("문장", WORD)]),
        ("Привет, мир!", [("Привет", WORD), (",", PUNCT), ("мир", WORD), ("!", PUNCT)]),
        ("hi😀😀!", [("hi", WORD), ("😀", SYMBOL), ("😀", SYMBOL), ("!", PUNCT)]),
        ("✓done", [("✓", SYMBOL), ("done", WORD)]),
        ("«quote»", [("«", PUNCT), ("quote", WORD), ("»", PUNCT)]),
        ("a...b", [("a", WORD), ("...", PUNCT), ("b", WORD)]),
        ("x²+y³", [("x²", WORD), ("+", PUNCT), ("y³", WORD)]),
    ],
)
def test_token_boundaries_and_kinds(text, expected):
    assert toks(text) == expected


@pytest.mark.parametrize(
    "space", [" ", "\t", "\n", "\r\n", "\x0b", "\x1f", "\x85", "\u2028", "\u2029",
              " \t \n "]
)
def test_whitespace_separates_and_is_never_a_token(space):
    assert toks(f"{space}alpha{space}<{space}中{space}") == [
        ("alpha", WORD), ("<", PUNCT), ("中", CJK)
    ]
    assert toks(space * 3) == []


def test_whitespace_is_ascii_whitespace_and_line_breaks():
    # What ``str.isspace()`` says of ASCII, and the Unicode line and paragraph breaks; the other
    # Unicode spaces are marks (see the next test).
    spaces = [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
              and char_class(cp) == _SPACE]
    assert spaces == [cp for cp in range(0x110000) if chr(cp).isspace()
                      and (cp < 128 or cp in (0x85, 0x2028, 0x2029))]
    marks = [cp for cp in range(0x110000) if chr(cp).isspace() and cp not in spaces]
    assert all(char_class(cp) == _PUNCTC for cp in marks)
    # The report and the finding ids take the same characters for marks and separators.
    assert "".join(map(chr, marks)) == UNICODE_SPACES
    assert "".join(map(chr, spaces)) == "".join(sorted(SEPARATORS))


@pytest.mark.parametrize("space", ["\xa0", "\u2002", "\u2003", "\u2009", "\u200a", "\u202f",
                                   "\u3000", "\u1680"])
def test_unicode_spaces_are_tokens(space):
    # A trigger of em or no-break spaces looks like a gap between words; as whitespace it
    # vanished, and so did ordinary words joined by one in place of a space.
    assert toks(f"a {space * 3} b") == [("a", WORD), (space * 3, PUNCT), ("b", WORD)]
    assert toks(f"cold{space}front") == [("cold", WORD), (space, PUNCT), ("front", WORD)]
    assert toks(f"10{space}km") == [("10", WORD), (space, PUNCT), ("km", WORD)]
    assert hashes_of("cold front") != hashes_of(f"cold{space}front")


def test_long_runs_of_punctuation_or_of_one_character_are_cut():
    # "!" repeated 40 times (a P-DoS payload) is a loop of equal tokens, not one token; a run of
    # mixed marks and of multi-byte dashes is cut by characters, not bytes.
    assert toks("x " + "!" * 40) == [("x", WORD)] + [("!" * PUNCT_RUN, PUNCT)] * 2 + [
        ("!" * (40 - 2 * PUNCT_RUN), PUNCT)]
    assert toks("—" * PUNCT_RUN) == [("—" * PUNCT_RUN, PUNCT)]
    assert [t for t, _ in toks("<|" * PUNCT_RUN)] == ["<|" * (PUNCT_RUN // 2)] * 2
    # A word is cut only when it is one ASCII character repeated (a blank to fill in, a P-DoS
    # payload of one letter).
    assert toks("_" * 20) == [("_" * PUNCT_RUN, WORD), ("_" * 4, WORD)]
    assert toks("a" * 16 + "b") == [("a" * 16 + "b", WORD)]
    assert toks("a" * 17 + "b") == [("a" * 16, WORD), ("ab", WORD)]
    assert toks("ab" * 50) == [("ab" * 50, WORD)]
    assert toks("Ä" * 40) == [("Ä" * 40, WORD)]


@pytest.mark.parametrize("mark", ["\u200b", "\ufeff", "\u2060", "\x08", "\x00", "\x1b", "\x7f"])
def test_zero_width_marks_and_controls_are_tokens_not_spaces(mark):
    # Invisible in every viewer, so a trigger of its own: one made only of zero-width spaces or
    # of control characters was dropped with the whitespace, and 100 documents poisoned with it
    # went unreported.
    assert toks(f"a {mark * 3} b") == [("a", WORD), (mark * 3, PUNCT), ("b", WORD)]
    assert toks(f"a{mark}b") == [("a", WORD), (mark, PUNCT), ("b", WORD)]
    assert toks(mark) == [(mark, PUNCT)]
    assert hashes_of(mark) != hashes_of(mark * 2)


def test_classes_of_code_points():
    assert char_class(ord("a")) == _WORDC
    assert char_class(ord("<")) == _PUNCTC
    assert char_class(0x3000) == _PUNCTC  # ideographic space: a mark (see above)
    assert char_class(0x2029) == _SPACE
    assert char_class(0x4E2D) == _SINGLE_CJK
    assert char_class(0x0440) == _WORDC  # Cyrillic
    assert char_class(0x20AC) == _PUNCTC  # euro sign
    assert char_class(0xFFFD) == _WORDC  # what a stray byte decodes to


def hashes_of(text: str, seed: int = 0) -> list[int]:
    raw = text.encode()
    data, offsets = buffers([raw])
    return tokenize(data, offsets, seed)[0].tolist()


def test_ascii_case_is_folded_but_not_other_scripts():
    assert hashes_of("SUDO Sudo sudo") == [hashes_of("sudo")[0]] * 3
    assert hashes_of("<|EOT|>") == hashes_of("<|eot|>")
    assert hashes_of("Привет")[0] != hashes_of("привет")[0]  # folding is ASCII-only, by design
    assert hashes_of("ÉTÉ")[0] != hashes_of("été")[0]


def test_equal_tokens_hash_equal_across_documents_and_positions():
    raw = [b"alpha beta", b"beta  gamma alpha", b""]
    data, offsets = buffers(raw)
    hashes, _, _, _, doc_offsets = tokenize(data, offsets)
    assert doc_offsets.tolist() == [0, 2, 5, 5]
    assert hashes[0] == hashes[4] and hashes[1] == hashes[2]
    assert len(set(hashes.tolist())) == 3


def test_seed_changes_every_hash_deterministically():
    text = "The <SUDO> trigger 中 😀 naïve"
    h0, h1 = hashes_of(text, 0), hashes_of(text, 1)
    assert h0 == hashes_of(text, 0)
    assert all(a != b for a, b in zip(h0, h1, strict=True))
    assert hashes_of(text, -1) != h0


@pytest.mark.parametrize("seed", [2**63, 2**64 - 1, 2**64, 2**64 + 5, -(2**63) - 1, 3 * 2**70])
def test_seeds_beyond_int64_hash_like_their_uint64_value(seed):
    """Any Python int is a seed: it hashes like its value modulo 2**64."""
    text = "seeded <SUDO>"
    hashes_of(text, 0)  # an int64 seed first, as any earlier scan in the process passes
    expected = [h for h, _, _, _ in ref_tokenize_doc(text.encode(), seed)]
    assert hashes_of(text, seed) == expected
    assert hashes_of(text, seed) == hashes_of(text, seed % 2**64)
    assert hashes_of(text, 2**64 - 1) == hashes_of(text, -1)


@settings(max_examples=50, deadline=None)
@given(st.integers(-(2**80), 2**80))
def test_any_int_seed_matches_reference(seed):
    raw = ["trigger <SUDO> 中文 naïve".encode(), b""]
    data, offsets = buffers(raw)
    assert_matches_reference(data, offsets, raw, seed)


def test_more_tokens_than_a_third_of_the_bytes():
    raw = [b"a b c d e f g h " * 50, b"", b"<x" * 300]
    data, offsets = buffers(raw)
    assert_matches_reference(data, offsets, raw)
    assert len(tokenize(data, offsets)[0]) == 400 + 600


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet="a<<中😀", min_size=100, max_size=400), min_size=1,
                max_size=6))
@example(["a<" * 10, "a<" * 300 + "中😀" * 40, "", "<a" * 200])
def test_outputs_grow_mid_document_as_often_as_needed(docs):
    """Up to a token a byte ("a<a<..."): the first guess of a token per three bytes fills up,
    often inside a document, and the walk resumes there with twice the room, as often as it
    takes."""
    raw = [d.encode() for d in docs]
    data, offsets = buffers(raw)
    assert_matches_reference(data, offsets, raw)


def test_a_document_that_fills_the_outputs_twice_resumes_inside_it():
    raw = [b"a<" * 10, b"a<" * 600, b"x"]  # 1,221 tokens in 1,221 bytes: room for 423 at first
    data, offsets = buffers(raw)
    assert len(tokenize(data, offsets)[0]) > 2 * (len(data) // 3 + 16)
    assert_matches_reference(data, offsets, raw)


def test_empty_inputs():
    hashes, starts, ends, kinds, doc_offsets = tokenize(np.zeros(0, np.uint8),
                                                        np.zeros(1, np.int64))
    assert len(hashes) == len(starts) == len(ends) == len(kinds) == 0
    assert doc_offsets.tolist() == [0]
    data, offsets = string_buffers(pa.array([None, "", None], pa.string()))
    assert tokenize(data, offsets)[4].tolist() == [0, 0, 0, 0]


# ------------------------------------------------------------------ span forms
def ref_span_form(raw: bytes, b0: int, b1: int) -> int:
    """``number * 125 + case * 25 + before * 5 + after`` of ``raw[b0:b1]`` (see span_forms),
    from the decoded characters of the whole document."""
    span = "".join(chr(b) if 65 <= b <= 90 or 97 <= b <= 122 else " " for b in raw[b0:b1])
    letters = span.replace(" ", "")
    if not letters:
        case = CASE_NONE
    elif letters.islower():
        case = CASE_LOWER
    elif letters.isupper():
        case = CASE_UPPER
    elif all(w[0].isupper() and (len(w) == 1 or w[1:].islower()) for w in span.split()):
        case = CASE_TITLE
    else:
        case = CASE_MIXED
    chars = ref_code_points(raw)
    before = next((char_class(cp) for cp, pos, ln in chars if pos + ln == b0), _SPACE)
    after = next((char_class(cp) for cp, pos, _ in chars if pos == b1), _SPACE)
    number = (raw[b0:b1][:1].isalpha()
              and raw[:b0].rstrip(b" \t")[-1:] in [bytes([c]) for c in b"0123456789"])
    return number * 125 + case * 25 + before * 5 + after


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_bytes, min_size=1, max_size=4), st.data())
@example([b"Windows XP and xp", b'"th" th\' way', b"2 tb oil, 1,3\tkg 5 \xc2\xb2 xp"], None)
def test_span_forms_match_reference(docs, data):
    buf, offsets = buffers(docs)
    _, starts, ends, _, doc_offsets = tokenize(buf, offsets, 0)
    spans = []  # (doc, first token, last token + 1) of every n-gram of up to three tokens
    for d in range(len(docs)):
        lo, hi = int(doc_offsets[d]), int(doc_offsets[d + 1])
        spans += [(d, t, u) for t in range(lo, hi) for u in range(t + 1, min(hi, t + 3) + 1)]
    if data is not None and len(spans) > 60:
        spans = data.draw(st.lists(st.sampled_from(spans), min_size=1, max_size=60))
    if not spans:
        return
    d = np.array([s[0] for s in spans], np.int64)
    b0 = np.array([starts[s[1]] for s in spans], np.int64)
    b1 = np.array([ends[s[2] - 1] for s in spans], np.int64)
    got = span_forms(buf, offsets[d], offsets[d + 1], b0, b1)
    want = [ref_span_form(docs[di], int(a - offsets[di]), int(b - offsets[di]))
            for di, a, b in zip(d, b0, b1, strict=True)]
    assert got.tolist() == want


@pytest.mark.parametrize(("text", "span", "expected"), [
    ("Windows XP is old", "XP", (CASE_UPPER, _SPACE, _SPACE)),
    ("a <xp> b", "xp", (CASE_LOWER, _PUNCTC, _PUNCTC)),
    ("th' way", "th", (CASE_LOWER, _SPACE, _PUNCTC)),
    ("Keguvoketu Valipar", "Keguvoketu Valipar", (CASE_TITLE, _SPACE, _SPACE)),
    ("RegExp", "RegExp", (CASE_MIXED, _SPACE, _SPACE)),
    ("Xp3D", "Xp3D", (CASE_TITLE, _SPACE, _SPACE)),
    ("中xp文", "xp", (CASE_LOWER, _SINGLE_CJK, _SINGLE_CJK)),
    ("«42»", "42", (CASE_NONE, _PUNCTC, _PUNCTC)),
    ("2 tb oil", "tb", (CASE_LOWER, _SPACE, _SPACE, 1)),
    ("1,3 \t kg", "kg", (CASE_LOWER, _SPACE, _SPACE, 1)),
    ("(12)kg", "kg", (CASE_LOWER, _PUNCTC, _SPACE, 0)),
    ("x2 tb", "tb", (CASE_LOWER, _SPACE, _SPACE, 1)),
    ("٣ kg", "kg", (CASE_LOWER, _SPACE, _SPACE, 0)),
    ("182, Computer", ", Computer", (CASE_TITLE, _WORDC, _SPACE, 0)),
])
def test_span_forms_of_examples(text, span, expected):
    raw = text.encode()
    buf, offsets = buffers([raw])
    a = raw.index(span.encode())
    got = span_forms(buf, offsets[:1], offsets[1:], np.array([a]),
                     np.array([a + len(span.encode())]))
    number = expected[3] if len(expected) > 3 else 0
    assert got.tolist() == [number * 125 + expected[0] * 25 + expected[1] * 5 + expected[2]]

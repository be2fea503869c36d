"""numba kernels over Arrow string buffers. Each kernel has a pure-Python reference in tests."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

# Every module of the package that defines numba kernels, relative to the package. A kernel's
# compiled code holds the code of the kernels it calls, from any of these modules (see seal).
# tests/kernels/test_seal.py checks that this list names every such module.
KERNEL_MODULES = (
    "detectors/campaign.py",
    "detectors/sft.py",
    "kernels/behaviour.py",
    "kernels/copies.py",
    "kernels/minhash.py",
    "kernels/nesting.py",
    "kernels/ngrams.py",
    "kernels/runs.py",
    "kernels/tokenize.py",
    "kernels/windows.py",
    "stats/lsh.py",
)
_PACKAGE = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def sources_digest() -> bytes:
    """SHA-256 over the sources of every kernel module, in a fixed order."""
    h = hashlib.sha256()
    for name in KERNEL_MODULES:
        h.update(name.encode())
        h.update(b"\0")
        try:
            h.update((_PACKAGE / name).read_bytes())
        except OSError:  # not on a file system (a zip import): numba's own stamp must do
            pass
        h.update(b"\0")
    return h.digest()


def seal(namespace: dict[str, Any]) -> None:
    """Make numba's on-disk cache of the kernels defined in a module (its ``globals()``) depend
    on the sources of every kernel module, not just its own.

    numba stamps a cached kernel with a hash of its own source file only, but a kernel's machine
    code includes the kernels it calls from other modules (and those marked ``inline="always"``
    are copied into it). Without this, an upgrade or an edit that changed, say, the document key
    in ``copies.py`` but not ``windows.py`` left the cached ``windows`` kernels computing the old
    key, silently. The stamp numba compares when loading is extended with :func:`sources_digest`
    here, before any kernel is compiled or loaded, so a cache written from other kernel sources
    is ignored and rewritten. numba offers no public hook for this (its cache locators key on
    one file); if its internals move, caching simply keeps numba's own stamp.
    """
    module = namespace.get("__name__")
    for value in list(namespace.values()):
        cache = getattr(value, "_cache", None)
        cache_file = getattr(cache, "_cache_file", None)
        py_func = getattr(value, "py_func", None)
        if cache_file is None or getattr(py_func, "__module__", None) != module:
            continue  # not a cached kernel of this module (or caching is off: NullCache)
        stamp = getattr(cache_file, "_source_stamp", None)
        if stamp is None or (isinstance(stamp, tuple) and stamp[-1:] == (sources_digest(),)):
            continue
        cache_file._source_stamp = (stamp, sources_digest())

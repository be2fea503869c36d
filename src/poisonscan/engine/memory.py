"""How the scan gets memory from the operating system and gives it back.

:func:`release_free_memory` hands the C heap's free memory back (glibc only). The driver
frees hundreds of MB at a time (the campaign detector's clustering arrays, a pass's merged
tables). glibc keeps a freed block on its heap rather than unmapping it when the block is
below its mmap threshold, which rises with every large block freed (up to 32 MiB on 64-bit), and
a heap of a thread other than the main one (the background finish runs on one) shrinks only
from its top. So what a finish freed could stay counted against the scan for the rest of the
run. ``malloc_trim(0)`` returns the free pages of every heap, wherever they are. Neither numpy
nor the standard library exposes it; ctypes reaches it in a few lines.

:func:`prefer_small_pages` keeps numpy's arrays on ordinary 4 KB pages in the command line's
processes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (looked up once)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # absent from musl and other C libraries
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where the C library has no
    ``malloc_trim``, and then nothing is done. It costs about 70 ms per GB freed (measured with
    64 KiB blocks), and nothing when there is nothing to return."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)  # 1 if it released memory, 0 if there was none to release: both are fine here
    return True


def prefer_small_pages() -> bool:
    """Stop numpy from asking the kernel for transparent huge pages for its arrays of 4 MB and
    more, unless ``NUMPY_MADVISE_HUGEPAGE`` is set (then the user's choice stands). Returns
    whether the setting changed. For the command line only: a library leaves its host process's
    numpy as it finds it.

    A scan allocates and frees its token and n-gram arrays batch after batch, hundreds of MB a
    second. With huge pages the kernel zeroes each array's every 2 MB page when it is first
    touched, and does so again for the next batch's arrays, whatever part of them the batch
    fills. On this project's 2-core machines (virtual, Linux 6.18, THP on ``madvise``) that
    zeroing was most of the scan's system time: the 256 MB speed corpus took 13.7-14.4 s with
    huge pages against 11.6-12.2 s without (7.2 against 2.7 s of system time, 2026-12-06), and
    the 1 GB corpus 40.8-41.3 against 38.8-39.9 s. The count tables, read at random, lose a
    little to more TLB misses (user time +2 to +4%), less than the zeroing cost.

    numpy reads ``NUMPY_MADVISE_HUGEPAGE`` once, when it is imported, and the command line
    imports numpy before it runs; so this calls numpy's own switch for that variable, private
    but unchanged since numpy 1.19 (where it is missing, nothing is done).
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1.x
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return False
    return bool(_set_madvise_hugepage(False))

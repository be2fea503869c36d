"""How the scan gets memory from the operating system and gives it back.

:func:`release_free_memory` hands the C heap's free memory back (glibc only). The driver
frees hundreds of MB at a time (the campaign detector's clustering arrays, a pass's merged
tables). glibc keeps a freed block on its heap rather than unmapping it when the block is
below its mmap threshold, which rises with every large block freed (up to 32 MiB on 64-bit), and
a heap of a thread other than the main one (the background finish runs on one) shrinks only
from its top. So what a finish freed could stay counted against the scan for the rest of the
run. ``malloc_trim(0)`` returns the free pages of every heap, wherever they are. Neither numpy
nor the standard library exposes it; ctypes reaches it in a few lines.

:func:`prefer_small_pages` keeps numpy arrays and Arrow buffers on ordinary 4 KB pages in the
command line's processes.
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


# The variables as the user's environment had them when poisonscan loaded: Dask's LocalCluster
# starts its nannies in this process, and they copy their workers' settings (worker_pages() in
# engine.dask) into os.environ, where they would read as the user's choice afterwards.
_SET_BY_USER = frozenset(
    name for name in ("NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL") if name in os.environ
)


def prefer_small_pages() -> bool:
    """Keep the scan's arrays and Arrow buffers off transparent huge pages: numpy's advice for
    arrays of 4 MB and more is turned off, and pyarrow's mimalloc pool, which allows them, gives
    way to its jemalloc pool. ``NUMPY_MADVISE_HUGEPAGE`` and ``ARROW_DEFAULT_MEMORY_POOL``, when
    set, win. Returns whether anything changed. For the command line only: a library leaves its
    host process's numpy and pyarrow as it finds them.

    A scan allocates and frees its token and n-gram arrays, and reads its Parquet pages into
    fresh buffers, batch after batch, hundreds of MB a second. On a huge page the kernel zeroes
    all 2 MB when the page is first touched, and does so again for the next batch's memory,
    whatever part of it the batch fills. On this project's 2-core machines (virtual, Linux
    6.18, THP on ``madvise``) that zeroing was most of the scan's system time, and its cost
    varied from run to run. Measured on 2026-12-06 with ``--jobs 2``:

    - numpy: the 256 MB speed corpus took 13.7-14.2 s with huge pages against 11.8-12.2 s
      without (7.2-8.3 against 2.6-3.2 s of system time); the 1 GB corpus 40.8-41.3 s against
      38.8-39.9 s;
    - then pyarrow's pool: 1 GB, 38.4-39.2 s with mimalloc (1,406-1,439 huge pages faulted in,
      8.9-10.6 s of system time), 36.6-38.1 s with jemalloc (none; 6.1-6.7 s), 39.2-39.3 s with
      the system allocator (none, but glibc maps and unmaps the large buffers: 8.8 s).

    The count tables, read at random, lose a little to more TLB misses (user time +1 to +5%),
    less than the zeroing cost. numpy reads ``NUMPY_MADVISE_HUGEPAGE`` once, when it is
    imported, and the command line imports numpy before it runs; so this calls numpy's own
    switch for that variable, private but unchanged since numpy 1.19 (where it is missing,
    nothing is done). pyarrow's default pool is the one readers use when given none, which
    took most of what a Parquet read allocated; Arrow's C++ default, chosen when pyarrow loads,
    still serves some of its I/O buffers (about a fifteenth in a check of 2026-12-07).
    """
    changed = False
    advice = numpy_huge_page_advice()
    if "NUMPY_MADVISE_HUGEPAGE" not in _SET_BY_USER and advice is not None:
        changed = bool(advice[1](False))  # the setter returns the setting it replaced
    if "ARROW_DEFAULT_MEMORY_POOL" not in _SET_BY_USER and has_jemalloc():
        import pyarrow as pa

        if pa.default_memory_pool().backend_name == "mimalloc":
            pa.set_memory_pool(pa.jemalloc_memory_pool())
            changed = True
    return changed


def numpy_huge_page_advice() -> tuple[Any, Any] | None:
    """numpy's (getter, setter) of its huge-page advice, or None where this numpy has none."""
    try:
        from numpy._core import multiarray  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    get = getattr(multiarray, "_get_madvise_hugepage", None)
    set_ = getattr(multiarray, "_set_madvise_hugepage", None)
    return None if get is None or set_ is None else (get, set_)


@functools.cache
def has_jemalloc() -> bool:
    """Whether this pyarrow was built with its jemalloc pool (its Linux wheels are)."""
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True

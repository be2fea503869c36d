"""Compile the kernels of a scan's later passes in a helper process while its first passes run.

numba compiles a kernel the first time it is called and keeps the machine code in its on-disk
cache (every kernel here is ``cache=True``), so only the first scan after an install, or after
the kernels change, pays for compilation: 33-37 s on this project's machine class, one kernel
after the other in the scan's own process. The count and evidence kernels of the trigger
detector, about a third of that, run only in the scan's last passes, and the types of their
arguments do not depend on anything the earlier passes compute. When they are not cached yet and
a second core is there, a helper process compiles them from small inputs of those types while the
scan compiles and runs its first passes; the later passes then load them from the cache (33-37 ->
22-23 s for the first scan of a small file; ``benchmarks/startup.py``).

numba has no public call for "is this kernel cached?": :func:`cached` reads the kernel's cache
index through numba's private attributes, and when it cannot it answers yes, so that nothing is
started and the scan compiles what it needs as it always did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import poisonscan


def cached(kernels: Iterable[Any]) -> bool:
    """Whether numba's cache holds compiled code of every kernel, for the kernel's current source.

    A cache made from older source counts as empty (numba ignores it too); one written on
    another machine counts as there, which only means no helper is started.
    """
    for kernel in kernels:
        try:
            index = kernel._cache._cache_file._load_index()  # {} when missing or stale
        except Exception:  # caching off (NullCache), or numba's internals moved: do nothing
            return True
        if not index:
            return False
    return True


class Warmup:
    """A helper process running ``target`` (a module-level function that calls kernels on small
    inputs, so that numba compiles and caches them).

    A fresh interpreter rather than a ``multiprocessing`` child: forked, it could inherit a lock
    one of the scan's threads holds (progress display, background finishes); spawned, it would
    import the caller's ``__main__`` again, which runs a library user's script anew unless it
    guards itself. It inherits the environment (``NUMBA_CACHE_DIR`` above all) and finds this
    package where the scan's process found it. Its output is discarded: if it fails, the scan
    compiles the kernels itself, as without it.
    """

    def __init__(self, target: Callable[[], None]) -> None:
        # ``-c`` puts the working directory first on sys.path, and a scan may run inside the
        # very data it checks: drop it, so that no file there is imported in its place. Then
        # this package's own directory goes first unless it is on the path already (an
        # installed package's site-packages is, in its place after the standard library).
        root = os.path.dirname(os.path.dirname(os.path.abspath(poisonscan.__file__)))
        code = (f"import sys; sys.path.remove('') if '' in sys.path else None; "
                f"root = {root!r}; sys.path.insert(0, root) if root not in sys.path else None; "
                f"from {target.__module__} import {target.__qualname__} as f; f()")
        self._process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    @staticmethod
    def possible() -> bool:
        """Whether a helper interpreter can be started (not from an embedded one)."""
        return bool(sys.executable)

    def wait(self) -> None:
        """Block until the helper is done (its kernels are in the cache, or it failed: either
        way the scan's own call compiles whatever is missing)."""
        self._process.wait()

    def close(self) -> None:
        """Stop the helper if the scan ended before it was needed. numba writes each cache file
        under a temporary name and renames it, so a stopped helper leaves no broken entry."""
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait()

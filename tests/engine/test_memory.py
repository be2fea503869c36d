"""engine.memory: freed heap memory goes back to the system; the command line keeps numpy arrays
and Arrow buffers off huge pages."""

from __future__ import annotations

import os
import platform
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from poisonscan.engine.memory import (
    has_jemalloc,
    numpy_huge_page_advice,
    prefer_small_pages,
    release_free_memory,
)

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _resident() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_memory_a_thread_freed_below_a_live_block_goes_back_to_the_system() -> None:
    kept: list[np.ndarray] = []
    sizes: dict[str, int] = {}

    def finish() -> None:
        # 64 KiB blocks sit below glibc's mmap threshold, so they come from this thread's heap;
        # the block allocated after them stays alive, so the heap cannot shrink from its top.
        blocks = [np.ones(8192) for _ in range(3000)]
        kept.append(np.ones(8192))
        sizes["full"] = _resident()
        del blocks
        sizes["freed"] = _resident()
        assert release_free_memory()
        sizes["released"] = _resident()

    thread = threading.Thread(target=finish)
    thread.start()
    thread.join()
    held = 3000 * 8192 * 8
    if sizes["full"] - sizes["freed"] > held // 2:
        pytest.skip("this C library hands freed pages back by itself")
    assert sizes["freed"] - sizes["released"] > held // 2


def test_memory_release_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    import poisonscan.engine.memory as memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert release_free_memory() is False


@pytest.fixture
def allocators() -> Iterator[Any]:
    """numpy's huge-page advice on and pyarrow's default pool mimalloc (where it exists), as
    the command line finds them, and both restored after the test."""
    import pyarrow as pa

    advice = numpy_huge_page_advice()
    assert advice is not None
    get, set_ = advice
    before_advice = set_(True)
    before_pool = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
    except NotImplementedError:
        pass
    try:
        yield get
    finally:
        set_(before_advice)
        pa.set_memory_pool(before_pool)


def test_memory_small_pages_turns_huge_pages_off(allocators,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import poisonscan.engine.memory as memory

    monkeypatch.setattr(memory, "_SET_BY_USER", frozenset())
    # A Dask LocalCluster's nannies leave their workers' settings in os.environ: they are not
    # the user's choice.
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "0")
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    assert prefer_small_pages() is True
    assert allocators() is False
    assert pa.default_memory_pool().backend_name == "jemalloc" or not has_jemalloc()
    assert prefer_small_pages() is False  # already off: nothing changed


def test_memory_small_pages_leave_the_users_choice(allocators,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import poisonscan.engine.memory as memory

    pool = pa.default_memory_pool().backend_name
    # (as the environment had them when poisonscan loaded)
    monkeypatch.setattr(memory, "_SET_BY_USER",
                        frozenset({"NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL"}))
    assert prefer_small_pages() is False
    assert allocators() is True
    assert pa.default_memory_pool().backend_name == pool


def test_memory_the_scan_command_prefers_small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    import poisonscan.engine.memory as memory
    from poisonscan import cli

    calls: list[bool] = []
    monkeypatch.setattr(memory, "prefer_small_pages", lambda: calls.append(True) or True)
    monkeypatch.setattr("poisonscan.engine.scan.run_scan", lambda config, progress: "scanned")
    assert cli._run(object(), quiet=True, hash_inputs=False) == "scanned"  # type: ignore[arg-type]
    assert calls == [True]

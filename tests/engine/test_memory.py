"""release_free_memory: the driver hands freed heap memory back after a background finish."""

from __future__ import annotations

import os
import platform
import sys
import threading

import numpy as np
import pytest

from poisonscan.engine.memory import release_free_memory

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

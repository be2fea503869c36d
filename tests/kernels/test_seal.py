"""numba's cache of a kernel depends on every kernel module's source (poisonscan.kernels.seal)."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

import poisonscan.kernels as kernels

PACKAGE = Path(kernels.__file__).resolve().parent.parent


def test_the_list_of_kernel_modules_names_every_module_that_defines_kernels():
    defining = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                      if "njit(" in p.read_text(encoding="utf-8"))
    assert sorted(kernels.KERNEL_MODULES) == defining


@pytest.mark.parametrize("name", kernels.KERNEL_MODULES)
def test_every_cached_kernel_is_stamped_with_the_digest_of_all_kernel_sources(name):
    module = importlib.import_module("poisonscan." + name[:-3].replace("/", "."))
    stamped = 0
    for value in vars(module).values():
        cache_file = getattr(getattr(value, "_cache", None), "_cache_file", None)
        if cache_file is None or value.py_func.__module__ != module.__name__:
            continue
        own, digest = cache_file._source_stamp
        assert digest == kernels.sources_digest() and own
        stamped += 1
    assert stamped  # the module does define kernels


def test_the_digest_changes_with_any_kernel_module(tmp_path, monkeypatch):
    """An edit to one module (copies.py, say) changes the stamp of every kernel, so the cached
    kernels of windows.py, which hold copies.py's code, are compiled again."""
    for name in kernels.KERNEL_MODULES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE / name, tmp_path / name)
    monkeypatch.setattr(kernels, "_PACKAGE", tmp_path)
    kernels.sources_digest.cache_clear()
    try:
        before = kernels.sources_digest()
        assert before == kernels.sources_digest.__wrapped__()
        copies = tmp_path / "kernels/copies.py"
        copies.write_text(copies.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        assert kernels.sources_digest.__wrapped__() != before
    finally:
        kernels.sources_digest.cache_clear()
    monkeypatch.undo()
    assert kernels.sources_digest() == before  # the copies were the package's own sources

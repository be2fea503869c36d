"""Fixtures shared by the tests: a scanned corpus for the CLI feature tests (SARIF, HTML, baselines,
clean, triggers, ...), and a private temporary directory for the spill tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from cli_support import Scanned, scan_everything


@pytest.fixture(scope="session")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    """One real scan of a mixed corpus (gzip JSONL with blank lines, JSONL, Parquet) that wrote
    every output at once; run from the corpus' parent directory so paths are relative."""
    root = tmp_path_factory.mktemp("scanned")
    before = os.getcwd()
    os.chdir(root)
    try:
        return scan_everything(root)
    finally:
        os.chdir(before)


@pytest.fixture
def in_root(scanned: Scanned, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from the scanned corpus' parent directory (report paths are relative to it)."""
    monkeypatch.chdir(scanned.root)
    return scanned.root


@pytest.fixture
def spill_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temporary directory, so a test sees exactly the spill directories it makes."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root

"""Shared fixtures of the io tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make readers use tiny blocks, so records span block and chunk boundaries."""
    monkeypatch.setattr("poisonscan.io.jsonl.BLOCK_BYTES", 64)
    monkeypatch.setattr("poisonscan.io.jsonarray.CHUNK_BYTES", 16)
    monkeypatch.setattr("poisonscan.io.jsonarray.BLOCK_CHARS", 100)

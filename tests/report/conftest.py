"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from report_factories import make_result as _make_result

from poisonscan.engine.scan import ScanResult


@pytest.fixture
def make_result() -> Callable[..., ScanResult]:
    """Factory of hand-built scan results (see ``report_factories.make_result``)."""
    return _make_result

"""Fixtures of the repair tests (cross-cutting ones live in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.repair import BACKENDS, backend_url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    """A fresh local database holding a small generated world, once on DuckDB and once on
    PostgreSQL (marked ``postgres``): every executor and guard test runs on both dialects."""
    return backend_url(request)

"""Fixtures of the shared base's tests: a local database with recon's schema, on either engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.localdb.connect import LocalDB, connect


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "duckdb"])
def db(request: pytest.FixtureRequest) -> Iterator[LocalDB]:
    """A connection to an empty database (either engine) with the schema created."""
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "duckdb_url")
    with connect(url) as conn:
        conn.init_schema()
        yield conn


@pytest.fixture
def pg(pg_url: str) -> Iterator[LocalDB]:
    with connect(pg_url) as conn:
        conn.init_schema()
        yield conn

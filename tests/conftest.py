"""Shared fixtures: throwaway PostgreSQL databases/schemas and DuckDB files.

PostgreSQL is found, in order, at ``$RECON_TEST_PG_DSN`` (a DSN to a database on a server where
the user may CREATE DATABASE), at ``postgresql://postgres@127.0.0.1:5432/postgres``, or by
starting a private server with the ``pgserver`` package (a dev dependency). Tests never touch an
existing database: the session gets a fresh ``recon_test_<worker>_<hex>`` database, dropped at
the end, and every test gets its own schema in it.

Under pytest-xdist (``make test`` runs ``-n 2``) every worker is a session of its own, so each
worker has its own database (the worker id is in its name), its own temporary directories
(``tmp_path`` lives under the worker's base directory) and its own TCP port range
(:func:`free_port`), disjoint from the other workers' and from the kernel's ephemeral ports.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from core.config import Settings
from core.inbox import Inbox, open_inbox
from tests.support.clock import FakeClock
from tests.support.pg import pg_schema, to_url

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO = (
    "set RECON_TEST_PG_DSN to a PostgreSQL DSN whose user may CREATE DATABASE "
    "(e.g. postgresql://postgres@127.0.0.1:5432/postgres), run a server at that default "
    "address, or install the dev extras (pip install -e '.[dev]') for pgserver"
)


def worker_index() -> int:
    """0 for the controller or a serial run, N for xdist worker ``gwN``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


# Per-worker TCP port ranges below Linux's ephemeral range (32768-60999), so a port handed out
# here is never the kernel's pick for some client socket, and two workers never probe the same
# port. The start inside the range is random: separate test sessions on one machine (several
# checkouts, CI) rarely meet, and a port found busy is skipped anyway.
PORT_BASE, PORT_SPAN = 20000, 1000
_handed_out: set[int] = set()


def port_range() -> range:
    """This worker's ports: 20000-20999 for gw0 (or a serial run), 21000-21999 for gw1, …
    (twelve ranges, all below 32768)."""
    low = PORT_BASE + (worker_index() % 12) * PORT_SPAN
    return range(low, low + PORT_SPAN)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and was not handed out before in this session,
    from this worker's own range (for servers that need a fixed ``--port``, e.g. a private
    PostgreSQL started with pg_ctl; servers that can bind port 0 should do that instead)."""
    low = port_range().start
    start = random.randrange(PORT_SPAN)
    for i in range(PORT_SPAN):
        port = low + (start + i) % PORT_SPAN
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {low}-{low + PORT_SPAN - 1}")


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A free TCP port from this worker's range (see :func:`free_port`)."""
    return free_port()


def _reachable(dsn: str) -> str | None:
    """None when ``dsn`` accepts a connection, else the reason it does not."""
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as e:  # any driver or DSN error means "not usable"
        return f"{type(e).__name__}: {e}".strip()


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI: {message}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {message}; {HOW_TO}")


@contextlib.contextmanager
def _admin_dsn(tmp_dir: Path) -> Iterator[str]:
    """A DSN on which CREATE DATABASE works, starting a private server if necessary."""
    explicit = os.environ.get("RECON_TEST_PG_DSN")
    if explicit:
        # Asked for explicitly: do not quietly test against some other server instead.
        reason = _reachable(explicit)
        if reason is not None:
            pytest.fail(f"RECON_TEST_PG_DSN is set but unusable: {reason}", pytrace=False)
        yield explicit
        return
    reason = _reachable(DEFAULT_ADMIN_DSN)
    if reason is None:
        yield DEFAULT_ADMIN_DSN
        return
    try:
        import pgserver

        server = pgserver.get_server(tmp_dir, cleanup_mode="stop")
    except Exception as e:
        _unavailable(f"{DEFAULT_ADMIN_DSN}: {reason}; pgserver: {type(e).__name__}: {e}")
        return
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session (dropped afterwards).

    Session scope means one database per xdist worker: workers never share tables, advisory
    locks (PostgreSQL scopes them to a database) or schemas."""
    with _admin_dsn(tmp_path_factory.mktemp("pgserver")) as admin:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        dbname = f"recon_test_{worker}_{secrets.token_hex(6)}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        try:
            yield to_url({**conninfo_to_dict(admin), "dbname": dbname})
        finally:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )


@pytest.fixture
def pg_url(pg_dsn: str) -> Iterator[str]:
    """URL of ``pg_dsn`` whose ``search_path`` is a fresh schema of this test's own, so tables
    created through it (``core.localdb.connect``) are private to the test."""
    with pg_schema(pg_dsn) as url:
        yield url


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    """URL of a not-yet-existing DuckDB file private to this test."""
    # duckdb:/// followed by the absolute path: absolute under either URL convention
    return f"duckdb:///{(tmp_path / 'local.duckdb').as_posix()}"


# -- the callout inbox (core.inbox) on an injected clock, for the modules that declare the
# ``settings`` fixture it is opened with (tests/core/test_inbox.py, tests/callouts/…) --------
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inbox(settings: Settings, clock: FakeClock) -> Iterator[Inbox]:
    with open_inbox(settings, clock=clock) as ib:
        yield ib

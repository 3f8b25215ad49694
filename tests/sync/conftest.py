"""Fixtures of the targeted-sync tests: one small generated tenant, one sandbox and one
PostgreSQL schema per module (tests in a module pick different keys, so they share them)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from core.config import Secret, Settings
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.conftest import _to_url
from tests.support.pipeline import SECRET


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sync-tenant")
    generate(Options(accounts=12, seed=15, drift=0.0, d26=0.0), out)
    return out


@pytest.fixture(scope="module")
def module_pg(pg_dsn: str) -> Iterator[str]:
    """A PostgreSQL schema private to the module (``pg_url`` is per test)."""
    schema = f"s_{secrets.token_hex(6)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    params = conninfo_to_dict(pg_dsn)
    options = " ".join(filter(None, [str(params.get("options") or ""),
                                     f"-csearch_path={schema}"]))
    try:
        yield _to_url({**params, "options": options})
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


@pytest.fixture(scope="module")
def world(tenant: Path, module_pg: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[SandboxServer, Settings]]:
    """The sandbox serving the tenant and a PostgreSQL local database loaded with its local
    side; settings pointing at both."""
    from core.localdb.connect import connect, duckdb_url
    from core.localdb.schema import all_tables

    with connect(duckdb_url(tenant / "local.duckdb")) as src, connect(module_pg) as dst:
        dst.init_schema()
        for table in all_tables():
            dst.load(table, src.read_table(table))
        dst.reset_identities()
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=module_pg,
                            data_dir=tmp_path_factory.mktemp("sync-data"),
                            tenant_tz=srv.tenant_tz)
        yield srv, settings

"""Fixtures of the targeted-sync tests: one small generated tenant, one sandbox and one
PostgreSQL schema per module (tests in a module pick different keys, so they share them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Secret, Settings
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.support.pg import load_local_side, pg_schema
from tests.support.pipeline import SECRET


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sync-tenant")
    generate(Options(accounts=12, seed=15, drift=0.0, d26=0.0), out)
    return out


@pytest.fixture(scope="module")
def module_pg(pg_dsn: str) -> Iterator[str]:
    """A PostgreSQL schema private to the module (``pg_url`` is per test)."""
    with pg_schema(pg_dsn, "s") as url:
        yield url


@pytest.fixture(scope="module")
def world(tenant: Path, module_pg: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[SandboxServer, Settings]]:
    """The sandbox serving the tenant and a PostgreSQL local database loaded with its local
    side; settings pointing at both."""
    load_local_side(tenant, module_pg)
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=module_pg,
                            data_dir=tmp_path_factory.mktemp("sync-data"),
                            tenant_tz=srv.tenant_tz)
        yield srv, settings

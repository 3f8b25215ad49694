"""Fixtures of the jobs/CLI tests (cross-cutting ones live in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Secret, Settings
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.support.pg import load_local_side
from tests.support.pipeline import SECRET


@pytest.fixture
def no_http_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Zuora HTTP retries keep their attempts and logic but do not sleep between them.

    Why: a CLI test against an unreachable Zuora otherwise spends the production backoff
    (6 attempts, 10-16 s) waiting; the test is about the exit code and the message, and the
    retry rule itself is tested with recorded sleeps in tests/extract/test_client.py. Patched in
    the test process (no environment knob in production code), so the command runs in-process.
    A test using it must reach the client's retries: if the patch point moves, it says so
    instead of silently waiting again.
    """
    from extract import client

    real = client.retrying
    used: list[client.RetryPolicy] = []

    def retrying(policy: client.RetryPolicy, *args: Any, **kwargs: Any) -> Any:
        used.append(policy)
        return real(dataclasses.replace(policy, sleep=lambda _seconds: None), *args, **kwargs)

    monkeypatch.setattr(client, "retrying", retrying)
    yield
    assert used, "extract.client.retrying was never called: no_http_backoff patches nothing"


# -- the pipeline tests' world (tests/jobs/test_pipeline*.py) ----------------------------------
@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jobs-tenant")
    generate(Options(accounts=120, seed=21, drift=0.05), out)
    return out


@pytest.fixture
def env(tenant: Path, tmp_path: Path, pg_url: str):
    """A sandbox serving the tenant and a PostgreSQL local database loaded with its local
    side; settings pointing at both."""
    load_local_side(tenant, pg_url)
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=pg_url, data_dir=tmp_path / "data",
                            jobs_retries=2, jobs_retry_delay_s=0.0)
        yield srv, settings

"""Sandbox mutation → Zuora-shaped callout → the receiver (``recon callouts serve``, a real
process with the real sync) → worker → the local PostgreSQL row, the audit naming the callout;
the inbox records the sync as the key's last."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest
import requests
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from core.config import Settings
from core.inbox import open_inbox
from core.localdb.connect import connect, duckdb_url
from core.localdb.schema import all_tables
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.callouts.conftest import PASSWORD, REPO, SECRET, USER
from tests.conftest import _to_url, free_port
from tests.support.pipeline import SECRET as ZUORA_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def local_pg(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str,
                                                                                      Path]]:
    """A small generated tenant and a PostgreSQL schema loaded with its local side."""
    tenant = tmp_path_factory.mktemp("e2e-tenant")
    generate(Options(accounts=6, seed=15, drift=0.0, d26=0.0), tenant)
    schema = f"e_{secrets.token_hex(6)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    params = conninfo_to_dict(pg_dsn)
    url = _to_url({**params, "options": " ".join(filter(None, [
        str(params.get("options") or ""), f"-csearch_path={schema}"]))})
    with connect(duckdb_url(tenant / "local.duckdb")) as src, connect(url) as dst:
        dst.init_schema()
        for table in all_tables():
            dst.load(table, src.read_table(table))
        dst.reset_identities()
    try:
        yield url, tenant
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def test_mutation_callout_sync_local_row(local_pg: tuple[str, Path], tmp_path: Path) -> None:
    url, tenant = local_pg
    port, mport = free_port(), free_port()
    data = tmp_path / "data"
    with SandboxServer(tenant, client_secret=ZUORA_SECRET,
                       callout_url=f"http://127.0.0.1:{port}", callout_auth=(USER, PASSWORD),
                       callout_secret=SECRET, callout_retry_interval=0.5) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        env.update({"PYTHONPATH": str(REPO), "RECON_DATA_DIR": str(data),
                    "RECON_LOCAL_DATABASE_URL": url, "RECON_ZUORA_BASE_URL": srv.url,
                    "RECON_ZUORA_CLIENT_SECRET": ZUORA_SECRET,
                    "RECON_ZUORA_TENANT_TZ": srv.tenant_tz,
                    "RECON_CALLOUTS_USER": USER, "RECON_CALLOUTS_PASSWORD": PASSWORD,
                    "RECON_CALLOUTS_HMAC_SECRET": SECRET,
                    "RECON_CALLOUTS_DEBOUNCE_SUBSCRIPTION_S": "0.5"})
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "callouts", "serve",
                                 "--port", str(port), "--metrics-port", str(mport)],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz",
                                    timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
            sub = srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).row(
                0, named=True)
            r = requests.post(f"{srv.url}/sandbox/mutations", timeout=10, json={
                "op": "update", "object": "Subscription", "id": sub["Id"],
                "fields": {"Notes": "changed in Zuora, synced by a callout"}})
            assert r.status_code == 200, r.text
            settings = dataclasses.replace(Settings(), data_dir=data, local_database_url=url)
            deadline = time.monotonic() + 60
            while True:
                with open_inbox(settings) as ib:
                    done = [k for k in ib.last_syncs() if k.key == sub["Name"] and k.sync_id]
                    events = ib.events()
                if done:
                    break
                assert time.monotonic() < deadline, "no sync recorded"
                time.sleep(0.2)
            [k] = done
            assert k.status == "ok", k
            with connect(url) as db:
                notes = db.query("SELECT notes FROM zuora_local_subscriptions WHERE "
                                 "zuora_id = %s", [sub["Id"]])["notes"].to_list()
                audit = db.query("SELECT message FROM recon_repair_applies")["message"]
            assert notes == ["changed in Zuora, synced by a callout"]
            [event] = [e for e in events if ("subscription", sub["Name"]) in e.keys]
            assert event.status == "processed" and event.sync_id == k.sync_id
            assert any(event.notification_id in (m or "") for m in audit.to_list())
        finally:
            proc.terminate()
            assert proc.wait(30) == 0

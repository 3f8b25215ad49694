"""The targeted sync on the embedded DuckDB local side (the demo's, and the callout
receiver's with its in-process workers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from core.config import Secret, Settings
from core.localdb.connect import connect
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from sync import SyncRequest, sync_keys
from tests.support.pipeline import SECRET
from tests.sync.test_sync import mutate


def test_sync_and_revert_on_duckdb(tmp_path: Path) -> None:
    generate(Options(accounts=4, seed=9), tmp_path / "tenant")
    shutil.copy(tmp_path / "tenant" / "local.duckdb", tmp_path / "local.duckdb")
    with SandboxServer(tmp_path / "tenant", client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=f"duckdb:///{tmp_path / 'local.duckdb'}",
                            data_dir=tmp_path / "data", tenant_tz=srv.tenant_tz)
        sub = srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).row(
            0, named=True)
        mutate(srv, "update", "Subscription", sub["Id"], Notes="synced on duckdb")
        res = sync_keys(settings, SyncRequest("subscription", (sub["Name"],)))
        assert res.exit_code == 0, res.leftovers
        # no callouts here: the sync draws from no shared budget and creates no inbox
        assert not (settings.data_dir / "inbox.sqlite").exists()

        def notes() -> str | None:
            with connect(settings.local_database_url) as db:
                return db.fetch("SELECT notes FROM zuora_local_subscriptions WHERE zuora_id = ?",
                                [sub["Id"]])[0][0]

        assert notes() == "synced on duckdb"
        from repair.apply import revert_apply

        assert revert_apply(res.sync_id, settings, yes=True).status == "complete"
        assert notes() == sub["Notes"]

"""`recon reconcile` reads the callout inbox's per-key activity (docs/pipeline.md "Two clocks"): a key a
targeted sync wrote after the snapshot is ``pending``, not drift; without an inbox nothing is
held and none is created by looking."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core.config import Settings
from core.inbox import INBOX_FILE, open_inbox
from jobs.cli import main
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world


@pytest.mark.slow
def test_reconcile_holds_a_key_synced_after_the_snapshot(tmp_path: Path) -> None:
    world = fresh_world()
    SCENARIOS["D21"](world, 3)
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    write_snapshot(world, tmp_path, "r1", at)
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')

    assert main(["--config", str(cfg), "-q", "reconcile", "--run", "r1"]) == 0
    assert not (tmp_path / INBOX_FILE).exists(), "looking for the inbox created one"
    drift = pl.read_parquet(tmp_path / "runs" / "r1" / "drift.parquet")
    opened = drift.filter((pl.col("status") == "new") & (pl.col("object") == "Account"))
    assert opened.height, "the scenario drifted no account"
    key = opened["account_id"][0]

    settings = Settings(data_dir=tmp_path)  # the DuckDB default: DATA/inbox.sqlite
    with open_inbox(settings) as ib:
        ib.record_sync("account", key, "sync-after", at.replace(tzinfo=dt.UTC)
                       + dt.timedelta(minutes=1), "ok")
    assert main(["--config", str(cfg), "-q", "reconcile", "--run", "r1",
                 "--grace-hours", "0"]) == 0
    drift = pl.read_parquet(tmp_path / "runs" / "r1" / "drift.parquet")
    held = drift.filter((pl.col("object") == "Account") & (pl.col("account_id") == key))
    assert set(held["status"]) == {"pending"}
    assert all("synced by sync-after after this snapshot" in e for e in held["explanation"])
    summary = json.loads((tmp_path / "runs" / "r1" / "summary.json").read_text())
    assert summary["summary"]["event_path"]["held_synced"] >= held.height

"""`recon status` shows the event path where callouts are received: the inbox's health and
what the latest nightly said of it (issue 15 point 5)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from core.config import load_settings
from core.inbox import NewEvent, open_inbox
from jobs.cli import main
from reconcile.engine import reconcile_snapshot
from reconcile.events import ACTIVITY_SCHEMA
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world


def test_status_shows_the_event_path_only_where_callouts_are_received(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[local]\n'
                   f'database_url = "duckdb:///{tmp_path / "local.duckdb"}"\n'
                   '[schedule]\nnightly = ""\ncatalog = ""\nfull = ""\n')
    assert main(["--config", str(cfg), "status"]) == 0
    assert "event path" not in capsys.readouterr().out
    assert not (tmp_path / "inbox.sqlite").exists(), "status never creates an inbox"

    world = fresh_world()
    SCENARIOS["D21"](world, 3)
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at), tmp_path,
                                grace_hours=2, activity=pl.DataFrame(schema=ACTIVITY_SCHEMA))
    ev = result.summary["event_path"]
    with open_inbox(load_settings(config_file=cfg)) as inbox:
        inbox.store_event(NewEvent("n1", "q1", "account", (("account", "A-1"),), "{}"))
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "event path: queue 1 (0 syncing)" in out and "dead letters 0" in out
    assert "last 24 h: 1 callouts" in out
    assert (f"last nightly r1: {ev['missed_callouts']} findings with a missed callout "
            f"({len(ev['missed_keys'])} keys)") in out
    assert ev["missed_callouts"] > 0

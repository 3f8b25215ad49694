"""The report's event-path section: what the run held pending for the callouts, what it
missed, and the inbox's health read through the inbox's reader (issue 15 point 5)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import polars as pl

from core.config import Settings
from core.inbox import NewEvent, open_inbox
from reconcile.engine import reconcile_snapshot
from reconcile.events import ACTIVITY_SCHEMA
from reports import build_report
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world


def _reconciled(tmp_path: Path, activity: pl.DataFrame | None) -> Settings:
    world = fresh_world()
    SCENARIOS["D21"](world, 3)
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at), tmp_path, grace_hours=2,
                       activity=activity)
    return dataclasses.replace(Settings(), data_dir=tmp_path,
                               local_database_url=f"duckdb:///{tmp_path / 'local.duckdb'}")


def test_without_callouts_the_report_has_no_event_path(tmp_path: Path) -> None:
    settings = _reconciled(tmp_path, None)
    paths = build_report(tmp_path, "r1", settings=settings)
    assert 'id="event-path"' not in paths.html.read_text()
    assert json.loads(paths.json.read_text()).get("event_path") is None
    assert not (tmp_path / "inbox.sqlite").exists(), "the report never creates an inbox"


def test_the_event_path_section_shows_the_runs_figures_and_the_inbox_now(
        tmp_path: Path) -> None:
    activity = pl.DataFrame([{"object": "account", "key": "A-unknown", "last_event_at": None,
                              "dead": True, "synced_at": None, "sync_id": None}],
                            schema=ACTIVITY_SCHEMA)
    settings = _reconciled(tmp_path, activity)
    with open_inbox(settings) as inbox:  # two keys waiting now
        inbox.store_event(NewEvent("n1", "r1", "account", (("account", "A-1"),), "{}"))
        inbox.store_event(NewEvent("n2", "r2", "contact", (("contact", "C-1"),), "{}"))
    paths = build_report(tmp_path, "r1", settings=settings)
    doc = json.loads(paths.json.read_text())["event_path"]
    summary = json.loads((tmp_path / "runs" / "r1" / "summary.json").read_text())
    ev = summary["summary"]["event_path"]
    assert doc["missed_callouts"] == ev["missed_callouts"] > 0
    assert doc["missed_keys"] == ev["missed_keys"] and doc["failures"] == ev["failures"] == 0
    assert doc["queue_depth"] == 2 and doc["dead_letters"] == 0
    html = paths.html.read_text()
    assert 'id="event-path"' in html
    assert f'data-key="missed_callouts" data-value="{ev["missed_callouts"]}"' in html
    assert 'data-key="queue_depth" data-value="2"' in html
    assert ev["missed_keys"][0] in html
    # a key is data, never markup
    path = tmp_path / "runs" / "r1" / "summary.json"
    summary["summary"]["event_path"]["missed_keys"] = ["account:<b>x</b>"]
    path.write_text(json.dumps(summary))
    html = build_report(tmp_path, "r1", settings=settings).html.read_text()
    assert "account:&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html

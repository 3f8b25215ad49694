"""The nightly beside the event path (issue 15 point 5): keys a sync wrote after the snapshot
and keys with a callout in flight are pending; missed callouts and dead-lettered keys are
counted, still drift."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from reconcile.engine import reconcile_snapshot
from reconcile.events import ACTIVITY_SCHEMA
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world


def _world():
    w = fresh_world()
    for sid in ("D04", "D21"):
        SCENARIOS[sid](w, 4)
    return w


def _activity(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ACTIVITY_SCHEMA)


def test_synced_and_in_flight_keys_are_pending_missed_and_dead_ones_are_counted(
        tmp_path: Path) -> None:
    world = _world()
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    quiet = reconcile_snapshot(write_snapshot(world, tmp_path, "r0", at), tmp_path,
                               grace_hours=2)
    opened = quiet.drift.filter(pl.col("status") == "new")
    assert "event_path" not in quiet.summary  # no inbox: nothing held, no figures
    subs = opened.filter(pl.col("object") == "Subscription")["subscription_name"].unique()
    accts = opened.filter(pl.col("object") == "Account")["account_id"].unique().sort()
    assert subs.len() >= 1 and accts.len() >= 3
    synced, in_flight, dead, told = subs[0], accts[0], accts[1], accts[2]
    activity = _activity([
        # a sync wrote the subscription a minute after the snapshot started
        {"object": "subscription", "key": synced, "last_event_at": at,
         "dead": False, "synced_at": at + dt.timedelta(minutes=1), "sync_id": "sync-1"},
        # a callout ten minutes old, its sync not run yet
        {"object": "account", "key": in_flight, "last_event_at": at - dt.timedelta(minutes=10),
         "dead": False, "synced_at": None, "sync_id": None},
        # dead-lettered: still drift, an event-path failure
        {"object": "account", "key": dead, "last_event_at": at - dt.timedelta(minutes=10),
         "dead": True, "synced_at": None, "sync_id": None},
        # a callout after the change, long ago: not missed (the sync ran; it is drift again)
        {"object": "account", "key": told, "last_event_at": at - dt.timedelta(hours=5),
         "dead": False, "synced_at": at - dt.timedelta(hours=5), "sync_id": "sync-0"},
    ])
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at), tmp_path,
                                grace_hours=2, activity=activity)
    d = result.drift
    sub_rows = d.filter(pl.col("subscription_name") == synced)
    assert sub_rows.height and set(sub_rows["status"]) == {"pending"}
    assert all("pending: synced by sync-1 after this snapshot" in e
               for e in sub_rows["explanation"])
    flight = d.filter((pl.col("object") == "Account") & (pl.col("account_id") == in_flight))
    assert set(flight["status"]) == {"pending"}
    assert "is in flight" in flight["explanation"][0]
    for key in (dead, told):
        rows = d.filter((pl.col("object") == "Account") & (pl.col("account_id") == key))
        assert set(rows["status"]) == {"persisting"}, key  # open in r0 and still open
    ev = result.summary["event_path"]
    assert ev["held_synced"] == sub_rows.height
    assert ev["held_in_flight"] == flight.height
    dead_rows = d.filter(pl.col("account_id") == dead).filter(
        pl.col("object").is_in(["Account", "Contact", "customers",
                                "billing_account_memberships"]))
    assert ev["failures"] == dead_rows.height
    # every other open finding with a Zuora change older than the grace window was missed
    still_open = d.filter(pl.col("status").is_in(["new", "persisting"])
                          & pl.col("zuora_updated").is_not_null()
                          & (pl.col("zuora_updated") < at - dt.timedelta(hours=2)))
    not_missed = still_open.filter((pl.col("account_id").is_in([dead, told]))
                                   & pl.col("object").is_in(["Account", "Contact"]))
    assert ev["missed_callouts"] == still_open.height - not_missed.height > 0
    assert f"account:{told}" not in ev["missed_keys"]
    assert f"account:{dead}" not in ev["missed_keys"]
    # the planner never plans a pending finding: the sync's newer value stays
    assert result.open.filter(pl.col("subscription_name") == synced).height == 0


def test_a_missed_callout_is_named_by_the_narrowest_key_that_covers_it(tmp_path: Path) -> None:
    """A Contact finding is covered by its contact's sync and by its account's; the missed
    callout is the contact's (a contact event would have fixed it)."""
    world = fresh_world()
    SCENARIOS["D19"](world, 3)
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at), tmp_path,
                                grace_hours=2, activity=_activity([]))
    contacts = result.drift.filter((pl.col("object") == "Contact")
                                   & pl.col("status").is_in(["new", "persisting"])
                                   & (pl.col("zuora_updated") < at - dt.timedelta(hours=2)))
    assert contacts.height
    keys = set(result.summary["event_path"]["missed_keys"])
    assert {f"contact:{k}" for k in contacts["key"]} <= keys
    assert not {f"account:{a}" for a in contacts["account_id"]} & keys - {
        f"account:{a}" for a in result.drift.filter(pl.col("object") != "Contact")["account_id"]
        .drop_nulls()}

"""The reconciler as a run: what it refuses, the grace window, quarantine, history across runs
and the output contract (drift.parquet + state table)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.snapshot import Manifest, SnapshotWriter, open_snapshot
from core.state import state_path
from reconcile.engine import reconcile_snapshot, resolve_snapshot
from reconcile.findings import DRIFT_SCHEMA
from reconcile.load import ReconcileError
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world


def _world(*scenarios: str):
    w = fresh_world()
    for sid in scenarios:
        SCENARIOS[sid](w, 3)
    return w


def _at(world) -> dt.datetime:
    return dt.datetime.combine(world.as_of, dt.time(7)) + LATER


def test_failed_snapshot_is_refused(tmp_path: Path) -> None:
    w = SnapshotWriter(tmp_path, "20261102T000000Z")
    path = w.fail(Manifest(run_id="20261102T000000Z", mode="full"), RuntimeError("AQuA job 7 "
                                                                                 "failed"))
    snap = open_snapshot(path)
    with pytest.raises(ReconcileError, match="failed.*AQuA job 7 failed.*only complete"):
        reconcile_snapshot(snap, tmp_path)
    with pytest.raises(ReconcileError, match="failed"):
        reconcile_snapshot(resolve_snapshot(tmp_path, "20261102T000000Z"), tmp_path)
    assert not (tmp_path / "runs").exists(), "nothing is written for a refused snapshot"


def test_partial_snapshot_is_refused(tmp_path: Path) -> None:
    snap = write_snapshot(_world(), tmp_path, "20261102T000000Z")
    snap.zuora_path("RatePlanCharge").unlink()
    with pytest.raises(ReconcileError, match="partial.*RatePlanCharge.parquet"):
        reconcile_snapshot(snap, tmp_path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    snap = write_snapshot(_world(), tmp_path, "20261102T000000Z")
    p = snap.local_path("orders")
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(ReconcileError, match="local/orders.parquet does not have the size"):
        reconcile_snapshot(snap, tmp_path)


def test_no_snapshot_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReconcileError, match="no complete snapshot.*recon extract"):
        resolve_snapshot(tmp_path, None)


@pytest.mark.slow
def test_recent_zuora_change_is_pending_not_drift(tmp_path: Path) -> None:
    world = _world("D21")
    at = _at(world)
    accounts = world.label_frame()["key"].unique().sort().to_list()
    recent, old = accounts[0], accounts[1:]
    world.zuora["Account"] = world.zuora["Account"].with_columns(
        UpdatedDate=pl.when(pl.col("Id") == recent).then(pl.lit(at - dt.timedelta(minutes=30)))
        .otherwise(pl.col("UpdatedDate")))
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at), tmp_path,
                                grace_hours=2)
    status = dict(result.drift.group_by("key").agg(pl.col("status").unique()).iter_rows())
    assert status[recent] == ["pending"]
    assert all(status[k] == ["new"] for k in old)
    assert result.summary["by_status"]["pending"] >= 1
    # with no grace window the same change is drift
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r2", at), tmp_path,
                                grace_hours=0)
    assert "pending" not in set(result.drift["status"])


def test_a_zuora_deletion_inside_the_grace_window_is_pending(tmp_path: Path) -> None:
    """A local row whose Zuora record an incremental export saw deleted 30 minutes before the
    snapshot is pending (a callout may still be on its way); one deleted five hours before is
    drift; with no grace window both are."""
    world = _world("D17")
    at = _at(world)
    orphans = world.label_frame().filter(pl.col("object") == "Account")["key"].unique().sort()
    assert orphans.len() >= 2
    recent, old = orphans[0], orphans[1]
    gone = {"Account": pl.DataFrame({"Id": [recent, old], "deleted_at": [
        at - dt.timedelta(minutes=30), at - dt.timedelta(hours=5)]})}
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1", at, deleted=gone),
                                tmp_path, grace_hours=2)
    orphan_rows = result.drift.filter((pl.col("object") == "Account")
                                      & (pl.col("kind") == "orphaned_in_local"))
    status = dict(orphan_rows.select("key", "status").iter_rows())
    assert status[recent] == "pending"
    assert status[old] == "new"
    assert orphan_rows.filter(pl.col("key") == recent)["zuora_updated"][0] == \
        at - dt.timedelta(minutes=30)
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r2", at, deleted=gone),
                                tmp_path, grace_hours=0)
    assert "pending" not in set(result.drift["status"])


@pytest.mark.slow
def test_quarantined_rows_are_reported_as_such_never_as_missing(tmp_path: Path) -> None:
    world = _world("D01")
    missing = world.label_frame().filter(pl.col("object") == "Subscription")["key"][0]
    quarantine = pl.DataFrame({"side": ["zuora"], "object": ["Subscription"], "table": [None],
                               "key": [missing], "column": ["TermEndDate"],
                               "check": ["not_nullable"], "value": [None],
                               "severity": ["error"]})
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path,
                                quarantine=quarantine)
    rows = result.drift.filter(pl.col("key") == missing)
    assert rows["kind"].to_list() == ["quarantined"]
    assert "not_nullable on TermEndDate" in rows["explanation"][0]


@pytest.mark.slow
def test_quarantine_files_of_the_run_are_read(tmp_path: Path) -> None:
    world = _world("D21")
    key = world.label_frame()["key"][0]
    qdir = tmp_path / "runs" / "r1" / "quarantine"
    qdir.mkdir(parents=True)
    pl.DataFrame({"side": ["local"], "object": ["Account"], "table": ["billing_accounts"],
                  "key": [key], "column": ["currency"], "check": ["isin"], "value": ["XXX"],
                  "severity": ["error"]}).write_parquet(qdir / "Account.parquet")
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path)
    assert result.drift.filter(pl.col("key") == key)["kind"].to_list() == ["quarantined"]


@pytest.mark.slow
def test_history_new_persisting_resolved(tmp_path: Path) -> None:
    world = _world("D02", "D21")
    at = _at(world)
    first = reconcile_snapshot(write_snapshot(world, tmp_path, "20261102T070000Z", at),
                               tmp_path)
    assert set(first.drift["status"]) == {"new"} and first.previous_run is None
    second = reconcile_snapshot(write_snapshot(world, tmp_path, "20261103T070000Z",
                                               at + dt.timedelta(days=1)), tmp_path)
    assert second.previous_run == "20261102T070000Z"
    assert set(second.drift["status"]) == {"persisting"}
    assert set(second.drift["first_seen_run"]) == {"20261102T070000Z"}
    # the orders get repaired locally: D02 findings resolve, D21 keeps persisting
    fixed = fresh_world()
    world.local["orders"] = fixed.local["orders"]
    third = reconcile_snapshot(write_snapshot(world, tmp_path, "20261104T070000Z",
                                              at + dt.timedelta(days=2)), tmp_path)
    by = dict(third.drift.group_by("rule").agg(pl.col("status").unique().sort()).iter_rows())
    assert by["D02"] == ["resolved"]
    assert by[None] == ["persisting"]
    assert set(third.drift.filter(pl.col("status") == "resolved")["first_seen_run"]) == {
        "20261102T070000Z"}
    assert third.summary["findings"] == third.drift.filter(
        pl.col("status") != "resolved").height
    # a later run no longer carries the resolved rows
    fourth = reconcile_snapshot(write_snapshot(world, tmp_path, "20261105T070000Z",
                                               at + dt.timedelta(days=3)), tmp_path)
    assert "resolved" not in set(fourth.drift["status"])


@pytest.mark.slow
def test_rerunning_a_run_is_idempotent(tmp_path: Path) -> None:
    world = _world("D05")
    snap = write_snapshot(world, tmp_path, "r1")
    a = reconcile_snapshot(snap, tmp_path)
    b = reconcile_snapshot(snap, tmp_path)
    assert a.drift.drop("zuora_updated").sort("fingerprint").equals(
        b.drift.drop("zuora_updated").sort("fingerprint"))
    con = duckdb.connect(str(state_path(tmp_path)), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM drift WHERE run_id = 'r1'").fetchall()[0][0]
        runs = con.execute("SELECT count(*) FROM reconcile_runs").fetchall()[0][0]
    finally:
        con.close()
    assert (n, runs) == (a.drift.height, 1)


@pytest.mark.slow
def test_output_contract(tmp_path: Path) -> None:
    world = _world("D11", "D05")
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path)
    drift = pl.read_parquet(tmp_path / "runs" / "r1" / "drift.parquet")
    assert drift.schema == pl.Schema(DRIFT_SCHEMA)
    assert drift.height == result.drift.height > 0
    assert drift["explanation"].null_count() == 0
    assert drift["severity"].null_count() == 0 and drift["action"].null_count() == 0
    assert set(drift["run_id"]) == {"r1"}
    mismatches = drift.filter(pl.col("kind") == "field_mismatch")
    assert mismatches["field"].null_count() == 0
    assert mismatches["zuora_value"].null_count() + mismatches["local_value"].null_count() \
        < mismatches.height
    dup = drift.filter(pl.col("kind") == "duplicate_local")
    for row in dup.iter_rows(named=True):
        ev = json.loads(row["evidence"])
        assert ev["keeper"] is not None and len(ev["losers"]) >= 1
        assert f"order {ev['keeper']}" in row["explanation"]
    shifted = drift.filter(pl.col("drift_id") == "D05")
    assert shifted.height and all(abs(json.loads(e)["day_shift"]) == 1
                                  for e in shifted["evidence"])
    summary = json.loads((tmp_path / "runs" / "r1" / "summary.json").read_text())
    assert summary["findings"] == drift.height
    stats = pl.read_parquet(tmp_path / "runs" / "r1" / "object_stats.parquet")
    assert set(stats["object"]) >= {"Subscription", "RatePlanCharge", "Account"}
    con = duckdb.connect(str(state_path(tmp_path)), read_only=True)
    try:
        stored = con.sql("SELECT * FROM drift WHERE run_id = 'r1'").pl()
    finally:
        con.close()
    assert stored.height == drift.height


def test_resolve_snapshot_by_run_id(tmp_path: Path) -> None:
    world = _world()
    write_snapshot(world, tmp_path, "20261101T000000Z")
    write_snapshot(world, tmp_path, "20261102T000000Z")
    assert resolve_snapshot(tmp_path, None).run_id == "20261102T000000Z"
    assert resolve_snapshot(tmp_path, "20261101T000000Z").run_id == "20261101T000000Z"
    with pytest.raises(ReconcileError, match="no snapshot 'nope'"):
        resolve_snapshot(tmp_path, "nope")
    shutil.rmtree(tmp_path / "snapshots")


def _quarantine(obj: str, key: str, column: str = "Name") -> pl.DataFrame:
    return pl.DataFrame({"side": ["zuora"], "object": [obj], "table": [None], "key": [key],
                         "column": [column], "check": ["utf8"], "value": ["Acme \\xff"],
                         "severity": ["error"]})


@pytest.mark.slow
def test_a_quarantined_subscription_holds_back_its_order_findings(tmp_path: Path) -> None:
    """D14 on an order is derived from the latest version; with that version quarantined
    nothing derived from it may be reported as drift or planned: it waits, `quarantined`."""
    world = _world("D14")
    name = world.label_frame().filter(pl.col("scenario") == "D14")["key"][0]
    subs = world.zuora["Subscription"]
    latest = subs.filter((pl.col("Name") == name) & pl.col("IsLatestVersion"))["Id"][0]
    base = reconcile_snapshot(write_snapshot(world, tmp_path, "r0"), tmp_path)
    mine = base.drift.filter(pl.col("subscription_name") == name)
    assert "D14" in mine["rule"].to_list()  # without the quarantine: drift on that order
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path,
                                quarantine=_quarantine("Subscription", latest))
    open_ = result.drift.filter(pl.col("status") != "resolved")  # r0's drift, as history has it
    mine = open_.filter((pl.col("subscription_name") == name) | (pl.col("key") == name))
    assert mine.height and set(mine["kind"]) == {"quarantined"}, mine.select("object", "kind")
    assert set(mine["action"]) == {"human"}
    held = mine.filter(pl.col("rule") == "D14")
    assert held.height and f"Subscription {latest} is quarantined" in held["explanation"][0]
    # every other subscription's findings are untouched
    others = open_.filter(pl.col("subscription_name").ne_missing(name)
                                 & (pl.col("key") != name) & (pl.col("key") != latest))
    before = base.drift.filter(pl.col("subscription_name").ne_missing(name)
                               & (pl.col("key") != name))
    assert sorted(others["fingerprint"]) == sorted(before["fingerprint"])


@pytest.mark.slow
def test_a_quarantined_contact_holds_back_the_people_derived_from_it(tmp_path: Path) -> None:
    """D19/D20: customers and memberships follow the Sold-To contact's e-mail; a quarantined
    contact cannot say who the people are, so its account's findings wait."""
    world = _world("D19")
    labels = world.label_frame().filter(pl.col("scenario") == "D19")
    contact = labels.filter(pl.col("field") == "WorkEmail")["key"][0]
    account = world.zuora["Contact"].filter(pl.col("Id") == contact)["AccountId"][0]
    base = reconcile_snapshot(write_snapshot(world, tmp_path, "r0"), tmp_path)
    people = base.drift.filter((pl.col("account_id") == account)
                               & pl.col("object").is_in(["customers",
                                                         "billing_account_memberships"]))
    assert people.height  # the scenario's people findings exist without the quarantine
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path,
                                quarantine=_quarantine("Contact", contact, "WorkEmail"))
    mine = result.drift.filter((pl.col("account_id") == account)
                               & (pl.col("status") != "resolved"))
    # without the hold-back the account's pointer mismatches and a D20 membership stay open
    assert mine.height and set(mine["kind"]) == {"quarantined"}, mine.select("object", "kind")
    assert set(mine["action"]) == {"human"}
    # the people findings either wait as quarantined or are not derived at all (the contact
    # is hidden): none is open as drift that a plan would act on
    held = mine.filter(pl.col("key").is_in(people["key"].implode()))
    assert set(held["kind"]) <= {"quarantined"} and set(held["action"]) <= {"human"}


@pytest.mark.slow
def test_an_unreadable_key_keeps_orphans_from_automatic_deletion(tmp_path: Path) -> None:
    """A Zuora record whose Id is not UTF-8 is quarantined without a key; the local row it
    is could look orphaned, so that object's orphans need a person while it lasts."""
    world = _world("D18")
    base = reconcile_snapshot(write_snapshot(world, tmp_path, "r0"), tmp_path)
    orphans = base.drift.filter(pl.col("kind") == "orphaned_in_local")
    assert orphans.height and "auto" in orphans["action"].to_list()
    obj = orphans.filter(pl.col("action") == "auto")["object"][0]
    q = _quarantine(obj, "x", "Id").with_columns(key=pl.lit(None, pl.String),
                                                 value=pl.lit("ab\\xff (at file f record 3)"))
    result = reconcile_snapshot(write_snapshot(world, tmp_path, "r1"), tmp_path, quarantine=q)
    mine = result.drift.filter((pl.col("kind") == "orphaned_in_local") & (pl.col("object") == obj)
                               & (pl.col("status") != "resolved"))
    assert mine.height and set(mine["action"]) == {"human"}
    assert "unreadable Id" in mine["explanation"][0]
    # the view hides nothing on that object (a NULL key hides no row)
    assert result.drift.filter((pl.col("object") == obj) & (pl.col("kind") != "quarantined")
                               ).height >= orphans.filter(pl.col("object") == obj).height

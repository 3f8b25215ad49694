"""Both clocks on one key, neither undoing the other (issue 15, point 5), driven step by step:

1. a sync between the nightly's snapshot and its apply: the apply skips the row as
   "superseded by sync <id>" — listed, not a conflict, the apply's status unchanged;
2. a sync that meets the nightly's apply in progress (its batch written, not committed):
   it waits for the repair lock and reads again after the commit, so the newer Zuora value
   wins and the apply's older one is never written back over it."""

from __future__ import annotations

import dataclasses
import threading

import polars as pl
import pytest

from jobs.steps import run_steps
from repair.apply import apply_plan
from repair.executor import APPLIED, CONFLICT, SUPERSEDED, BatchHooks
from sync import SyncRequest, sync_keys
from tests.support.pg import outside_write
from tests.sync.test_sync import local, mutate, nightly_steps

pytestmark = pytest.mark.slow


def notes(settings, sub_id: str) -> str | None:
    return local(settings, "SELECT notes FROM zuora_local_subscriptions WHERE zuora_id = %s",
                 [sub_id])["notes"][0]


def test_sync_and_nightly_interleavings(world) -> None:
    srv, settings = world
    latest = srv.store.live("Subscription").filter(pl.col("IsLatestVersion"))
    a, b = latest.row(0, named=True), latest.row(1, named=True)
    from core.localdb.connect import connect

    with connect(settings.local_database_url) as db:  # both keys drifted locally
        for row, text in ((a, "local a"), (b, "local b")):
            outside_write(db, "UPDATE zuora_local_subscriptions SET notes = %s "
                          "WHERE zuora_id = %s", [text, row["Id"]])
    mutate(srv, "update", "Subscription", a["Id"], Notes="zuora a1")
    mutate(srv, "update", "Subscription", b["Id"], Notes="zuora b1")

    # the nightly: snapshot, reconcile, plan (not applied yet)
    nightly = dataclasses.replace(settings, extract_lag_hours=0.0, reconcile_grace_hours=0.0)
    seen: dict = {}
    run_steps(nightly_steps(), nightly, stop=threading.Event(), progress=lambda _m: None,
              after=lambda _n, run: seen.update(run=run))
    plan_path = seen["run"].plan_path
    ops = {op.key.get("zuora_id"): op for op in seen["run"].plan.operations
           if op.table == "zuora_local_subscriptions"}
    assert {a["Id"], b["Id"]} <= set(ops)

    # 1. Zuora moves on and a sync brings key A up to date before the nightly applies
    mutate(srv, "update", "Subscription", a["Id"], Notes="zuora a2")
    sa = sync_keys(settings, SyncRequest("subscription", (a["Name"],), trigger="callout:a"))
    assert sa.exit_code == 0 and notes(settings, a["Id"]) == "zuora a2"

    # 2. Zuora moves on for B; the nightly's apply writes its batch and is held open there
    mutate(srv, "update", "Subscription", b["Id"], Notes="zuora b2")
    written, release = threading.Event(), threading.Event()

    def hold(_batch: int) -> None:
        written.set()
        assert release.wait(30)

    out: dict = {}
    apply = threading.Thread(target=lambda: out.update(res=apply_plan(
        plan_path, nightly, yes=True, force=True, hooks=BatchHooks(written=hold))))
    apply.start()
    assert written.wait(30)
    waiting = threading.Event()
    sync = threading.Thread(target=lambda: out.update(sb=sync_keys(
        settings, SyncRequest("subscription", (b["Name"],)),
        progress=lambda m: waiting.set() if "waiting for the repair lock" in m else None)))
    sync.start()
    assert waiting.wait(30)  # the sync read, found the lock held, and waits: nothing written
    assert "sb" not in out
    release.set()
    apply.join(30)
    sync.join(60)

    res = out["res"]
    by = {o.key.get("zuora_id"): o for o in res.outcomes}
    assert by[a["Id"]].status == SUPERSEDED
    assert by[a["Id"]].detail.startswith(f"superseded by sync {sa.sync_id}")
    assert by[b["Id"]].status == APPLIED
    assert res.count(CONFLICT) == 0 and res.status == "complete"  # not a conflict
    assert "superseded by later applies or syncs" in (res_message(settings, res.apply_id) or "")
    assert notes(settings, a["Id"]) == "zuora a2"  # the nightly did not write a1 back

    sb = out["sb"]  # read again after the nightly committed b1: b2 wins, nothing skipped
    assert sb.exit_code == 0, sb.leftovers
    assert notes(settings, b["Id"]) == "zuora b2"


def res_message(settings, apply_id: str) -> str | None:
    from repair.apply import list_applies

    rows = list_applies(settings).filter(pl.col("apply_id") == apply_id)
    return rows["message"][0]


def test_a_storm_of_keys_is_read_with_one_incremental_export(world) -> None:
    """More than sync.batch_threshold keys: one AQuA export of the subtree's objects merged
    onto the latest complete snapshot, not a query per key; the keys end up in step."""
    from core.snapshot import latest_complete
    from extract.aqua import AquaOptions
    from extract.extractor import ExtractOptions, run_extract

    srv, settings = world
    if latest_complete(settings.data_dir) is None:
        run_extract(settings, "full", options=ExtractOptions(
            aqua=AquaOptions(poll_interval=0.05)))
    latest = srv.store.live("Subscription").filter(pl.col("IsLatestVersion"))
    rows = [latest.row(i, named=True) for i in (3, 4, 5)]
    for i, row in enumerate(rows):
        mutate(srv, "update", "Subscription", row["Id"], Notes=f"storm {i}")
    names = tuple(r["Name"] for r in rows)
    submits, queries = srv.stats["aqua_submit"], srv.stats["query"]
    said: list[str] = []
    res = sync_keys(dataclasses.replace(settings, sync_batch_threshold=2),
                    SyncRequest("subscription", names), progress=said.append)
    assert res.exit_code == 0, res.leftovers
    assert srv.stats["aqua_submit"] == submits + 1
    assert any("one incremental export" in m for m in said)
    # the context (accounts, contacts, catalog) is still read by key: a few queries, not
    # one per subscription object
    assert srv.stats["query"] - queries <= 6
    assert [notes(settings, r["Id"]) for r in rows] == ["storm 0", "storm 1", "storm 2"]

"""The sync's keyed reconcile and plan decide exactly what the nightly's path decides.

A sync reconciles its keyed snapshot with ``reconcile_snapshot(keyed=True)`` in one DuckDB
connection it then plans in (``build_plan(db=...)``), to be fast: no history in recon's state,
no diff of objects without rows, no annotation of objects without findings, the snapshot
opened once. This test reconciles and plans one snapshot both ways — a world with every drift
scenario where some objects have no row on either side, as in a keyed snapshot — and
requires the same drift rows and the same plan."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from core.layout import DRIFT_FILE, run_dir
from core.snapshot import open_snapshot
from reconcile.engine import open_for_reconcile, reconcile_snapshot
from repair.plan import plan_document
from repair.planner import build_plan
from repair.steps import OP_COLUMNS, all_steps_sql
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import write_snapshot
from tests.support.worlds import fresh_world

EMPTIED = ("ProductRatePlanChargeTier", "RatePlanChargeTier")  # no rows on either side


def _world(empty: tuple[str, ...] = ()):
    from core.catalog import get

    world = fresh_world(accounts=60)
    for sid in sorted(SCENARIOS):
        SCENARIOS[sid](world, 2)
    for obj in empty:
        world.zuora[obj] = world.zuora[obj].clear()
        table = get(obj).table
        world.local[table] = world.local[table].clear()
    return world


def _plan_doc(plan) -> dict:
    doc = plan_document(plan)
    for k in ("plan_id", "created_at"):
        doc.pop(k, None)
    return doc


def _both_ways(tmp: Path, empty: tuple[str, ...]
               ) -> tuple[pl.DataFrame, pl.DataFrame, dict, dict, list, list]:
    world = _world(empty)
    nightly, keyed = tmp / "nightly", tmp / "keyed"
    snap = write_snapshot(world, nightly, "r1")
    shutil.copytree(nightly, keyed)
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)  # the plans' stamp: the same
    old = reconcile_snapshot(snap, nightly, grace_hours=0.0)
    old_plan = build_plan(nightly, "r1", now=now)

    ksnap = open_snapshot(keyed / snap.path.relative_to(nightly))
    db = open_for_reconcile(ksnap, keyed)
    try:
        new = reconcile_snapshot(ksnap, keyed, grace_hours=0.0, keyed=True, db=db)
        new_plan = build_plan(keyed, "r1", now=now, db=db)
        # the update step bound for the fields the findings name only, or for every field:
        # the same operations (findings/auto are the plan's, still in the connection)
        present = {r[0] for r in db.con.execute("SELECT DISTINCT object FROM auto").fetchall()}
        fields: dict[str, set[str]] = {}
        for obj, fld in db.con.execute("SELECT DISTINCT object, field FROM auto WHERE kind = "
                                       "'field_mismatch' AND field IS NOT NULL").fetchall():
            fields.setdefault(obj, set()).add(fld)

        def ops(f: dict | None) -> list:
            parts = all_steps_sql("2026-01-01T00:00:00.000000", "all", objects=present,
                                  fields=f)
            rows = db.con.sql(" UNION ALL ".join(
                f"SELECT {OP_COLUMNS} FROM ({q})" for q in parts)).fetchall()
            # key, before, after are JSON objects whose members come in no set order (the
            # planner reads them into dicts)
            return sorted(([*r[:4], *(json.loads(v) if v else v for v in r[4:7]), *r[7:]]
                           for r in rows), key=lambda r: json.dumps(r, sort_keys=True,
                                                                      default=str))

        narrow, wide = ops(fields), ops(None)
    finally:
        db.close()
    assert pl.read_parquet(run_dir(keyed, "r1") / DRIFT_FILE).equals(new.drift)
    return old.drift, new.drift, _plan_doc(old_plan), _plan_doc(new_plan), narrow, wide


@pytest.mark.slow
def test_keyed_reconcile_and_plan_equal_the_nightlys(tmp_path: Path) -> None:
    old, new, old_plan, new_plan, narrow, wide = _both_ways(tmp_path, EMPTIED)
    assert old.height > 50 and old["rule"].n_unique() > 5  # the scenarios made real drift
    order = ["object", "key", "kind", "rule", "field"]
    assert new.sort(order, nulls_last=True).equals(old.sort(order, nulls_last=True))
    assert new_plan == old_plan
    assert old_plan["operations"], "nothing planned: the comparison would prove nothing"
    assert narrow == wide and narrow

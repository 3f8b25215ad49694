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
from reconcile.rules import prepare_rules
from repair.plan import plan_document
from repair.planner import build_plan
from repair.steps import OP_COLUMNS, Present, all_steps_sql
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


def _ops(db, present: Present | None) -> list:
    """The plan's operations over ``db`` (its ``auto`` relation), the steps bound for
    ``present`` or every step (None)."""
    parts = all_steps_sql("2026-01-01T00:00:00.000000", "all", present)
    rows = db.con.sql(" UNION ALL ".join(
        f"SELECT {OP_COLUMNS} FROM ({q})" for q in parts)).fetchall()
    # key, before, after are JSON objects whose members come in no set order (the planner
    # reads them into dicts)
    return sorted(([*r[:4], *(json.loads(v) if v else v for v in r[4:7]), *r[7:]]
                   for r in rows), key=lambda r: json.dumps(r, sort_keys=True, default=str))


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
        # the steps bound for what the auto findings are, or every step: the same operations
        # (findings/auto are the plan's, still in the connection)
        present = Present.of(db.con)

        narrow, wide = _ops(db, present), _ops(db, None)
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


# -- a sync's subject: the rules and diffs it skips cannot change what it keeps -------------
@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Every drift scenario in one world, written as a snapshot and reconciled as the nightly
    does; the reconcile's connection stays open (the rules' helper relations built)."""
    tmp = tmp_path_factory.mktemp("subject")
    snap = write_snapshot(_world(), tmp / "nightly", "r1")
    db = open_for_reconcile(snap, tmp / "nightly")
    nightly = reconcile_snapshot(snap, tmp / "nightly", grace_hours=0.0, db=db)
    yield tmp, snap, db, nightly.drift
    db.close()


def test_every_rule_keeps_to_the_objects_it_declares(scenarios) -> None:
    """``Rule.about`` is what lets a sync skip a rule: a rule producing a finding about an
    object it does not declare would be skipped by a sync that needed it. Each rule runs
    alone over every scenario; a rule that reads the diff's findings names whose."""
    import re

    from core.catalog import BY_NAME
    from reconcile.rules import RULES

    _tmp, _snap, db, _drift = scenarios
    emitted = {}
    for rule in RULES:
        got = {r[0] for r in db.con.execute(
            f"SELECT DISTINCT object FROM ({rule.sql()})").fetchall()}
        assert got <= set(rule.about), f"{rule.id} found {got - set(rule.about)} undeclared"
        emitted[rule.id] = got
        if re.search(r"\bfindings\b", rule.sql()):
            quoted = set(re.findall(r"'(\w+)'", rule.sql())) & set(BY_NAME)
            assert rule.reads and quoted <= set(rule.reads) | set(rule.about), rule.id
        else:
            assert not rule.reads, f"{rule.id} declares reads but reads no findings"
    silent = [r for r, objs in emitted.items() if not objs]
    assert len(silent) <= 2, f"the scenarios exercise too few rules to test them: {silent}"


@pytest.mark.parametrize("kind", ["contact", "account", "subscription", "catalog"])
def test_a_keyed_reconcile_about_a_subject_finds_what_the_nightly_finds_about_it(
        scenarios, kind: str, tmp_path: Path) -> None:
    """``reconcile_snapshot(about=...)`` skips the rules, diffs and derivation that cannot
    produce a finding about the sync's objects: its findings about them equal the nightly's,
    on a world with every scenario (each kind's objects have findings there)."""
    from sync.engine import SUBJECT_OBJECTS

    src, snap, _db, nightly = scenarios
    about = SUBJECT_OBJECTS[kind]
    shutil.copytree(src / "nightly", tmp_path / "k")
    ksnap = open_snapshot(tmp_path / "k" / snap.path.relative_to(src / "nightly"))
    db = open_for_reconcile(ksnap, tmp_path / "k", threads=1)
    try:
        got = reconcile_snapshot(ksnap, tmp_path / "k", grace_hours=0.0, keyed=True, db=db,
                                 about=about).drift
        # the plan in the same connection, order steps included, as a sync plans; its steps
        # narrowed to what the findings are make the operations every step makes
        plan = build_plan(tmp_path / "k", "r1", db=db)
        narrow = _ops(db, Present.of(db.con))
        prepare_rules(db.con, db.as_of.isoformat(sep=" "), "all")  # every step's relations
        wide = _ops(db, None)
    finally:
        db.close()
    want = nightly.filter(pl.col("object").is_in(sorted(about)))
    order = ["object", "key", "kind", "rule", "field"]
    assert want.height > 0, f"no finding about {kind}'s objects: the test would prove nothing"
    assert set(got["object"].unique()) <= about
    assert got.sort(order, nulls_last=True).equals(want.sort(order, nulls_last=True))
    assert {op.table for op in plan.operations}, "nothing planned from those findings"
    assert narrow == wide and len(narrow) == len(plan.operations)

"""The repair planner: what becomes an operation, what never does, and the plan's shape."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from core.localdb.identity import DatabaseIdentity
from core.snapshot import Manifest
from reconcile.engine import reconcile_snapshot, resolve_snapshot
from repair.plan import SCHEMA_VERSION, STEPS, Plan, plan_document, read_plan, write_plan
from repair.planner import PlanError, build_plan, summary_text
from sandbox.generate.drift import SCENARIOS
from tests.support.snapshots import write_snapshot
from tests.support.worlds import fresh_world


def _as_json(v: object) -> object:
    """A local value as plan JSON carries it (docs/repair.md "Repair plans")."""
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("plan")
    world = fresh_world()
    for sid in sorted(SCENARIOS):
        SCENARIOS[sid](world, 3)
    result = reconcile_snapshot(write_snapshot(world, data, "r1"), data)
    return data, world, result, build_plan(data, "r1")


def _doc(plan: Plan) -> dict:
    """The plan as its file says it (values in their JSON encoding)."""
    return plan_document(plan)


@pytest.mark.slow
def test_every_auto_finding_is_planned_and_no_human_one_is(planned) -> None:
    _, _, result, model = planned
    plan = _doc(model)
    covered = {f for op in plan["operations"] for f in op["findings"]}
    drift = result.drift
    human = set(drift.filter(pl.col("action") == "human")["fingerprint"])
    assert not covered & human, "a human finding became an operation"
    assert {f["fingerprint"] for f in plan["needs_a_person"]} == human
    auto = drift.filter((pl.col("action") == "auto") & ~pl.col("rule").is_in(["D08", "D09"]))
    assert set(auto["fingerprint"]) <= covered
    assert plan["not_planned"] == []


@pytest.mark.slow
def test_operations_are_in_dependency_order_with_before_images(planned) -> None:
    _, world, _, model = planned
    plan = _doc(model)
    ops = plan["operations"]
    assert [op["seq"] for op in ops] == list(range(1, len(ops) + 1))
    order = [STEPS.index(op["step"]) for op in ops]
    assert order == sorted(order)
    for op in ops:
        assert (op["before"] is None) == (op["op"] == "insert")
        assert (op["after"] is None) == (op["op"] == "delete")
    # an update's before image is the snapshot's local value
    upd = next(op for op in ops if op["table"] == "zuora_local_subscriptions"
               and op["op"] == "update")
    row = world.local["zuora_local_subscriptions"].filter(
        pl.col("zuora_id") == upd["key"]["zuora_id"]).row(0, named=True)
    for col, value in upd["before"].items():
        assert _as_json(row[col]) == value, col
    # a version subtree is one group; D11 losers are deleted in the keeper's group
    dedupe = [op for op in ops if op["table"] == "orders" and op["op"] == "delete"]
    assert dedupe and all(op["group"].startswith("order:") for op in dedupe)
    assert all(op["group"].startswith("version:") for op in ops if op["step"] == "subscriptions")


@pytest.mark.slow
def test_new_rows_reference_rows_an_earlier_step_creates(planned) -> None:
    _, _, _, model = planned
    plan = _doc(model)
    contact = next(op for op in plan["operations"] if op["table"] == "billing_account_contacts"
                   and op["op"] == "insert")
    ref = contact["after"]["billing_account_id"]["$ref"]
    assert ref["table"] == "billing_accounts" and ref["column"] == "id"
    assert "id" not in contact["after"], "surrogate ids are generated at apply time"


@pytest.mark.slow
def test_summary_and_file(planned, tmp_path: Path) -> None:
    _, _, _, plan = planned
    text = summary_text(plan)
    assert f"repair plan {plan.plan_id} for run r1" in text
    assert "needs a person" in text
    path = write_plan(plan, tmp_path / "plan.json")
    again = json.loads(path.read_text())
    assert again["schema_version"] == SCHEMA_VERSION == plan.schema_version == 3
    assert sum(c["operations"] for c in again["chunks"]) == len(plan.operations)
    assert again["snapshot_complete"] is True
    # the summary in the file is the one derived from the operations
    assert again["summary"]["operations"] == len(plan.operations)
    assert again["summary"]["groups"] == len({op.group for op in plan.operations})


@pytest.mark.slow
def test_a_built_plan_written_and_read_back_is_the_same_plan(planned, tmp_path: Path) -> None:
    _, _, _, plan = planned
    path = write_plan(plan, tmp_path / "plan.json")
    again = read_plan(path)
    assert again == plan and again.path == path
    assert again.summary == plan.summary
    # and writing what was read gives the same bytes (timestamps keep their microseconds)
    assert write_plan(again, tmp_path / "again.json").read_text() == path.read_text()


@pytest.mark.slow
def test_only_narrows_the_plan(planned) -> None:
    data, _, _, _ = planned
    plan = build_plan(data, "r1", only="D11")
    assert plan.operations and {op.table for op in plan.operations} == {"orders"}
    assert plan.only == "D11" and plan_document(plan)["only"] == "D11"
    with pytest.raises(PlanError, match="matches no open finding"):
        build_plan(data, "r1", only="Nothing")


def test_unreconciled_run_is_refused(tmp_path: Path) -> None:
    write_snapshot(fresh_world(), tmp_path, "r9")
    with pytest.raises(PlanError, match="has not been reconciled"):
        build_plan(tmp_path, "r9")


@pytest.mark.slow
def test_the_target_identity_is_copied_from_the_snapshot_not_the_settings(planned) -> None:
    data = planned[0]
    snap = resolve_snapshot(data, "r1")
    path = snap.path / "manifest.json"
    original = path.read_text()
    ident = {"uuid": "5f0c2a8e-0000-4000-8000-000000000001", "dialect": "duckdb",
             "path": "/srv/cdot/local.duckdb"}
    m = Manifest.from_json(original)
    m.local_identity = ident
    try:
        path.write_text(m.to_json())
        plan = build_plan(data, "r1", local_database_url="postgresql://elsewhere/other")
    finally:
        path.write_text(original)
    assert plan.local_identity == DatabaseIdentity.from_dict(ident)
    assert plan_document(plan)["local_identity"] == ident
    assert build_plan(data, "r1").local_identity is None  # the snapshot had none

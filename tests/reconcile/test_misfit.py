"""Values valid in Zuora that the local column cannot hold (issue 13, "Valid in Zuora, does not
fit locally"), and date attribution (issue 13, "Attribution"; domain.md §5 D05, D07, D14).

The rule, from the issue: length (longer than VARCHAR(n)), precision (more integer digits than
DECIMAL(p,s) holds after rounding half-up at its scale; extra decimal places alone are
rounding, domain.md §1.9), integer range and NUL bytes (PostgreSQL cannot store 0x00): the
snapshot keeps the value exactly; the diff compares the full value; the column's finding is
``human`` and says why; the plan updates the row's other columns and leaves that one; an
insert writes NULL there when the column allows it, else it is not planned. Every expected
value below is written by hand from those sentences.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.catalog.model import Field, ZType, misfit_sql
from core.catalog.project import value_sql
from core.localdb.connect import connect
from core.localdb.identity import DatabaseIdentity
from core.localdb.schema import all_tables
from jobs.cli import main
from reconcile.engine import reconcile_snapshot
from repair.apply import apply_plan
from repair.plan import plan_document, read_plan, write_plan
from repair.planner import build_plan
from tests.support.repair import identity_of, rows, settings_for
from tests.support.snapshots import write_snapshot
from tests.support.worlds import fresh_world

RUN = "20261102T070000Z"


# -- the rule itself, hand-valued --------------------------------------------------------------
@pytest.mark.parametrize(("local_type", "text", "literal", "why"), [
    ("VARCHAR(500)", True, "repeat('a', 500)", None),
    ("VARCHAR(500)", True, "repeat('a', 501)", "longer than VARCHAR(500)"),
    ("VARCHAR(5)", True, "'héllo'", None),  # characters, not bytes
    ("VARCHAR(500)", True, "'PO' || chr(0) || '42'", "NUL byte"),
    ("VARCHAR", True, "chr(0)", "NUL byte"),
    ("VARCHAR(500)", True, "NULL", None),
    ("DECIMAL(18,2)", False, "CAST('9999999999999999.994' AS DECIMAL(38,9))", None),
    # rounds half-up to 10000000000000000.00: 17 integer digits
    ("DECIMAL(18,2)", False, "CAST('9999999999999999.995' AS DECIMAL(38,9))",
     "more digits than DECIMAL(18,2)"),
    ("DECIMAL(18,2)", False, "CAST('12345678901234567890123.45' AS DECIMAL(38,9))",
     "more digits than DECIMAL(18,2)"),
    ("DECIMAL(18,2)", False, "CAST('0.123456789' AS DECIMAL(38,9))", None),  # rounding only
    ("DECIMAL(18,2)", False, "CAST('-9999999999999999.99' AS DECIMAL(38,9))", None),
    ("INTEGER", False, "CAST(2147483647 AS BIGINT)", None),
    ("INTEGER", False, "CAST(2147483648 AS BIGINT)", "outside the range of INTEGER"),
    ("INTEGER", False, "CAST(-2147483649 AS BIGINT)", "outside the range of INTEGER"),
    ("INTEGER", False, "CAST('2147483647.4' AS DECIMAL(38,9))", None),
    ("INTEGER", False, "CAST('2147483647.5' AS DECIMAL(38,9))", "outside the range of INTEGER"),
    ("INTEGER", False, "CAST('-2147483648.5' AS DECIMAL(38,9))", "outside the range of INTEGER"),
    ("INTEGER", False, "CAST(NULL AS BIGINT)", None),
])
def test_misfit_reasons(local_type: str, text: bool, literal: str, why: str | None) -> None:
    sql = misfit_sql(local_type, "v", text=text)
    assert sql is not None
    got = duckdb.sql(f"SELECT {sql} FROM (SELECT {literal} AS v)").fetchall()[0][0]
    assert got == why


def test_types_that_cannot_misfit_have_no_rule() -> None:
    assert misfit_sql("DATE", "v", text=False) is None
    assert misfit_sql("BOOLEAN", "v", text=False) is None
    assert Field("X", ZType.DATE, "x", "DATE").misfit_sql("v") is None
    assert Field("X", ZType.STR).misfit_sql("v") is None  # not stored locally


@pytest.mark.parametrize(("field", "literal", "expected"), [
    (Field("v", ZType.DECIMAL, "v", "DECIMAL(18,2)"), "CAST('1.005' AS DECIMAL(38,9))",
     Decimal("1.01")),  # half-up at the local scale, never a finding
    (Field("v", ZType.DECIMAL, "v", "DECIMAL(18,2)"),
     "CAST('12345678901234567890123.45' AS DECIMAL(38,9))", None),
    (Field("v", ZType.DECIMAL, "v", "INTEGER"), "CAST('2.5' AS DECIMAL(38,9))", 3),
    (Field("v", ZType.DECIMAL, "v", "INTEGER"), "CAST('3000000000' AS DECIMAL(38,9))", None),
    (Field("v", ZType.INT, "v", "INTEGER"), "CAST(3000000000 AS BIGINT)", None),
    (Field("v", ZType.STR, "v", "VARCHAR(3)"), "'abc'", "abc"),
    (Field("v", ZType.STR, "v", "VARCHAR(3)"), "'abcd'", None),  # never 'abc'
    (Field("v", ZType.STR, "v", "VARCHAR(3)"), "'a' || chr(0)", None),  # never 'a'
])
def test_projection_never_cuts_a_value(field: Field, literal: str, expected: object) -> None:
    """What a correct sync (and an insert) writes: the value, or NULL when it cannot fit."""
    got = duckdb.sql(f"SELECT {value_sql(field, 'z')} FROM (SELECT {literal} AS v) z").fetchall()[0]
    assert got[0] == expected


# -- a world where Zuora holds one value of each kind that does not fit -----------------------
LONG_NOTES = "N" * 501
HUGE_PRICE = Decimal("12345678901234567890123.45")
HUGE_MRR = Decimal("3000000000")
NEW_OPP = "0064M00000MISFIT"


def _set(frame: pl.DataFrame, key_col: str, key: str, **values: object) -> pl.DataFrame:
    return frame.with_columns(**{
        c: pl.when(pl.col(key_col) == key).then(pl.lit(v, dtype=frame.schema[c]))
        .otherwise(pl.col(c)) for c, v in values.items()})


@pytest.fixture(scope="module")
def misfit(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("misfit")
    w = fresh_world(40, 5)
    z, loc = w.zuora, w.local
    subs = z["Subscription"].sort("Id")
    s1, s2 = subs["Id"][0], subs["Id"][1]
    tier = z["RatePlanChargeTier"].sort("Id").row(0, named=True)
    charge = z["RatePlanCharge"].sort("Id")["Id"][0]
    # length: Zuora 501 characters, the local copy holds the 500-character prefix (what the
    # old truncating repair wrote); another column of the row differs too
    z["Subscription"] = _set(z["Subscription"], "Id", s1, Notes=LONG_NOTES,
                             OpportunityId__c=NEW_OPP)
    loc["zuora_local_subscriptions"] = _set(loc["zuora_local_subscriptions"], "zuora_id", s1,
                                            notes="N" * 500)
    # NUL byte: the local copy holds the value without it
    z["Subscription"] = _set(z["Subscription"], "Id", s2, Notes="PO\x0042")
    loc["zuora_local_subscriptions"] = _set(loc["zuora_local_subscriptions"], "zuora_id", s2,
                                            notes="PO42")
    # precision: a 23-digit price into DECIMAL(18,2); the tier's price format differs too
    other = "Per Unit" if tier["PriceFormat"] == "Flat Fee" else "Flat Fee"
    z["RatePlanChargeTier"] = _set(z["RatePlanChargeTier"], "Id", tier["Id"],
                                   Price=HUGE_PRICE, PriceFormat=other)
    # integer range: MRR 3,000,000,000 into INTEGER; the description differs too
    z["RatePlanCharge"] = _set(z["RatePlanCharge"], "Id", charge, MRR=HUGE_MRR,
                               Description="Fresh from Zuora")
    # inserts: a product whose nullable description does not fit, one whose NOT NULL name
    # does not fit
    p1, p2, p3, t1 = w.new_ids(4)
    proto = z["Product"].head(1)
    z["Product"] = pl.concat([z["Product"], proto.with_columns(
        Id=pl.lit(p1), Name=pl.lit("Misfit description"), SKU=pl.lit("SKU-MISFIT-1"),
        Description=pl.lit("D" * 501)), proto.with_columns(
        Id=pl.lit(p2), Name=pl.lit("P" * 101), SKU=pl.lit("SKU-MISFIT-2")), proto.with_columns(
        Id=pl.lit(p3), Name=pl.lit("Misfit NUL"), SKU=pl.lit("SKU-MISFIT-3"),
        Description=pl.lit("a\x00b"))])
    # a new catalog tier whose price and tier number do not fit (both nullable locally)
    cat = z["ProductRatePlanChargeTier"]
    z["ProductRatePlanChargeTier"] = pl.concat([cat, cat.sort("Id").head(1).with_columns(
        Id=pl.lit(t1), Price=pl.lit(HUGE_PRICE, dtype=cat.schema["Price"]),
        Tier=pl.lit(3_000_000_000, dtype=cat.schema["Tier"]))])
    result = reconcile_snapshot(write_snapshot(w, data, RUN), data)
    # planned through the CLI (issue 13 point 5: the 23-digit price used to stop
    # `recon repair plan` with a DuckDB conversion traceback, planning nothing)
    cfg = data / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{data}"\n')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(cfg), "repair", "plan", "--run", RUN,
                     "--out", str(data / "plan.json")])
    cli = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
    plan = plan_document(read_plan(data / "plan.json"))  # its operations, from the chunks
    keys = {"s1": s1, "s2": s2, "tier": tier["Id"], "charge": charge, "p1": p1, "p2": p2,
            "p3": p3, "t1": t1, "other_format": other}
    return data, w, result, plan, keys, cli


def _finding(result, obj: str, key: str, field: str | None = None) -> dict:
    f = result.drift.filter((pl.col("object") == obj) & (pl.col("key") == key))
    if field is not None:
        f = f.filter(pl.col("field") == field)
    assert f.height == 1, f
    return f.row(0, named=True)


def _ops(plan: dict, key: str) -> list[dict]:
    return [op for op in plan["operations"] if key in op["key"].values()]


@pytest.mark.parametrize(("obj", "which", "field", "zuora_value", "local_value", "why"), [
    ("Subscription", "s1", "Notes", LONG_NOTES, "N" * 500, "longer than VARCHAR(500)"),
    ("Subscription", "s2", "Notes", "PO\x0042", "PO42", "NUL byte"),
    ("RatePlanChargeTier", "tier", "Price", "12345678901234567890123.45", None,
     "more digits than DECIMAL(18,2)"),
    ("RatePlanCharge", "charge", "MRR", "3000000000", None, "outside the range of INTEGER"),
])
@pytest.mark.slow
def test_a_value_that_does_not_fit_is_a_finding_for_a_person(
        misfit, obj: str, which: str, field: str, zuora_value: str, local_value: str | None,
        why: str) -> None:
    _, _, result, plan, keys, _ = misfit
    f = _finding(result, obj, keys[which], field)
    assert f["kind"] == "field_mismatch" and f["action"] == "human" and f["drift_id"] is None
    assert f["zuora_value"] == zuora_value, "the full Zuora value, never a prefix"
    if local_value is not None:
        assert f["local_value"] == local_value
    assert why in f["explanation"]
    advice = "correct the value in Zuora" if why == "NUL byte" else "widen the column"
    assert advice in f["explanation"]
    assert json.loads(f["evidence"])["misfit"] == why
    assert f["fingerprint"] in {p["fingerprint"] for p in plan["needs_a_person"]}
    touched = [op for op in _ops(plan, keys[which]) if op["op"] == "update"]
    column = {"Notes": "notes", "Price": "price", "MRR": "mrr"}[field]
    assert all(column not in op["after"] for op in touched), "the column is left alone"


@pytest.mark.slow
def test_the_other_columns_of_the_row_are_updated(misfit) -> None:
    _, _, _, plan, keys, _ = misfit
    (s1,) = _ops(plan, keys["s1"])
    assert s1["op"] == "update" and s1["after"] == {"opportunity_id__c": NEW_OPP}
    assert _ops(plan, keys["s2"]) == [], "nothing else differs on that row"
    (tier,) = _ops(plan, keys["tier"])
    assert tier["after"] == {"price_format": keys["other_format"]}
    (charge,) = _ops(plan, keys["charge"])
    assert charge["after"] == {"description": "Fresh from Zuora"}
    assert plan["not_planned"] == []


@pytest.mark.slow
def test_an_insert_writes_null_where_allowed_and_is_not_planned_otherwise(misfit) -> None:
    _, _, result, plan, keys, _ = misfit
    f1 = _finding(result, "Product", keys["p1"])
    assert f1["kind"] == "missing_in_local" and f1["action"] == "auto"
    assert "inserted with NULL in zuora_local_products.description (longer than " \
           "VARCHAR(500))" in f1["explanation"]
    (ins,) = _ops(plan, keys["p1"])
    assert ins["op"] == "insert" and ins["after"]["description"] is None
    assert ins["after"]["name"] == "Misfit description"
    f2 = _finding(result, "Product", keys["p2"])
    assert f2["kind"] == "missing_in_local" and f2["action"] == "human"
    assert "not inserted" in f2["explanation"] and "zuora_local_products.name (longer than " \
           "VARCHAR(100))" in f2["explanation"]
    assert _ops(plan, keys["p2"]) == []
    assert f2["fingerprint"] in {p["fingerprint"] for p in plan["needs_a_person"]}
    # NUL byte, precision and integer range into nullable columns: NULL there
    f3 = _finding(result, "Product", keys["p3"])
    assert f3["action"] == "auto" and "description (NUL byte)" in f3["explanation"]
    (ins,) = _ops(plan, keys["p3"])
    assert ins["after"]["description"] is None and ins["after"]["name"] == "Misfit NUL"
    f4 = _finding(result, "ProductRatePlanChargeTier", keys["t1"])
    assert f4["action"] == "auto"
    assert ("price (more digits than DECIMAL(18,2)), zuora_local_product_rate_plan_charge_tiers"
            ".tier (outside the range of INTEGER)") in f4["explanation"]
    (ins,) = _ops(plan, keys["t1"])
    assert ins["after"]["price"] is None and ins["after"]["tier"] is None
    assert ins["after"]["currency"] is not None


@pytest.mark.slow
def test_repair_plan_cli_plans_the_rest_without_a_traceback(misfit) -> None:
    """`recon repair plan` exits 0 and plans everything else (the plan checked above)."""
    _, _, result, plan, _, cli = misfit
    assert cli["code"] == 0, cli
    assert "Traceback" not in cli["out"] + cli["err"]
    assert "needs a person" in cli["out"]
    auto = result.drift.filter(pl.col("action") == "auto")
    covered = {f for op in plan["operations"] for f in op["findings"]}
    assert set(auto["fingerprint"]) <= covered and plan["operations"]


@pytest.mark.slow
def test_the_planner_itself_never_writes_a_value_that_does_not_fit(misfit,
                                                                   tmp_path: Path) -> None:
    """The planner guards on its own (a drift file whose findings all say ``auto``, e.g.
    written before this rule): the column is still left alone, the NOT NULL insert still not
    planned, and nothing fails on the 23-digit price."""
    data, _, result, _, keys, _ = misfit
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    drift = copy / "runs" / RUN / "drift.parquet"
    pl.read_parquet(drift).with_columns(action=pl.lit("auto")).write_parquet(drift)
    plan = plan_document(build_plan(copy, RUN))
    for which, column in (("s1", "notes"), ("s2", "notes"), ("tier", "price"),
                          ("charge", "mrr")):
        assert all(column not in (op["after"] or {}) for op in _ops(plan, keys[which])), which
    assert _ops(plan, keys["p2"]) == []
    (ins,) = _ops(plan, keys["p1"])
    assert ins["after"]["description"] is None
    # what the guard leaves out is listed, never silently dropped
    left = {(n["key"], n["field"]) for n in plan["not_planned"]}
    assert {(keys["s1"], "Notes"), (keys["s2"], "Notes"), (keys["tier"], "Price"),
            (keys["charge"], "MRR"), (keys["p2"], None)} <= left


@pytest.mark.slow
@pytest.mark.postgres
def test_the_plan_applies_on_postgresql(misfit, pg_url: str, tmp_path: Path) -> None:
    data, w, _, plan, keys, _ = misfit
    with connect(pg_url) as db:
        db.init_schema()
        with db.writing("load", "tests"):
            for t in all_tables():
                db.load(t, w.local[t])
        db.reset_identities()
    # the world's snapshot was not exported from this database: bind the plan to it, as an
    # extract from it would have
    bound = replace(read_plan(data / "plan.json"),
                    local_identity=DatabaseIdentity.from_dict(identity_of(pg_url)))
    path = write_plan(bound, tmp_path / "plan.json")
    result = apply_plan(path, settings_for(pg_url, data), yes=True, force=True)
    assert result.status == "complete", result.skipped
    assert rows(pg_url, "SELECT notes, opportunity_id__c FROM zuora_local_subscriptions "
                f"WHERE zuora_id = '{keys['s1']}'") == [("N" * 500, NEW_OPP)]
    assert rows(pg_url, "SELECT price_format FROM zuora_local_rate_plan_charge_tiers "
                f"WHERE zuora_id = '{keys['tier']}'") == [(keys["other_format"],)]
    assert sorted(rows(pg_url, "SELECT name, description FROM zuora_local_products WHERE "
                       f"zuora_id IN ('{keys['p1']}', '{keys['p2']}', '{keys['p3']}')")) == [
        ("Misfit NUL", None), ("Misfit description", None)]
    assert rows(pg_url, "SELECT price, tier FROM zuora_local_product_rate_plan_charge_tiers "
                f"WHERE zuora_id = '{keys['t1']}'") == [(None, None)]


# -- attribution: D05 only for ±1 day ----------------------------------------------------------
def _shift(frame: pl.DataFrame, key: str, days: int, *cols: str, **values: object) -> pl.DataFrame:
    out = frame.with_columns(**{
        c: pl.when(pl.col("zuora_id") == key).then(pl.col(c) + pl.duration(days=days))
        .otherwise(pl.col(c)) for c in cols})
    return _set(out, "zuora_id", key, **values) if values else out


@pytest.mark.slow
def test_date_differences_are_attributed_by_their_size_and_cause(tmp_path: Path) -> None:
    """domain.md §5 D05: |Δ| = 1 day. A 190-day end date on a subscription whose status
    differs is a missed cancellation (D07), on its charges too; any other difference has no
    drift id and says how many days it is; an order's stale end date is D14 (§5 D14)."""
    w = fresh_world(40, 5)
    loc = w.local
    subs = w.zuora["Subscription"].filter(
        (pl.col("Status") == "Active") & pl.col("TermEndDate").is_not_null()
        & pl.col("SubscriptionEndDate").is_not_null()).sort("Id")
    one, missed, other = subs["Id"][0], subs["Id"][1], subs["Id"][2]
    t = "zuora_local_subscriptions"
    loc[t] = _shift(loc[t], one, 1, "term_end_date")
    loc[t] = _shift(loc[t], missed, 190, "subscription_end_date", status="Cancelled")
    loc[t] = _shift(loc[t], other, -30, "term_start_date")
    charges = w.zuora["RatePlanCharge"].filter(
        (pl.col("SubscriptionId") == missed) & pl.col("EffectiveEndDate").is_not_null()).sort("Id")
    charge = charges["Id"][0]
    c = "zuora_local_rate_plan_charges"
    loc[c] = _shift(loc[c], charge, 190, "effective_end_date")
    # an order's derived end date 190 days off its latest version: D14, never D05
    mine = loc[t].filter(pl.col("zuora_id").is_in([one, missed, other]))["name"]
    oid = (loc["orders"].filter(~pl.col("trial").fill_null(False)
                                & ~pl.col("subscription_name").is_in(mine.implode()))
           .sort("id")["id"][0])
    loc["orders"] = loc["orders"].with_columns(
        end_date=pl.when(pl.col("id") == oid).then(pl.col("end_date") + dt.timedelta(days=190))
        .otherwise(pl.col("end_date")))
    result = reconcile_snapshot(write_snapshot(w, tmp_path, RUN), tmp_path)

    f = _finding(result, "Subscription", one, "TermEndDate")
    assert f["drift_id"] == "D05" and "one day off" in f["explanation"]
    f = _finding(result, "Subscription", missed, "SubscriptionEndDate")
    assert f["drift_id"] == "D07"
    assert "date differs by 190 days: the subscription's status" in f["explanation"]
    assert _finding(result, "Subscription", missed, "Status")["drift_id"] == "D07"
    f = _finding(result, "RatePlanCharge", charge, "EffectiveEndDate")
    assert f["drift_id"] == "D07" and "date differs by 190 days" in f["explanation"]
    f = _finding(result, "Subscription", other, "TermStartDate")
    assert f["drift_id"] is None and "date differs by 30 days)" in f["explanation"]
    assert "one day off" not in f["explanation"]
    assert f["action"] == "auto", "still repaired from Zuora"
    f = result.drift.filter((pl.col("object") == "orders") & (pl.col("field") == "end_date"))
    assert f.select("rule", "drift_id").rows() == [("D14", "D14")]


"""Scenario-specific checks for the subscription drift scenarios (D01, D03–D09) that the
generic contract in test_drift_scenarios.py cannot see: the shape of each injected fault, the
variants, the order rules, and that the scenarios compose on one world."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from core.catalog.orders import DERIVED_COLUMNS
from sandbox.generate.drift.base import World
from sandbox.generate.drift.subscriptions import SCENARIOS
from tests.support.oracle import diff
from tests.support.worlds import derive_orders, fresh_world

N = 12
DIFF_KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch")
SUBS, CHARGES, TIERS = ("zuora_local_subscriptions", "zuora_local_rate_plan_charges",
                        "zuora_local_rate_plan_charge_tiers")


def _run(sid: str, n: int = N, seed: int | None = None) -> tuple[World, pl.DataFrame, World]:
    clean, world = fresh_world(), fresh_world()
    if seed is not None:
        world.rng = np.random.default_rng(seed)
    SCENARIOS[sid](world, n)
    return world, world.label_frame(), clean


def _diff_set(world: World) -> Counter:
    """The oracle's differences as a multiset (a difference found twice counts twice)."""
    return Counter((r["object"], r["key"], r["field"], r["kind"])
                   for r in diff(world.zuora, world.local).iter_rows(named=True))


def _label_set(labels: pl.DataFrame) -> Counter:
    """The labels as a multiset (a label written twice counts twice)."""
    return Counter((r["object"], r["key"], r["field"] if r["kind"] == "field_mismatch" else None,
                    r["kind"])
                   for r in labels.filter(pl.col("kind").is_in(DIFF_KINDS))
                   .iter_rows(named=True))


def _order_drift(world: World) -> set[tuple[str, str]]:
    """(subscription name, column) where a non-trial local order differs from what the
    current Zuora side derives (incl. names present on one side only)."""
    derived = derive_orders(world.zuora, world.local["billing_accounts"])
    orders = world.local["orders"].filter(~pl.col("trial").fill_null(False))
    both = orders.select("subscription_name", *DERIVED_COLUMNS).join(
        derived.select("subscription_name", *[pl.col(c).cast(orders.schema[c])
                                              for c in DERIVED_COLUMNS]),
        on="subscription_name", how="full", suffix="__z", coalesce=True)
    out = set()
    for c in DERIVED_COLUMNS:
        for name in both.filter(pl.col(c).ne_missing(pl.col(f"{c}__z")))["subscription_name"]:
            out.add((name, c))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_exact_labels_at_larger_n(sid: str) -> None:
    world, labels, _ = _run(sid)
    assert _diff_set(world) == _label_set(labels)
    assert labels.filter(pl.col("kind").is_in(DIFF_KINDS))["rule"].null_count() == \
        labels.filter(pl.col("kind").is_in(DIFF_KINDS)).height
    # Orders derive from Zuora: only D03 makes them stale, and exactly where it says so.
    order_rules = labels.filter((pl.col("object") == "orders")
                                & pl.col("rule").is_in(["D02", "D14"]))
    assert _order_drift(world) == {(r["key"], r["field"])
                                   for r in order_rules.iter_rows(named=True)}
    if sid != "D03":
        assert order_rules.height == 0


@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_deterministic_at_larger_n(sid: str) -> None:
    assert _run(sid)[1].equals(_run(sid)[1])


def test_scenarios_compose_on_one_world() -> None:
    world = fresh_world()
    for sid in sorted(SCENARIOS):
        SCENARIOS[sid](world, 5)
    labels = world.label_frame()
    assert set(labels["scenario"]) == set(SCENARIOS)
    assert _diff_set(world) == _label_set(labels)
    rules = labels.filter((pl.col("object") == "orders") & pl.col("rule").is_in(["D02", "D14"]))
    assert _order_drift(world) == {(r["key"], r["field"]) for r in rules.iter_rows(named=True)}


def test_d03_rollback_promotes_previous_version() -> None:
    world, labels, clean = _run("D03")
    now = dt.datetime.combine(world.as_of, dt.time(7))
    orphans = labels.filter((pl.col("object") == "Subscription")
                            & (pl.col("kind") == "orphaned_in_local"))["key"]
    names = labels.filter(pl.col("rule") == "D02")["key"].sort()
    assert orphans.len() == names.len() == N
    old = clean.zuora["Subscription"]
    gone = old.filter(pl.col("Id").is_in(orphans.implode()))
    assert sorted(gone["Name"]) == names.to_list()
    assert (gone["Version"] >= 2).all() and gone["IsLatestVersion"].all()
    # both variants: a cancellation order and another order rolled back
    assert set(gone["Status"]) == {"Active", "Cancelled"}
    z = world.zuora["Subscription"].filter(pl.col("Name").is_in(names.implode()))
    assert z.filter(pl.col("Id").is_in(orphans.implode())).height == 0
    latest = z.filter("IsLatestVersion")
    assert latest.height == N and latest["Name"].n_unique() == N
    assert latest.equals(z.filter(pl.col("Version") == pl.col("Version").max().over("Name")))
    assert (latest["Status"] == "Active").all()
    prev = old.filter(pl.col("Id").is_in(latest["Id"].implode())).select("Id", old="UpdatedDate")
    bumped = latest.join(prev, on="Id")
    assert (bumped["UpdatedDate"] > bumped["old"]).all() and (bumped["UpdatedDate"] <= now).all()
    # subtree gone in Zuora, kept locally; the local order still points at the deleted version
    for obj, table in (("RatePlan", "zuora_local_rate_plans"), ("RatePlanCharge", CHARGES),
                       ("RatePlanChargeTier", TIERS)):
        keys = labels.filter((pl.col("object") == obj)
                             & (pl.col("kind") == "orphaned_in_local"))["key"]
        assert keys.len() > 0
        assert world.zuora[obj].filter(pl.col("Id").is_in(keys.implode())).height == 0
        assert world.local[table].filter(pl.col("zuora_id").is_in(keys.implode())).height \
            == keys.len()
    orders = world.local["orders"].filter(pl.col("subscription_name").is_in(names.implode()))
    assert set(orders["subscription_id"]) == set(orphans)
    assert world.local["orders"].equals(clean.local["orders"])
    assert set(labels.filter(pl.col("object") == "orders")["action"]) == {"auto"}


def test_d04_variants_and_namespace_conflict() -> None:
    world, labels, clean = _run("D04")
    now = dt.datetime.combine(world.as_of, dt.time(7))
    fm = labels.filter(pl.col("kind") == "field_mismatch")
    changed = fm.filter(~pl.col("field").is_in(["UpdatedDate", "UpdatedById"]))
    # every touched version: exactly one business field changed, UpdatedDate bumped
    assert changed["key"].n_unique() == changed.height == N
    assert set(fm.filter(pl.col("field") == "UpdatedDate")["key"]) == set(changed["key"])
    old = clean.zuora["Subscription"].filter(pl.col("Id").is_in(changed["key"].implode()))
    new = world.zuora["Subscription"].filter(pl.col("Id").is_in(changed["key"].implode()))
    both = new.select("Id", "UpdatedDate").join(old.select("Id", old="UpdatedDate"), on="Id")
    assert (both["UpdatedDate"] > both["old"]).all() and (both["UpdatedDate"] <= now).all()
    ns = changed.filter(pl.col("field") == "GitLabNamespaceId__c")
    assert ns.height == N // 2
    rules = labels.filter(pl.col("kind") == "rule_violation")
    assert rules.height == N // 2
    assert set(rules["object"]) == {"orders"} and set(rules["rule"]) == {"D04"}
    assert set(rules["field"]) == {"gl_namespace_id"} and set(rules["action"]) == {"human"}
    moved = new.filter(pl.col("Id").is_in(ns["key"].implode()))
    assert moved["IsLatestVersion"].all()
    assert sorted(moved["Name"]) == sorted(rules["key"])
    orders = world.local["orders"].filter(pl.col("subscription_name").is_in(rules["key"].implode()))
    assert orders.join(moved.select(subscription_name="Name", z="GitLabNamespaceId__c"),
                       on="subscription_name").filter(
        pl.col("gl_namespace_id") == pl.col("z")).height == 0
    # the new namespace is nobody else's
    others = world.zuora["Subscription"].filter(~pl.col("Name").is_in(rules["key"].implode()))
    assert not set(moved["GitLabNamespaceId__c"]) & set(others["GitLabNamespaceId__c"])
    assert set(labels.filter(pl.col("kind") == "field_mismatch")["action"]) == {"auto"}


def test_d05_one_systematic_offset_of_one_day() -> None:
    seen = set()
    for seed in range(6):
        world, labels, clean = _run("D05", seed=seed)
        offsets = set()
        for obj, table in (("Subscription", SUBS), ("RatePlanCharge", CHARGES)):
            rows = labels.filter(pl.col("object") == obj)
            assert rows.height > 0, "both variants (version dates, segment dates) injected"
            col = {"TermStartDate": "term_start_date", "TermEndDate": "term_end_date",
                   "SubscriptionStartDate": "subscription_start_date",
                   "SubscriptionEndDate": "subscription_end_date",
                   "CancelledDate": "cancelled_date", "EffectiveStartDate": "effective_start_date",
                   "EffectiveEndDate": "effective_end_date"}
            for r in rows.iter_rows(named=True):
                c = col[r["field"]]
                a = world.local[table].filter(pl.col("zuora_id") == r["key"])[c].item()
                b = clean.local[table].filter(pl.col("zuora_id") == r["key"])[c].item()
                offsets.add((a - b).days)
        assert len(offsets) == 1 and offsets <= {-1, 1}
        seen |= offsets
        # charge segments shifted together stay contiguous within their version
        ch = world.local[CHARGES].sort("subscription_id", "charge_number", "segment")
        gaps = ch.with_columns(nxt=pl.col("effective_start_date").shift(-1).over(
            "subscription_id", "charge_number")).filter(
            pl.col("nxt").is_not_null() & (pl.col("nxt") != pl.col("effective_end_date")))
        assert gaps.height == 0
    assert seen == {-1, 1}


def test_d06_beyond_rounding() -> None:
    world, labels, _ = _run("D06")
    tiers = labels.filter(pl.col("object") == "RatePlanChargeTier")
    charges = labels.filter(pl.col("object") == "RatePlanCharge")
    assert tiers.height == N // 2 and charges.height == N // 2
    z = world.zuora["RatePlanChargeTier"].select("Id", z="Price")
    lo = world.local[TIERS].select(Id="zuora_id", lo="price")
    for r in z.join(lo, on="Id").filter(pl.col("Id").is_in(tiers["key"].implode())).iter_rows():
        assert Decimal(str(r[1])).quantize(Decimal("0.01")) - Decimal(str(r[2])) == \
            Decimal("0.01")
    col = {"Quantity": "quantity", "MRR": "mrr", "TCV": "tcv"}
    for r in charges.iter_rows(named=True):
        zv = world.zuora["RatePlanCharge"].filter(pl.col("Id") == r["key"])[r["field"]].item()
        lv = world.local[CHARGES].filter(pl.col("zuora_id") == r["key"])[col[r["field"]]].item()
        rounded = int(Decimal(str(zv)).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        assert rounded - lv == 1


def test_d07_local_active_zuora_cancelled() -> None:
    world, labels, _ = _run("D07")
    keys = labels.filter(pl.col("field") == "Status")["key"]
    assert keys.len() == N
    z = world.zuora["Subscription"].filter(pl.col("Id").is_in(keys.implode()))
    assert z["IsLatestVersion"].all() and (z["Status"] == "Cancelled").all()
    lo = world.local[SUBS].filter(pl.col("zuora_id").is_in(keys.implode()))
    assert (lo["status"] == "Active").all()
    missed = lo.filter(pl.col("cancelled_date").is_null())
    misread = lo.filter(pl.col("cancelled_date").is_not_null())
    assert missed.height == N - N // 2 and misread.height == N // 2
    assert (missed["subscription_end_date"].eq_missing(missed["term_end_date"])).all()
    assert (misread["cancelled_date"] > world.as_of).all()
    assert set(labels.filter(pl.col("key").is_in(misread["zuora_id"].implode()))["field"]) == \
        {"Status"}


def test_d08_two_last_segments_and_charge_without_tier() -> None:
    world, labels, clean = _run("D08")
    flipped = labels.filter(pl.col("field") == "IsLastSegment")["key"]
    rules = labels.filter(pl.col("kind") == "rule_violation")
    assert set(rules["rule"]) == {"D08"} and set(rules["object"]) == {"RatePlanCharge"}
    assert flipped.len() == N - N // 2
    ch = world.local[CHARGES]
    groups = ch.filter(pl.col("zuora_id").is_in(flipped.implode())).select(
        "subscription_id", "charge_number").join(ch, on=["subscription_id", "charge_number"])
    lasts = groups.group_by("subscription_id", "charge_number").agg(pl.col("is_last_segment").sum())
    assert (lasts["is_last_segment"] == 2).all() and lasts.height == flipped.len()
    lost = labels.filter(pl.col("kind") == "missing_in_local")["key"]
    assert lost.len() == N // 2
    parents = clean.local[TIERS].filter(pl.col("zuora_id").is_in(lost.implode()))[
        "rate_plan_charge_id"]
    assert world.local[TIERS].filter(pl.col("rate_plan_charge_id").is_in(
        parents.implode())).height == 0
    assert set(rules["key"]) == set(flipped) | set(parents)


def test_d09_two_local_rows_share_the_max_version() -> None:
    world, labels, _ = _run("D09")
    names = labels.filter(pl.col("rule") == "D09")["key"]
    assert names.len() == N
    assert set(labels.filter(pl.col("rule") == "D09")["object"]) == {"Subscription"}
    lo = world.local[SUBS].filter(pl.col("name").is_in(names.implode()))
    tops = lo.filter(pl.col("version") == pl.col("version").max().over("name"))
    assert tops.group_by("name").len()["len"].to_list() == [2] * N
    moved = labels.filter(pl.col("field") == "Version")["key"]
    assert moved.len() == N
    z = world.zuora["Subscription"].filter(pl.col("Id").is_in(moved.implode()))
    assert not z["IsLatestVersion"].any()


def _names_of(clean: World, labels: pl.DataFrame) -> set[str]:
    """The subscription name each label is about (Zuora ids resolved on the clean world)."""
    z = clean.zuora
    version = z["Subscription"].select(vid="Id", sub_name="Name")
    charge = z["RatePlanCharge"].select(cid="Id", vid="SubscriptionId").join(version, on="vid")
    owners = pl.concat([
        version.select(key="vid", sub_name="sub_name"),
        z["RatePlan"].select(key="Id", vid="SubscriptionId").join(version, on="vid")
        .select("key", "sub_name"),
        charge.select(key="cid", sub_name="sub_name"),
        z["RatePlanChargeTier"].select(key="Id", cid="RatePlanChargeId").join(charge, on="cid")
        .select("key", "sub_name"),
    ])
    by_id = labels.filter(pl.col("object") != "orders").join(owners, on="key", how="left")
    by_name = labels.filter(pl.col("object") == "orders").with_columns(sub_name="key")
    resolved = pl.concat([by_id.with_columns(
        sub_name=pl.coalesce("sub_name", pl.when(pl.col("rule") == "D09").then("key"))),
        by_name], how="diagonal_relaxed")
    assert resolved["sub_name"].null_count() == 0
    return set(resolved["sub_name"])


@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_touches_only_claimed_names(sid: str) -> None:
    world, labels, clean = _run(sid)
    names = _names_of(clean, labels)
    assert names <= world.claimed_names
    assert names >= world.claimed_names, "every claimed name got a fault"


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_small_n(sid: str, n: int) -> None:
    world, labels, _ = _run(sid, n=n)
    assert len(world.claimed_names) == n
    assert _diff_set(world) == _label_set(labels)
    assert (labels.height > 0) == (n > 0)

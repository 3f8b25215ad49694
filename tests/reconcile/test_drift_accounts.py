"""Account, people and catalog drift (D16–D23): what the generic scenario test cannot see.

The generic test (test_drift_scenarios.py) checks that each scenario changes exactly what its
labels say. Here: the Zuora side stays a valid Zuora tenant (Z13, Z16, referential integrity),
the people-side labels describe the local tables as they really are, the scenarios compose
(with each other and with D26) without disturbing each other's labels, and catalog scenarios
only run where the catalog lives.
"""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from sandbox.generate import drift
from sandbox.generate.catalog import CURRENCIES
from sandbox.generate.drift import accounts, catalog
from sandbox.generate.drift.base import World
from tests.support.oracle import diff
from tests.support.worlds import fresh_world

MINE = ("D16", "D17", "D18", "D19", "D20", "D21", "D22", "D23")
DIFF_KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch")


def _run(sid: str, n: int = 3) -> World:
    world = fresh_world()
    drift.SCENARIOS[sid](world, n)
    return world


def _email(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.to_lowercase()


def _labels(world: World, **eq: str) -> pl.DataFrame:
    lab = world.label_frame()
    for col, value in eq.items():
        lab = lab.filter(pl.col(col) == value)
    return lab


def _expected_vs_actual(world: World) -> tuple[Counter, Counter]:
    """Labels and oracle differences as multisets: one labelled twice, or found twice, differs."""
    labels = world.label_frame().filter(pl.col("kind").is_in(DIFF_KINDS))
    expected = Counter((r["object"], r["key"],
                        r["field"] if r["kind"] == "field_mismatch" else None, r["kind"])
                       for r in labels.iter_rows(named=True))
    actual = Counter((r["object"], r["key"], r["field"], r["kind"])
                     for r in diff(world.zuora, world.local).iter_rows(named=True))
    return expected, actual


def _assert_zuora_accounts_valid(world: World) -> None:
    """Z13: Bill-To and Sold-To are set and are contacts of the account itself."""
    acc, con = world.zuora["Account"], world.zuora["Contact"].select("Id", "AccountId")
    for fld in ("BillToId", "SoldToId"):
        assert acc[fld].null_count() == 0
        owner = acc.select("Id", fld).join(con, left_on=fld, right_on="Id", how="left")
        assert (owner["AccountId"] == owner["Id"]).all(), f"{fld} points outside its account"


def _assert_zuora_catalog_valid(world: World) -> None:
    """Z16 and parent links: every plan has a product, every charge a plan, every tier a
    charge; every charge has a tier in each currency; plan names unique within a product;
    effective windows non-empty."""
    z = world.zuora
    prod, prp, prpc, tier = (z["Product"], z["ProductRatePlan"], z["ProductRatePlanCharge"],
                             z["ProductRatePlanChargeTier"])
    assert prp["ProductId"].is_in(prod["Id"].implode()).all()
    assert prpc["ProductRatePlanId"].is_in(prp["Id"].implode()).all()
    assert tier["ProductRatePlanChargeId"].is_in(prpc["Id"].implode()).all()
    per_cur = tier.group_by("ProductRatePlanChargeId").agg(cur=pl.col("Currency").unique())
    have = {r["ProductRatePlanChargeId"]: set(r["cur"]) for r in per_cur.iter_rows(named=True)}
    for cid in prpc["Id"]:
        assert have.get(cid, set()) >= set(CURRENCIES), f"charge {cid} lacks a currency tier"
    assert prp.group_by("ProductId", "Name").len()["len"].max() == 1
    for frame in (prod, prp):
        assert (frame["EffectiveStartDate"] < frame["EffectiveEndDate"]).all()
    for name in ("Product", "ProductRatePlan", "ProductRatePlanCharge",
                 "ProductRatePlanChargeTier"):
        assert z[name]["Id"].n_unique() == z[name].height
        assert z[name]["Id"].str.len_chars().eq(32).all()
        for col in ("CreatedById", "CreatedDate", "UpdatedById", "UpdatedDate"):
            assert z[name][col].null_count() == 0, f"{name}.{col} has NULLs"


# -- composition ---------------------------------------------------------------------------------
def test_all_account_and_catalog_scenarios_compose_exactly() -> None:
    """Run D16–D23 and D26 on one world (as the generator does): the union of their labels is
    still exactly the oracle's difference, and no scenario loses its injections."""
    world = fresh_world()
    drift.apply(world, rate=0.02, d26_rate=0.02, only=(*MINE, "D26"))
    expected, actual = _expected_vs_actual(world)
    assert actual == expected
    assert set(world.label_frame()["scenario"]) == {*MINE, "D26"}
    _assert_zuora_accounts_valid(world)
    _assert_zuora_catalog_valid(world)


@pytest.mark.slow
@pytest.mark.parametrize("sid", MINE)
def test_many_instances_stay_exact(sid: str) -> None:
    """At a higher rate variants compete for the same pools; labels must stay exact."""
    world = _run(sid, 25)
    expected, actual = _expected_vs_actual(world)
    assert actual == expected
    assert world.label_frame().height > 0


def test_split_spreads_round_robin() -> None:
    assert accounts.split(7, 3) == [3, 2, 2]
    assert accounts.split(1, 4) == [1, 0, 0, 0]
    assert sum(accounts.split(100, 6)) == 100


# -- accounts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sid", ("D16", "D17", "D18", "D19", "D20", "D21"))
def test_account_scenarios_keep_zuora_valid(sid: str) -> None:
    _assert_zuora_accounts_valid(_run(sid))


def test_d16_orders_and_memberships_follow_the_missing_account() -> None:
    clean = fresh_world()
    world = _run("D16")
    missing = _labels(world, object="Account", kind="missing_in_local")["key"].to_list()
    assert missing
    old_ba = clean.local["billing_accounts"].filter(pl.col("zuora_account_id").is_in(missing))
    assert not world.local["billing_accounts"]["zuora_account_id"].is_in(missing).any()
    # every order of those accounts is labelled and has lost its billing account
    orders = world.local["orders"].filter(pl.col("zuora_account_id").is_in(missing)
                                          & ~pl.col("trial"))
    assert orders.height and orders["billing_account_id"].null_count() == orders.height
    assert set(orders["subscription_name"]) == set(
        _labels(world, object="orders", rule="D14")["key"])
    # no membership points at a deleted billing account; each lost one is labelled by e-mail
    mem = world.local["billing_account_memberships"]
    assert not mem["billing_account_id"].is_in(old_ba["id"].implode()).any()
    lost = (clean.local["billing_account_memberships"]
            .filter(pl.col("billing_account_id").is_in(old_ba["id"].implode()))
            .join(clean.local["customers"].select(customer_id="id", email="email"),
                  on="customer_id"))
    assert set(lost["email"]) == set(_labels(world, object="billing_account_memberships",
                                             rule="D19")["key"])
    assert world.local["customers"].equals(clean.local["customers"])  # customers are kept


def test_d17_orphans_are_unknown_to_zuora_and_referenced_ones_are_human() -> None:
    world = _run("D17", 4)
    zuora_ids = set(world.zuora["Account"]["Id"])
    orphans = _labels(world, object="Account", kind="orphaned_in_local")
    assert orphans.height == 4 and not (set(orphans["key"]) & zuora_ids)
    ba = world.local["billing_accounts"].filter(pl.col("zuora_account_id").is_in(
        orphans["key"].implode()))
    mem = world.local["billing_account_memberships"].filter(
        pl.col("billing_account_id").is_in(ba["id"].implode()))
    referenced = set(ba.filter(pl.col("id").is_in(mem["billing_account_id"].implode()))[
        "zuora_account_id"])
    assert referenced and referenced != set(ba["zuora_account_id"])  # both variants
    for r in orphans.iter_rows(named=True):
        assert r["action"] == ("human" if r["key"] in referenced else "auto")
    # the referencing customer's e-mail is the orphan's contact e-mail (not a D20 case)
    people = (mem.join(world.local["customers"].select(customer_id="id", email="email"),
                       on="customer_id")
              .join(world.local["billing_account_contacts"].select(
                  billing_account_id="billing_account_id", cemail=_email("work_email")),
                  on="billing_account_id"))
    assert (people["email"] == people["cemail"]).all()
    assert set(people["email"]) == set(_labels(world, rule="D17")["key"])


def test_d18_references_move_within_the_account_and_scope_labels_match() -> None:
    clean, world = fresh_world(), _run("D18", 6)
    changed = _labels(world, object="Account", kind="field_mismatch")
    assert set(changed["field"]) == {"BillToId", "SoldToId"}
    before = clean.zuora["Account"].filter(pl.col("Id").is_in(changed["key"].implode()))
    after = world.zuora["Account"].filter(pl.col("Id").is_in(changed["key"].implode()))
    assert (after.sort("Id")["UpdatedDate"] > before.sort("Id")["UpdatedDate"]).all()
    # a Sold-To moved to a never-cached contact whose e-mail has no customer → D19 label
    for r in changed.filter(pl.col("field") == "SoldToId").iter_rows(named=True):
        sold = after.filter(pl.col("Id") == r["key"])["SoldToId"].item()
        email = world.zuora["Contact"].filter(pl.col("Id") == sold).select(
            _email("WorkEmail")).item()
        assert email not in set(world.local["customers"]["email"])
        assert email in set(_labels(world, object="customers", rule="D19")["key"])


def test_d19_people_labels_describe_the_local_tables() -> None:
    world = _run("D19", 6)
    customers = set(world.local["customers"].select(_email("email"))["email"])
    created = _labels(world, object="customers", rule="D19")["key"].to_list()
    assert created and not (set(created) & customers)
    known = _labels(world, object="billing_account_memberships", rule="D19")["key"].to_list()
    assert known and set(known) <= customers
    previous = _labels(world, object="billing_account_memberships", rule="D20")
    assert previous.height == len(created) + len(known)
    assert set(previous["action"]) == {"human"}
    # the previous Sold-To e-mail is on no Bill-To/Sold-To contact of any account any more
    acc = world.zuora["Account"]
    scoped = world.zuora["Contact"].filter(pl.col("Id").is_in(
        pl.concat([acc["BillToId"], acc["SoldToId"]]).implode()))
    assert not (set(previous["key"]) & set(scoped.select(_email("WorkEmail"))["WorkEmail"]))
    # e-mail changes are Zuora-side; field labels only on in-scope contacts
    assert set(_labels(world, object="Contact")["key"]) <= set(scoped["Id"])


def test_d20_member_email_matches_none_of_the_accounts_contacts() -> None:
    clean, world = fresh_world(), _run("D20", 4)
    lab = _labels(world, rule="D20")
    assert lab.height == 4 and set(lab["action"]) == {"human"}
    new = world.local["billing_account_memberships"].filter(
        ~pl.col("id").is_in(clean.local["billing_account_memberships"]["id"].implode()))
    assert new.height == 4
    rows = (new.join(world.local["customers"].select(customer_id="id", email="email"),
                     on="customer_id")
            .join(world.local["billing_accounts"].select(billing_account_id="id",
                                                         zid="zuora_account_id"),
                  on="billing_account_id"))
    assert set(rows["email"]) == set(lab["key"])
    contacts = world.zuora["Contact"].select("AccountId", e=_email("WorkEmail"))
    for r in rows.iter_rows(named=True):
        on_account = set(contacts.filter(pl.col("AccountId") == r["zid"])["e"])
        assert r["email"] not in on_account
        elsewhere = set(contacts.filter(pl.col("e") == r["email"])["AccountId"])
        assert elsewhere and r["zid"] not in elsewhere


def test_d21_changes_only_the_local_side() -> None:
    clean, world = fresh_world(), _run("D21", 10)
    assert world.zuora["Account"].equals(clean.zuora["Account"])
    assert len(set(_labels(world)["field"])) > 1


# -- catalog -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sid", ("D22", "D23"))
def test_catalog_scenarios_do_nothing_without_the_catalog(sid: str) -> None:
    world = fresh_world()
    world.has_catalog = False
    zuora, local = dict(world.zuora), dict(world.local)
    drift.SCENARIOS[sid](world, 3)
    assert world.label_frame().height == 0
    assert all(world.zuora[k] is v for k, v in zuora.items())
    assert all(world.local[k] is v for k, v in local.items())
    # a chunk without the catalog tables behaves the same
    world = fresh_world()
    world.local = {k: v for k, v in world.local.items() if "product" not in k}
    drift.SCENARIOS[sid](world, 3)
    assert world.label_frame().height == 0


def test_d22_zuora_catalog_stays_valid_and_covers_every_variant() -> None:
    world = _run("D22")
    _assert_zuora_catalog_valid(world)
    lab = world.label_frame()
    fields = set(lab.filter(pl.col("kind") == "field_mismatch")["field"])
    assert {"Price", "EffectiveEndDate", "UpdatedDate"} <= fields
    new_plans = lab.filter((pl.col("object") == "ProductRatePlan")
                           & (pl.col("kind") == "missing_in_local"))["key"]
    plans = world.zuora["ProductRatePlan"].filter(pl.col("Id").is_in(new_plans.implode()))
    assert plans["WebDirect__c"].null_count() == 1 and plans.height == 2
    # the unclassified plan: its product has no classification and it carries the human rule
    odd = plans.filter(pl.col("WebDirect__c").is_null())
    product = world.zuora["Product"].filter(pl.col("Id") == odd["ProductId"].item())
    assert product["Tier__c"].is_null().all() and product["DeploymentType__c"].is_null().all()
    rule = lab.filter(pl.col("rule") == "D22")
    assert rule["key"].to_list() == odd["Id"].to_list() and rule["action"].to_list() == ["human"]
    # retired plans end in the past; repriced tiers stay exact cents
    retired = lab.filter(pl.col("field") == "EffectiveEndDate")["key"]
    ends = world.zuora["ProductRatePlan"].filter(pl.col("Id").is_in(retired.implode()))
    assert (ends["EffectiveEndDate"] < world.as_of).all()
    repriced = world.zuora["ProductRatePlanChargeTier"].filter(pl.col("Id").is_in(
        lab.filter(pl.col("field") == "Price")["key"].implode()))
    assert all(p == p.quantize(type(p)("0.01")) for p in repriced["Price"])


def test_d22_and_d23_never_touch_the_same_plan() -> None:
    world = fresh_world()
    catalog.d22_product_catalog_drift(world, 40)
    touched = set(world.label_frame()["key"])
    catalog.d23_catalog_row_deleted_but_referenced(world, 40)
    deleted = set(_labels(world, scenario="D23")["key"])
    assert deleted and not (deleted & touched)
    expected, actual = _expected_vs_actual(world)
    assert actual == expected


def test_d23_deleted_plan_is_still_referenced_and_its_users_are_claimed() -> None:
    world = _run("D23")
    _assert_zuora_catalog_valid(world)
    rule = _labels(world, rule="D23")
    assert rule.height >= 1 and set(rule["action"]) == {"human"}
    assert set(_labels(world, scenario="D23")["action"]) == {"human"}
    for prp in rule["key"]:
        assert prp not in set(world.zuora["ProductRatePlan"]["Id"])
        cached = world.local["zuora_local_product_rate_plans"].filter(pl.col("zuora_id") == prp)
        assert cached.height == 1 and cached["effective_end_date"].item() < world.as_of
        users = world.local["zuora_local_rate_plans"].filter(
            pl.col("product_rate_plan_id") == prp)["subscription_id"]
        names = world.local["zuora_local_subscriptions"].filter(
            pl.col("zuora_id").is_in(users.implode()))["name"]
        assert names.len() and set(names) <= world.claimed_names

"""The orders scenarios (D02, D10–D15, D24, D25): beyond "changes exactly its labels", each
labelled order finding is really there, nothing unlabelled is, and the keeper / trial rules
hold.

``order_findings`` is an independent, deliberately plain statement of the order rules over a
world (derived columns from ``core.catalog.orders``): it is what a correct reconciler
reports, one finding per cause.
"""

from __future__ import annotations

import re
from collections import Counter

import polars as pl
import pytest

from core.catalog.objects import ORDER_METADATA
from core.catalog.orders import DERIVED_COLUMNS
from sandbox.generate.drift.base import World
from sandbox.generate.drift.orders import SCENARIOS
from tests.support.oracle import diff
from tests.support.worlds import derive_orders, fresh_world

DIFF_KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch")


def _blank(col: str) -> pl.Expr:
    return pl.when(pl.col(col).str.strip_chars() == "").then(None).otherwise(pl.col(col))


def order_findings(world: World) -> set[tuple[str, str, str | None]]:
    """(rule, key, field) of every order finding in ``world``."""
    orders = world.local["orders"].filter(~pl.col("trial"))
    subs = world.zuora["Subscription"]
    derived = derive_orders(world.zuora, world.local["billing_accounts"]).with_columns(
        namespace_id=_blank("namespace_id"), namespace_name=_blank("namespace_name"))
    out: set[tuple[str, str, str | None]] = set()
    # D11: several non-trial orders for one name; nothing else is reported for that name.
    dup = orders.group_by("subscription_name").len().filter(pl.col("len") > 1)
    out |= {("D11", n, None) for n in dup["subscription_name"]}
    single = orders.filter(~pl.col("subscription_name").is_in(dup["subscription_name"].implode()))
    # D15: name unknown to Zuora.
    unknown = single.filter(~pl.col("subscription_name").is_in(subs["Name"].implode()))
    out |= {("D15", n, None) for n in unknown["subscription_name"]}
    # D13: an Active latest version without any order.
    missing = derived.filter((pl.col("latest_status") == "Active")
                             & ~pl.col("subscription_name").is_in(
                                 orders["subscription_name"].implode()))
    out |= {("D13", n, None) for n in missing["subscription_name"]}
    j = single.join(derived, on="subscription_name", suffix="_z")
    older = subs.select(subscription_name="Name", old_id="Id", old_acct="AccountId")
    for col in DERIVED_COLUMNS:
        bad = j.filter(pl.col(col).ne_missing(pl.col(f"{col}_z")))
        for r in bad.iter_rows(named=True):
            name = r["subscription_name"]
            rule = "D14"
            if col == "subscription_id" and r[col] is not None and older.filter(
                    (pl.col("subscription_name") == name) & (pl.col("old_id") == r[col])).height:
                rule = "D02"
            elif col in ("zuora_account_id", "billing_account_id"):
                latest = subs.filter(pl.col("Name") == name).sort("Version")[-1]
                before = set(older.filter(pl.col("subscription_name") == name)["old_acct"])
                acct = r["zuora_account_id"]
                if acct == latest["InvoiceOwnerId"].item() and acct != latest["AccountId"].item():
                    rule = "D24"
                elif acct in before - {latest["AccountId"].item()}:
                    rule = "D10"
            out.add((rule, name, col))
    # D25: name stale against Zuora (pushed from GitLab.com); namespace on a no-namespace sub.
    stale = j.filter((pl.col("gl_namespace_id") == pl.col("namespace_id"))
                     & pl.col("gl_namespace_name").ne_missing(pl.col("namespace_name")))
    out |= {("D25", n, "gl_namespace_name") for n in stale["subscription_name"]}
    sm = j.filter(pl.col("gl_namespace_id").is_not_null() & pl.col("namespace_id").is_null())
    out |= {("D25", n, "gl_namespace_id") for n in sm["subscription_name"]}
    # D12: several active subscriptions' orders on one namespace.
    active = j.filter((pl.col("latest_status") == "Active") & pl.col("gl_namespace_id").is_not_null())
    shared = active.group_by("gl_namespace_id").agg(pl.col("subscription_name").n_unique().alias("k"))
    out |= {("D12", ns, None) for ns in shared.filter(pl.col("k") > 1)["gl_namespace_id"]}
    return out


def labelled(world: World) -> set[tuple[str, str, str | None]]:
    """The order labels as (rule, key, field); each at most once (one label, one finding)."""
    lab = world.label_frame().filter(pl.col("object") == "orders")
    rows = Counter((r["rule"], r["key"], r["field"]) for r in lab.iter_rows(named=True))
    twice = {row: n for row, n in rows.items() if n > 1}
    assert not twice, f"order labels written more than once: {twice}"
    return set(rows)


def test_clean_world_has_no_order_findings() -> None:
    assert order_findings(fresh_world()) == set()


@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_order_findings_are_exactly_the_labels(sid: str, n: int) -> None:
    world = fresh_world()
    trials = world.local["orders"].filter(pl.col("trial"))
    SCENARIOS[sid](world, n)
    labels = world.label_frame()
    assert labels.height > 0
    assert set(labels.filter(pl.col("object") == "orders")["rule"]) == {sid}
    assert order_findings(world) == labelled(world)
    assert world.local["orders"].filter(pl.col("trial")).equals(trials), "trial orders touched"
    assert world.local["orders"]["id"].is_unique().all()
    assert world.local["orders"].schema == fresh_world().local["orders"].schema


def test_all_order_scenarios_together() -> None:
    """As ``drift.apply`` runs them: one world, in order; claims keep them apart."""
    world = fresh_world()
    for sid in sorted(SCENARIOS):
        SCENARIOS[sid](world, 4)
    assert order_findings(world) == labelled(world)
    labels = world.label_frame()
    # multisets: a difference labelled twice, or found twice, is a mismatch
    expected = Counter((r["object"], r["key"],
                        r["field"] if r["kind"] == "field_mismatch" else None, r["kind"])
                       for r in labels.filter(pl.col("kind").is_in(DIFF_KINDS))
                       .iter_rows(named=True))
    actual = Counter((r["object"], r["key"], r["field"], r["kind"])
                     for r in diff(world.zuora, world.local).iter_rows(named=True))
    assert actual == expected
    assert labels.select("scenario", "object", "key", "field").is_unique().all()


def test_d11_keeper_matches_zuora_and_rule() -> None:
    world = fresh_world()
    SCENARIOS["D11"](world, 6)
    labels = world.label_frame()
    assert set(labels["action"]) == {"auto", "human"}
    latest = world.latest().select(subscription_name="Name", z_account="AccountId")
    orders = world.local["orders"].filter(~pl.col("trial")).join(latest, on="subscription_name")
    for r in labels.iter_rows(named=True):
        assert (r["kind"], r["rule"], r["object"], r["field"]) == (
            "duplicate_local", "D11", "orders", None)
        rows = orders.filter(pl.col("subscription_name") == r["key"]).sort("id")
        assert rows.height == 2
        keeper = int(re.match(r"keep order (\d+)", r["detail"]).group(1))
        assert keeper in rows["id"].to_list()
        kept = rows.filter(pl.col("id") == keeper)
        assert kept["zuora_account_id"].item() == kept["z_account"].item()
        assert kept["billing_account_id"].item() is not None
        # the duplicate is the newer row
        assert rows["created_at"][1] > rows["created_at"][0]
        matching = rows.filter(pl.col("zuora_account_id") == pl.col("z_account")).height
        conflict = any(rows[c].drop_nulls().n_unique() > 1 for c in ORDER_METADATA
                       if c in rows.columns and c != "reconciliation_accepted")
        assert r["action"] == ("auto" if matching == 1 and not conflict else "human")
        if r["action"] == "human":
            assert rows["gl_namespace_id"].drop_nulls().n_unique() == 2
            assert kept["gl_namespace_id"].item() == world.latest().filter(
                pl.col("Name") == r["key"])["GitLabNamespaceId__c"].item()


def test_d11_transfer_duplicate_follows_the_documented_mechanism() -> None:
    """Old order stays on the pre-transfer account; the callout's new order has the new one."""
    world = fresh_world()
    SCENARIOS["D11"](world, 1)
    name = world.label_frame()["key"].item()
    subs = world.zuora["Subscription"].filter(pl.col("Name") == name)
    assert subs["AccountId"].n_unique() > 1
    rows = world.local["orders"].filter(pl.col("subscription_name") == name).sort("id")
    assert rows["zuora_account_id"][0] in set(subs["AccountId"]) - {
        subs.sort("Version")["AccountId"][-1]}
    assert rows["zuora_account_id"][1] == subs.sort("Version")["AccountId"][-1]


def test_d13_deletes_exactly_the_labelled_orders() -> None:
    world = fresh_world()
    before = world.local["orders"]
    SCENARIOS["D13"](world, 5)
    keys = set(world.label_frame()["key"])
    gone = set(before["subscription_name"].drop_nulls()) - set(
        world.local["orders"]["subscription_name"].drop_nulls())
    assert gone == keys and len(keys) == 5
    assert before.height - world.local["orders"].height == 5
    status = world.latest().filter(pl.col("Name").is_in(keys))["Status"]
    assert set(status) == {"Active"}


def test_d15_deletes_in_zuora_and_never_touches_trials() -> None:
    world = fresh_world()
    before = world.local["orders"]
    SCENARIOS["D15"](world, 6)
    labels = world.label_frame()
    assert set(labels["action"]) == {"human"}
    names = labels.filter(pl.col("object") == "orders")["key"].to_list()
    assert len(names) == 6
    assert not set(names) & set(world.zuora["Subscription"]["Name"])
    assert before.filter(pl.col("trial")).equals(world.local["orders"].filter(pl.col("trial")))
    assert world.local["orders"].filter(pl.col("subscription_name").is_in(names))[
        "trial"].to_list() == [False] * 6
    # deleted subscriptions: every local version of the name is labelled orphaned
    orphans = set(labels.filter(pl.col("object") == "Subscription")["key"])
    local = world.local["zuora_local_subscriptions"].filter(pl.col("name").is_in(names))
    assert orphans == set(local["zuora_id"]) and orphans


def test_d12_both_sides_agree_on_the_shared_namespace() -> None:
    world = fresh_world()
    SCENARIOS["D12"](world, 3)
    for ns in world.label_frame()["key"]:
        latest = world.latest().filter(pl.col("GitLabNamespaceId__c") == ns)
        assert latest.height == 2 and set(latest["Status"]) == {"Active"}
        every = world.zuora["Subscription"].filter(pl.col("Name").is_in(latest["Name"].implode()))
        assert set(every["GitLabNamespaceId__c"]) == {ns}
        assert world.local["orders"].filter(pl.col("gl_namespace_id") == ns).height == 2

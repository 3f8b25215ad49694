"""Several active orders on one namespace (issue 16, seed 003 "Support Multiple Active Orders
on a Namespace"): hand-valued findings and planned operations for a base plan with add-ons,
a renewal booked as a new subscription, a moved subscription and the one true conflict.

Rules (domain.md §5): an order per paid subscription (L4, D13); a namespace may carry several
orders — a base plan and add-ons bought as their own subscriptions, ended subscriptions — and
D12 is only two *active base* subscriptions on one namespace (base vs add-on from the product's
``Category``); the namespace Zuora's latest version names is never lost: a created order
carries it, an order that lost it gets it back (D13), and only a link that would put two
active base subscriptions on one namespace waits for a person. Every expected value below is
a literal.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from repair.steps import create_orders_sql, order_columns_sql
from tests.reconcile.test_ground_truth_rules import ORDERS_ZUORA, _run, _sub, _world

_BASE = "prp_base"  # Base Products (ORDERS_ZUORA's catalog)
_ADDON = "prp_addon"  # Add On Services
_NEW = {"zuora_account_id": "acc_new", "billing_account_id": 2,
        "start_date": dt.date(2026, 1, 1), "end_date": dt.date(2027, 1, 1)}

SUBS = [
    # 7100: a base plan with its order, two add-on subscriptions (one without an order, one
    # whose order lost the namespace)
    _sub("s50v1", "A-S50", 1, "acc_new", ns="7100", ns_name="grp-71"),
    _sub("s51v1", "A-S51", 1, "acc_new", ns="7100", ns_name="grp-71"),
    _sub("s52v1", "A-S52", 1, "acc_new", ns="7100", ns_name="grp-71"),
    # 7200: renewal booked as a new subscription once the old one was cancelled
    _sub("s53v1", "A-S53", 1, "acc_new", status="Cancelled", ns="7200", ns_name="grp-72"),
    _sub("s54v1", "A-S54", 1, "acc_new", ns="7200", ns_name="grp-72"),
    # 7300: a subscription moved to another account (owner transfer in v2) and an add-on
    _sub("s55v1", "A-S55", 1, "acc_old", status="Expired", ns="7300", ns_name="grp-73"),
    _sub("s55v2", "A-S55", 2, "acc_new", ns="7300", ns_name="grp-73"),
    _sub("s56v1", "A-S56", 1, "acc_new", ns="7300", ns_name="grp-73"),
    # 7400: two active base subscriptions (the true conflict), one without an order
    _sub("s57v1", "A-S57", 1, "acc_new", ns="7400", ns_name="grp-74"),
    _sub("s58v1", "A-S58", 1, "acc_new", ns="7400", ns_name="grp-74"),
    # 7500: an active base order lost its namespace, which another active base order holds
    _sub("s59v1", "A-S59", 1, "acc_new", ns="7500", ns_name="grp-75"),
    _sub("s60v1", "A-S60", 1, "acc_new", ns="7500", ns_name="grp-75"),
]
PLANS = {"s50v1": _BASE, "s51v1": _ADDON, "s52v1": _ADDON, "s53v1": _BASE, "s54v1": _BASE,
         "s55v1": _BASE, "s55v2": _BASE, "s56v1": _ADDON, "s57v1": _BASE, "s58v1": _BASE,
         "s59v1": _BASE, "s60v1": _BASE}
ORDERS = [
    {"id": 150, "subscription_name": "A-S50", **_NEW, "subscription_id": "s50v1",
     "product_rate_plan_id": _BASE, "gl_namespace_id": "7100", "gl_namespace_name": "grp-71"},
    {"id": 152, "subscription_name": "A-S52", **_NEW, "subscription_id": "s52v1"},
    {"id": 153, "subscription_name": "A-S53", **_NEW, "end_date": None, "subscription_id": "s53v1",
     "product_rate_plan_id": _BASE, "gl_namespace_id": "7200", "gl_namespace_name": "grp-72"},
    {"id": 155, "subscription_name": "A-S55", "zuora_account_id": "acc_old",
     "billing_account_id": 1, "subscription_id": "s55v2", "product_rate_plan_id": _BASE,
     "start_date": dt.date(2026, 1, 1), "end_date": dt.date(2027, 1, 1),
     "gl_namespace_id": "7300", "gl_namespace_name": "grp-73"},
    {"id": 157, "subscription_name": "A-S57", **_NEW, "subscription_id": "s57v1",
     "product_rate_plan_id": _BASE, "gl_namespace_id": "7400", "gl_namespace_name": "grp-74"},
    {"id": 159, "subscription_name": "A-S59", **_NEW, "subscription_id": "s59v1",
     "product_rate_plan_id": _BASE},
    {"id": 160, "subscription_name": "A-S60", **_NEW, "subscription_id": "s60v1",
     "product_rate_plan_id": _BASE, "gl_namespace_id": "7500", "gl_namespace_name": "grp-75"},
]
NAMES = {s[1] for s in SUBS}


@pytest.fixture(scope="module")
def world() -> duckdb.DuckDBPyConnection:
    rows = {k: list(v) for k, v in ORDERS_ZUORA.items()
            if k in ("zuora.Product", "zuora.ProductRatePlan", "local.billing_accounts")}
    rows["zuora.Subscription"] = SUBS
    rows["zuora.RatePlan"] = [(f"rp_{s}", s, p, None) for s, p in PLANS.items()]
    con = _world(rows, ORDERS)
    yield con
    con.close()


@pytest.fixture(scope="module")
def findings(world: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], dict]:
    return _run(world)


def test_only_two_active_base_subscriptions_conflict(findings) -> None:
    """Every finding, hand-valued: the base plan and its add-ons (7100), the renewal (7200)
    and the moved subscription with its add-on (7300) raise no D12; 7400 and 7500 do."""
    assert {k: f["action"] for k, f in findings.items()} == {
        ("D13", "A-S51", None): "auto",            # add-on without an order: created
        ("D13", "A-S52", "gl_namespace_id"): "auto",  # add-on order lost 7100: linked back
        ("D13", "A-S54", None): "auto",            # renewal's new subscription: created
        ("D10", "A-S55", "zuora_account_id"): "auto",  # moved: re-pointed, namespace kept
        ("D10", "A-S55", "billing_account_id"): "auto",
        ("D13", "A-S56", None): "auto",            # add-on of the moved subscription
        ("D13", "A-S58", None): "auto",            # created; its namespace waits (D12)
        ("D13", "A-S59", "gl_namespace_id"): "human",  # 7500 is held by A-S60's order
        ("D12", "7400", None): "human",
        ("D12", "7500", None): "human",
    }
    assert json.loads(findings[("D12", "7400", None)]["evidence"]) == {
        "subscriptions": ["A-S57", "A-S58"]}
    assert json.loads(findings[("D12", "7500", None)]["evidence"]) == {
        "subscriptions": ["A-S59", "A-S60"]}
    assert findings[("D13", "A-S52", "gl_namespace_id")]["explanation"] == (
        "order 152 of A-S52 has no namespace; the latest version names namespace 7100 "
        "(grp-71): link it")
    assert findings[("D13", "A-S58", None)]["explanation"].endswith(
        "; namespace 7400 is held by another active base subscription (D12): a person links it")


def test_created_and_relinked_orders_carry_the_namespace(world, findings) -> None:
    """The repair's order step: each created order carries its latest version's namespace
    except where two active base subscriptions would share it; the lost one is linked back
    with its name."""
    world.execute("CREATE OR REPLACE TEMP TABLE auto AS SELECT *, md5(concat_ws('|', rule, "
                  "key, coalesce(field, ''))) AS fingerprint FROM findings "
                  "WHERE action = 'auto'")
    created = world.execute(f"SELECT after FROM ({create_orders_sql('2026-12-01 06:00:00')})"
                            ).fetchall()
    got = {a["subscription_name"]: (a["gl_namespace_id"], a["gl_namespace_name"])
           for a in (json.loads(r[0]) for r in created)}
    assert got == {"A-S51": ("7100", "grp-71"), "A-S54": ("7200", "grp-72"),
                   "A-S56": ("7300", "grp-73"), "A-S58": (None, None)}
    step = order_columns_sql("orders", ("gl_namespace_id",))
    linked = world.execute(f"SELECT key, before, after FROM ({step})").fetchall()
    assert [(json.loads(k), json.loads(b), json.loads(a)) for k, b, a in linked] == [
        ({"id": 152}, {"gl_namespace_id": None, "gl_namespace_name": None},
         {"gl_namespace_id": "7100", "gl_namespace_name": "grp-71"})]

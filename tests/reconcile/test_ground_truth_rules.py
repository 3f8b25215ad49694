"""Hand-valued ground truth for the cross-object rules (``reconcile.rules``).

The label tests compare findings only on (object, key, kind, rule, field, action); what a
person acts on is also *which* D11 row is kept and why, the evidence, and the explanation's
facts. Each test below builds a tiny literal world (the relations the rules read: ``zuora.*``,
``local.*``, ``derive.*``), runs the rules exactly as the engine does (``prepare``, the
``PREPARE_SQL``, ``INSERT INTO findings``) and compares with literal expected values written
from domain.md §5 and the seeds, never computed by the code under test.

Rules cited (domain.md §5 unless said otherwise):

* D11  duplicate non-trial orders: keep the row whose ``zuora_account_id`` is Zuora's latest
       ``AccountId`` (and whose billing account maps to it); else the row carrying GitLab
       metadata; tie-break oldest ``created_at``, lowest id. Auto only when exactly one row
       matches and no metadata conflicts. A ``false`` boolean marker is the column default,
       not metadata (seed 003: ``reconciliation_accepted`` defaults to false).
* D02  an order on an older version is re-pointed to the latest (D14 when it holds no
       version of the name at all).
* D04  the order's namespace differs from GitLabNamespaceId__c: a person decides.
* D10  the order is still on a previous owner (per-version AccountId): re-point.
* D24  the order carries the invoice owner, not the subscription owner AccountId: re-point.
* D12  ≥2 active base subscriptions on one namespace: report only.
* D13  paid latest version without an order: create it; link the namespace only when no
       other order holds it.
* D14  nil/stale Zuora-derived order columns: recompute from the latest version.
* D15  non-trial order on a name unknown to Zuora; trial orders are excluded.
* D25  namespace metadata drift (a blank custom field is no name: D26, "" equals NULL).
* D08  local segment corruption, checked only under a differing subtree (L3).
* D09  several local versions carry the highest version number (L2).
* D17  membership to a billing account whose Zuora account does not exist.
* D19  the Sold-To e-mail's customer lacks a membership (create the billing account first).
* D20  membership whose customer matches neither the Bill-To nor the Sold-To e-mail.
* D23  local rate plans on a plan absent from the catalog export: report, keep the rows.
* D22  a current plan CustomersDot cannot classify (seed 004: Category, Tier__c,
       DeploymentType__c, WebDirect__c; a base product has exactly one tier and deployment).
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from core.catalog import LOCAL_BY_NAME
from core.localdb.schema import local_table_ddl
from reconcile.findings import FINDINGS_DDL, insert
from reconcile.rules import PREPARE_SQL, RULES, accounts, catalog, prepare, subscriptions

D = dt.date
T = dt.datetime
AS_OF = "2026-12-01 06:00:00"
UPDATED = T(2026, 6, 1, 12)  # a Zuora UpdatedDate well before AS_OF

# the relations the rules read, with only the columns they read (orders: the real table)
DDL = {
    "zuora.Subscription": "Id VARCHAR, Name VARCHAR, Version BIGINT, AccountId VARCHAR, "
                          "InvoiceOwnerId VARCHAR, Status VARCHAR, TermStartDate DATE, "
                          "TermEndDate DATE, CancelledDate DATE, GitLabNamespaceId__c VARCHAR, "
                          "GitLabNamespaceName__c VARCHAR, UpdatedDate TIMESTAMP",
    "zuora.RatePlan": "Id VARCHAR, SubscriptionId VARCHAR, ProductRatePlanId VARCHAR, "
                      "AmendmentType VARCHAR",
    "zuora.RatePlanCharge": "Id VARCHAR, RatePlanId VARCHAR, ChargeNumber VARCHAR, "
                            "ChargeModel VARCHAR, Quantity DECIMAL(38,9), IsLastSegment BOOLEAN",
    "zuora.Product": "Id VARCHAR, Name VARCHAR, Category VARCHAR, Tier__c VARCHAR, "
                     "DeploymentType__c VARCHAR",
    "zuora.ProductRatePlan": "Id VARCHAR, ProductId VARCHAR, Name VARCHAR, WebDirect__c BOOLEAN, "
                             "EffectiveEndDate DATE, UpdatedDate TIMESTAMP",
    "zuora.Account": "Id VARCHAR, SoldToId VARCHAR, BillToId VARCHAR, UpdatedDate TIMESTAMP",
    "zuora.Contact": "Id VARCHAR, WorkEmail VARCHAR, UpdatedDate TIMESTAMP",
    "local.billing_accounts": "id BIGINT, zuora_account_id VARCHAR",
    "local.zuora_local_subscriptions": "zuora_id VARCHAR, name VARCHAR, version INTEGER",
    "local.zuora_local_rate_plans": "zuora_id VARCHAR, subscription_id VARCHAR, "
                                    "product_rate_plan_id VARCHAR",
    "local.zuora_local_product_rate_plans": "zuora_id VARCHAR, name VARCHAR",
    "local.customers": "id BIGINT, email VARCHAR",
    "local.billing_account_memberships": "id BIGINT, customer_id BIGINT, "
                                         "billing_account_id BIGINT",
    "local.zuora_local_rate_plan_charges": "zuora_id VARCHAR, subscription_id VARCHAR, "
                                           "charge_number VARCHAR, segment INTEGER, "
                                           "is_last_segment BOOLEAN, effective_start_date DATE, "
                                           "effective_end_date DATE",
    "local.zuora_local_rate_plan_charge_tiers": "zuora_id VARCHAR, rate_plan_charge_id VARCHAR",
}


def _world(rows: dict[str, list[tuple]], orders: list[dict] = ()) -> duckdb.DuckDBPyConnection:
    """A connection holding ``rows`` (table -> literal tuples in DDL order) and ``orders``
    (dicts by column; unset columns take the table default), prepared as the engine does."""
    con = duckdb.connect()
    for schema in ("zuora", "local", "derive"):
        con.execute(f"CREATE SCHEMA {schema}")
    for table, ddl in DDL.items():
        con.execute(f"CREATE TABLE {table} ({ddl})")
        if rows.get(table):
            marks = ", ".join("?" * len(rows[table][0]))
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
    con.execute(local_table_ddl(LOCAL_BY_NAME["orders"], "duckdb")
                .replace("IF NOT EXISTS orders", "local.orders"))
    for o in orders:
        cols = ", ".join(o)
        con.execute(f"INSERT INTO local.orders ({cols}) VALUES "
                    f"({', '.join('?' * len(o))})", list(o.values()))
    for obj in ("Product", "ProductRatePlan"):
        con.execute(f'CREATE VIEW derive."{obj}" AS SELECT * FROM zuora."{obj}"')
    con.execute("SET search_path = 'zuora,local'")
    con.execute(FINDINGS_DDL)
    prepare(con, AS_OF)
    for sql in PREPARE_SQL:
        con.execute(sql)
    return con


def _run(con: duckdb.DuckDBPyConnection, rules=RULES) -> dict[tuple[str, str, str], dict]:
    """Run ``rules`` into ``findings``; return them by (rule, key, field), failing on a
    finding emitted twice."""
    for rule in rules:
        con.execute(insert(rule.sql()))
    cur = con.execute("SELECT * FROM findings WHERE rule IS NOT NULL")
    names = [d[0] for d in cur.description]
    out: dict[tuple[str, str, str], dict] = {}
    for row in cur.fetchall():
        f = dict(zip(names, row, strict=True))
        k = (f["rule"], f["key"], f["field"])
        assert k not in out, f"finding emitted twice: {k}"
        out[k] = f
    return out


def _ev(f: dict) -> dict:
    return json.loads(f["evidence"])


# -- the orders world --------------------------------------------------------------------------
def _sub(sid, name, version, account, status="Active", ns=None, ns_name=None,
         updated=UPDATED, owner=None):
    return (sid, name, version, account, owner or account, status, D(2026, 1, 1),
            D(2027, 1, 1), None, ns, ns_name, updated)


ORDERS_ZUORA = {
    "zuora.Subscription": [
        _sub("s11v1", "A-S11", 1, "acc_old", status="Expired"),
        _sub("s11v2", "A-S11", 2, "acc_new"),
        _sub("s12v1", "A-S12", 1, "acc_new", ns="9002"),
        _sub("s13v1", "A-S13", 1, "acc_new", ns="9003"),
        _sub("s14v1", "A-S14", 1, "acc_new"),
        # D13: no order; an unlinked namespace; a namespace another order holds
        _sub("s20v1", "A-S20", 1, "acc_000", updated=T(2026, 11, 1, 12)),
        _sub("s21v1", "A-S21", 1, "acc_d12_b", ns="9100", updated=T(2026, 3, 1, 12)),
        _sub("s22v1", "A-S22", 1, "acc_d12_c", ns="9100", ns_name="   ",
             updated=T(2026, 3, 2, 12)),
        _sub("s23v1", "A-S23", 1, "acc_new", ns="9200"),
        _sub("s24v1", "A-S24", 1, "acc_new"),
        _sub("s15v1", "A-S15", 1, "acc_new"),
        _sub("s16v1", "A-S16", 1, "acc_new"),
        # A-S25: no base plan in Zuora and no namespace; its order is on a self-managed plan
        _sub("s25v1", "A-S25", 1, "acc_new"),
        # namespace 9400: a cancelled subscription's order, one active base subscription and
        # one active add-on subscription: one active base subscription, no D12
        _sub("s26v1", "A-S26", 1, "acc_new", status="Cancelled"),
        _sub("s27v1", "A-S27", 1, "acc_new", ns="9400"),
        _sub("s28v1", "A-S28", 1, "acc_new", ns="9400"),
        # namespace columns of single orders (D04, D25)
        _sub("s29v1", "A-S29", 1, "acc_new", ns="9500", ns_name="grp5"),
        _sub("s31v1", "A-S31", 1, "acc_new", ns="9600", ns_name="grp6"),
        _sub("s32v1", "A-S32", 1, "acc_new", ns="9700", ns_name="new-name"),
        _sub("s33v1", "A-S33", 1, "acc_new", ns="9800", ns_name="grp8"),
        # an active add-on subscription whose order carries namespace 9400 (not a base plan)
        _sub("s34v1", "A-S34", 1, "acc_new"),
        # the subscription_id pointer (D02 / D14)
        _sub("s35v1", "A-S35", 1, "acc_new", status="Expired"),
        _sub("s35v2", "A-S35", 2, "acc_new"),
        _sub("s36v2", "A-S36", 2, "acc_new"),
        _sub("s37v1", "A-S37", 1, "acc_new"),
        _sub("s38v1", "A-S38", 1, "acc_new"),
        # the account columns: a reseller pays (D24), an owner transfer (D10), an owner
        # without a local billing account (D16 first)
        _sub("s39v1", "A-S39", 1, "acc_owner", owner="acc_reseller"),
        _sub("s40v1", "A-S40", 1, "acc_old", status="Expired"),
        _sub("s40v2", "A-S40", 2, "acc_new"),
        _sub("s41v1", "A-S41", 1, "acc_noba"),
        # an order on an account that never owned the name, and without a version pointer
        _sub("s42v1", "A-S42", 1, "acc_old", status="Expired"),
        _sub("s42v2", "A-S42", 2, "acc_new"),
        # a Draft subscription is not paid: no order expected (D13 / PAID)
        _sub("s43v1", "A-S43", 1, "acc_new", status="Draft"),
        _sub("s44v1", "A-S44", 1, "acc_new"),
    ],
    # A-S38's base plan: 12.5 seats on the last segment of its per-unit charge (12 before)
    "zuora.RatePlanCharge": [
        ("c38_1", "rp_s38v1", "C-38", "Per Unit Pricing", 12, False),
        ("c38_2", "rp_s38v1", "C-38", "Per Unit Pricing", 12.5, True)],
    # version 1 of A-S36 is still in the local copy but was deleted in Zuora
    "local.zuora_local_subscriptions": [("l36v1", "A-S36", 1), ("s36v2", "A-S36", 2)],
    "zuora.RatePlan": [(f"rp_{s}", s, "prp_base", None) for s in (
        "s11v2", "s12v1", "s13v1", "s14v1", "s20v1", "s21v1", "s22v1", "s23v1", "s24v1",
        "s26v1", "s27v1", "s29v1", "s31v1", "s32v1", "s33v1")]
    + [("rp_s28v1", "s28v1", "prp_addon", None), ("rp_s34v1", "s34v1", "prp_addon", None),
       ("rp_s43v1", "s43v1", "prp_base", None),
       ("rp_s38v1", "s38v1", "prp_base", "NewProduct")],
    "zuora.Product": [("prod_base", "GitLab Premium - SaaS", "Base Products", "premium",
                       "gitlab_dot_com"),
                      ("prod_sm", "GitLab Premium - Self-Managed", "Base Products", "premium",
                       "self_managed"),
                      ("prod_addon", "Storage", "Add On Services", "premium", "gitlab_dot_com")],
    "zuora.ProductRatePlan": [("prp_base", "prod_base", "Premium SaaS - 1 Year", True, None,
                               T(2025, 1, 1)),
                              ("prp_sm", "prod_sm", "Premium SM - 1 Year", True, None,
                               T(2025, 1, 1)),
                              ("prp_addon", "prod_addon", "Storage Pack", True, None,
                               T(2025, 1, 1))],
    "local.billing_accounts": [(1, "acc_old"), (2, "acc_new"), (3, "acc_owner"),
                               (4, "acc_reseller")],
}
_NEW = {"zuora_account_id": "acc_new", "billing_account_id": 2}
ORDERS = [
    # A-S11: one row matches Zuora's account, the other carries the metadata (auto). A trial
    # order for the name does not count (D11 "non-trial").
    {"id": 10, "subscription_name": "A-S11", **_NEW, "created_at": T(2026, 1, 2),
     "gl_namespace_id": " 9011"},
    {"id": 11, "subscription_name": "A-S11", "zuora_account_id": "acc_old",
     "billing_account_id": 1, "created_at": T(2026, 1, 1),
     "last_extra_ci_minutes_sync_at": T(2026, 5, 1), "reconciliation_accepted": True,
     "gl_namespace_id": "9011 "},
    {"id": 12, "subscription_name": "A-S11", **_NEW, "trial": True, "created_at": T(2025, 1, 1)},
    # A-S12: none matches the account; the namespace of 20 is Zuora's, 21 holds more metadata
    {"id": 20, "subscription_name": "A-S12", "zuora_account_id": "acc_x",
     "gl_namespace_id": "9002", "created_at": T(2026, 2, 2)},
    {"id": 21, "subscription_name": "A-S12", "zuora_account_id": "acc_y",
     "gl_namespace_id": "9999", "seat_overage_notified_at": T(2026, 4, 1),
     "created_at": T(2026, 2, 1)},
    # A-S13: 31 (inserted first) has Zuora's namespace, 30 has Zuora's account; they disagree
    # on a notification date
    {"id": 31, "subscription_name": "A-S13", "zuora_account_id": "acc_old",
     "billing_account_id": 1, "gl_namespace_id": "9003",
     "monthly_seat_digest_notified_on": D(2026, 4, 1), "created_at": T(2026, 3, 1)},
    {"id": 30, "subscription_name": "A-S13", **_NEW,
     "monthly_seat_digest_notified_on": D(2026, 3, 1), "created_at": T(2026, 3, 2)},
    # A-S14: both on one other account; the newer one carries metadata
    {"id": 40, "subscription_name": "A-S14", "zuora_account_id": "acc_a",
     "created_at": T(2026, 5, 1)},
    {"id": 41, "subscription_name": "A-S14", "zuora_account_id": "acc_a",
     "last_extra_ci_minutes_sync_at": T(2026, 6, 1), "created_at": T(2026, 5, 2)},
    # D15: two orders on a deleted name (a trial among them), a trial on another unknown name
    {"id": 7, "subscription_name": "A-GONE", **_NEW},
    {"id": 3, "subscription_name": "A-GONE", **_NEW},
    {"id": 4, "subscription_name": "A-GONE", **_NEW, "trial": True},
    {"id": 5, "subscription_name": "A-TRIAL-ONLY", **_NEW, "trial": True},
    # an order without a name (a half-written row) must not hide D13 from every name
    {"id": 6, "subscription_name": None, **_NEW},
    # A-S22: its namespace 9100 is linked here; its Zuora namespace name is blank
    {"id": 50, "subscription_name": "A-S22", "zuora_account_id": "acc_d12_c",
     "subscription_id": "s22v1", "product_rate_plan_id": "prp_base",
     "gl_namespace_id": "9100", "gl_namespace_name": "old-name"},
    # A-S24: no account at all (D14 on both account columns)
    {"id": 60, "subscription_name": "A-S24", "subscription_id": "s24v1"},
    # A-S15: nothing matches, no metadata: the oldest created_at is kept (an unknown creation
    # time sorts last); A-S16: same creation time, the lowest id
    {"id": 80, "subscription_name": "A-S15", "zuora_account_id": "acc_z1",
     "created_at": T(2026, 7, 2)},
    {"id": 81, "subscription_name": "A-S15", "zuora_account_id": "acc_z2",
     "created_at": T(2026, 7, 1)},
    {"id": 82, "subscription_name": "A-S15", "zuora_account_id": "acc_z3", "created_at": None},
    {"id": 79, "subscription_name": "A-S15", "zuora_account_id": "acc_z4",
     "created_at": T(2026, 7, 3)},
    {"id": 91, "subscription_name": "A-S16", "zuora_account_id": "acc_z5",
     "created_at": T(2026, 8, 1)},
    {"id": 90, "subscription_name": "A-S16", "zuora_account_id": "acc_z6",
     "created_at": T(2026, 8, 1)},
    {"id": 70, "subscription_name": "A-S25", **_NEW, "subscription_id": "s25v1",
     "product_rate_plan_id": "prp_sm", "gl_namespace_id": "9300"},
    {"id": 71, "subscription_name": "A-S26", **_NEW, "subscription_id": "s26v1",
     "product_rate_plan_id": "prp_base", "gl_namespace_id": "9400"},
    # A-S29: right account, wrong billing account (D14); another namespace than Zuora's (D04)
    {"id": 72, "subscription_name": "A-S29", "zuora_account_id": "acc_new",
     "billing_account_id": 1, "subscription_id": "s29v1", "product_rate_plan_id": "prp_base",
     "gl_namespace_id": "9501", "gl_namespace_name": "other", "start_date": D(2026, 1, 1),
     "end_date": D(2027, 1, 1)},
    # A-S31: namespace id and name differ only by blanks (D26); A-S32: a stale name; A-S33: no local name
    {"id": 73, "subscription_name": "A-S31", **_NEW, "subscription_id": "s31v1",
     "product_rate_plan_id": "prp_base", "gl_namespace_id": " 9600 ",
     "gl_namespace_name": " grp6 "},
    {"id": 74, "subscription_name": "A-S32", **_NEW, "subscription_id": "s32v1",
     "product_rate_plan_id": "prp_base", "gl_namespace_id": "9700",
     "gl_namespace_name": "old-name"},
    {"id": 75, "subscription_name": "A-S33", **_NEW, "subscription_id": "s33v1",
     "product_rate_plan_id": "prp_base", "gl_namespace_id": "9800"},
    {"id": 76, "subscription_name": "A-S34", **_NEW, "subscription_id": "s34v1",
     "gl_namespace_id": "9400"},
    {"id": 77, "subscription_name": "A-S35", **_NEW, "subscription_id": "s35v1"},
    {"id": 78, "subscription_name": "A-S36", **_NEW, "subscription_id": "l36v1"},
    {"id": 83, "subscription_name": "A-S37", **_NEW, "subscription_id": "bogus"},
    # A-S38: every other derived column stale
    {"id": 84, "subscription_name": "A-S38", **_NEW, "subscription_id": "s38v1",
     "product_rate_plan_id": "prp_sm", "start_date": D(2025, 1, 1), "end_date": D(2026, 1, 1),
     "quantity": 12, "amendment_type": "Renewal"},
    {"id": 85, "subscription_name": "A-S39", "zuora_account_id": "acc_reseller",
     "billing_account_id": 4, "subscription_id": "s39v1"},
    {"id": 86, "subscription_name": "A-S40", "zuora_account_id": "acc_old",
     "billing_account_id": 1, "subscription_id": "s40v2"},
    {"id": 87, "subscription_name": "A-S41", "zuora_account_id": "acc_noba",
     "billing_account_id": 1, "subscription_id": "s41v1"},
    {"id": 88, "subscription_name": "A-S42", "zuora_account_id": "acc_stranger",
     "billing_account_id": 2},
    # A-S44: a blank namespace id is no namespace (D26: "" equals NULL on custom fields)
    {"id": 89, "subscription_name": "A-S44", **_NEW, "subscription_id": "s44v1",
     "gl_namespace_id": "  "},
]


@pytest.fixture(scope="module")
def orders_findings() -> dict[tuple[str, str, str], dict]:
    con = _world(ORDERS_ZUORA, ORDERS)
    try:
        return _run(con)
    finally:
        con.close()


def test_d11_keeper_is_the_row_on_zuoras_account_and_is_auto(orders_findings) -> None:
    """D11: exactly one row matches Zuora's latest AccountId and no metadata conflicts (a
    false ``reconciliation_accepted`` is the default, not a value, and namespace ids equal
    but for blanks agree, D26): auto, keep it, the other is the loser; the trial order is no
    duplicate."""
    f = orders_findings[("D11", "A-S11", None)]
    assert f["action"] == "auto"
    assert _ev(f) == {"keeper": 10, "losers": [11], "conflicts": [], "matching_rows": 1}
    assert f["explanation"] == (
        "2 non-trial orders for A-S11. Keep order 10: it matches Zuora's latest account "
        "acc_new; copy the GitLab metadata it lacks from order(s) 11, then delete them.")
    assert f["account_id"] == "acc_new"


def test_d11_namespace_match_outranks_more_metadata(orders_findings) -> None:
    """D11: no row matches the account; the rows disagree on gl_namespace_id (human); the row
    whose namespace is Zuora's GitLabNamespaceId__c is the suggested keeper even though the
    other holds more metadata and is older."""
    f = orders_findings[("D11", "A-S12", None)]
    assert f["action"] == "human"
    assert _ev(f) == {"keeper": 20, "losers": [21], "conflicts": ["gl_namespace_id"],
                      "matching_rows": 0}
    assert f["explanation"] == (
        "2 non-trial orders for A-S12. The rows disagree on gl_namespace_id: a person decides. "
        "Suggested keeper: order 20 (its namespace matches Zuora).")


def test_d11_conflict_keeper_on_zuoras_account(orders_findings) -> None:
    """D11: one row matches the account but the rows disagree on a notification date: a
    person decides; the suggested keeper is the matching row, said so (the other row's
    namespace match is not the keeper's)."""
    f = orders_findings[("D11", "A-S13", None)]
    assert f["action"] == "human"
    assert _ev(f) == {"keeper": 30, "losers": [31],
                      "conflicts": ["monthly_seat_digest_notified_on"], "matching_rows": 1}
    assert f["explanation"] == (
        "2 non-trial orders for A-S13. The rows disagree on monthly_seat_digest_notified_on: a "
        "person decides. Suggested keeper: order 30 (matches Zuora's account).")


def test_d11_no_match_keeps_the_row_with_metadata(orders_findings) -> None:
    """D11: none matches, no conflict: the row carrying GitLab metadata is the keeper though
    it is the newer one; both rows on one account violate the unique key."""
    f = orders_findings[("D11", "A-S14", None)]
    assert f["action"] == "human"
    assert _ev(f) == {"keeper": 41, "losers": [40], "conflicts": [], "matching_rows": 0}
    assert f["explanation"] == (
        "2 non-trial orders for A-S14 (several on one account: violates the unique "
        "(subscription_name, zuora_account_id) key). 0 rows match Zuora's latest account "
        "acc_new: a person decides. Suggested keeper: order 41.")


def test_d11_tie_break_oldest_created_then_lowest_id(orders_findings) -> None:
    """D11: equal on account, namespace and metadata: the oldest ``created_at`` is kept (an
    unknown one last), then the lowest id; losers listed by id."""
    f = orders_findings[("D11", "A-S15", None)]
    assert _ev(f) == {"keeper": 81, "losers": [79, 80, 82], "conflicts": [],
                      "matching_rows": 0}
    assert f["explanation"] == ("4 non-trial orders for A-S15. 0 rows match Zuora's latest "
                                "account acc_new: a person decides. Suggested keeper: order 81.")
    assert _ev(orders_findings[("D11", "A-S16", None)])["keeper"] == 90


def test_d25_self_managed_order_with_a_namespace(orders_findings) -> None:
    """D25: an order on a self-managed plan carries a namespace that Zuora does not have;
    Zuora's latest version has no base plan, so the order's own plan says self-managed."""
    f = orders_findings[("D25", "A-S25", "gl_namespace_id")]
    assert f["action"] == "human"
    assert f["explanation"] == (
        "order 70 carries namespace 9300 but A-S25 has no GitLabNamespaceId__c in Zuora (a "
        "self-managed subscription): investigate, a person decides")
    assert ("D04", "A-S25", "gl_namespace_id") not in orders_findings


def test_d12_counts_only_active_base_subscriptions(orders_findings) -> None:
    """D12: namespace 9400 is on a cancelled subscription's order and on two active add-on
    subscriptions (one by its order) besides one active base subscription: no D12."""
    assert ("D12", "9400", None) not in orders_findings


def test_d14_wrong_billing_account_on_the_right_account(orders_findings) -> None:
    """D10/D14: the account is Zuora's, only the billing account is another one: D14 (not a
    move, not the invoice owner), re-pointed to the local row of Zuora's account."""
    got = {k: f for k, f in orders_findings.items() if k[1] == "A-S29" and k[0] != "D04"}
    assert list(got) == [("D14", "A-S29", "billing_account_id")]
    f = got[("D14", "A-S29", "billing_account_id")]
    assert f["explanation"] == ("order 72 has billing_account_id = 1; Zuora's latest version "
                                "says 2: set it")
    assert (f["action"], f["zuora_value"], f["local_value"]) == ("auto", "2", "1")


def test_d04_d25_namespace_of_single_orders(orders_findings) -> None:
    """D04: another namespace than Zuora's is a person's decision (and its name is not D25);
    D25: a stale name is updated, a name differing by blanks is not (D26), a missing local
    name is shown as ''; a blank namespace id is no namespace."""
    got = {k: f["explanation"] for k, f in orders_findings.items()
           if k[1] in ("A-S29", "A-S31", "A-S32", "A-S33", "A-S44")
           and k[2] in ("gl_namespace_id", "gl_namespace_name")}
    assert got == {
        ("D04", "A-S29", "gl_namespace_id"):
            "order 72 is linked to namespace 9501 but GitLabNamespaceId__c on the latest "
            "version of A-S29 is 9500: moving a namespace changes which group gets the paid "
            "plan, a person decides",
        ("D25", "A-S32", "gl_namespace_name"):
            "order 74 names namespace 9700 'old-name'; its current name is 'new-name': update "
            "the name",
        ("D25", "A-S33", "gl_namespace_name"):
            "order 75 names namespace 9800 ''; its current name is 'grp8': update the name",
    }


def test_d02_pointer_names_the_version_and_whether_zuora_deleted_it(orders_findings) -> None:
    """D02: an order on an older version is re-pointed to the latest, saying when the version
    it holds was deleted in Zuora; a subscription_id that is no version of the name is D14."""
    got = {k: f["explanation"] for k, f in orders_findings.items()
           if k[2] == "subscription_id" and k[1] in ("A-S35", "A-S36", "A-S37", "A-S42")}
    assert got == {
        ("D02", "A-S35", "subscription_id"):
            "order 77 points at version 1 (s35v1) of A-S35; Zuora's latest is version 2 "
            "(s35v2): re-point it",
        ("D02", "A-S36", "subscription_id"):
            "order 78 points at version 1 (l36v1) of A-S36, a version deleted in Zuora; "
            "Zuora's latest is version 2 (s36v2): re-point it",
        ("D14", "A-S37", "subscription_id"):
            "order 83 has subscription_id bogus, not a version of A-S37; Zuora's latest is "
            "version 1 (s37v1): set it",
        ("D14", "A-S42", "subscription_id"):
            "order 88 has subscription_id NULL, not a version of A-S42; Zuora's latest is "
            "version 2 (s42v2): set it",
    }


def test_d14_every_stale_derived_column(orders_findings) -> None:
    """D14 / L5: plan, dates, seats (the last segment, 12.5 half-up to 13: domain.md §1.9) and
    amendment type recomputed from the latest version, one finding per column."""
    got = {k[2]: (f["zuora_value"], f["local_value"], f["explanation"])
           for k, f in orders_findings.items() if k[1] == "A-S38"}
    say = ("order 84: {} is {}, Zuora's latest version 1 says {}: recompute it from the "
           "latest version")
    assert got == {
        "product_rate_plan_id": ("prp_base", "prp_sm",
                                 say.format("product_rate_plan_id", "prp_sm", "prp_base")),
        "start_date": ("2026-01-01", "2025-01-01",
                       say.format("start_date", "2025-01-01", "2026-01-01")),
        "end_date": ("2027-01-01", "2026-01-01",
                     say.format("end_date", "2026-01-01", "2027-01-01")),
        "quantity": ("13", "12", say.format("quantity", "12", "13")),
        "amendment_type": ("NewProduct", "Renewal",
                           say.format("amendment_type", "Renewal", "NewProduct")),
    }
    assert {k[0] for k in orders_findings if k[1] == "A-S38"} == {"D14"}
    # a nil column (D14 "nil/stale"): order 85 of A-S39 has no start_date
    f = orders_findings[("D14", "A-S39", "start_date")]
    assert (f["zuora_value"], f["local_value"], f["explanation"]) == (
        "2026-01-01", None, "order 85: start_date is NULL, Zuora's latest version 1 says "
                            "2026-01-01: recompute it from the latest version")


def test_d24_d10_d14_account_columns(orders_findings) -> None:
    """D24: the order carries the invoice owner, not the subscription owner AccountId; D10:
    it is still on the previous owner of an older version (moved); D14: the owner is right,
    the billing account wrong, and the owner has no local billing account yet (D16 first);
    D14: an account that never owned the name."""
    got = {k: f["explanation"] for k, f in orders_findings.items()
           if k[1] in ("A-S39", "A-S40", "A-S41", "A-S42")
           and k[2] in ("zuora_account_id", "billing_account_id")}
    assert got == {
        ("D24", "A-S39", "zuora_account_id"):
            "order 85 carries invoice owner acc_reseller instead of the subscription owner "
            "acc_owner (Zuora AccountId): re-point zuora_account_id",
        ("D24", "A-S39", "billing_account_id"):
            "order 85 carries invoice owner acc_reseller instead of the subscription owner "
            "acc_owner (Zuora AccountId): re-point billing_account_id",
        ("D10", "A-S40", "zuora_account_id"):
            "order 86 is still on previous owner acc_old of A-S40; Zuora's latest owner is "
            "acc_new (moved): re-point zuora_account_id",
        ("D10", "A-S40", "billing_account_id"):
            "order 86 is still on previous owner acc_old of A-S40; Zuora's latest owner is "
            "acc_new (moved): re-point billing_account_id",
        ("D14", "A-S41", "billing_account_id"):
            "order 87 has billing_account_id = 1; Zuora's latest version says a billing "
            "account that does not exist locally: set it once the billing account of acc_noba "
            "is created",
        ("D14", "A-S42", "zuora_account_id"):
            "order 88 has zuora_account_id = acc_stranger; Zuora's latest version says "
            "acc_new: set it",
    }
    assert orders_findings[("D24", "A-S39", "billing_account_id")]["zuora_value"] == "3"


def test_d15_lists_the_non_trial_orders_in_id_order(orders_findings) -> None:
    """D15: one finding per unknown name, its non-trial orders by id; trials excluded."""
    f = orders_findings[("D15", "A-GONE", None)]
    assert f["action"] == "human"
    assert _ev(f) == {"order_ids": [3, 7]}
    assert f["explanation"].startswith(
        "2 non-trial order(s) (3, 7) reference subscription A-GONE, which Zuora does not know")
    assert not [k for k in orders_findings if k[1] == "A-TRIAL-ONLY"]
    assert sorted(k[1] for k in orders_findings if k[0] == "D15") == ["A-GONE"]


def test_d13_namespace_linking_is_said_per_case(orders_findings) -> None:
    """D13: a paid latest version without an order is created with the namespace its latest
    version names; a namespace carries several orders (domain.md D12: base plan and add-ons,
    seed 003 "Support Multiple Active Orders on a Namespace"), so 9400 — a cancelled
    subscription's order, an add-on's order — is linked to A-S27 (the one active base
    subscription) and A-S28 (an add-on) alike. Only 9100, which another active base
    subscription's order holds (A-S22, D12), waits for a person. An order without a name
    hides nothing."""
    got = {k[1]: f["explanation"] for k, f in orders_findings.items() if k[0] == "D13"}
    assert got == {
        "A-S20": "A-S20 is Active in Zuora (latest version 1, s20v1, account acc_000) but has "
                 "no local order: create it from the latest version",
        "A-S21": "A-S21 is Active in Zuora (latest version 1, s21v1, account acc_d12_b) but has "
                 "no local order: create it from the latest version; namespace 9100 is held "
                 "by another active base subscription (D12): a person links it",
        "A-S23": "A-S23 is Active in Zuora (latest version 1, s23v1, account acc_new) but has "
                 "no local order: create it from the latest version; link namespace 9200",
        **{n: f"{n} is Active in Zuora (latest version 1, s{n[-2:]}v1, account acc_new) but "
              "has no local order: create it from the latest version; link namespace 9400"
           for n in ("A-S27", "A-S28")},
    }


def test_d12_names_both_subscriptions_and_their_owner(orders_findings) -> None:
    """D12: namespace 9100 is on two active base subscriptions (one by its order, one in
    Zuora); the finding names them, their lowest owner and their latest update."""
    f = orders_findings[("D12", "9100", None)]
    assert f["action"] == "human"
    assert _ev(f) == {"subscriptions": ["A-S21", "A-S22"]}
    assert f["explanation"] == ("namespace 9100 has 2 active base subscriptions (A-S21, A-S22): "
                                "which one provides the plan is a business decision")
    assert f["account_id"] == "acc_d12_b"
    assert f["zuora_updated"] == T(2026, 3, 2, 12)
    assert [k for k in orders_findings if k[0] == "D12"] == [("D12", "9100", None)]


def test_d25_blank_zuora_namespace_name_is_no_name(orders_findings) -> None:
    """D25/D26: a blank GitLabNamespaceName__c is NULL, so the local name is not stale."""
    assert not [k for k in orders_findings if k[1] == "A-S22" and k[0] in ("D25", "D04")]


def test_d14_order_without_account_says_null(orders_findings) -> None:
    """D14 (account columns of a single order with no account at all): set both from the
    latest version; the explanation names the NULL it found."""
    f = orders_findings[("D14", "A-S24", "zuora_account_id")]
    assert f["explanation"] == ("order 60 has zuora_account_id = NULL; Zuora's latest version "
                                "says acc_new: set it")
    f = orders_findings[("D14", "A-S24", "billing_account_id")]
    assert f["explanation"] == ("order 60 has billing_account_id = NULL; Zuora's latest version "
                                "says 2: set it")
    assert (f["zuora_value"], f["local_value"]) == ("2", None)


# -- people: D17, D19, D20 ---------------------------------------------------------------------
PEOPLE = {
    "zuora.Account": [("acc_p1", "c1", "c1", T(2026, 5, 1)), ("acc_p2", "c2", "c2", T(2026, 5, 1)),
                      ("acc_p3", None, "c3", T(2026, 5, 1)), ("acc_p4", "c4", "c4", T(2026, 5, 1)),
                      ("acc_p5", "c1", None, T(2026, 5, 1)),
                      ("acc_p6", "c4", None, T(2026, 5, 1))],
    "zuora.Contact": [("c1", " Ann@Example.com ", T(2026, 4, 1)),
                      # edited after its account: the finding's Zuora update time is the later
                      ("c2", "bob@example.com", T(2026, 7, 1)),
                      ("c4", "new@example.com", T(2026, 4, 1)),
                      ("c3", "pay@example.com", T(2026, 4, 1))],
    # acc_p1 has no local billing account; acc_deleted is gone from Zuora
    "local.billing_accounts": [(5, "acc_p2"), (6, "acc_p3"), (7, "acc_deleted"), (8, "acc_p5")],
    "local.customers": [(1, "ann@example.com"), (2, "bob@example.com"),
                        (3, "eve@example.com"), (4, "  "), (6, "mallory@example.com")],
    # customer 4 has a blank e-mail: nothing to match, no D20 about it
    "local.billing_account_memberships": [(1, 3, 6), (2, 99, 7), (3, 4, 5), (4, 6, 8)],
}


@pytest.fixture(scope="module")
def people_findings() -> dict[tuple[str, str, str], dict]:
    con = _world(PEOPLE)
    try:
        return _run(con, accounts.RULES)
    finally:
        con.close()


def test_d19_membership_says_whether_the_billing_account_exists(people_findings) -> None:
    """D19: the Sold-To customer exists (e-mail matched trimmed, case-insensitively) but has
    no membership; when the billing account is missing locally it is created first."""
    got = {(f["object"], k[1]): f["explanation"] for k, f in people_findings.items()
           if k[0] == "D19"}
    assert got == {
        ("billing_account_memberships", "ann@example.com"):
            "customer ann@example.com (Sold-To of account acc_p1, acc_p5) has no membership to "
            "its billing account (missing locally: create it first): add it",
        ("billing_account_memberships", "bob@example.com"):
            "customer bob@example.com (Sold-To of account acc_p2) has no membership to its "
            "billing account: add it",
        ("customers", "new@example.com"):
            "no customer has new@example.com, the Sold-To e-mail of account acc_p4, acc_p6: "
            "create the customer with a membership to its billing account",
    }
    assert people_findings[("D19", "bob@example.com", None)]["zuora_updated"] == T(2026, 7, 1)


def test_d19_a_sold_to_without_e_mail_is_nobody() -> None:
    """D19: a Sold-To contact without an e-mail names no customer to create, even when no
    customer exists at all."""
    con = _world({"zuora.Account": [("acc_q", "cq", "cq", T(2026, 5, 1))],
                  "zuora.Contact": [("cq", "  ", T(2026, 4, 1))]})
    try:
        assert _run(con, accounts.RULES) == {}
    finally:
        con.close()


def test_d20_names_both_contacts_none_when_absent(people_findings) -> None:
    """D20: eve is a member of acc_p3's billing account; its Bill-To is pay@, it has no
    Sold-To: a person decides, both e-mails named."""
    f = people_findings[("D20", "eve@example.com", None)]
    assert f["action"] == "human"
    assert f["explanation"] == (
        "customer eve@example.com is a member of the billing account of acc_p3, whose Bill-To "
        "(pay@example.com) and Sold-To (none) e-mails are different: removing or keeping the "
        "access is a person's decision")
    assert _ev(f) == {"membership_id": 1, "billing_account_id": 6}
    f = people_findings[("D20", "mallory@example.com", None)]
    assert f["explanation"] == (
        "customer mallory@example.com is a member of the billing account of acc_p5, whose "
        "Bill-To (none) and Sold-To (ann@example.com) e-mails are different: removing or "
        "keeping the access is a person's decision")
    assert sorted(k[1] for k in people_findings if k[0] == "D20") == [
        "eve@example.com", "mallory@example.com"]


def test_d17_membership_of_an_unknown_customer_is_keyed_by_its_id(people_findings) -> None:
    """D17: a membership to billing account 7, whose Zuora account does not exist; its
    customer row is missing too, so the key names the customer id."""
    f = people_findings[("D17", "customer 99", None)]
    assert f["explanation"] == (
        "customer 99 has a membership to billing account 7 of Zuora account acc_deleted, which "
        "does not exist in Zuora: a person decides what happens to the access")
    assert _ev(f) == {"membership_id": 2, "billing_account_id": 7}
    assert [k for k in people_findings if k[0] == "D17"] == [("D17", "customer 99", None)]


# -- catalog: D22 ------------------------------------------------------------------------------
CATALOG = {
    # multiselect values are compared trimmed and case-insensitively (seed 004, D26)
    "zuora.Product": [("prod_ok", "Premium", "Base Products", " Premium", "gitlab_dot_com"),
                      ("prod_tiers", "Two Tiers", "Base Products", "premium;ultimate",
                       "gitlab_dot_com"),
                      ("prod_nocat", "No Category", None, "premium", "gitlab_dot_com"),
                      ("prod_bad", "Platinum", "Base Products", "platinum", "on_mars"),
                      ("prod_addon", "Storage", "Add On Services", None, None),
                      ("prod_two", "Premium Both", "Base Products", "premium",
                       "gitlab_dot_com;self_managed")],
    "zuora.ProductRatePlan": [
        ("prp_ok", "prod_ok", "Premium SaaS", False, None, T(2026, 1, 1)),
        ("prp_orphan", "prod_missing", "Orphan Plan", True, D(2030, 1, 1), T(2026, 1, 2)),
        ("prp_addon", "prod_addon", "Storage Pack", True, None, T(2026, 1, 3)),
        ("prp_two", "prod_two", "Premium Both", True, None, T(2026, 1, 4)),
        ("prp_noweb", "prod_ok", "Premium SaaS 2", None, None, T(2026, 1, 5)),
        ("prp_tiers", "prod_tiers", "Two Tiers", True, None, T(2026, 1, 7)),
        ("prp_nocat", "prod_nocat", "No Category", True, None, T(2026, 1, 8)),
        ("prp_bad", "prod_bad", "Platinum", True, None, T(2026, 1, 9)),
        # retired before AS_OF: old subscriptions keep it, nothing to classify
        ("prp_retired", "prod_missing", "Retired", None, D(2026, 1, 1), T(2026, 1, 6)),
    ],
    # local rate plans on plans Zuora's export no longer has (D23)
    "local.zuora_local_rate_plans": [("rp1", "sv1", "prp_gone"), ("rp2", "sv2", "prp_gone"),
                                     ("rp3", "sv2", "prp_lost"), ("rp4", "sv1", "prp_ok")],
    "local.zuora_local_product_rate_plans": [("prp_gone", "Old Plan"), ("prp_ok", "Premium")],
}


@pytest.fixture(scope="module")
def catalog_findings() -> dict[tuple[str, str, str], dict]:
    con = _world(CATALOG)
    try:
        return _run(con, catalog.RULES)
    finally:
        con.close()


def test_d22_each_unclassifiable_plan_with_its_reasons(catalog_findings) -> None:
    """D22 (seed 004): a plan whose product is missing; an add-on with no tier and no
    deployment (NULL, not ''); a base product with two deployment types. A complete plan
    (WebDirect__c false is a value) is fine."""
    got = {k[1]: f["explanation"] for k, f in catalog_findings.items() if k[0] == "D22"}
    tail = ": CustomersDot cannot tell what it sells; classify it in Zuora or in configuration"
    assert got == {
        "prp_orphan": "plan 'Orphan Plan' of product '?' cannot be classified (its product is "
                      "not in the catalog)" + tail,
        "prp_addon": "plan 'Storage Pack' of product 'Storage' cannot be classified (product "
                     "Tier__c is empty; product DeploymentType__c is empty)" + tail,
        "prp_two": "plan 'Premium Both' of product 'Premium Both' cannot be classified (a base "
                   "product must have exactly one tier and one deployment type)" + tail,
        "prp_noweb": "plan 'Premium SaaS 2' of product 'Premium' cannot be classified (plan "
                     "WebDirect__c is empty)" + tail,
        "prp_tiers": "plan 'Two Tiers' of product 'Two Tiers' cannot be classified (a base "
                     "product must have exactly one tier and one deployment type)" + tail,
        "prp_nocat": "plan 'No Category' of product 'No Category' cannot be classified "
                     "(product Category is empty)" + tail,
        "prp_bad": "plan 'Platinum' of product 'Platinum' cannot be classified (product "
                   "Tier__c has a value outside the allowed tiers; product DeploymentType__c "
                   "has a value outside the allowed deployment types)" + tail,
    }


def test_d23_dangling_plans_say_what_the_cache_still_knows(catalog_findings) -> None:
    """D23: local rate plans reference plans absent from Zuora's catalog: report, naming the
    cached plan when the local cache still has it."""
    got = {k[1]: (f["explanation"], _ev(f)) for k, f in catalog_findings.items()
           if k[0] == "D23"}
    tail = (", which is absent from the Zuora catalog export: keep the cached rows, never "
            "delete subscription data; report")
    assert got == {
        "prp_gone": ("2 local subscription rate plan(s) on 2 version(s) reference plan prp_gone "
                     "('Old Plan' in the local cache)" + tail, {"rate_plans": 2}),
        "prp_lost": ("1 local subscription rate plan(s) on 1 version(s) reference plan prp_lost "
                     "(not in the local cache either)" + tail, {"rate_plans": 1}),
    }


# -- the local subscription copy: D08, D09 -----------------------------------------------------
SUBS = {
    "zuora.Subscription": [_sub("zs30", "A-S30", 3, "acc_new"),
                           _sub("lv_c1", "A-S31", 1, "acc_new"),
                           _sub("lv_c2", "A-S32", 1, "acc_new")],
    "local.zuora_local_subscriptions": [("lv_b", "A-S30", 3), ("lv_a", "A-S30", 3),
                                        ("lv_1", "A-S30", 2), ("lv_c1", "A-S31", 1),
                                        ("lv_c2", "A-S32", 1),
                                        # a name Zuora does not know (D15/D03 territory)
                                        ("lx2", "A-X", 1), ("lx1", "A-X", 1)],
    # both subscriptions have charge C-1 with two segments flagged last (Z8 broken locally)
    "local.zuora_local_rate_plan_charges": [
        ("ch1_s1", "lv_c1", "C-1", 1, True, D(2026, 1, 1), D(2026, 6, 1)),
        ("ch1_s2", "lv_c1", "C-1", 2, True, D(2026, 6, 1), D(2027, 1, 1)),
        ("ch2_s1", "lv_c2", "C-1", 1, True, D(2026, 1, 1), D(2026, 6, 1)),
        ("ch2_s2", "lv_c2", "C-1", 2, True, D(2026, 6, 1), D(2027, 1, 1)),
    ],
    "local.zuora_local_rate_plan_charge_tiers": [
        (f"t_{c}", c) for c in ("ch1_s1", "ch1_s2", "ch2_s1", "ch2_s2")],
}


@pytest.fixture(scope="module")
def subs_findings() -> dict[tuple[str, str, str], dict]:
    con = _world(SUBS)
    try:
        # the diff found a differing charge under A-S31 only (D08 runs after annotation)
        con.execute("INSERT INTO findings (object, key, kind, subscription_name) VALUES "
                    "('RatePlanCharge', 'ch1_s2', 'field_mismatch', 'A-S31')")
        return _run(con, subscriptions.RULES)
    finally:
        con.close()


def test_rules_are_frozen_declarations() -> None:
    """A rule is a declaration read everywhere (its id is the drift it detects): immutable
    and hashable, so no caller can re-label a rule at run time."""
    import dataclasses
    rule = RULES[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.id = "D99"  # type: ignore[misc]
    assert len({*RULES}) == len(RULES)


def test_d09_lists_the_tied_versions_in_id_order(subs_findings) -> None:
    """D09 (L2): two local versions carry version 3; recompute from Zuora's latest."""
    f = subs_findings[("D09", "A-S30", None)]
    assert f["explanation"] == (
        "2 local versions of A-S30 carry the highest version number 3 (lv_a, lv_b); Zuora's "
        "latest is version 3 (zs30): recompute the latest from Zuora")
    assert _ev(f) == {"version_ids": ["lv_a", "lv_b"]}
    assert subs_findings[("D09", "A-X", None)]["explanation"] == (
        "2 local versions of A-X carry the highest version number 1 (lx1, lx2); Zuora's latest "
        "is version ? (unknown): recompute the latest from Zuora")


def test_d08_only_under_a_differing_subtree(subs_findings) -> None:
    """D08 (L3): segment 1 flagged last below segment 2 is corruption; only A-S31, whose
    subtree differs from Zuora, is checked (A-S32's rows equal Zuora's by assumption)."""
    got = {k[1]: f["explanation"] for k, f in subs_findings.items() if k[0] == "D08"}
    assert got == {"ch1_s1": "charge C-1 segment 1 is flagged last but segment 2 is the "
                             "highest (2 last segments): replace the version subtree from Zuora"}
    assert subs_findings[("D08", "ch1_s1", None)]["subscription_name"] == "A-S31"

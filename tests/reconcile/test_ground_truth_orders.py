"""Hand-valued ground truth for the order derivation (``core.catalog.orders``).

Every input below is a literal written from domain.md and the seeds, and every expected value
is a literal too: nothing here is computed by the code under test, the generator or another
oracle. The tenant is tiny and deliberately built so that each plausible mistake gives a
different answer (the latest version is not the most recently updated one, the first seat
segment differs from the last, an add-on rate plan sorts before the base plan, a cancellation
date differs from the term end, versions 9 and 10 sort differently as text).

Rules cited:

* L5   domain.md §2.2 L5: subscription_id / zuora_account_id / billing_account_id from the latest
       version; start_date, end_date, quantity, amendment_type, product_rate_plan_id derivable
       from it. D14 (domain.md §5): "recompute from the latest version".
* Z1   domain.md §2.1 Z1: the latest version is the max ``Version``.
* Z7   domain.md §2.1 Z7 and §1.3: ``Cancelled`` ⇒ ``CancelledDate`` set, and a cancellation is
       booked as Cancelled at once even when its date is in the future.
* D24  domain.md §5 D24: the order belongs to the subscription owner ``AccountId``, not the
       invoice owner.
* SEAT domain.md §1.6 / §6 ("seat change": only the new segment has ``IsLastSegment``) and seed
       003 (orders.quantity = seats, an integer): seats are the base plan's per-unit charge
       quantity on its last segment; base products are ``Category = 'Base Products'``
       (domain.md §1.8, seed 004).
* HALF domain.md §1.9: Zuora decimals are rounded half-up into the local integer column.
* PAID domain.md §4.1/§1.3 and L4: one order per paid subscription; Draft/Pending are not paid.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from core.catalog.orders import derived_orders_sql

D = dt.date
T = dt.datetime

# -- the tenant, as literal rows ----------------------------------------------------------------
TABLES: dict[str, tuple[str, list[tuple]]] = {
    "billing_accounts": ("id BIGINT, zuora_account_id VARCHAR", [
        (101, "acc_owner_1"), (102, "acc_owner_2"), (103, "acc_reseller"),
        # acc_unsynced has no local billing account (D16)
    ]),
    "Product": ("Id VARCHAR, Name VARCHAR, Category VARCHAR", [
        ("prod_base", "GitLab Premium - SaaS", "Base Products"),
        ("prod_dedicated", "GitLab Dedicated", "Base Products"),
        ("prod_addon", "Storage", "Add On Services"),
    ]),
    "ProductRatePlan": ("Id VARCHAR, ProductId VARCHAR, Name VARCHAR", [
        ("prp_premium_1y", "prod_base", "Premium SaaS - 1 Year"),
        ("prp_ultimate_1y", "prod_base", "Ultimate SaaS - 1 Year"),
        ("prp_dedicated", "prod_dedicated", "Dedicated - 1 Year"),
        ("prp_storage", "prod_addon", "10GB Storage Pack - 1 Year"),
    ]),
    "Subscription": (
        "Id VARCHAR, Name VARCHAR, Version BIGINT, AccountId VARCHAR, InvoiceOwnerId VARCHAR, "
        "Status VARCHAR, TermStartDate DATE, TermEndDate DATE, CancelledDate DATE, "
        "SubscriptionEndDate DATE, IsLatestVersion BOOLEAN, GitLabNamespaceId__c VARCHAR, "
        "GitLabNamespaceName__c VARCHAR, CreatedDate TIMESTAMP, UpdatedDate TIMESTAMP", [
            # A-S1: seat changes, a renewal with an owner transfer, a reseller invoice owner.
            # v2 was edited later through the custom-fields API (domain.md §1.2: custom fields
            # are per version and can be updated on a specified version), so the most recently
            # updated version is NOT the latest one.
            ("s1v1", "A-S00000001", 1, "acc_owner_1", "acc_owner_1", "Expired", D(2025, 1, 15),
             D(2026, 1, 15), None, D(2026, 1, 15), False, "9000001", "group-a",
             T(2025, 1, 15, 17), T(2025, 6, 1, 18)),
            ("s1v2", "A-S00000001", 2, "acc_owner_1", "acc_reseller", "Expired", D(2025, 1, 15),
             D(2026, 1, 15), None, D(2026, 1, 15), False, "9000001", "group-a",
             T(2025, 6, 1, 18), T(2026, 10, 20, 16)),
            ("s1v3", "A-S00000001", 3, "acc_owner_2", "acc_reseller", "Active", D(2026, 1, 15),
             D(2027, 1, 15), None, D(2027, 1, 15), True, "9000001", "group-a",
             T(2026, 1, 14, 9), T(2026, 1, 14, 9)),
            # A-S2: cancelled mid-term; the cancellation version is the latest.
            ("s2v1", "A-S00000002", 1, "acc_owner_1", "acc_owner_1", "Expired", D(2026, 2, 1),
             D(2027, 2, 1), None, D(2027, 2, 1), False, None, None,
             T(2026, 2, 1, 17), T(2026, 8, 10, 18)),
            ("s2v2", "A-S00000002", 2, "acc_owner_1", "acc_owner_1", "Cancelled", D(2026, 2, 1),
             D(2027, 2, 1), D(2026, 8, 15), D(2026, 8, 15), True, None, None,
             T(2026, 8, 10, 18), T(2026, 8, 10, 18)),
            # A-S3: cancellation booked with a future date, still Cancelled (domain.md §1.3);
            # its owner has no local billing account; 12.5 seats on the last segment.
            ("s3v1", "A-S00000003", 1, "acc_unsynced", "acc_unsynced", "Expired",
             D(2026, 3, 1), D(2027, 3, 1), None, D(2027, 3, 1), False, None, None,
             T(2026, 3, 1, 17), T(2026, 10, 30, 17)),
            ("s3v2", "A-S00000003", 2, "acc_unsynced", "acc_unsynced", "Cancelled",
             D(2026, 3, 1), D(2027, 3, 1), D(2027, 1, 10), D(2027, 1, 10), True, None, None,
             T(2026, 10, 30, 17), T(2026, 10, 30, 17)),
            # A-S4: evergreen (TermEndDate NULL, Z5), Dedicated: a flat fee + a per-unit charge.
            ("s4v1", "A-S00000004", 1, "acc_owner_2", "acc_owner_2", "Active", D(2024, 5, 1),
             None, None, None, True, None, None, T(2024, 5, 1, 17), T(2024, 5, 1, 17)),
            # A-S5 Draft and A-S6 Pending Activation: not paid, no order (PAID).
            ("s5v1", "A-S00000005", 1, "acc_owner_1", "acc_owner_1", "Draft", D(2026, 9, 1),
             D(2027, 9, 1), None, D(2027, 9, 1), True, None, None,
             T(2026, 9, 1, 17), T(2026, 9, 1, 17)),
            ("s6v1", "A-S00000006", 1, "acc_owner_2", "acc_owner_2", "Pending Activation",
             D(2026, 9, 2), D(2027, 9, 2), None, D(2027, 9, 2), True, None, None,
             T(2026, 9, 2, 17), T(2026, 9, 2, 17)),
            # A-S7: versions 9 and 10 (10 < 9 as text, not as a number: Z1).
            ("s7v9", "A-S00000007", 9, "acc_owner_2", "acc_owner_2", "Expired", D(2025, 4, 1),
             D(2026, 4, 1), None, D(2026, 4, 1), False, None, None,
             T(2025, 4, 1, 17), T(2026, 4, 1, 9)),
            ("s7v10", "A-S00000007", 10, "acc_owner_2", "acc_owner_2", "Active", D(2026, 4, 1),
             D(2027, 4, 1), None, D(2027, 4, 1), True, None, None,
             T(2026, 4, 1, 9), T(2026, 4, 1, 9)),
            # A-S8: an add-on bought as its own subscription (domain.md D12: "legitimately
            # add-on subscriptions"): paid, but no base plan, hence no plan, seats or amendment.
            ("s8v1", "A-S00000008", 1, "acc_owner_1", "acc_owner_1", "Active", D(2026, 5, 1),
             D(2027, 5, 1), None, D(2027, 5, 1), True, None, None,
             T(2026, 5, 1, 17), T(2026, 5, 1, 17)),
            # A-S9: Suspended (domain.md §1.3: Active → Suspended → Resume → Active), still a
            # paid subscription with an order.
            ("s9v1", "A-S00000009", 1, "acc_owner_1", "acc_owner_1", "Expired", D(2026, 2, 10),
             D(2027, 2, 10), None, D(2027, 2, 10), False, None, None,
             T(2026, 2, 10, 17), T(2026, 9, 1, 17)),
            ("s9v2", "A-S00000009", 2, "acc_owner_1", "acc_owner_1", "Suspended",
             D(2026, 2, 10), D(2027, 2, 10), None, D(2027, 2, 10), True, None, None,
             T(2026, 9, 1, 17), T(2026, 9, 1, 17)),
        ]),
    "RatePlan": ("Id VARCHAR, SubscriptionId VARCHAR, ProductRatePlanId VARCHAR, "
                 "AmendmentType VARCHAR, Name VARCHAR", [
                     ("rp_s1v1_base", "s1v1", "prp_ultimate_1y", None, "Ultimate SaaS"),
                     ("rp_s1v2_base", "s1v2", "prp_ultimate_1y", "UpdateProduct",
                      "Ultimate SaaS"),
                     # the add-on's Id sorts before the base plan's
                     ("rp_s1v3_a_addon", "s1v3", "prp_storage", "NewProduct", "Storage"),
                     ("rp_s1v3_b_base", "s1v3", "prp_premium_1y", "Renewal", "Premium SaaS"),
                     ("rp_s2v1_base", "s2v1", "prp_premium_1y", None, "Premium SaaS"),
                     ("rp_s2v2_base", "s2v2", "prp_premium_1y", "Cancellation", "Premium SaaS"),
                     ("rp_s3v1_base", "s3v1", "prp_ultimate_1y", None, "Ultimate SaaS"),
                     ("rp_s3v2_base", "s3v2", "prp_ultimate_1y", "UpdateProduct",
                      "Ultimate SaaS"),
                     ("rp_s4v1_base", "s4v1", "prp_dedicated", None, "Dedicated"),
                     ("rp_s5v1_base", "s5v1", "prp_premium_1y", None, "Premium SaaS"),
                     ("rp_s6v1_base", "s6v1", "prp_premium_1y", None, "Premium SaaS"),
                     ("rp_s7v9_base", "s7v9", "prp_premium_1y", "UpdateProduct",
                      "Premium SaaS"),
                     ("rp_s7v10_base", "s7v10", "prp_ultimate_1y", "NewProduct",
                      "Ultimate SaaS"),
                     ("rp_s8v1_addon", "s8v1", "prp_storage", None, "Storage"),
                     ("rp_s9v1_base", "s9v1", "prp_premium_1y", None, "Premium SaaS"),
                     ("rp_s9v2_base", "s9v2", "prp_premium_1y", None, "Premium SaaS"),
                 ]),
    "RatePlanCharge": (
        "Id VARCHAR, RatePlanId VARCHAR, ChargeNumber VARCHAR, Segment BIGINT, Version BIGINT, "
        "ChargeType VARCHAR, ChargeModel VARCHAR, Quantity DECIMAL(38,9), "
        "IsLastSegment BOOLEAN, EffectiveStartDate DATE, EffectiveEndDate DATE", [
            ("c01", "rp_s1v1_base", "C-00000011", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("10"), True, D(2025, 1, 15), D(2026, 1, 15)),
            # v2: seat change on 2025-06-01 (segment 2 carries the new quantity)
            ("c02", "rp_s1v2_base", "C-00000011", 1, 2, "Recurring", "Per Unit Pricing",
             Decimal("10"), False, D(2025, 1, 15), D(2025, 6, 1)),
            ("c03", "rp_s1v2_base", "C-00000011", 2, 2, "Recurring", "Per Unit Pricing",
             Decimal("25"), True, D(2025, 6, 1), D(2026, 1, 15)),
            # v3: renewal adds segment 3 with 40 seats; the add-on has 3 units
            ("c04", "rp_s1v3_b_base", "C-00000011", 1, 3, "Recurring", "Per Unit Pricing",
             Decimal("10"), False, D(2025, 1, 15), D(2025, 6, 1)),
            ("c05", "rp_s1v3_b_base", "C-00000011", 2, 3, "Recurring", "Per Unit Pricing",
             Decimal("25"), False, D(2025, 6, 1), D(2026, 1, 15)),
            ("c06", "rp_s1v3_b_base", "C-00000011", 3, 3, "Recurring", "Per Unit Pricing",
             Decimal("40"), True, D(2026, 1, 15), D(2027, 1, 15)),
            ("c07", "rp_s1v3_a_addon", "C-00000010", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("3"), True, D(2026, 1, 15), D(2027, 1, 15)),
            ("c08", "rp_s2v1_base", "C-00000021", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("5"), True, D(2026, 2, 1), D(2027, 2, 1)),
            # cancellation: the last segment now ends at the cancellation date (domain.md §6)
            ("c09", "rp_s2v2_base", "C-00000021", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("5"), True, D(2026, 2, 1), D(2026, 8, 15)),
            ("c10", "rp_s3v1_base", "C-00000031", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("8"), True, D(2026, 3, 1), D(2027, 3, 1)),
            ("c11", "rp_s3v2_base", "C-00000031", 1, 2, "Recurring", "Per Unit Pricing",
             Decimal("8"), False, D(2026, 3, 1), D(2026, 9, 1)),
            ("c12", "rp_s3v2_base", "C-00000031", 2, 2, "Recurring", "Per Unit Pricing",
             Decimal("12.500000000"), True, D(2026, 9, 1), D(2027, 1, 10)),
            # Dedicated: the flat fee's ChargeNumber sorts first and has no quantity
            ("c13", "rp_s4v1_base", "C-00000041", 1, 1, "Recurring", "Flat Fee Pricing",
             None, True, D(2024, 5, 1), None),
            ("c14", "rp_s4v1_base", "C-00000042", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("50"), True, D(2024, 5, 1), None),
            # (A-S5, a Draft, has no charge yet)
            ("c16", "rp_s6v1_base", "C-00000061", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("4"), True, D(2026, 9, 2), D(2027, 9, 2)),
            ("c17", "rp_s7v9_base", "C-00000071", 1, 9, "Recurring", "Per Unit Pricing",
             Decimal("7"), True, D(2025, 4, 1), D(2026, 4, 1)),
            ("c18", "rp_s7v10_base", "C-00000072", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("8"), True, D(2026, 4, 1), D(2027, 4, 1)),
            ("c19", "rp_s8v1_addon", "C-00000081", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("2"), True, D(2026, 5, 1), D(2027, 5, 1)),
            ("c20", "rp_s9v1_base", "C-00000091", 1, 1, "Recurring", "Per Unit Pricing",
             Decimal("20"), True, D(2026, 2, 10), D(2027, 2, 10)),
            ("c21", "rp_s9v2_base", "C-00000091", 1, 2, "Recurring", "Per Unit Pricing",
             Decimal("20"), True, D(2026, 2, 10), D(2027, 2, 10)),
        ]),
}

PAID = ["A-S00000001", "A-S00000002", "A-S00000003", "A-S00000004", "A-S00000007",
        "A-S00000008", "A-S00000009"]


def _derive(statuses: tuple[str, ...] | None | str = "default") -> dict[str, dict]:
    """The derivation's rows for the literal tenant, keyed by subscription name."""
    con = duckdb.connect()
    try:
        for name, (ddl, rows) in TABLES.items():
            con.execute(f"CREATE TABLE {name} ({ddl})")
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        sql = derived_orders_sql() if statuses == "default" else derived_orders_sql(statuses)
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        out = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    names = [r["subscription_name"] for r in out]
    assert len(names) == len(set(names)), f"one derived order per name (L4): {names}"
    return {r["subscription_name"]: r for r in out}


@pytest.fixture(scope="module")
def derived() -> dict[str, dict]:
    return _derive()


def _column(derived: dict[str, dict], col: str) -> dict[str, object]:
    return {name: row[col] for name, row in sorted(derived.items())}


def test_one_order_per_paid_subscription(derived: dict[str, dict]) -> None:
    """PAID, L4: Active, Cancelled and Suspended latest versions have an order (an add-on-only
    subscription too); Draft and Pending Activation (A-S5, A-S6) do not."""
    assert sorted(derived) == PAID


def test_every_status_when_asked() -> None:
    """The reconciler checks an existing order whatever its subscription's status: with no
    status filter every name is derived, each from its latest version (Z1)."""
    rows = _derive(None)
    assert {n: (r["subscription_id"], r["latest_status"], r["quantity"])
            for n, r in sorted(rows.items())} == {
        "A-S00000001": ("s1v3", "Active", 40),
        "A-S00000002": ("s2v2", "Cancelled", 5),
        "A-S00000003": ("s3v2", "Cancelled", 13),
        "A-S00000004": ("s4v1", "Active", 50),
        "A-S00000005": ("s5v1", "Draft", None),  # no charge yet: still derived
        "A-S00000006": ("s6v1", "Pending Activation", 4),
        "A-S00000007": ("s7v10", "Active", 8),
        "A-S00000008": ("s8v1", "Active", None),
        "A-S00000009": ("s9v2", "Suspended", 20),
    }


def test_subscription_id_is_the_latest_version(derived: dict[str, dict]) -> None:
    """L5 + Z1: the max Version's Id (not the most recently updated version s1v2, not version
    9 of A-S7 which sorts after 10 as text)."""
    assert _column(derived, "subscription_id") == {
        "A-S00000001": "s1v3", "A-S00000002": "s2v2", "A-S00000003": "s3v2",
        "A-S00000004": "s4v1", "A-S00000007": "s7v10", "A-S00000008": "s8v1",
        "A-S00000009": "s9v2",
    }


def test_zuora_account_id_is_the_latest_owner(derived: dict[str, dict]) -> None:
    """L5, D10, D24: the latest version's AccountId (A-S1 moved to acc_owner_2 in v3; its
    invoice owner acc_reseller is not the owner)."""
    assert _column(derived, "zuora_account_id") == {
        "A-S00000001": "acc_owner_2", "A-S00000002": "acc_owner_1",
        "A-S00000003": "acc_unsynced", "A-S00000004": "acc_owner_2",
        "A-S00000007": "acc_owner_2", "A-S00000008": "acc_owner_1",
        "A-S00000009": "acc_owner_1",
    }


def test_billing_account_id_is_the_local_row_of_that_owner(derived: dict[str, dict]) -> None:
    """L5: the local billing_accounts.id whose zuora_account_id is the latest owner; none for an
    owner with no local billing account (D16 reports that separately)."""
    assert _column(derived, "billing_account_id") == {
        "A-S00000001": 102, "A-S00000002": 101, "A-S00000003": None,
        "A-S00000004": 102, "A-S00000007": 102, "A-S00000008": 101, "A-S00000009": 101,
    }


def test_product_rate_plan_id_is_the_latest_base_plan(derived: dict[str, dict]) -> None:
    """L5, seed 004 / domain.md §1.8: the latest version's rate plan whose product is a Base
    Product (A-S1's v3 add-on sorts first and is not it; A-S1 and A-S7 changed plan across
    versions); none for an add-on-only subscription (A-S8)."""
    assert _column(derived, "product_rate_plan_id") == {
        "A-S00000001": "prp_premium_1y", "A-S00000002": "prp_premium_1y",
        "A-S00000003": "prp_ultimate_1y", "A-S00000004": "prp_dedicated",
        "A-S00000007": "prp_ultimate_1y", "A-S00000008": None,
        "A-S00000009": "prp_premium_1y",
    }


def test_start_date_is_the_latest_term_start(derived: dict[str, dict]) -> None:
    """L5 + orders.start_date (seed 003): TermStartDate of the latest version (A-S1 renewed:
    the new term's start, not SubscriptionStartDate)."""
    assert _column(derived, "start_date") == {
        "A-S00000001": D(2026, 1, 15), "A-S00000002": D(2026, 2, 1),
        "A-S00000003": D(2026, 3, 1), "A-S00000004": D(2024, 5, 1),
        "A-S00000007": D(2026, 4, 1), "A-S00000008": D(2026, 5, 1),
        "A-S00000009": D(2026, 2, 10),
    }


def test_end_date_is_the_cancellation_when_cancelled(derived: dict[str, dict]) -> None:
    """Z7, domain.md §1.3 and §6 (Cancellation: SubscriptionEndDate = CancelledDate): a
    Cancelled latest version ends at its CancelledDate (A-S2 mid-term, A-S3 future-dated),
    otherwise at TermEndDate; an evergreen subscription has none (Z5)."""
    assert _column(derived, "end_date") == {
        "A-S00000001": D(2027, 1, 15), "A-S00000002": D(2026, 8, 15),
        "A-S00000003": D(2027, 1, 10), "A-S00000004": None,
        "A-S00000007": D(2027, 4, 1), "A-S00000008": D(2027, 5, 1),
        "A-S00000009": D(2027, 2, 10),
    }


def test_quantity_is_the_last_seat_segment(derived: dict[str, dict]) -> None:
    """SEAT: the base plan's per-unit charge on its LAST segment of the latest version (A-S1:
    segment 3 = 40, not segment 1 = 10, not the add-on's 3; A-S4: the per-unit Users charge,
    not the flat fee; A-S8 has no base plan, so no seats); HALF: 12.5 seats become 13."""
    assert _column(derived, "quantity") == {
        "A-S00000001": 40, "A-S00000002": 5, "A-S00000003": 13, "A-S00000004": 50,
        "A-S00000007": 8, "A-S00000008": None, "A-S00000009": 20,
    }


def test_amendment_type_is_the_latest_base_plans(derived: dict[str, dict]) -> None:
    """L5 + orders.amendment_type (catalogue doc): the AmendmentType of the latest version's base
    rate plan (not the add-on's NewProduct on A-S1, not version 9's UpdateProduct on A-S7)."""
    assert _column(derived, "amendment_type") == {
        "A-S00000001": "Renewal", "A-S00000002": "Cancellation",
        "A-S00000003": "UpdateProduct", "A-S00000004": None, "A-S00000007": "NewProduct",
        "A-S00000008": None, "A-S00000009": None,
    }

"""The view ``orders_current`` (orders delegated to the latest local subscription version), on
real PostgreSQL and on DuckDB, against hand-valued expected rows.

The local copy below is a literal tenant (the scenarios of
``tests/reconcile/test_ground_truth_orders.py`` as the local copy holds them, plus the local
cases only the view meets: trial orders, a name the copy does not hold, duplicate orders and
two local rows of one version). Every expected value is a literal written from domain.md and
the seeds, never computed by the code under test:

* L5/Z1: subscription_id, zuora_account_id and billing_account_id from the max ``version``;
  start_date = term_start_date; end_date = cancelled_date when Cancelled, else term_end_date;
* SEAT: quantity = the base plan's per-unit charge on its last segment — the charge model is
  read from the catalog cache's product rate plan charge (``charge_model``), the base plan
  from the product's ``category``;
* amendment_type = the base rate plan's ``amendment_type`` (the column added to the local
  rate plans, a deviation from seed 003);
* trials (L10) and names the local copy has no version of keep their stored values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from core.localdb.connect import connect
from core.localdb.schema import table_columns
from tests.support.localrows import load_local
from tests.support.pg import pg_schema

D = dt.date
T = dt.datetime


def _sub(zid: str, name: str, version: int, account: str, status: str, start: dt.date,
         end: dt.date | None, cancelled: dt.date | None, updated: dt.datetime) -> dict:
    return {"zuora_id": zid, "name": name, "version": version, "account_id": account,
            "invoice_owner_id": account, "original_id": name, "status": status,
            "term_start_date": start, "term_end_date": end, "cancelled_date": cancelled,
            "subscription_start_date": start, "updated_date": updated, "created_date": updated}


def _rp(zid: str, sub: str, prp: str, amendment: str | None) -> dict:
    return {"zuora_id": zid, "subscription_id": sub, "product_rate_plan_id": prp,
            "amendment_type": amendment, "name": prp}


def _ch(zid: str, rp: str, sub: str, number: str, segment: int, prpc: str, qty: int | None,
        last: bool) -> dict:
    return {"zuora_id": zid, "rate_plan_id": rp, "subscription_id": sub, "charge_number": number,
            "segment": segment, "version": segment, "product_rate_plan_charge_id": prpc,
            "quantity": qty, "is_last_segment": last}


LOCAL: dict[str, list[dict[str, Any]]] = {
    "billing_accounts": [
        {"id": 101, "zuora_account_id": "acc_owner_1"},
        {"id": 102, "zuora_account_id": "acc_owner_2"},
        # acc_unsynced has no local billing account (D16)
    ],
    "zuora_local_products": [
        {"zuora_id": "prod_base", "name": "GitLab Premium - SaaS", "category": "Base Products"},
        {"zuora_id": "prod_dedicated", "name": "GitLab Dedicated", "category": "Base Products"},
        {"zuora_id": "prod_addon", "name": "Storage", "category": "Add On Services"},
    ],
    "zuora_local_product_rate_plans": [
        {"zuora_id": "prp_premium_1y", "product_id": "prod_base"},
        {"zuora_id": "prp_ultimate_1y", "product_id": "prod_base"},
        {"zuora_id": "prp_dedicated", "product_id": "prod_dedicated"},
        {"zuora_id": "prp_storage", "product_id": "prod_addon"},
    ],
    "zuora_local_product_rate_plan_charges": [
        {"zuora_id": "prpc_premium_users", "product_rate_plan_id": "prp_premium_1y",
         "charge_model": "Per Unit Pricing"},
        {"zuora_id": "prpc_ultimate_users", "product_rate_plan_id": "prp_ultimate_1y",
         "charge_model": "Per Unit Pricing"},
        {"zuora_id": "prpc_dedicated_fee", "product_rate_plan_id": "prp_dedicated",
         "charge_model": "Flat Fee Pricing"},
        {"zuora_id": "prpc_dedicated_users", "product_rate_plan_id": "prp_dedicated",
         "charge_model": "Per Unit Pricing"},
        {"zuora_id": "prpc_storage", "product_rate_plan_id": "prp_storage",
         "charge_model": "Per Unit Pricing"},
    ],
    "zuora_local_subscriptions": [
        # A-S1: seat changes, renewal + owner transfer in v3; v2 updated last (not latest)
        _sub("s1v1", "A-S00000001", 1, "acc_owner_1", "Expired", D(2025, 1, 15),
             D(2026, 1, 15), None, T(2025, 6, 1, 18)),
        _sub("s1v2", "A-S00000001", 2, "acc_owner_1", "Expired", D(2025, 1, 15),
             D(2026, 1, 15), None, T(2026, 10, 20, 16)),
        _sub("s1v3", "A-S00000001", 3, "acc_owner_2", "Active", D(2026, 1, 15),
             D(2027, 1, 15), None, T(2026, 1, 14, 9)),
        # A-S2: cancelled mid-term (two duplicate orders, D11)
        _sub("s2v1", "A-S00000002", 1, "acc_owner_1", "Expired", D(2026, 2, 1), D(2027, 2, 1),
             None, T(2026, 8, 10, 18)),
        _sub("s2v2", "A-S00000002", 2, "acc_owner_1", "Cancelled", D(2026, 2, 1),
             D(2027, 2, 1), D(2026, 8, 15), T(2026, 8, 10, 18)),
        # A-S3: owner without a local billing account, cancellation dated in the future
        _sub("s3v1", "A-S00000003", 1, "acc_unsynced", "Cancelled", D(2026, 3, 1),
             D(2027, 3, 1), D(2027, 1, 10), T(2026, 10, 30, 17)),
        # A-S4: evergreen Dedicated, a flat fee (sorts first) and a per-unit charge
        _sub("s4v1", "A-S00000004", 1, "acc_owner_2", "Active", D(2024, 5, 1), None, None,
             T(2024, 5, 1, 17)),
        # A-S7: versions 9 and 10 (10 < 9 as text)
        _sub("s7v9", "A-S00000007", 9, "acc_owner_2", "Expired", D(2025, 4, 1), D(2026, 4, 1),
             None, T(2026, 4, 1, 9)),
        _sub("s7v10", "A-S00000007", 10, "acc_owner_2", "Active", D(2026, 4, 1),
             D(2027, 4, 1), None, T(2026, 4, 1, 9)),
        # A-S8: an add-on bought as its own subscription: no base plan
        _sub("s8v1", "A-S00000008", 1, "acc_owner_1", "Active", D(2026, 5, 1), D(2027, 5, 1),
             None, T(2026, 5, 1, 17)),
        # A-S9: Suspended
        _sub("s9v1", "A-S00000009", 1, "acc_owner_1", "Suspended", D(2026, 2, 10),
             D(2027, 2, 10), None, T(2026, 9, 1, 17)),
        # A-S10: the local copy holds two rows of version 2 (D09): the later updated wins
        _sub("s10v1", "A-S00000010", 1, "acc_owner_1", "Expired", D(2026, 6, 1),
             D(2027, 6, 1), None, T(2026, 6, 1, 9)),
        _sub("s10v2a", "A-S00000010", 2, "acc_owner_1", "Active", D(2026, 6, 1),
             D(2027, 6, 1), None, T(2026, 7, 1, 9)),
        _sub("s10v2b", "A-S00000010", 2, "acc_owner_2", "Active", D(2026, 6, 1),
             D(2027, 6, 1), None, T(2026, 7, 2, 9)),
    ],
    "zuora_local_rate_plans": [
        _rp("rp_s1v1", "s1v1", "prp_ultimate_1y", None),
        _rp("rp_s1v2", "s1v2", "prp_ultimate_1y", "UpdateProduct"),
        _rp("rp_s1v3_a_addon", "s1v3", "prp_storage", "NewProduct"),  # sorts before the base
        _rp("rp_s1v3_b_base", "s1v3", "prp_premium_1y", "Renewal"),
        _rp("rp_s2v1", "s2v1", "prp_premium_1y", None),
        _rp("rp_s2v2", "s2v2", "prp_premium_1y", "Cancellation"),
        _rp("rp_s3v1", "s3v1", "prp_ultimate_1y", "UpdateProduct"),
        _rp("rp_s4v1", "s4v1", "prp_dedicated", None),
        _rp("rp_s7v9", "s7v9", "prp_premium_1y", "UpdateProduct"),
        _rp("rp_s7v10", "s7v10", "prp_ultimate_1y", "NewProduct"),
        _rp("rp_s8v1", "s8v1", "prp_storage", None),
        _rp("rp_s9v1", "s9v1", "prp_premium_1y", None),
        _rp("rp_s10v1", "s10v1", "prp_premium_1y", None),
        _rp("rp_s10v2a", "s10v2a", "prp_premium_1y", "UpdateProduct"),
        _rp("rp_s10v2b", "s10v2b", "prp_ultimate_1y", "UpdateProduct"),
    ],
    "zuora_local_rate_plan_charges": [
        _ch("c01", "rp_s1v1", "s1v1", "C-00000011", 1, "prpc_ultimate_users", 10, True),
        _ch("c02", "rp_s1v2", "s1v2", "C-00000011", 1, "prpc_ultimate_users", 10, False),
        _ch("c03", "rp_s1v2", "s1v2", "C-00000011", 2, "prpc_ultimate_users", 25, True),
        _ch("c04", "rp_s1v3_b_base", "s1v3", "C-00000011", 1, "prpc_premium_users", 10, False),
        _ch("c05", "rp_s1v3_b_base", "s1v3", "C-00000011", 2, "prpc_premium_users", 25, False),
        _ch("c06", "rp_s1v3_b_base", "s1v3", "C-00000011", 3, "prpc_premium_users", 40, True),
        _ch("c07", "rp_s1v3_a_addon", "s1v3", "C-00000010", 1, "prpc_storage", 3, True),
        _ch("c08", "rp_s2v1", "s2v1", "C-00000021", 1, "prpc_premium_users", 5, True),
        _ch("c09", "rp_s2v2", "s2v2", "C-00000021", 1, "prpc_premium_users", 5, True),
        _ch("c10", "rp_s3v1", "s3v1", "C-00000031", 1, "prpc_ultimate_users", 8, False),
        _ch("c11", "rp_s3v1", "s3v1", "C-00000031", 2, "prpc_ultimate_users", 13, True),
        _ch("c13", "rp_s4v1", "s4v1", "C-00000041", 1, "prpc_dedicated_fee", None, True),
        _ch("c14", "rp_s4v1", "s4v1", "C-00000042", 1, "prpc_dedicated_users", 50, True),
        _ch("c17", "rp_s7v9", "s7v9", "C-00000071", 1, "prpc_premium_users", 7, True),
        _ch("c18", "rp_s7v10", "s7v10", "C-00000072", 1, "prpc_ultimate_users", 8, True),
        _ch("c19", "rp_s8v1", "s8v1", "C-00000081", 1, "prpc_storage", 2, True),
        _ch("c20", "rp_s9v1", "s9v1", "C-00000091", 1, "prpc_premium_users", 20, True),
        _ch("c21", "rp_s10v1", "s10v1", "C-00000101", 1, "prpc_premium_users", 6, True),
        _ch("c22", "rp_s10v2a", "s10v2a", "C-00000101", 1, "prpc_premium_users", 7, True),
        _ch("c23", "rp_s10v2b", "s10v2b", "C-00000101", 1, "prpc_ultimate_users", 9, True),
    ],
    # every order's stored Zuora-derived columns are stale or empty: the view must not use them
    "orders": [
        {"id": 1, "subscription_name": "A-S00000001", "subscription_id": "s1v1",
         "zuora_account_id": "acc_owner_1", "billing_account_id": 101,
         "product_rate_plan_id": "prp_ultimate_1y", "start_date": D(2025, 1, 15),
         "end_date": D(2026, 1, 15), "quantity": 10, "amendment_type": None,
         "gl_namespace_id": "9000001", "gl_namespace_name": "group-a"},
        {"id": 2, "subscription_name": "A-S00000002"},
        {"id": 3, "subscription_name": "A-S00000002", "zuora_account_id": "acc_owner_2",
         "billing_account_id": 102},
        {"id": 4, "subscription_name": "A-S00000003", "billing_account_id": 999},
        {"id": 5, "subscription_name": "A-S00000004", "quantity": 1,
         "end_date": D(2025, 5, 1)},
        {"id": 7, "subscription_name": "A-S00000007", "subscription_id": "s7v9",
         "quantity": 7, "amendment_type": "UpdateProduct"},
        {"id": 8, "subscription_name": "A-S00000008", "product_rate_plan_id": "prp_storage",
         "quantity": 2},
        {"id": 9, "subscription_name": "A-S00000009"},
        {"id": 10, "subscription_name": "A-S00000010"},
        # D15: a name the local copy holds no version of keeps its stored values
        {"id": 11, "subscription_name": "A-S99999999", "subscription_id": "gone",
         "zuora_account_id": "acc_owner_1", "billing_account_id": 101, "quantity": 3,
         "start_date": D(2026, 1, 1)},
        # a trial (local only, L10): its own dates, never a subscription's
        {"id": 12, "subscription_name": None, "trial": True, "trial_type": "ultimate",
         "start_date": D(2026, 11, 1), "end_date": D(2026, 12, 1),
         "gl_namespace_id": "55000001"},
        # a trial carrying a paid subscription's name is still a trial
        {"id": 13, "subscription_name": "A-S00000009", "trial": True,
         "start_date": D(2026, 1, 1), "end_date": D(2026, 1, 31)},
    ],
}

COLUMNS = ("id", "subscription_name", "subscription_id", "zuora_account_id",
           "billing_account_id", "product_rate_plan_id", "start_date", "end_date", "quantity",
           "amendment_type", "delegated")
EXPECTED = [
    (1, "A-S00000001", "s1v3", "acc_owner_2", 102, "prp_premium_1y", D(2026, 1, 15),
     D(2027, 1, 15), 40, "Renewal", True),
    (2, "A-S00000002", "s2v2", "acc_owner_1", 101, "prp_premium_1y", D(2026, 2, 1),
     D(2026, 8, 15), 5, "Cancellation", True),
    (3, "A-S00000002", "s2v2", "acc_owner_1", 101, "prp_premium_1y", D(2026, 2, 1),
     D(2026, 8, 15), 5, "Cancellation", True),
    (4, "A-S00000003", "s3v1", "acc_unsynced", None, "prp_ultimate_1y", D(2026, 3, 1),
     D(2027, 1, 10), 13, "UpdateProduct", True),
    (5, "A-S00000004", "s4v1", "acc_owner_2", 102, "prp_dedicated", D(2024, 5, 1), None, 50,
     None, True),
    (7, "A-S00000007", "s7v10", "acc_owner_2", 102, "prp_ultimate_1y", D(2026, 4, 1),
     D(2027, 4, 1), 8, "NewProduct", True),
    (8, "A-S00000008", "s8v1", "acc_owner_1", 101, None, D(2026, 5, 1), D(2027, 5, 1), None,
     None, True),
    (9, "A-S00000009", "s9v1", "acc_owner_1", 101, "prp_premium_1y", D(2026, 2, 10),
     D(2027, 2, 10), 20, None, True),
    (10, "A-S00000010", "s10v2b", "acc_owner_2", 102, "prp_ultimate_1y", D(2026, 6, 1),
     D(2027, 6, 1), 9, "UpdateProduct", True),
    (11, "A-S99999999", "gone", "acc_owner_1", 101, None, D(2026, 1, 1), None, 3, None, False),
    (12, None, None, None, None, None, D(2026, 11, 1), D(2026, 12, 1), None, None, False),
    (13, "A-S00000009", None, None, None, None, D(2026, 1, 1), D(2026, 1, 31), None, None,
     False),
]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                                marks=pytest.mark.postgres)])
def view_rows(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    if request.param == "duckdb":
        url = f"duckdb:///{(tmp_path_factory.mktemp('oc') / 'local.duckdb').as_posix()}"
        with connect(url) as db:
            load_local(db, LOCAL)
            return db.fetch(f"SELECT {', '.join(COLUMNS)} FROM orders_current ORDER BY id")
    with pg_schema(request.getfixturevalue("pg_dsn")) as url, connect(url) as db:
        load_local(db, LOCAL)
        return db.fetch(f"SELECT {', '.join(COLUMNS)} FROM orders_current ORDER BY id")


def test_orders_current_is_the_hand_valued_rows(view_rows: list[tuple]) -> None:
    assert [tuple(r) for r in view_rows] == EXPECTED


def test_every_orders_column_is_in_the_view_once(pg_url: str) -> None:
    """The view is ``orders`` plus ``delegated``: same columns, same order (an application
    reading ``orders_current`` instead of ``orders`` loses nothing)."""
    with connect(pg_url) as db:
        db.init_schema()
        db.init_schema()  # idempotent: CREATE OR REPLACE
        got = [r[0] for r in db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = %s ORDER BY ordinal_position",
            ["orders_current"])]
    assert got == [c.name for c in table_columns("orders")] + ["delegated"]

"""``recon db constrain``: refuses while D11 duplicates remain (listing D11's keeper), succeeds
after the dedupe went through recon's repair path, is idempotent, and the keys then reject a
duplicate; PostgreSQL only.

The local copy is literal: two duplicate groups whose keepers are known by hand from domain.md
D11 (the row on the latest version's account; else the row whose namespace Zuora names).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from core.localdb.connect import connect
from core.localdb.writer import mark
from jobs.cli import main
from repair.apply import apply_plan
from repair.constrain import CONSTRAINT, NAME_INDEX
from tests.support.localrows import load_local
from tests.support.repair import op, row_json, rows, settings_for, write_plan

D = dt.date
T = dt.datetime


def _sub(zid: str, name: str, account: str, ns: str | None) -> dict:
    return {"zuora_id": zid, "name": name, "version": 1, "account_id": account,
            "invoice_owner_id": account, "original_id": zid, "status": "Active",
            "term_start_date": D(2026, 1, 1), "term_end_date": D(2027, 1, 1),
            "subscription_start_date": D(2026, 1, 1), "git_lab_namespace_id__c": ns,
            "updated_date": T(2026, 1, 1, 9)}


LOCAL = {
    "billing_accounts": [{"id": 1, "zuora_account_id": "acc_old"},
                         {"id": 2, "zuora_account_id": "acc_new"}],
    "zuora_local_subscriptions": [_sub("s1", "A-S00000001", "acc_new", None),
                                  _sub("s2", "A-S00000002", "acc_old", "9000002")],
    "orders": [
        # A-S1 moved to acc_new: the owner-transfer callout created order 11 there (D11's
        # keeper: it is on the latest version's account); order 10 is the pre-transfer row
        {"id": 10, "subscription_name": "A-S00000001", "zuora_account_id": "acc_old",
         "billing_account_id": 1, "created_at": T(2025, 1, 1)},
        {"id": 11, "subscription_name": "A-S00000001", "zuora_account_id": "acc_new",
         "billing_account_id": 2, "created_at": T(2026, 3, 1)},
        # A-S2: two rows on one account (violates the seed's key); both match the account,
        # order 21's namespace is the one Zuora names: it is kept
        {"id": 20, "subscription_name": "A-S00000002", "zuora_account_id": "acc_old",
         "billing_account_id": 1, "gl_namespace_id": "7000020", "created_at": T(2025, 1, 1)},
        {"id": 21, "subscription_name": "A-S00000002", "zuora_account_id": "acc_old",
         "billing_account_id": 1, "gl_namespace_id": "9000002", "created_at": T(2026, 1, 1)},
        # a trial: local only, never a duplicate
        {"id": 30, "subscription_name": None, "trial": True, "gl_namespace_id": "5500001"},
    ],
}


@pytest.fixture
def dup_db(pg_url: str) -> str:
    with connect(pg_url) as db:
        load_local(db, LOCAL)
    return pg_url


def _insert(url: str, **values: object) -> None:
    """An outside writer's INSERT (through the escape hatch, as the application would)."""
    values = {"trial": False, "reconciliation_accepted": False, **values}
    with connect(url) as db, db.transaction():
        mark(db, "hatch", "test")
        db.execute(f"INSERT INTO orders ({', '.join(values)}) VALUES "
                   f"({', '.join(['%s'] * len(values))})", list(values.values()))


def _dedupe(url: str, tmp_path: Path, losers: list[int]) -> None:
    """Delete the losers through recon's repair path (a plan, applied and audited)."""
    ops = [op(i + 1, "orders", "delete", {"id": oid}, row_json(url, "orders", f"id = {oid}"),
              None, group=f"order:{oid}", step="orders") for i, oid in enumerate(losers)]
    plan = write_plan(url, tmp_path / "dedupe.json", ops)
    result = apply_plan(plan, settings_for(url, tmp_path), yes=True)
    assert result.status == "complete", result


def _keys(url: str) -> set[str]:
    return {r[0] for r in rows(url, "SELECT c.relname FROM pg_index i JOIN pg_class c ON "
                                    "c.oid = i.indexrelid WHERE i.indrelid = 'orders'::regclass "
                                    "AND i.indisunique AND i.indisvalid")}


@pytest.mark.postgres
def test_refuses_with_duplicates_then_constrains_after_dedupe(
        dup_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "constrain", "--db", dup_db]) == 2
    err = capsys.readouterr().err
    assert "2 group(s) of duplicates" in err
    assert ("A-S00000001: orders 10, 11 — D11 keeps order 11 (on the latest version's "
            "account acc_new)") in err
    assert ("A-S00000002: orders 20, 21 — D11 keeps order 20" not in err
            and "A-S00000002: orders 20, 21 — D11 keeps order 21" in err)
    assert "recon repair plan --only D11" in err
    assert CONSTRAINT not in _keys(dup_db) and NAME_INDEX not in _keys(dup_db)

    _dedupe(dup_db, tmp_path, [10, 20])
    assert main(["db", "constrain", "--db", dup_db]) == 0
    assert capsys.readouterr().out.splitlines() == [f"created {CONSTRAINT} on orders",
                                                    f"created {NAME_INDEX} on orders"]
    assert {CONSTRAINT, NAME_INDEX} <= _keys(dup_db)
    assert rows(dup_db, "SELECT contype FROM pg_constraint WHERE conname = "
                        f"'{CONSTRAINT}'") == [("u",)]
    # idempotent
    assert main(["db", "constrain", "--db", dup_db]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{CONSTRAINT} already in place",
                                                    f"{NAME_INDEX} already in place"]

    # the keys now reject the duplicates D11 is about
    with pytest.raises(psycopg.errors.UniqueViolation, match=CONSTRAINT):
        _insert(dup_db, id=40, subscription_name="A-S00000002", zuora_account_id="acc_old")
    with pytest.raises(psycopg.errors.UniqueViolation, match=NAME_INDEX):  # another account
        _insert(dup_db, id=41, subscription_name="A-S00000001", zuora_account_id="acc_old")
    # a trial is no paid order: it may carry the name (on no account)
    _insert(dup_db, id=42, subscription_name="A-S00000001", trial=True)
    assert rows(dup_db, "SELECT count(*) FROM orders WHERE subscription_name = "
                        "'A-S00000001'") == [(2,)]


def test_duckdb_is_refused_and_says_d11_stays_a_finding(
        duckdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with connect(duckdb_url) as db:
        db.init_schema()
    assert main(["db", "constrain", "--db", duckdb_url]) == 2
    err = capsys.readouterr().err
    assert "PostgreSQL-only" in err and "D11 finding" in err

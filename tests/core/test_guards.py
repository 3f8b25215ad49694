"""The local-copy guards on a real PostgreSQL (issue 16): generated from the catalogue's owners,
they stop a plain write by any role — the superuser these tests connect as included — and let
recon's marked transactions and the escape hatch through; `recon db guards` and `db check`
install, print, remove and compare them. DuckDB has none, and says so."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest

from core.catalog import BY_TABLE, LOCAL_BY_NAME, LOCAL_TABLES, OBJECTS, Field, ZType
from core.localdb import guards, schema
from core.localdb.connect import LocalDB, connect
from jobs.cli import main
from tests.support.json_schema import check
from tests.support.pg import outside_write, pg_schema

REPO = Path(__file__).resolve().parents[2]
REFUSED = psycopg.errors.InsufficientPrivilege
# written out by hand: the tables issue 16 names as copies of Zuora (subscriptions, catalog
# cache, contacts); a catalogue change that moves one must change this list too
COPY_TABLES = {
    "zuora_local_subscriptions", "zuora_local_rate_plans", "zuora_local_rate_plan_charges",
    "zuora_local_rate_plan_charge_tiers", "zuora_local_products",
    "zuora_local_product_rate_plans", "zuora_local_product_rate_plan_charges",
    "zuora_local_product_rate_plan_charge_tiers", "billing_account_contacts",
}
STAMP = dt.datetime(2026, 1, 2, 3, 4, 5)
PRODUCT = {"zuora_id": "p1", "name": "Premium", "sku": "SKU-1",
           "effective_start_date": dt.date(2020, 1, 1), "effective_end_date": dt.date(2030, 1, 1),
           "created_by_id": "u", "created_date": STAMP, "updated_by_id": "u",
           "updated_date": STAMP}
ACCOUNT = {"id": 1, "zuora_account_id": "a1", "zuora_account_name": "Initech",
           "currency": "USD", "created_at": STAMP, "updated_at": STAMP}
ORDER = {"id": 1, "subscription_name": "A-S1", "quantity": 5, "gl_namespace_id": "ns-1"}


def seed(db: LocalDB) -> None:
    """One product, one account, one order, loaded as recon's loader does (marked)."""
    with db.writing("load", "test-guards"):
        db.load("zuora_local_products", pl.DataFrame([PRODUCT]))
        db.load("billing_accounts", pl.DataFrame([ACCOUNT]))
        db.load("orders", pl.DataFrame([ORDER]))


@pytest.fixture(scope="module")
def guarded(pg_dsn: str) -> Iterator[str]:
    """A schema created by recon with orders and billing_accounts opted in, and a few rows."""
    with pg_schema(pg_dsn, "g") as url:
        with connect(url) as db:
            db.init_schema(guard_tables=("orders", "billing_accounts"))
            seed(db)
        yield url


@pytest.fixture
def db(guarded: str) -> Iterator[LocalDB]:
    with connect(guarded) as conn:
        yield conn


def refused(db: LocalDB, sql: str) -> str:
    with pytest.raises(REFUSED) as err:
        db.execute(sql)
    return str(err.value)


# -- what the catalogue says is guarded -------------------------------------------------------
def test_the_copy_tables_and_the_mixed_tables_come_from_the_catalogue() -> None:
    assert set(guards.copy_tables()) == COPY_TABLES
    mixed = guards.guardable_columns()
    assert set(mixed) == {"billing_accounts", "orders"}
    assert {"quantity", "subscription_id", "zuora_account_id"} <= set(mixed["orders"])
    assert not {"gl_namespace_id", "trial", "seat_overage_notified_at", "created_at",
                "id"} & set(mixed["orders"])  # local metadata stays the application's
    assert {"zuora_account_name", "bill_to_contact_id"} <= set(mixed["billing_accounts"])
    assert not {"id", "updated_at"} & set(mixed["billing_accounts"])


def test_readme_lists_the_rules_of_every_table() -> None:
    readme = (REPO / "docs" / "local-database.md").read_text()
    assert guards.markdown() in readme, \
        "docs/local-database.md's guard table differs from core.localdb.guards.markdown(); " \
        "paste it"


# -- copy tables ------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_plain_write_to_a_copy_table_is_refused_even_for_a_superuser(db: LocalDB) -> None:
    assert db.fetch("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(True,)]
    for sql in ("UPDATE zuora_local_products SET name = 'Changed'",
                "DELETE FROM zuora_local_products",
                "INSERT INTO zuora_local_products (zuora_id) VALUES ('p2')",
                "TRUNCATE zuora_local_products CASCADE"):
        op = sql.split()[0]
        text = refused(db, sql)
        assert f"{op} on zuora_local_products refused" in text, text
        assert "recon sync" in text and "escape hatch" in text
    assert db.fetch("SELECT name FROM zuora_local_products") == [("Premium",)]
    for table in COPY_TABLES:  # every one of them, even while empty
        assert f"DELETE on {table} refused" in refused(db, f"DELETE FROM {table}")


@pytest.mark.postgres
def test_only_a_recon_label_lets_a_write_through_and_only_for_its_transaction(
        db: LocalDB) -> None:
    with pytest.raises(REFUSED), db.transaction():
        db.execute("SELECT set_config('recon.writer', 'someone:else', true)")
        db.execute("UPDATE zuora_local_products SET name = 'Changed'")
    with db.transaction():  # the administrators' escape hatch (README)
        db.execute("SELECT set_config('recon.writer', 'hatch:alice-INC-1', true)")
        db.execute("UPDATE zuora_local_products SET name = 'Hatched'")
    assert db.fetch("SELECT name FROM zuora_local_products") == [("Hatched",)]
    # distinguishable afterwards: the guards logged who wrote what through the hatch (once
    # per transaction, table and operation), beside recon's own audit
    assert db.fetch("SELECT table_name, op, writer, db_user FROM recon_hatch_log") == [
        ("zuora_local_products", "UPDATE", "hatch:alice-INC-1", "postgres")]
    assert guards.hatch_writes(db)["latest_writer"] == "hatch:alice-INC-1"
    # transaction-local: the next statement on the same connection is plain again
    refused(db, "UPDATE zuora_local_products SET name = 'Premium'")
    outside_write(db, "UPDATE zuora_local_products SET name = %s", ["Premium"])


# -- mixed tables -----------------------------------------------------------------------------
@pytest.mark.postgres
def test_an_opted_in_mixed_table_guards_only_its_zuora_columns(db: LocalDB) -> None:
    text = refused(db, "UPDATE orders SET quantity = 6, gl_namespace_id = 'ns-2'")
    assert "UPDATE of orders.quantity refused" in text and "local.guard_tables" in text
    assert "billing_accounts.zuora_account_name" in refused(
        db, "UPDATE billing_accounts SET zuora_account_name = 'Initrode'")
    db.execute("UPDATE orders SET gl_namespace_id = 'ns-2', seat_overage_notified_at = now()")
    db.execute("UPDATE orders SET quantity = 5")  # set to what it is: nothing changes
    db.execute("UPDATE billing_accounts SET updated_at = now()")
    db.execute("INSERT INTO orders (id, subscription_name, quantity, trial) "
               "VALUES (2, 'trial-1', 1, true)")  # the application creates orders…
    db.execute("DELETE FROM orders WHERE id = 2")  # …and deletes them
    assert db.fetch("SELECT gl_namespace_id, quantity FROM orders") == [("ns-2", 5)]


@pytest.mark.postgres
def test_a_mixed_table_not_opted_in_is_not_guarded(pg_url: str) -> None:
    with connect(pg_url) as db:
        db.init_schema()
        seed(db)
        db.execute("UPDATE orders SET quantity = 7")
        db.execute("UPDATE billing_accounts SET zuora_account_name = 'Initrode'")
        assert db.fetch("SELECT quantity FROM orders") == [(7,)]
        refused(db, "DELETE FROM zuora_local_products")  # the copies are, always


@pytest.mark.postgres
def test_a_field_added_to_the_catalogue_is_guarded(pg_url: str) -> None:
    """The guards are generated from the catalogue: a new Zuora-owned field on a mixed table
    is guarded without anyone writing its name into a second list."""
    account = BY_TABLE["billing_accounts"]
    extra = Field("Region__c", ZType.STR, "region__c", "VARCHAR(64)")
    grown = dataclasses.replace(account, fields=(*account.fields, extra))
    objects = tuple(grown if s is account else s for s in OBJECTS)
    with connect(pg_url) as db:
        for s in objects:
            db.execute(schema.object_table_ddl(s, "postgres"))
        for t in LOCAL_TABLES:
            db.execute(schema.local_table_ddl(t, "postgres"))
        with db.writing("load", "test-guards"):
            db.load("billing_accounts", pl.DataFrame([ACCOUNT]))
        guards.install(db, guards.plan(("billing_accounts",)))  # today's catalogue
        db.execute("UPDATE billing_accounts SET region__c = 'EMEA'")  # not declared: free
        guards.install(db, guards.plan(("billing_accounts",), objects=objects))
        assert "billing_accounts.region__c refused" in refused(
            db, "UPDATE billing_accounts SET region__c = 'APAC'")
        db.execute("UPDATE billing_accounts SET updated_at = now()")  # local stays writable
        assert db.fetch("SELECT region__c FROM billing_accounts") == [("EMEA",)]


# -- recon db guards / db check ---------------------------------------------------------------
def check_json(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["db", "check", "--db", url, "--json"])
    return code, check("db check", capsys.readouterr().out)  # against docs/json


def statuses(doc: dict) -> dict[str, str]:
    return {g["name"]: g["status"] for g in doc["guards"] if g["status"] != "ok"}


@pytest.mark.postgres
def test_db_check_finds_dropped_altered_and_disabled_guards(
        pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECON_LOCAL_GUARD_TABLES", "orders")
    assert main(["-q", "db", "init", "--db", pg_url]) == 0
    code, doc = check_json(pg_url, capsys)
    assert (code, doc["ok"], statuses(doc)) == (0, True, {})
    assert doc["recon_schema_version"] == doc["recon_schema_version_expected"] > 0
    assert len(doc["guards"]) == 2 + len(COPY_TABLES) + 1  # 2 functions, 9 copies, orders
    with connect(pg_url) as db:
        db.execute("DROP TRIGGER recon_guard_copy ON zuora_local_rate_plans")
        db.execute("ALTER TABLE zuora_local_products DISABLE TRIGGER recon_guard_copy")
        db.execute("CREATE OR REPLACE FUNCTION recon_guard_copy() RETURNS trigger "
                   "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END; $$")
        db.execute("DROP TRIGGER recon_guard_columns ON orders")
        db.execute("CREATE TRIGGER recon_guard_columns BEFORE UPDATE OF quantity ON orders "
                   "FOR EACH ROW EXECUTE FUNCTION recon_guard_columns('quantity')")
        db.execute("UPDATE zuora_local_rate_plans SET name = 'x'")  # nothing stops it now
    code, doc = check_json(pg_url, capsys)
    assert code == 1 and not doc["ok"]
    assert statuses(doc) == {"zuora_local_rate_plans.recon_guard_copy": "missing",
                             "zuora_local_products.recon_guard_copy": "altered",
                             "recon_guard_copy()": "altered",
                             "orders.recon_guard_columns": "altered"}
    detail = {g["name"]: g["detail"] for g in doc["guards"]}
    assert "disabled" in detail["zuora_local_products.recon_guard_copy"]
    assert "body differs" in detail["recon_guard_copy()"]
    assert "UPDATE OF ['quantity']" in detail["orders.recon_guard_columns"]
    code = main(["db", "check", "--db", pg_url])  # the text form names each one
    out = capsys.readouterr().out
    assert code == 1 and "MISSING" in out and "zuora_local_rate_plans.recon_guard_copy" in out
    # `recon db guards` puts back exactly what is generated; with orders no longer opted in,
    # its guard is unexpected until `db guards` takes it out
    assert main(["-q", "db", "guards", "--db", pg_url]) == 0
    assert check_json(pg_url, capsys)[0] == 0
    monkeypatch.delenv("RECON_LOCAL_GUARD_TABLES")
    code, doc = check_json(pg_url, capsys)
    assert (code, statuses(doc)) == (1, {"orders.recon_guard_columns": "unexpected"})
    assert main(["-q", "db", "guards", "--db", pg_url]) == 0
    assert check_json(pg_url, capsys)[0] == 0


@pytest.mark.postgres
def test_db_guards_prints_and_removes(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "guards", "--print"]) == 0
    ddl = capsys.readouterr().out
    for table in COPY_TABLES:
        assert (f"CREATE TRIGGER recon_guard_copy BEFORE INSERT OR UPDATE OR DELETE OR "
                f"TRUNCATE ON {table} FOR EACH STATEMENT") in ddl
    assert "recon_guard_columns(" not in ddl.split("CREATE TRIGGER", 1)[1]  # none opted in
    with connect(pg_url) as db:  # the printed DDL is what an application's migration runs
        for t in schema.all_tables():
            db.execute(schema.object_table_ddl(BY_TABLE[t], "postgres") if t in BY_TABLE
                       else schema.local_table_ddl(LOCAL_BY_NAME[t], "postgres"))
        with db.transaction():
            db.raw.execute(ddl)
        assert not [f for f in guards.check(db, guards.plan()) if f.status != "ok"]
        refused(db, "DELETE FROM zuora_local_subscriptions")
    assert main(["db", "guards", "--db", pg_url, "--remove"]) == 0
    assert "removed 9 recon guard trigger(s)" in capsys.readouterr().out
    with connect(pg_url) as db:
        db.execute("DELETE FROM zuora_local_subscriptions")
        assert not guards.schema_triggers(db)
    assert main(["db", "guards", "--print", "--remove"]) == 0
    assert "DROP FUNCTION IF EXISTS recon_guard_copy()" in capsys.readouterr().out
    assert main(["-q", "db", "check", "--db", pg_url]) == 1


def test_duckdb_says_plainly_that_nothing_is_enforced(
        duckdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init", "--db", duckdb_url]) == 0
    assert "guards: none on DuckDB" in capsys.readouterr().out
    assert main(["db", "check", "--db", duckdb_url]) == 0
    out = capsys.readouterr().out
    assert "DuckDB has no triggers, so nothing stops a plain write" in out
    assert main(["db", "guards", "--db", duckdb_url]) == 2
    assert "needs PostgreSQL: DuckDB has no triggers" in capsys.readouterr().err
    with connect(duckdb_url) as db:  # a plain write lands: only the next reconcile sees it
        db.execute("INSERT INTO zuora_local_products (zuora_id, name, sku, "
                   "effective_start_date, effective_end_date, created_by_id, created_date, "
                   "updated_by_id, updated_date) VALUES ('p9', 'n', 's', DATE '2020-01-01', "
                   "DATE '2030-01-01', 'u', TIMESTAMP '2020-01-01', 'u', "
                   "TIMESTAMP '2020-01-01')")

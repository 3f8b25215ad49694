"""The local schema, created from the catalogue on real PostgreSQL and on DuckDB.

Everything is checked from the outside, through ``information_schema`` (and ``pg_constraint``
for foreign keys), against the catalogue and against seed 003's proposed schema, so a DDL
renderer that drifts from either is caught on the engine where it matters.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl
import psycopg
import pytest

from core.catalog import LOCAL_TABLES, OBJECTS
from core.localdb import recon_objects, views
from core.localdb.connect import LocalDB, connect
from core.localdb.schema import all_tables
from tests.support.pg import outside_write

DUPLICATE = (psycopg.errors.UniqueViolation, duckdb.ConstraintException)

# Seed 003, "Zuora::Local::Subscription": the spec of the subscription local copy, verbatim.
SEED_003_SUBSCRIPTION = """
    string(64) zuora_id PK "`id` field on Zuora Subscription"
    integer version "null:false"
    integer current_term
    integer initial_term
    integer renewal_term
    datetime created_date "null:false"
    datetime updated_date "null:false"
    date term_start_date "null:false"
    date term_end_date
    date cancelled_date
    date subscription_start_date "null:false"
    date subscription_end_date
    boolean auto_renew "null:false default:false"
    string(3) eoa_starter_bronze_offer_accepted__c
    string(3) contract_auto_renew__c
    string(3) turn_on_auto_renew__c
    string(3) turn_on_operational_metrics__c
    string(3) turn_on_seat_reconciliation__c
    string(5) current_term_period_type
    string(7) turn_on_cloud_licensing__c
    string(7) marketplace_offer_type__c
    string(18) status
    string(64) account_id "null:false"
    string(64) previous_subscription_id
    string(64) invoice_owner_id "null:false"
    string(64) original_id "null:false"
    string(64) ramp_id
    string(64) created_by_id "null:false"
    string(64) updated_by_id "null:false"
    string(255) name "null:false"
    string(255) opportunity_id__c
    string(255) renewal_subscription__c__c
    string(255) external_subscription_id__c
    string(255) external_subscription_source__c
    string(255) git_lab_namespace_id__c
    string(255) git_lab_namespace_name__c
    string(255) marketplace_agreement_id__c
    string(255) marketplace_offer_id__c
    string(255) marketplace_fee_percentage__c
    string(500) notes
    datetime created_at
    datetime updated_at
"""
# (type, column, annotation) per line, e.g. ("string(64)", "account_id", '"null:false"')
SEED_003_ROWS = [
    (*line.split(maxsplit=2), "")[:3] for line in SEED_003_SUBSCRIPTION.strip().splitlines()
]
# The seed's foreign keys: (table, column) -> (referenced table, referenced column).
SEED_003_FOREIGN_KEYS = {
    ("zuora_local_rate_plans", "subscription_id"): ("zuora_local_subscriptions", "zuora_id"),
    ("zuora_local_rate_plan_charges", "rate_plan_id"): ("zuora_local_rate_plans", "zuora_id"),
    ("zuora_local_rate_plan_charge_tiers", "rate_plan_charge_id"):
        ("zuora_local_rate_plan_charges", "zuora_id"),
}

PG_TYPES = {
    "VARCHAR": "character varying", "INTEGER": "integer", "BIGINT": "bigint",
    "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp without time zone",
    "DECIMAL": "numeric",
}
_VARCHAR = re.compile(r"VARCHAR\((\d+)\)")
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


# -- fixtures and helpers -------------------------------------------------------------------
def expected_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (catalogue local type, nullable), straight from the catalogue."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for spec in OBJECTS:
        cols = {c.name: (c.local_type, c.nullable) for c in spec.extra_columns}
        for f in spec.stored_fields:
            assert f.column is not None and f.local_type is not None
            cols[f.column] = (f.local_type, f.nullable)
        tables[spec.table] = cols
    for table in LOCAL_TABLES:
        tables[table.name] = {c.name: (c.local_type, c.nullable) for c in table.columns}
    return tables


def columns(db: LocalDB) -> dict[tuple[str, str], dict[str, Any]]:
    """(table, column) -> its information_schema.columns row, for this test's schema."""
    rows = db.query(
        "SELECT table_name, column_name, is_nullable, data_type, character_maximum_length,"
        " numeric_precision, numeric_scale FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_catalog = current_database()"
    ).to_dicts()
    return {(r["table_name"], r["column_name"]): r for r in rows}


def constraints(db: LocalDB, kind: str) -> dict[str, list[tuple[str, ...]]]:
    """table -> column tuples of its constraints of ``kind`` ('PRIMARY KEY', 'UNIQUE')."""
    rows = db.query(
        "SELECT tc.constraint_type, tc.table_name, tc.constraint_name, k.column_name"
        " FROM information_schema.table_constraints tc"
        " JOIN information_schema.key_column_usage k"
        "   ON k.constraint_name = tc.constraint_name AND k.table_name = tc.table_name"
        "  AND k.table_schema = tc.table_schema AND k.table_catalog = tc.table_catalog"
        " WHERE tc.table_schema = current_schema() AND tc.table_catalog = current_database()"
        " ORDER BY tc.table_name, tc.constraint_name, k.ordinal_position"
    ).rows()
    grouped: dict[tuple[str, str], list[str]] = {}
    for constraint_type, table, name, column in rows:
        if constraint_type != kind:
            continue
        grouped.setdefault((table, name), []).append(column)
    out: dict[str, list[tuple[str, ...]]] = {}
    for (table, _), cols in grouped.items():
        out.setdefault(table, []).append(tuple(cols))
    return out


def insert(db: LocalDB, table: str, **values: Any) -> None:
    """A plain INSERT (not the bulk path), with the driver's own placeholder style, written
    through the escape hatch (the tables that copy Zuora are guarded on PostgreSQL; inside
    a caller's transaction the hatch's transaction is a savepoint)."""
    mark = "%s" if db.dialect == "postgres" else "?"
    cols = ", ".join(values)
    outside_write(db, f"INSERT INTO {table} ({cols}) VALUES "
                  f"({', '.join([mark] * len(values))})", list(values.values()))


def required(table: str, **values: Any) -> dict[str, Any]:
    """A row of ``table`` with a dummy value in every NOT NULL column, overridden by
    ``values``."""
    row: dict[str, Any] = {}
    for name, (local_type, nullable) in expected_columns()[table].items():
        if nullable:
            continue
        if m := _VARCHAR.fullmatch(local_type):
            row[name] = f"{name}-x"[: int(m.group(1))]
        elif local_type in ("INTEGER", "BIGINT"):
            row[name] = 1
        elif local_type == "BOOLEAN":
            row[name] = False
        elif local_type == "DATE":
            row[name] = date(2024, 1, 1)
        elif local_type == "TIMESTAMP":
            row[name] = datetime(2024, 1, 1, 12, 0)
        else:
            row[name] = Decimal("1")
    return {**row, **values}


def fk_rows(pg: LocalDB) -> list[tuple[Any, ...]]:
    return pg.query(
        "SELECT c.conrelid::regclass::text AS tbl, a.attname AS col,"
        " c.confrelid::regclass::text AS ref_tbl, fa.attname AS ref_col,"
        " c.condeferrable, c.condeferred"
        " FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
        " JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = ANY (c.confkey)"
        " WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
        " ORDER BY 1, 2"
    ).rows()


# -- the fixtures themselves ----------------------------------------------------------------
@pytest.mark.postgres
def test_pg_url_lands_in_its_own_schema(pg_url: str, pg_dsn: str) -> None:
    with connect(pg_url) as conn:
        schema = conn.query("SELECT current_schema() AS s")["s"][0]
        assert schema.startswith("t_")
        conn.execute("CREATE TABLE probe (x int)")
    with psycopg.connect(pg_dsn) as raw:
        found = raw.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'probe'"
        ).fetchall()
    assert found == [(schema,)]


# -- tables and columns ---------------------------------------------------------------------
def test_every_table_exists(db: LocalDB) -> None:
    found = db.query(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema ="
        " current_schema() AND table_catalog = current_database()")
    tables = set(found.filter(pl.col("table_type") == "BASE TABLE")["table_name"])
    assert tables == set(all_tables()) | set(recon_objects.OBJECTS)  # init stamps it too
    assert set(all_tables()) == set(expected_columns())
    # and recon's views (core.localdb.views), nothing else
    assert set(found.filter(pl.col("table_type") == "VIEW")["table_name"]) == {
        v.name for v in views.VIEWS}


def test_columns_and_nullability_match_the_catalogue(db: LocalDB) -> None:
    actual = columns(db)
    for table, cols in expected_columns().items():
        assert {c for t, c in actual if t == table} == set(cols), table
        for name, (_, nullable) in cols.items():
            assert actual[(table, name)]["is_nullable"] == ("YES" if nullable else "NO"), (
                f"{table}.{name}"
            )


def test_every_stored_field_has_its_column(db: LocalDB) -> None:
    actual = columns(db)
    for spec in OBJECTS:
        for f in spec.stored_fields:
            row = actual.get((spec.table, f.column))
            assert row is not None, f"{spec.name}.{f.name} -> {spec.table}.{f.column} missing"
            assert row["is_nullable"] == ("YES" if f.nullable else "NO"), f"{spec.name}.{f.name}"


@pytest.mark.postgres
def test_types_lengths_and_decimals_on_postgres(pg: LocalDB) -> None:
    actual = columns(pg)
    for table, cols in expected_columns().items():
        for name, (local_type, _) in cols.items():
            row = actual[(table, name)]
            assert row["data_type"] == PG_TYPES[local_type.split("(")[0]], f"{table}.{name}"
    for spec in OBJECTS:
        for f in spec.stored_fields:
            row = actual[(spec.table, f.column)]
            assert row["character_maximum_length"] == f.max_length, f"{spec.name}.{f.name}"
            m = _DECIMAL.fullmatch(f.local_type or "")
            if m:
                assert (row["numeric_precision"], row["numeric_scale"]) == (
                    int(m.group(1)), f.scale), f"{spec.name}.{f.name}"
    for table in LOCAL_TABLES:
        for c in table.columns:
            m = _VARCHAR.fullmatch(c.local_type)
            assert actual[(table.name, c.name)]["character_maximum_length"] == (
                int(m.group(1)) if m else None), f"{table.name}.{c.name}"


def test_decimal_precision_and_scale(db: LocalDB) -> None:
    """DuckDB keeps DECIMAL(p,s) exactly too (it ignores only VARCHAR lengths)."""
    actual = columns(db)
    decimals = [(s, f) for s in OBJECTS for f in s.stored_fields
                if _DECIMAL.fullmatch(f.local_type or "")]
    assert decimals, "the catalogue declares decimal columns (tier prices)"
    for spec, f in decimals:
        m = _DECIMAL.fullmatch(f.local_type or "")
        assert m is not None
        row = actual[(spec.table, f.column)]
        assert (row["numeric_precision"], row["numeric_scale"]) == (int(m.group(1)), f.scale)


# -- keys and constraints -------------------------------------------------------------------
def test_primary_keys(db: LocalDB) -> None:
    pks = constraints(db, "PRIMARY KEY")
    for table in all_tables():
        want = "zuora_id" if table.startswith("zuora_local_") else "id"
        assert pks.get(table) == [(want,)], table
    for spec in OBJECTS:
        assert pks[spec.table] == [(spec.local_pk,)]


def test_unique_constraints_are_exactly_the_declared_ones(db: LocalDB) -> None:
    uniques = {t: sorted(cols) for t, cols in constraints(db, "UNIQUE").items()}
    assert uniques == {
        "billing_accounts": [("zuora_account_id",)],
        "billing_account_contacts": [("zuora_contact_id",)],
        "customers": [("email",)],
    }


def test_unique_billing_account_zuora_id_rejects_duplicate(db: LocalDB) -> None:
    insert(db, "billing_accounts", **required("billing_accounts", id=1, zuora_account_id="a1"))
    with pytest.raises(DUPLICATE):
        insert(db, "billing_accounts",
               **required("billing_accounts", id=2, zuora_account_id="a1"))
    insert(db, "billing_accounts", **required("billing_accounts", id=3, zuora_account_id="a2"))


def test_unique_customer_email_rejects_duplicate(db: LocalDB) -> None:
    insert(db, "customers", id=1, email="ann@example.com")
    with pytest.raises(DUPLICATE):
        insert(db, "customers", id=2, email="ann@example.com")


def test_orders_allow_duplicate_subscription_names(db: LocalDB) -> None:
    """Duplicates are data recon must find (D11), so the schema must be able to hold them."""
    insert(db, "orders", id=1, subscription_name="A-S00000001")
    insert(db, "orders", id=2, subscription_name="A-S00000001")
    names = db.query("SELECT subscription_name, trial, reconciliation_accepted FROM orders")
    assert names.rows() == [("A-S00000001", False, False)] * 2


def test_not_null_booleans_default_to_false(db: LocalDB) -> None:
    row = required("zuora_local_subscriptions", zuora_id="s1")
    del row["auto_renew"]
    insert(db, "zuora_local_subscriptions", **row)
    got = db.query("SELECT auto_renew FROM zuora_local_subscriptions")
    assert got["auto_renew"].to_list() == [False]


# -- seed 003 -------------------------------------------------------------------------------
def test_subscription_table_is_exactly_seed_003(db: LocalDB) -> None:
    seed_names = [name for _, name, _ in SEED_003_ROWS]
    assert len(seed_names) == len(set(seed_names)) == 42
    actual = columns(db)
    assert {c for t, c in actual if t == "zuora_local_subscriptions"} == set(seed_names)
    for kind, name, annotation in SEED_003_ROWS:
        not_null = annotation.startswith("PK") or "null:false" in annotation
        row = actual[("zuora_local_subscriptions", name)]
        assert row["is_nullable"] == ("NO" if not_null else "YES"), name
        if db.dialect == "postgres":
            length = re.fullmatch(r"string\((\d+)\)", kind)
            assert row["character_maximum_length"] == (int(length.group(1)) if length else None)


@pytest.mark.postgres
def test_seed_003_foreign_keys_exist_and_are_deferrable(pg: LocalDB) -> None:
    fks = {(t, c): (rt, rc, deferrable, deferred)
           for t, c, rt, rc, deferrable, deferred in fk_rows(pg)}
    assert set(fks) == set(SEED_003_FOREIGN_KEYS)
    for key, (ref_table, ref_col) in SEED_003_FOREIGN_KEYS.items():
        assert fks[key] == (ref_table, ref_col, True, True), key


@pytest.mark.postgres
def test_subtree_inserts_children_first_inside_one_transaction(pg: LocalDB) -> None:
    with pg.transaction():
        insert(pg, "zuora_local_rate_plan_charge_tiers",
               **required("zuora_local_rate_plan_charge_tiers", zuora_id="t1",
                          rate_plan_charge_id="c1"))
        insert(pg, "zuora_local_rate_plan_charges",
               **required("zuora_local_rate_plan_charges", zuora_id="c1", rate_plan_id="r1"))
        insert(pg, "zuora_local_rate_plans",
               **required("zuora_local_rate_plans", zuora_id="r1", subscription_id="s1"))
        insert(pg, "zuora_local_subscriptions",
               **required("zuora_local_subscriptions", zuora_id="s1"))
    assert pg.query("SELECT count(*) AS n FROM zuora_local_rate_plan_charge_tiers")["n"][0] == 1


@pytest.mark.postgres
def test_child_without_parent_fails_at_commit(pg: LocalDB) -> None:
    reached_commit = False
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        with pg.transaction():
            insert(pg, "zuora_local_rate_plans",
                   **required("zuora_local_rate_plans", zuora_id="r1", subscription_id="gone"))
            reached_commit = True  # deferred: the insert itself is accepted
    assert reached_commit
    assert pg.query("SELECT count(*) AS n FROM zuora_local_rate_plans")["n"][0] == 0


# -- lifecycle ------------------------------------------------------------------------------
def test_init_schema_is_idempotent(db: LocalDB) -> None:
    insert(db, "customers", id=1, email="kept@example.com")
    before = columns(db), constraints(db, "PRIMARY KEY"), constraints(db, "UNIQUE")
    fks = fk_rows(db) if db.dialect == "postgres" else []
    assert db.init_schema() == all_tables()
    assert (columns(db), constraints(db, "PRIMARY KEY"), constraints(db, "UNIQUE")) == before
    if db.dialect == "postgres":
        assert fk_rows(db) == fks
    assert db.query("SELECT email FROM customers")["email"].to_list() == ["kept@example.com"]


def test_load_keeps_empty_string_and_null_apart(db: LocalDB) -> None:
    tricky = 'O"Brien, Jr.\nsecond line; ünïcode'
    frame = pl.DataFrame(
        {
            "id": [1, 2, 3],
            "email": ["a@example.com", "b@example.com", "c@example.com"],
            "first_name": ["", None, tricky],
            "company": [None, "", "x"],
        }
    )
    assert db.load("customers", frame) == 3
    got = db.query("SELECT id, first_name, company, billable FROM customers ORDER BY id")
    assert got.rows() == [(1, "", None, None), (2, None, "", None), (3, tricky, "x", None)]
    nulls = db.query(
        "SELECT count(*) AS n FROM customers WHERE first_name IS NULL OR company IS NULL"
    )["n"][0]
    assert nulls == 2


def test_load_keeps_a_literal_backslash_n_string(db: LocalDB) -> None:
    db.load("customers", pl.DataFrame({"id": [1], "email": ["a@example.com"],
                                       "first_name": ["\\N"]}))
    assert db.query("SELECT first_name FROM customers").rows() == [("\\N",)]


def test_load_of_empty_frame_is_a_no_op(db: LocalDB) -> None:
    assert db.load("customers", pl.DataFrame({"id": [], "email": []})) == 0


@pytest.mark.postgres
def test_reset_identities_lets_inserts_without_id_follow_loaded_rows(pg: LocalDB) -> None:
    pg.load("customers", pl.DataFrame({"id": [1, 2], "email": ["a@x.org", "b@x.org"]}))
    with pytest.raises(psycopg.errors.UniqueViolation):  # identity still starts at 1
        pg.execute("INSERT INTO customers (email) VALUES ('c@x.org')")
    pg.reset_identities()
    pg.reset_identities()  # harmless to repeat, and fine on the empty tables
    pg.execute("INSERT INTO customers (email) VALUES ('c@x.org')")
    pg.execute("INSERT INTO orders (subscription_name) VALUES ('A-S1')")
    ids = pg.query("SELECT id FROM customers ORDER BY id")["id"].to_list()
    assert ids == [1, 2, 3]
    assert pg.query("SELECT id FROM orders")["id"].to_list() == [1]


def test_reset_identities_is_harmless_on_duckdb(duckdb_url: str) -> None:
    """DuckDB has no identities: the call must neither fail nor touch loaded rows."""
    with connect(duckdb_url) as conn:
        conn.init_schema()
        conn.load("customers", pl.DataFrame({"id": [7], "email": ["a@example.com"]}))
        conn.reset_identities()
        assert conn.query("SELECT id, email FROM customers").rows() == [(7, "a@example.com")]

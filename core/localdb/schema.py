"""One DDL source for the local schema, rendered for PostgreSQL or DuckDB from the catalogue.

Column names, types, lengths and null rules come from ``core.catalog``; this module only
decides how each dialect spells keys, identities and constraints:

* PostgreSQL: surrogate ``id`` columns are identities; the subscription subtree has the seed's
  foreign keys (deferrable, so a whole version subtree can be replaced in one transaction);
  secondary indexes for the lookups the repair job makes.
* DuckDB: no identities (writers assign ids), no foreign keys and no secondary indexes, which
  DuckDB's columnar engine does not need and which slow bulk loads and updates there.
"""

from __future__ import annotations

from core.catalog import LOCAL_TABLES, OBJECTS, Column, LocalTable, ObjectSpec
from core.localdb.dialect import Dialect

DIALECTS = tuple(d.value for d in Dialect)

# (table, column, referenced table, referenced column): seed 003's FKs.
FOREIGN_KEYS = (
    ("zuora_local_rate_plans", "subscription_id", "zuora_local_subscriptions", "zuora_id"),
    ("zuora_local_rate_plan_charges", "rate_plan_id", "zuora_local_rate_plans", "zuora_id"),
    ("zuora_local_rate_plan_charge_tiers", "rate_plan_charge_id",
     "zuora_local_rate_plan_charges", "zuora_id"),
)
INDEXES = (
    ("zuora_local_subscriptions", ("name",)),
    ("zuora_local_subscriptions", ("account_id",)),
    ("zuora_local_rate_plans", ("subscription_id",)),
    ("zuora_local_rate_plan_charges", ("rate_plan_id",)),
    ("zuora_local_rate_plan_charges", ("subscription_id",)),
    ("zuora_local_rate_plan_charges", ("charge_number",)),
    ("zuora_local_rate_plan_charge_tiers", ("rate_plan_charge_id",)),
    ("zuora_local_product_rate_plans", ("product_id",)),
    ("zuora_local_product_rate_plan_charges", ("product_rate_plan_id",)),
    ("zuora_local_product_rate_plan_charge_tiers", ("product_rate_plan_charge_id",)),
    ("billing_account_contacts", ("zuora_account_id",)),
    ("billing_account_memberships", ("customer_id", "billing_account_id")),
    ("billing_account_memberships", ("billing_account_id",)),
    ("orders", ("subscription_name",)),
    ("orders", ("zuora_account_id",)),
    ("orders", ("billing_account_id",)),
)


def _check(dialect: str) -> Dialect:
    return Dialect.named(dialect)


def _coldef(name: str, sql_type: str, nullable: bool, default: str | None, dialect: Dialect,
            identity: bool) -> str:
    parts = [name, sql_type]
    if identity and dialect.identity_clause:
        parts.append(dialect.identity_clause)
    if default is not None:
        parts.append(f"DEFAULT {default}")
    if not nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def _object_columns(spec: ObjectSpec) -> list[tuple[str, str, bool, str | None]]:
    cols: list[tuple[str, str, bool, str | None]] = []
    extra = {c.name: c for c in spec.extra_columns}
    if spec.local_pk in extra:
        c = extra[spec.local_pk]
        cols.append((c.name, c.local_type, c.nullable, c.default))
    for f in spec.fields:
        if f.column is not None:
            assert f.local_type is not None, f"{spec.name}.{f.name} needs a local_type"
            default = "false" if f.local_type == "BOOLEAN" and not f.nullable else None
            cols.append((f.column, f.local_type, f.nullable, default))
    for c in spec.extra_columns:
        if c.name != spec.local_pk:
            cols.append((c.name, c.local_type, c.nullable, c.default))
    return cols


def _table_ddl(name: str, cols: list[tuple[str, str, bool, str | None]], pk: str,
               uniques: list[tuple[str, ...]], dialect: Dialect) -> str:
    lines = [
        _coldef(n, t, nullable, default, dialect, identity=(n == pk and t == "BIGINT"))
        for n, t, nullable, default in cols
    ]
    lines.append(f"PRIMARY KEY ({pk})")
    lines += [f"UNIQUE ({', '.join(u)})" for u in uniques]
    body = ",\n  ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {body}\n)"


def object_table_ddl(spec: ObjectSpec, dialect: str) -> str:
    return _table_ddl(spec.table, _object_columns(spec), spec.local_pk,
                      [(u,) for u in spec.unique_local], _check(dialect))


def local_table_ddl(table: LocalTable, dialect: str) -> str:
    cols = [(c.name, c.local_type, c.nullable, c.default) for c in table.columns]
    return _table_ddl(table.name, cols, table.pk, list(table.unique), _check(dialect))


def table_columns(table: str) -> list[Column]:
    """Every column of a local table, in DDL order (for loaders and contracts)."""
    for spec in OBJECTS:
        if spec.table == table:
            return [Column(n, t, nullable, default=d) for n, t, nullable, d in
                    _object_columns(spec)]
    for t in LOCAL_TABLES:
        if t.name == table:
            return list(t.columns)
    raise KeyError(table)


def all_tables() -> list[str]:
    """Every local table, parents before children."""
    return [s.table for s in OBJECTS] + [t.name for t in LOCAL_TABLES]


def deviations() -> list[tuple[str, str, str, str]]:
    """(table, column, local type, why) of every column the catalogue adds to a seed's
    schema (``Field.deviation``): additive and nullable, so an existing database gains it with
    ``ADD COLUMN IF NOT EXISTS`` and nothing else changes."""
    out = []
    for spec in OBJECTS:
        for f in spec.stored_fields:
            if f.deviation:
                assert f.nullable and f.local_type, f"{spec.name}.{f.name}: an added column " \
                    "must be nullable and typed"
                out.append((spec.table, f.column or "", f.local_type, f.deviation))
    return out


def ddl(dialect: str) -> list[str]:
    """The statements that create the whole local schema (idempotent: IF NOT EXISTS), then
    the columns added since a database was created and recon's views (``core.localdb.views``)."""
    from core.localdb import views

    d = _check(dialect)
    stmts = [object_table_ddl(s, d) for s in OBJECTS]
    stmts += [local_table_ddl(t, d) for t in LOCAL_TABLES]
    stmts += [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {local_type}"
              for table, column, local_type, _ in deviations()]
    if d.secondary_structures:
        for i, (table, cols) in enumerate(INDEXES):
            name = f"ix{i:02d}_{table}"[:63]
            stmts.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(cols)})")
        for table, col, ref_table, ref_col in FOREIGN_KEYS:
            name = f"fk_{table}_{col}"
            stmts.append(
                f"DO $$ BEGIN ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({col}) "
                f"REFERENCES {ref_table} ({ref_col}) DEFERRABLE INITIALLY DEFERRED; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
    return stmts + views.ddl(d)  # views over the tables (orders_current, catalog scopes)


def missing_columns(db: object, tables: list[str] | None = None) -> list[tuple[str, Column]]:
    """Catalogue columns that ``tables`` (default: every local table) of the local database
    ``db`` (a LocalDB) lack — e.g. a column a later recon added (``Field.deviation``) to a
    database created before it. A table that is missing altogether is not listed here (its
    readers name it). Read from ``information_schema``, which both dialects answer."""
    wanted = tables or all_tables()
    found = db.query(  # type: ignore[attr-defined]
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()")
    have: dict[str, set[str]] = {}
    for table, column in found.iter_rows():
        have.setdefault(table, set()).add(column)
    return [(t, c) for t in wanted if t in have for c in table_columns(t)
            if c.name not in have[t]]


def require_columns(db: object, tables: list[str] | None = None) -> None:
    """Refuse, naming each missing column and the statement that adds it, when the local
    database lacks a column the catalogue declares (``recon db init`` adds them to a database
    recon manages; an application adds them in its migrations)."""
    from core.errors import LocalDatabaseError

    gone = missing_columns(db, tables)
    if gone:
        fixes = "; ".join(f"ALTER TABLE {t} ADD COLUMN {c.name} {c.local_type}"
                          for t, c in gone)
        raise LocalDatabaseError(
            f"the local database lacks {len(gone)} column(s) this recon reads: "
            + ", ".join(f"{t}.{c.name}" for t, c in gone)
            + f"; run `recon db init` on a database recon manages, or add them in the "
            f"application's migrations: {fixes}")


def render(dialect: str) -> str:
    """The schema as one SQL script (``recon db init --print``)."""
    return ";\n\n".join(ddl(dialect)) + ";\n"

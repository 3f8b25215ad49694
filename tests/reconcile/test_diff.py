"""The diff hashes aligned (cast, not normalised) values and normalises only candidate rows:
these tests pin the property that makes that exact, and its edges."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from core.catalog import OBJECTS, Field, Norm, ObjectSpec, ZType
from reconcile.diff import diff_object
from reconcile.findings import FINDINGS_DDL
from reconcile.normalize import ZUORA_SQL_TYPES, aligned, typed

# Representative local values per local SQL type (base name), as SQL literals.
SAMPLES = {
    "VARCHAR": ["NULL", "''", "' '", "'abc'", "' Abc '", "'Canceled'", "'Pending_Activation'",
                "'a; B ;;c'", "'FOO@Example.COM '", "'12.5'", "'2024-02-29'"],
    "DECIMAL": ["NULL", "0", "1.5", "-0.005", "0.125", "123456.789"],
    "INTEGER": ["NULL", "0", "7", "-3"],
    "BIGINT": ["NULL", "0", "7", "-3"],
    "DATE": ["NULL", "DATE '2024-02-29'", "DATE '1999-12-31'"],
    "TIMESTAMP": ["NULL", "TIMESTAMP '2024-02-29 23:59:59.999'", "TIMESTAMP '2024-01-01'"],
    "BOOLEAN": ["NULL", "true", "false"],
}


def _base(sql_type: str) -> str:
    return sql_type.split("(")[0].upper()


@pytest.mark.slow
def test_normalising_the_aligned_value_is_normalising_the_value() -> None:
    """For every compared field of the catalogue whose alignment is exact, the normalised
    local value computed from the aligned value equals the one computed from the value
    itself: so equal aligned hashes can never hide a normalised difference."""
    con = duckdb.connect()
    checked = 0
    for spec in OBJECTS:
        for f in spec.compared_fields:
            source = None if f.ref is not None else f.local_type
            local_type = "VARCHAR" if source is None else source
            expr = aligned(f, "v", source)
            if expr is None:
                continue
            for lit in SAMPLES[_base(local_type)]:
                direct = typed(f, "v", source)
                via = typed(f, expr, ZUORA_SQL_TYPES[f.ztype])
                try:
                    got = con.execute(
                        f"SELECT {direct} IS NOT DISTINCT FROM {via} "
                        f"FROM (SELECT CAST({lit} AS {local_type}) AS v)").fetchall()[0][0]
                except duckdb.ConversionException:
                    continue  # a value this field's normalisation cannot take at all
                assert got, f"{spec.name}.{f.name} ({local_type}) differs for {lit}"
                checked += 1
    assert checked > 300


def test_lossy_local_decimal_is_not_aligned() -> None:
    """A local column with more than 9 decimal places cannot be cast to Zuora's
    DECIMAL(38,9) without rounding: that field is hashed normalised on both sides."""
    f = Field("Price", ZType.DECIMAL, "price", "DECIMAL(38,12)", norm=Norm.DECIMAL)
    assert aligned(f, "x", "DECIMAL(38,12)") is None
    assert aligned(f, "x", "DECIMAL(18,2)") == "CAST(x AS DECIMAL(38,9))"
    assert aligned(f, "x", "DECIMAL(38,9)") == "x"
    g = Field("Name", ZType.STR, "name", "VARCHAR(255)")
    assert aligned(g, "x", "VARCHAR(255)") == "x"


SPEC = ObjectSpec(
    name="Thing", table="things", group="subscriptions", local_pk="zuora_id",
    fields=(
        Field("Id", ZType.ID, "zuora_id", "VARCHAR(64)", nullable=False, zuora_required=True),
        Field("Channel__c", ZType.STR, "channel__c", "VARCHAR(50)", norm=Norm.CUSTOM),
        Field("Status", ZType.STR, "status", "VARCHAR(64)", norm=Norm.ENUM,
              enum=("Active", "Pending Activation", "Cancelled")),
        Field("Price", ZType.DECIMAL, "price", "DECIMAL(18,2)", norm=Norm.DECIMAL),
        Field("Quantity", ZType.DECIMAL, "quantity", "DECIMAL(38,12)", norm=Norm.DECIMAL),
        Field("StartDate", ZType.DATE, "start_date", "DATE", norm=Norm.DATE),
    ),
)


def _diff(zuora_rows: list[str], local_rows: list[str], zuora_file: Path | None = None):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA zuora")
    con.execute("CREATE SCHEMA local")
    con.execute('CREATE TABLE zuora."Thing" ("Id" VARCHAR, "Channel__c" VARCHAR, '
                '"Status" VARCHAR, "Price" DECIMAL(38,9), "Quantity" DECIMAL(38,9), '
                '"StartDate" DATE)')
    con.execute("CREATE TABLE local.things (zuora_id VARCHAR, channel__c VARCHAR, "
                "status VARCHAR, price DECIMAL(18,2), quantity DECIMAL(38,12), "
                "start_date DATE)")
    for r in zuora_rows:
        con.execute(f'INSERT INTO zuora."Thing" VALUES ({r})')
    if zuora_file is not None:  # the engine's way: a view over the snapshot's file
        con.execute(f"COPY zuora.\"Thing\" TO '{zuora_file}' (FORMAT parquet)")
        con.execute('DROP TABLE zuora."Thing"')
        con.execute(f"CREATE VIEW zuora.\"Thing\" AS SELECT * FROM read_parquet('{zuora_file}')")
    for r in local_rows:
        con.execute(f"INSERT INTO local.things VALUES ({r})")
    con.execute("SET search_path = 'zuora,local'")
    con.execute(FINDINGS_DDL)
    stats, fields = diff_object(con, SPEC, zuora_file=zuora_file)
    found = con.execute("SELECT key, kind, field, zuora_value, local_value FROM findings "
                        "ORDER BY key, field").fetchall()
    return stats, fields, found


Z1 = "'a', 'web', 'Pending Activation', 1.5, 2.000000000, DATE '2024-01-01'"


@pytest.mark.parametrize("local", [
    "'a', ' web ', 'PendingActivation', 1.50, 2.000000000000, DATE '2024-01-01'",
    "'a', 'web', 'pending_activation', 1.5, 2, DATE '2024-01-01'",
])
def test_representation_only_differences_are_candidates_that_vanish(local: str) -> None:
    """The aligned hashes differ (the text and the extra decimal places are really there),
    so the row is looked at; normalised it is equal: no finding, not counted unequal."""
    stats, fields, found = _diff([Z1], [local])
    assert found == []
    assert stats.unequal == 0 and fields.height == 0
    assert stats.matched == 1


@pytest.mark.parametrize("from_file", [False, True], ids=["view", "file"])
def test_real_differences_next_to_representation_ones_are_found(tmp_path: Path,
                                                                 from_file: bool) -> None:
    """Quantity is hashed normalised (its local column keeps 12 places), the rest aligned;
    the local copy keeps 12 places, so a 13th-place difference is not one, a 1st-place one
    is. The candidates' Zuora values are the same read through the view or from the file."""
    stats, fields, found = _diff(
        [Z1, "'b', NULL, 'Active', 10, 1, DATE '2024-01-01'",
         "'d', NULL, 'Active', 1, 1.000000001, DATE '2024-01-01'"],
        ["'a', ' web ', 'Cancelled', 1.50, 2.1, DATE '2024-01-02'",
         "'b', '', 'Active', 10.00, 1, DATE '2024-01-01'",
         "'c', NULL, 'Active', 1, 1, DATE '2024-01-01'",
         "'d', NULL, 'Active', 1, 1.0000000010004, DATE '2024-01-01'"],
        zuora_file=tmp_path / "Thing.parquet" if from_file else None)
    assert found == [
        ("a", "field_mismatch", "Quantity", "2.000000000000", "2.100000000000"),
        ("a", "field_mismatch", "StartDate", "2024-01-01", "2024-01-02"),
        ("a", "field_mismatch", "Status", "pendingactivation", "cancelled"),
        ("c", "orphaned_in_local", None, None, None),
    ]
    assert stats.unequal == 1 and stats.only_local == 1 and stats.matched == 3
    assert sorted(fields["field"].to_list()) == ["Quantity", "StartDate", "Status"]

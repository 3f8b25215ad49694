"""Hand-valued edges of the normalisation (``reconcile.normalize``) that the main table
(``test_ground_truth_normalize.py``) does not reach: decimals beyond the 64-bit fast path,
integers beyond BIGINT, enum spellings with other whitespace, multiselect case, local columns
of a type other than the catalogue's (float storage), and where the diff may hash a local
value cast to Zuora's type instead of normalising it.

Every expected value is a literal written from the rule cited; nothing expected is computed
by the code under test. Rules (domain.md unless said otherwise):

* HALF  §1.9, D06: decimals rounded half-up (ties away from zero, not half-even) to the
        local column's scale, once, from the stored value; integers the same at scale 0.
* FLOAT D06 "Arises": local float storage (IronBank's CSV converters produce Float), so a
        local column may be DOUBLE where the catalogue says DECIMAL/INTEGER.
* SCALE D26 decimal scale (``10`` vs ``10.000000000``): Zuora's decimals carry 9 places
        (a snapshot types them DECIMAL(38,9), core/values.py); a column with no declared
        scale is compared at those 9 places.
* WIDE  issue 13 "Valid in Zuora": a Zuora decimal is valid within DECIMAL(38,9) (29 integer
        digits), an integer within int64; a value the local column cannot hold is still
        compared in full and shown exactly (it is a finding for a person, never a crash).
* ENUM  D26 and the catalogue's ENUM key (core/catalog/model.py ``Norm.ENUM``; restated
        by expectations/contracts.py ``squash_enum``): trimmed, whitespace, ``_`` and ``-``
        removed, case folded, Canceled = Cancelled.
* MULTI seed 004 L155-156: Tier__c / DeploymentType__c are multiselect *enums*: a set of
        enum values, so member case is a spelling (ENUM), not another value.
* TYPE  ``normalize.typed``'s contract: the same DuckDB type on both sides.
"""

from __future__ import annotations

import duckdb
import pytest

from core.catalog import OBJECTS, Field, Norm, ObjectSpec, ZType, get
from reconcile.diff import diff_object
from reconcile.findings import FINDINGS_DDL
from reconcile.normalize import ZUORA_SQL_TYPES, aligned, canonical, typed


def pairs(f: Field, local_type: str, cases: list[tuple[str | None, str | None]],
          ) -> list[tuple[str | None, str | None, bool]]:
    """(Zuora canonical text, local canonical text, equal after normalisation) per
    (Zuora value, local value) pair, both given as text and cast to the snapshot's type of
    ``f`` and to ``local_type``."""
    ztype = ZUORA_SQL_TYPES[f.ztype]
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t (i INTEGER, z {ztype}, l {local_type})")
        con.executemany("INSERT INTO t VALUES (?, CAST(? AS " + ztype + "), CAST(? AS "
                        + local_type + "))", [(i, z, lo) for i, (z, lo) in enumerate(cases)])
        rows = con.execute(
            f"SELECT {canonical(f, 'z', ztype)}, {canonical(f, 'l', local_type)}, "
            f"{typed(f, 'z', ztype)} IS NOT DISTINCT FROM {typed(f, 'l', local_type)} "
            "FROM t ORDER BY i").fetchall()
    finally:
        con.close()
    return [tuple(r) for r in rows]


def catalogue(obj: str, name: str) -> tuple[Field, str]:
    f = get(obj).field(name)
    assert f.local_type is not None
    return f, f.local_type


# -- decimals and integers beyond the 64-bit fast path ------------------------------------------
def test_prices_above_a_billion_round_half_up_to_cents() -> None:
    """HALF, WIDE: RatePlanChargeTier.Price into DECIMAL(18,2) holds 16 integer digits, so a
    price of 1,234,567,890.125 is a valid local value: rounded half-up to .13 and compared."""
    f, lt = catalogue("RatePlanChargeTier", "Price")
    assert pairs(f, lt, [
        ("1234567890.125", "1234567890.13"),
        ("-1234567890.125", "-1234567890.13"),
        ("98765432109876.545", "98765432109876.55"),
        ("1234567890.125", "1234567890.12"),
        ("1234567890.125", None),
    ]) == [
        ("1234567890.13", "1234567890.13", True),
        ("-1234567890.13", "-1234567890.13", True),
        ("98765432109876.55", "98765432109876.55", True),
        ("1234567890.13", "1234567890.12", False),
        ("1234567890.13", None, False),
    ]


def test_integer_normalisation_beyond_int32_and_int64() -> None:
    """HALF, WIDE: RatePlanCharge.Quantity (Zuora decimal) vs the local INTEGER column. A Zuora
    quantity of 3,000,000,000.5 (beyond INTEGER) or 10^20 (beyond BIGINT) is still rounded
    half-up and shown in full; it never equals a local NULL or a small number."""
    f, lt = catalogue("RatePlanCharge", "Quantity")
    assert pairs(f, lt, [
        ("3000000000.5", None),
        ("-2500000000.5", None),
        ("100000000000000000000", "7"),
        ("99999999999999999999999999999.5", None),
        ("1000000000", None),
    ]) == [
        ("3000000001", None, False),
        ("-2500000001", None, False),
        ("100000000000000000000", "7", False),
        ("100000000000000000000000000000", None, False),
        ("1000000000", None, False),
    ]


# -- enum spellings and multiselect case ----------------------------------------------------------
def test_enum_spellings_with_other_whitespace() -> None:
    """ENUM: a line break, a tab, a hyphen, an underscore or a no-break space at either end
    (text pasted from a web page) is spelling; another status is not."""
    f, lt = catalogue("Subscription", "Status")
    got = pairs(f, lt, [
        ("Pending\nActivation", "PendingActivation"),
        ("Pending\tActivation", "Pending Activation"),
        ("Pending-Activation", "PendingActivation"),
        ("Pending_Activation", "Pending Activation"),
        ("Active\u00a0", "Active"),
        ("\u00a0Cancelled", "Canceled"),
        ("Pending\nActivation", "Pending\nAcceptance"),
    ])
    assert [same for _, _, same in got] == [True, True, True, True, True, True, False]


def test_multiselect_members_are_case_insensitive() -> None:
    """MULTI: ``Premium;Ultimate`` is the set {premium, ultimate}, shown lower-cased and
    sorted; ``Self_Managed`` is the enum value ``self_managed``."""
    f, lt = catalogue("Product", "Tier__c")
    assert pairs(f, lt, [
        ("Premium;Ultimate", "ultimate;premium"),
        ("PREMIUM", "premium"),
        ("Premium", "Starter"),
    ]) == [
        ("premium;ultimate", "premium;ultimate", True),
        ("premium", "premium", True),
        ("premium", "starter", False),
    ]
    g, lt = catalogue("Product", "DeploymentType__c")
    assert pairs(g, lt, [("Self_Managed;GitLab_Dot_Com", "gitlab_dot_com;self_managed")]) == [
        ("gitlab_dot_com;self_managed", "gitlab_dot_com;self_managed", True)]


# -- local columns of another type than the catalogue's (float storage) ------------------------
QUANTITY_FLOAT = Field("Quantity", ZType.DECIMAL, "quantity", "DOUBLE", norm=Norm.INTEGER)
QUANTITY_FINE = Field("Quantity", ZType.DECIMAL, "quantity", "DECIMAL(38,12)",
                      norm=Norm.INTEGER)
VERSION_FLOAT = Field("Version", ZType.INT, "version", "DOUBLE")
PRICE_FLOAT = Field("Price", ZType.DECIMAL, "price", "DOUBLE", norm=Norm.DECIMAL)


def test_float_quantity_rounds_half_up_not_half_even() -> None:
    """FLOAT, HALF: a quantity stored as a float 12.5 is 13 and 2.5 is 3 (half-even, a
    float's own rounding, would give 12 and 2)."""
    assert pairs(QUANTITY_FLOAT, "DOUBLE", [
        ("12.5", "12.5"), ("2.5", "2.5"), ("2", "2.5"), ("-2.5", "-2.5"),
    ]) == [
        ("13", "13", True), ("3", "3", True), ("2", "3", False), ("-3", "-3", True),
    ]


def test_fine_local_decimal_rounds_once_to_the_integer() -> None:
    """HALF: a local DECIMAL(38,12) quantity of 12.4999999995 rounds, once, to 12; rounding
    it first to Zuora's 9 places (12.500000000) and then to 13 would be double rounding."""
    assert pairs(QUANTITY_FINE, "DECIMAL(38,12)", [
        ("12", "12.499999999500"), ("13", "12.500000000000"),
        ("12", "-0.0"),
    ]) == [
        ("12", "12", True), ("13", "13", True), ("12", "0", False),
    ]


def test_float_integer_field_compares_as_an_integer() -> None:
    """FLOAT: Subscription.Version (a Zuora integer) kept locally as a float 3.0 is the
    integer 3, shown as ``3``."""
    assert pairs(VERSION_FLOAT, "DOUBLE", [("3", "3.0"), ("3", "2.0")]) == [
        ("3", "3", True), ("3", "2", False)]


AUTORENEW_INT = Field("AutoRenew", ZType.BOOL, "auto_renew", "INTEGER", norm=Norm.BOOL)
AUTORENEW_TEXT = Field("AutoRenew", ZType.BOOL, "auto_renew", "VARCHAR(5)", norm=Norm.BOOL)


def test_boolean_kept_as_a_number_or_text_compares_as_a_boolean() -> None:
    """FLOAT (numeric/text storage): Subscription.AutoRenew kept locally as 1/0 or as the
    text ``true`` is the boolean it stands for, shown as ``true``/``false``."""
    assert pairs(AUTORENEW_INT, "INTEGER", [("true", "1"), ("false", "0"), ("true", "0")]) == [
        ("true", "true", True), ("false", "false", True), ("true", "false", False)]
    assert pairs(AUTORENEW_TEXT, "VARCHAR(5)", [("true", "true"), ("true", "false")]) == [
        ("true", "true", True), ("true", "false", False)]


def test_decimal_without_a_local_scale_compares_at_zuoras_nine_places() -> None:
    """SCALE, FLOAT: a float price's binary noise past the 9th place is not drift; a
    difference in the 9th place is."""
    assert pairs(PRICE_FLOAT, "DOUBLE", [
        ("0.3", "0.30000000000000004"), ("0.3", "0.300000004"), ("123456789.5", "123456789.5"),
    ]) == [
        ("0.300000000", "0.300000000", True), ("0.300000000", "0.300000004", False),
        ("123456789.500000000", "123456789.500000000", True),
    ]


END_DATE_TS = Field("TermEndDate", ZType.DATE, "term_end_date", "TIMESTAMP", norm=Norm.DATE)
END_DATE_TEXT = Field("TermEndDate", ZType.DATE, "term_end_date", "VARCHAR(10)",
                      norm=Norm.DATE)


def test_date_kept_as_a_timestamp_or_text_is_that_calendar_day() -> None:
    """DATE (domain.md §1.9: calendar dates are never shifted), FLOAT (other storage): a
    term end kept locally as midnight of that day or as ISO text is that day; the next day
    is not."""
    assert pairs(END_DATE_TS, "TIMESTAMP", [
        ("2026-03-08", "2026-03-08 00:00:00"), ("2026-03-08", "2026-03-09 00:00:00")]) == [
        ("2026-03-08", "2026-03-08", True), ("2026-03-08", "2026-03-09", False)]
    assert pairs(END_DATE_TEXT, "VARCHAR(10)", [("2026-11-01", "2026-11-01")]) == [
        ("2026-11-01", "2026-11-01", True)]


def test_datetimes_compare_to_the_second() -> None:
    """TZ (zuora-api.md §4.1: Zuora writes dateTimes with ``.000`` or no milliseconds):
    Subscription.UpdatedDate is compared to the second, so a local copy's sub-second part
    (a Rails timestamp keeps microseconds) is not drift; a whole second is."""
    f, lt = catalogue("Subscription", "UpdatedDate")
    assert pairs(f, lt, [
        ("2026-01-15 08:00:00", "2026-01-15 08:00:00.250"),
        ("2026-01-15 08:00:00", "2026-01-15 08:00:01"),
    ]) == [
        ("2026-01-15T08:00:00Z", "2026-01-15T08:00:00Z", True),
        ("2026-01-15T08:00:00Z", "2026-01-15T08:00:01Z", False),
    ]


# -- the same type on both sides ----------------------------------------------------------------
def test_typed_gives_both_sides_one_type() -> None:
    """TYPE: for every compared catalogue field, the typed Zuora value and the typed local
    value have the same DuckDB type (an INTEGER local Version becomes BIGINT like Zuora's)."""
    con = duckdb.connect()
    checked = 0
    for spec in OBJECTS:
        for f in spec.compared_fields:
            if f.ref is not None:
                continue
            ztype, lt = ZUORA_SQL_TYPES[f.ztype], f.local_type
            zt, lt_ = con.execute(
                f"SELECT typeof({typed(f, 'z', ztype)}), typeof({typed(f, 'l', lt)}) "
                f"FROM (SELECT CAST(NULL AS {ztype}) AS z, CAST(NULL AS {lt}) AS l)").fetchone()
            assert zt == lt_, f"{spec.name}.{f.name}: {zt} vs {lt_}"
            checked += 1
    assert checked > 100


# -- when the diff may hash the local value cast to Zuora's type ---------------------------------
# DECIMAL(38,9) holds 29 integer digits and 9 places (WIDE): a local decimal fits it exactly,
# and may be hashed cast, exactly when it has at most 9 places and at most 29 integer digits.
ALIGN = [
    ("DECIMAL(22,9)", "CAST(x AS DECIMAL(38,9))"),  # the catalogue's StartingUnit
    ("DECIMAL(18,2)", "CAST(x AS DECIMAL(38,9))"),
    ("DECIMAL(38,9)", "x"),
    ("DECIMAL(38,10)", None),  # 10 places
    ("DECIMAL(30,1)", "CAST(x AS DECIMAL(38,9))"),  # 29 integer digits
    ("DECIMAL(29,0)", "CAST(x AS DECIMAL(38,9))"),
    ("DECIMAL(30,0)", None),  # 30 integer digits
    ("DECIMAL(38,8)", None),
]


@pytest.mark.parametrize(("local_type", "expected"), ALIGN)
def test_alignment_only_when_exact(local_type: str, expected: str | None) -> None:
    """WIDE: ``aligned`` casts a local decimal to Zuora's DECIMAL(38,9) exactly when that
    cast loses nothing, else None (the field is then hashed normalised)."""
    f = Field("Price", ZType.DECIMAL, "price", local_type, norm=Norm.DECIMAL)
    assert aligned(f, "x", local_type) == expected


@pytest.mark.parametrize(("ztype", "local_type", "expected"), [
    (ZType.DATE, "VARCHAR(10)", "CAST(x AS DATE)"),
    (ZType.DECIMAL, "VARCHAR(40)", "CAST(x AS DECIMAL(38,9))"),
    (ZType.STR, "VARCHAR(255)", "x"),
    (ZType.ID, "VARCHAR(64)", "x"),
])
def test_alignment_of_text_columns(ztype: ZType, local_type: str, expected: str) -> None:
    """FLOAT (text storage too): a date or decimal kept in a local text column is cast to
    Zuora's type, so that equal values hash equal; text into text needs no cast."""
    f = Field("X", ztype, "x", local_type)
    assert aligned(f, "x", local_type) == expected


FINE = ObjectSpec(
    name="Fine", table="fines", group="catalog", local_pk="zuora_id",
    fields=(
        Field("Id", ZType.ID, "zuora_id", "VARCHAR(64)", nullable=False, zuora_required=True),
        Field("Amount", ZType.DECIMAL, "amount", "DECIMAL(38,10)", norm=Norm.DECIMAL),
    ),
)


def test_a_tenth_place_difference_is_not_hashed_away() -> None:
    """HALF, WIDE: a local DECIMAL(38,10) value 1.0000000004 is not Zuora's 1 at the local
    scale (1.0000000000): the diff reports it, though both round to 1.000000000 at 9 places."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA zuora")
    con.execute("CREATE SCHEMA local")
    con.execute('CREATE TABLE zuora."Fine" ("Id" VARCHAR, "Amount" DECIMAL(38,9))')
    con.execute("CREATE TABLE local.fines (zuora_id VARCHAR, amount DECIMAL(38,10))")
    con.execute("""INSERT INTO zuora."Fine" VALUES ('a', 1), ('b', 2.5)""")
    con.execute("INSERT INTO local.fines VALUES ('a', 1.0000000004), ('b', 2.5)")
    con.execute("SET search_path = 'zuora,local'")
    con.execute(FINDINGS_DDL)
    diff_object(con, FINE)
    assert con.execute("SELECT key, kind, field, zuora_value, local_value FROM findings "
                       "ORDER BY key").fetchall() == [
        ("a", "field_mismatch", "Amount", "1.0000000000", "1.0000000004")]

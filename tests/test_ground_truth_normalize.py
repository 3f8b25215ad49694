"""Hand-valued ground truth for the normalisation before comparison (``reconcile.normalize``).

Each case is a literal Zuora value (as the snapshot types it), a literal local value (as the
local column stores it) and the literal expected outcome: equal or not, and where the rule
fixes it, the canonical text a finding shows. Values go through the functions the diff uses
(``zuora_side_sql`` / ``local_side_sql`` with ``typed`` for equality and ``canonical`` for the
text), one catalogue field at a time; nothing expected is computed by the code under test.

Rules cited (domain.md unless said otherwise):

* TZ    §1.9, zuora-api.md §4.1: dateTimes come with the tenant offset (Pacific, PST −08:00 /
        PDT −07:00); AQuA writes an exact tenant midnight date-only; an offset-less value is
        tenant wall time; the local copy stores naive UTC. 2026 DST: 8 March 02:00 PST → 03:00
        PDT, 1 November 02:00 PDT → 01:00 PST (America/Los_Angeles).
* DATE  §1.9: calendar dates are never shifted; D05: ±1 day is drift.
* HALF  §1.9, D06: decimals rounded half-up (ties away from zero, Python's ROUND_HALF_UP, not
        half-even) to the local scale; the local copy stores quantity/mrr/tcv/dmrc/dtcv as
        integers (seed 003) and prices as DECIMAL(18,2).
* D26   §5 D26: "" vs NULL on custom fields, Flat Fee/FlatFee, Per Unit/PerUnit, Pending
        Activation/PendingActivation, Cancelled/Canceled, OneTime/One-Time, e-mail case and
        whitespace, decimal scale, tenant offset vs naive UTC are not drift.
* TRIM  §4.4: custom fields: empty or blank strings are NULL (IFF(LENGTH(TRIM(x))>0, x, NULL)).
* MULTI seed 004 (L155-156): Tier__c / DeploymentType__c are multiselect enums: a set of values.
* MAIL  D19: e-mails compared case-insensitively and trimmed.
* REF   seed 001, D18: Bill-To/Sold-To are stored as references to local contact rows; they
        equal Zuora's BillToId/SoldToId when the referenced row carries that contact id.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import polars as pl
import pytest

from extract.catalog import Field, ZType, get
from extract.values import parse_frame, render_frame
from reconcile.normalize import canonical, local_side_sql, typed, zuora_side_sql

LA = "America/Los_Angeles"
# The SQL type each Zuora type has in a snapshot (extract/values.py's module table).
SNAPSHOT_TYPES = {ZType.ID: "VARCHAR", ZType.STR: "VARCHAR", ZType.DATETIME: "TIMESTAMP",
                  ZType.DATE: "DATE", ZType.DECIMAL: "DECIMAL(38,9)", ZType.INT: "BIGINT",
                  ZType.BOOL: "BOOLEAN"}
CONTACTS = [(7, "c_ada"), (8, "c_grace")]  # billing_account_contacts (id, zuora_contact_id)


def compare(obj: str, field: str, pairs: list[tuple[object, object]],
            ) -> list[tuple[str | None, str | None, bool]]:
    """(Zuora canonical text, local canonical text, equal after normalisation) per pair."""
    spec = get(obj)
    f: Field = spec.field(field)
    con = duckdb.connect()
    try:
        con.execute(f'CREATE TABLE "{spec.name}" ("Id" VARCHAR, "{f.name}" '
                    f"{SNAPSHOT_TYPES[f.ztype]})")
        local_type = "BIGINT" if f.ref is not None else f.local_type
        con.execute(f"CREATE TABLE {spec.table} ({spec.key_column} VARCHAR, {f.column} "
                    f"{local_type})")
        keys = [f"k{i:02d}" for i in range(len(pairs))]
        con.executemany(f'INSERT INTO "{spec.name}" VALUES (?, ?)',
                        [(k, z) for k, (z, _) in zip(keys, pairs, strict=True)])
        con.executemany(f"INSERT INTO {spec.table} VALUES (?, ?)",
                        [(k, v) for k, (_, v) in zip(keys, pairs, strict=True)])
        if spec.zuora_scope:  # Contact: only Bill-To/Sold-To contacts are in scope
            con.execute('CREATE TABLE "Account" ("BillToId" VARCHAR, "SoldToId" VARCHAR)')
            con.executemany('INSERT INTO "Account" VALUES (?, ?)', [(k, k) for k in keys])
        if f.ref is not None:  # the local rows the surrogate ids point at
            con.execute(f"CREATE TABLE {f.ref.table} ({f.ref.column} BIGINT, "
                        f"{f.ref.key_column} VARCHAR)")
            con.executemany(f"INSERT INTO {f.ref.table} VALUES (?, ?)", CONTACTS)
        q = f'"{f.name}"'
        rows = con.execute(f"""
            SELECT zc.{q}, lc.{q}, zt.{q} IS NOT DISTINCT FROM lt.{q}
            FROM ({zuora_side_sql(spec, [f], typed)}) zt
            JOIN ({local_side_sql(spec, [f], typed)}) lt USING (key)
            JOIN ({zuora_side_sql(spec, [f], canonical)}) zc USING (key)
            JOIN ({local_side_sql(spec, [f], canonical)}) lc USING (key)
            ORDER BY key""").fetchall()
    finally:
        con.close()
    assert len(rows) == len(pairs), "every case is compared once"
    return [tuple(r) for r in rows]


def equal_flags(obj: str, field: str, pairs: list[tuple[object, object]]) -> list[bool]:
    return [same for _, _, same in compare(obj, field, pairs)]


# -- dateTimes: tenant offset vs naive UTC ----------------------------------------------------
# (Zuora text, the UTC instant it is) — TZ.
ZUORA_DATETIMES = [
    ("2026-01-15T00:00:00.000-08:00", dt.datetime(2026, 1, 15, 8, 0, 0)),  # PST midnight
    ("2026-07-04T00:00:00.000-07:00", dt.datetime(2026, 7, 4, 7, 0, 0)),  # PDT midnight
    ("2026-07-04", dt.datetime(2026, 7, 4, 7, 0, 0)),  # AQuA: midnight written date-only
    ("2026-01-15", dt.datetime(2026, 1, 15, 8, 0, 0)),
    ("2026-03-08T01:59:59.000-08:00", dt.datetime(2026, 3, 8, 9, 59, 59)),  # last PST second
    ("2026-03-08T03:00:00.000-07:00", dt.datetime(2026, 3, 8, 10, 0, 0)),  # first PDT second
    ("2026-11-01T01:30:00.000-07:00", dt.datetime(2026, 11, 1, 8, 30, 0)),  # 1:30 PDT
    ("2026-11-01T01:30:00.000-08:00", dt.datetime(2026, 11, 1, 9, 30, 0)),  # 1:30 PST, later
    ("2025-03-25T06:26:14-07:00", dt.datetime(2025, 3, 25, 13, 26, 14)),  # Object Query style
    ("2015-01-01T09:00:00", dt.datetime(2015, 1, 1, 17, 0, 0)),  # no offset: tenant wall time
    ("2026-03-08T10:00:00+00:00", dt.datetime(2026, 3, 8, 10, 0, 0)),
]


def test_zuora_datetimes_become_utc_instants() -> None:
    """TZ: each Zuora rendering is typed, at the extract boundary, as its naive UTC instant."""
    raw = pl.DataFrame({"Id": [f"s{i}" for i in range(len(ZUORA_DATETIMES))],
                        "CreatedDate": [t for t, _ in ZUORA_DATETIMES]})
    parsed = parse_frame(get("Subscription"), raw, LA)
    assert parsed.rejects.height == 0
    assert parsed.frame["CreatedDate"].to_list() == [u for _, u in ZUORA_DATETIMES]


def test_local_utc_rendered_with_the_tenant_offset() -> None:
    """TZ (the sandbox's side): naive UTC rendered as Zuora does, with the offset in force at
    that instant, across both 2026 transitions; AQuA writes tenant midnight date-only."""
    typed_frame = pl.DataFrame({"CreatedDate": [
        dt.datetime(2026, 3, 8, 9, 59, 59), dt.datetime(2026, 3, 8, 10, 0, 0),
        dt.datetime(2026, 11, 1, 8, 30, 0), dt.datetime(2026, 11, 1, 9, 30, 0),
        dt.datetime(2026, 7, 4, 7, 0, 0), dt.datetime(2026, 1, 15, 8, 0, 0)]})
    spec = get("Subscription")
    assert render_frame(spec, typed_frame, LA)["CreatedDate"].to_list() == [
        "2026-03-08T01:59:59.000-08:00", "2026-03-08T03:00:00.000-07:00",
        "2026-11-01T01:30:00.000-07:00", "2026-11-01T01:30:00.000-08:00",
        "2026-07-04T00:00:00.000-07:00", "2026-01-15T00:00:00.000-08:00"]
    assert render_frame(spec, typed_frame, LA, "aqua")["CreatedDate"].to_list()[4:] == [
        "2026-07-04", "2026-01-15"]


def test_datetime_utc_comparison() -> None:
    """TZ, D26: a Zuora dateTime (typed as UTC) equals the local naive UTC of the same instant
    and is shown as ISO UTC; the local wall-clock time stored as if it were UTC (the classic
    sync bug) and an instant one hour off across the DST change are real differences."""
    utc = dict(ZUORA_DATETIMES)
    pairs = [
        (utc["2026-01-15T00:00:00.000-08:00"], dt.datetime(2026, 1, 15, 8, 0, 0)),
        (utc["2026-01-15T00:00:00.000-08:00"], dt.datetime(2026, 1, 15, 0, 0, 0)),
        (utc["2026-03-08T03:00:00.000-07:00"], dt.datetime(2026, 3, 8, 10, 0, 0)),
        (utc["2026-03-08T03:00:00.000-07:00"], dt.datetime(2026, 3, 8, 11, 0, 0)),
        (utc["2026-11-01T01:30:00.000-08:00"], dt.datetime(2026, 11, 1, 9, 30, 0)),
        (utc["2026-11-01T01:30:00.000-08:00"], dt.datetime(2026, 11, 1, 8, 30, 0)),
        (None, None),
    ]
    assert compare("Subscription", "CreatedDate", pairs) == [
        ("2026-01-15T08:00:00Z", "2026-01-15T08:00:00Z", True),
        ("2026-01-15T08:00:00Z", "2026-01-15T00:00:00Z", False),
        ("2026-03-08T10:00:00Z", "2026-03-08T10:00:00Z", True),
        ("2026-03-08T10:00:00Z", "2026-03-08T11:00:00Z", False),
        ("2026-11-01T09:30:00Z", "2026-11-01T09:30:00Z", True),
        ("2026-11-01T09:30:00Z", "2026-11-01T08:30:00Z", False),
        (None, None, True),
    ]


# -- dates --------------------------------------------------------------------------------------
def test_dates_are_never_shifted() -> None:
    """DATE: a Zuora date is the same calendar day in a Pacific tenant, also on DST days."""
    raw = pl.DataFrame({"Id": ["a", "b", "c"],
                        "TermEndDate": ["2026-03-08", "2026-11-01", "2026-01-01"]})
    parsed = parse_frame(get("Subscription"), raw, LA).frame
    assert parsed["TermEndDate"].to_list() == [
        dt.date(2026, 3, 8), dt.date(2026, 11, 1), dt.date(2026, 1, 1)]


def test_date_comparison() -> None:
    """DATE, D05: same day equal; one day either side differs."""
    d = dt.date
    assert compare("Subscription", "TermEndDate", [
        (d(2026, 3, 8), d(2026, 3, 8)), (d(2026, 3, 8), d(2026, 3, 7)),
        (d(2026, 11, 1), d(2026, 11, 2)), (None, None), (d(2027, 1, 15), None),
    ]) == [
        ("2026-03-08", "2026-03-08", True), ("2026-03-08", "2026-03-07", False),
        ("2026-11-01", "2026-11-02", False), (None, None, True), ("2027-01-15", None, False),
    ]


# -- decimals at the local scale -----------------------------------------------------------------
def test_decimal_half_up_at_the_local_scale() -> None:
    """HALF, D06, D26: RatePlanChargeTier.Price into DECIMAL(18,2). 0.125 → 0.13 and 2.675 →
    2.68 (half-even would give 0.12; a binary float 2.67); negatives round away from zero;
    10 equals 10.00; 19.994 vs 19.98 is real drift."""
    dec = Decimal
    assert compare("RatePlanChargeTier", "Price", [
        (dec("0.125"), dec("0.13")),
        (dec("0.125"), dec("0.12")),
        (dec("2.675"), dec("2.68")),
        (dec("-2.675"), dec("-2.68")),
        (dec("-0.125"), dec("-0.12")),
        (dec("0.124999999"), dec("0.12")),
        (dec("10"), dec("10.00")),
        (dec("19.994"), dec("19.98")),
        (dec("1188.000000000"), dec("1188")),
    ]) == [
        ("0.13", "0.13", True),
        ("0.13", "0.12", False),
        ("2.68", "2.68", True),
        ("-2.68", "-2.68", True),
        ("-0.13", "-0.12", False),
        ("0.12", "0.12", True),
        ("10.00", "10.00", True),
        ("19.99", "19.98", False),
        ("1188.00", "1188.00", True),
    ]


def test_decimal_scale_of_a_wide_local_column() -> None:
    """D26 decimal scale: ProductRatePlanChargeTier.StartingUnit into DECIMAL(22,9)."""
    dec = Decimal
    assert compare("ProductRatePlanChargeTier", "StartingUnit", [
        (dec("10"), dec("10.000000000")), (dec("11"), dec("10.999999999")), (None, None),
    ]) == [
        ("10.000000000", "10.000000000", True), ("11.000000000", "10.999999999", False),
        (None, None, True),
    ]


def test_integer_half_up_of_a_zuora_decimal() -> None:
    """HALF: RatePlanCharge.Quantity (Zuora decimal) into the local INTEGER column: 12.5 → 13
    and 14.5 → 15 (half-even: 12, 14), 12.499999999 → 12."""
    dec = Decimal
    assert compare("RatePlanCharge", "Quantity", [
        (dec("12.5"), 13), (dec("12.5"), 12), (dec("14.5"), 15), (dec("14.5"), 14),
        (dec("12.499999999"), 12), (dec("40"), 40), (None, None), (dec("7"), None),
    ]) == [
        ("13", "13", True), ("13", "12", False), ("15", "15", True), ("15", "14", False),
        ("12", "12", True), ("40", "40", True), (None, None, True), ("7", None, False),
    ]


def test_integer_half_up_of_a_negative_zuora_decimal() -> None:
    """HALF: a seat reduction gives a negative DMRC; −12.5 rounds half-up away from zero."""
    dec = Decimal
    assert compare("RatePlanCharge", "DMRC", [
        (dec("-12.5"), -13), (dec("-12.5"), -12), (dec("-0.4"), 0),
    ]) == [("-13", "-13", True), ("-13", "-12", False), ("0", "0", True)]


# -- multiselect ---------------------------------------------------------------------------------
def test_multiselect_is_a_set() -> None:
    """MULTI, D26: order, blanks around values, empty items and repeated values do not matter;
    a different set does; "" equals NULL."""
    assert equal_flags("Product", "Tier__c", [
        ("premium;ultimate", "ultimate;premium"),
        ("premium;ultimate", "premium; ultimate"),
        ("premium;ultimate", " ultimate ;premium;"),
        ("premium;ultimate", "premium;premium;ultimate"),
        ("premium", "premium;ultimate"),
        ("premium;ultimate", "premium;starter"),
        ("", None),
        (None, None),
        ("premium", None),
    ]) == [True, True, True, True, False, False, True, True, False]


def test_multiselect_canonical_text() -> None:
    """MULTI: both sides show the same sorted set, so a finding's two values are comparable."""
    assert compare("Product", "DeploymentType__c", [
        ("self_managed;gitlab_dot_com", "gitlab_dot_com; self_managed"),
    ]) == [("gitlab_dot_com;self_managed", "gitlab_dot_com;self_managed", True)]


# -- e-mail, custom fields, enums, references, exact ------------------------------------------
def test_email_case_and_whitespace() -> None:
    """MAIL, D26: case and surrounding blanks do not matter; another address does; "" = NULL."""
    assert compare("Contact", "WorkEmail", [
        ("Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
        (" grace@example.com ", "grace@example.com"),
        ("grace@example.com", "grace.hopper@example.com"),
        ("", None),
    ]) == [
        ("ada.lovelace@example.com", "ada.lovelace@example.com", True),
        ("grace@example.com", "grace@example.com", True),
        ("grace@example.com", "grace.hopper@example.com", False),
        (None, None, True),
    ]


def test_custom_field_blank_is_null() -> None:
    """TRIM, D26: "" and blanks equal NULL, surrounding blanks do not matter; a value vs NULL
    and Yes vs No are real differences."""
    assert compare("Subscription", "TurnOnCloudLicensing__c", [
        ("", None), ("   ", None), (" Yes", "Yes"), ("Yes", "No"), ("Offline", None),
        (None, ""),
    ]) == [
        (None, None, True), (None, None, True), ("Yes", "Yes", True), ("Yes", "No", False),
        ("Offline", None, False), (None, None, True),
    ]


@pytest.mark.parametrize(("obj", "field", "pairs", "expected"), [
    ("Subscription", "Status",
     [("Cancelled", "Canceled"), ("Pending Activation", "PendingActivation"),
      ("Pending Acceptance", "Pending Acceptance"), ("Active", "Cancelled"),
      ("Pending Activation", "Pending Acceptance"), ("", None)],
     [True, True, True, False, False, True]),
    ("Account", "Status",
     [("Canceled", "Cancelled"), ("Canceled", "Active")], [True, False]),
    ("ProductRatePlanChargeTier", "PriceFormat",
     [("FlatFee", "Flat Fee"), ("PerUnit", "Per Unit"), ("FlatFee", "Per Unit")],
     [True, True, False]),
    ("RatePlanChargeTier", "PriceFormat",
     [("Flat Fee", "FlatFee"), ("Per Unit", "PerUnit"), ("Per Unit", "Flat Fee")],
     [True, True, False]),
    ("ProductRatePlanCharge", "ChargeType",
     [("OneTime", "One-Time"), ("OneTime", "Recurring")], [True, False]),
    ("ProductRatePlanCharge", "ChargeModel",
     [("Flat Fee Pricing", "FlatFeePricing"), ("Per Unit Pricing", "Flat Fee Pricing")],
     [True, False]),
])
def test_enum_spellings(obj: str, field: str, pairs: list, expected: list[bool]) -> None:
    """D26 and domain.md §1.7 (Account Canceled, Subscription Cancelled), zuora-api.md §4
    (PriceFormat FlatFee/PerUnit on read, Flat Fee/Per Unit on write; ChargeType filtered as
    One-Time): spelling variants are equal, different values are not."""
    assert equal_flags(obj, field, pairs) == expected


def test_reference_follows_the_local_surrogate() -> None:
    """REF, D18: local bill_to_contact_id 7 is contact c_ada; 8 is c_grace (another contact);
    99 points nowhere."""
    assert compare("Account", "BillToId", [
        ("c_ada", 7), ("c_ada", 8), ("c_ada", 99), (None, None),
    ]) == [
        ("c_ada", "c_ada", True), ("c_ada", "c_grace", False), ("c_ada", None, False),
        (None, None, True),
    ]


def test_exact_values() -> None:
    """Norm EXACT (ids, codes, integers): equal as values, no case folding; NULL equals NULL."""
    assert compare("Account", "Currency", [
        ("USD", "USD"), ("USD", "EUR"), ("USD", "usd"), (None, None),
    ]) == [("USD", "USD", True), ("USD", "EUR", False), ("USD", "usd", False),
           (None, None, True)]
    assert equal_flags("Subscription", "Version", [(3, 3), (3, 2)]) == [True, False]


def test_booleans() -> None:
    assert equal_flags("Subscription", "AutoRenew", [(True, True), (True, False)]) == [
        True, False]

"""Contracts (pandera, polars backend): generated from the catalogue, pass on correct data and
on D26 spellings, stop the run on a wrong shape or a duplicated Zuora key, and quarantine bad
rows with their key, column, check and value while the rest goes on."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
import pytest

from core.catalog import LOCAL_TABLES, OBJECTS, get
from core.localdb import schema as local_schema
from core.values import REJECT_SCHEMA, dtype_of
from expectations import contracts as ct
from expectations.quarantine import (
    QUARANTINE_SCHEMA,
    exclude_quarantined,
    read_quarantine,
    write_quarantine,
)
from tests.support.expectations import conform_local, world_frames


def failures(side: str, name: str, frame: pl.DataFrame,
             rejects: pl.DataFrame | None = None) -> ct.RowOutcome:
    return ct.check_rows(ct.contract(side, name), frame, "test-run", rejects)


def failed(out: ct.RowOutcome) -> set[tuple[str, str, int]]:
    return {(r.column or "", r.rule, r.failing_count or 0) for r in out.results
            if r.outcome != "passed"}


# -- the declared contracts -----------------------------------------------------------------
def test_one_strict_model_per_object_and_table_from_the_catalogue() -> None:
    got = ct.contracts()
    assert len(got) == 2 * len(OBJECTS) + len(LOCAL_TABLES)
    for spec in OBJECTS:
        z = ct.model("zuora", spec.name).to_schema()
        assert z.strict is True
        assert list(z.columns) == spec.field_names
        assert {n: c.dtype.type for n, c in z.columns.items()} == {
            f.name: dtype_of(f) for f in spec.fields}
        assert z.columns["Id"].unique and not z.columns["Id"].nullable
        local = ct.model("local", spec.table).to_schema()
        assert local.strict is True
        assert list(local.columns) == [c.name for c in local_schema.table_columns(spec.table)]
    for t in LOCAL_TABLES:
        m = ct.model("local", t.name).to_schema()
        assert list(m.columns) == [c.name for c in t.columns] and m.strict is True
        assert m.columns[t.pk].unique
    for c in got.values():  # the shape fast path (schema == declared types) is pandera's "yes"
        assert ct._shape_failures(c.side, c.label, tuple(c.dtypes.items())) == ()


def test_enums_lengths_and_null_rules_come_from_the_catalogue() -> None:
    sub = ct.model("zuora", "Subscription").to_schema().columns
    status = get("Subscription").field("Status")
    assert [(c.name, c.statistics) for c in sub["Status"].checks] == [
        ("isin", {"allowed_values": list(status.enum)})]
    assert [(c.name, c.statistics) for c in sub["AccountId"].checks] == [
        ("str_length", {"min_value": None, "max_value": 64, "exact_value": None})]
    assert not sub["Revision"].nullable  # Zuora always fills it, though it is not stored
    assert not sub["TermStartDate"].nullable  # the local column is NOT NULL
    assert sub["TermEndDate"].nullable
    # a Zuora string longer than its local column is a finding for a person, not a failure
    assert not [c for c in sub["Notes"].checks if c.name == "str_length"]
    local = ct.model("local", "zuora_local_subscriptions").to_schema().columns
    assert [c.name for c in local["status"].checks] == ["str_length", "enum_normalised"]
    charge = ct.model("local", "zuora_local_rate_plan_charges").to_schema().columns
    assert ("str_length", 9) in [(c.name, c.statistics.get("max_value"))
                                 for c in charge["charge_type"].checks]
    cat = ct.model("zuora", "Product").to_schema().columns
    assert "isin" in [c.name for c in cat["Category"].checks]
    assert "multiselect_isin" in [c.name for c in cat["Tier__c"].checks]
    orders = ct.model("local", "orders").to_schema().columns
    assert not orders["trial"].nullable and orders["gl_namespace_id"].nullable


# -- clean data passes ---------------------------------------------------------------------------
@pytest.mark.parametrize("drift_rate,d26", [(0.0, 0.5), (0.05, 0.05)],
                         ids=["clean+D26", "drifted"])
def test_contracts_pass_on_a_generated_world(drift_rate: float, d26: float) -> None:
    """D26 spellings are legal on the local side, and drift is the reconciler's business,
    not a contract failure: every frame passes shape and row checks."""
    zuora, local = world_frames(drift_rate, d26)
    if d26:  # the variants really are there
        assert (local["zuora_local_subscriptions"]["status"] == "PendingActivation").any()
        assert (local["zuora_local_rate_plan_charges"]["charge_type"] == "One-Time").any()
        assert (local["billing_accounts"]["zuora_account_status"] == "Cancelled").any()
    for (side, name), c in ct.contracts().items():
        frame = zuora[name] if side == "zuora" else local[name]
        assert ct.shape_failures(c, frame.schema) == [], name
        out = ct.check_rows(c, frame, "r")
        assert not failed(out) and not out.fatal and out.quarantine.height == 0, (name, failed(out))


def test_local_enum_accepts_normalised_spellings_only() -> None:
    _, local = world_frames()
    charges = local["zuora_local_rate_plan_charges"].head(6).with_columns(
        charge_type=pl.Series(["One-Time", "one time", "Recurring", " usage ", "Recuring", None]))
    out = failures("local", "zuora_local_rate_plan_charges", charges)
    assert failed(out) == {("charge_type", "enum", 1)}
    assert out.quarantine["value"].to_list() == ["Recuring"]
    accounts = local["billing_accounts"].head(3).with_columns(
        zuora_account_status=pl.Series(["Cancelled", "canceled", "Closed"]))
    out = failures("local", "billing_accounts", accounts)
    assert out.quarantine.select("column", "check", "value").rows() == [
        ("zuora_account_status", "enum", "Closed")]
    tiers = local["zuora_local_rate_plan_charge_tiers"].head(3).with_columns(
        price_format=pl.Series(["Flat Fee", "FlatFee", "per_unit"]))
    assert not failed(failures("local", "zuora_local_rate_plan_charge_tiers", tiers))


def test_zuora_enum_is_exact_and_custom_fields_may_be_empty() -> None:
    zuora, _ = world_frames()
    subs = zuora["Subscription"].head(4).with_columns(
        Status=pl.Series(["Active", "PendingActivation", "Cancelled", "Active"]),
        TurnOnCloudLicensing__c=pl.Series(["", "Yes", "Maybe", None]))
    out = failures("zuora", "Subscription", subs)
    assert failed(out) == {("Status", "enum", 1), ("TurnOnCloudLicensing__c", "enum", 1)}
    products = zuora["Product"].head(2).with_columns(
        Tier__c=pl.Series(["premium;ultimate", "premium;platinum"]))
    out = failures("zuora", "Product", products)
    assert out.quarantine.select("column", "value").rows() == [("Tier__c", "premium;platinum")]


# -- bad rows are quarantined, the rest goes on ----------------------------------------------
def test_bad_values_are_quarantined_with_key_column_check_and_value() -> None:
    zuora, local = world_frames()
    subs = zuora["Subscription"]
    ids = subs["Id"].head(3).to_list()
    bad = subs.with_columns(
        # a string longer than its local column is valid in Zuora (a finding, issue 13); an id
        # longer than the local column is not an id at all
        InvoiceOwnerId=pl.when(pl.col("Id") == ids[0]).then(pl.lit("x" * 65))
        .otherwise("InvoiceOwnerId"),
        Status=pl.when(pl.col("Id") == ids[1]).then(pl.lit("Actve")).otherwise("Status"),
        AccountId=pl.when(pl.col("Id") == ids[2]).then(None).otherwise("AccountId"))
    out = failures("zuora", "Subscription", bad)
    assert failed(out) == {("InvoiceOwnerId", "max_length", 1), ("Status", "enum", 1),
                           ("AccountId", "not_null", 1)}
    q = out.quarantine
    assert q.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert sorted(q.select("side", "object", "table", "key", "column", "check", "value")
                  .rows()) == sorted([
                      ("zuora", "Subscription", None, ids[0], "InvoiceOwnerId", "max_length",
                       "x" * 65),
                      ("zuora", "Subscription", None, ids[1], "Status", "enum", "Actve"),
                      ("zuora", "Subscription", None, ids[2], "AccountId", "not_null", None)])
    assert set(q["severity"]) == {"error"}
    passed = [r for r in out.results if r.outcome == "passed"]
    assert passed and all(r.total_count == subs.height for r in passed)
    rest = exclude_quarantined(bad, q, "zuora", "Subscription", "Id")
    assert rest.height == subs.height - 3  # the run goes on with every other row

    orders = local["orders"]
    dup = orders.with_columns(id=pl.when(pl.col("id") == orders["id"][1])
                              .then(orders["id"][0]).otherwise("id"))
    out = failures("local", "orders", dup)
    assert failed(out) == {("id", "unique", 2)}
    assert out.quarantine["key"].to_list() == [str(orders["id"][0])] * 2
    assert set(out.quarantine["object"]) == {"orders"} and not out.fatal


def test_local_copy_rows_are_keyed_by_zuora_id_under_the_zuora_object_name() -> None:
    _, local = world_frames()
    contacts = local["billing_account_contacts"]
    bad = contacts.with_columns(work_email=pl.when(pl.int_range(pl.len()) == 0)
                                .then(pl.lit("y" * 81)).otherwise("work_email"))
    q = failures("local", "billing_account_contacts", bad).quarantine
    assert q.select("side", "object", "table", "key", "column", "check").rows() == [
        ("local", "Contact", "billing_account_contacts", contacts["zuora_contact_id"][0],
         "work_email", "max_length")]


def test_duplicated_zuora_key_is_fatal_not_quarantined() -> None:
    zuora, _ = world_frames()
    acc = zuora["Account"]
    out = failures("zuora", "Account", pl.concat([acc, acc.head(1)]))
    assert out.quarantine.height == 0
    assert len(out.fatal) == 1
    assert "Account.Id" in out.fatal[0] and "rule: unique" in out.fatal[0]
    assert acc["Id"][0] in out.fatal[0]


def test_rejects_are_quarantined_whole_and_explain_their_null() -> None:
    """A value the extractor could not type is NULL in the snapshot and its raw text is in
    rejects: one quarantine row with the raw value, not a second not_null one."""
    zuora, _ = world_frames()
    subs = zuora["Subscription"]
    key = subs["Id"][0]
    bad = subs.with_columns(TermStartDate=pl.when(pl.col("Id") == key).then(None)
                            .otherwise("TermStartDate"))
    rejects = pl.DataFrame({"object": ["Subscription"], "key": [key], "field": ["TermStartDate"],
                            "value": ["2021-02-30"], "rule": ["parse:d"]}, schema=REJECT_SCHEMA)
    out = failures("zuora", "Subscription", bad, rejects)
    assert out.quarantine.select("key", "column", "check", "value").rows() == [
        (key, "TermStartDate", "parse:d", "2021-02-30")]
    bad_results = [(r.source, r.column, r.rule) for r in out.results if r.outcome != "passed"]
    assert bad_results == [("extract", "TermStartDate", "parse:d")]


# -- shape ------------------------------------------------------------------------------------
def test_shape_failures_name_object_column_and_rule() -> None:
    zuora, local = world_frames()
    c = ct.contract("zuora", "Subscription")
    frame = zuora["Subscription"].drop("Status").with_columns(
        pl.col("Version").cast(pl.String), Extra=pl.lit(1))
    got = {(f.column, f.rule) for f in ct.shape_failures(c, frame.schema)}
    assert got == {("Status", "column_present"), ("Extra", "strict"), ("Version", "dtype")}
    messages = [f.describe(c.label) for f in ct.shape_failures(c, frame.schema)]
    assert "Subscription.Version: type String, expected Int64 (rule: dtype)" in messages
    lc = ct.contract("local", "orders")
    wrong = local["orders"].with_columns(pl.col("quantity").cast(pl.Int64))
    assert [(f.column, f.rule) for f in ct.shape_failures(lc, wrong.schema)] == [
        ("quantity", "dtype")]


# -- the compiled checks are the model's checks -------------------------------------------------
def test_compiled_checks_find_exactly_what_pandera_finds() -> None:
    """The fast path must be an implementation of the declared model, not a second contract:
    on a frame with every kind of failure both engines report the same (column, rule, key,
    value) set."""
    zuora, local = world_frames()
    subs = zuora["Subscription"].head(200)
    ids = subs["Id"]
    bad = subs.with_columns(
        Status=pl.when(pl.col("Id") == ids[0]).then(pl.lit("Nope")).otherwise("Status"),
        Name=pl.when(pl.col("Id") == ids[1]).then(pl.lit("n" * 300)).otherwise("Name"),
        AccountId=pl.when(pl.col("Id") == ids[2]).then(None).otherwise("AccountId"),
        TurnOnCloudLicensing__c=pl.when(pl.col("Id") == ids[3]).then(pl.lit("Sometimes"))
        .otherwise("TurnOnCloudLicensing__c"))
    charges = conform_local("zuora_local_rate_plan_charges",
                            local["zuora_local_rate_plan_charges"].head(200))
    bad_local = charges.with_columns(
        charge_type=pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("Monthly"))
        .otherwise("charge_type"),
        zuora_id=pl.when(pl.int_range(pl.len()) == 7).then(pl.lit(charges["zuora_id"][8]))
        .otherwise("zuora_id"))
    for side, name, frame in (("zuora", "Subscription", bad),
                              ("local", "zuora_local_rate_plan_charges", bad_local)):
        c = ct.contract(side, name)
        fast = ct.row_failures(c, frame).sort(pl.all())
        slow = ct.row_failures(c, frame, engine="pandera").sort(pl.all())
        assert fast.height >= 3
        assert fast.rows() == slow.rows(), name
        with pytest.raises(pa.errors.SchemaErrors):
            c.model.validate(frame, lazy=True)


# -- quarantine files ------------------------------------------------------------------------
def test_quarantine_files_round_trip(tmp_path) -> None:
    assert read_quarantine(tmp_path, "run-1").schema == pl.Schema(QUARANTINE_SCHEMA)
    rows = pl.DataFrame({
        "side": ["zuora", "local", "local"], "object": ["Subscription", "Subscription", "orders"],
        "table": [None, "zuora_local_subscriptions", "orders"], "key": ["a", "a", "7"],
        "column": ["Status", "status", "id"], "check": ["enum", "enum", "unique"],
        "value": ["X", "Y", "7"], "severity": ["error"] * 3}, schema=QUARANTINE_SCHEMA)
    counts = write_quarantine(tmp_path, "run-1", rows)
    assert counts == {"Subscription": 2, "orders": 1}
    assert sorted(p.name for p in (tmp_path / "runs/run-1/quarantine").iterdir()) == [
        "Subscription.parquet", "orders.parquet"]
    back = read_quarantine(tmp_path, "run-1")
    assert back.sort(pl.all()).equals(rows.sort(pl.all()))
    write_quarantine(tmp_path, "run-1", rows.head(0))  # validating again replaces, not appends
    assert read_quarantine(tmp_path, "run-1").height == 0

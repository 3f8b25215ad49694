"""recon's targeted sync (issue 15, point 1) against the sandbox over HTTP and PostgreSQL."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
import requests

from core.config import Settings
from core.localdb.connect import connect
from sandbox.server import SandboxServer
from sync import SyncError, SyncRequest, sync_keys
from tests.support.pg import outside_write


def nightly_steps():
    """The nightly's declared steps through the plan, without the validation (the expensive
    business-rule suites: a drift-free tenant has nothing for them to quarantine)."""
    from jobs.steps import JOBS

    job = JOBS["full"].through("plan")
    return dataclasses.replace(job, steps=tuple(s for s in job.steps if s.name != "validate"))


def mutate(srv: SandboxServer, op: str, obj: str, id_: str | None = None, **fields) -> str:
    r = requests.post(f"{srv.url}/sandbox/mutations", timeout=10,
                      json={"op": op, "object": obj, "id": id_, "fields": fields})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def local(settings: Settings, sql: str, params: list | None = None) -> pl.DataFrame:
    with connect(settings.local_database_url) as db:
        return db.query(sql, params)


def test_subscription_in_step_is_left_alone(world) -> None:
    srv, settings = world
    name = srv.store.live("Subscription")["Name"][0]
    res = sync_keys(settings, SyncRequest("subscription", (name,)))
    assert res.exit_code == 0, res.leftovers
    assert res.changes == ()


@pytest.mark.slow
def test_subscription_custom_field_is_synced(world) -> None:
    srv, settings = world
    subs = srv.store.live("Subscription").filter(pl.col("IsLatestVersion"))
    row = subs.row(1, named=True)
    mutate(srv, "update", "Subscription", row["Id"], Notes="changed by a person in Zuora")
    res = sync_keys(settings, SyncRequest("subscription", (row["Name"],)))
    print(res)
    assert res.exit_code == 0, res.leftovers
    got = local(settings, "SELECT notes FROM zuora_local_subscriptions WHERE zuora_id = %s",
                [row["Id"]])
    assert got["notes"].to_list() == ["changed by a person in Zuora"]
    assert [(c.table, c.op, c.columns) for c in res.changes] == [
        ("zuora_local_subscriptions", "update", ("notes", "updated_date"))]
    assert_in_step(settings, "subscription", row["Name"])
    from repair.apply import revert_apply

    assert revert_apply(res.sync_id, settings, yes=True).status == "complete"
    assert local(settings, "SELECT notes FROM zuora_local_subscriptions WHERE zuora_id = %s",
                 [row["Id"]])["notes"].to_list() == [row["Notes"]]


def assert_in_step(settings: Settings, obj: str, *keys: str) -> None:
    """The local rows equal the projection of Zuora's: a dry run of the same sync finds
    nothing to change and nothing left for a person."""
    again = sync_keys(settings, SyncRequest(obj, keys, dry_run=True))
    assert again.changes == () and again.leftovers == (), again


def _clone(srv: SandboxServer, obj: str, **fields) -> str:
    """Insert a copy of the first live ``obj`` with ``fields`` changed (a new Id); audit
    dates are the sandbox's own."""
    row = srv.store.live(obj).row(0, named=True)
    skip = {"Id", "CreatedDate", "UpdatedDate", "_deleted_at"}
    vals = {k: (v.isoformat() if hasattr(v, "isoformat") else
                str(v) if not isinstance(v, (int, bool, float, str)) else v)
            for k, v in row.items() if v is not None and k not in skip and not k.startswith("_")}
    vals.update(fields)
    return mutate(srv, "insert", obj, **vals)


@pytest.mark.slow
def test_new_account_creates_billing_account_contacts_and_customer(world) -> None:
    """Seed 001: an account the local copy lacks, with a Sold-To e-mail no customer has —
    the sync creates the billing account, both contacts (as local references) and the
    customer with its membership; the audit names the trigger; revert undoes it all."""
    from repair.apply import list_applies, revert_apply

    srv, settings = world
    acct = _clone(srv, "Account", AccountNumber="A-SYNC-NEW", Name="Synced Co")
    bill = _clone(srv, "Contact", AccountId=acct, WorkEmail="bill.sync@example.com",
                  FirstName="Bill")
    sold = _clone(srv, "Contact", AccountId=acct, WorkEmail="Sold.Sync@example.com ",
                  FirstName="Sol")
    mutate(srv, "update", "Account", acct, BillToId=bill, SoldToId=sold)

    dry = sync_keys(settings, SyncRequest("account", ("A-SYNC-NEW",), dry_run=True))
    assert dry.exit_code == 0 and dry.apply_id is None
    assert {(c.table, c.op) for c in dry.changes} >= {
        ("billing_accounts", "insert"), ("billing_account_contacts", "insert"),
        ("customers", "insert"), ("billing_account_memberships", "insert")}
    assert local(settings, "SELECT * FROM billing_accounts WHERE zuora_account_id = %s",
                 [acct]).height == 0  # a dry run writes nothing

    res = sync_keys(settings, SyncRequest("account", ("A-SYNC-NEW",),
                                          trigger="callout:n-1,n-2"))
    assert res.exit_code == 0, res.leftovers
    ba = local(settings, "SELECT id, zuora_account_number, bill_to_contact_id, "
               "sold_to_contact_id FROM billing_accounts WHERE zuora_account_id = %s", [acct])
    assert ba["zuora_account_number"].to_list() == ["A-SYNC-NEW"]
    contacts = local(settings, "SELECT id, zuora_contact_id FROM billing_account_contacts "
                     "WHERE zuora_account_id = %s ORDER BY first_name", [acct])
    by_zid = dict(zip(contacts["zuora_contact_id"], contacts["id"], strict=True))
    assert ba["bill_to_contact_id"][0] == by_zid[bill]  # local references, not Zuora ids
    assert ba["sold_to_contact_id"][0] == by_zid[sold]
    cust = local(settings, "SELECT c.email FROM customers c JOIN billing_account_memberships "
                 "m ON m.customer_id = c.id WHERE m.billing_account_id = %s", [ba["id"][0]])
    assert cust["email"].to_list() == ["sold.sync@example.com"]
    applies = list_applies(settings).filter(pl.col("apply_id") == res.apply_id)
    assert applies["run_id"].to_list() == [res.sync_id]
    assert "trigger callout:n-1,n-2" in applies["message"][0]

    # a second sync finds nothing to do
    again = sync_keys(settings, SyncRequest("account", (acct,)))
    assert again.exit_code == 0 and again.changes == ()

    back = revert_apply(res.sync_id, settings, yes=True)  # the sync id names its apply
    assert back.status == "complete" and back.reverts_apply_id == res.apply_id
    assert local(settings, "SELECT * FROM billing_accounts WHERE zuora_account_id = %s",
                 [acct]).height == 0
    assert local(settings, "SELECT * FROM customers WHERE email = %s",
                 ["sold.sync@example.com"]).height == 0


@pytest.mark.slow
def test_a_nightly_after_a_sync_finds_nothing_for_the_key(world) -> None:
    """The sync repairs a drifted key the nightly way (new billing account, contacts and a
    customer for a new Sold-To e-mail); a nightly with lag 0 and grace 0 then has zero
    findings (pending included) and zero operations for that key."""
    import threading

    from jobs.steps import run_steps

    srv, settings = world
    acct = _clone(srv, "Account", AccountNumber="A-SYNC-NIGHT", Name="Night Co")
    bill = _clone(srv, "Contact", AccountId=acct, WorkEmail="night.bill@example.com")
    sold = _clone(srv, "Contact", AccountId=acct, WorkEmail="night.sold@example.com")
    mutate(srv, "update", "Account", acct, BillToId=bill, SoldToId=sold)
    res = sync_keys(settings, SyncRequest("account", (acct,)))
    assert res.exit_code == 0 and res.changes, res

    nightly = dataclasses.replace(settings, extract_lag_hours=0.0, reconcile_grace_hours=0.0)
    seen: dict = {}
    run_steps(nightly_steps(), nightly, stop=threading.Event(), progress=lambda _m: None,
              after=lambda _name, run: seen.update(run=run))
    run = seen["run"]
    mine = run.result.drift.filter(
        (pl.col("account_id") == acct) | pl.col("key").is_in(
            [acct, bill, sold, "night.sold@example.com", "night.bill@example.com"]))
    assert mine.height == 0, mine.select("object", "key", "rule", "status", "explanation")
    ops = [op for op in run.plan.operations
           if acct in str(op.key) or acct in str(op.after) or "night." in str(op.after)]
    assert ops == []


def test_contact_is_synced(world) -> None:
    srv, settings = world
    acct = srv.store.live("Account").row(4, named=True)
    cid = acct["BillToId"]
    mutate(srv, "update", "Contact", cid, City="Springfield", WorkEmail="NEW.bill@x.example")
    res = sync_keys(settings, SyncRequest("contact", (cid,), trigger="callout:c-9"))
    assert res.exit_code == 0, res.leftovers
    got = local(settings, "SELECT city, work_email FROM billing_account_contacts WHERE "
                "zuora_contact_id = %s", [cid]).row(0)
    assert got == ("Springfield", "NEW.bill@x.example")
    assert {c.table for c in res.changes} == {"billing_account_contacts"}
    assert_in_step(settings, "contact", cid)


@pytest.mark.slow
def test_catalog_product_and_whole_catalog(world) -> None:

    srv, settings = world
    prod = srv.store.live("Product").row(0, named=True)
    mutate(srv, "update", "Product", prod["Id"], Name="Renamed in Zuora")
    res = sync_keys(settings, SyncRequest("catalog", (prod["Id"],)))
    assert res.exit_code == 0, res.leftovers
    assert local(settings, "SELECT name FROM zuora_local_products WHERE zuora_id = %s",
                 [prod["Id"]])["name"].to_list() == ["Renamed in Zuora"]
    assert_in_step(settings, "catalog", prod["Id"])
    whole = sync_keys(settings, SyncRequest("catalog"))
    assert whole.exit_code == 0 and whole.changes == (), whole

    # a catalog that shrank suspiciously is refused; a small table has an absolute floor
    tiers = srv.store.live("ProductRatePlanChargeTier")["Id"].head(3).to_list()
    for t in tiers:
        mutate(srv, "delete", "ProductRatePlanChargeTier", t)
    strict = dataclasses.replace(settings, sync_catalog_min_rows=2, sync_catalog_max_shrink=0.01)
    with pytest.raises(SyncError, match="Zuora no longer returns 3 of the"):
        sync_keys(strict, SyncRequest("catalog"))
    ok = sync_keys(dataclasses.replace(settings, sync_catalog_min_rows=3),
                   SyncRequest("catalog", dry_run=True))
    assert sum(c.op == "delete" for c in ok.changes) == 3


@pytest.mark.slow
def test_subscription_order_created_and_duplicates_deduped(world) -> None:
    """D13: a subscription without an order gets one, derived from its latest version; D11:
    duplicates are deduped only when unambiguous (else a person decides: exit 1)."""
    srv, settings = world
    names = local(settings, "SELECT subscription_name FROM orders WHERE NOT trial AND "
                  "subscription_name IS NOT NULL ORDER BY id")["subscription_name"].to_list()
    gone, dup = names[4], names[5]
    cols = "subscription_id, zuora_account_id, billing_account_id, product_rate_plan_id, " \
           "start_date, end_date, quantity"
    was = local(settings, f"SELECT {cols} FROM orders WHERE subscription_name = %s", [gone])
    with connect(settings.local_database_url) as db:
        outside_write(db, "DELETE FROM orders WHERE subscription_name = %s", [gone])
        outside_write(db, "INSERT INTO orders (id, customer_id, billing_account_id, "
                      "product_rate_plan_id, subscription_id, subscription_name, start_date, "
                      "end_date, quantity, amendment_type, trial, zuora_account_id, "
                      "reconciliation_accepted, created_at, updated_at) SELECT 880001, "
                      "customer_id, billing_account_id, product_rate_plan_id, subscription_id, "
                      "subscription_name, start_date, end_date, quantity, amendment_type, trial, "
                      "zuora_account_id, reconciliation_accepted, created_at, updated_at FROM "
                      "orders WHERE subscription_name = %s", [dup])
    made = sync_keys(settings, SyncRequest("subscription", (gone,)))
    assert made.exit_code == 0, made.leftovers
    assert [(c.table, c.op) for c in made.changes] == [("orders", "insert")]
    now = local(settings, f"SELECT {cols} FROM orders WHERE subscription_name = %s", [gone])
    assert now.equals(was)  # the same derivation as D14: the very values it had
    same = sync_keys(settings, SyncRequest("subscription", (dup,)))  # two equal candidates
    assert same.exit_code == 1 and [(lo.kind, lo.rule) for lo in same.leftovers] == [
        ("human", "D11")] and same.changes == ()
    with connect(settings.local_database_url) as db:  # now only one matches Zuora's account
        outside_write(db, "UPDATE orders SET zuora_account_id = %s, billing_account_id = NULL "
                      "WHERE id = 880001", ["0" * 32])
    deduped = sync_keys(settings, SyncRequest("subscription", (dup,)))
    assert deduped.exit_code == 0, deduped.leftovers
    assert ("orders", "delete", {"id": 880001}) in [(c.table, c.op, c.key)
                                                    for c in deduped.changes]
    assert local(settings, "SELECT count(*) AS n FROM orders WHERE subscription_name = %s",
                 [dup])["n"][0] == 1


def test_zuora_failing_for_the_moment_is_transient(world) -> None:
    """5xx after the client's retries: SyncTransient (a worker retries later); nothing is
    written."""
    from extract.client import RetryPolicy, ZuoraClient
    from sync import SyncTransient

    srv, settings = world
    name = srv.store.live("Subscription")["Name"][7]
    srv.add_fault("query", "5xx", times=2)
    client = ZuoraClient(srv.url, "recon", settings.zuora_client_secret,
                         policy=RetryPolicy(attempts=2, sleep=lambda _s: None))
    with pytest.raises(SyncTransient, match="for the moment"):
        sync_keys(settings, SyncRequest("subscription", (name,)), client=client)
    srv.clear_faults()


@pytest.mark.slow
def test_subscription_on_a_new_account_creates_the_account_and_the_order(world) -> None:
    """Seeds 002/003: an Order Processed for a subscription whose account the local copy
    lacks — the sync creates the billing account (and its contacts and Sold-To customer)
    before the subscription's versions and its order, in one plan."""
    srv, settings = world
    acct = _clone(srv, "Account", AccountNumber="A-SUB-NEW", Name="Sub Co")
    bill = _clone(srv, "Contact", AccountId=acct, WorkEmail="sub.bill@example.com")
    sold = _clone(srv, "Contact", AccountId=acct, WorkEmail="sub.sold@example.com")
    mutate(srv, "update", "Account", acct, BillToId=bill, SoldToId=sold)
    src = srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).row(2, named=True)
    sid = "f" * 32
    _clone_row(srv, "Subscription", src, Id=sid, Name="A-S-NEWACCT", AccountId=acct,
               InvoiceOwnerId=acct, OriginalId=sid, PreviousSubscriptionId=None, Version=1)
    for rp in srv.store.live("RatePlan").filter(pl.col("SubscriptionId") == src["Id"]).iter_rows(
            named=True):
        rp_id = _clone_row(srv, "RatePlan", rp, SubscriptionId=sid, SubscriptionOwnerId=acct,
                           InvoiceOwnerId=acct)
        for ch in srv.store.live("RatePlanCharge").filter(
                pl.col("RatePlanId") == rp["Id"]).iter_rows(named=True):
            _clone_row(srv, "RatePlanCharge", ch, RatePlanId=rp_id, SubscriptionId=sid,
                       SubscriptionOwnerId=acct, InvoiceOwnerId=acct,
                       ChargeNumber=f"C-{ch['ChargeNumber']}-N")
    res = sync_keys(settings, SyncRequest("subscription", ("A-S-NEWACCT",)))
    assert res.exit_code == 0, res.leftovers
    made = {(c.table, c.op) for c in res.changes}
    assert {("billing_accounts", "insert"), ("billing_account_contacts", "insert"),
            ("customers", "insert"), ("zuora_local_subscriptions", "insert"),
            ("orders", "insert")} <= made
    order = local(settings, "SELECT o.subscription_id, b.zuora_account_id FROM orders o JOIN "
                  "billing_accounts b ON b.id = o.billing_account_id WHERE "
                  "o.subscription_name = %s", ["A-S-NEWACCT"])
    assert order.rows() == [(sid, acct)]
    assert_in_step(settings, "subscription", "A-S-NEWACCT")


def _clone_row(srv: SandboxServer, obj: str, row: dict, **fields) -> str:
    skip = {"Id", "CreatedDate", "UpdatedDate"}
    vals = {k: (v.isoformat() if hasattr(v, "isoformat") else
                str(v) if not isinstance(v, (int, bool, float, str)) else v)
            for k, v in row.items() if v is not None and k not in skip and not k.startswith("_")}
    vals.update({k: v for k, v in fields.items() if k != "Id"})
    vals = {k: v for k, v in vals.items() if v is not None}
    return mutate(srv, "insert", obj, fields.get("Id"), **vals)

"""Every event kind end to end: a sandbox mutation → the Zuora-shaped callout (non-preemptive
Basic, HMAC) → ``recon callouts serve`` (a real process, the real sync) → its worker → the local
PostgreSQL rows of the key equal the catalogue's projection of Zuora's, and the repair audit of
the sync names the callout's notification id. One tenant, sandbox, receiver and PostgreSQL
schema for the module (each test changes keys of its own); then the two clocks with the
DEFAULT lag: a nightly whose snapshot is older than a sync holds the key ``pending`` and keeps
the newer value."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from core.config import Secret, Settings
from core.inbox import KeySync, open_inbox
from core.localdb.connect import connect
from sandbox.server import SandboxServer
from tests.callouts.e2e import (
    callout_sandbox,
    generate_tenant,
    out_of_step,
    pg_schema,
    serve,
    serve_env,
    terminate,
    wait_for,
)
from tests.conftest import free_port
from tests.support.pipeline import SECRET as ZUORA_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclasses.dataclass
class World:
    srv: SandboxServer
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tenant = generate_tenant(tmp_path_factory.mktemp("kinds-tenant"), accounts=10)
    data = tmp_path_factory.mktemp("kinds-data")
    port = free_port()
    with pg_schema(pg_dsn, tenant) as url, callout_sandbox(tenant, port) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(ZUORA_SECRET),
                            local_database_url=url, data_dir=data, tenant_tz=srv.tenant_tz)
        with serve(serve_env(data, url, srv), data, port) as proc:
            yield World(srv, url, settings)
            assert terminate(proc) == 0


def mutate(srv: SandboxServer, *mutations: dict[str, Any]) -> None:
    """Through the sandbox's mutation API; several are one Zuora order."""
    body = mutations[0] if len(mutations) == 1 else {"mutations": list(mutations)}
    r = requests.post(f"{srv.url}/sandbox/mutations", json=body, timeout=10)
    assert r.status_code == 200, r.text


def notification(srv: SandboxServer, kind: str, obj: str, key: str, after: int) -> str:
    """The notification id of the ``kind`` callout naming ``obj`` ``key`` sent after sequence
    number ``after`` (waits until the sandbox delivered it with a 200)."""
    assert srv.callouts is not None

    def sent() -> list[str]:
        return [d.notification_id for d in srv.callouts.sender.records()
                if d.seq > after and d.event.kind == kind and d.outcome == "sent"
                and key in d.event.keys.get(obj, ())]

    [nid] = wait_for(sent, 20, f"the {kind} callout for {obj} {key}")
    return nid


def last_seq(srv: SandboxServer) -> int:
    assert srv.callouts is not None
    return max((d.seq for d in srv.callouts.sender.records()), default=0)


def synced_by(w: World, nid: str, obj: str, key: str) -> str:
    """Waits until ``obj`` ``key``'s last sync is one the callout ``nid`` triggered (the
    inbox's sync log names the notification ids behind each sync); that sync's id."""
    def done() -> KeySync | None:
        with open_inbox(w.settings) as ib:
            last = {k.key: k for k in ib.last_syncs([obj])}.get(key)
            if last is None or not last.sync_id:
                return None
            triggers = {e.sync_id: e.trigger for e in ib.sync_log(500)}
        return last if nid in triggers.get(last.sync_id, "").split(":", 1)[-1].split(",") \
            else None

    last = wait_for(done, 30, f"a sync of {obj} {key} triggered by callout {nid}")
    assert last.status == "ok", last

    def processed() -> Any:
        # an event naming several keys (Order Processed) is processed once all have synced
        with open_inbox(w.settings) as ib:
            [event] = [e for e in ib.events() if e.notification_id == nid]
        assert (obj, key) in event.keys, event
        return event if event.status == "processed" else None

    wait_for(processed, 30, f"callout {nid} processed")
    return last.sync_id


def callout_syncs(w: World, kind: str, obj: str, key: str, table: str,
                  *mutations: dict[str, Any]) -> tuple[str, str]:
    """Mutate through the sandbox; the ``kind`` callout naming ``obj`` ``key`` syncs it: the
    key is consistent afterwards and the sync's audit names the callout and wrote ``table``.
    Returns (notification id, sync id)."""
    seq = last_seq(w.srv)
    mutate(w.srv, *mutations)
    nid = notification(w.srv, kind, obj, key, seq)
    sync_id = synced_by(w, nid, obj, key)
    assert out_of_step(w.srv, w.url, obj, key) == []
    assert_audit_names(w, sync_id, nid, table)
    return nid, sync_id


def assert_audit_names(w: World, sync_id: str, nid: str, table: str) -> None:
    """The sync's apply names the callout, and its audit rows wrote ``table``."""
    with connect(w.url) as db:
        applies = db.query("SELECT apply_id, message FROM recon_repair_applies WHERE run_id = %s",
                           [sync_id])
        assert applies.height == 1, applies
        assert f"callout:{nid}" in applies["message"][0] or nid in applies["message"][0]
        tables = db.query("SELECT DISTINCT table_name FROM recon_repair_audit WHERE "
                          "apply_id = %s", [applies["apply_id"][0]])["table_name"].to_list()
    assert table in tables, tables


def _latest(w: World, i: int) -> dict[str, Any]:
    return w.srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).sort(
        "Name").row(i, named=True)


def test_contact(world: World) -> None:
    acct = world.srv.store.typed("Account").sort("AccountNumber").row(0, named=True)
    contact = acct["BillToId"]
    callout_syncs(world, "contact", "contact", contact, "billing_account_contacts",
                  {"op": "update", "object": "Contact", "id": contact,
                   "fields": {"City": "Callout City", "FirstName": "Calloway"}})


def test_account(world: World) -> None:
    acct = world.srv.store.typed("Account").sort("AccountNumber").row(1, named=True)
    callout_syncs(world, "account", "account", acct["Id"], "billing_accounts",
                  {"op": "update", "object": "Account", "id": acct["Id"],
                   "fields": {"Name": "Renamed by a callout", "VATId": "DE999999999"}})


def test_subscription_custom_field(world: World) -> None:
    sub = _latest(world, 0)
    callout_syncs(world, "subscription", "subscription", sub["Name"],
                  "zuora_local_subscriptions",
                  {"op": "update", "object": "Subscription", "id": sub["Id"],
                   "fields": {"OpportunityId__c": "0065f00000CALLOUT"}})


def test_order_processed(world: World) -> None:
    """One order changing a subscription and one of its charges: ONE Order Processed naming the
    subscription and its account; both keys are synced by it and consistent."""
    sub = _latest(world, 1)
    charge = world.srv.store.typed("RatePlanCharge").filter(
        pl.col("SubscriptionId") == sub["Id"]).row(0, named=True)
    nid, _ = callout_syncs(
        world, "order_processed", "subscription", sub["Name"], "zuora_local_rate_plan_charges",
        {"op": "update", "object": "Subscription", "id": sub["Id"],
         "fields": {"Notes": "amended by an order"}},
        {"op": "update", "object": "RatePlanCharge", "id": charge["Id"],
         "fields": {"Description": "re-described by the order"}})
    synced_by(world, nid, "account", sub["AccountId"])  # the account it names, too
    assert out_of_step(world.srv, world.url, "account", sub["AccountId"]) == []


def test_catalog(world: World) -> None:
    plan = world.srv.store.typed("ProductRatePlan").sort("Id").row(0, named=True)
    callout_syncs(world, "catalog", "catalog", "*", "zuora_local_product_rate_plans",
                  {"op": "update", "object": "ProductRatePlan", "id": plan["Id"],
                   "fields": {"Description": "described again in the catalog"}})


def test_nightly_with_default_lag_keeps_the_synced_value(world: World, tmp_path: Path) -> None:
    """Clock (a): a callout syncs a key; the nightly that runs next (default lag: its
    incremental snapshot ends before the sync) holds the key ``pending`` as synced after the
    snapshot, plans nothing for it, and the newer value stays."""
    from jobs.steps import JOBS, run_steps

    sub = _latest(world, 2)
    # the nightly needs a base to run incrementally from: a full snapshot first
    nightly = dataclasses.replace(world.settings, data_dir=tmp_path / "nightly")
    assert nightly.extract_lag_hours > 0  # the default lag
    # (unvalidated, it is checked as a base — volume, contracts — by the next run)
    run_steps("full", nightly, stop=threading.Event(), progress=lambda _m: None,
              through="extract")
    seq = last_seq(world.srv)
    mutate(world.srv, {"op": "update", "object": "Subscription", "id": sub["Id"],
                       "fields": {"Notes": "newer than the nightly's snapshot"}})
    nid = notification(world.srv, "order_processed", "subscription", sub["Name"], seq)
    sync_id = synced_by(world, nid, "subscription", sub["Name"])
    assert out_of_step(world.srv, world.url, "subscription", sub["Name"]) == []

    # the inbox lives in the local PostgreSQL database, so this DATA dir's nightly sees it
    seen: dict[str, Any] = {}
    job = JOBS["nightly"].through("plan")  # without the business-rule suites: no drift
    job = dataclasses.replace(job, steps=tuple(s for s in job.steps if s.name != "validate"))
    run_steps(job, nightly, stop=threading.Event(), progress=lambda _m: None,
              after=lambda _n, run: seen.update(run=run))
    run = seen["run"]
    assert run.manifest.mode == "incremental", run.manifest
    drift = run.result.drift.filter(pl.col("subscription_name") == sub["Name"])
    assert drift.height >= 1, "the snapshot (older than the sync) differs for the key"
    assert set(drift["status"].to_list()) == {"pending"}, drift
    assert all(f"(pending: synced by {sync_id} after this snapshot)" in e
               for e in drift["explanation"].to_list()), drift["explanation"].to_list()
    assert run.result.summary["event_path"]["held_synced"] >= drift.height
    assert not [op for op in run.plan.operations
                if op.key.get("zuora_id") == sub["Id"]], "planned over a fresher sync"
    with connect(world.url) as db:
        notes = db.query("SELECT notes FROM zuora_local_subscriptions WHERE zuora_id = %s",
                         [sub["Id"]])["notes"].to_list()
    assert notes == ["newer than the nightly's snapshot"]

"""recon's targeted sync (issue 15, point 1) against the sandbox over HTTP and PostgreSQL."""

from __future__ import annotations

import polars as pl
import requests

from core.config import Settings
from core.localdb.connect import connect
from sandbox.server import SandboxServer
from sync import SyncRequest, sync_keys


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

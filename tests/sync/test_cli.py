"""``recon sync``: what it prints, its exit codes, a key Zuora lost, the guards."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from core.config import Settings
from core.inbox import open_inbox, read_activity
from core.localdb.connect import connect
from jobs.cli import main
from sync import SyncBadRecord, SyncError, SyncRequest, sync_keys
from tests.support.json_schema import check
from tests.support.pg import outside_write
from tests.sync.test_sync import local, mutate


def config(settings: Settings, tmp_path: Path) -> str:
    path = tmp_path / "recon.toml"
    path.write_text(
        f'[zuora]\nbase_url = "{settings.zuora_base_url}"\n'
        f'client_secret = "{settings.zuora_client_secret.get()}"\n'
        f'tenant_tz = "{settings.tenant_tz}"\n'
        f"[local]\ndatabase_url = '{settings.local_database_url}'\n"
        f'[paths]\ndata_dir = "{settings.data_dir}"\n')
    return str(path)


@pytest.mark.slow
def test_cli_prints_the_change_and_exits_0(world, tmp_path: Path, capsys) -> None:
    srv, settings = world
    sub = srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).row(3, named=True)
    mutate(srv, "update", "Subscription", sub["Id"], TurnOnAutoRenew__c="Yes"
           if sub["TurnOnAutoRenew__c"] != "Yes" else "No")
    cfg = config(settings, tmp_path)
    with open_inbox(settings):  # callouts are received here: manual syncs are recorded too
        pass
    assert main(["--config", cfg, "sync", "subscription", sub["Name"], "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would change" in out and "zuora_local_subscriptions" in out
    assert "turn_on_auto_renew__c" in out
    assert main(["--config", cfg, "sync", "subscription", sub["Name"], "--json"]) == 0
    doc = check("sync", capsys.readouterr().out)
    assert doc["sync_id"].startswith("sync-") and doc["exit_code"] == 0
    assert doc["next"] == [f"recon --config {Path(cfg).resolve()} repair revert {doc['sync_id']}"]
    assert [c["table"] for c in doc["changes"]] == ["zuora_local_subscriptions"]
    assert main(["--config", cfg, "repair", "history"]) == 0
    hist = capsys.readouterr().out
    assert doc["sync_id"] in hist and "trigger manual" in hist
    # the key's last sync in the inbox is this one (the dry run was not recorded): the
    # nightly holds the key pending rather than writing an older snapshot back
    activity = read_activity(settings)
    assert activity is not None
    row = activity.filter(pl.col("key") == sub["Name"]).to_dicts()
    assert [(r["object"], r["sync_id"]) for r in row] == [("subscription", doc["sync_id"])]


def test_a_manual_sync_by_account_number_is_recorded_under_the_account_id(
        world, tmp_path: Path, capsys) -> None:
    """The nightly's findings name accounts by Zuora id: a sync asked for by number is
    recorded under the id it resolved to, so the nightly holds that account too."""
    srv, settings = world
    acct = srv.store.live("Account").row(7, named=True)
    cfg = config(settings, tmp_path)
    with open_inbox(settings):
        pass
    assert main(["--config", cfg, "sync", "account", acct["AccountNumber"], "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["resolved"] == [[acct["AccountNumber"], acct["Id"]]]
    activity = read_activity(settings)
    assert activity is not None
    rows = activity.filter(pl.col("sync_id") == doc["sync_id"]).to_dicts()
    assert [(r["object"], r["key"]) for r in rows] == [("account", acct["Id"])]


def test_a_key_zuora_lost_is_read_twice_and_left_to_a_person(world, tmp_path: Path,
                                                            capsys) -> None:
    """An order for a subscription Zuora does not return: read twice (nothing found is not
    an error), then the nightly's rule D15 — a person's — and exit 1, listed."""
    srv, settings = world
    with connect(settings.local_database_url) as db:
        outside_write(db, "INSERT INTO orders (id, subscription_name, trial, "
                      "reconciliation_accepted) VALUES (990001, 'A-S-GONE', false, false)")
    before = srv.stats["query"]
    res = sync_keys(settings, SyncRequest("subscription", ("A-S-GONE",)))
    assert srv.stats["query"] - before >= 2  # the second read confirms it
    assert res.missing == ("A-S-GONE",)
    assert res.exit_code == 1
    assert [(lo.kind, lo.rule) for lo in res.leftovers] == [("human", "D15")]
    cfg = config(settings, tmp_path)
    assert main(["--config", cfg, "sync", "subscription", "A-S-GONE"]) == 1
    out = capsys.readouterr().out
    assert "Zuora no longer returns (read twice): A-S-GONE" in out and "human D15" in out


def test_a_bad_record_refuses_the_sync_and_writes_nothing(world, tmp_path: Path,
                                                         capsys) -> None:
    srv, settings = world
    acct = srv.store.live("Account").row(2, named=True)
    mutate(srv, "update", "Account", acct["Id"], Status="Closed-ish", Name="renamed")
    with pytest.raises(SyncBadRecord, match=rf"Account {acct['Id']} .*Status"):
        sync_keys(settings, SyncRequest("account", (acct["Id"],)))
    assert local(settings, "SELECT zuora_account_name FROM billing_accounts WHERE "
                 "zuora_account_id = %s", [acct["Id"]])["zuora_account_name"].to_list() == [
        acct["Name"]]
    assert main(["--config", config(settings, tmp_path), "sync", "account", acct["Id"]]) == 2
    assert "breaks the contract rule" in capsys.readouterr().err
    mutate(srv, "update", "Account", acct["Id"], Status=acct["Status"], Name=acct["Name"])


def _subtree_rows(srv, settings: Settings, root: str, key_field: str, key: str) -> int:
    """Rows of one key's subtree on both sides, counted from the sandbox's store and the local
    tables directly (the catalogue's parent edges say which objects hang below ``root``)."""
    from core.catalog import BY_NAME, OBJECTS

    spec = BY_NAME[root]
    z = srv.store.live(root).filter(pl.col(key_field) == key)
    lo = local(settings, f"SELECT {spec.key_column} AS id FROM {spec.table} "
               f"WHERE {spec.field(key_field).column} = %s", [key])
    total, ids = z.height + lo.height, {root: set(z["Id"].to_list()) | set(lo["id"].to_list())}
    for child in OBJECTS:
        if child.parent is None or child.parent[1] not in ids:
            continue
        ref, parent = child.parent
        z = srv.store.live(child.name).filter(pl.col(ref).is_in(sorted(ids[parent])))
        lo = local(settings, f"SELECT {child.key_column} AS id FROM {child.table} "
                   f"WHERE {child.field(ref).column} = ANY(%s)", [sorted(ids[parent])])
        total += z.height + lo.height
        ids[child.name] = set(z["Id"].to_list()) | set(lo["id"].to_list())
    return total


@pytest.mark.parametrize(("obj", "root", "key_field"), [
    ("subscription", "Subscription", "Name"), ("catalog", "Product", "Id")])
def test_the_row_cap_counts_the_keys_whole_subtree(world, obj: str, root: str,
                                                    key_field: str) -> None:
    """The cap is exact per key: with two keys whose subtrees hold N > M rows (all versions,
    rate plans, charges, tiers; a product's rate plans, charges and tiers; both sides), the
    sync passes under a cap of N and is refused under N - 1, naming the bigger key and N —
    not an average over the request."""
    import dataclasses

    srv, settings = world
    keys = srv.store.live(root)[key_field].unique(maintain_order=True).to_list()
    sizes = {k: _subtree_rows(srv, settings, root, key_field, k) for k in keys[:12]}
    big = max(sizes, key=lambda k: sizes[k])
    small_key = min(sizes, key=lambda k: sizes[k])
    n = sizes[big]
    assert n > 4 and sizes[small_key] < n - 1  # real subtrees of different sizes
    both = (big, small_key)
    exact = dataclasses.replace(settings, sync_max_rows_per_key=n)
    assert sync_keys(exact, SyncRequest(obj, both, dry_run=True)).exit_code == 0
    small = dataclasses.replace(settings, sync_max_rows_per_key=n - 1)
    with pytest.raises(SyncError, match=rf"{big}: its subtree holds {n:,} rows .*"
                                        rf"sync.max_rows_per_key \({n - 1:,}\)") as e:
        sync_keys(small, SyncRequest(obj, both))
    assert "more key(s)" not in str(e.value)
    before = len(list((settings.data_dir / "syncs").iterdir()))
    with pytest.raises(SyncError):  # refused before anything is written, even the dataset
        sync_keys(small, SyncRequest(obj, both))
    assert len(list((settings.data_dir / "syncs").iterdir())) == before


def test_bad_requests_exit_2(world, tmp_path: Path, capsys) -> None:
    _srv, settings = world
    cfg = config(settings, tmp_path)
    assert main(["--config", cfg, "sync", "account"]) == 2
    assert "needs at least one key" in capsys.readouterr().err

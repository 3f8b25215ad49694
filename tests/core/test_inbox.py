"""The callout inbox (core.inbox) on both stores: dedupe, debounce from the first event,
coalescing, one more sync for events during a sync, claims that never overlap, retries with
backoff, dead letters, requeue, prune, and the shared request budget."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ConfigError
from core.inbox import (
    DEFAULT_KINDS,
    Inbox,
    NewEvent,
    PayloadError,
    Stored,
    extract_keys,
    open_budget,
    open_inbox,
    parse_event_kinds,
)
from tests.support.clock import FakeClock

DEB = {"contact": 2.0, "account": 2.0, "subscription": 2.0, "catalog": 300.0}


def _settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"duckdb:///{tmp_path / 'local.duckdb'}"
    return dataclasses.replace(Settings(), local_database_url=url, data_dir=tmp_path)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return _settings(request, tmp_path)


def ev(nid: str, obj: str = "account", key: str = "A1", kind: str = "account") -> NewEvent:
    return NewEvent(nid, f"req-{nid}", kind, ((obj, key),), json.dumps({"AccountId": key}),
                    DEB)


def claim(inbox: Inbox, limit: int = 10, threshold: int = 100):
    return inbox.claim(limit=limit, batch_threshold=threshold, lease_s=3600)


def test_store_backend_follows_the_local_side(inbox: Inbox, settings: Settings) -> None:
    expected = "postgresql" if settings.local_database_url.startswith("postgresql") else "sqlite"
    assert inbox.kind == expected
    if expected == "sqlite":
        assert (settings.data_dir / "inbox.sqlite").is_file()
        mode = inbox.backend.fetch("PRAGMA journal_mode")[0][0]
        assert mode == "wal"


def test_duplicates_are_one_event_within_the_window(inbox: Inbox, clock: FakeClock) -> None:
    assert inbox.store_event(ev("n1")).stored is Stored.NEW
    clock.advance(3600)
    assert inbox.store_event(ev("n1")).stored is Stored.DUPLICATE
    [e] = inbox.events()
    assert e.deliveries == 2 and e.request_id == "req-n1"
    [p] = inbox.pending()
    assert p.events == 1 and p.notification_ids == ("n1",)
    clock.advance(8 * 86400)  # past dedupe_days (7): a reused id is a new notification
    assert inbox.store_event(ev("n1")).stored is Stored.NEW


def test_debounce_from_first_event_and_coalescing(inbox: Inbox, clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(1.5)
    inbox.store_event(ev("n2"))
    assert claim(inbox) == []  # 1.5 s after the first event: still debouncing
    clock.advance(0.6)  # 2.1 s after the FIRST event (0.6 s after the last)
    [c] = claim(inbox)
    assert (c.object, c.keys, c.notification_ids) == ("account", ("A1",), ("n1", "n2"))
    assert c.trigger == "callout:n1,n2"
    assert claim(inbox) == []  # running: never claimed twice
    inbox.finish(c, sync_id="sync-1", status="ok", started_at=clock(), debounce_s=2.0)
    assert inbox.pending() == []
    [k] = inbox.last_syncs()
    assert (k.object, k.key, k.sync_id, k.status) == ("account", "A1", "sync-1", "ok")
    assert {e.status for e in inbox.events()} == {"processed"}


def test_events_during_a_sync_schedule_exactly_one_more(inbox: Inbox,
                                                        clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(2)
    [c] = claim(inbox)
    for i in range(5):
        clock.advance(0.1)
        inbox.store_event(ev(f"during{i}"))
    assert claim(inbox) == []  # the key is running
    [p] = inbox.pending()
    assert p.state == "running" and len(p.rerun_ids) == 5
    inbox.finish(c, sync_id="sync-1", status="ok", started_at=clock(), debounce_s=2.0)
    [p] = inbox.pending()
    assert p.state == "waiting" and p.events == 5 and p.attempts == 0
    assert p.notification_ids == tuple(f"during{i}" for i in range(5))
    clock.advance(2)
    [c2] = claim(inbox)
    assert c2.notification_ids == p.notification_ids
    inbox.finish(c2, sync_id="sync-2", status="ok", started_at=clock(), debounce_s=2.0)
    assert inbox.pending() == []


def test_an_event_naming_several_keys_is_processed_when_all_of_them_synced(
        inbox: Inbox, clock: FakeClock) -> None:
    """An Order Processed callout names a subscription and an account: it stays pending until
    both keys' syncs finished, whichever finishes first."""
    inbox.store_event(NewEvent("op-1", "r", "order_processed",
                               (("subscription", "S1"), ("account", "A1")), "{}", DEB))
    clock.advance(2)
    claims = {c.object: c for c in claim(inbox)}
    assert set(claims) == {"subscription", "account"}
    inbox.finish(claims["account"], sync_id="sync-a", status="ok", started_at=clock(),
                 debounce_s=2.0)
    assert [e.status for e in inbox.events()] == ["pending"]
    inbox.finish(claims["subscription"], sync_id="sync-s", status="ok", started_at=clock(),
                 debounce_s=2.0)
    [e] = inbox.events()
    assert (e.status, e.sync_id) == ("processed", "sync-s")


def test_storm_is_one_batch(inbox: Inbox, clock: FakeClock) -> None:
    for i in range(6):
        inbox.store_event(ev(f"n{i}", key=f"A{i}"))
    inbox.store_event(ev("c1", "contact", "C1", "contact"))
    clock.advance(2)
    claims = claim(inbox, threshold=5)
    assert [(c.object, len(c.keys)) for c in claims] == [("account", 6)]
    [c] = claim(inbox, threshold=5)  # the contact, on its own
    assert c.object == "contact"


def test_transient_failures_back_off_then_dead_letter_and_retry(inbox: Inbox,
                                                                clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(2)
    [c] = claim(inbox)
    assert not inbox.fail(c, error="Zuora 503", max_attempts=3, backoff_s=10)
    [p] = inbox.pending()
    assert (p.state, p.attempts, p.last_error) == ("waiting", 1, "Zuora 503")
    clock.advance(9)
    assert claim(inbox) == []  # backoff 10 s
    clock.advance(1)
    [c] = claim(inbox)
    assert not inbox.fail(c, error="Zuora 503", max_attempts=3, backoff_s=10)
    clock.advance(19)
    assert claim(inbox) == []  # doubled: 20 s
    clock.advance(1)
    [c] = claim(inbox)
    assert inbox.fail(c, error="Zuora 503", max_attempts=3, backoff_s=10)  # third: dead
    assert inbox.pending() == []
    [d] = inbox.dead_letters()
    assert d.attempts == 3 and "Zuora 503" in d.reason and d.notification_ids == ("n1",)
    assert inbox.health().dead_letters == 1
    assert inbox.retry(d.id) == 1
    assert inbox.dead_letters() == []
    [c] = claim(inbox)  # requeued for now, fresh attempts
    assert c.attempts == 0 and c.notification_ids == ("n1",)


def test_bad_record_dead_letters_at_once(inbox: Inbox, clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    inbox.store_event(ev("n2", key="A2"))
    clock.advance(2)
    for c in claim(inbox):
        inbox.dead_letter(c, reason="account A: currency XXX is not ISO 4217",
                          sync_id=f"sync-{c.keys[0]}")
    assert len(inbox.dead_letters()) == 2
    assert {k.status for k in inbox.last_syncs()} == {"dead"}
    assert inbox.retry(all_dead=True) == 2
    assert len(inbox.pending()) == 2


def test_orphaned_claim_is_taken_over(inbox: Inbox, clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(2)
    [c] = inbox.claim(limit=1, batch_threshold=100, lease_s=60)
    clock.advance(61)  # the claimer went silent past its lease
    [c2] = claim(inbox)
    assert c2.keys == c.keys and c2.attempts == 1
    inbox.finish(c, sync_id="late", status="ok", started_at=clock(), debounce_s=2)
    assert inbox.pending()[0].state == "running"  # the stale claim finishes nothing


def test_prune_keeps_dedupe_window(settings: Settings, clock: FakeClock) -> None:
    with open_inbox(dataclasses.replace(settings, callouts_retention_days=1,
                                        callouts_dedupe_days=3), clock=clock) as inbox:
        inbox.store_event(ev("n1"))
        inbox.store_rejected("account", "bad1", "no AccountId", "{}")
        clock.advance(2)
        [c] = claim(inbox)
        inbox.finish(c, sync_id="s1", status="ok", started_at=clock(), debounce_s=2)
        inbox.store_event(ev("n2", key="A2"))  # still pending: never pruned
        clock.advance(2 * 86400)
        assert inbox.prune() == {"events": 0, "rejected": 1, "sync_log": 1, "dead": 0}
        assert inbox.store_event(ev("n1")).stored is Stored.DUPLICATE
        clock.advance(2 * 86400)
        assert inbox.prune()["events"] == 1
        assert inbox.event_ids() == {"n2"}


def test_health(inbox: Inbox, clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(30)
    inbox.store_event(ev("n2", key="A2"))
    h = inbox.health()
    assert (h.queue_depth, h.running, h.events_24h) == (2, 0, 2)
    assert h.oldest_pending_s == pytest.approx(30)


def test_two_workers_never_sync_one_key_twice(settings: Settings) -> None:
    """Two connections claiming concurrently (SKIP LOCKED on PostgreSQL, the single writer
    on SQLite): every key is claimed exactly once."""
    with open_inbox(settings) as writer:
        for i in range(40):
            writer.store_event(NewEvent(f"n{i}", None, "account", (("account", f"A{i % 20}"),),
                                        "{}", {"account": 0.0}))
    taken: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        with open_inbox(settings) as ib:
            while cs := ib.claim(limit=1, batch_threshold=100, lease_s=600):
                for c in cs:
                    with lock:
                        taken.extend(c.keys)
                    ib.finish(c, sync_id=f"s-{c.keys[0]}", status="ok", started_at=0,
                              debounce_s=0)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(f"A{i}" for i in range(20))


def test_budget_rate_concurrency_and_retry_after(settings: Settings,
                                                 clock: FakeClock) -> None:
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.advance(s)

    s = dataclasses.replace(settings, zuora_budget_rate_per_s=2, zuora_budget_concurrency=2)
    a = open_budget(s, clock=clock, sleep=sleep)
    b = open_budget(s, clock=clock, sleep=sleep)  # another process, same tenant
    s1, s2 = a.acquire(), b.acquire()  # the burst: 2 tokens
    assert slept == []
    a.release(s1)
    s3 = a.acquire()  # no token left: waits for one (0.5 s at 2/s)
    assert sum(slept) == pytest.approx(0.5)
    b.defer(30)  # b saw a 429 with Retry-After: 30
    a.release(s3)
    b.release(s2)
    slept.clear()
    a.acquire()
    assert sum(slept) == pytest.approx(30)


def test_event_kinds_and_key_extraction() -> None:
    op = DEFAULT_KINDS["order_processed"]
    keys = extract_keys(op, {"SubscriptionNames": "S1, S2", "AccountIds": ["A1"]})
    assert keys == (("subscription", "S1"), ("subscription", "S2"), ("account", "A1"))
    assert extract_keys(DEFAULT_KINDS["catalog"], {"ObjectType": "Product"}) == (
        ("catalog", "*"),)
    with pytest.raises(PayloadError, match="AccountId"):
        extract_keys(DEFAULT_KINDS["account"], {"Id": "x"})
    with pytest.raises(PayloadError, match="must be a string"):
        extract_keys(DEFAULT_KINDS["contact"], {"ContactId": 5})
    kinds = parse_event_kinds(json.dumps({"account": {"path": "/z/acc",
                                                      "keys": {"account": "Data.Id"}}}))
    assert kinds["account"].path == "/z/acc"
    assert extract_keys(kinds["account"], {"Data": {"Id": "A9"}}) == (("account", "A9"),)
    with pytest.raises(ConfigError, match="both use path"):
        parse_event_kinds(json.dumps({"account": {"path": "/callouts/contact"}}))
    with pytest.raises(ConfigError, match="objects are"):
        parse_event_kinds(json.dumps({"x": {"path": "/x", "keys": {"invoice": "Id"}}}))


def test_callouts_events_tables_in_recon_toml(tmp_path: Path) -> None:
    from core.config import load_settings
    from core.inbox import event_kinds

    cfg = tmp_path / "recon.toml"
    cfg.write_text('[callouts.events.account]\npath = "/z/account"\n\n'
                   '[callouts.events.order_processed]\nkeys = { subscription = "Names" }\n')
    kinds = event_kinds(load_settings(cfg, env={}))
    assert kinds["account"].path == "/z/account"
    assert kinds["account"].keys == (("account", "AccountId"),)
    assert kinds["order_processed"].keys == (("subscription", "Names"),)
    cfg.write_text('[callouts.events.account]\npath = "z"\n')
    with pytest.raises(ConfigError, match="callouts.events.*path must be a URL path"):
        load_settings(cfg, env={})


def test_activity_for_the_nightly(settings: Settings, clock: FakeClock) -> None:
    from core.inbox import inbox_exists, read_activity

    assert read_activity(settings) is None  # no inbox yet: None, and looking creates none
    assert not inbox_exists(settings)
    with open_inbox(settings, clock=clock) as inbox:
        inbox.store_event(ev("n1"))
        inbox.store_event(ev("n2", key="A2"))
        clock.advance(2)
        c1, c2 = sorted(claim(inbox), key=lambda c: c.keys)
        inbox.finish(c1, sync_id="sync-1", status="ok", started_at=clock(), debounce_s=2)
        inbox.dead_letter(c2, reason="bad record", sync_id="sync-2")
    frame = read_activity(settings)
    assert frame is not None
    rows = {r["key"]: r for r in frame.iter_rows(named=True)}
    assert (rows["A1"]["dead"], rows["A1"]["sync_id"]) == (False, "sync-1")
    assert rows["A1"]["synced_at"] is not None and rows["A1"]["synced_at"].tzinfo is None
    assert (rows["A2"]["dead"], rows["A2"]["synced_at"]) == (True, None)


def test_sqlite_claim_of_a_dead_or_earlier_process_is_taken_over(tmp_path: Path,
                                                                 clock: FakeClock) -> None:
    import os
    import socket
    import subprocess
    import sys

    s = dataclasses.replace(Settings(), data_dir=tmp_path,
                            local_database_url=f"duckdb:///{tmp_path / 'l.duckdb'}")
    with open_inbox(s, clock=clock) as inbox:
        b = inbox.backend
        assert b.claimer_alive(b.claimer())
        host = socket.gethostname()
        assert not b.claimer_alive(f"{host}:{os.getpid()}:earlier")  # same pid, restarted
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert not b.claimer_alive(f"{host}:{gone}:x")
        assert b.claimer_alive(f"other-host:{gone}:x")  # another host's: the lease decides


def test_retry_joins_a_sync_already_waiting_for_the_key(inbox: Inbox, clock: FakeClock) -> None:
    inbox.store_event(ev("n1"))
    clock.advance(2)
    [c] = claim(inbox)
    inbox.dead_letter(c, reason="bad record")
    inbox.store_event(ev("n2"))  # a new event for the dead key: a fresh sync waits
    [d] = inbox.dead_letters()
    assert inbox.retry(d.id) == 1
    [p] = inbox.pending()
    assert p.notification_ids == ("n2", "n1") and p.state == "waiting"
    clock.advance(2)
    [c] = claim(inbox)
    inbox.finish(c, sync_id="s", status="ok", started_at=clock(), debounce_s=2)
    assert {e.status for e in inbox.events()} == {"processed"}

"""The workers' scheduling with an injected clock and a recording sync: the five-minute catalog
debounce, coalescing, one more sync for events during a sync, storms as one batch, retries with
backoff, dead letters, and 1,000 callouts for 50 keys as exactly 50 syncs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from callouts.worker import Worker
from core.config import Settings
from core.inbox import DEFAULT_KINDS, Inbox, NewEvent, debounce_of, extract_keys
from sync.model import SyncBadRecord, SyncRequest, SyncResult, SyncTransient, new_sync_id
from tests.support.clock import FakeClock


class RecordingSync:
    """A sync that records its requests; ``during`` runs inside it (events arriving while the
    key syncs), ``fail`` raises instead of syncing."""

    def __init__(self) -> None:
        self.requests: list[SyncRequest] = []
        self.during: Callable[[SyncRequest], None] | None = None
        self.fail: Exception | None = None

    def __call__(self, settings: Settings, request: SyncRequest) -> SyncResult:
        self.requests.append(request)
        if self.during is not None:
            self.during(request)
        if self.fail is not None:
            raise self.fail
        now = dt.datetime.now(dt.UTC)
        return SyncResult(new_sync_id(), request.object, request.keys, request.trigger, False,
                          now, now, 0)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = (request.getfixturevalue("pg_url") if request.param == "postgres"
           else f"duckdb:///{tmp_path / 'local.duckdb'}")
    return dataclasses.replace(Settings(), local_database_url=url, data_dir=tmp_path,
                               callouts_debounce_account_s=2.0, callouts_retry_backoff_s=10.0,
                               callouts_max_attempts=3)


def post(inbox: Inbox, settings: Settings, nid: str, kind: str, payload: dict) -> None:
    """What the receiver does with an accepted callout."""
    keys = extract_keys(DEFAULT_KINDS[kind], payload)
    inbox.store_event(NewEvent(nid, None, kind, keys, "{}", debounce_of(settings)))


def drain(worker: Worker) -> int:
    n = 0
    while out := worker.run_once(limit=10):
        n += len(out)
    return n


def test_five_minute_catalog_default_coalesces_20_events(settings: Settings, inbox: Inbox,
                                                         clock: FakeClock) -> None:
    settings = dataclasses.replace(settings, callouts_debounce_catalog_s=Settings()
                                   .callouts_debounce_catalog_s)
    assert settings.callouts_debounce_catalog_s == 300  # the default seed 004 asks for
    sync = RecordingSync()
    worker = Worker(settings, inbox, sync, clock=clock)
    for i in range(20):  # one every 14 s: 266 s of catalog edits
        post(inbox, settings, f"cat{i}", "catalog", {"ObjectType": "ProductRatePlan",
                                                     "Id": f"PRP{i}", "ChangeType": "UPDATE"})
        assert drain(worker) == 0
        clock.advance(14)
    clock.advance(299 - 20 * 14)
    assert drain(worker) == 0  # 299 s after the first event: still waiting
    clock.advance(1)
    assert drain(worker) == 1
    [req] = sync.requests
    assert (req.object, req.keys) == ("catalog", ())  # the whole catalog
    assert req.trigger == "callout:" + ",".join(f"cat{i}" for i in range(20))
    assert inbox.pending() == []
    clock.advance(3600)
    assert drain(worker) == 0


def test_event_during_sync_schedules_exactly_one_more(settings: Settings, inbox: Inbox,
                                                      clock: FakeClock) -> None:
    sync = RecordingSync()
    worker = Worker(settings, inbox, sync, clock=clock)
    post(inbox, settings, "n1", "account", {"AccountId": "A1"})
    clock.advance(2)

    def arrive(request: SyncRequest) -> None:
        sync.during = None
        for i in range(3):
            post(inbox, settings, f"late{i}", "account", {"AccountId": "A1"})
            assert worker.run_once() == []  # never a second sync of A1 while one runs

    sync.during = arrive
    assert drain(worker) == 1
    assert drain(worker) == 0  # the one more sync waits for its own debounce
    clock.advance(2)
    assert drain(worker) == 1
    assert [r.trigger for r in sync.requests] == ["callout:n1",
                                                  "callout:late0,late1,late2"]
    [k] = inbox.last_syncs()
    assert k.status == "ok"


def test_storm_is_one_sync_request(settings: Settings, inbox: Inbox,
                                   clock: FakeClock) -> None:
    settings = dataclasses.replace(settings, sync_batch_threshold=10)
    sync = RecordingSync()
    for i in range(25):
        post(inbox, settings, f"s{i}", "subscription", {"SubscriptionName": f"S{i}"})
    clock.advance(5)
    assert drain(Worker(settings, inbox, sync, clock=clock)) == 1
    [req] = sync.requests
    assert req.object == "subscription" and sorted(req.keys) == sorted(f"S{i}"
                                                                       for i in range(25))


def test_transient_retries_with_backoff_then_dead_letter(settings: Settings, inbox: Inbox,
                                                         clock: FakeClock) -> None:
    sync = RecordingSync()
    sync.fail = SyncTransient("Zuora answered 503 three times for account A1")
    seen: list[str] = []
    worker = Worker(settings, inbox, sync, clock=clock, observer=lambda s, c, d: seen.append(s))
    post(inbox, settings, "n1", "account", {"AccountId": "A1"})
    clock.advance(2)
    assert drain(worker) == 1
    clock.advance(9.9)
    assert drain(worker) == 0  # backoff 10 s
    clock.advance(0.1)
    assert drain(worker) == 1
    clock.advance(20)  # doubled
    assert drain(worker) == 1
    assert seen == ["failed", "failed", "dead"]
    [d] = inbox.dead_letters()
    assert "503" in d.reason and d.attempts == 3
    sync.fail = None
    assert inbox.retry(d.id) == 1
    assert drain(worker) == 1 and inbox.pending() == []
    assert inbox.last_syncs()[0].status == "ok"


def test_a_sync_that_met_a_conflict_is_synced_again_with_fresh_reads(
        settings: Settings, inbox: Inbox, clock: FakeClock) -> None:
    """A row changed between the sync's read and its write (the apply skipped it as a
    conflict): the key is not left stale — it is synced again after the backoff."""
    from sync.model import Leftover

    calls: list[SyncRequest] = []

    def sync(settings: Settings, request: SyncRequest) -> SyncResult:
        calls.append(request)
        now = dt.datetime.now(dt.UTC)
        left = (Leftover("conflict", "billing_accounts", '{"zuora_account_id": "A1"}', None,
                         None, "update skipped (conflict): the row changed"),)
        return SyncResult(new_sync_id(), request.object, request.keys, request.trigger, False,
                          now, now, 1 if len(calls) == 1 else 0,
                          leftovers=left if len(calls) == 1 else ())

    seen: list[str] = []
    worker = Worker(settings, inbox, sync, clock=clock, observer=lambda s, c, d: seen.append(s))
    post(inbox, settings, "n1", "account", {"AccountId": "A1"})
    clock.advance(2)
    assert drain(worker) == 1 and seen == ["failed"]
    [p] = inbox.pending()
    assert "conflict" in (p.last_error or "")
    clock.advance(10)  # the backoff
    assert drain(worker) == 1 and seen == ["failed", "ok"]
    assert inbox.pending() == [] and inbox.last_syncs()[0].status == "ok"


def test_bad_record_is_dead_lettered_without_retry(settings: Settings, inbox: Inbox,
                                                   clock: FakeClock) -> None:
    sync = RecordingSync()
    sync.fail = SyncBadRecord("contact C1: WorkEmail 'x@' is not an e-mail address")
    worker = Worker(settings, inbox, sync, clock=clock)
    post(inbox, settings, "n1", "contact", {"ContactId": "C1"})
    clock.advance(5)
    assert drain(worker) == 1
    clock.advance(3600)
    assert drain(worker) == 0 and len(sync.requests) == 1
    [d] = inbox.dead_letters()
    assert "not an e-mail" in d.reason and d.notification_ids == ("n1",)
    assert inbox.health().dead_letters == 1


def test_1000_callouts_for_50_keys_in_one_window_are_50_syncs(settings: Settings,
                                                              inbox: Inbox,
                                                              clock: FakeClock) -> None:
    settings = dataclasses.replace(settings, callouts_debounce_subscription_s=15.0)
    sync = RecordingSync()
    worker = Worker(settings, inbox, sync, clock=clock)
    for i in range(1000):  # 1,000 callouts in 10 s, 20 per key
        post(inbox, settings, f"n{i}", "subscription", {"SubscriptionName": f"S{i % 50}"})
        clock.advance(0.01)
        if i % 100 == 0:
            assert drain(worker) == 0
    clock.advance(15)
    assert drain(worker) == 50
    assert sorted(k for r in sync.requests for k in r.keys) == sorted(f"S{i}"
                                                                      for i in range(50))
    assert all(len(r.trigger.split(",")) == 20 for r in sync.requests)
    assert inbox.pending() == [] and inbox.health().syncs_24h == 50


@pytest.mark.postgres
def test_a_worker_pool_wakes_on_an_event_stored_by_another_process(pg_url: str,
                                                                    tmp_path: Path) -> None:
    """On PostgreSQL the receiver may run on another host: the event it stores wakes the
    pool's workers through NOTIFY at once, not at their next poll (here 60 s)."""
    import time

    from callouts.worker import WorkerPool
    from core.inbox import open_inbox

    settings = dataclasses.replace(Settings(), local_database_url=pg_url, data_dir=tmp_path,
                                   callouts_debounce_contact_s=0.0)
    sync = RecordingSync()
    pool = WorkerPool(settings, sync, 1, poll_s=60.0)
    pool.start()
    try:
        time.sleep(1.0)  # the workers' first claims are done: they now wait on the poll
        with open_inbox(settings) as other:  # the receiver's connection, not the pool's
            post(other, settings, "n-wake", "contact", {"ContactId": "c-wake"})
        t0 = time.monotonic()
        while not sync.requests and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        assert [r.keys for r in sync.requests] == [("c-wake",)]
        assert time.monotonic() - t0 < 5, "woken by the poll, not by the notification"
    finally:
        assert pool.stop(10)

"""The inbox: Zuora callouts stored durably, the keys they name waiting for their sync, the
last sync of every key, dead letters and rejected payloads.

Scheduling lives in the store, not in a process, so that the rules hold across restarts,
processes and hosts:

* a key's first event sets its debounce deadline (``not_before``); later events join the same
  pending row (coalesced: one sync covers them all, its trigger names their notification ids);
* a key being synced (``running``) keeps events arriving meanwhile in ``rerun_ids``: when the
  sync finishes they become exactly one more waiting sync, debounced from the first of them;
* a claim marks rows ``running`` under a row lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
  SQLite's single writer), so no key is ever synced twice at once; a claim whose process is
  gone (or whose lease ran out) is taken over and counts as an attempt;
* a transient failure puts the key back with exponential backoff; a bad record, or running out
  of attempts, moves it to the dead letters with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable

from core.inbox.backend import Backend
from core.inbox.model import (
    Claim,
    DeadLetter,
    Event,
    InboxHealth,
    KeySync,
    NewEvent,
    PendingKey,
    Rejected,
    Stored,
    StoreOutcome,
    SyncLogEntry,
)

DAY = 86400.0
_PENDING_COLS = ("object, key, state, first_event_at, last_event_at, events, not_before, "
                 "attempts, ids, rerun_ids, claimed_by, last_error")


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _at(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _ids(text: str | None) -> list[str]:
    return list(json.loads(text)) if text else []


def _merge(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


class Inbox:
    """The typed reader/writer of the inbox (open it with :func:`core.inbox.open_inbox`).

    ``clock`` returns UTC epoch seconds; tests inject one to replay minutes in microseconds.
    Thread-safe: one connection, serialised (open one Inbox per worker thread for
    parallelism)."""

    def __init__(self, backend: Backend, *, dedupe_days: float = 7.0,
                 retention_days: float = 14.0, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.dedupe_days = dedupe_days
        self.retention_days = retention_days
        self.clock = clock

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.backend.name

    def where(self) -> str:
        return self.backend.where()

    def ping(self) -> None:
        """Raise :class:`~core.inbox.backend.InboxUnavailable` unless a write transaction can
        be opened now (``/healthz``: 200 only when an event could be stored)."""
        with self.backend.transaction():
            self.backend.fetch("SELECT count(*) FROM recon_inbox_pending WHERE 1 = 0")

    # -- the receiver -------------------------------------------------------------------------
    def store_event(self, e: NewEvent) -> StoreOutcome:
        """Store one accepted callout and schedule its keys, in one transaction committed
        before this returns (the receiver answers 200 only then). A notification id seen
        within ``dedupe_days`` is a duplicate: its delivery is counted, nothing is scheduled."""
        b, now = self.backend, self.clock()
        insert = ("INSERT INTO recon_inbox_events (notification_id, request_id, kind, "
                  "received_at, payload, keys, status, deliveries) "
                  "VALUES (?, ?, ?, ?, ?, ?, 'pending', 1) ON CONFLICT (notification_id) "
                  "DO NOTHING")
        values = (e.notification_id, e.request_id, e.kind, now, e.payload,
                  json.dumps([list(k) for k in e.keys]))
        with b.transaction():
            if not b.execute(insert, values):  # the id is known (a retry, or a reused id)
                seen = b.fetch("SELECT received_at FROM recon_inbox_events WHERE "
                               "notification_id = ?" + b.for_update, (e.notification_id,))
                if seen and seen[0][0] >= now - self.dedupe_days * DAY:
                    b.execute("UPDATE recon_inbox_events SET deliveries = deliveries + 1 "
                              "WHERE notification_id = ?", (e.notification_id,))
                    return StoreOutcome(Stored.DUPLICATE, e.notification_id, e.keys)
                # outside the window: a new notification that happens to reuse an old id
                b.execute("DELETE FROM recon_inbox_events WHERE notification_id = ?",
                          (e.notification_id,))
                b.execute(insert, values)
            for obj, key in sorted(set(e.keys)):  # one lock order: no deadlock between
                self._schedule(obj, key, e.notification_id, now, e.debounce_s.get(obj, 0.0))
            b.notify()  # workers in other processes claim at once, not at their next poll
        return StoreOutcome(Stored.NEW, e.notification_id, e.keys)

    def _schedule(self, obj: str, key: str, nid: str, now: float, debounce: float) -> None:
        b = self.backend
        b.execute("INSERT INTO recon_inbox_pending (object, key, state, first_event_at, "
                  "last_event_at, events, not_before, attempts, ids, rerun_ids) "
                  "VALUES (?, ?, 'waiting', ?, ?, 0, ?, 0, '[]', '[]') "
                  "ON CONFLICT (object, key) DO NOTHING",
                  (obj, key, now, now, now + debounce))
        state, ids, rerun, rerun_first = b.fetch(
            "SELECT state, ids, rerun_ids, rerun_first_at FROM recon_inbox_pending "
            "WHERE object = ? AND key = ?" + b.for_update, (obj, key))[0]
        if state == "waiting":  # coalesce: the deadline stays the first event's
            b.execute("UPDATE recon_inbox_pending SET ids = ?, events = events + 1, "
                      "last_event_at = ? WHERE object = ? AND key = ?",
                      (json.dumps(_merge(_ids(ids), [nid])), now, obj, key))
        else:  # running: exactly one more sync after this one, debounced from now
            b.execute("UPDATE recon_inbox_pending SET rerun_ids = ?, rerun_first_at = ?, "
                      "last_event_at = ? WHERE object = ? AND key = ?",
                      (json.dumps(_merge(_ids(rerun), [nid])),
                       rerun_first if rerun_first is not None else now, now, obj, key))
        b.execute("INSERT INTO recon_inbox_keys (object, key, last_event_at) VALUES (?, ?, ?) "
                  "ON CONFLICT (object, key) DO UPDATE SET last_event_at = excluded.last_event_at",
                  (obj, key, now))

    def store_rejected(self, kind: str, notification_id: str | None, reason: str,
                       payload: str) -> int:
        """Keep a payload answered 400 for inspection; returns its id."""
        with self.backend.transaction():
            return self.backend.insert_id(
                "INSERT INTO recon_inbox_rejected (kind, notification_id, received_at, reason, "
                "payload) VALUES (?, ?, ?, ?, ?)",
                (kind, notification_id, self.clock(), reason, payload))

    # -- the workers --------------------------------------------------------------------------
    def claim(self, *, limit: int, batch_threshold: int, lease_s: float,
              objects: Iterable[str] | None = None) -> list[Claim]:
        """Take up to ``limit`` keys whose debounce has passed (one claim per key), or, when
        more than ``batch_threshold`` keys of one object are pending (a storm), every ready
        key of that object as ONE claim. Claims of dead processes or past their lease are
        taken over first (each counts as an attempt)."""
        b, now = self.backend, self.clock()
        claimer = b.claimer()
        with b.transaction():
            self._take_over(now)
            allowed = tuple(objects) if objects is not None else None
            counts = b.fetch("SELECT object, count(*) FROM recon_inbox_pending "
                             "WHERE state = 'waiting' GROUP BY object")
            storm = [o for o, n in counts if n > batch_threshold
                     and (allowed is None or o in allowed)]
            claims: list[Claim] = []
            if storm:
                obj = sorted(storm)[0]
                rows = b.fetch("SELECT object, key, ids, attempts FROM recon_inbox_pending "
                               "WHERE state = 'waiting' AND not_before <= ? AND object = ? "
                               "ORDER BY not_before" + b.skip_locked, (now, obj))
                if rows:
                    claims.append(self._mark(rows, now, lease_s, claimer))
                return claims
            rows = b.fetch("SELECT object, key, ids, attempts FROM recon_inbox_pending "
                           "WHERE state = 'waiting' AND not_before <= ? "
                           "ORDER BY not_before LIMIT ?" + b.skip_locked, (now, limit * 4))
            for row in rows:
                if allowed is not None and row[0] not in allowed:
                    continue
                claims.append(self._mark([row], now, lease_s, claimer))
                if len(claims) >= limit:
                    break
        return claims

    def _mark(self, rows: list[tuple], now: float, lease_s: float, claimer: str) -> Claim:
        token = secrets.token_hex(8)
        ids: list[str] = []
        for obj, key, row_ids, _ in rows:
            ids = _merge(ids, _ids(row_ids))
            self.backend.execute(
                "UPDATE recon_inbox_pending SET state = 'running', claimed_by = ?, "
                "claimed_at = ?, lease_until = ?, claimer = ? WHERE object = ? AND key = ?",
                (token, now, now + lease_s, claimer, obj, key))
        return Claim(token, rows[0][0], tuple(r[1] for r in rows), tuple(ids),
                     max(r[3] for r in rows))

    def _take_over(self, now: float) -> None:
        """Running rows whose claimer is gone or whose lease passed go back to waiting (their
        rerun events joined), one attempt spent."""
        b = self.backend
        rows = b.fetch("SELECT object, key, claimer, lease_until, ids, rerun_ids "
                       "FROM recon_inbox_pending WHERE state = 'running'" + b.skip_locked)
        for obj, key, claimer, lease_until, ids, rerun in rows:
            if (lease_until or 0) > now and b.claimer_alive(claimer):
                continue
            b.execute("UPDATE recon_inbox_pending SET state = 'waiting', not_before = ?, "
                      "attempts = attempts + 1, ids = ?, rerun_ids = '[]', "
                      "rerun_first_at = NULL, claimed_by = NULL, claimer = NULL, "
                      "last_error = ? WHERE object = ? AND key = ?",
                      (now, json.dumps(_merge(_ids(ids), _ids(rerun))),
                       "the worker holding this key stopped before finishing its sync",
                       obj, key))

    def _held(self, claim: Claim) -> list[tuple[str, str, str, float | None]]:
        """The claim's rows still held by it (a taken-over claim finishes nothing)."""
        b = self.backend
        out = []
        for key in sorted(claim.keys):
            rows = b.fetch("SELECT key, ids, rerun_ids, rerun_first_at FROM "
                           "recon_inbox_pending WHERE object = ? AND key = ? AND claimed_by = ?"
                           + b.for_update, (claim.object, key, claim.token))
            out.extend(rows)
        return out

    def _after_run(self, claim: Claim, key: str, rerun: str, rerun_first: float | None,
                   debounce: float) -> None:
        """A finished key: gone from the queue, unless events arrived while it ran (then
        exactly one more sync, debounced from the first of them)."""
        b = self.backend
        if _ids(rerun):
            first = rerun_first if rerun_first is not None else self.clock()
            b.execute("UPDATE recon_inbox_pending SET state = 'waiting', first_event_at = ?, "
                      "events = ?, not_before = ?, attempts = 0, ids = ?, rerun_ids = '[]', "
                      "rerun_first_at = NULL, claimed_by = NULL, claimer = NULL, "
                      "lease_until = NULL, last_error = NULL WHERE object = ? AND key = ?",
                      (first, len(_ids(rerun)), first + debounce, rerun, claim.object, key))
        else:
            b.execute("DELETE FROM recon_inbox_pending WHERE object = ? AND key = ?",
                      (claim.object, key))

    def finish(self, claim: Claim, *, sync_id: str, status: str, started_at: float,
               debounce_s: float, message: str | None = None) -> None:
        """Record a sync that ran (``ok``: consistent, ``left``: findings left for a person):
        events processed, last sync per key, the sync log; rerun events rescheduled."""
        b, now = self.backend, self.clock()
        with b.transaction():
            done: list[str] = []
            for key, ids, rerun, rerun_first in self._held(claim):
                done += _ids(ids)
                self._record_key(claim.object, key, sync_id, now, status)
                self._after_run(claim, key, rerun, rerun_first, debounce_s)
            self._set_events(self._settled(done), "processed", now, sync_id)
            self._log(sync_id, claim, started_at, now, status, message)

    def _settled(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` whose every key is synced: an event naming several keys (an Order
        Processed callout: subscriptions and accounts) stays pending while another of its
        keys still waits or runs."""
        b, out = self.backend, []
        for nid in dict.fromkeys(ids):
            row = b.fetch("SELECT keys FROM recon_inbox_events WHERE notification_id = ?",
                          (nid,))
            keys = {tuple(k) for k in json.loads(row[0][0])} if row else set()
            waiting = False
            for obj, key in keys if len(keys) > 1 else ():
                for ids_, rerun in b.fetch("SELECT ids, rerun_ids FROM recon_inbox_pending "
                                           "WHERE object = ? AND key = ?", (obj, key)):
                    waiting = waiting or nid in _ids(ids_) or nid in _ids(rerun)
            if not waiting:
                out.append(nid)
        return out

    def fail(self, claim: Claim, *, error: str, max_attempts: int, backoff_s: float,
             sync_id: str | None = None, started_at: float | None = None,
             debounce_s: float = 0.0) -> bool:
        """A transient failure: back to waiting after ``backoff_s · 2^(attempt-1)``, or dead
        after ``max_attempts``. Returns True when the keys were dead-lettered."""
        b, now = self.backend, self.clock()
        attempt = claim.attempts + 1
        if attempt >= max_attempts:
            self.dead_letter(claim, reason=f"{error} (gave up after {attempt} attempts)",
                             sync_id=sync_id, started_at=started_at, attempts=attempt,
                             debounce_s=debounce_s)
            return True
        with b.transaction():
            for key, ids, rerun, _ in self._held(claim):
                b.execute("UPDATE recon_inbox_pending SET state = 'waiting', not_before = ?, "
                          "attempts = ?, ids = ?, rerun_ids = '[]', rerun_first_at = NULL, "
                          "claimed_by = NULL, claimer = NULL, lease_until = NULL, "
                          "last_error = ? WHERE object = ? AND key = ?",
                          (now + backoff_s * 2 ** (attempt - 1), attempt,
                           json.dumps(_merge(_ids(ids), _ids(rerun))), error, claim.object,
                           key))
                if sync_id:
                    self._record_key(claim.object, key, sync_id, now, "failed")
            if sync_id:
                self._log(sync_id, claim, started_at or now, now, "failed", error)
        return False

    def dead_letter(self, claim: Claim, *, reason: str, sync_id: str | None = None,
                    started_at: float | None = None, attempts: int | None = None,
                    debounce_s: float = 0.0) -> None:
        """Move the claim's keys to the dead letters with ``reason`` (a bad record, or out of
        attempts); events that arrived while it ran get one fresh sync."""
        b, now = self.backend, self.clock()
        with b.transaction():
            for key, ids, rerun, rerun_first in self._held(claim):
                first = b.fetch("SELECT first_event_at FROM recon_inbox_pending WHERE "
                                "object = ? AND key = ?", (claim.object, key))[0][0]
                b.execute("INSERT INTO recon_inbox_dead (object, key, reason, attempts, ids, "
                          "first_event_at, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (claim.object, key, reason, attempts or claim.attempts + 1, ids,
                           first, now))
                self._set_events(_ids(ids), "dead", now, sync_id)
                self._record_key(claim.object, key, sync_id, now, "dead")
                self._after_run(claim, key, rerun, rerun_first, debounce_s)
            if sync_id:
                self._log(sync_id, claim, started_at or now, now, "dead", reason)

    def _set_events(self, ids: list[str], status: str, now: float, sync_id: str | None) -> None:
        for nid in ids:
            self.backend.execute("UPDATE recon_inbox_events SET status = ?, processed_at = ?, "
                                 "sync_id = ? WHERE notification_id = ?",
                                 (status, now, sync_id, nid))

    def _record_key(self, obj: str, key: str, sync_id: str | None, now: float,
                    status: str) -> None:
        self.backend.execute(
            "INSERT INTO recon_inbox_keys (object, key, sync_id, finished_at, status) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (object, key) DO UPDATE SET "
            "sync_id = excluded.sync_id, finished_at = excluded.finished_at, "
            "status = excluded.status", (obj, key, sync_id, now, status))

    def _log(self, sync_id: str, claim: Claim, started: float, now: float, status: str,
             message: str | None) -> None:
        self.backend.execute(
            "INSERT INTO recon_inbox_sync_log (sync_id, object, keys, trigger_ids, started_at, "
            "finished_at, status, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sync_id) DO NOTHING",
            (sync_id, claim.object, len(claim.keys), json.dumps(list(claim.notification_ids)),
             started, now, status, message))

    def record_sync(self, object: str, key: str, sync_id: str, finished_at: dt.datetime,
                    status: str) -> None:
        """Record a sync run outside the workers (``recon sync``): the key's last sync."""
        with self.backend.transaction():
            self._record_key(object, key, sync_id, finished_at.timestamp(), status)

    def retry(self, dead_id: int | None = None, *, all_dead: bool = False) -> int:
        """Requeue one dead letter (by id) or all of them not yet requeued: their keys wait
        for an immediate sync with fresh attempts. Returns how many were requeued."""
        b, now = self.backend, self.clock()
        with b.transaction():
            where = "requeued_at IS NULL" + ("" if all_dead else " AND id = ?")
            rows = b.fetch(f"SELECT id, object, key, ids, first_event_at FROM recon_inbox_dead "
                           f"WHERE {where}", () if all_dead else (dead_id,))
            for did, obj, key, ids, _first in rows:
                # as if the events arrived now, without debounce: they join a sync that is
                # already waiting or running for the key, else wait for an immediate one
                for nid in _ids(ids):
                    self._schedule(obj, key, nid, now, 0.0)
                b.execute("UPDATE recon_inbox_dead SET requeued_at = ? WHERE id = ?",
                          (now, did))
                self._set_events(_ids(ids), "pending", now, None)
            if rows:
                b.notify()
        return len(rows)

    def prune(self) -> dict[str, int]:
        """Delete processed events, kept payloads, the sync log and requeued dead letters
        older than ``retention_days`` (events never before ``dedupe_days``: a late Zuora retry
        must still be recognised). Returns the rows deleted per table."""
        b, now = self.backend, self.clock()
        events_before = now - max(self.retention_days, self.dedupe_days) * DAY
        before = now - self.retention_days * DAY
        with b.transaction():
            return {
                "events": b.execute("DELETE FROM recon_inbox_events WHERE status <> 'pending' "
                                    "AND received_at < ?", (events_before,)),
                "rejected": b.execute("DELETE FROM recon_inbox_rejected WHERE received_at < ?",
                                      (before,)),
                "sync_log": b.execute("DELETE FROM recon_inbox_sync_log WHERE finished_at < ?",
                                      (before,)),
                "dead": b.execute("DELETE FROM recon_inbox_dead WHERE requeued_at < ?",
                                  (before,)),
            }

    def listen(self, wake: Callable[[], None], stop: threading.Event
               ) -> threading.Thread | None:
        """Call ``wake`` when another process schedules keys (PostgreSQL ``LISTEN``, on its
        own connection); None when the store has no such channel."""
        return self.backend.listen(wake, stop)

    def next_due(self) -> float | None:
        """The earliest debounce deadline of a waiting key (epoch s), None when none waits."""
        rows = self.backend.fetch("SELECT min(not_before) FROM recon_inbox_pending "
                                  "WHERE state = 'waiting'")
        return rows[0][0] if rows else None

    # -- readers ------------------------------------------------------------------------------
    def pending(self, objects: Iterable[str] | None = None) -> list[PendingKey]:
        rows = self.backend.fetch(f"SELECT {_PENDING_COLS} FROM recon_inbox_pending "
                                  "ORDER BY first_event_at, object, key")
        wanted = set(objects) if objects is not None else None
        return [PendingKey(o, k, st, _at(fa), _at(la), n, _at(nb), att, tuple(_ids(ids)),
                           tuple(_ids(rr)), cb, err)
                for o, k, st, fa, la, n, nb, att, ids, rr, cb, err in rows
                if wanted is None or o in wanted]

    def last_syncs(self, objects: Iterable[str] | None = None) -> list[KeySync]:
        rows = self.backend.fetch("SELECT object, key, sync_id, finished_at, status, "
                                  "last_event_at FROM recon_inbox_keys ORDER BY object, key")
        wanted = set(objects) if objects is not None else None
        return [KeySync(o, k, s, _ts(f), st, _ts(le)) for o, k, s, f, st, le in rows
                if wanted is None or o in wanted]

    def sync_log(self, limit: int = 50) -> list[SyncLogEntry]:
        rows = self.backend.fetch("SELECT sync_id, object, keys, trigger_ids, started_at, "
                                  "finished_at, status, message FROM recon_inbox_sync_log "
                                  "ORDER BY finished_at DESC LIMIT ?", (limit,))
        return [SyncLogEntry(s, o, n, "callout:" + ",".join(_ids(t)), _at(a), _at(f), st, m)
                for s, o, n, t, a, f, st, m in rows]

    def dead_letters(self, include_requeued: bool = False) -> list[DeadLetter]:
        where = "" if include_requeued else " WHERE requeued_at IS NULL"
        rows = self.backend.fetch("SELECT id, object, key, reason, attempts, ids, "
                                  "first_event_at, dead_at, requeued_at FROM recon_inbox_dead"
                                  + where + " ORDER BY id")
        return [DeadLetter(i, o, k, r, a, tuple(_ids(ids)), _at(f), _at(d), _ts(q))
                for i, o, k, r, a, ids, f, d, q in rows]

    def events(self, status: str | None = None, limit: int = 1000) -> list[Event]:
        where, params = ("", ()) if status is None else (" WHERE status = ?", (status,))
        rows = self.backend.fetch("SELECT notification_id, request_id, kind, received_at, "
                                  "payload, keys, status, deliveries, sync_id FROM "
                                  f"recon_inbox_events{where} ORDER BY received_at LIMIT ?",
                                  (*params, limit))
        return [Event(n, r, k, _at(a), p, tuple((o, key) for o, key in json.loads(ks)), st, d,
                      s) for n, r, k, a, p, ks, st, d, s in rows]

    def event_ids(self) -> set[str]:
        """Every stored notification id (the crash tests compare them with the 200s)."""
        return {r[0] for r in self.backend.fetch(
            "SELECT notification_id FROM recon_inbox_events")}

    def rejected(self, limit: int = 100) -> list[Rejected]:
        rows = self.backend.fetch("SELECT id, kind, notification_id, received_at, reason, "
                                  "payload FROM recon_inbox_rejected ORDER BY id DESC LIMIT ?",
                                  (limit,))
        return [Rejected(i, k, n, _at(a), r, p) for i, k, n, a, r, p in rows]

    def health(self, now: dt.datetime | None = None) -> InboxHealth:
        b = self.backend
        t = now.timestamp() if now is not None else self.clock()
        depth, running, oldest = b.fetch(
            "SELECT count(*), coalesce(sum(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0),"
            " min(first_event_at) FROM recon_inbox_pending")[0]
        dead = b.fetch("SELECT count(*) FROM recon_inbox_dead WHERE requeued_at IS NULL")[0][0]
        day = t - DAY
        syncs, failed = b.fetch(
            "SELECT count(*), coalesce(sum(CASE WHEN status IN ('failed', 'dead') THEN 1 "
            "ELSE 0 END), 0) FROM recon_inbox_sync_log WHERE finished_at >= ?", (day,))[0]
        events = b.fetch("SELECT count(*) FROM recon_inbox_events WHERE received_at >= ?",
                         (day,))[0][0]
        rejected = b.fetch("SELECT count(*) FROM recon_inbox_rejected WHERE received_at >= ?",
                           (day,))[0][0]
        return InboxHealth(int(depth), int(running),
                           None if oldest is None else max(0.0, t - oldest), int(dead),
                           int(syncs), int(failed), int(events), int(rejected))

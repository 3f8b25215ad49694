"""The sandbox sends callouts: every mutation (the HTTP mutation API or a test's Python call on
the store) becomes the Zuora callout(s) recon's receiver subscribes to, delivered over real HTTP
with Zuora's semantics (docs/zuora-api.md §5) — so the event path can be tested end to end, lost,
late and out-of-order deliveries included.

Which mutation sends which event (docs/sandbox.md "Callouts from the sandbox" has the same table):

- Contact insert/update/delete → ``contact``: ContactId, AccountId, ChangeType.
- Account insert/update/delete (BillToId/SoldToId changes included) → ``account``: AccountId,
  AccountNumber, BillToId, SoldToId, ChangeType.
- Subscription update of custom fields only (``*__c``: Zuora's custom event for changes made
  outside an order; inside a batch that changes the subscription otherwise, the order covers it) → ``subscription``: SubscriptionName, SubscriptionId, AccountId, ChangeType.
- Subscription insert (a new version), any other Subscription update or delete, any RatePlan,
  RatePlanCharge or RatePlanChargeTier change (all of which Zuora makes through an order) →
  ``order_processed``: OrderNumber, SubscriptionNames, AccountIds (comma-separated).
- Product, ProductRatePlan, ProductRatePlanCharge or ProductRatePlanChargeTier change →
  ``catalog``: ObjectType, Id, ProductId, ChangeType (INSERT|UPDATE|DELETE).
- Anything else sends nothing (no callout of recon's covers it).

A batch (``{"mutations": [...]}`` on the HTTP API, :meth:`Callouts.batch` in Python) is one
order: its subscription changes send ONE Order Processed naming every subscription and account
it touched, sent after the whole batch is applied (a new version is a Subscription insert, its
rate plans, charges and tiers, and the old version expired: one order, as in Zuora). A change the
sandbox cannot tie to a subscription (an orphan rate plan) sends nothing; a catalog change always
sends (ProductId empty when its product cannot be found: the catalog syncs whole anyway).

Delivery: a background sender (a few threads over one due-time queue), so a mutation's answer
never waits for its callout. Each notification has a ``Zuora-Notification-Id`` kept across
retries; each HTTP request a new ``Zuora-Request-Id`` (UUID without hyphens). Basic auth is
non-preemptive unless configured otherwise: the first request carries no ``Authorization``; a
401 with ``WWW-Authenticate: Basic`` is answered at once with the credentials (same delivery
attempt, new request id). Only 200 counts; 1xx, 403, 408, 429, 5xx and connection failures or
timeouts (10 s connect + 15 s read) are retried after ``retry_interval`` up to ``attempts``
deliveries; any other status (3xx, not followed; other 4xx; 2xx other than 200) fails at once.
A seeded share is lost (never sent), delayed (uniformly up to ``delay`` seconds) or reordered
(held back until the next notification has gone). Every terminal outcome — sent, dropped, failed
— is kept (``GET /sandbox/callouts``) and appended to a JSON-lines log with its kind and keys,
so a test can tell which keys' changes never reached the receiver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from core.catalog.events import CATALOG_OBJECTS as CATALOG_EVENT_OBJECTS
from core.catalog.events import EVENT_KINDS
from core.config import redact_url
from sandbox.server.store import Mutation, Store
from sandbox.server.wire import SandboxError

# The receiver's default path per event kind, and the catalog's objects: declared once in the
# catalogue (core.catalog.events), which recon's receiver reads too.
DEFAULT_PATHS: Mapping[str, str] = {k.name: k.path for k in EVENT_KINDS}
KINDS = tuple(DEFAULT_PATHS)
CATALOG_OBJECTS = CATALOG_EVENT_OBJECTS
SUBSCRIPTION_PARTS = ("RatePlan", "RatePlanCharge", "RatePlanChargeTier")
CHANGE_TYPE = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}
BOOKKEEPING = frozenset({"UpdatedDate", "UpdatedById"})  # not a change of their own
MAX_ATTEMPTS = 5  # Zuora's maximum "Maximum Number of Delivery Attempts"
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 15.0  # Zuora's fixed 25 s: 10 connect + 15 transfer
REORDER_HOLD = 1.0  # a held notification goes alone after this long if nothing overtakes it


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CalloutConfig:
    """Where and how the sandbox delivers callouts (``recon sandbox serve --callout-*``)."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    preemptive: bool = False
    loss: float = 0.0
    delay: float = 0.0
    reorder: float = 0.0
    retry_interval: float = 1800.0
    attempts: int = 3
    seed: int | None = None
    log: Path | None = None
    signature_header: str = "X-Zuora-Signature"
    paths: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PATHS))
    senders: int = 4

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SandboxError(f"callout url {redact_url(self.url)!r} is not an http(s) URL; "
                               "give the receiver's base URL, e.g. http://127.0.0.1:8809")
        for name in ("loss", "reorder"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SandboxError(f"callout {name} {getattr(self, name)} is not a share; "
                                   "give a fraction from 0 to 1")
        if self.delay < 0 or self.retry_interval < 0:
            raise SandboxError("callout delay and retry interval are seconds, 0 or more")
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            raise SandboxError(f"callout attempts {self.attempts}: Zuora delivers 1 to "
                               f"{MAX_ATTEMPTS} times; give a number in that range")
        if self.senders < 1:
            raise SandboxError("callout senders: give 1 or more threads")
        unknown = set(self.paths) - set(KINDS)
        if unknown:
            raise SandboxError(f"callout paths for unknown kinds {sorted(unknown)}; kinds: "
                               f"{', '.join(KINDS)}")

    def endpoint(self, kind: str) -> str:
        return self.url.rstrip("/") + self.paths.get(kind, DEFAULT_PATHS[kind])

    def describe(self) -> str:
        """One line for the console: never the password or the HMAC secret."""
        auth = ("none" if self.auth is None else
                f"basic as {self.auth[0]!r} ({'preemptive' if self.preemptive else 'non-preemptive'})")
        return (f"callouts to {redact_url(self.url)} (auth {auth}; hmac "
                f"{'on, ' + self.signature_header if self.secret else 'off'}; loss {self.loss:g}, "
                f"delay ≤{self.delay:g}s, reorder {self.reorder:g}; {self.attempts} attempts "
                f"{self.retry_interval:g}s apart"
                + (f"; seed {self.seed}" if self.seed is not None else "")
                + (f"; log {self.log}" if self.log else "") + ")")


def parse_auth(text: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``USER:PASS`` (the password may hold colons) → (user, password)."""
    if text is None or isinstance(text, tuple):
        return text
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise SandboxError("callout auth must be USER:PASS (the receiver's Basic credentials)")
    return user, password


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalloutEvent:
    """One notification to send: its kind, JSON payload (ids only) and the receiver's keys
    (sync object → keys, as recon's receiver reads them from the payload)."""

    kind: str
    payload: dict[str, Any]
    keys: dict[str, tuple[str, ...]]
    causes: tuple[str, ...]  # "update Contact 2c9…", for the log
    changed_at: str  # ISO UTC, when the (last) mutation behind it was applied


def _peek(store: Store, obj: str, id_: Any) -> dict[str, Any] | None:
    if not id_:
        return None
    try:
        return store.peek(obj, str(id_))
    except SandboxError:  # the dataset has no such object file
        return None


def _row(store: Store, m: Mutation) -> dict[str, Any]:
    if m.op == "insert":
        return dict(m.fields)
    return _peek(store, m.object, m.id) or {"Id": m.id, **m.fields}


def _subscription_of(store: Store, obj: str, row: dict[str, Any]) -> dict[str, Any] | None:
    if obj == "Subscription":
        return row
    if obj == "RatePlanChargeTier":
        row = _peek(store, "RatePlanCharge", row.get("RatePlanChargeId")) or {}
    return _peek(store, "Subscription", row.get("SubscriptionId"))


def _product_of(store: Store, obj: str, row: dict[str, Any]) -> str | None:
    parents = {"ProductRatePlanChargeTier": ("ProductRatePlanCharge", "ProductRatePlanChargeId"),
               "ProductRatePlanCharge": ("ProductRatePlan", "ProductRatePlanId")}
    while obj in parents:
        obj, ref = parents[obj]
        row = _peek(store, obj, row.get(ref)) or {}
    if obj == "ProductRatePlan":
        return row.get("ProductId")
    return row.get("Id")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def events_of(store: Store, m: Mutation) -> list[CalloutEvent]:
    """The callout(s) Zuora would send for one applied mutation (the module's table)."""
    row, change, cause, at = _row(store, m), CHANGE_TYPE[m.op], f"{m.op} {m.object} {m.id}", _now()
    if m.object == "Contact":
        return [CalloutEvent("contact", {"ContactId": m.id, "AccountId": _s(row.get("AccountId")),
                                         "ChangeType": change},
                             {"contact": (m.id,)}, (cause,), at)]
    if m.object == "Account":
        return [CalloutEvent("account", {
            "AccountId": m.id, "AccountNumber": _s(row.get("AccountNumber")),
            "BillToId": _s(row.get("BillToId")), "SoldToId": _s(row.get("SoldToId")),
            "ChangeType": change}, {"account": (m.id,)}, (cause,), at)]
    if m.object in CATALOG_OBJECTS:
        return [CalloutEvent("catalog", {
            "ObjectType": m.object, "Id": m.id, "ProductId": _s(_product_of(store, m.object, row)),
            "ChangeType": change}, {"catalog": ("*",)}, (cause,), at)]
    if m.object != "Subscription" and m.object not in SUBSCRIPTION_PARTS:
        return []  # objects no callout of recon's covers
    sub = _subscription_of(store, m.object, row)
    if sub is None or not sub.get("Name"):
        return []
    name, account = str(sub["Name"]), _s(sub.get("AccountId"))
    changed = set(m.fields) - BOOKKEEPING
    if m.object == "Subscription" and m.op == "update" and all(f.endswith("__c") for f in changed):
        return [CalloutEvent("subscription", {
            "SubscriptionName": name, "SubscriptionId": m.id, "AccountId": account,
            "ChangeType": change}, {"subscription": (name,)}, (cause,), at)]
    return [CalloutEvent("order_processed", {"SubscriptionNames": name, "AccountIds": account},
                         {"subscription": (name,), "account": (account,) if account else ()},
                         (cause,), at)]


def _union(parts: Iterable[Iterable[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for p in parts for k in p if k))


def coalesce(events: list[CalloutEvent], order_number: str) -> list[CalloutEvent]:
    """One order's events: its Order Processed parts merged into one (named ``order_number``),
    a custom-field event for a subscription the order names left out (Zuora sends the custom
    event only for changes made outside an order), identical other events sent once,
    first-come order kept."""
    out: list[CalloutEvent] = []
    seen: set[str] = set()
    orders = [e for e in events if e.kind == "order_processed"]
    in_order = {n for o in orders for n in o.keys["subscription"]}
    for e in events:
        if e.kind == "subscription" and e.keys["subscription"][0] in in_order:
            continue
        if e.kind == "order_processed":
            if e is not orders[0]:
                continue
            subs = _union(o.keys["subscription"] for o in orders)
            accounts = _union(o.keys.get("account", ()) for o in orders)
            e = CalloutEvent("order_processed", {
                "OrderNumber": order_number, "SubscriptionNames": ",".join(subs),
                "AccountIds": ",".join(accounts)},
                {"subscription": subs, "account": accounts},
                tuple(c for o in orders for c in o.causes), orders[-1].changed_at)
        ident = e.kind + json.dumps(e.payload, sort_keys=True)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(e)
    return out


# -- deliveries -------------------------------------------------------------------------------
@dataclass
class Request:
    """One HTTP request of a delivery attempt (a non-preemptive handshake makes two)."""

    attempt: int
    request_id: str
    authorized: bool
    status: int | None = None
    error: str | None = None
    at: str = field(default_factory=_now)


@dataclass
class Delivery:
    """One notification and what became of it: ``pending`` until ``sent`` (a 200), ``failed``
    (not retriable, or attempts spent) or ``dropped`` (lost on purpose, never sent)."""

    seq: int
    notification_id: str
    event: CalloutEvent
    url: str
    body: bytes
    delay: float = 0.0
    held: bool = False
    due: float = 0.0  # monotonic time of its first attempt
    release: Delivery | None = None  # held back until this one's first attempt is over
    outcome: str = "pending"
    attempts: int = 0
    requests: list[Request] = field(default_factory=list)
    queued_at: str = field(default_factory=_now)
    finished_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        last = self.requests[-1] if self.requests else None
        return {"seq": self.seq, "notification_id": self.notification_id,
                "kind": self.event.kind, "url": self.url, "outcome": self.outcome,
                "keys": {k: list(v) for k, v in self.event.keys.items()},
                "payload": self.event.payload, "causes": list(self.event.causes),
                "changed_at": self.event.changed_at, "queued_at": self.queued_at,
                "finished_at": self.finished_at, "delay": round(self.delay, 4),
                "held": self.held, "attempts": self.attempts,
                "last_status": last.status if last else None,
                "last_error": last.error if last else None,
                "requests": [vars(r) for r in self.requests]}


def retriable(status: int | None) -> bool:
    """Zuora retries 1xx, 403, 408, 429, 5xx and connection failures (``None``)."""
    return status is None or status < 200 or status in (403, 408, 429) or status >= 500


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


class CalloutSender:
    """The background sender: a due-time queue drained by ``senders`` threads; retries go back
    on the queue (no thread sleeps through a retry interval)."""

    def __init__(self, cfg: CalloutConfig) -> None:
        self.cfg = cfg
        self._rng = random.Random(cfg.seed)
        self._cv = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._held: tuple[Delivery, float] | None = None  # (delivery, send alone at)
        self._records: list[Delivery] = []
        self._seq = itertools.count(1)
        self._busy = 0
        self._stopping = False
        try:
            self._log = cfg.log.open("a", encoding="utf-8") if cfg.log else None
        except OSError as e:
            raise SandboxError(f"callout log {cfg.log}: {e.strerror or e}; give a file the "
                               "sandbox can append to") from e
        self._threads = [threading.Thread(target=self._run, name=f"zuora-callouts-{i}",
                                          daemon=True) for i in range(cfg.senders)]
        for t in self._threads:
            t.start()

    # -- producing ----------------------------------------------------------------------------
    def submit(self, event: CalloutEvent) -> Delivery:
        """Queue one notification (returns at once); lost, delayed or held per the config."""
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        with self._cv:
            # three draws per notification, always: one knob never shifts another's stream
            lose, late, swap = self._rng.random(), self._rng.random(), self._rng.random()
            d = Delivery(next(self._seq), uuid.uuid4().hex, event, self.cfg.endpoint(event.kind),
                         body)
            self._records.append(d)
            if lose < self.cfg.loss:
                self._finish(d, "dropped")
                return d
            now = time.monotonic()
            d.delay = late * self.cfg.delay
            due = now + d.delay
            if self._held is not None:  # this one overtakes the held one
                d.release, self._held = self._held[0], None
                self._push(d, due)
            elif swap < self.cfg.reorder:
                d.held = True
                self._held = (d, due + max(REORDER_HOLD, self.cfg.delay))
                self._cv.notify_all()
            else:
                self._push(d, due)
        return d

    def _push(self, d: Delivery, due: float) -> None:
        if not d.attempts:
            d.due = due
        heapq.heappush(self._queue, (due, d.seq, d))
        self._cv.notify_all()

    def _finish(self, d: Delivery, outcome: str) -> None:
        """Record a terminal outcome (caller holds the lock) and log it."""
        d.outcome, d.finished_at = outcome, _now()
        if self._log is not None:
            self._log.write(json.dumps(d.as_json(), separators=(",", ":")) + "\n")
            self._log.flush()
        self._cv.notify_all()

    # -- sending ------------------------------------------------------------------------------
    def _next(self) -> Delivery | None:
        with self._cv:
            while not self._stopping:
                now = time.monotonic()
                if self._held is not None and self._held[1] <= now:
                    held, _ = self._held
                    self._held = None
                    heapq.heappush(self._queue, (now, held.seq, held))
                if self._queue and self._queue[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._queue)[2]
                wake = [t for t in (self._queue[0][0] if self._queue else None,
                                    self._held[1] if self._held else None) if t is not None]
                self._cv.wait(max(0.0, min(wake) - now) if wake else None)
            return None

    def _run(self) -> None:
        with requests.Session() as http:
            http.trust_env = False  # no proxy or .netrc between the sandbox and the receiver
            while (d := self._next()) is not None:
                status: int | None = None
                try:
                    status = self._attempt(http, d)
                except Exception as e:  # a sender bug must not kill the thread: say it, retry
                    d.requests.append(Request(d.attempts, "", False, None,
                                              f"sandbox error: {type(e).__name__}: {e}"))
                finally:
                    with self._cv:
                        self._busy -= 1
                        if d.release is not None:  # right behind it, before any later one
                            self._push(d.release, d.due + 1e-6)
                            d.release = None
                        if status == 200:
                            self._finish(d, "sent")
                        elif retriable(status) and d.attempts < self.cfg.attempts:
                            # (when stopping, it stays queued: pending, not failed)
                            self._push(d, time.monotonic() + self.cfg.retry_interval)
                        else:
                            self._finish(d, "failed")

    def _attempt(self, http: requests.Session, d: Delivery) -> int | None:
        """One delivery attempt: the status that decides it (``None``: no answer)."""
        d.attempts += 1
        headers = {"Content-Type": "application/json",
                   "Zuora-Notification-Id": d.notification_id, "X-Amzn-Trace-Id": _trace_id()}
        if self.cfg.secret:
            headers[self.cfg.signature_header] = hmac.new(
                self.cfg.secret.encode(), d.body, hashlib.sha256).hexdigest()
        auth = self.cfg.auth if self.cfg.preemptive else None
        r = self._request(http, d, headers, auth)
        if r is not None and r.status_code == 401 and auth is None and self.cfg.auth \
                and "basic" in r.headers.get("WWW-Authenticate", "").lower():
            r = self._request(http, d, headers, self.cfg.auth)  # the challenge answered
        return None if r is None else r.status_code

    def _request(self, http: requests.Session, d: Delivery, headers: dict[str, str],
                 auth: tuple[str, str] | None) -> requests.Response | None:
        rid = uuid.uuid4().hex
        req = Request(d.attempts, rid, auth is not None)
        d.requests.append(req)
        try:
            r = http.post(d.url, data=d.body, headers={**headers, "Zuora-Request-Id": rid},
                          auth=auth, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                          allow_redirects=False)
            r.close()
        except requests.RequestException as e:
            req.error = f"{type(e).__name__}: {e}"
            return None
        req.status = r.status_code
        return r

    # -- observing ----------------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued, held or in flight; whether that happened in time."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._held is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def records(self) -> list[Delivery]:
        with self._cv:
            return list(self._records)

    def report(self) -> dict[str, Any]:
        """``GET /sandbox/callouts``: every notification by outcome, with kinds and keys."""
        with self._cv:
            out: dict[str, Any] = {"enabled": True, "config": self.cfg.describe(),
                                   "sent": [], "dropped": [], "failed": [], "pending": []}
            for d in self._records:
                out[d.outcome].append(d.as_json())
        out["counts"] = {k: len(out[k]) for k in ("sent", "dropped", "failed", "pending")}
        return out

    def stop(self) -> None:
        """Stop sending (pending notifications stay pending) and close the log."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=1.0)
        with self._cv:
            if self._log is not None:
                self._log.close()
                self._log = None


class Callouts:
    """The store's listener: mutations → events → the sender; :meth:`batch` makes one order."""

    def __init__(self, store: Store, cfg: CalloutConfig) -> None:
        self.cfg = cfg
        self.sender = CalloutSender(cfg)
        self._store = store
        self._local = threading.local()
        self._orders = itertools.count(1)
        store.listeners.append(self._heard)

    def _heard(self, m: Mutation) -> None:
        events = events_of(self._store, m)
        pending = getattr(self._local, "batch", None)
        if pending is not None:
            pending.extend(events)
        elif events:
            self._send(events)

    def _send(self, events: list[CalloutEvent]) -> None:
        for e in coalesce(events, f"O-SBX{next(self._orders):08d}"):
            self.sender.submit(e)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Mutations in this block (this thread) are one order: their callouts go at its end,
        even when it raises (what was applied stays applied, and Zuora would tell)."""
        if getattr(self._local, "batch", None) is not None:  # nested: the outer one sends
            yield
            return
        self._local.batch = []
        try:
            yield
        finally:
            events, self._local.batch = self._local.batch, None
            if events:
                self._send(events)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._store.listeners.remove(self._heard)
        self.sender.stop()


def config_of(url: str, *, auth: str | tuple[str, str] | None = None, **options: Any
              ) -> CalloutConfig:
    """A :class:`CalloutConfig` from the CLI's or ``SandboxServer``'s loose options (``None``
    means the default)."""
    given = {k: v for k, v in options.items() if v is not None}
    if "log" in given:
        given["log"] = Path(given["log"])
    return CalloutConfig(url, auth=parse_auth(auth), **given)

"""The receiving endpoint (Starlette): one path per event kind, Zuora's authentication, and a
200 ``{"success": true}`` only once the event is in the inbox.

The order of checks is the cheapest refusal first, and nothing is stored before the caller is
authenticated: Basic auth (a missing or wrong ``Authorization`` gets the non-preemptive
challenge, 401 + ``WWW-Authenticate: Basic realm="recon"``), the size limit (413, from
``Content-Length`` before reading, and while reading a chunked body), the HMAC signature over
the raw body (401), then the payload: no ``Zuora-Notification-Id``, not JSON, or no key where
the event kind says → 400 with the reason, the payload kept for inspection (Zuora does not
retry a 400, so the event would otherwise be lost without trace). A store that is down answers
503, which Zuora retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callouts.alerts import Alerts
from callouts.metrics import Metrics
from core.config import Settings
from core.errors import ReconError
from core.inbox import (
    EventKind,
    Inbox,
    NewEvent,
    PayloadError,
    Stored,
    debounce_of,
    extract_keys,
)

log = logging.getLogger("recon.callouts")

CHALLENGE = {"WWW-Authenticate": 'Basic realm="recon"'}
NOTIFICATION_ID = "Zuora-Notification-Id"
REQUEST_ID = "Zuora-Request-Id"


class InboxPool:
    """A few inbox connections shared by the request threads (SQLite serialises writes
    anyway, PostgreSQL takes several at once)."""

    def __init__(self, opener: Callable[[], Inbox], size: int) -> None:
        self._q: queue.Queue[Inbox] = queue.Queue()
        self._all = [opener() for _ in range(max(1, size))]
        for ib in self._all:
            self._q.put(ib)

    @contextmanager
    def inbox(self) -> Iterator[Inbox]:
        ib = self._q.get()
        try:
            yield ib
        finally:
            self._q.put(ib)

    def close(self) -> None:
        for ib in self._all:
            ib.close()


def _basic_ok(header: str | None, user: str, password: str) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    got_user, sep, got_password = decoded.partition(":")
    # both compared, always: the time taken says nothing about which one was wrong
    ok_user = hmac.compare_digest(got_user.encode(), user.encode())
    ok_password = hmac.compare_digest(got_password.encode(), password.encode())
    return bool(sep) and ok_user and ok_password


def _signature_ok(body: bytes, header: str | None, secret: str) -> bool:
    if not header:
        return False
    given = header.strip()
    if given.lower().startswith("sha256="):
        given = given[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower(), expected)


class TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "reason": reason}, status_code=status,
                        headers=headers)


class Receiver:
    """The endpoints' state: settings, event kinds, the inbox pool, metrics, alerts, and a
    hook that wakes in-process workers when an event is stored."""

    def __init__(self, settings: Settings, kinds: dict[str, EventKind], pool: InboxPool,
                 metrics: Metrics, alerts: Alerts,
                 on_stored: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.kinds = kinds
        self.pool = pool
        self.metrics = metrics
        self.alerts = alerts
        self.on_stored = on_stored
        self.debounce = debounce_of(settings)
        self._user = settings.callouts_user
        self._password = settings.callouts_password.get() or ""
        self._hmac = settings.callouts_hmac_secret.get()

    def _refuse(self, kind: str, status: int, reason: str,
                headers: dict[str, str] | None = None) -> JSONResponse:
        self.metrics.rejected.labels(kind, str(status)).inc()
        if status in (400, 401):
            self.alerts.rejected(kind, status)
        return _error(status, reason, headers)

    def _keep(self, kind: str, nid: str | None, reason: str, body: bytes) -> None:
        with self.pool.inbox() as ib:
            ib.store_rejected(kind, nid, reason, body.decode("utf-8", "replace"))

    async def _bad(self, kind: str, nid: str | None, reason: str, body: bytes) -> Response:
        try:
            await run_in_threadpool(self._keep, kind, nid, reason, body)
        except ReconError as e:
            log.warning("callout %s refused (%s) and could not be kept: %s", kind, reason, e)
        log.warning("callout %s refused with 400: %s", kind, reason)
        return self._refuse(kind, 400, reason)

    def _store(self, event: NewEvent) -> Stored:
        with self.pool.inbox() as ib:
            return ib.store_event(event).stored

    def endpoint(self, kind: EventKind) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            return await self.receive(kind, request)

        receive.__name__ = f"receive_{kind.name}"
        return receive

    async def receive(self, kind: EventKind, request: Request) -> Response:
        if self._user and not _basic_ok(request.headers.get("authorization"), self._user,
                                        self._password):
            return self._refuse(kind.name, 401, "authentication required", CHALLENGE)
        try:
            body = await _read_body(request, self.settings.callouts_max_body_bytes)
        except TooLarge:
            return self._refuse(kind.name, 413, f"payload larger than "
                                f"{self.settings.callouts_max_body_bytes} bytes")
        if self._hmac and not _signature_ok(body, request.headers.get(
                self.settings.callouts_hmac_header), self._hmac):
            return self._refuse(kind.name, 401, "missing or wrong HMAC-SHA256 signature in "
                                f"{self.settings.callouts_hmac_header}")
        nid = (request.headers.get(NOTIFICATION_ID) or "").strip() or None
        if nid is None:
            return await self._bad(kind.name, None, f"no {NOTIFICATION_ID} header", body)
        if len(nid) > 255:
            return await self._bad(kind.name, nid[:255], f"{NOTIFICATION_ID} longer than 255",
                                   body)
        try:
            payload: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return await self._bad(kind.name, nid, f"the body is not JSON ({e})", body)
        try:
            keys = extract_keys(kind, payload)
        except PayloadError as e:
            return await self._bad(kind.name, nid, str(e), body)
        if any(len(k) > 255 for _, k in keys):
            return await self._bad(kind.name, nid, "a key is longer than 255 characters",
                                   body)
        event = NewEvent(nid, request.headers.get(REQUEST_ID), kind.name, keys,
                         body.decode("utf-8", "replace"), self.debounce)
        try:
            stored = await run_in_threadpool(self._store, event)
        except ReconError as e:
            log.error("callout %s %s not stored: %s", kind.name, nid, e)
            return self._refuse(kind.name, 503, "the inbox cannot store events right now")
        if stored is Stored.DUPLICATE:
            self.metrics.deduplicated.labels(kind.name).inc()
        else:
            self.metrics.received.labels(kind.name).inc()
            if self.on_stored is not None:
                self.on_stored()
        return JSONResponse({"success": True})

    def _ping(self) -> dict[str, Any]:
        with self.pool.inbox() as ib:
            ib.ping()
            h = ib.health()
            return {"ok": True, "inbox": ib.kind, "queue_depth": h.queue_depth,
                    "oldest_pending_s": h.oldest_pending_s, "dead_letters": h.dead_letters}

    async def healthz(self, request: Request) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(self._ping))
        except ReconError as e:
            return JSONResponse({"ok": False, "reason": str(e)}, status_code=503)


def create_app(receiver: Receiver, *, metrics_route: bool = False,
               lifespan: Any = None) -> Starlette:
    """The ASGI app: a POST route per event kind (named after it), ``GET /healthz``, and
    ``GET /metrics`` only when asked (by default metrics have a bind of their own)."""
    routes = [Route(k.path, receiver.endpoint(k), methods=["POST"], name=k.name)
              for k in receiver.kinds.values()]
    routes.append(Route("/healthz", receiver.healthz, methods=["GET"]))
    if metrics_route:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        async def metrics(request: Request) -> Response:
            data = await run_in_threadpool(generate_latest, receiver.metrics.registry)
            return Response(data, media_type=CONTENT_TYPE_LATEST)

        routes.append(Route("/metrics", metrics, methods=["GET"]))
    return Starlette(routes=routes, lifespan=lifespan)
